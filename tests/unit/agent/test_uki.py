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

"""Unified Kernel Images: PE section table parsing and extraction."""

import io
import shutil
import struct
import tempfile

from ironic_python_agent.tests.unit import base

from ipa_kexec.bootloader import uki
from ipa_kexec import budget as budget_mod
from ipa_kexec import errors
from ipa_kexec import rootfs
from ironic_kexec import protocol
from tests.unit.agent import trees

PE_OFFSET = 0x80
OPT_SIZE = 0xf0
FILE_ALIGN = 0x200
OSREL = ('NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\n'
         'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')


def pe(sections, pe_offset=PE_OFFSET, count=None, raw=None):
    """A PE image laid out as ukify does.

    Headers, then each section at the file alignment, VirtualSize its
    exact length.

    :param sections: [(name, bytes)].
    :param raw: {name: (pointer, raw size, virtual size)} overrides.
    """
    header_end = pe_offset + 24 + OPT_SIZE + 40 * len(sections)
    offset = (header_end + FILE_ALIGN - 1) // FILE_ALIGN * FILE_ALIGN
    table = b''
    body = b''
    for name, data in sections:
        padded = data + b'\0' * (-len(data) % FILE_ALIGN)
        ptr, raw_size, vsize = offset + len(body), len(padded), len(data)
        if raw and name in raw:
            ptr, raw_size, vsize = raw[name]
        table += struct.pack('<8sIIIIIIHHI', name.encode(), vsize, 0,
                             raw_size, ptr, 0, 0, 0, 0, 0)
        body += padded
    dos = bytearray(pe_offset)
    dos[0:2] = b'MZ'
    struct.pack_into('<I', dos, 0x3c, pe_offset)
    coff = b'PE\0\0' + struct.pack(
        '<HHIIIHH', 0x8664, len(sections) if count is None else count, 0,
        0, 0, OPT_SIZE, 0x22)
    head = bytes(dos) + coff + b'\0' * OPT_SIZE + table
    return head + b'\0' * (offset - len(head)) + body


def uki_image(cmdline='root=UUID=abcd ro quiet\n', osrel=OSREL,
              kernel=trees.KERNEL, initrd=trees.INITRD,
              uname='6.1.0-13-amd64'):
    sections = [('.osrel', osrel.encode())]
    if cmdline is not None:
        sections.append(('.cmdline', cmdline.encode()))
    if uname is not None:
        sections.append(('.uname', uname.encode()))
    if initrd is not None:
        sections.append(('.initrd', initrd))
    if kernel is not None:
        sections.append(('.linux', kernel))
    return pe(sections)


class UKITestCase(base.IronicAgentTest):

    def rootfs(self, files):
        path = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, path, True)
        trees.build(path, files)
        return rootfs.RootFS(path)


class TestSections(UKITestCase):

    def test_sections_and_entry(self):
        fs = self.rootfs({'/boot/efi/EFI/Linux/debian.efi': uki_image()})
        path = '/boot/efi/EFI/Linux/debian.efi'
        table = uki.sections(fs, path)
        self.assertEqual({'.osrel', '.cmdline', '.uname', '.initrd',
                          '.linux'}, set(table))
        entry = uki.boot_entry(fs, path)
        self.assertEqual(path, entry.uki)
        self.assertEqual(path, entry.kernel)
        self.assertEqual([], entry.initrds)
        self.assertEqual('root=UUID=abcd ro quiet', entry.cmdline)
        self.assertEqual(protocol.SOURCE_UKI, entry.source)
        info = uki.inspect(fs, path)
        self.assertEqual('Debian GNU/Linux 12 (bookworm)', info.title)
        self.assertEqual('12', info.version)
        self.assertEqual('debian', info.sort_key)
        self.assertEqual('6.1.0-13-amd64', info.uname)

    def test_copy_section(self):
        fs = self.rootfs({'/u.efi': uki_image()})
        out = io.BytesIO()
        self.assertEqual(len(trees.KERNEL),
                         uki.copy_section(fs, '/u.efi', uki.LINUX, out))
        self.assertEqual(trees.KERNEL, out.getvalue())
        out = io.BytesIO()
        uki.copy_section(fs, '/u.efi', uki.INITRD, out)
        self.assertEqual(trees.INITRD, out.getvalue())
        self.assertTrue(uki.has_section(fs, '/u.efi', uki.INITRD))

    def test_copy_section_over_limit(self):
        fs = self.rootfs({'/u.efi': uki_image(kernel=b'K' * 5000)})
        self.assertRaises(errors.TooLarge, uki.copy_section, fs, '/u.efi',
                          uki.LINUX, io.BytesIO(), 4096)

    def test_without_initrd_section(self):
        fs = self.rootfs({'/u.efi': uki_image(initrd=None)})
        self.assertFalse(uki.has_section(fs, '/u.efi', uki.INITRD))
        exc = self.assertRaises(errors.KexecError, uki.copy_section, fs,
                                '/u.efi', uki.INITRD, io.BytesIO())
        self.assertEqual(protocol.REASON_NO_KERNEL, exc.reason)

    def test_cmdline_mangled_as_systemd(self):
        fs = self.rootfs({'/u.efi': uki_image(
            cmdline='root=/dev/sda2\tro\nquiet  \n\0garbage')})
        self.assertEqual('root=/dev/sda2 ro quiet',
                         uki.boot_entry(fs, '/u.efi').cmdline)

    def test_no_cmdline_section(self):
        fs = self.rootfs({'/u.efi': uki_image(cmdline=None)})
        self.assertIsNone(uki.boot_entry(fs, '/u.efi').cmdline)

    def test_no_title_is_no_entry(self):
        fs = self.rootfs({'/u.efi': uki_image(osrel='VERSION_ID=1\n')})
        self.assertIsNone(uki.inspect(fs, '/u.efi'))

    def test_no_linux_is_no_entry(self):
        fs = self.rootfs({'/u.efi': uki_image(kernel=None)})
        self.assertIsNone(uki.inspect(fs, '/u.efi'))

    def test_name_version_sort_key_priority(self):
        picked = uki.pick_name_version_sort_key(uki.parse_os_release(
            b'ID=fedora\nIMAGE_ID=fedora-kinoite\nIMAGE_VERSION=40.1\n'
            b'VERSION_ID=40\nNAME="Fedora Linux"\n'))
        self.assertEqual(('fedora-kinoite', '40.1', 'fedora-kinoite'),
                         picked)

    def test_later_duplicate_section_wins(self):
        data = pe([('.cmdline', b'first'), ('.osrel', OSREL.encode()),
                   ('.linux', trees.KERNEL), ('.cmdline', b'second')])
        fs = self.rootfs({'/u.efi': data})
        self.assertEqual('second', uki.boot_entry(fs, '/u.efi').cmdline)


class TestHostile(UKITestCase):

    def test_listed_but_not_resolvable_is_none(self):
        # Found by the fuzzer: inspected by one name, gone by the time
        # the entry is built (a race, or a name that resolves elsewhere).
        fs = self.rootfs({'/u.efi': uki_image()})
        info = uki.inspect(fs, '/u.efi')
        self.assertIsNone(uki.boot_entry(fs, '/gone.efi', info))

    def assertRefused(self, data, exc_class=errors.KexecError,
                      reason=protocol.REASON_NO_KERNEL):
        fs = self.rootfs({'/u.efi': data})
        exc = self.assertRaises(exc_class, uki.inspect, fs, '/u.efi')
        self.assertEqual(reason, exc.reason)
        # Headers only: never more than HEADER_MAX bytes read.
        self.assertLessEqual(fs.budget.bytes_read, uki.HEADER_MAX)
        return fs

    def test_not_pe(self):
        self.assertRefused(b'\x7fELF' + b'\0' * 100)

    def test_empty_file(self):
        self.assertRefused(b'')

    def test_pe_offset_far_away(self):
        data = bytearray(uki_image())
        struct.pack_into('<I', data, 0x3c, 0x7fffffff)
        self.assertRefused(bytes(data))

    def test_pe_offset_past_end(self):
        data = bytearray(b'MZ' + b'\0' * 200)
        struct.pack_into('<I', data, 0x3c, 190)
        self.assertRefused(bytes(data))

    def test_too_many_sections(self):
        self.assertRefused(pe([('.linux', trees.KERNEL)], count=97))

    def test_section_table_past_header_bound(self):
        # 96 sections declared, the table beyond the file.
        self.assertRefused(pe([('.linux', b'k')], count=96,
                              pe_offset=uki.HEADER_MAX - 400))

    def test_section_past_end_of_file(self):
        self.assertRefused(pe([('.osrel', OSREL.encode()),
                               ('.linux', trees.KERNEL)],
                              raw={'.linux': (0x400, 0xffffff00,
                                              0xffffff00)}))

    def test_huge_virtual_size_bounded_by_raw_size(self):
        # VirtualSize 4 GiB over a 512 byte raw section: the raw size
        # bounds the read.
        data = pe([('.osrel', OSREL.encode()), ('.linux', trees.KERNEL),
                   ('.cmdline', b'ro')],
                  raw={'.cmdline': (0x600, 0x200, 0xffffffff)})
        fs = self.rootfs({'/u.efi': data})
        self.assertEqual(0x200, uki.sections(fs, '/u.efi')['.cmdline'].size)

    def test_cmdline_over_bound(self):
        fs = self.rootfs({'/u.efi': uki_image(
            cmdline='a' * (budget_mod.MAX_CMDLINE + 1))})
        exc = self.assertRaises(errors.TooLarge, uki.inspect, fs, '/u.efi')
        self.assertEqual(protocol.REASON_TOO_LARGE, exc.reason)

    def test_osrel_over_bound(self):
        fs = self.rootfs({'/u.efi': uki_image(
            osrel='PRETTY_NAME=x\n' + '#' * uki.MAX_OSREL)})
        self.assertRaises(errors.TooLarge, uki.inspect, fs, '/u.efi')

    def test_overlapping_sections_read_once_each(self):
        # Every section points at the same bytes: still one bounded read
        # per section used, not a read per overlap.
        sections = [('.s%d' % i, b'x') for i in range(90)]
        sections += [('.osrel', OSREL.encode()), ('.linux', trees.KERNEL)]
        raw = dict(('.s%d' % i, (0, 0x200, 0x200)) for i in range(90))
        fs = self.rootfs({'/u.efi': pe(sections, raw=raw)})
        self.assertIsNotNone(uki.inspect(fs, '/u.efi'))
        self.assertLess(fs.budget.bytes_read, 3 * uki.HEADER_MAX)

    def test_non_ascii_section_names_ignored(self):
        data = pe([('.osrel', OSREL.encode()), ('.linux', trees.KERNEL)])
        data = data.replace(b'.osrel\0\0', b'\xff\xfesrel\0\0')
        fs = self.rootfs({'/u.efi': data})
        self.assertIsNone(uki.inspect(fs, '/u.efi'))

    def test_sparse_huge_linux_refused(self):
        # A sparse file 2 GiB long whose .linux claims it all: refused at
        # discovery, nothing of it read.
        data = pe([('.osrel', OSREL.encode()), ('.linux', b'k')],
                  raw={'.linux': (0x400, 0x7fffff00, 0x7fffff00)})
        fs = self.rootfs({'/u.efi': data})
        with open(fs.resolve('/u.efi').host_path, 'r+b') as f:
            f.truncate(0x80001000)
        exc = self.assertRaises(errors.TooLarge, uki.inspect, fs, '/u.efi')
        self.assertEqual(protocol.REASON_TOO_LARGE, exc.reason)
        self.assertLess(fs.budget.bytes_read, 2 * uki.HEADER_MAX)

    def test_symlink_out_of_image(self):
        fs = self.rootfs({'/u.efi': trees.Link('../../../../etc/passwd')})
        self.assertRaises(errors.UnsafePath, uki.inspect, fs, '/u.efi')
