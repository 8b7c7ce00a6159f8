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

"""Mounting the image: which filesystems, where, with which options.

A fake node stands in for the disk and the kernel's mount table (lsblk,
blkid, mount, umount); the timeouts run real processes. The real
devices are in tests/functional/test_image_mounts.py.
"""

import glob
import os
import shutil
import tempfile
import time

import fixtures
from ironic_python_agent.tests.unit import base
from ironic_python_agent import utils
from oslo_concurrency import processutils

from ipa_kexec import errors
from ipa_kexec import mounts
from ironic_kexec import protocol
from tests.unit.agent import test_kexec_tool
from tests.unit.agent import trees

ESP = mounts.ESP_TYPES[0]
XBOOTLDR = mounts.XBOOTLDR_TYPES[0]
LINUX = '0fc63daf-8483-4772-8e79-3d69d8477de4'
OS_RELEASE = {'/etc/os-release': trees.OS_RELEASE_DEBIAN}


def root_tree(fstab='', boot=True):
    tree = dict(OS_RELEASE)
    tree['/etc/fstab'] = fstab
    if boot:
        tree['/boot'] = None
    return tree


class Part(object):
    def __init__(self, fstype, tree, uuid=None, parttype=LINUX,
                 default_subvol=''):
        self.fstype = fstype
        self.tree = tree
        self.uuid = uuid
        self.parttype = parttype
        # btrfs: the default subvolume's path from the top level.
        self.default_subvol = default_subvol


class FakeNode(object):
    """The install disk /dev/vda, its partitions, and the mount table."""

    def __init__(self, parts, udev=True, old_btrfs=False):
        self.parts = parts
        self.udev = udev
        self.old_btrfs = old_btrfs
        self.calls = []
        # mount point -> (device, subvolume path)
        self.mounted = {}

    def lsblk(self):
        lines = ['KNAME="vda" TYPE="disk" FSTYPE="" UUID="" PARTUUID="" '
                 'LABEL="" PARTLABEL="" PARTTYPE=""']
        for path, part in sorted(self.parts.items()):
            kname = path[len('/dev/'):]
            n = kname[len('vda'):]
            if self.udev:
                lines.append('KNAME="%s" TYPE="part" FSTYPE="%s" UUID="%s" '
                             'PARTUUID="pu-%s" LABEL="" PARTLABEL="p%s" '
                             'PARTTYPE="%s"' % (kname, part.fstype,
                                                part.uuid or '', n, n,
                                                part.parttype))
            else:
                lines.append('KNAME="%s" TYPE="part" FSTYPE="" UUID="" '
                             'PARTUUID="" LABEL="" PARTLABEL="" PARTTYPE=""'
                             % kname)
        return '\n'.join(lines) + '\n'

    def __call__(self, *cmd, **kwargs):
        self.calls.append(cmd)
        assert 'timeout' in kwargs, cmd
        name = cmd[0]
        if name == 'lsblk':
            return self.lsblk(), ''
        if name in ('vgchange', 'mdadm'):
            raise processutils.ProcessExecutionError(exit_code=5)
        if name == 'blkid':
            part = self.parts.get(cmd[-1])
            if part is None:
                raise processutils.ProcessExecutionError(exit_code=2)
            return ('DEVNAME=%s\nTYPE=%s\nUUID=%s\nPART_ENTRY_TYPE=%s\n'
                    'PART_ENTRY_UUID=pu\n' % (cmd[-1], part.fstype,
                                              part.uuid, part.parttype)), ''
        if name == 'mount':
            return self.mount(cmd)
        if name == 'umount':
            self.mounted.pop(cmd[1])
            for entry in os.listdir(cmd[1]):
                path = os.path.join(cmd[1], entry)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
            return '', ''
        raise AssertionError('unexpected command %s' % (cmd,))

    def mount(self, cmd):
        opts = cmd[cmd.index('-o') + 1].split(',')
        device, target = cmd[-2], cmd[-1]
        part = self.parts.get(device)
        if part is None or not part.tree:
            raise processutils.ProcessExecutionError(exit_code=32)
        subvol = ''
        if part.fstype == 'btrfs':
            if self.old_btrfs and 'rescue=nologreplay' in opts:
                raise processutils.ProcessExecutionError(
                    exit_code=32, stderr='bad option')
            assert ('rescue=nologreplay' in opts
                    or 'nologreplay' in opts), opts
            if 'subvolid=5' not in opts:
                subvol = part.default_subvol
        prefix = '/' + subvol if subvol else ''
        trees.build(target, {p[len(prefix):]: c
                             for p, c in part.tree.items()
                             if p.startswith(prefix + '/')})
        self.mounted[target] = (device, subvol)
        return '', ''

    def mounts(self):
        return [c for c in self.calls if c[0] == 'mount']


class MountsTestCase(base.IronicAgentTest):

    def node(self, parts, **kwargs):
        node = FakeNode(parts, **kwargs)
        self.patch(utils, 'execute', node)
        self.patch(mounts, 'mounted_subvol',
                   lambda target: node.mounted[target][1])
        return node

    def mount_image(self, node, root_uuid=None):
        """Mount, and return what was mounted where, then check cleanup."""
        with mounts.mounted_image('/dev/vda', root_uuid) as image:
            rootfs, device, uuid = image
            found = {'device': device, 'subvol': rootfs.subvol,
                     'root': node.mounted[self._mount_of(node, rootfs)],
                     'mounts': {'/' + '/'.join(k): node.mounted[v][0]
                                for k, v in rootfs.mounts.items()},
                     'rootfs': rootfs}
            found['boot_files'] = sorted(
                os.listdir(rootfs.resolve('/boot').host_path)
                if rootfs.is_dir('/boot') else [])
        self.assertEqual({}, node.mounted)
        for cmd in node.mounts():
            self.assertFalse(os.path.exists(cmd[-1]))
        return found

    @staticmethod
    def _mount_of(node, rootfs):
        for target in node.mounted:
            if rootfs.root == target or rootfs.root.startswith(target + '/'):
                return target
        raise AssertionError('root %s is not mounted' % rootfs.root)


class TestBootMounts(MountsTestCase):

    def test_esp_where_fstab_puts_it(self):
        for mountpoint in ('/boot/efi', '/efi', '/boot'):
            with self.subTest(mountpoint=mountpoint):
                fstab = ('UUID=r / ext4 defaults 0 1\n'
                         'UUID=E5P %s vfat umask=0077 0 2\n' % mountpoint)
                node = self.node({
                    '/dev/vda1': Part('vfat', {'/EFI/BOOT/BOOTX64.EFI': 'x',
                                               '/loader/loader.conf': ''},
                                      'E5P', ESP),
                    '/dev/vda2': Part('ext4', root_tree(fstab), 'r')})
                found = self.mount_image(node)
                self.assertEqual({mountpoint: '/dev/vda1'}, found['mounts'])
                self.assertEqual(('mount', '-o', 'ro,nodev,nosuid,noexec',
                                  '-t', 'vfat', '/dev/vda1'),
                                 node.mounts()[-1][:-1])

    def test_xbootldr_by_type_and_esp_at_efi(self):
        # systemd-boot with an XBOOTLDR partition; the fstab names
        # neither (systemd-gpt-auto-generator mounts them).
        node = self.node({
            '/dev/vda1': Part('vfat', {'/loader/loader.conf': ''}, 'E',
                              ESP),
            '/dev/vda2': Part('vfat', {'/loader/entries/a.conf': 'title a\n'},
                              'X', XBOOTLDR.upper()),
            '/dev/vda3': Part('ext4', root_tree('UUID=r / ext4 0 1\n'), 'r')})
        found = self.mount_image(node)
        self.assertEqual({'/boot': '/dev/vda2', '/efi': '/dev/vda1'},
                         found['mounts'])
        self.assertEqual(['loader'], found['boot_files'])
        self.assertEqual('/dev/vda3', found['device'])

    def test_fstab_boot_wins_over_xbootldr(self):
        fstab = 'UUID=r / ext4 0 1\nUUID=b /boot ext4 defaults 0 2\n'
        node = self.node({
            '/dev/vda1': Part('ext4', {'/vmlinuz-6': 'k'}, 'b'),
            '/dev/vda2': Part('vfat', {'/x': ''}, 'X', XBOOTLDR),
            '/dev/vda3': Part('ext4', root_tree(fstab), 'r')})
        found = self.mount_image(node)
        self.assertEqual({'/boot': '/dev/vda1'}, found['mounts'])

    def test_esp_by_type_at_empty_boot(self):
        node = self.node({
            '/dev/vda1': Part('vfat', {'/loader/loader.conf': ''}, 'E', ESP),
            '/dev/vda2': Part('ext4', root_tree(''), 'r')})
        found = self.mount_image(node)
        self.assertEqual({'/boot': '/dev/vda1'}, found['mounts'])

    def test_esp_by_type_not_over_a_full_boot(self):
        tree = root_tree('')
        tree['/boot/vmlinuz-6'] = 'k'
        node = self.node({
            '/dev/vda1': Part('vfat', {'/EFI/x': ''}, 'E', ESP),
            '/dev/vda2': Part('ext4', tree, 'r')})
        found = self.mount_image(node)
        self.assertEqual({}, found['mounts'])
        self.assertEqual(['vmlinuz-6'], found['boot_files'])

    def test_fstab_device_not_on_install_disk(self):
        fstab = ('UUID=r / ext4 0 1\nUUID=elsewhere /boot/efi vfat 0 1\n'
                 '/dev/sdb1 /boot ext4 0 1\n')
        node = self.node({'/dev/vda1': Part('ext4', root_tree(fstab), 'r')})
        found = self.mount_image(node)
        self.assertEqual({}, found['mounts'])
        self.assertEqual(1, len(node.mounts()))

    def test_without_udev_blkid_probes(self):
        fstab = 'UUID=r / ext4 0 1\n'
        node = self.node({
            '/dev/vda1': Part('vfat', {'/loader/loader.conf': ''}, 'E', ESP),
            '/dev/vda2': Part('vfat', {'/loader/entries/a.conf': ''}, 'X',
                              XBOOTLDR),
            '/dev/vda3': Part('ext4', root_tree(fstab), 'r')}, udev=False)
        found = self.mount_image(node)
        self.assertEqual({'/boot': '/dev/vda2', '/efi': '/dev/vda1'},
                         found['mounts'])
        self.assertEqual(4, len([c for c in node.calls if c[0] == 'blkid']))


class TestBtrfs(MountsTestCase):

    def fedora(self):
        tree = {'/root' + p: c for p, c in root_tree(
            'UUID=fs / btrfs subvol=root 0 0\n').items()}
        tree['/root/boot/vmlinuz-6'] = 'k'
        tree['/home/user/.bashrc'] = ''
        return tree

    def test_fedora_root_subvolume(self):
        node = self.node({'/dev/vda1': Part('btrfs', self.fedora(), 'fs')})
        found = self.mount_image(node)
        self.assertEqual('root', found['subvol'])
        self.assertTrue(found['rootfs'].root.endswith('/root'))
        self.assertEqual(['vmlinuz-6'], found['boot_files'])
        (mount,) = node.mounts()
        self.assertEqual('ro,nodev,nosuid,noexec,rescue=nologreplay',
                         mount[2])

    def test_ubuntu_at_tried_before_others(self):
        tree = {}
        for subvol in ('@', 'a-decoy'):
            tree.update({'/' + subvol + p: c
                         for p, c in root_tree('').items()})
        tree['/@home/u'] = None
        node = self.node({'/dev/vda1': Part('btrfs', tree, 'fs')})
        self.assertEqual('@', self.mount_image(node)['subvol'])

    def test_opensuse_default_snapshot(self):
        snap = '@/.snapshots/1/snapshot'
        tree = {'/' + snap + p: c for p, c in root_tree('').items()}
        tree['/@/home/u'] = None
        node = self.node({'/dev/vda1': Part('btrfs', tree, 'fs',
                                            default_subvol=snap)})
        found = self.mount_image(node)
        self.assertEqual(snap, found['subvol'])
        self.assertEqual(1, len(node.mounts()))

    def test_default_not_root_searches_top_level(self):
        tree = self.fedora()
        tree['/other/x'] = ''
        node = self.node({'/dev/vda1': Part('btrfs', tree, 'fs',
                                            default_subvol='other')})
        found = self.mount_image(node)
        self.assertEqual('root', found['subvol'])
        first, second = node.mounts()
        self.assertNotIn('subvolid=5', first[2])
        self.assertIn('subvolid=5', second[2].split(','))

    def test_old_kernel_nologreplay_never_plain_ro(self):
        node = self.node({'/dev/vda1': Part('btrfs', self.fedora(), 'fs')},
                         old_btrfs=True)
        self.mount_image(node)
        self.assertEqual(['ro,nodev,nosuid,noexec,rescue=nologreplay',
                          'ro,nodev,nosuid,noexec,nologreplay'],
                         [c[2] for c in node.mounts()])

    def test_candidates_bounded(self):
        tree = {}
        for n in range(mounts.MAX_SUBVOL_CANDIDATES + 1):
            tree['/d%03d/x' % n] = ''
        last = '/d%03d' % mounts.MAX_SUBVOL_CANDIDATES
        tree.update({last + p: c for p, c in root_tree('').items()})
        node = self.node({'/dev/vda1': Part('btrfs', tree, 'fs')})
        exc = self.assertRaises(errors.KexecError, self.mount_image, node)
        self.assertEqual(protocol.REASON_NO_ROOT, exc.reason)
        self.assertEqual({}, node.mounted)

    def test_root_escaping_symlink_is_no_root(self):
        tree = self.fedora()
        tree['/@/etc/os-release'] = trees.Link('../../../../etc/os-release')
        tree['/@/etc/fstab'] = ''
        node = self.node({'/dev/vda1': Part('btrfs', tree, 'fs')})
        self.assertEqual('root', self.mount_image(node)['subvol'])


class TestHelpers(MountsTestCase):

    def test_match_spec(self):
        devices = [{'KNAME': 'vda1', 'path': '/dev/vda1', 'UUID': 'u1',
                    'PARTUUID': 'pu1', 'LABEL': 'root', 'PARTLABEL': 'p1'},
                   {'KNAME': 'dm-0', 'path': '/dev/dm-0', 'UUID': ''}]
        for spec in ('UUID=u1', 'UUID="u1"', 'PARTUUID=pu1', 'LABEL=root',
                     'PARTLABEL=p1', '/dev/disk/by-uuid/u1',
                     '/dev/disk/by-partlabel/p1', '/dev/vda1'):
            self.assertIs(devices[0], mounts.match_spec(spec, devices), spec)
        self.assertIs(devices[1],
                      mounts.match_spec('/dev/mapper/dm-0', devices))
        for spec in ('UUID=', 'UUID=other', '/dev/sdb1', 'FOO=u1'):
            self.assertIsNone(mounts.match_spec(spec, devices), spec)

    def test_mounted_subvol_from_mountinfo(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        info = os.path.join(tmp, 'mountinfo')
        with open(info, 'w') as f:
            f.write('22 1 0:21 / / rw - ext4 /dev/vda rw\n'
                    '90 22 0:40 /@/.snapshots/1/snapshot /mnt/a\\040b ro '
                    '- btrfs /dev/vdb ro,subvolid=266\n'
                    '91 22 0:40 / /mnt/top ro - btrfs /dev/vdb ro\n')
        self.patch(mounts, 'MOUNTINFO', info)
        self.assertEqual('@/.snapshots/1/snapshot',
                         mounts.mounted_subvol('/mnt/a b'))
        self.assertEqual('', mounts.mounted_subvol('/mnt/top'))
        self.assertIsNone(mounts.mounted_subvol('/mnt/none'))


class TestHangingTools(test_kexec_tool.ToolTestCase):
    """Real processes: a disk tool that hangs is killed.

    Its children too, and the mount ends with no_root.
    """

    def setUp(self):
        super(TestHangingTools, self).setUp()
        self.patch(mounts, 'COMMAND_TIMEOUT', 0.5)
        self.useFixture(fixtures.EnvironmentVariable(
            'PATH', self.dir + os.pathsep + os.environ.get('PATH', '')))

    def assertKilled(self):
        shell, child = self.pids()
        self.assertFalse(os.path.exists('/proc/%d' % shell))
        self.assertTrue(test_kexec_tool.wait_gone([child]))

    def test_vgchange(self):
        self.hanging('vgchange')
        start = time.monotonic()
        exc = self.assertRaises(errors.KexecError, mounts.activate_volumes)
        self.assertEqual(protocol.REASON_NO_ROOT, exc.reason)
        self.assertIn('vgchange did not finish', exc.reason_message)
        self.assertLess(time.monotonic() - start, 5)
        self.assertKilled()

    def test_mount(self):
        self.script('vgchange', 'exit 5\n')
        self.script('mdadm', 'exit 1\n')
        self.script('lsblk', 'echo \'KNAME="vda1" TYPE="part" '
                             'FSTYPE="ext4" UUID="u"\'\n')
        self.hanging('mount')
        pattern = os.path.join(tempfile.gettempdir(), 'ipa-kexec-*')
        before = set(glob.glob(pattern))
        exc = self.assertRaises(errors.KexecError, self._mount_image)
        self.assertEqual(before, set(glob.glob(pattern)))
        self.assertEqual(protocol.REASON_NO_ROOT, exc.reason)
        self.assertIn('mount did not finish', exc.reason_message)
        self.assertKilled()

    def _mount_image(self):
        with mounts.mounted_image('/dev/vda'):
            pass
