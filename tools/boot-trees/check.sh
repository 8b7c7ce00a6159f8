#!/bin/bash
# Rebuilds the boot tree fixtures and compares them with the committed
# ones (tests/unit/agent/fixtures/boot_trees): fails when a tool or a
# judge now says something else. With --update, replaces them.
#
# Usage: check.sh [--update]   (root: build.sh needs loop devices)

set -eu
TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$TOOLS/../.." && pwd)
FIXTURES=$REPO/tests/unit/agent/fixtures/boot_trees

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
bash "$TOOLS/build.sh" "$out/boot_trees"
if [ "${1:-}" = --update ]; then
    rm -rf "$FIXTURES"
    mkdir -p "$(dirname "$FIXTURES")"
    cp -a "$out/boot_trees" "$FIXTURES"
    echo "updated $FIXTURES"
    exit 0
fi
if ! diff -r --no-dereference "$FIXTURES" "$out/boot_trees"; then
    echo "The boot trees or what their judges say changed: see the" \
        "differences above; 'tox -e boottrees -- --update' rewrites" \
        "the fixtures." >&2
    exit 1
fi
echo "boot tree fixtures: $(find "$FIXTURES" -name case.json | wc -l)" \
    "cases, unchanged"
