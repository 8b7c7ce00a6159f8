# shellcheck shell=bash
# shellcheck disable=SC2154  # mnt and work are build.sh's
# The boot tree cases, sourced by build.sh. Each case starts from a clean
# /boot, installs kernels the way Debian's kernel packages do, runs the
# boot loader's own tools, saves the tree (save_tree, before any judge
# runs: grub's save_env writes to the disk) and asks the judge what the
# tree boots (judge.py writes case.json).
#
# Globals from build.sh and base.sh: mnt (the root partition, mounted),
# LOOP, P_*, *_UUID, TOOLS, work.

# Two kernel ABIs, installed oldest first as upgrades do; the newest is
# what every loader boots unless told otherwise.
OLD=6.1.0-37-amd64
NEW=6.1.0-38-amd64
# The disk as grub-emu's device map names it (the judge's chroot has the
# same /dev nodes).
GRUB_DISK=hd0

in_chroot() {
    chroot "$mnt" env PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        SYSTEMD_RELAX_ESP_CHECKS=1 SYSTEMD_RELAX_XBOOTLDR_CHECKS=1 "$@"
}

CASE_MOUNTS=()
umount_case() {
    local m
    for m in "${CASE_MOUNTS[@]}"; do
        umount "$m"
    done
    CASE_MOUNTS=()
}

# Mounts a freshly made filesystem of partition N at the image path DIR.
mount_fresh() {
    local n=$1 dir=$2
    case $n in
        # The ESP is ext4 here: the build host's kernel may have no vfat
        # (containers); bootctl is told so (SYSTEMD_RELAX_ESP_CHECKS) and
        # writes the same files.
        "$P_ESP") mkfs.ext4 -q -F -L ESP "${LOOP}p$n" ;;
        "$P_BOOT") mkfs.ext4 -q -F -L boot -U "$BOOT_UUID" "${LOOP}p$n" ;;
    esac
    mkdir -p "$mnt$dir"
    mount "${LOOP}p$n" "$mnt$dir"
    CASE_MOUNTS=("$mnt$dir" "${CASE_MOUNTS[@]}")
}

# Back to the image as debootstrap left it, plus the configuration the
# packages' postinst scripts (which ran without a disk) would have
# written. Each case enables the kernel hooks of its own boot loader
# only: the others stand for packages that are not installed.
reset_image() {
    umount_case
    sgdisk -t "$P_BOOT:8300" "$LOOP" >/dev/null
    rm -rf --one-file-system "${mnt:?}/boot" "$mnt/efi" "$mnt/vmlinuz" \
        "$mnt/vmlinuz.old" "$mnt/initrd.img" "$mnt/initrd.img.old" \
        "$mnt/etc/kernel/cmdline" "$mnt/etc/kernel/entry-token" \
        "$mnt/etc/default/grub" "$mnt/etc/default/u-boot"
    mkdir -p "$mnt/boot"
    # grub-pc's postinst installs /etc/default/grub from this template
    # (through ucf); u-boot-menu ships /etc/default/u-boot as a conffile.
    cp "$mnt/usr/share/grub/default/grub" "$mnt/etc/default/grub"
    cp "$work/u-boot.default" "$mnt/etc/default/u-boot"
    chmod -x "$mnt"/etc/kernel/postinst.d/zz-*
    printf 'UUID=%s / ext4 errors=remount-ro 0 1\n' "$ROOT_UUID" \
        > "$mnt/etc/fstab"
}

enable_hook() {
    chmod +x "$mnt/etc/kernel/postinst.d/$1"
}

fstab_add() {
    printf '%s\n' "$1" >> "$mnt/etc/fstab"
}

# What a linux-image-VERSION package does on install (its postinst),
# with stub files in place of the kernel and of the initramfs that
# initramfs-tools' hook would make: the judges never read their bytes.
install_kernel() {
    local ver=$1 f
    for f in vmlinuz config System.map initrd.img; do
        printf 'stub %s-%s\n' "$f" "$ver" > "$mnt/boot/$f-$ver"
    done
    in_chroot linux-update-symlinks install "$ver" "/boot/vmlinuz-$ver"
    in_chroot env DEB_MAINT_PARAMS=configure run-parts --report \
        --exit-on-error --arg="$ver" --arg="/boot/vmlinuz-$ver" \
        /etc/kernel/postinst.d
}

install_kernels() {
    install_kernel "$OLD"
    install_kernel "$NEW"
}

# grub-install and update-grub as Debian's grub-pc does them; the
# /dev/disk/by-uuid links are udev's on a real system (without them
# grub-mkconfig names root=/dev/loopNpM).
grub_setup() {
    mkdir -p "$mnt/dev/disk/by-uuid"
    ln -sfn "../../$(basename "${LOOP}p$P_ROOT")" \
        "$mnt/dev/disk/by-uuid/$ROOT_UUID"
    ln -sfn "../../$(basename "${LOOP}p$P_BOOT")" \
        "$mnt/dev/disk/by-uuid/$BOOT_UUID"
    in_chroot grub-install --target=i386-pc "$LOOP"
    in_chroot update-grub
    rm -f "$mnt/boot/grub/device.map"
}

set_default_grub() {
    local name=$1 value=$2
    sed -i "s|^#\?$name=.*|$name=$value|" "$mnt/etc/default/grub"
    grep -q "^$name=" "$mnt/etc/default/grub" ||
        echo "$name=$value" >> "$mnt/etc/default/grub"
}

# The fixture: copies what discovery reads (save_tree DIR PATH...: PATH
# inside the image, into DIR/tree or, under a mount point given by
# mount_dirs, into that mount's directory), kernels and initrds already
# being stubs. Large binaries discovery never reads (boot loader EFI
# programs) become stubs with their names kept.
save_tree() {
    local dest=$1 path
    shift
    mkdir -p "$dest/tree"
    for path in "$@"; do
        [ -e "$mnt$path" ] || [ -L "$mnt$path" ] || continue
        (cd "$mnt" && cp -a --parents ".$path" "$dest/tree/")
    done
    # A separate filesystem goes to its own directory of the case.
    local spec dir sub
    for spec in "${SAVE_MOUNTS[@]}"; do
        dir=${spec%%=*}
        sub=${spec#*=}
        if [ -d "$dest/tree$dir" ]; then
            mkdir -p "$dest/$sub"
            (cd "$dest/tree$dir" && cp -a . "$dest/$sub/")
            rm -rf "${dest:?}/tree$dir"
        fi
    done
    # ext4's own directory (the ESP is ext4 here, see mount_fresh).
    find "$dest" -depth -name lost+found -type d -exec rm -rf {} +
    find "$dest" -type f \( -iname '*.efi' ! -path '*/EFI/Linux/*' \) \
        -exec sh -c 'printf "stub %s\n" "${1##*/}" > "$1"' _ {} \;
    # random-seed is random: a rebuild would differ.
    find "$dest" -type f -name random-seed \
        -exec sh -c 'printf "stub random-seed\n" > "$1"' _ {} \;
    # As git keeps them: no empty directories, no modes but the x bit.
    find "$dest" -depth -type d -empty -delete
    chmod -R u+rwX,go+rX,go-w "$dest"
}

# What discovery reads on a Debian root: the configuration it may need
# for a command line, the kernel symlinks and /boot's names.
COMMON_PATHS=(/etc/os-release /usr/lib/os-release /etc/fstab
    /vmlinuz /vmlinuz.old /initrd.img /initrd.img.old)

boot_files() {
    local f
    for f in "$mnt"/boot/vmlinuz-* "$mnt"/boot/initrd.img-* \
            "$mnt"/boot/config-* "$mnt"/boot/System.map-* \
            "$mnt"/boot/*-ucode.img; do
        [ -e "$f" ] && echo "${f#"$mnt"}"
    done
}

sync_disk() {
    sync
    blockdev --flushbufs "$LOOP" "${LOOP}p$P_ESP" "${LOOP}p$P_BOOT" \
        "${LOOP}p$P_ROOT"
}

# judge_grub CASE_DIR GRUB_PARTITION DESCRIPTION [judge.py options]: runs
# grub-emu on the image's grub.cfg and writes case.json.
judge_grub() {
    local dest=$1 part=$2 description=$3
    shift 3
    sync_disk
    python3 "$TOOLS/judge.py" grub --chroot "$mnt" --loop "$LOOP" \
        --disk "$GRUB_DISK" --case-dir "$dest" --grub-partition "$part" \
        --description "$description" --built-by grub-pc-bin \
        --built-by grub2-common --built-by linux-base \
        --partition "$P_ROOT=/" --partition "$P_BOOT=/boot" \
        --partition "$P_ESP=/boot/efi" "$@"
}

grub_paths() {
    echo /boot/grub/grub.cfg /boot/grub/grubenv /etc/default/grub
    boot_files
}

# --- grub-pc (Debian 12) ---------------------------------------------------

case_grub_default() {
    local dest=$1/debian12-grub-default
    reset_image
    enable_hook zz-update-grub
    install_kernels
    grub_setup
    SAVE_MOUNTS=()
    # shellcheck disable=SC2046
    save_tree "$dest" "${COMMON_PATHS[@]}" $(grub_paths)
    judge_grub "$dest" "$P_ROOT" "Debian 12 grub-pc, two kernels, update-grub's \
default entry (GRUB_DEFAULT=0: the newest kernel)"
}

case_grub_saved_submenu() {
    local dest=$1/debian12-grub-saved-submenu
    reset_image
    enable_hook zz-update-grub
    install_kernels
    set_default_grub GRUB_DEFAULT saved
    grub_setup
    in_chroot grub-set-default \
        "gnulinux-advanced-$ROOT_UUID>gnulinux-$OLD-advanced-$ROOT_UUID"
    SAVE_MOUNTS=()
    # shellcheck disable=SC2046
    save_tree "$dest" "${COMMON_PATHS[@]}" $(grub_paths)
    judge_grub "$dest" "$P_ROOT" "Debian 12 grub-pc, GRUB_DEFAULT=saved and \
grub-set-default selecting the older kernel in the 'Advanced options' \
submenu by its id path"
}

case_grub_reboot() {
    local dest=$1/debian12-grub-reboot
    reset_image
    enable_hook zz-update-grub
    install_kernels
    set_default_grub GRUB_DEFAULT saved
    grub_setup
    in_chroot grub-set-default 0
    in_chroot grub-reboot \
        "gnulinux-advanced-$ROOT_UUID>gnulinux-$OLD-recovery-$ROOT_UUID"
    SAVE_MOUNTS=()
    # shellcheck disable=SC2046
    save_tree "$dest" "${COMMON_PATHS[@]}" $(grub_paths)
    judge_grub "$dest" "$P_ROOT" "Debian 12 grub-pc, GRUB_DEFAULT=saved with \
saved_entry 0, and grub-reboot (next_entry) naming the older kernel's \
recovery entry in the submenu"
}

case_grub_quoted() {
    local dest=$1/debian12-grub-quoted-cmdline
    reset_image
    enable_hook zz-update-grub
    install_kernels
    set_default_grub GRUB_CMDLINE_LINUX \
        "'\"acpi_osi=Windows 2015\" console=ttyS0,115200'"
    grub_setup
    SAVE_MOUNTS=()
    # shellcheck disable=SC2046
    save_tree "$dest" "${COMMON_PATHS[@]}" $(grub_paths)
    judge_grub "$dest" "$P_ROOT" "Debian 12 grub-pc, GRUB_CMDLINE_LINUX with a \
quoted argument holding a space (\"acpi_osi=Windows 2015\")"
}

case_grub_microcode() {
    local dest=$1/debian12-grub-microcode
    reset_image
    enable_hook zz-update-grub
    install_kernels
    # An early microcode image in /boot, one of the names of Debian's
    # GRUB_EARLY_INITRD_LINUX_STOCK: 10_linux loads it before the
    # initramfs.
    printf 'stub intel-ucode.img\n' > "$mnt/boot/intel-ucode.img"
    grub_setup
    SAVE_MOUNTS=()
    # shellcheck disable=SC2046
    save_tree "$dest" "${COMMON_PATHS[@]}" $(grub_paths)
    judge_grub "$dest" "$P_ROOT" "Debian 12 grub-pc with an early microcode image \
(/boot/intel-ucode.img): grub loads two initrds, microcode first"
}

case_grub_separate_boot() {
    local dest=$1/debian12-grub-separate-boot
    reset_image
    mount_fresh "$P_BOOT" /boot
    fstab_add "UUID=$BOOT_UUID /boot ext4 defaults 0 2"
    enable_hook zz-update-grub
    install_kernels
    grub_setup
    SAVE_MOUNTS=(/boot=boot)
    # shellcheck disable=SC2046
    save_tree "$dest" "${COMMON_PATHS[@]}" $(grub_paths)
    judge_grub "$dest" "$P_BOOT" "Debian 12 grub-pc with /boot a separate \
filesystem: grub.cfg names the kernels relative to it" \
        --mount /boot=boot
}

# A Debian 12 root in the btrfs subvolume @rootfs (the Debian
# installer's name), /boot in it: grub.cfg names the kernels from the
# filesystem's top level (/@rootfs/boot/...) and adds rootflags=subvol=.
# The chroot is a copy of the image's root in that subvolume, so that
# grub-probe finds / on btrfs.
case_grub_btrfs() {
    local dest=$1/debian12-grub-btrfs-subvol
    local top=$work/btrfs-top broot=$work/btrfs-root saved=$mnt
    reset_image
    mkfs.btrfs -q -f -U "$BTRFS_UUID" -L root "${LOOP}p$P_BTRFS"
    mkdir -p "$top" "$broot"
    mount "${LOOP}p$P_BTRFS" "$top"
    CASE_MOUNTS=("$top" "${CASE_MOUNTS[@]}")
    btrfs -q subvolume create "$top/@rootfs"
    umount_chroot
    cp -ax "$mnt/." "$top/@rootfs/"
    mount -o subvol=@rootfs "${LOOP}p$P_BTRFS" "$broot"
    CASE_MOUNTS=("$broot" "${CASE_MOUNTS[@]}")
    mnt=$broot
    mount_chroot_private_dev "$mnt" "$LOOP" "${LOOP}p$P_BIOS" \
        "${LOOP}p$P_ESP" "${LOOP}p$P_BOOT" "${LOOP}p$P_ROOT" \
        "${LOOP}p$P_BTRFS"
    printf 'UUID=%s / btrfs defaults,subvol=@rootfs 0 0\n' "$BTRFS_UUID" \
        > "$mnt/etc/fstab"
    enable_hook zz-update-grub
    install_kernels
    mkdir -p "$mnt/dev/disk/by-uuid"
    ln -sfn "../../$(basename "${LOOP}p$P_BTRFS")" \
        "$mnt/dev/disk/by-uuid/$BTRFS_UUID"
    grub_setup
    SAVE_MOUNTS=()
    # shellcheck disable=SC2046
    save_tree "$dest" "${COMMON_PATHS[@]}" $(grub_paths)
    judge_grub "$dest" "$P_BTRFS" "Debian 12 grub-pc with the root \
filesystem in the btrfs subvolume @rootfs (/boot in it): grub.cfg names \
the kernels from the top level and passes rootflags=subvol=" \
        --partition "$P_BTRFS=/" --subvol "$P_BTRFS=@rootfs" \
        --note "tree/ is the subvolume @rootfs, the image root as fstab \
mounts it (subvol=@rootfs); the filesystem's top level, where grub.cfg's \
paths start, is not in the fixture. The agent mounts the btrfs top level \
and finds the root in @rootfs (RootFS.subvol), as \"subvol\" says."
    umount_chroot
    mnt=$saved
    umount_case
    mount_chroot_private_dev "$mnt" "$LOOP" "${LOOP}p$P_BIOS" \
        "${LOOP}p$P_ESP" "${LOOP}p$P_BOOT" "${LOOP}p$P_ROOT" \
        "${LOOP}p$P_BTRFS"
}

# --- systemd-boot (Debian 12) ----------------------------------------------

# judge_bootctl CASE_DIR ESP DESCRIPTION [judge.py options]
judge_bootctl() {
    local dest=$1 esp=$2 description=$3
    shift 3
    sync_disk
    python3 "$TOOLS/judge.py" bootctl --chroot "$mnt" --case-dir "$dest" \
        --esp "$esp" --description "$description" --built-by systemd-boot \
        --built-by systemd --built-by linux-base --note "The ESP was ext4 \
during the build (the build host's kernel may lack vfat; bootctl and \
kernel-install ran with SYSTEMD_RELAX_ESP_CHECKS=1); its files are what \
they write on vfat, and fstab names it vfat as an installed system's \
does. The systemd-boot EFI programs and loader/random-seed are stubs." "$@"
}

sdboot_paths() {
    local esp=$1
    echo /etc/kernel/cmdline /etc/kernel/entry-token "$esp"
    boot_files
}

# bootctl install on the ESP mounted at ESP, as systemd-boot's postinst
# does it (without EFI variables: the build host is not the machine),
# then the kernels, whose postinst hook runs kernel-install.
sdboot_install() {
    local esp=$1 xbootldr=${2:-} boot_path=()
    mount_fresh "$P_ESP" "$esp"
    fstab_add "UUID=$ESP_UUID $esp vfat umask=0077 0 1"
    if [ -n "$xbootldr" ]; then
        # The Linux extended boot partition (XBOOTLDR) type.
        sgdisk -t "$P_BOOT:ea00" "$LOOP" >/dev/null
        mount_fresh "$P_BOOT" "$xbootldr"
        fstab_add "UUID=$BOOT_UUID $xbootldr ext4 defaults 0 2"
        boot_path=(--boot-path="$xbootldr")
    fi
    printf 'root=UUID=%s ro quiet console=ttyS0,115200\n' "$ROOT_UUID" \
        > "$mnt/etc/kernel/cmdline"
    in_chroot bootctl install --no-variables --esp-path="$esp" \
        "${boot_path[@]}" --make-machine-id-directory=auto
    enable_hook zz-systemd-boot
    install_kernels
}

case_sdboot_pinned() {
    local dest=$1/debian12-systemd-boot-pinned
    reset_image
    sdboot_install /boot/efi
    # A glob that pins the older kernel's entry (not the newest).
    echo "default *-$OLD.conf" >> "$mnt/boot/efi/loader/loader.conf"
    SAVE_MOUNTS=(/boot/efi=esp)
    # shellcheck disable=SC2046
    save_tree "$dest" "${COMMON_PATHS[@]}" $(sdboot_paths /boot/efi)
    judge_bootctl "$dest" /boot/efi "Debian 12 systemd-boot, ESP at \
/boot/efi, Type #1 entries written by kernel-install, loader.conf's \
default glob pinning the older kernel" --mount /boot/efi=esp
}

case_sdboot_efi() {
    local dest=$1/debian12-systemd-boot-efi
    reset_image
    sdboot_install /efi
    SAVE_MOUNTS=(/efi=esp)
    # shellcheck disable=SC2046
    save_tree "$dest" "${COMMON_PATHS[@]}" $(sdboot_paths /efi)
    judge_bootctl "$dest" /efi "Debian 12 systemd-boot, ESP at /efi, \
Type #1 entries written by kernel-install, no default in loader.conf \
(the newest entry boots)" --mount /efi=esp
}

case_sdboot_esp_boot() {
    local dest=$1/debian12-systemd-boot-esp-at-boot
    reset_image
    sdboot_install /boot
    SAVE_MOUNTS=(/boot=esp)
    # shellcheck disable=SC2046
    save_tree "$dest" "${COMMON_PATHS[@]}" $(sdboot_paths /boot)
    judge_bootctl "$dest" /boot "Debian 12 systemd-boot with the ESP \
mounted at /boot (the kernel packages write into it), Type #1 entries \
written by kernel-install" --mount /boot=esp
}

case_sdboot_xbootldr() {
    local dest=$1/debian12-systemd-boot-xbootldr
    reset_image
    sdboot_install /efi /boot
    echo "default *-$OLD.conf" >> "$mnt/efi/loader/loader.conf"
    SAVE_MOUNTS=(/efi=esp /boot=xbootldr)
    # shellcheck disable=SC2046
    save_tree "$dest" "${COMMON_PATHS[@]}" $(sdboot_paths /efi) /boot
    judge_bootctl "$dest" /efi "Debian 12 systemd-boot with the ESP at \
/efi and an XBOOTLDR partition at /boot holding the Type #1 entries \
(kernel-install), loader.conf on the ESP pinning the older kernel" \
        --boot-path /boot --mount /efi=esp --mount /boot=xbootldr
}

# --- Unified Kernel Image ---------------------------------------------------

# A UKI made with objcopy from systemd-boot-efi's stub, the sections at
# the addresses the Arch wiki's "Unified kernel image" (manually)
# section gives for this stub; Debian 12 has no ukify (systemd 253).
case_uki() {
    local dest=$1/debian12-uki
    local stub=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
    reset_image
    mount_fresh "$P_ESP" /boot/efi
    fstab_add "UUID=$ESP_UUID /boot/efi vfat umask=0077 0 1"
    in_chroot bootctl install --no-variables --esp-path=/boot/efi \
        --make-machine-id-directory=no
    install_kernels
    printf 'root=UUID=%s ro "acpi_osi=Windows 2015" quiet\n' "$ROOT_UUID" \
        > "$mnt/etc/kernel/cmdline"
    mkdir -p "$mnt/boot/efi/EFI/Linux"
    in_chroot objcopy \
        --add-section .osrel=/usr/lib/os-release \
        --change-section-vma .osrel=0x20000 \
        --add-section .cmdline=/etc/kernel/cmdline \
        --change-section-vma .cmdline=0x30000 \
        --add-section .linux="/boot/vmlinuz-$NEW" \
        --change-section-vma .linux=0x2000000 \
        --add-section .initrd="/boot/initrd.img-$NEW" \
        --change-section-vma .initrd=0x3000000 \
        "$stub" "/boot/efi/EFI/Linux/debian-$NEW.efi"
    # objcopy stamps the build time: fixed (Debian 12's release day),
    # a rebuild writes the same bytes.
    python3 "$TOOLS/pe_timestamp.py" \
        "$mnt/boot/efi/EFI/Linux/debian-$NEW.efi" 1686355200
    SAVE_MOUNTS=(/boot/efi=esp)
    # shellcheck disable=SC2046
    save_tree "$dest" "${COMMON_PATHS[@]}" /etc/kernel/cmdline /boot/efi \
        $(boot_files)
    judge_bootctl "$dest" /boot/efi "Debian 12: a Unified Kernel Image \
(Type #2) on the ESP at /boot/efi (EFI/Linux/), made with objcopy from \
systemd-boot-efi's stub, beside systemd-boot without Type #1 entries" \
        --mount /boot/efi=esp --uki "/boot/efi/EFI/Linux/debian-$NEW.efi" \
        --built-by binutils --built-by systemd-boot-efi
}

# --- extlinux (u-boot-menu) -------------------------------------------------

case_extlinux() {
    local dest=$1/debian12-extlinux-u-boot-menu
    reset_image
    # Labels are l0, l0r (rescue), l1, l1r... newest kernel first: l1
    # is the older kernel.
    cat >> "$mnt/etc/default/u-boot" <<EOC
U_BOOT_DEFAULT="l1"
U_BOOT_PARAMETERS="ro quiet console=ttyS0,115200"
EOC
    enable_hook zz-u-boot-menu
    install_kernels
    SAVE_MOUNTS=()
    # shellcheck disable=SC2046
    save_tree "$dest" "${COMMON_PATHS[@]}" /etc/default/u-boot \
        /boot/extlinux/extlinux.conf $(boot_files)
    # U-Boot's distro boot looks at the partitions marked bootable (the
    # legacy BIOS bootable attribute on GPT) or the first one.
    sgdisk -A "$P_ROOT:set:2" "$LOOP" >/dev/null
    sync_disk
    python3 "$TOOLS/judge.py" extlinux --chroot "$mnt" --case-dir "$dest" \
        --image "$work/disk.img" --partition "$P_ROOT=/" --description "Debian 12 \
u-boot-menu: u-boot-update's extlinux.conf with U_BOOT_DEFAULT naming \
the older kernel's label and U_BOOT_PARAMETERS" --built-by u-boot-menu \
        --built-by linux-base
}

# --- RHEL 9 (hand-written) ---------------------------------------------------

# Fedora's and RHEL's tools are not in Debian: this tree is written by
# hand, following what they write (see RHEL_NOTE), and no boot loader
# judges it: Debian's grub has no blscfg module.
RHEL_OLD=5.14.0-427.13.1.el9_4.x86_64
RHEL_NEW=5.14.0-427.16.1.el9_4.x86_64
RHEL_OPTIONS="root=UUID=$ROOT_UUID ro crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M console=ttyS0,115200n8"
RHEL_NOTE="Hand-written, no judge run. Followed: Fedora/RHEL grub2's \
20-grub.install (kernel-install plugin, grub2 dist-git): mkbls() writes \
'linux /vmlinuz-VER' and 'initrd /initramfs-VER.img', then rewrites both \
with the prefix grub2-mkrelpath gives for /boot/vmlinuz-VER, which is \
/boot when /boot is not a separate filesystem (rhboot/grub2 pull request \
10, 'Add relative path to the kernel and initrds BLS fields if needed'); \
it sets saved_entry to the new entry (grub2-editenv), as grubby \
--set-default does, here to the older kernel. grub.cfg as RHEL 9's \
grub2-mkconfig writes it with GRUB_ENABLE_BLSCFG=true (00_header's \
load_env and default=saved_entry, 10_linux's search and blscfg). \
rhboot/grub2 blscfg.c: entries are read from /loader/entries/ on \$root, \
then /boot/loader/entries/; the entry runs 'linux (\$root)LINUX OPTIONS' \
and 'initrd (\$root)INITRD'."

rhel_entry() {
    local dir=$1 ver=$2
    cat > "$dir/boot/loader/entries/$MACHINE_ID-$ver.conf" <<EOC
title Red Hat Enterprise Linux ($ver) 9.4 (Plow)
version $ver
linux /boot/vmlinuz-$ver
initrd /boot/initramfs-$ver.img
options $RHEL_OPTIONS
grub_users \$grub_users
grub_arg --unrestricted
grub_class rhel
EOC
}

case_rhel_handwritten() {
    local dest=$1/rhel9-bls-boot-on-root t ver f
    t=$dest/tree
    rm -rf "$dest"
    mkdir -p "$t/boot/loader/entries" "$t/boot/grub2" "$t/etc/default" \
        "$t/etc/kernel"
    for ver in "$RHEL_OLD" "$RHEL_NEW"; do
        for f in "vmlinuz-$ver" "initramfs-$ver.img" "System.map-$ver" \
                "config-$ver"; do
            printf 'stub %s\n' "$f" > "$t/boot/$f"
        done
        rhel_entry "$t" "$ver"
    done
    cat > "$t/etc/os-release" <<'EOC'
NAME="Red Hat Enterprise Linux"
VERSION="9.4 (Plow)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow)"
EOC
    printf '%s\n' "$RHEL_OPTIONS" > "$t/etc/kernel/cmdline"
    printf 'UUID=%s / xfs defaults 0 0\n' "$ROOT_UUID" > "$t/etc/fstab"
    cat > "$t/etc/default/grub" <<EOC
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR="\$(sed 's, release .*\$,,g' /etc/system-release)"
GRUB_DEFAULT=saved
GRUB_DISABLE_SUBMENU=true
GRUB_TERMINAL_OUTPUT="console"
GRUB_CMDLINE_LINUX="crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M console=ttyS0,115200n8"
GRUB_DISABLE_RECOVERY="true"
GRUB_ENABLE_BLSCFG=true
EOC
    cat > "$t/boot/grub2/grub.cfg" <<EOC
#
# DO NOT EDIT THIS FILE
#
# It is automatically generated by grub2-mkconfig using templates
# from /etc/grub.d and settings from /etc/default/grub
#

### BEGIN /etc/grub.d/00_header ###
set pager=1

if [ -f \${config_directory}/grubenv ]; then
  load_env -f \${config_directory}/grubenv
elif [ -s \$prefix/grubenv ]; then
  load_env
fi
if [ "\${next_entry}" ] ; then
   set default="\${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="\${saved_entry}"
fi

if [ x"\${feature_menuentry_id}" = xy ]; then
  menuentry_id_option="--id"
else
  menuentry_id_option=""
fi

export menuentry_id_option

if [ "\${prev_saved_entry}" ]; then
  set saved_entry="\${prev_saved_entry}"
  save_env saved_entry
  set prev_saved_entry=
  save_env prev_saved_entry
  set boot_once=true
fi

function savedefault {
  if [ -z "\${boot_once}" ]; then
    saved_entry="\${chosen}"
    save_env saved_entry
  fi
}

function load_video {
  if [ x\$feature_all_video_module = xy ]; then
    insmod all_video
  else
    insmod efi_gop
    insmod efi_uga
    insmod ieee1275_fb
    insmod vbe
    insmod vga
    insmod video_bochs
    insmod video_cirrus
  fi
}

terminal_output console
if [ x\$feature_timeout_style = xy ] ; then
  set timeout_style=menu
  set timeout=5
# Fallback normal timeout code in case the timeout_style feature is
# unavailable.
else
  set timeout=5
fi
### END /etc/grub.d/00_header ###

### BEGIN /etc/grub.d/10_linux ###
insmod part_gpt
insmod xfs
set root='hd0,gpt$P_ROOT'
if [ x\$feature_platform_search_hint = xy ]; then
  search --no-floppy --fs-uuid --set=root --hint='hd0,gpt$P_ROOT'  $ROOT_UUID
else
  search --no-floppy --fs-uuid --set=root $ROOT_UUID
fi
insmod blscfg
blscfg
### END /etc/grub.d/10_linux ###
EOC
    # grub2-editenv's block: exactly 1024 bytes, '#' padded.
    python3 - "$t/boot/grub2/grubenv" "$MACHINE_ID-$RHEL_OLD" <<'EOC'
import sys
body = ('# GRUB Environment Block\n'
        'saved_entry=%s\nboot_success=0\n' % sys.argv[2])
open(sys.argv[1], 'w').write(body + '#' * (1024 - len(body)))
EOC
    python3 - "$dest/case.json" "$RHEL_NOTE" "$RHEL_OLD" \
        "$RHEL_OPTIONS" <<'EOC'
import json
import sys
path, note, ver, options = sys.argv[1:]
case = {
    'description': 'RHEL 9 layout, /boot on the root filesystem: BLS '
                   'entries in /boot/loader/entries naming /boot/vmlinuz-'
                   'VER, grub.cfg with blscfg, saved_entry pinning the '
                   'older kernel',
    'hand_written': True,
    'built_by': 'hand-written (tools/boot-trees/cases.sh, '
                'case_rhel_handwritten)',
    'judge': {'tool': 'none (hand-written; see note)'},
    'grub_cmdline': 'What grub would pass: BOOT_IMAGE=($root)/boot/'
                    'vmlinuz-%s %s, $root being grub\'s name of the root '
                    'partition that search finds ((hd0,gpt4) on this '
                    'layout), which the image alone does not fix; '
                    'expected.cmdline is the entry\'s options.'
                    % (ver, options),
    'note': note,
    'mounts': {},
    'expected': {
        'kernel': '/boot/vmlinuz-%s' % ver,
        'initrds': ['/boot/initramfs-%s.img' % ver],
        'cmdline': options,
        'source': 'bls',
    },
}
with open(path, 'w') as f:
    json.dump(case, f, indent=2, sort_keys=True)
    f.write('\n')
EOC
}

CASES=(case_grub_default case_grub_saved_submenu case_grub_reboot
    case_grub_quoted case_grub_microcode case_grub_separate_boot
    case_grub_btrfs case_sdboot_pinned case_sdboot_efi case_sdboot_esp_boot
    case_sdboot_xbootldr case_uki case_extlinux
    case_rhel_handwritten)

# BOOT_TREE_CASES (environment): the cases to build, all by default.
run_cases() {
    local out=$1 c
    cp "$mnt/etc/default/u-boot" "$work/u-boot.default"
    for c in ${BOOT_TREE_CASES:-"${CASES[@]}"}; do
        "$c" "$out"
    done
    reset_image
}
