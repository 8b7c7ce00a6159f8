#!/bin/bash
# Installs what the test suite and the testbed need on a Debian 12 host:
# the Debian packages named in bindep.txt, and tox in a small virtual
# environment under the cache. Run as root. Idempotent and quick when
# everything is already there.
set -eu
set -o pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${IRONIC_KEXEC_CACHE:-$HOME/.cache/ironic-kexec}
tools_venv=$cache/tools-venv
mkdir -p "$cache"

apt_install() {
    # A package list older than a day is refreshed once; the registry may
    # have moved on since the machine image was made.
    local stamp=/var/lib/apt/periodic/ironic-kexec-update-stamp
    if [ -z "$(find "$stamp" -mmin -1440 2>/dev/null)" ]; then
        apt-get update -qq
        mkdir -p "$(dirname "$stamp")" && touch "$stamp"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

if [ "$(id -u)" != 0 ]; then
    echo "install-deps: run as root (it installs Debian packages)" >&2
    exit 1
fi

# bindep needs a virtual environment before it can say what else is missing.
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt_install python3-venv
fi
if [ ! -x "$tools_venv/bin/tox" ] || [ ! -x "$tools_venv/bin/bindep" ]; then
    rm -rf "$tools_venv"
    python3 -m venv "$tools_venv"
    "$tools_venv/bin/pip" install -q 'tox>=4' bindep python-subunit
fi

missing=$("$tools_venv/bin/bindep" -b -f "$top/bindep.txt" test || true)
if [ -n "$missing" ]; then
    # shellcheck disable=SC2086  # one package per word
    apt_install $missing
fi
echo "install-deps: Debian packages and tox are in place ($tools_venv)"
