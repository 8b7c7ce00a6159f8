# shellcheck shell=bash
# Shared helpers of the testbed image builds; sourced, never run.
#
# Settings (environment):
#   MIRROR     Debian mirror (the build driver reads it from the host's apt
#              sources; default deb.debian.org)
#   SUITE      Debian suite (default bookworm)
#   DEB_CACHE  directory of downloaded .debs kept between builds

set -eu
set -o pipefail

MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=${SUITE:-bookworm}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034  # used by the scripts that source this
TESTBED=$(dirname "$HERE")
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

log() {
    echo "[$(date +%T)] $*"
}

# Stops the build before it starts when a host program it runs is missing,
# naming the Debian package that brings it: otherwise the build fails
# half-way, minutes in. Arguments: PROGRAM:PACKAGE, for every host program
# of the script (and of the functions here it calls) that a minimal Debian
# lacks; tools/check_host_programs.py (tox -e pep8) keeps the lists whole.
require_tools() {
    local tool missing=0
    for tool in "$@"; do
        if ! command -v "${tool%%:*}" >/dev/null; then
            echo "$(basename "$0"): ${tool%%:*} is not on PATH; it comes" \
                "with the Debian package ${tool#*:}, which" \
                "tools/install-deps.sh installs (bindep.txt)" >&2
            missing=1
        fi
    done
    [ "$missing" = 0 ] || exit 1
}

# The package list without comments, comma separated, for --include.
package_list() {
    sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$1" | tr -s ' \n' ',' |
        sed 's/,$//'
}

debootstrap_root() {
    local root=$1 packages=$2
    mkdir -p "$DEB_CACHE"
    log "debootstrap $SUITE into $root"
    debootstrap --variant=minbase --cache-dir="$DEB_CACHE" \
        --include="$(package_list "$packages")" \
        "$SUITE" "$root" "$MIRROR"
    # The chroot's apt gets the same mirror, and the same .deb cache so
    # that later installs in it do not download again.
    echo "deb $MIRROR $SUITE main" > "$root/etc/apt/sources.list"
}

# Mounts of a chroot, undone by umount_chroot (also on failure: the
# callers trap EXIT).
CHROOT_MOUNTS=()
mount_chroot() {
    local root=$1 fs
    for fs in proc sys dev dev/pts; do
        mkdir -p "$root/$fs"
        mount --bind "/$fs" "$root/$fs"
        CHROOT_MOUNTS=("$root/$fs" "${CHROOT_MOUNTS[@]}")
    done
}

# Like mount_chroot, but with a private /dev holding the usual character
# devices and the given block devices only: what a build does there (udev's
# /dev/disk/by-uuid links, which grub-mkconfig wants) stays off the host.
mount_chroot_private_dev() {
    local root=$1 fs node
    shift
    for fs in proc sys; do
        mkdir -p "$root/$fs"
        mount --bind "/$fs" "$root/$fs"
        CHROOT_MOUNTS=("$root/$fs" "${CHROOT_MOUNTS[@]}")
    done
    mkdir -p "$root/dev"
    mount -t tmpfs -o mode=0755,size=1m tmpfs "$root/dev"
    CHROOT_MOUNTS=("$root/dev" "${CHROOT_MOUNTS[@]}")
    for node in /dev/null /dev/zero /dev/full /dev/random /dev/urandom \
            "$@"; do
        cp -a "$node" "$root/dev/"
    done
}

umount_chroot() {
    local m
    for m in "${CHROOT_MOUNTS[@]}"; do
        umount -l "$m" 2>/dev/null || true
    done
    CHROOT_MOUNTS=()
}

# The kernel ABI that linux-image-amd64 depends on, e.g. 6.1.0-56-amd64,
# as the chroot's apt sees it.
kernel_abi() {
    chroot "$1" apt-cache depends linux-image-amd64 |
        sed -n 's/.*Depends: linux-image-\(.*\)$/\1/p' | head -n1
}

# Removes every kernel module but the ones the lists (files, one module a
# line) name and their dependencies; fails when virtio_net is not kept.
keep_only_modules() {
    local root=$1 abi=$2 work=$3
    shift 3
    depmod -b "$root" "$abi"
    sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$@" |
        xargs modprobe -a -d "$root" -S "$abi" --show-depends \
        > "$work/modules.deps"
    sed -n 's/^insmod \([^ ]*\).*/\1/p' "$work/modules.deps" |
        sed "s|^$root||" | sort -u > "$work/modules.keep"
    grep -q '/virtio_net\.ko$' "$work/modules.keep"
    log "keeping $(wc -l < "$work/modules.keep") kernel modules"
    # (Paths as modprobe prints them: through the /lib symlink.)
    (cd "$root" && find "lib/modules/$abi/kernel/" -name '*.ko' |
        sed 's|^|/|' | sort) | comm -23 - "$work/modules.keep" |
        sed "s|^|$root|" | xargs rm -f
    find "$root/lib/modules/$abi/kernel/" -type d -empty -delete
    depmod -b "$root" "$abi"
}

# Removes what no image needs at runtime.
trim_root() {
    local root=$1
    rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* \
        "$root"/usr/share/info/* "$root"/var/lib/apt/lists/* \
        "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
        "$root"/var/log/*.log
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 \
        ! -name 'C.*' -exec rm -rf {} + 2>/dev/null || true
}

# A gzip'd newc cpio of a directory, with /dev/console in it (without it
# the init's output is lost).
pack_initramfs() {
    local root=$1 out=$2
    mkdir -p "$root/dev"
    [ -e "$root/dev/console" ] || mknod -m 600 "$root/dev/console" c 5 1
    [ -e "$root/dev/null" ] || mknod -m 666 "$root/dev/null" c 1 3
    (cd "$root" && find . -xdev -print0 | LC_ALL=C sort -z |
        cpio --null --create --format=newc --quiet) | gzip -6 > "$out.tmp"
    mv "$out.tmp" "$out"
}
