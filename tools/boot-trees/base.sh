# shellcheck shell=bash
# The disk that the boot trees are written on, sourced by build.sh: a GPT
# disk image with the BIOS boot, EFI system, /boot and root partitions,
# the root holding a Debian with the boot tools (packages.txt), and a
# spare partition for a btrfs root. Built
# once and kept in the cache under a hash of this file, packages.txt and
# the testbed's common.sh; every build works on a copy.

# Fixed identifiers: the trees name them (grub.cfg's search --fs-uuid,
# root=UUID=, the entry directory named after the machine id), so that
# a rebuild writes the same bytes.
DISK_GUID=6b0c7e5e-54a4-4d25-8a4e-3f1ad6a0b001
ESP_PARTUUID=6b0c7e5e-54a4-4d25-8a4e-3f1ad6a0b002
BOOT_PARTUUID=6b0c7e5e-54a4-4d25-8a4e-3f1ad6a0b003
ROOT_PARTUUID=6b0c7e5e-54a4-4d25-8a4e-3f1ad6a0b004
BTRFS_PARTUUID=6b0c7e5e-54a4-4d25-8a4e-3f1ad6a0b005
ESP_SERIAL=1A2B3C4D
# shellcheck disable=SC2034  # cases.sh's (fstab): the ESP's vfat serial
ESP_UUID=1A2B-3C4D
BOOT_UUID=0f6d6c2e-2a51-4c0a-9b4e-6a1d1b0b0003
ROOT_UUID=0f6d6c2e-2a51-4c0a-9b4e-6a1d1b0b0004
# shellcheck disable=SC2034  # cases.sh's
BTRFS_UUID=0f6d6c2e-2a51-4c0a-9b4e-6a1d1b0b0005
MACHINE_ID=4f1c2d3e5a6b4c7d8e9f0a1b2c3d4e5f

# Partition numbers.
P_BIOS=1
P_ESP=2
P_BOOT=3
P_ROOT=4
P_BTRFS=5

LOOP=

# Attaches a disk image; sets LOOP. Without udev (containers) the
# partition nodes may not come by themselves: ask for them.
attach_disk() {
    local img=$1 n sysdev major minor
    LOOP=$(losetup -fP --show "$img")
    for n in $P_BIOS $P_ESP $P_BOOT $P_ROOT $P_BTRFS; do
        sysdev="/sys/class/block/$(basename "$LOOP")p$n/dev"
        for _ in $(seq 50); do
            [ -b "${LOOP}p$n" ] && break
            [ -e "$sysdev" ] || partx -a "$LOOP" 2>/dev/null || true
            if [ -r "$sysdev" ]; then
                IFS=: read -r major minor < "$sysdev"
                mknod "${LOOP}p$n" b "$major" "$minor" 2>/dev/null || true
            fi
            sleep 0.1
        done
        [ -b "${LOOP}p$n" ] || { echo "no ${LOOP}p$n" >&2; return 1; }
    done
}

detach_disk() {
    if [ -n "$LOOP" ]; then
        partx -d "$LOOP" 2>/dev/null || true
        losetup -d "$LOOP" 2>/dev/null || true
        LOOP=
    fi
}

# Builds the base disk image IMG (a new file).
build_base_disk() {
    local img=$1 mnt=$2
    rm -f "$img"
    truncate -s 2800M "$img"
    sgdisk -o -U "$DISK_GUID" \
        -n "$P_BIOS:2048:+1M" -t "$P_BIOS:ef02" -c "$P_BIOS:bios" \
        -n "$P_ESP:0:+64M" -t "$P_ESP:ef00" -u "$P_ESP:$ESP_PARTUUID" \
        -c "$P_ESP:esp" \
        -n "$P_BOOT:0:+64M" -t "$P_BOOT:8300" -u "$P_BOOT:$BOOT_PARTUUID" \
        -c "$P_BOOT:boot" \
        -n "$P_ROOT:0:+1300M" -t "$P_ROOT:8300" \
        -u "$P_ROOT:$ROOT_PARTUUID" -c "$P_ROOT:root" \
        -n "$P_BTRFS:0:0" -t "$P_BTRFS:8300" -u "$P_BTRFS:$BTRFS_PARTUUID" \
        -c "$P_BTRFS:btrfs" "$img" >/dev/null
    attach_disk "$img"
    mkfs.vfat -F 32 -i "$ESP_SERIAL" -n ESP "${LOOP}p$P_ESP" >/dev/null
    mkfs.ext4 -q -F -L boot -U "$BOOT_UUID" "${LOOP}p$P_BOOT"
    mkfs.ext4 -q -F -L root -U "$ROOT_UUID" "${LOOP}p$P_ROOT"
    mkdir -p "$mnt"
    mount "${LOOP}p$P_ROOT" "$mnt"
    debootstrap_root "$mnt" "$TOOLS/packages.txt"
    echo "$MACHINE_ID" > "$mnt/etc/machine-id"
    echo boot-trees > "$mnt/etc/hostname"
    # The packages' postinst ran without an ESP or kernels: whatever
    # they left in /boot is cleared by every case anyway.
    umount "$mnt"
    detach_disk
}
