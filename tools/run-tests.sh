#!/bin/bash
# The whole test suite, as CI runs it: installs what it needs, then runs
# the style and build checks, the unit tests and the functional tests on
# the testbed. The last line printed is "N passed, N failed".
#
#   sudo tools/run-tests.sh            # everything
#   sudo tools/run-tests.sh py3 pep8   # some tox environments only
set -u
set -o pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
cache=${IRONIC_KEXEC_CACHE:-$HOME/.cache/ironic-kexec}
export IRONIC_KEXEC_CACHE=$cache

"$top/tools/install-deps.sh" || exit 1
tox=$cache/tools-venv/bin/tox
python=$cache/tools-venv/bin/python

envs=("$@")
if [ ${#envs[@]} -eq 0 ]; then
    envs=(pep8 genconfig docs releasenotes py3 fuzz-slice boottrees functional)
fi

results=$(mktemp -d)
for env in "${envs[@]}"; do
    start=$SECONDS
    echo "=== tox -e $env"
    "$tox" -e "$env"
    rc=$?
    echo "$env $rc $((SECONDS - start))" >> "$results/envs"
    subunit=.tox/$env/tmp/results.subunit
    if [ -s "$subunit" ]; then
        cp "$subunit" "$results/$env.subunit"
    fi
    # A test environment that left no results (it broke before the tests
    # ran) is counted by its exit code alone.
done

"$python" "$top/tools/count_results.py" "$results"
