# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""Asks a boot loader (or its own tool) what a boot tree boots, and writes
the case's case.json from its answer.

Run by build.sh on the disk the tree was written on, inside the chroot
that wrote it:

* ``grub``: grub's emulator (grub-emu, the same grub 2.06 as grub-pc)
  runs the image's grub.cfg through its normal menu, which picks the
  default entry the way grub does (``default``, ``saved_entry``,
  ``next_entry``, submenu id paths) and runs it when the menu times out.
  grub-emu 2.06 has no ``linux`` or ``initrd`` command (no loader for the
  emulated platform), so a wrapper grub.cfg defines functions of those
  names that print each argument as grub's own parser split it, and the
  root device it resolves the path on (on the console: the image's
  grub.cfg may switch to gfxterm, which grub-emu draws with SDL). The
  command line is then what grub's x86 ``linux`` command builds from
  those arguments: ``BOOT_IMAGE=`` and all its arguments, the kernel
  path first, joined by grub_create_loader_cmdline
  (grub-core/lib/cmdline.c).
* ``bootctl``: systemd's ``bootctl list`` on the ESP, which prints the
  entries systemd-boot would offer, marking the default (on a UKI too,
  with ``objdump -h`` showing its sections).
* ``extlinux``: U-Boot itself (Debian's u-boot-qemu) in QEMU, booting
  the disk with its distro boot.

    judge.py grub --chroot DIR --loop DEV --disk hd0 --case-dir DIR
        --description TEXT --partition N=/MOUNTPOINT...
        [--mount /boot=boot]
"""

import argparse
import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time

GRUB_TIMEOUT = 60
BOOTCTL_TIMEOUT = 60
UBOOT_TIMEOUT = 120
# What U-Boot prints when the chosen label's kernel fails to boot (a
# stub): the label is done.
UBOOT_DONE = 'Kernel loading failed'
# What grub's menu prints when the chosen entry ran and nothing was
# loaded (the functions below load nothing): the entry is done.
GRUB_DONE = 'Failed to boot both default and fallback entries'

WRAPPER = r"""# The judge's grub.cfg: loads the image's own, with linux and
# initrd printing what grub passes them.
function linux {
  terminal_output console
  echo "JUDGE root $root"
  for a in "$@"; do echo "JUDGE linux <$a>"; done
  if test -f "$1"; then echo "JUDGE found <$1>"; fi
}
function initrd {
  terminal_output console
  echo "JUDGE root $root"
  for a in "$@"; do
    echo "JUDGE initrd <$a>"
    if test -f "$a"; then echo "JUDGE found <$a>"; fi
  done
}
set root=%(root)s
echo "JUDGE start"
configfile %(config)s
"""


def loader_cmdline(args):
    """The command line grub's x86 linux loader builds from arguments.

    grub_create_loader_cmdline (grub 2.06, grub-core/lib/cmdline.c): an
    argument with a space is wrapped in double quotes; backslash, single
    and double quotes in it are escaped with a backslash.
    """
    out = []
    for arg in args:
        text = re.sub(r'([\\\'"])', r'\\\1', arg)
        if ' ' in arg:
            text = '"%s"' % text
        out.append(text)
    return ' '.join(out)


def package_versions(chroot, packages):
    out = subprocess.run(
        ['chroot', chroot, 'dpkg-query', '-W', '-f', '${Package} ${Version}\n']
        + packages, check=True, capture_output=True, text=True).stdout
    return ', '.join(line for line in out.splitlines() if line)


def run_pty(argv, timeout, done=None):
    """Runs a program on a pseudo-terminal and returns its output.

    Reads until DONE shows, the program exits or TIMEOUT passes; the
    program is then killed.
    """
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.setsid()
        except OSError:
            pass
        os.execvp(argv[0], argv)
    out = b''
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
                if done and done.encode() in out:
                    break
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)
    return out.decode('utf-8', 'replace')


def clean_terminal(text):
    """Terminal output without escape sequences and carriage returns."""
    text = re.sub(r'\x1b\[[0-9;?]*[A-Za-z]', '', text)
    text = re.sub(r'\x1b[()][A-Za-z0-9]', '', text)
    return text.replace('\r', '')


def judge_grub(args):
    chroot = args.chroot
    parts = dict(p.split('=', 1) for p in args.partition)
    judge_dir = os.path.join(chroot, 'tmp', 'grub-judge')
    shutil.rmtree(judge_dir, ignore_errors=True)
    os.makedirs(judge_dir)
    os.symlink('/usr/lib/grub/x86_64-emu',
               os.path.join(judge_dir, 'x86_64-emu'))
    with open(os.path.join(judge_dir, 'device.map'), 'w') as f:
        f.write('(%s) %s\n' % (args.disk, args.loop))
    # Where grub-install put grub's directory: the core image's root
    # and prefix.
    grub_part = args.grub_partition
    grub_dir = '/boot/grub' if parts[grub_part] == '/' else '/grub'
    # A btrfs root in a subvolume: grub names paths from the top level.
    subvols = dict(v.split('=', 1) for v in args.subvol)
    if grub_part in subvols:
        grub_dir = '/' + subvols[grub_part] + grub_dir
    root = '(%s,gpt%s)' % (args.disk, grub_part)
    # $prefix/grubenv is what the image's grub.cfg loads (load_env):
    # a copy of the image's, beside the wrapper that is grub's prefix.
    env = os.path.join(chroot, 'boot/grub/grubenv')
    if os.path.exists(env):
        shutil.copy(env, os.path.join(judge_dir, 'grubenv'))
    with open(os.path.join(judge_dir, 'grub.cfg'), 'w') as f:
        f.write(WRAPPER % {'root': root,
                           'config': root + grub_dir + '/grub.cfg'})
    # The image's grub.cfg switches to gfxterm (as on a real screen);
    # grub-emu draws it with SDL, which needs no display when told so.
    argv = ['chroot', chroot, 'env', 'SDL_VIDEODRIVER=dummy', 'grub-emu',
            '-r', 'host', '-d', '/tmp/grub-judge',
            '-m', '/tmp/grub-judge/device.map']
    started = time.monotonic()
    output = clean_terminal(run_pty(argv, GRUB_TIMEOUT, GRUB_DONE))
    elapsed = time.monotonic() - started
    shutil.rmtree(judge_dir, ignore_errors=True)
    lines = [line.strip() for line in output.splitlines()
             if line.strip().startswith('JUDGE ')]
    if 'JUDGE start' not in lines or GRUB_DONE not in output:
        sys.exit('grub-emu did not run the entry (%.0f s):\n%s'
                 % (elapsed, output[-3000:]))
    kernel_args, initrds, root_dev, found = [], [], None, set()
    for line in lines:
        word, _, rest = line[len('JUDGE '):].partition(' ')
        value = rest[1:-1] if rest.startswith('<') else rest
        if word == 'root':
            root_dev = value
        elif word == 'linux':
            kernel_args.append(value)
        elif word == 'initrd':
            initrds.append(value)
        elif word == 'found':
            found.add(value)
    if not kernel_args:
        sys.exit('grub ran no linux command:\n%s' % '\n'.join(lines))
    for path in [kernel_args[0]] + initrds:
        if path not in found:
            sys.exit('grub does not find %s on (%s)' % (path, root_dev))
    match = re.match(r'^\(?%s,gpt(\d+)\)?$' % re.escape(args.disk),
                     root_dev or '')
    if not match:
        sys.exit('grub loads from %s, not a partition of the disk'
                 % root_dev)
    mountpoint = parts[match.group(1)]
    subvol = subvols.get(match.group(1))

    def image_path(path):
        if subvol:
            prefix = '/' + subvol + '/'
            if not path.startswith(prefix):
                sys.exit('%s is outside the subvolume %s' % (path, subvol))
            path = path[len(prefix) - 1:]
        return os.path.normpath(os.path.join(mountpoint, path.lstrip('/')))

    printed = [line[len('JUDGE '):] for line in lines
               if line != 'JUDGE start']
    # grub's x86 linux command starts the command line with BOOT_IMAGE=
    # and the kernel path as written (LINUX_IMAGE, grub_cmd_linux in
    # grub-core/loader/i386/linux.c): its arguments are all of the
    # command's, the path included.
    expected = {
        'kernel': image_path(kernel_args[0]),
        'initrds': [image_path(p) for p in initrds],
        'cmdline': 'BOOT_IMAGE=' + loader_cmdline(kernel_args),
        'source': 'grub',
    }
    judge = {
        'tool': 'grub-emu (%s), the image grub.cfg run by its normal menu '
                'until the default entry boots; linux/initrd replaced by '
                'functions that print their arguments'
                % package_versions(chroot, ['grub-emu']),
        'printed': printed,
    }
    write_case(args, judge, expected)


def bootctl_entries(text):
    """The entries of ``bootctl list``.

    Blocks of ``key: value`` lines; ``default`` is set on the one whose
    title bootctl marks ``(default)``.
    """
    entries, current = [], None
    for line in text.splitlines():
        if not line.strip():
            current = None
            continue
        key, sep, value = line.strip().partition(': ')
        if not sep:
            continue
        if current is None:
            current = {'default': False}
            entries.append(current)
        if key == 'title':
            # Marks bootctl appends: "(default)", "(selected)",
            # "(not reported/new)", "(reported/absent)".
            # (kept in the title, as printed).
            marks = re.findall(r' \(([a-z /]+)\)', value)
            current['default'] = 'default' in marks
        current.setdefault(key, value)
    return [e for e in entries if 'id' in e]


def judge_bootctl(args):
    # The ESP is ext4 here (see cases.sh, mount_fresh).
    argv = ['chroot', args.chroot, 'env', 'SYSTEMD_PAGER=cat',
            'SYSTEMD_COLORS=0', 'SYSTEMD_RELAX_ESP_CHECKS=1',
            'SYSTEMD_RELAX_XBOOTLDR_CHECKS=1', 'bootctl',
            '--esp-path=' + args.esp, '--no-variables', 'list']
    if args.boot_path:
        argv[-2:-2] = ['--boot-path=' + args.boot_path]
    proc = subprocess.run(argv, capture_output=True, text=True,
                          timeout=BOOTCTL_TIMEOUT)
    output = proc.stdout
    if proc.returncode != 0:
        sys.exit('bootctl list failed (%d): %s%s' % (
            proc.returncode, proc.stdout, proc.stderr))
    entries = bootctl_entries(output)
    defaults = [e for e in entries if e['default']]
    if len(defaults) != 1:
        sys.exit('bootctl marks %d default entries:\n%s' % (
            len(defaults), output))
    chosen = defaults[0]
    # An entry's paths are relative to the partition that holds it (the
    # ESP or XBOOTLDR): the part of its source before loader/entries or
    # EFI/Linux.
    source = chosen['source']
    for marker in ('/loader/entries/', '/EFI/Linux/'):
        if marker in source:
            partition = source[:source.index(marker)] or '/'
            break
    else:
        sys.exit('bootctl names no partition for %s' % source)

    def on_esp(path):
        return os.path.normpath(os.path.join(partition, path.lstrip('/')))
    if args.uki:
        expected = {'kernel': args.uki, 'initrds': [], 'uki': args.uki,
                    'cmdline': chosen.get('options', ''), 'source': 'uki'}
        if on_esp(chosen['linux']) != args.uki:
            sys.exit('bootctl boots %s, not the UKI' % chosen['linux'])
        sections = subprocess.run(
            ['chroot', args.chroot, 'objdump', '-h', args.uki],
            check=True, capture_output=True, text=True).stdout
    else:
        expected = {
            'kernel': on_esp(chosen['linux']),
            'initrds': [on_esp(p) for p in chosen.get('initrd', '').split()],
            'cmdline': chosen.get('options', ''),
            'source': 'systemd-boot',
        }
        sections = None
    judge = {
        'tool': '%s (%s)' % (' '.join(argv[argv.index('bootctl'):]),
                             package_versions(args.chroot, ['systemd'])),
        # Each entry's title and id, and the whole default one.
        'printed': [
            '%s: %s' % (key, value)
            for entry in entries
            for key, value in entry.items()
            if key != 'default' and (entry['default'] or
                                     key in ('title', 'id'))],
    }
    if sections:
        judge['objdump -h'] = [
            ' '.join(line.split()[:3]) for line in sections.splitlines()
            if re.match(r'\s*\d+ \.', line)]
    write_case(args, judge, expected)


def judge_extlinux(args):
    """U-Boot (Debian's u-boot-qemu, x86_64) boots the disk in QEMU.

    Its distro boot finds extlinux.conf on the bootable partition and
    runs it (pxe_utils): it prints the label it chose, retrieves the
    initrd then the kernel ("Retrieving file:", label_boot() in U-Boot
    2023.01 boot/pxe_utils.c) and prints the command line ("append:")
    before it fails on the stub kernel.
    """
    rom = os.path.join(args.chroot, 'usr/lib/u-boot/qemu-x86_64/u-boot.rom')
    argv = ['qemu-system-x86_64', '-bios', rom, '-m', '256',
            '-drive', 'file=%s,format=raw,if=ide,snapshot=on' % args.image,
            '-nographic', '-nic', 'none', '-no-reboot']
    started = time.monotonic()
    output = clean_terminal(run_pty(argv, UBOOT_TIMEOUT, UBOOT_DONE))
    elapsed = time.monotonic() - started
    lines = output.splitlines()
    try:
        found = max(i for i, line in enumerate(lines)
                    if line.startswith('Found ') and 'extlinux' in line)
        append = min(i for i, line in enumerate(lines)
                     if i > found and line.startswith('append: '))
    except ValueError:
        sys.exit('U-Boot did not run extlinux.conf (%.0f s):\n%s'
                 % (elapsed, output[-3000:]))
    scans = [re.search(r'Scanning \S+ \d+:(\d+)', line)
             for line in lines[:found]]
    partition = [m.group(1) for m in scans if m][-1]
    mountpoint = dict(p.split('=', 1) for p in args.partition)[partition]
    files = [line[len('Retrieving file: '):]
             for line in lines[found + 1:append]
             if line.startswith('Retrieving file: ')]
    # The first file retrieved is extlinux.conf itself.
    files = [f for f in files if not f.endswith('extlinux.conf')]
    if not files:
        sys.exit('U-Boot retrieved no kernel:\n%s' % '\n'.join(
            lines[found:append + 1]))

    def image_path(path):
        return os.path.normpath(os.path.join(mountpoint, path.lstrip('/')))

    expected = {
        'kernel': image_path(files[-1]),
        'initrds': [image_path(f) for f in files[:-1]],
        'cmdline': lines[append][len('append: '):],
        'source': 'extlinux',
    }
    judge = {
        'tool': 'U-Boot %s (qemu-x86_64) distro boot in QEMU' %
                package_versions(args.chroot, ['u-boot-qemu']),
        'printed': [line for line in lines[found:append + 1]
                    if line.strip()],
    }
    write_case(args, judge, expected)


def write_case(args, judge, expected):
    case = {
        'description': args.description,
        'built_by': package_versions(args.chroot, args.built_by),
        'judge': judge,
        'mounts': dict(m.split('=', 1) for m in args.mount),
        'expected': expected,
    }
    if args.note:
        case['note'] = args.note
    # The agent finds a root in a btrfs subvolume and says so (RootFS's
    # subvol): the test gives it the same.
    root_parts = [p.split('=', 1)[0] for p in args.partition
                  if p.split('=', 1)[1] == '/']
    subvols = dict(v.split('=', 1) for v in args.subvol)
    for part in root_parts:
        if part in subvols:
            case['subvol'] = subvols[part]
    with open(os.path.join(args.case_dir, 'case.json'), 'w') as f:
        json.dump(case, f, indent=2, sort_keys=True)
        f.write('\n')
    print('%s: %s' % (os.path.basename(args.case_dir),
                      json.dumps(expected, sort_keys=True)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('judge', choices=['grub', 'bootctl', 'extlinux'])
    parser.add_argument('--esp')
    parser.add_argument('--boot-path', help='the XBOOTLDR partition')
    parser.add_argument('--uki')
    parser.add_argument('--image', help='the disk image, for QEMU')
    parser.add_argument('--chroot', required=True)
    parser.add_argument('--case-dir', required=True)
    parser.add_argument('--description', required=True)
    parser.add_argument('--note')
    parser.add_argument('--built-by', action='append', default=[])
    parser.add_argument('--mount', action='append', default=[],
                        help='IMAGE_PATH=SUBDIR of a separate filesystem')
    parser.add_argument('--loop')
    parser.add_argument('--disk', default='hd0')
    parser.add_argument('--partition', action='append', default=[],
                        help='N=MOUNTPOINT: partition N is mounted there')
    parser.add_argument('--subvol', action='append', default=[],
                        help='N=SUBVOLUME: partition N is mounted from '
                             'that btrfs subvolume')
    parser.add_argument('--grub-partition',
                        help='the partition holding grub\'s directory')
    args = parser.parse_args()
    {'grub': judge_grub, 'bootctl': judge_bootctl,
     'extlinux': judge_extlinux}[args.judge](args)


if __name__ == '__main__':
    main()
