#!/bin/bash
# Builds the testbed's agent ramdisk from Debian packages and wheels.
#
# Usage: build-agent-ramdisk.sh OUT_DIR WHEELHOUSE PROJECT_WHEEL
# Writes OUT_DIR/agent.kernel and OUT_DIR/agent.initramfs. WHEELHOUSE holds
# ironic-python-agent's wheels (pip inside the chroot cannot verify TLS, so
# it installs from there alone); PROJECT_WHEEL is ironic-kexec's own wheel,
# installed by the ironic-kexec element's install script, the same one
# diskimage-builder runs.

# shellcheck source=testbed/images/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
require_tools debootstrap:debootstrap depmod:kmod modprobe:kmod cpio:cpio

out=$1
wheelhouse=$(realpath "$2")
project_wheel=$(basename "$3")
ipa_version=${IPA_VERSION:-13.0.0}
venv=/opt/ironic-python-agent
repo=$(dirname "$TESTBED")
work="$out/work"
root="$work/root"

cleanup() {
    umount_chroot
    umount -l "$root/tmp/wheels" 2>/dev/null || true
}
trap cleanup EXIT

rm -rf --one-file-system "$work"
mkdir -p "$work"
debootstrap_root "$root" "$HERE/agent-packages.txt"
mount_chroot "$root"
in_root() {
    chroot "$root" env PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

log "kernel"
in_root apt-get update -qq
abi=$(kernel_abi "$root")
shopt -s nullglob
debs=("$DEB_CACHE/linux-image-${abi}_"*.deb)
if [ ${#debs[@]} -eq 0 ]; then
    in_root sh -c "cd /tmp && apt-get download -q linux-image-$abi"
    cp "$root/tmp/linux-image-${abi}_"*.deb "$DEB_CACHE/"
    debs=("$DEB_CACHE/linux-image-${abi}_"*.deb)
fi
shopt -u nullglob
deb=${debs[0]}
# Unpacked rather than installed (installing runs initramfs-tools, whose
# initramfs this ramdisk does not need), and aside: the package's /lib
# would replace the root's merged-/usr symlink.
dpkg-deb -x "$deb" "$work/kernel"
cp "$work/kernel/boot/vmlinuz-$abi" "$out/agent.kernel.tmp"
mkdir -p "$root/usr/lib/modules"
cp -a "$work/kernel/lib/modules/$abi" "$root/usr/lib/modules/"
rm -rf "$work/kernel"
# Only the modules the ramdisk lists, and what they need: the other 170 MiB
# of modules would only make the ramdisk slower to fetch and unpack.
keep_only_modules "$root" "$abi" "$work" "$TESTBED/ramdisk/modules" \
    "$TESTBED/ramdisk/modules-extra"

log "ironic-python-agent $ipa_version"
mkdir -p "$root/tmp/wheels"
mount --bind -o ro "$wheelhouse" "$root/tmp/wheels"
in_root python3 -m venv "$venv"
in_root "$venv/bin/pip" install -q --no-cache-dir --no-index \
    --find-links /tmp/wheels "ironic-python-agent==$ipa_version"

log "ipa_kexec, by the ironic-kexec element's install script"
cp "$repo/elements/ironic-kexec/install.d/80-ironic-kexec-install" \
    "$root/tmp/"
in_root env IPA_KEXEC_VENV="$venv" \
    IPA_KEXEC_SOURCE="/tmp/wheels/$project_wheel" \
    IPA_KEXEC_WHEELHOUSE=/tmp/wheels \
    bash /tmp/80-ironic-kexec-install
rm -f "$root/tmp/80-ironic-kexec-install"
umount "$root/tmp/wheels"
rmdir "$root/tmp/wheels"
ln -sf "$venv/bin/ironic-python-agent" "$root/usr/local/bin/"
# The agent finds the extension through this entry point: load it as the
# agent would, so that a missing module fails the build, not a deploy.
in_root "$venv/bin/python" -c '
from importlib import metadata
from ironic_python_agent import agent  # noqa: registers the options
found = [e.load() for e in metadata.entry_points(
    group="ironic_python_agent.extensions") if e.name == "kexec"]
assert found, "no kexec agent extension entry point"
print("agent extension:", found[0])'

log "init"
install -m 0755 "$TESTBED/ramdisk/init" "$root/init"
install -d "$root/etc/ironic-kexec-testbed"
install -m 0755 "$TESTBED/ramdisk/udhcpc.script" \
    "$root/etc/ironic-kexec-testbed/"
install -m 0644 "$TESTBED/ramdisk/modules" "$root/etc/ironic-kexec-testbed/"
install -m 0755 "$TESTBED/ramdisk/poweroff" "$root/usr/local/sbin/poweroff"
echo ironic-kexec-agent > "$root/etc/hostname"

umount_chroot
trim_root "$root"
rm -rf "$root/tmp"/* "$root/var/cache/apt"/*
log "packing $(du -sm "$root" | cut -f1) MiB"
pack_initramfs "$root" "$out/agent.initramfs"
mv "$out/agent.kernel.tmp" "$out/agent.kernel"
rm -rf --one-file-system "$work"
log "done: $(du -m "$out/agent.initramfs" | cut -f1) MiB initramfs"
