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

"""``mounts.mounted_image`` on real disk images, through loop devices.

No testbed: each test builds a small GPT disk image (ESP, XBOOTLDR, ext4
or btrfs roots laid out as Fedora, Ubuntu and openSUSE do), attaches it
to a loop device and mounts it as the agent does. It checks what is
mounted where, that every mount is read-only (nodev, nosuid, noexec),
that nothing stays mounted, and that the image file's bytes are the same
afterwards (a replayed journal or log would change them).

Needs root, loop devices, and: sgdisk (gdisk), mkfs.ext4 and dumpe2fs
(e2fsprogs), mkfs.btrfs and btrfs (btrfs-progs), mkfs.vfat (dosfstools),
losetup, partx, lsblk, blkid (util-linux, fdisk). Without them the tests
are skipped. Where the kernel has no vfat, the vfat filesystems are
skipped and said so.
"""

import contextlib
import fcntl
import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
import time

import testtools

from ipa_kexec import mounts
from tests.unit.agent import trees

TOOLS = ('sgdisk', 'mkfs.ext4', 'dumpe2fs', 'mkfs.btrfs', 'btrfs',
         'mkfs.vfat', 'losetup', 'partx', 'lsblk', 'blkid', 'mount',
         'umount')
ESP = 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b'
XBOOTLDR = 'bc13c2ff-59e6-4262-a352-b275fd6f7172'
LINUX = '0fc63daf-8483-4772-8e79-3d69d8477de4'
OS_RELEASE = 'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=40\n'
# EXT4_IOC_SHUTDOWN and EXT4_GOING_FLAGS_LOGFLUSH: the journal is
# committed but not checkpointed, as after a crash.
EXT4_IOC_SHUTDOWN = 0x8004587d
EXT4_GOING_FLAGS_LOGFLUSH = 1
MiB = 1024 * 1024


def _filesystems():
    try:
        with open('/proc/filesystems') as f:
            return {line.split()[-1] for line in f if line.strip()}
    except OSError:
        return set()


FILESYSTEMS = _filesystems()
MISSING = [t for t in TOOLS if shutil.which(t) is None]
HAS_VFAT = 'vfat' in FILESYSTEMS


def run(*cmd, **kwargs):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=120,
                          **kwargs).stdout.decode()


def sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(MiB), b''):
            digest.update(block)
    return digest.hexdigest()


def mountinfo():
    """[(mount point, per-mount options, source, super options)]."""
    result = []
    with open('/proc/self/mountinfo') as f:
        for line in f:
            left, right = line.split(' - ', 1)
            fields, rfields = left.split(), right.split()
            result.append((fields[4].replace('\\040', ' '),
                           set(fields[5].split(',')), rfields[1],
                           set(rfields[2].split(','))))
    return result


@testtools.skipIf(os.geteuid() != 0, 'needs root (loop devices, mount)')
@testtools.skipIf(MISSING, 'missing tools: %s' % ' '.join(MISSING))
@testtools.skipIf(not {'ext4', 'btrfs'} <= FILESYSTEMS,
                  'the kernel lacks ext4 or btrfs')
class TestImageMounts(testtools.TestCase):

    def setUp(self):
        super(TestImageMounts, self).setUp()
        self.dir = tempfile.mkdtemp(prefix='ik-image-mounts-')
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.image = os.path.join(self.dir, 'disk.img')

    # Building the image.

    def disk(self, partitions):
        """A GPT disk image on a loop device, its partitions' devices.

        :param partitions: [(size in MiB or 0 for the rest, type GUID)].
        """
        with open(self.image, 'wb') as f:
            f.truncate(sum(size or 200 for size, _t in partitions) * MiB
                       + 4 * MiB)
        cmd = ['sgdisk']
        for n, (size, guid) in enumerate(partitions, 1):
            cmd += ['-n', '%d:0:%s' % (n, '+%dM' % size if size else '0'),
                    '-t', '%d:%s' % (n, guid)]
        run(*(cmd + [self.image]))
        self.loop = run('losetup', '-f', '--show', '-P',
                        self.image).strip()
        self.addCleanup(run, 'losetup', '-d', self.loop)
        parts = ['%sp%d' % (self.loop, n)
                 for n in range(1, len(partitions) + 1)]
        deadline = time.monotonic() + 2
        while (not all(os.path.exists(p) for p in parts)
               and time.monotonic() < deadline):
            time.sleep(0.1)
        if not all(os.path.exists(p) for p in parts):
            # A kernel without the GPT parser: userspace adds them.
            run('partx', '-a', self.loop)
            self.addCleanup(subprocess.run, ['partx', '-d', self.loop])
        return parts

    @contextlib.contextmanager
    def writable(self, device, *opts):
        """The test's own read-write mount, to fill a filesystem."""
        target = tempfile.mkdtemp(dir=self.dir)
        run('mount', *(list(opts) + [device, target]))
        try:
            yield target
        finally:
            run('umount', target)
            os.rmdir(target)

    def mkfs(self, fstype, device, files=None, label=None):
        if fstype == 'vfat':
            run('mkfs.vfat', '-F', '32', device)
        elif fstype == 'ext4':
            run('mkfs.ext4', '-q', '-F', device)
        else:
            run('mkfs.btrfs', '-q', '-f', device)
        if files is not None and (fstype != 'vfat' or HAS_VFAT):
            with self.writable(device) as target:
                trees.build(target, files)

    def uuid(self, device):
        return run('blkid', '-p', '-s', 'UUID', '-o', 'value',
                   device).strip()

    def root_files(self, fstab):
        return {'/etc/os-release': OS_RELEASE, '/etc/fstab': fstab,
                '/boot': None}

    def btrfs(self, device, subvols, files, default=None):
        """Subvolumes (created in order) and files, from the top level."""
        self.mkfs('btrfs', device)
        with self.writable(device) as top:
            for subvol in subvols:
                path = os.path.join(top, subvol)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                run('btrfs', 'subvolume', 'create', path)
            trees.build(top, files)
            if default:
                run('btrfs', 'subvolume', 'set-default',
                    os.path.join(top, default))

    # Mounting it as the agent does.

    def mount_image(self):
        """mounted_image on the loop device; what it showed, checked."""
        run('blockdev', '--flushbufs', self.loop)
        before = sha256(self.image)
        seen = {}
        with mounts.mounted_image(self.loop) as (rootfs, device, uuid):
            seen['rootfs'] = rootfs
            seen['device'] = device
            seen['subvol'] = rootfs.subvol
            seen['mounts'] = {'/' + '/'.join(k): v
                              for k, v in rootfs.mounts.items()}
            seen['os_release'] = rootfs.read_text('/etc/os-release')
            seen['boot'] = rootfs.listdir('/boot')
            ours = [m for m in mountinfo() if m[2].startswith(self.loop)]
            seen['sources'] = {m[0]: m[2] for m in ours}
            for point, opts, source, super_opts in ours:
                self.assertIn('ro', opts, point)
                self.assertTrue({'nodev', 'nosuid', 'noexec'} <= opts,
                                (point, opts))
                self.assertIn('ro', super_opts, point)
                if 'btrfs' in run('blkid', '-p', '-s', 'TYPE', '-o',
                                  'value', source):
                    self.assertIn('rescue=nologreplay', super_opts)
        self.assertEqual([], [m for m in mountinfo()
                              if m[2].startswith(self.loop)])
        for point in seen['sources']:
            self.assertFalse(os.path.exists(point))
        run('blockdev', '--flushbufs', self.loop)
        self.assertEqual(before, sha256(self.image),
                         'the image changed while mounted')
        return seen

    # The tests.

    def test_systemd_boot_layout(self):
        esp, xbootldr, root = self.disk([(64, ESP), (64, XBOOTLDR),
                                         (0, LINUX)])
        self.mkfs('vfat', esp, {'/loader/loader.conf': 'default a\n'})
        # XBOOTLDR is vfat as a rule; any filesystem the loader reads
        # will do, so ext4 where this kernel has no vfat.
        boot_fs = 'vfat' if HAS_VFAT else 'ext4'
        self.mkfs(boot_fs, xbootldr,
                  {'/loader/entries/a.conf': 'title A\nlinux /vmlinuz\n',
                   '/vmlinuz': 'kernel'})
        # The fstab names neither: found by partition type.
        self.mkfs('ext4', root,
                  self.root_files('UUID=%s / ext4 defaults 0 1\n'
                                  % self.uuid(root)))
        seen = self.mount_image()
        self.assertEqual(root, seen['device'])
        self.assertIn('Fedora', seen['os_release'])
        expected = {'/boot': xbootldr}
        if HAS_VFAT:
            expected['/efi'] = esp
        self.assertEqual(expected, {m: seen['sources'][h]
                                    for m, h in seen['mounts'].items()})
        self.assertEqual(['loader', 'vmlinuz'],
                         [n for n in seen['boot'] if n != 'lost+found'])
        self.assertIsNone(seen['subvol'])

    @testtools.skipUnless(HAS_VFAT, 'this kernel has no vfat')
    def test_esp_from_fstab(self):
        for mountpoint in ('/boot/efi', '/efi', '/boot'):
            esp, root = self.disk([(64, ESP), (0, LINUX)])
            self.mkfs('vfat', esp, {'/EFI/BOOT/BOOTX64.EFI': 'x'})
            fstab = ('UUID=%s / ext4 defaults 0 1\nUUID=%s %s vfat '
                     'umask=0077 0 1\n' % (self.uuid(root), self.uuid(esp),
                                           mountpoint))
            self.mkfs('ext4', root, self.root_files(fstab))
            seen = self.mount_image()
            self.assertEqual([mountpoint], list(seen['mounts']))
            run('losetup', '-d', self.loop)

    def test_ext4_dirty_journal_not_replayed(self):
        (root,) = self.disk([(0, LINUX)])
        self.mkfs('ext4', root)
        with self.writable(root) as target:
            trees.build(target, self.root_files(''))
            os.sync()
            trees.build(target, {'/boot/vmlinuz-6': 'kernel'})
            fd = os.open(target, os.O_RDONLY)
            try:
                fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN,
                            struct.pack('I', EXT4_GOING_FLAGS_LOGFLUSH))
            finally:
                os.close(fd)
        self.assertIn('needs_recovery', run('dumpe2fs', '-h', root))
        seen = self.mount_image()
        self.assertIn('Fedora', seen['os_release'])
        # Not replayed: the journal still waits for its recovery.
        self.assertIn('needs_recovery', run('dumpe2fs', '-h', root))
        # The check above can fail: a plain read-only mount replays it.
        before = sha256(self.image)
        with self.writable(root, '-o', 'ro'):
            pass
        run('blockdev', '--flushbufs', self.loop)
        self.assertNotEqual(before, sha256(self.image))

    def test_btrfs_fedora(self):
        (part,) = self.disk([(0, LINUX)])
        files = {'/root' + p: c for p, c in self.root_files(
            'UUID=x / btrfs subvol=root,compress=zstd:1 0 0\n').items()}
        files['/root/boot/vmlinuz-6'] = 'kernel'
        files['/home/user/.bashrc'] = ''
        self.btrfs(part, ['root', 'home'], files)
        seen = self.mount_image()
        self.assertEqual('root', seen['subvol'])
        self.assertEqual(['vmlinuz-6'], seen['boot'])
        self.assertTrue(seen['rootfs'].root.endswith('/root'))

    def test_btrfs_ubuntu(self):
        (part,) = self.disk([(0, LINUX)])
        files = {'/@' + p: c for p, c in self.root_files('').items()}
        self.btrfs(part, ['@', '@home'], files)
        self.assertEqual('@', self.mount_image()['subvol'])

    def test_btrfs_opensuse_default_snapshot(self):
        (part,) = self.disk([(0, LINUX)])
        snap = '@/.snapshots/1/snapshot'
        files = {'/' + snap + p: c for p, c in self.root_files('').items()}
        self.btrfs(part, ['@', '@/.snapshots', snap, '@/home'], files,
                   default=snap)
        seen = self.mount_image()
        self.assertEqual(snap, seen['subvol'])
        # The default subvolume is the root: mounted as it is.
        self.assertEqual(1, len(seen['sources']))
