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

"""systemd-boot entries on trees laid out as bootctl and kernel-install
write them (Debian 12, systemd 252)."""

import functools
import shutil
import tempfile
from unittest import mock

from ironic_python_agent.tests.unit import base

from ipa_kexec.bootloader import sdboot
from ipa_kexec.bootloader import uki
from ipa_kexec import errors
from ipa_kexec import rootfs
from ironic_kexec import protocol
from tests.unit.agent import test_uki
from tests.unit.agent import trees

MID = '8a3d5c2e6f1b4a0d9e7c3b2a1f0e9d8c'
CMDLINE = 'root=UUID=3b4c1f0e ro quiet'


def type1(version, options=CMDLINE, sort_key='debian', extra=''):
    # kernel-install's 90-loaderentry.install in systemd 252.
    text = ('title      Debian GNU/Linux 12 (bookworm)\n'
            'version    %(v)s\nmachine-id %(m)s\n' % {'v': version,
                                                      'm': MID})
    if sort_key:
        text += 'sort-key   %s\n' % sort_key
    text += ('options    %(o)s\nlinux      /%(m)s/%(v)s/linux\n'
             'initrd     /%(m)s/%(v)s/initrd.img-%(v)s\n'
             % {'o': options, 'm': MID, 'v': version})
    return text + extra


def esp_tree(versions=('6.1.0-13-amd64', '6.1.0-12-amd64'), esp='/boot/efi',
             loader_conf='timeout 3\n#console-mode keep\n', names=None):
    files = {
        esp + '/EFI/systemd/systemd-bootx64.efi': b'MZ sd-boot',
        esp + '/EFI/BOOT/BOOTX64.EFI': b'MZ sd-boot',
        esp + '/loader/random-seed': b'\0' * 32,
        esp + '/loader/entries.srel': 'type1\n',
    }
    if loader_conf is not None:
        files[esp + '/loader/loader.conf'] = loader_conf
    for version in versions:
        name = (names or {}).get(version, '%s-%s.conf' % (MID, version))
        files['%s/loader/entries/%s' % (esp, name)] = type1(version)
        files['%s/%s/%s/linux' % (esp, MID, version)] = trees.KERNEL
        files['%s/%s/%s/initrd.img-%s' % (esp, MID, version,
                                          version)] = trees.INITRD
    return files


class SDBootTestCase(base.IronicAgentTest):

    def setUp(self):
        super(SDBootTestCase, self).setUp()
        patcher = mock.patch.object(sdboot.platform, 'machine',
                                    return_value='x86_64')
        patcher.start()
        self.addCleanup(patcher.stop)

    def make(self, files):
        path = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, path, True)
        return trees.build(path, files)

    def find(self, files, boot_files=None):
        mounts = {}
        if boot_files is not None:
            mounts['/boot'] = self.make(boot_files)
        return sdboot.find(rootfs.RootFS(self.make(files), mounts), {})

    def assertType1(self, entry, esp, version, cmdline=CMDLINE):
        self.assertEqual('%s/%s/%s/linux' % (esp, MID, version),
                         entry.kernel)
        self.assertEqual(['%s/%s/%s/initrd.img-%s' % (esp, MID, version,
                                                      version)],
                         entry.initrds)
        self.assertEqual(cmdline, entry.cmdline)
        self.assertEqual(protocol.SOURCE_SYSTEMD_BOOT, entry.source)
        self.assertIsNone(entry.uki)


class TestType1(SDBootTestCase):

    def test_newest_by_version(self):
        entry = self.find(esp_tree(('6.1.0-9-amd64', '6.1.0-13-amd64')))
        self.assertType1(entry, '/boot/efi', '6.1.0-13-amd64')

    def test_esp_mounted_at_efi(self):
        entry = self.find(esp_tree(esp='/efi'))
        self.assertType1(entry, '/efi', '6.1.0-13-amd64')

    def test_esp_is_separate_boot(self):
        files = esp_tree(esp='')
        boot = dict((k, v) for k, v in files.items())
        entry = self.find({'/boot': None}, boot)
        self.assertType1(entry, '/boot', '6.1.0-13-amd64')

    def test_no_systemd_boot_installed(self):
        # A Fedora grub tree has loader/entries on /boot but no
        # systemd-boot: not this source's.
        files = esp_tree(esp='/boot')
        del files['/boot/EFI/systemd/systemd-bootx64.efi']
        self.assertIsNone(self.find(files))

    def test_default_glob_pins_older(self):
        entry = self.find(esp_tree(
            loader_conf='default %s-6.1.0-12-*\n' % MID.upper()))
        # The id ends in ".conf": a pattern without "*" at the end
        # matches only with the suffix (systemd 252).
        self.assertType1(entry, '/boot/efi', '6.1.0-12-amd64')

    def test_default_without_suffix_matches_nothing(self):
        entry = self.find(esp_tree(
            loader_conf='default %s-6.1.0-12-amd64\n' % MID))
        self.assertType1(entry, '/boot/efi', '6.1.0-13-amd64')

    def test_default_with_suffix(self):
        entry = self.find(esp_tree(
            loader_conf='default "%s-6.1.0-12-amd64.conf"\n' % MID))
        self.assertType1(entry, '/boot/efi', '6.1.0-12-amd64')

    def test_default_saved_falls_back_to_first(self):
        with mock.patch.object(sdboot.LOG, 'warning') as warning:
            entry = self.find(esp_tree(loader_conf='default @saved\n'))
        self.assertType1(entry, '/boot/efi', '6.1.0-13-amd64')
        self.assertIn('LoaderEntryLastBooted', warning.call_args[0][0])

    def test_unsupported_special_default_ignored(self):
        entry = self.find(esp_tree(
            loader_conf='default %s-6.1.0-12*\ndefault @foo\n' % MID))
        self.assertType1(entry, '/boot/efi', '6.1.0-12-amd64')

    def test_options_joined_and_several_initrds(self):
        files = esp_tree(versions=('6.1.0-13-amd64',))
        name = '/boot/efi/loader/entries/%s-6.1.0-13-amd64.conf' % MID
        files[name] = files[name].replace(
            'initrd ', 'initrd     /intel-ucode.img\ninitrd ') + (
            'options    console=ttyS0,115200\n')
        files['/boot/efi/intel-ucode.img'] = b'ucode'
        entry = self.find(files)
        self.assertEqual(['/boot/efi/intel-ucode.img',
                          '/boot/efi/%s/6.1.0-13-amd64/initrd.img-'
                          '6.1.0-13-amd64' % MID], entry.initrds)
        self.assertEqual(CMDLINE + ' console=ttyS0,115200', entry.cmdline)

    def test_quotes_kept_for_the_kernel(self):
        files = esp_tree(versions=('6.1.0-13-amd64',))
        name = '/boot/efi/loader/entries/%s-6.1.0-13-amd64.conf' % MID
        files[name] = type1('6.1.0-13-amd64',
                            options='ro "acpi_osi=Windows 2015" quiet')
        self.assertEqual('ro "acpi_osi=Windows 2015" quiet',
                         self.find(files).cmdline)

    def test_missing_linux_file_is_no_entry(self):
        files = esp_tree()
        del files['/boot/efi/%s/6.1.0-13-amd64/linux' % MID]
        self.assertType1(self.find(files), '/boot/efi', '6.1.0-12-amd64')

    def test_other_architecture_skipped(self):
        files = esp_tree()
        name = '/boot/efi/loader/entries/%s-6.1.0-13-amd64.conf' % MID
        files[name] += 'architecture aa64\n'
        self.assertType1(self.find(files), '/boot/efi', '6.1.0-12-amd64')

    def test_efi_entry_skipped(self):
        files = esp_tree(versions=('6.1.0-12-amd64',))
        files['/boot/efi/loader/entries/zzz-shell.conf'] = (
            'title EFI shell\nefi /shellx64.efi\n')
        files['/boot/efi/shellx64.efi'] = b'MZ'
        self.assertType1(self.find(files), '/boot/efi', '6.1.0-12-amd64')

    def test_no_tries_left_sorted_last(self):
        names = {'6.1.0-13-amd64': '%s-6.1.0-13-amd64+0-3.conf' % MID}
        entry = self.find(esp_tree(names=names))
        self.assertType1(entry, '/boot/efi', '6.1.0-12-amd64')

    def test_tries_left_counts_not_against(self):
        names = {'6.1.0-13-amd64': '%s-6.1.0-13-amd64+2-1.conf' % MID}
        entry = self.find(esp_tree(names=names))
        self.assertType1(entry, '/boot/efi', '6.1.0-13-amd64')

    def test_xbootldr_entries(self):
        # ESP at /efi holds systemd-boot; kernel-install put the entries
        # on the XBOOTLDR partition, mounted at /boot.
        files = esp_tree(versions=(), esp='/efi')
        files['/boot'] = None
        boot = esp_tree(versions=('6.1.0-13-amd64',), esp='')
        for key in list(boot):
            if '/EFI/' in key:
                del boot[key]
        entry = self.find(files, boot)
        self.assertType1(entry, '/boot', '6.1.0-13-amd64')


class TestType2(SDBootTestCase):

    def test_uki_newest_and_pinned(self):
        files = esp_tree(versions=())
        files['/boot/efi/EFI/Linux/debian-6.1.0-13-amd64.efi'] = (
            test_uki.uki_image(cmdline='root=/dev/vda2 ro\n'))
        files['/boot/efi/EFI/Linux/debian-6.1.0-12-amd64.efi'] = (
            test_uki.uki_image(cmdline='root=/dev/vda2 ro old\n'))
        entry = self.find(dict(files))
        path = '/boot/efi/EFI/Linux/debian-6.1.0-13-amd64.efi'
        self.assertEqual(path, entry.uki)
        self.assertEqual(path, entry.kernel)
        self.assertEqual('root=/dev/vda2 ro', entry.cmdline)
        self.assertEqual(protocol.SOURCE_UKI, entry.source)
        files['/boot/efi/loader/loader.conf'] = 'default debian-*-12-*\n'
        entry = self.find(files)
        self.assertEqual('root=/dev/vda2 ro old', entry.cmdline)

    def test_sort_key_entries_before_plain_ones(self):
        files = esp_tree(versions=('6.1.0-12-amd64',))
        name = '/boot/efi/loader/entries/%s-6.1.0-12-amd64.conf' % MID
        files[name] = type1('6.1.0-12-amd64', sort_key=None)
        files['/boot/efi/EFI/Linux/a.efi'] = test_uki.uki_image()
        self.assertEqual(protocol.SOURCE_UKI, self.find(files).source)

    def test_uki_without_systemd_boot(self):
        files = {'/efi/EFI/Linux/debian-6.1.0-12-amd64.efi':
                 test_uki.uki_image(cmdline='old'),
                 '/efi/EFI/Linux/debian-6.1.0-13-amd64.efi':
                 test_uki.uki_image(cmdline='new')}
        fs = rootfs.RootFS(self.make(files))
        self.assertIsNone(sdboot.find(fs, {}))
        entry = uki.find(fs, {})
        self.assertEqual('/efi/EFI/Linux/debian-6.1.0-13-amd64.efi',
                         entry.uki)
        self.assertEqual('new', entry.cmdline)
        # With systemd-boot installed, its own source lists the UKIs.
        files['/efi/EFI/systemd/systemd-bootx64.efi'] = b'MZ'
        fs = rootfs.RootFS(self.make(files))
        self.assertIsNone(uki.find(fs, {}))
        self.assertEqual('new', sdboot.find(fs, {}).cmdline)

    def test_broken_uki_skipped(self):
        files = esp_tree(versions=('6.1.0-12-amd64',))
        files['/boot/efi/EFI/Linux/zzz.efi'] = b'MZ broken'
        self.assertType1(self.find(files), '/boot/efi', '6.1.0-12-amd64')


class TestOrder(base.IronicAgentTest):

    def entry(self, file_name, **fields):
        e = sdboot.Entry(sdboot.TYPE1, '/', file_name)
        for key, value in fields.items():
            setattr(e, key, value)
        tries = sdboot.parse_tries(file_name, '.conf')
        if tries:
            e.tries_left, e.tries_done = tries
        return e

    def order(self, *entries):
        return [e.id for e in sorted(entries,
                                     key=functools.cmp_to_key(
                                         sdboot.compare))]

    def test_config_entry_compare(self):
        self.assertEqual(
            ['b.conf', 'a.conf', 'z+0.conf', 'y+0-1.conf'],
            self.order(self.entry('y+0-1.conf'), self.entry('z+0.conf'),
                       self.entry('a.conf', sort_key='s', version='1'),
                       self.entry('b.conf', sort_key='s', version='2')))
        # Same id but for the counter: more tries left, then fewer done.
        a = self.entry('x.conf', tries_left=1, tries_done=3)
        b = self.entry('x.conf', tries_left=2, tries_done=0)
        c = self.entry('x.conf', tries_left=1, tries_done=0)
        self.assertEqual([b, c, a], sorted(
            [a, b, c], key=functools.cmp_to_key(sdboot.compare)))

    def test_machine_id_groups_before_version(self):
        self.assertEqual(
            ['b.conf', 'a.conf'],
            self.order(self.entry('a.conf', sort_key='s', machine_id='2',
                                  version='9'),
                       self.entry('b.conf', sort_key='s', machine_id='1',
                                  version='1')))

    def test_strverscmp_improved_documented_order(self):
        # The order given in systemd's string-util-fundamental.c.
        versions = ['122.1', '123~rc1-1', '123', '123-a', '123-a.1',
                    '123-1', '123-1.1', '123^post1', '123.a-1', '123.1-1',
                    '123a-1', '124-1']
        for older, newer in zip(versions, versions[1:]):
            self.assertLess(sdboot.strverscmp_improved(older, newer), 0)
            self.assertGreater(sdboot.strverscmp_improved(newer, older), 0)
        self.assertEqual(0, sdboot.strverscmp_improved('007', '7'))

    def test_fnmatch(self):
        self.assertTrue(sdboot.fnmatch('debian-*.conf', 'debian-6.1.conf'))
        self.assertTrue(sdboot.fnmatch('d[a-e]b?an*', 'debian'))
        self.assertTrue(sdboot.fnmatch('a\\*', 'a*'))
        self.assertFalse(sdboot.fnmatch('a\\*', 'ab'))
        self.assertFalse(sdboot.fnmatch('*x', 'abc'))
        self.assertFalse(sdboot.fnmatch('[ab', 'a'))

    def test_fnmatch_adversarial_bounded(self):
        # Many stars against a long id: quadratic at worst, not more.
        self.assertFalse(sdboot.fnmatch('*a' * 500 + 'b', 'a' * 255))

    def test_parse_tries(self):
        self.assertEqual((3, 1), sdboot.parse_tries('f+3-1.conf', '.conf'))
        self.assertEqual((3, 0), sdboot.parse_tries('f+3.conf', '.conf'))
        self.assertIsNone(sdboot.parse_tries('f+3x.conf', '.conf'))
        self.assertIsNone(sdboot.parse_tries('f+3.CONF', '.conf'))
        self.assertIsNone(sdboot.parse_tries('f+99999999999.conf', '.conf'))
        self.assertIsNone(sdboot.parse_tries('f+\u0663.conf', '.conf'))


class TestHostile(SDBootTestCase):

    def test_too_many_entries_refused(self):
        files = esp_tree(versions=('6.1.0-13-amd64',))
        for i in range(4100):
            files['/boot/efi/loader/entries/e%d.conf' % i] = 'title x\n'
        exc = self.assertRaises(errors.KexecError, self.find, files)
        self.assertEqual(protocol.REASON_TOO_LARGE, exc.reason)

    def test_entry_path_outside_image(self):
        files = esp_tree(versions=('6.1.0-13-amd64',))
        name = '/boot/efi/loader/entries/%s-6.1.0-13-amd64.conf' % MID
        files[name] = 'linux /../../../../../../etc/passwd\n'
        self.assertRaises(errors.UnsafePath, self.find, files)

    def test_nul_ends_the_file(self):
        # line_get_key_value reads the file as a C string.
        files = esp_tree(versions=('6.1.0-13-amd64',))
        name = '/boot/efi/loader/entries/%s-6.1.0-13-amd64.conf' % MID
        files[name] = type1('6.1.0-13-amd64').encode() + (
            b'options init=/bin/sh\x00\xff\xfe\ninitrd /a\x00b\n')
        self.assertType1(self.find(files), '/boot/efi', '6.1.0-13-amd64',
                         CMDLINE + ' init=/bin/sh')
        files[name] = b'linux /missing\x00/../x/linux\n'
        self.assertIsNone(self.find(files))

    def test_binary_garbage_entry(self):
        files = esp_tree(versions=('6.1.0-12-amd64',))
        files['/boot/efi/loader/entries/zzz.conf'] = bytes(range(1, 256))
        self.assertType1(self.find(files), '/boot/efi', '6.1.0-12-amd64')

    def test_huge_options_refused(self):
        files = esp_tree(versions=('6.1.0-13-amd64',))
        name = '/boot/efi/loader/entries/%s-6.1.0-13-amd64.conf' % MID
        files[name] += ('options %s\n' % ('x' * 1000)) * 60
        exc = self.assertRaises(errors.KexecError, self.find, files)
        self.assertEqual(protocol.REASON_TOO_LARGE, exc.reason)

    def test_long_default_pattern_refused(self):
        exc = self.assertRaises(errors.KexecError, self.find, esp_tree(
            loader_conf='default ' + '*a' * 1000 + '\n'))
        self.assertEqual(protocol.REASON_TOO_LARGE, exc.reason)
