#!/bin/bash
# The demo, on a fresh Debian 12, as root: installs what it needs, builds
# the testbed's images (cached), then deploys the same whole-disk image to
# a QEMU node twice through a standalone Ironic, once with the kexec
# deploy interface and once with the stock direct one, and prints the two
# timelines side by side.
#
#   sudo tools/demo.sh [--post-delay SECONDS] [--image partition]
set -eu
set -o pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
cache=${IRONIC_KEXEC_CACHE:-$HOME/.cache/ironic-kexec}
export IRONIC_KEXEC_CACHE=$cache

"$top/tools/install-deps.sh"
# The functional test environment has Ironic, the agent, the plugin and
# the testbed's own requirements; the demo runs in it.
"$cache/tools-venv/bin/tox" -e functional --notest
exec "$top/.tox/functional/bin/python" -m testbed.demo "$@"
