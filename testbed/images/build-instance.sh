#!/bin/bash
# Builds the testbed's instance (deployed OS) images from Debian packages.
#
# Usage: build-instance.sh OUT_DIR
# Writes into OUT_DIR:
#   whole-disk.img       MBR, one ext4 partition, GRUB in the MBR gap,
#                        Debian's own grub.cfg
#   uefi-whole-disk.img  GPT, an ESP (vfat) and an ext4 root; shim and
#                        signed GRUB EFI installed by grub-install, also
#                        at the removable path EFI/BOOT/BOOTX64.EFI (boots
#                        with empty NVRAM); Debian's own grub.cfg
#   uefi-unsigned-disk.img  the same, but its /boot/vmlinuz-* has no
#                        signature (sbattach --remove): Secure Boot's
#                        kexec_file_load and shim both refuse it
#   sb-shimx64.efi       the Secure Boot network boot chain of the
#   sb-grubx64.efi       testbed's pxe nodes (testbed/secureboot.py), from
#   sb-mmx64.efi         the UEFI root's packages: Microsoft-signed shim,
#                        Debian-signed *network* GRUB (grubnetx64), the
#                        signed MOK manager
#   partition.img        the ext4 root file system alone, GRUB installed in
#                        it for the agent's install_bootloader
#   partition.kernel     the kernel and initramfs in its /boot
#   partition.initramfs
#   no-kernel-disk.img   boots by extlinux; its kernel is /boot/linux.bin so
#                        that kexec discovery finds none
#   instance.kernel      kernel and an initramfs that is a whole (diskless)
#   instance.initramfs   instance
# Every one of them runs the same instance service (testbed/instance).

# shellcheck source=testbed/images/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
require_tools debootstrap:debootstrap depmod:kmod modprobe:kmod \
    parted:parted mkfs.ext4:e2fsprogs cpio:cpio mkfs.vfat:dosfstools \
    mcopy:mtools mmd:mtools mdir:mtools blkid:util-linux

out=$1
work="$out/work"
root="$work/root"
mnt="$work/mnt"
LOOP=
DISK_MIB=${DISK_MIB:-768}

cleanup() {
    umount_chroot
    umount -l "$root/var/cache/apt/archives" 2>/dev/null || true
    umount -l "$mnt/var/cache/apt/archives" 2>/dev/null || true
    umount -l "$mnt/var/lib/apt/lists" 2>/dev/null || true
    umount -l "$mnt/boot/efi" 2>/dev/null || true
    umount -l "$mnt" 2>/dev/null || true
    if [ -n "$LOOP" ]; then
        losetup -d "$LOOP" 2>/dev/null || true
    fi
}
trap cleanup EXIT

in_root() {
    chroot "$root" env PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

rm -rf --one-file-system "$work"
mkdir -p "$work" "$mnt"
debootstrap_root "$root" "$HERE/instance-packages.txt"

log "configuration"
inst="$TESTBED/instance"
install -m 0755 "$inst/ironic-kexec-testbed" \
    "$inst/ironic-kexec-testbed-reply" "$inst/ironic-kexec-testbed-firmware" \
    "$root/usr/local/sbin/"
install -m 0644 "$inst/ironic-kexec-testbed.service" \
    "$root/etc/systemd/system/"
install -m 0644 "$inst/10-testbed-dhcp.network" "$root/etc/systemd/network/"
install -d "$root/etc/default/grub.d"
install -m 0644 "$inst/grub.cfg" \
    "$root/etc/default/grub.d/ironic-kexec-testbed.cfg"
install -m 0644 "$inst/initramfs.conf" \
    "$root/etc/initramfs-tools/conf.d/ironic-kexec-testbed.conf"
install -m 0644 "$inst/initramfs-modules" "$root/etc/initramfs-tools/modules"
echo ironic-kexec-instance > "$root/etc/hostname"

log "kernel and boot loaders"
mount_chroot "$root"
mount --bind "$DEB_CACHE" "$root/var/cache/apt/archives"
in_root apt-get update -qq
# shellcheck disable=SC2046  # one word per package
in_root apt-get install -y -q --no-install-recommends \
    $(package_list "$HERE/instance-boot-packages.txt" | tr ',' ' ')
in_root apt-get download -q busybox-static
umount "$root/var/cache/apt/archives"
mv "$root"/busybox-static_*.deb "$work/"
in_root systemctl enable systemd-networkd.service \
    ironic-kexec-testbed.service
in_root systemctl mask apt-daily.timer apt-daily-upgrade.timer \
    e2scrub_reap.service systemd-networkd-wait-online.service
umount_chroot

kernels=("$root"/boot/vmlinuz-*)
abi=${kernels[0]##*/vmlinuz-}
# A smaller image is faster to download and write on every deploy; the
# instance keeps what its initramfs loads and what a QEMU node uses.
keep_only_modules "$root" "$abi" "$work" "$inst/initramfs-modules" \
    "$inst/modules"
cp "$root/boot/vmlinuz-$abi" "$out/partition.kernel.tmp"
cp "$root/boot/initrd.img-$abi" "$out/partition.initramfs.tmp"
# The UEFI disk installs its boot loader packages later, in a copy of the
# root: it needs the package lists trim_root removes.
cp -a "$root/var/lib/apt/lists" "$work/apt-lists"
trim_root "$root"
rm -f "$root/etc/machine-id"
: > "$root/etc/machine-id"
log "root file system: $(du -sm "$root" | cut -f1) MiB"

# The root file system, populated from the directory (mke2fs -d), with an
# fstab naming its own UUID.
make_rootfs() {
    local target=$1 uuid=$2
    shift 2
    printf 'UUID=%s / ext4 errors=remount-ro 0 1\n' "$uuid" \
        > "$root/etc/fstab"
    mkfs.ext4 -q -F -L instance-root -U "$uuid" -d "$root" "$@" "$target"
}

new_uuid() {
    cat /proc/sys/kernel/random/uuid
}

# A disk image partitioned by parted (its arguments after the image);
# sets LOOP, and waits for the partitions' device nodes (up to NPARTS).
make_disk() {
    local img=$1 nparts=1 n
    shift
    [ $# -gt 0 ] || set -- mklabel msdos mkpart primary ext4 1MiB 100% \
        set 1 boot on
    [ "$1" = mklabel ] && [ "$2" = gpt ] && nparts=2
    rm -f "$img"
    truncate -s "${DISK_MIB}M" "$img"
    # parted calls udevadm, which a container may lack: not an error.
    local out
    if ! out=$(parted -s "$img" "$@" 2>&1); then
        echo "$out" >&2
        return 1
    fi
    LOOP=$(losetup -fP --show "$img")
    for n in $(seq "$nparts"); do
        wait_partition "${LOOP}p$n" || return 1
    done
}

# Without udev (containers) a partition's device node may never come, or
# even the kernel's partition scan: ask for both.
wait_partition() {
    local part=$1 sysdev major minor i
    sysdev="/sys/class/block/$(basename "$part")/dev"
    for i in $(seq 50); do
        [ -b "$part" ] && return 0
        [ -e "$sysdev" ] || partx -a "$LOOP" 2>/dev/null || true
        if [ -r "$sysdev" ]; then
            IFS=: read -r major minor < "$sysdev"
            mknod "$part" b "$major" "$minor" 2>/dev/null || true
        fi
        sleep 0.1
    done
    echo "no partition device $part (try $i)" >&2
    return 1
}

release_disk() {
    umount_chroot
    umount "$mnt"
    losetup -d "$LOOP"
    # Nodes make_disk made itself outlive the loop device.
    rm -f "${LOOP}p1" "${LOOP}p2"
    LOOP=
}

log "partition image"
truncate -s "${DISK_MIB}M" "$out/partition.img.tmp"
make_rootfs "$out/partition.img.tmp" "$(new_uuid)"

log "whole-disk image (GRUB)"
make_disk "$out/whole-disk.img.tmp"
uuid=$(new_uuid)
make_rootfs "${LOOP}p1" "$uuid"
mount "${LOOP}p1" "$mnt"
mount_chroot_private_dev "$mnt" "$LOOP" "${LOOP}p1"
# Without this link (udev makes it on a real system) grub-mkconfig writes
# root=/dev/loopNp1 instead of root=UUID=.
mkdir -p "$mnt/dev/disk/by-uuid"
ln -s "../../$(basename "${LOOP}p1")" "$mnt/dev/disk/by-uuid/$uuid"
chroot "$mnt" grub-install --target=i386-pc "$LOOP"
chroot "$mnt" update-grub
rm -f "$mnt/boot/grub/device.map"
grep -q "root=UUID=$uuid .*console=ttyS0" "$mnt/boot/grub/grub.cfg"
release_disk

log "UEFI whole-disk image (shim, GRUB EFI)"
# GPT: the ESP first (the esp flag gives it the EFI System type, which the
# agent's EFI partition search and kexec discovery look for), then root.
make_disk "$out/uefi-whole-disk.img.tmp" mklabel gpt \
    mkpart ESP fat32 1MiB 65MiB set 1 esp on mkpart root ext4 65MiB 100%
mkfs.vfat -F 32 -n EFI "${LOOP}p1" >/dev/null
esp_uuid=$(blkid -s UUID -o value "${LOOP}p1")
uuid=$(new_uuid)
make_rootfs "${LOOP}p2" "$uuid"
mount "${LOOP}p2" "$mnt"
# As Debian's installer writes it.
printf 'UUID=%s /boot/efi vfat umask=0077 0 1\n' "$esp_uuid" \
    >> "$mnt/etc/fstab"
# grub-install writes the ESP's files into a staging tmpfs that the mount
# table names after the ESP's device: grub probes that device itself (and
# finds FAT), and the build host needs no vfat driver (containers and
# small VMs often lack it). mtools then copies the files onto the ESP.
mkdir -p "$mnt/boot/efi"
mount -t tmpfs -o mode=0700,size=64m "${LOOP}p1" "$mnt/boot/efi"
mount_chroot_private_dev "$mnt" "$LOOP" "${LOOP}p1" "${LOOP}p2"
mkdir -p "$mnt/dev/disk/by-uuid"
ln -s "../../$(basename "${LOOP}p2")" "$mnt/dev/disk/by-uuid/$uuid"
mount --bind "$work/apt-lists" "$mnt/var/lib/apt/lists"
mount --bind "$DEB_CACHE" "$mnt/var/cache/apt/archives"
# The image's NVRAM entries are the deploy's business (the agent writes
# them with efibootmgr), not the build host's.
printf '%s\n' 'grub-efi-amd64 grub2/update_nvram boolean false' \
    'grub-efi-amd64 grub2/force_efi_extra_removable boolean true' |
    chroot "$mnt" debconf-set-selections
# grub-efi-amd64 replaces grub-pc in this copy of the root only.
# shellcheck disable=SC2046  # one word per package
chroot "$mnt" env PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    apt-get install -y -q --no-install-recommends \
    $(package_list "$HERE/instance-uefi-packages.txt" | tr ',' ' ')
# The Secure Boot netboot loaders, as the packages just installed ship
# them, checked signed; and the kernel without its signature. sbsigntool
# only for that: it leaves the image again.
chroot "$mnt" env PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    apt-get install -y -q --no-install-recommends sbsigntool
for pair in shim/shimx64.efi.signed:sb-shimx64.efi \
        grub/x86_64-efi-signed/grubnetx64.efi.signed:sb-grubx64.efi \
        shim/mmx64.efi.signed:sb-mmx64.efi; do
    src=/usr/lib/${pair%%:*}
    chroot "$mnt" sbverify --list "$src" | grep -q 'signature 1' || {
        echo "$src carries no signature" >&2
        exit 1
    }
    install -m 0644 "$mnt$src" "$out/${pair#*:}.tmp"
done
chroot "$mnt" sbverify --list "/boot/vmlinuz-$abi" | grep -q 'signature 1' || {
    echo "the kernel carries no signature" >&2
    exit 1
}
cp "$mnt/boot/vmlinuz-$abi" "$mnt/tmp/vmlinuz-unsigned"
chroot "$mnt" sbattach --remove /tmp/vmlinuz-unsigned
if chroot "$mnt" sbverify --list /tmp/vmlinuz-unsigned |
        grep -q 'signature 1'; then
    echo "sbattach left a signature on the kernel" >&2
    exit 1
fi
mv "$mnt/tmp/vmlinuz-unsigned" "$work/vmlinuz-unsigned"
chroot "$mnt" env PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    apt-get purge -y -q sbsigntool
umount "$mnt/var/cache/apt/archives" "$mnt/var/lib/apt/lists"
for removable in "" --removable; do
    # shellcheck disable=SC2086  # an optional word
    chroot "$mnt" grub-install --target=x86_64-efi --efi-directory=/boot/efi \
        --bootloader-id=debian --uefi-secure-boot --no-nvram $removable
done
chroot "$mnt" update-grub
rm -f "$mnt/boot/grub/device.map"
rm -rf "$mnt"/var/cache/apt/*.bin "$mnt"/var/log/apt
grep -q "root=UUID=$uuid .*console=ttyS0" "$mnt/boot/grub/grub.cfg"
for f in EFI/BOOT/BOOTX64.EFI EFI/BOOT/grubx64.efi EFI/debian/shimx64.efi \
        EFI/debian/grubx64.efi EFI/debian/BOOTX64.CSV; do
    [ -f "$mnt/boot/efi/$f" ] || { echo "no $f on the ESP" >&2; exit 1; }
done
# EFI/debian first, as on an installed system: ironic-python-agent writes
# the NVRAM entry from the first BOOTX64.CSV it walks into, and the copy
# in EFI/BOOT names a shimx64.efi that exists only in EFI/debian.
export MTOOLS_SKIP_CHECK=1
mmd -i "${LOOP}p1" ::/EFI
for dir in debian BOOT; do
    mcopy -s -Q -i "${LOOP}p1" "$mnt/boot/efi/EFI/$dir" ::/EFI/
done
log "ESP: $(mdir -/ -b -i "${LOOP}p1" ::/ 2>/dev/null | tr '\n' ' ')"
umount "$mnt/boot/efi"
release_disk

log "UEFI whole-disk image with an unsigned kernel"
cp --sparse=always "$out/uefi-whole-disk.img.tmp" \
    "$out/uefi-unsigned-disk.img.tmp"
LOOP=$(losetup -fP --show "$out/uefi-unsigned-disk.img.tmp")
wait_partition "${LOOP}p2"
mount "${LOOP}p2" "$mnt"
install -m 0644 "$work/vmlinuz-unsigned" "$mnt/boot/vmlinuz-$abi"
umount "$mnt"
losetup -d "$LOOP"
rm -f "${LOOP}p1" "${LOOP}p2"
LOOP=

log "no-kernel disk image (extlinux)"
make_disk "$out/no-kernel-disk.img.tmp"
uuid=$(new_uuid)
# extlinux cannot read ext4's 64bit layout.
make_rootfs "${LOOP}p1" "$uuid" -O ^64bit
mount "${LOOP}p1" "$mnt"
mv "$mnt/boot/vmlinuz-$abi" "$mnt/boot/linux.bin"
mv "$mnt/boot/initrd.img-$abi" "$mnt/boot/initrd.bin"
rm -rf "$mnt/boot/grub" "$mnt"/vmlinuz* "$mnt"/initrd.img* \
    "$mnt"/boot/vmlinuz* "$mnt"/boot/initrd.img*
install -d "$mnt/boot/extlinux"
sed "s/@ROOT_UUID@/$uuid/" "$inst/extlinux.conf" \
    > "$mnt/boot/extlinux/extlinux.conf"
mount_chroot_private_dev "$mnt" "$LOOP" "${LOOP}p1"
chroot "$mnt" extlinux --install /boot/extlinux
dd if="$mnt/usr/lib/syslinux/mbr/mbr.bin" of="$LOOP" bs=440 count=1 \
    conv=notrunc status=none
release_disk

log "diskless instance initramfs"
small="$work/initramfs"
mkdir -p "$small"/{bin,sbin,proc,sys,dev,modules,usr/local/sbin,etc}
dpkg-deb -x "$work"/busybox-static_*.deb "$work/busybox"
cp "$work/busybox/bin/busybox" "$small/bin/busybox"
for applet in $("$small/bin/busybox" --list); do
    [ -e "$small/bin/$applet" ] || ln -s busybox "$small/bin/$applet"
done
install -m 0755 "$inst/diskless-init" "$small/init"
install -m 0755 "$inst/ironic-kexec-testbed" \
    "$inst/ironic-kexec-testbed-reply" "$inst/ironic-kexec-testbed-firmware" \
    "$small/usr/local/sbin/"
install -m 0755 "$TESTBED/ramdisk/udhcpc.script" "$small/bin/udhcpc.script"
# The modules virtio networking needs, in load order.
modprobe -a -d "$root" -S "$abi" --show-depends virtio_pci virtio_net |
    sed -n 's/^insmod //p' | sed 's/[[:space:]]*$//' | while read -r ko; do
        ko=${ko#"$root"}
        name=$(basename "$ko")
        if ! grep -qx "$name" "$small/modules/order" 2>/dev/null; then
            cp "$root$ko" "$small/modules/$name"
            echo "$name" >> "$small/modules/order"
        fi
    done
[ -s "$small/modules/order" ]
pack_initramfs "$small" "$out/instance.initramfs.tmp"
cp "$out/partition.kernel.tmp" "$out/instance.kernel.tmp"

for f in partition.img whole-disk.img uefi-whole-disk.img \
        uefi-unsigned-disk.img sb-shimx64.efi sb-grubx64.efi sb-mmx64.efi \
        no-kernel-disk.img partition.kernel partition.initramfs \
        instance.kernel instance.initramfs; do
    mv "$out/$f.tmp" "$out/$f"
done
rm -rf --one-file-system "$work"
log "done"
