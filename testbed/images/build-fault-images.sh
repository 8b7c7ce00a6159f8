#!/bin/bash
# Builds the images of the testbed's fault matrix (testbed/faults.py) from
# the testbed's own images, without debootstrap.
#
# Usage: build-fault-images.sh OUT_DIR AGENT_INITRAMFS WHOLE_DISK_IMAGE
#
# Agent variants: the agent ramdisk with a small cpio archive appended. The
# kernel unpacks concatenated archives in order, a later file replacing an
# earlier one, so each variant is the stock agent with a few files changed:
#   agent-no-extension.initramfs  the kexec extension's entry point removed
#                                 (an agent ramdisk built without it)
#   agent-load-disabled.initramfs kernel.kexec_load_disabled=1 set before
#                                 the agent starts
#   agent-load-hang.initramfs     "kexec --load" never returns
#   agent-execute-noop.initramfs  "kexec -e" returns and does nothing
#   agent-busy.initramfs          the agent starts a 120 s command of its
#                                 own right after the last command before
#                                 the handoff, so that kexec.load finds it
#                                 busy (HTTP 409)
#   agent-busy-early.initramfs    the same, right after the conductor saw
#                                 the image written: Ironic's own next
#                                 command finds it busy
# Every variant prints "IRONIC-KEXEC-TESTBED FAULT <name>: ..." on the
# serial console when its fault strikes.
#
# Instance variant:
#   corrupt-grub-disk.img         the whole-disk image whose grub.cfg is
#                                 torn inside its first menuentry and ends
#                                 in binary junk

# shellcheck source=testbed/images/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
require_tools cpio:cpio

out=$1
agent=$2
disk=$3
work="$out/work"
site=opt/ironic-python-agent/lib/python3.11/site-packages
mnt=

cleanup() {
    if [ -n "$mnt" ]; then
        umount "$mnt" 2>/dev/null || true
        rmdir "$mnt" 2>/dev/null || true
    fi
}
trap cleanup EXIT

rm -rf --one-file-system "$work"
mkdir -p "$work"

# The stock files a variant changes, as the agent ramdisk has them.
log "reading the agent ramdisk"
(cd "$work" && zcat "$agent" | cpio -id --quiet \
    "$site/ironic_kexec-*.dist-info/entry_points.txt")
entry_points=$(cd "$work" &&
    echo "$site"/ironic_kexec-*.dist-info/entry_points.txt)
[ -f "$work/$entry_points" ] || {
    echo "no ironic_kexec entry points in $agent" >&2
    exit 1
}
grep -q '^kexec = ipa_kexec' "$work/$entry_points"

# The agent's start, with a fault's setup first; the stock one is a
# symlink to the venv's script.
agent_start='#!/bin/sh
if [ -x /etc/ironic-kexec-testbed/fault-setup ]; then
    /etc/ironic-kexec-testbed/fault-setup
fi
exec /opt/ironic-python-agent/bin/ironic-python-agent "$@"
'

# A kexec in front of Debian's (the agent finds the first kexec on its
# PATH, /usr/local/sbin comes first). $1: the fault's name, $2: a case
# pattern of the command lines it catches, $3: what it does then.
kexec_wrapper() {
    cat <<EOF
#!/bin/sh
case " \$* " in
    $2)
        echo "IRONIC-KEXEC-TESTBED FAULT $1: kexec \$*" > /dev/console
        $3
        ;;
esac
exec /usr/sbin/kexec "\$@"
EOF
}

# new_variant NAME: an empty overlay tree in $tree.
new_variant() {
    tree="$work/$1"
    rm -rf "$tree"
    mkdir -p "$tree"
}

# pack_variant NAME: the agent ramdisk with the overlay appended.
pack_variant() {
    (cd "$tree" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
        cpio --null --create --format=newc --quiet -R 0:0) |
        gzip -6 > "$work/$1.overlay"
    cat "$agent" "$work/$1.overlay" > "$out/agent-$1.initramfs.tmp"
    mv "$out/agent-$1.initramfs.tmp" "$out/agent-$1.initramfs"
    log "agent-$1.initramfs"
}

new_variant no-extension
install -d "$tree/$(dirname "$entry_points")"
grep -v '^kexec = ipa_kexec' "$work/$entry_points" > "$tree/$entry_points"
pack_variant no-extension

new_variant load-disabled
install -d "$tree/usr/local/bin" "$tree/etc/ironic-kexec-testbed"
printf '%s' "$agent_start" > "$tree/usr/local/bin/ironic-python-agent"
chmod 0755 "$tree/usr/local/bin/ironic-python-agent"
cat > "$tree/etc/ironic-kexec-testbed/fault-setup" <<'EOF'
#!/bin/sh
echo 1 > /proc/sys/kernel/kexec_load_disabled
echo "IRONIC-KEXEC-TESTBED FAULT load-disabled:" \
    "kernel.kexec_load_disabled=$(cat /proc/sys/kernel/kexec_load_disabled)"
EOF
chmod 0755 "$tree/etc/ironic-kexec-testbed/fault-setup"
pack_variant load-disabled

new_variant load-hang
install -d "$tree/usr/local/sbin"
kexec_wrapper load-hang '*" --load "*|*" -l "*' 'exec sleep 100000' \
    > "$tree/usr/local/sbin/kexec"
chmod 0755 "$tree/usr/local/sbin/kexec"
pack_variant load-hang

new_variant execute-noop
install -d "$tree/usr/local/sbin"
kexec_wrapper execute-noop '*" -e "*|*" --exec "*' 'exit 0' \
    > "$tree/usr/local/sbin/kexec"
chmod 0755 "$tree/usr/local/sbin/kexec"
pack_variant execute-noop

# busy_variant NAME TRIGGER: an agent extension that starts a 120 s
# command of its own at TRIGGER (see testbed_busy.py below).
busy_variant() {
    new_variant "$1"
    install -d "$tree/$site/testbed_busy-0.0.0.dist-info"
    cat > "$tree/$site/testbed_busy-0.0.0.dist-info/METADATA" <<'EOF'
Metadata-Version: 2.1
Name: testbed-busy
Version: 0.0.0
EOF
    cat > "$tree/$site/testbed_busy-0.0.0.dist-info/entry_points.txt" <<'EOF'
[ironic_python_agent.extensions]
testbed_busy = testbed_busy:BusyExtension
EOF
    sed "s/@TRIGGER@/$2/" > "$tree/$site/testbed_busy.py" <<'EOF'
"""Testbed fault: the agent is busy with another command.

At its trigger the agent starts a command of its own (120 s of sleep)
before it answers the request that triggered it, so that the conductor's
next command finds the agent busy (HTTP 409), as when an earlier command
still runs. Triggers:

image-written: the first time the conductor lists the agent's commands
    and finds the last one a finished write_image deploy step (the next
    command is Ironic's own, in prepare_instance_boot);
partition-uuids: right after standby.get_partition_uuids, the last
    command Ironic sends before the kexec handoff (the next one is
    kexec.load).
"""

import time

from ironic_python_agent.extensions import base

BUSY_SECONDS = 120
TRIGGER = '@TRIGGER@'


def _image_written(results):
    if not results:
        return False
    last = results[-1]
    step = (getattr(last, 'command_params', None) or {}).get('step') or {}
    return (str(getattr(last, 'command_name', '')).endswith(
        'execute_deploy_step') and step.get('step') == 'write_image'
        and last.is_done())


class BusyExtension(base.BaseAgentExtension):

    def __init__(self, agent=None):
        super().__init__(agent=agent)
        if agent is None:
            return
        armed = [True]

        def busy():
            armed[0] = False
            print('IRONIC-KEXEC-TESTBED FAULT busy (%s): testbed_busy.sleep '
                  'for %d s' % (TRIGGER, BUSY_SECONDS), flush=True)
            agent.execute_command('testbed_busy.sleep',
                                  seconds=BUSY_SECONDS)

        if TRIGGER == 'image-written':
            listing = agent.list_command_results

            def list_command_results():
                results = listing()
                if armed[0] and _image_written(results):
                    busy()
                return results

            agent.list_command_results = list_command_results
        else:
            execute = agent.execute_command

            def execute_command(command_name, **kwargs):
                result = execute(command_name, **kwargs)
                if armed[0] and command_name == 'standby.get_partition_uuids':
                    busy()
                return result

            agent.execute_command = execute_command

    @base.async_command('sleep')
    def sleep(self, seconds=BUSY_SECONDS):
        time.sleep(seconds)
        return {'slept': seconds}
EOF
    pack_variant "$1"
}

busy_variant busy partition-uuids
busy_variant busy-early image-written

log "corrupt-grub-disk.img"
cp --sparse=always "$disk" "$out/corrupt-grub-disk.img.tmp"
start=$(partx -g -o START -n 1 "$out/corrupt-grub-disk.img.tmp" | tr -d ' ')
mnt=$(mktemp -d)
mount -o "loop,offset=$((start * 512))" "$out/corrupt-grub-disk.img.tmp" \
    "$mnt"
cfg="$mnt/boot/grub/grub.cfg"
line=$(grep -n -m1 $'^[[:space:]]*linux[[:space:]]' "$cfg" | cut -d: -f1)
[ -n "$line" ]
# Torn before the first entry's kernel line, then what a half-written
# block holds.
head -n "$((line - 1))" "$cfg" > "$work/grub.cfg"
printf 'lin\000\377\376\375 }{ \033[\000\000' >> "$work/grub.cfg"
cat "$work/grub.cfg" > "$cfg"
umount "$mnt"
rmdir "$mnt"
mnt=
mv "$out/corrupt-grub-disk.img.tmp" "$out/corrupt-grub-disk.img"
rm -rf --one-file-system "$work"
log "done"
