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

"""Unified Kernel Images: a PE/COFF file with the kernel, initrd and
command line in sections (Boot Loader Specification Type #2 entries).

Debian 12's kexec-tools (2.0.25) cannot load a UKI, so its ``.linux``
and ``.initrd`` sections are copied out at load time. The file is the
tenant's: only its headers (at most HEADER_MAX bytes) are parsed, every
section must lie inside the file, and each section is read with its own
bound.

Sections are located as systemd 252 does (src/boot/efi/pe.c): by the
8-byte name, the data at PointerToRawData, VirtualSize bytes long (the
raw size is padded to the file alignment); a later section of the same
name wins.
"""

import logging
import os
import struct

from ipa_kexec.bootloader import entry as entry_mod
from ipa_kexec import budget as budget_mod
from ipa_kexec import errors
from ironic_kexec import protocol

LOG = logging.getLogger(__name__)

LINUX = '.linux'
INITRD = '.initrd'
CMDLINE = '.cmdline'
OSREL = '.osrel'
UNAME = '.uname'

# The DOS stub, PE header, optional header and section table of every
# real UKI fit in a few KiB; read no more than this of a hostile one.
HEADER_MAX = 64 * 1024
FIRST_READ = 4096
# PE/COFF allows 96 sections in practice (the Windows loader's limit).
MAX_SECTIONS = 96
SECTION_HEADER = 40
MAX_OSREL = 64 * 1024
MAX_UNAME = 256
COPY_CHUNK = 1024 * 1024


class Section(object):
    def __init__(self, name, offset, size):
        self.name = name
        self.offset = offset
        self.size = size

    def __repr__(self):
        return 'Section(%r, %d, %d)' % (self.name, self.offset, self.size)


def _bad(path, why):
    return errors.KexecError(protocol.REASON_NO_KERNEL,
                             '%s is no usable Unified Kernel Image: %s'
                             % (path, why))


def _extend(rootfs, path, data, need):
    # Read on to ``need`` bytes (never past HEADER_MAX): headers are read
    # once, however they are laid out.
    if need > len(data):
        data += rootfs.read_range(path, len(data), need - len(data))
    if need > len(data):
        raise _bad(path, 'the file is shorter than its headers')
    return data


def _header(rootfs, path, file_size):
    data = rootfs.read_range(path, 0, min(FIRST_READ, file_size))
    if len(data) < 64 or data[:2] != b'MZ':
        raise _bad(path, 'no MZ header')
    (pe_offset,) = struct.unpack_from('<I', data, 0x3c)
    if pe_offset + 24 > HEADER_MAX:
        raise _bad(path, 'PE header outside the first %d bytes'
                   % HEADER_MAX)
    data = _extend(rootfs, path, data, pe_offset + 24)
    if data[pe_offset:pe_offset + 4] != b'PE\0\0':
        raise _bad(path, 'no PE signature')
    nsections, = struct.unpack_from('<H', data, pe_offset + 6)
    opt_size, = struct.unpack_from('<H', data, pe_offset + 20)
    if nsections > MAX_SECTIONS:
        raise _bad(path, '%d sections, more than %d'
                   % (nsections, MAX_SECTIONS))
    table = pe_offset + 24 + opt_size
    end = table + nsections * SECTION_HEADER
    if end > HEADER_MAX:
        raise _bad(path, 'section table outside the first %d bytes'
                   % HEADER_MAX)
    return _extend(rootfs, path, data, end), table, nsections


def sections(rootfs, path):
    """The named sections of a UKI: {name: Section}.

    :raises: KexecError (no_kernel) for a file that is no PE image or
        whose section table is out of bounds; NotFoundInImage.
    """
    found = rootfs.find_file(path)
    if found is None:
        raise errors.NotFoundInImage(path)
    file_size = found.stat.st_size
    data, table, nsections = _header(rootfs, path, file_size)
    result = {}
    for i in range(nsections):
        base = table + i * SECTION_HEADER
        raw_name = data[base:base + 8].split(b'\0', 1)[0]
        vsize, _vaddr, raw_size, raw_ptr = struct.unpack_from(
            '<IIII', data, base + 8)
        try:
            name = raw_name.decode('ascii')
        except UnicodeDecodeError:
            continue
        size = vsize if vsize else raw_size
        # The zero fill past the raw data is no part of the file: the
        # sections that matter here never have one.
        size = min(size, raw_size)
        if raw_ptr + size > file_size:
            raise _bad(path, 'section %r runs past the end of the file'
                       % name)
        # systemd 252's pe_locate_sections: a later one of the same name
        # overwrites an earlier one.
        result[name] = Section(name, raw_ptr, size)
    return result


def has_section(rootfs, path, name):
    return name in sections(rootfs, path)


def read_section(rootfs, path, name, limit, table=None):
    """The bytes of a small section, or None if the UKI has none."""
    table = table if table is not None else sections(rootfs, path)
    section = table.get(name)
    if section is None:
        return None
    if section.size > limit:
        raise errors.TooLarge('section %s of %s is larger than %d bytes'
                              % (name, path, limit))
    data = rootfs.read_range(path, section.offset, section.size)
    if len(data) != section.size:
        raise _bad(path, 'section %s is cut short' % name)
    return data


def copy_section(rootfs, path, name, out, limit=budget_mod.MAX_PAYLOAD):
    """Copy a section (the kernel, the initrd) to ``out``.

    :param out: has ``write(bytes)``; the lead's copier bounds the total.
    :param limit: the largest section accepted.
    :returns: the number of bytes copied.
    """
    section = sections(rootfs, path).get(name)
    if section is None:
        raise _bad(path, 'no %s section' % name)
    if section.size > limit:
        raise errors.TooLarge('section %s of %s is larger than %d bytes'
                              % (name, path, limit))
    found, f = rootfs.open_file(path)
    copied = 0
    with f:
        f.seek(section.offset, os.SEEK_SET)
        while copied < section.size:
            rootfs.budget.tick()
            data = f.read(min(COPY_CHUNK, section.size - copied))
            if not data:
                raise _bad(path, 'section %s is cut short' % name)
            out.write(data)
            copied += len(data)
    return copied


def cmdline(data):
    """A ``.cmdline`` section as systemd 252 uses it.

    ``mangle_stub_cmdline``: control characters become spaces and
    trailing spaces go; a NUL ends the string as it would in C.
    """
    text = data.split(b'\0', 1)[0].decode('utf-8', 'replace')
    text = ''.join(' ' if ord(c) < 0x20 else c for c in text)
    return entry_mod.normalize_cmdline(text)


def parse_os_release(data):
    """``key=value`` lines as systemd's line_get_key_value reads them."""
    result = {}
    text = data.split(b'\0', 1)[0].decode('utf-8', 'replace')
    for line in text.replace('\r', '\n').split('\n'):
        line = line.strip(' \t')
        if not line or line.startswith('#') or '=' not in line:
            continue
        key, value = line.split('=', 1)
        # line_get_key_value(content, "=", ...): the key ends at the
        # first "=", the value starts after any further ones.
        value = value.lstrip('=')
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        result[key] = value
    return result


def pick_name_version_sort_key(osrel):
    """systemd's bootspec_pick_name_version_sort_key, or None.

    The title is PRETTY_NAME, else IMAGE_ID, NAME, ID; the version
    IMAGE_VERSION, else VERSION, VERSION_ID, BUILD_ID; the sort key
    IMAGE_ID, else ID. Without a title the UKI is no entry.
    """
    def first(*keys):
        for k in keys:
            if osrel.get(k):
                return osrel[k]
        return None

    name = first('PRETTY_NAME', 'IMAGE_ID', 'NAME', 'ID')
    if name is None:
        return None
    return (name, first('IMAGE_VERSION', 'VERSION', 'VERSION_ID',
                        'BUILD_ID'),
            first('IMAGE_ID', 'ID'))


class UKIInfo(object):
    """What a boot loader menu needs of a UKI."""

    def __init__(self, path, title, version, sort_key, cmdline, uname):
        self.path = path
        self.title = title
        self.version = version
        self.sort_key = sort_key
        self.cmdline = cmdline
        self.uname = uname


def inspect(rootfs, path):
    """Title, version, sort key and command line of a UKI, or None.

    None when it has no ``.osrel`` or ``.linux`` section, or no title
    (systemd-boot 252 lists no entry for it either).
    """
    table = sections(rootfs, path)
    if LINUX not in table:
        LOG.info('%s has no .linux section: no Unified Kernel Image', path)
        return None
    payload = sum(table[name].size for name in (LINUX, INITRD)
                  if name in table)
    if payload > budget_mod.MAX_PAYLOAD:
        # Refused now rather than when copying it at load time.
        raise errors.TooLarge('the kernel and initrd of %s take %d bytes, '
                              'more than %d' % (path, payload,
                                                budget_mod.MAX_PAYLOAD))
    osrel = read_section(rootfs, path, OSREL, MAX_OSREL, table)
    if not osrel:
        return None
    picked = pick_name_version_sort_key(parse_os_release(osrel))
    if picked is None:
        return None
    raw = read_section(rootfs, path, CMDLINE, budget_mod.MAX_CMDLINE,
                       table)
    uname = read_section(rootfs, path, UNAME, MAX_UNAME, table)
    return UKIInfo(path, picked[0], picked[1], picked[2],
                   cmdline(raw) if raw is not None else None,
                   uname.decode('utf-8', 'replace').strip()
                   if uname else None)


def boot_entry(rootfs, path, info=None):
    """The BootEntry for a UKI: its sections are the kernel and initrd.

    The ``.cmdline`` section is the command line (a UKI booted with
    Secure Boot ignores any other); a UKI without one gets the caller's.
    """
    info = info if info is not None else inspect(rootfs, path)
    if info is None:
        return None
    found = rootfs.find_file(path)
    if found is None:
        # Listed under another name than the one it resolves by.
        return None
    return entry_mod.BootEntry(
        found.path, None, entry_mod.check_cmdline(info.cmdline),
        protocol.SOURCE_UKI, uki=found.path)


def find(rootfs, env=None):
    """A UKI on an ESP without systemd-boot (source ``uki``), or None.

    With systemd-boot installed, its source (sdboot.find) lists the UKIs
    among its entries instead.
    """
    # sdboot imports this module; import it here, at call time.
    from ipa_kexec.bootloader import sdboot
    return sdboot.find_uki(rootfs, env)
