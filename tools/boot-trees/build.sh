#!/bin/bash
# Writes boot trees with the distributions' own tools (Debian 12
# packages), asks the real boot loader (or its own tool) what each tree
# boots, and turns them into the unit tests' fixtures.
#
# Usage: build.sh OUT_DIR
# Writes OUT_DIR/CASE/{tree/,case.json,...} for every case (cases.sh).
# Needs root (loop devices, mounts, chroot). Caches the disk with the
# packages installed under ~/.cache/ironic-kexec/boot-trees/ (keyed by a
# hash of the files that make it) and the .debs beside the testbed's.

TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$TOOLS/../.." && pwd)
CACHE=${IRONIC_KEXEC_CACHE:-$HOME/.cache/ironic-kexec}
DEB_CACHE=${DEB_CACHE:-$CACHE/debs/boot-trees}
# shellcheck source=testbed/images/common.sh
source "$REPO/testbed/images/common.sh"
# shellcheck source=tools/boot-trees/base.sh
source "$TOOLS/base.sh"
# shellcheck source=tools/boot-trees/cases.sh
source "$TOOLS/cases.sh"
require_tools debootstrap:debootstrap sgdisk:gdisk mkfs.vfat:dosfstools \
    mkfs.ext4:e2fsprogs mkfs.btrfs:btrfs-progs btrfs:btrfs-progs \
    partx:util-linux python3:python3 \
    qemu-system-x86_64:qemu-system-x86

out=$(mkdir -p "$1" && cd "$1" && pwd)
key=$(cat "$TOOLS/base.sh" "$TOOLS/packages.txt" \
    "$REPO/testbed/images/common.sh" | sha256sum | cut -c1-16)
base_dir="$CACHE/boot-trees/$key"
work=$(mktemp -d "$CACHE/boot-trees/work.XXXXXX")
mnt="$work/mnt"

cleanup() {
    umount_case 2>/dev/null || true
    umount_chroot
    umount "$mnt" 2>/dev/null || true
    detach_disk
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT

if [ ! -e "$base_dir/disk.img" ]; then
    log "base disk (cold): $base_dir"
    mkdir -p "$base_dir"
    build_base_disk "$base_dir/disk.img.tmp" "$mnt"
    mv "$base_dir/disk.img.tmp" "$base_dir/disk.img"
fi
log "copy of the base disk"
cp --sparse=always "$base_dir/disk.img" "$work/disk.img"
attach_disk "$work/disk.img"
mkdir -p "$mnt"
mount "${LOOP}p$P_ROOT" "$mnt"
mount_chroot_private_dev "$mnt" "$LOOP" "${LOOP}p$P_BIOS" \
    "${LOOP}p$P_ESP" "${LOOP}p$P_BOOT" "${LOOP}p$P_ROOT" "${LOOP}p$P_BTRFS"
run_cases "$out"
log "done"
