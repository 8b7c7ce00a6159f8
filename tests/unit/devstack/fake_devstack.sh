#!/bin/bash
# A stand-in for the devstack functions the ironic-kexec plugin calls.
#
# iniset and iniget work for real on the file they are given (through
# Python's configparser, DEFAULT being an ordinary section as it is for
# devstack's sed-based ones); every other function records its call, one
# line per call, fields separated by the unit separator, in $FAKE_LOG.
# `openstack ... node list` prints $FAKE_NODES.

function _fake_record {
    local IFS=$'\x1f'
    echo "$*" >> "$FAKE_LOG"
}

function _fake_ini {
    "$FAKE_PYTHON" - "$@" <<'PYEOF'
import configparser
import sys

action, path, section, option = sys.argv[1:5]
parser = configparser.RawConfigParser(default_section='\x00none',
                                      strict=False)
parser.optionxform = str
parser.read(path)
if action == 'get':
    if parser.has_option(section, option):
        print(parser.get(section, option))
    sys.exit(0)
if not parser.has_section(section):
    parser.add_section(section)
parser.set(section, option, sys.argv[5])
with open(path, 'w') as f:
    parser.write(f)
PYEOF
}

function iniset {
    if [[ "$1" == "-sudo" ]]; then
        shift
    fi
    _fake_record iniset "$@"
    _fake_ini set "$1" "$2" "$3" "$4"
}

function iniget {
    _fake_ini get "$1" "$2" "$3"
}

function die {
    _fake_record die "$@"
    echo "die: $*" >&2
    exit 1
}

function warn {
    _fake_record warn "$@"
}

function echo_summary {
    _fake_record echo_summary "$@"
}

function is_service_enabled {
    local service
    for service in "$@"; do
        if [[ ",$ENABLED_SERVICES," == *",$service,"* ]]; then
            return 0
        fi
    done
    return 1
}

# As devstack's: the value of a variable as True/False, or the default.
function trueorfalse {
    local default=$1
    local testval=${!2:-}
    case "$testval" in
        "1" | [yY]es | "YES" | [tT]rue | "TRUE" ) echo "True" ;;
        "0" | [nN]o | "NO" | [fF]alse | "FALSE" ) echo "False" ;;
        * ) echo "$default" ;;
    esac
}

function setup_develop {
    _fake_record setup_develop "$@"
}

function pip_install {
    _fake_record pip_install "$@"
}

# A clone leaves the repository's directories behind.
function git_clone {
    _fake_record git_clone "$@"
    mkdir -p "$2/dib"
}

function openstack {
    _fake_record openstack "$@"
    if [[ " $* " == *" node list "* ]]; then
        local node
        for node in $FAKE_NODES; do
            echo "$node"
        done
    fi
}
