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

"""Boot Loader Specification entries as grub's blscfg reads them."""

import shutil
import tempfile

from ironic_python_agent.tests.unit import base

from ipa_kexec.bootloader import bls
from ipa_kexec import budget as budget_mod
from ipa_kexec import errors
from ipa_kexec import rootfs
from ironic_kexec import protocol
from tests.unit.agent import trees

MID = '8a3d5c2e6f1b4a0d9e7c3b2a1f0e9d8c'
OPTIONS = 'root=/dev/mapper/rhel-root ro rhgb quiet'


def entry(version, options=OPTIONS, prefix='', initrd=None, extra=''):
    # As RHEL 9's kernel-install/grubby write them.
    initrd = ('%s/initramfs-%s.img $tuned_initrd' % (prefix, version)
              if initrd is None else initrd)
    return ('title Red Hat Enterprise Linux (%(v)s) 9.4 (Plow)\n'
            'version %(v)s\nlinux %(p)s/vmlinuz-%(v)s\ninitrd %(i)s\n'
            'options %(o)s\ngrub_users $grub_users\n'
            'grub_arg --unrestricted\ngrub_class rhel\n%(x)s'
            % {'v': version, 'p': prefix, 'o': options, 'i': initrd,
               'x': extra})


VERSIONS = ('5.14.0-427.13.1.el9_4.x86_64', '5.14.0-70.13.1.el9_0.x86_64',
            '5.14.0-362.8.1.el9_3.x86_64')


def boot_files(prefix='', versions=VERSIONS, **kwargs):
    files = {}
    for version in versions:
        files['%s/loader/entries/%s-%s.conf' % (prefix, MID, version)] = (
            entry(version, **kwargs))
        files['%s/vmlinuz-%s' % (prefix, version)] = trees.KERNEL
        files['%s/initramfs-%s.img' % (prefix, version)] = trees.INITRD
    files['%s/loader/entries/%s-0-rescue.conf' % (prefix, MID)] = entry(
        '0-rescue-' + MID)
    files['%s/vmlinuz-0-rescue-%s' % (prefix, MID)] = trees.KERNEL
    files['%s/initramfs-0-rescue-%s.img' % (prefix, MID)] = trees.INITRD
    return files


class BLSTestCase(base.IronicAgentTest):

    def make(self, files):
        path = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, path, True)
        return trees.build(path, files)

    def fs(self, files, boot=None):
        mounts = {'/boot': self.make(boot)} if boot is not None else {}
        return rootfs.RootFS(self.make(files), mounts)

    def find(self, files, env=None, boot=None):
        return bls.find(self.fs(files, boot), env or {})


class TestPaths(BLSTestCase):

    def test_separate_boot(self):
        e = self.find({'/boot': None}, boot=boot_files())
        self.assertEqual('/boot/vmlinuz-' + VERSIONS[0], e.kernel)
        self.assertEqual(['/boot/initramfs-%s.img' % VERSIONS[0]],
                         e.initrds)
        self.assertEqual(OPTIONS, e.cmdline)
        self.assertEqual(protocol.SOURCE_BLS, e.source)

    def test_boot_on_root_paths_without_boot(self):
        # The failing case: /boot on the root filesystem, paths
        # relative to the directory holding loader/ (grub: ($root)/boot).
        files = dict(('/boot' + k, v) for k, v in boot_files().items())
        e = self.find(files)
        self.assertEqual('/boot/vmlinuz-' + VERSIONS[0], e.kernel)
        self.assertEqual(['/boot/initramfs-%s.img' % VERSIONS[0]],
                         e.initrds)

    def test_boot_on_root_paths_with_boot(self):
        files = dict(('/boot' + k, v)
                     for k, v in boot_files(prefix='').items())
        for name in list(files):
            if '/loader/entries/' in name:
                files[name] = files[name].replace(' /vmlinuz', ' /boot/'
                                                  'vmlinuz').replace(
                    ' /initramfs', ' /boot/initramfs')
        e = self.find(files)
        self.assertEqual('/boot/vmlinuz-' + VERSIONS[0], e.kernel)

    def test_entry_outside_image(self):
        files = {'/boot/loader/entries/a.conf':
                 'linux /../../../../etc/passwd\n'}
        self.assertRaises(errors.UnsafePath, self.find, files)

    def test_missing_kernel_is_none(self):
        files = {'/boot/loader/entries/a.conf': 'linux /vmlinuz-x\n'}
        self.assertIsNone(self.find(files))

    def test_no_entries(self):
        self.assertIsNone(self.find({'/boot': None}))


class TestEntries(BLSTestCase):

    def test_several_initrd_lines_and_paths(self):
        boot = boot_files(versions=VERSIONS[:1], initrd='/ucode.img /a.img',
                          extra='initrd /initramfs-%s.img\n' % VERSIONS[0])
        boot['/ucode.img'] = b'u'
        boot['/a.img'] = b'a'
        e = self.find({'/boot': None}, boot=boot)
        self.assertEqual(['/boot/ucode.img', '/boot/a.img',
                          '/boot/initramfs-%s.img' % VERSIONS[0]],
                         e.initrds)

    def test_early_initrd_from_grubenv(self):
        boot = boot_files(versions=VERSIONS[:1])
        boot['/microcode.cpio'] = b'u'
        e = self.find({'/boot': None}, {'early_initrd': 'microcode.cpio',
                                        'tuned_initrd': ''}, boot=boot)
        self.assertEqual(['/boot/microcode.cpio',
                          '/boot/initramfs-%s.img' % VERSIONS[0]],
                         e.initrds)

    def test_quoted_argument_kept_whole(self):
        boot = boot_files(versions=VERSIONS[:1],
                          options='ro "acpi_osi=Windows 2015" quiet')
        e = self.find({'/boot': None}, boot=boot)
        self.assertEqual('ro "acpi_osi=Windows 2015" quiet', e.cmdline)

    def test_kernelopts_and_tuned_params(self):
        boot = boot_files(versions=VERSIONS[:1],
                          options='$kernelopts $tuned_params')
        e = self.find({'/boot': None}, {'kernelopts': 'root=/dev/sda2 ro',
                                        'tuned_params': 'skew_tick=1'},
                      boot=boot)
        self.assertEqual('root=/dev/sda2 ro skew_tick=1', e.cmdline)

    def test_first_options_line_counts(self):
        boot = boot_files(versions=VERSIONS[:1],
                          extra='options second=1\n')
        self.assertEqual(OPTIONS, self.find({'/boot': None},
                                            boot=boot).cmdline)

    def test_default_kernelopts_without_options(self):
        text = 'linux /vmlinuz-1\n'
        e = self.find({'/boot/loader/entries/a.conf': text,
                       '/boot/vmlinuz-1': trees.KERNEL},
                      {'default_kernelopts': 'root=/dev/sda1'})
        self.assertEqual('root=/dev/sda1', e.cmdline)

    def test_empty_line_ends_entry(self):
        # blscfg stops reading at a line without a separator.
        text = 'title a\n\nlinux /vmlinuz-1\n'
        self.assertIsNone(self.find({'/boot/loader/entries/a.conf': text,
                                     '/boot/vmlinuz-1': trees.KERNEL}))

    def test_parse_entry(self):
        e = bls.parse_entry('x', '  # c\r\ntitle  A  B\r\nlinux\t/v\n'
                            'initrd /i1\ninitrd /i2\nlinux /w\n')
        self.assertEqual('A  B', e.title)
        self.assertEqual('/v', e.linux)
        self.assertEqual(['/i1', '/i2'], e.initrds)


class TestOrderAndDefault(BLSTestCase):

    def test_newest_first_rescue_last(self):
        fs = self.fs({'/boot': None}, boot_files())
        entries, base = bls.load_entries(fs)
        self.assertEqual('/boot', base)
        self.assertEqual(['%s-%s' % (MID, v) for v in
                          (VERSIONS[0], VERSIONS[2], VERSIONS[1])] +
                         ['%s-0-rescue' % MID], [e.id for e in entries])

    def test_saved_entry_by_id(self):
        e = self.find({'/boot': None},
                      {'saved_entry': '%s-%s' % (MID, VERSIONS[1])},
                      boot=boot_files())
        self.assertEqual('/boot/vmlinuz-' + VERSIONS[1], e.kernel)

    def test_next_entry_wins_over_saved(self):
        e = self.find({'/boot': None},
                      {'saved_entry': '%s-%s' % (MID, VERSIONS[1]),
                       'next_entry': '%s-%s' % (MID, VERSIONS[2])},
                      boot=boot_files())
        self.assertEqual('/boot/vmlinuz-' + VERSIONS[2], e.kernel)

    def test_saved_entry_by_title_and_index(self):
        title = 'Red Hat Enterprise Linux (%s) 9.4 (Plow)' % VERSIONS[2]
        e = self.find({'/boot': None}, {'saved_entry': title},
                      boot=boot_files())
        self.assertEqual('/boot/vmlinuz-' + VERSIONS[2], e.kernel)
        e = self.find({'/boot': None}, {'saved_entry': '2'},
                      boot=boot_files())
        self.assertEqual('/boot/vmlinuz-' + VERSIONS[1], e.kernel)

    def test_bad_indexes_boot_first(self):
        for value in ('\u0661', '9' * 5000, '-1', '99', '0x1'):
            e = self.find({'/boot': None}, {'saved_entry': value},
                          boot=boot_files())
            self.assertEqual('/boot/vmlinuz-' + VERSIONS[0], e.kernel)

    def test_vercmp(self):
        self.assertEqual(1, bls.vercmp('5.14.0-427', '5.14.0-70'))
        self.assertEqual(1, bls.vercmp('6.10', '6.9'))
        self.assertEqual(-1, bls.vercmp('1.0~rc1', '1.0'))
        self.assertEqual(1, bls.vercmp('1.0+p1', '1.0'))
        self.assertEqual(1, bls.vercmp('1a', '1.'))
        self.assertEqual(0, bls.vercmp('1.01', '1.1'))
        self.assertEqual(1, bls.vercmp('2', 'a'))

    def test_equal_ids_kept_once(self):
        fs = self.fs({'/boot/loader/entries/a-1-1.conf': 'linux /v\n',
                      '/boot/loader/entries/a-01-1.conf': 'linux /w\n'})
        entries, _base = bls.load_entries(fs)
        self.assertEqual(['a-01-1'], [e.id for e in entries])


class TestExpansion(BLSTestCase):

    def split(self, text, env):
        return bls.split_args(text, env, budget_mod.Budget())

    def test_split_args(self):
        self.assertEqual(
            ['a', 'b c', 'x$y', 'v1', 'v2', 'v1 v2', '$', 'q"'],
            self.split('a "b c" \'x$y\' $v "${v}" $ q\\"', {'v': 'v1 v2'}))

    def test_doubling_ends_too_complex(self):
        env = {'a': 'x' * 1000}
        boot = boot_files(versions=VERSIONS[:1],
                          options='$a ' * 2000)
        exc = self.assertRaises(errors.KexecError, self.find,
                                {'/boot': None}, env, boot=boot)
        self.assertEqual(protocol.REASON_TOO_COMPLEX, exc.reason)

    def test_second_expansion_bounded(self):
        # A value naming another variable many times: grub expands it
        # once more as a script; the budget bounds that.
        env = {'kernelopts': '$b' * 20000, 'b': 'y' * 60000}
        boot = boot_files(versions=VERSIONS[:1], options='$kernelopts')
        exc = self.assertRaises(errors.KexecError, self.find,
                                {'/boot': None}, env, boot=boot)
        self.assertEqual(protocol.REASON_TOO_COMPLEX, exc.reason)

    def test_long_cmdline_refused(self):
        boot = boot_files(versions=VERSIONS[:1], options='x' * 5000)
        exc = self.assertRaises(errors.KexecError, self.find,
                                {'/boot': None}, boot=boot)
        self.assertEqual(protocol.REASON_TOO_LARGE, exc.reason)


class TestHostile(BLSTestCase):

    def test_directory_over_bound_refused(self):
        files = {}
        for i in range(budget_mod.MAX_DIR_NAMES + 1):
            files['/boot/loader/entries/k-%d-1.conf' % i] = 'title x\n'
        exc = self.assertRaises(errors.KexecError, self.find, files)
        self.assertEqual(protocol.REASON_TOO_LARGE, exc.reason)

    def test_entry_file_over_bound(self):
        files = {'/boot/loader/entries/a.conf': 'title ' + 'x' * 70000}
        self.assertRaises(errors.TooLarge, self.find, files)

    def test_nul_ends_the_line(self):
        # grub keeps each line as a C string.
        files = {'/boot/loader/entries/a.conf':
                 'linux /vm\x00/../../etc/passwd\n'
                 'options ro\x00init=/bin/sh\n',
                 '/boot/vm': trees.KERNEL}
        e = self.find(files)
        self.assertEqual('/boot/vm', e.kernel)
        self.assertEqual('ro', e.cmdline)

    def test_long_lines_linear(self):
        files = {'/boot/loader/entries/a-1-1.conf':
                 'linux /v ' + '"a' * 30000 + '\n',
                 '/boot/v': trees.KERNEL}
        exc = self.assertRaises(errors.KexecError, self.find, files)
        self.assertEqual(protocol.REASON_TOO_LARGE, exc.reason)
