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

"""systemd-boot: Type #1 entries and Type #2 UKIs, chosen as it does.

Followed: systemd 252's src/boot/efi/boot.c (Debian 12's systemd-boot)
and src/fundamental/string-util-fundamental.c (strverscmp_improved):

- the ESP is where systemd-boot is installed (``EFI/systemd``), mounted
  at ``/efi``, ``/boot`` or ``/boot/efi``; an XBOOTLDR partition is a
  separate ``/boot`` next to it. Both are read: ``EFI/Linux/*.efi``
  (Type #2) and ``loader/entries/*.conf`` (Type #1), whose paths are
  relative to the partition holding the entry;
- an entry file is ``key value`` lines (``line_get_key_value``); the
  last ``linux``, ``title``... wins, every ``initrd`` line is one path,
  ``options`` lines are joined with a space; an entry whose ``linux``
  is missing, or for another ``architecture``, is no entry;
- entries are ordered by ``config_entry_compare`` and the default is
  the first entry whose id (the lower-cased file name, ``.conf`` or
  ``.efi`` and any ``+LEFT-DONE`` counter included) matches the
  ``default`` glob of ``loader/loader.conf`` (``efi_fnmatch``), else the
  first entry.

The EFI variables that can override loader.conf (LoaderEntryOneShot,
LoaderEntryDefault set by ``bootctl set-default``, LoaderEntryLastBooted
for ``@saved``) live in the machine's NVRAM, not in the image: they are
taken as unset, and the log says so.
"""

import functools
import logging
import platform

from ipa_kexec.bootloader import entry as entry_mod
from ipa_kexec.bootloader import uki as uki_mod
from ipa_kexec import budget as budget_mod
from ipa_kexec import errors
from ironic_kexec import protocol

LOG = logging.getLogger(__name__)

ESP_CANDIDATES = ('/efi', '/boot', '/boot/efi')
XBOOTLDR = '/boot'
MAX_ENTRY_SIZE = 64 * 1024
MAX_LOADER_CONF = 64 * 1024
MAX_PATTERN = 1024
# EFI_MACHINE_TYPE_NAME by machine: an entry's "architecture" line.
EFI_ARCH = {'x86_64': 'x64', 'i686': 'ia32', 'i386': 'ia32',
            'aarch64': 'aa64', 'armv7l': 'arm', 'riscv64': 'riscv64',
            'loongarch64': 'loongarch64'}
# parse_number16 of a tries counter: above INT_MAX it is no counter.
_INT_MAX = 2 ** 31 - 1

TYPE1 = 'type1'
TYPE2 = 'type2'


class Entry(object):
    """One systemd-boot menu entry."""

    def __init__(self, kind, partition, file_name):
        self.kind = kind
        self.partition = partition
        self.file_name = file_name
        self.id = file_name.lower()
        self.title = None
        self.version = None
        self.machine_id = None
        self.sort_key = None
        self.linux = None
        self.efi = None
        self.arch = None
        self.initrds = []
        self.options = None
        self.tries_left = -1
        self.tries_done = -1
        self.uki_info = None

    def __repr__(self):
        return 'Entry(%r)' % self.id


def key_values(text, sep):
    """systemd's ``line_get_key_value``: (key, value) of each line.

    Blank and ``#`` lines are skipped, and a line without a separator;
    a value in double quotes loses them. The file is a C string to it:
    it ends at a NUL.
    """
    for line in text.split('\0', 1)[0].replace('\r', '\n').split('\n'):
        line = line.strip(' \t')
        if not line or line.startswith('#'):
            continue
        pos = -1
        for i, c in enumerate(line):
            if c in sep:
                pos = i
                break
        if pos < 0:
            continue
        key = line[:pos]
        value = line[pos + 1:].lstrip(sep)
        if value.startswith('"') and line.endswith('"'):
            value = value[1:-1]
        yield key, value


def _digits(text, pos):
    """parse_number16: (number, end) of ASCII digits at pos, or None."""
    end = pos
    while end < len(text) and '0' <= text[end] <= '9':
        end += 1
    if end == pos or end - pos > 10:
        return None
    return int(text[pos:end]), end


def parse_tries(file_name, suffix):
    """``config_entry_parse_tries``: (left, done) from "+LEFT-DONE".

    None when the name has no valid counter just before ``suffix``.
    """
    plus = file_name.rfind('+')
    if plus < 0:
        return None
    parsed = _digits(file_name, plus + 1)
    if parsed is None or parsed[0] > _INT_MAX:
        return None
    left, pos = parsed
    done = 0
    if pos < len(file_name) and file_name[pos] == '-':
        parsed = _digits(file_name, pos + 1)
        if parsed is None or parsed[0] > _INT_MAX:
            return None
        done, pos = parsed
    # A counter in the middle of the name is none (streq16 in 252).
    if file_name[pos:] != suffix:
        return None
    return left, done


def _is_version_char(c):
    return c.isascii() and (c.isalnum() or c in '~-^.')


def _cmp(x, y):
    return (x > y) - (x < y)


def _char(s, k):
    return s[k] if k < len(s) else ''


def _run(s, k, test):
    while k < len(s) and test(s[k]):
        k += 1
    return k


def _prefix(a, i, b, j, prefix):
    """(order, i, j) past a ``prefix`` both strings have.

    The order is not 0 when only one of them has it.
    """
    x, y = _char(a, i), _char(b, j)
    if x == prefix or y == prefix:
        r = (x != prefix) - (y != prefix)
        if r:
            return r, i, j
        return 0, i + 1, j + 1
    return 0, i, j


def _segment(a, i, b, j):
    """(order, end in a, end in b) of the segments at i and j.

    Both numeric (a number is newer than none), else both alphabetic.
    """
    if _isdigit(_char(a, i)) or _isdigit(_char(b, j)):
        ii, jj = _run(a, i, _isdigit), _run(b, j, _isdigit)
        r = (ii != i) - (jj != j)
        if r:
            return r, ii, jj
        # Leading zeros do not count; then the longer number is newer.
        i, j = _run(a, i, '0'.__eq__), _run(b, j, '0'.__eq__)
        r = _cmp(ii - i, jj - j) or _cmp(a[i:ii], b[j:jj])
        return r, ii, jj
    ii, jj = _run(a, i, _isalpha), _run(b, j, _isalpha)
    m = min(ii - i, jj - j)
    r = _cmp(a[i:i + m], b[j:j + m]) or _cmp(ii - i, jj - j)
    return r, ii, jj


def strverscmp_improved(a, b):
    """systemd's ``strverscmp_improved``: <0, 0 or >0; None is ''.

    Segments are numeric or alphabetic, prefixed by '~' (oldest), '-',
    '^' or '.', in that order of age; other characters separate.
    Linear in the lengths, which are cut at :data:`entry.MAX_VERSION`.
    """
    a = (a or '')[:entry_mod.MAX_VERSION]
    b = (b or '')[:entry_mod.MAX_VERSION]
    i = j = 0
    # Every round consumes a character or returns, within two rounds;
    # the bound only guards against a slip in that reasoning.
    for _round in range(2 * (len(a) + len(b)) + 4):
        i = _run(a, i, lambda c: not _is_version_char(c))
        j = _run(b, j, lambda c: not _is_version_char(c))
        r, i, j = _prefix(a, i, b, j, '~')
        if r:
            return r
        if i >= len(a) or j >= len(b):
            return _cmp(_char(a, i), _char(b, j))
        for prefix in '-^.':
            r, i, j = _prefix(a, i, b, j, prefix)
            if r:
                return r
        r, i, j = _segment(a, i, b, j)
        if r:
            return r
    return _cmp(a, b)


def _isdigit(c):
    return c != '' and '0' <= c <= '9'


def _isalpha(c):
    return c != '' and c.isascii() and c.isalpha()


def _strcmp(a, b):
    # strcmp16 in 252's efi-string.c: a NULL sorts before a string.
    if a is None or b is None:
        return (a is not None) - (b is not None)
    return (a > b) - (a < b)


def compare(a, b):
    """``config_entry_compare`` of systemd 252 (src/boot/efi/boot.c)."""
    # Entries without tries left go last.
    r = (a.tries_left == 0) - (b.tries_left == 0)
    if r:
        return r
    # A sort key on both: sort-key, machine-id, version (newest first);
    # on one only: that one first; on neither: by id alone.
    r = (a.sort_key is None) - (b.sort_key is None)
    if r:
        return r
    if a.sort_key is not None and b.sort_key is not None:
        r = _strcmp(a.sort_key, b.sort_key)
        if r:
            return r
        r = _strcmp(a.machine_id, b.machine_id)
        if r:
            return r
        r = -strverscmp_improved(a.version, b.version)
        if r:
            return r
    r = -strverscmp_improved(a.id, b.id)
    if r:
        return r
    if a.tries_left < 0 or b.tries_left < 0:
        return 0
    r = -((a.tries_left > b.tries_left) - (a.tries_left < b.tries_left))
    if r:
        return r
    return (a.tries_done > b.tries_done) - (a.tries_done < b.tries_done)


def fnmatch(pattern, name):
    """``efi_fnmatch``: ``*``, ``?``, ``[a-z]`` sets and ``\\`` escapes.

    Case-sensitive (both sides are lower-cased before); a malformed set
    matches nothing. Iterative, with one backtracking point: O(len(pattern)
    * len(name)) at worst.
    """
    p = n = 0
    star_p = star_n = -1
    while n < len(name):
        if p < len(pattern) and pattern[p] == '*':
            star_p, star_n = p, n
            p += 1
            continue
        step = _match_one(pattern, p, name[n]) if p < len(pattern) else None
        if step:
            p = step
            n += 1
            continue
        if step is False or star_p < 0:
            return False
        star_n += 1
        p, n = star_p + 1, star_n
    while p < len(pattern) and pattern[p] == '*':
        p += 1
    return p == len(pattern)


def _match_one(pattern, p, c):
    """The pattern position after matching ``c`` at ``p``.

    None if ``c`` does not match; False if the pattern is malformed.
    """
    t = pattern[p]
    if t == '?':
        return p + 1
    if t == '\\':
        if p + 1 >= len(pattern):
            return False
        return p + 2 if pattern[p + 1] == c else None
    if t != '[':
        return p + 1 if t == c else None
    q = p + 1
    matched = False
    while q < len(pattern) and pattern[q] != ']':
        lo = pattern[q]
        if q + 2 < len(pattern) and pattern[q + 1] == '-' and \
                pattern[q + 2] != ']':
            if lo <= c <= pattern[q + 2]:
                matched = True
            q += 3
        else:
            if lo == c:
                matched = True
            q += 1
    if q >= len(pattern):
        return False
    return q + 1 if matched else None


def _join(partition, path):
    return partition.rstrip('/') + '/' + path.replace('\\', '/').lstrip('/')


def _child(rootfs, directory, name):
    """``directory/name``, the name matched case-insensitively.

    As on the FAT filesystem of an ESP; None if absent.
    """
    exact = _join(directory, name)
    if rootfs.exists(exact):
        return exact
    for candidate in rootfs.listdir(directory):
        if candidate.lower() == name.lower():
            return _join(directory, candidate)
    return None


def _installed(rootfs, esp):
    efi = _child(rootfs, esp, 'EFI')
    systemd = _child(rootfs, efi, 'systemd') if efi else None
    if systemd is None:
        return False
    return any(n.lower().startswith('systemd-boot') and
               n.lower().endswith('.efi')
               for n in rootfs.listdir(systemd))


def _xbootldr(rootfs, esp):
    if esp != XBOOTLDR and rootfs.is_mountpoint(XBOOTLDR):
        return XBOOTLDR
    return None


def partitions(rootfs):
    """(ESP, XBOOTLDR or None) where systemd-boot is installed, or None."""
    for esp in ESP_CANDIDATES:
        if rootfs.is_dir(esp) and _installed(rootfs, esp):
            return esp, _xbootldr(rootfs, esp)
    return None


def uki_partitions(rootfs):
    """(ESP, XBOOTLDR or None) holding ``EFI/Linux``, or None."""
    for esp in ESP_CANDIDATES:
        if not rootfs.is_dir(esp):
            continue
        efi = _child(rootfs, esp, 'EFI')
        if efi and _child(rootfs, efi, 'Linux'):
            return esp, _xbootldr(rootfs, esp)
    return None


def _arch():
    return EFI_ARCH.get(platform.machine(), platform.machine())


def parse_type1(partition, file_name, text):
    """An Entry from a Type #1 file (``config_entry_add_type1``)."""
    entry = Entry(TYPE1, partition, file_name)
    for key, value in key_values(text, ' \t'):
        if key == 'title':
            entry.title = value
        elif key == 'sort-key':
            entry.sort_key = value
        elif key == 'version':
            entry.version = value
        elif key == 'machine-id':
            entry.machine_id = value
        elif key == 'linux':
            entry.linux, entry.efi = value, None
        elif key == 'efi':
            entry.efi, entry.linux = value, None
        elif key == 'architecture':
            entry.arch = value
            if value != _arch():
                return None
        elif key == 'initrd':
            entry.initrds.append(value)
        elif key == 'options':
            entry.options = (value if entry.options is None
                             else entry.options + ' ' + value)
    tries = parse_tries(file_name, '.conf')
    if tries is not None:
        entry.tries_left, entry.tries_done = tries
    return entry


def _type1_entries(rootfs, partition, budget):
    directory = _child(rootfs, partition, 'loader')
    directory = _child(rootfs, directory, 'entries') if directory else None
    if directory is None:
        return []
    result = []
    for name in rootfs.listdir(directory):
        budget.tick()
        low = name.lower()
        if (name.startswith('.') or not low.endswith('.conf')
                or name.startswith('auto-')):
            continue
        path = _join(directory, name)
        found = rootfs.find(path)
        if found is None or not found.is_file():
            continue
        budget.entries(1, path)
        entry = parse_type1(partition, name,
                            rootfs.read_text(path, MAX_ENTRY_SIZE))
        if entry is None:
            LOG.debug('systemd-boot entry %s is for another architecture',
                      path)
            continue
        if entry.linux is None and entry.efi is None:
            continue
        loader = entry.linux if entry.linux is not None else entry.efi
        # config_entry_add_type1 drops an entry whose loader is missing.
        if rootfs.find_file(_join(partition, loader)) is None:
            LOG.info('systemd-boot entry %s names %s, not on its '
                     'partition: no entry', path, loader)
            continue
        result.append(entry)
    return result


def _type2_entries(rootfs, partition, budget):
    directory = _child(rootfs, partition, 'EFI')
    directory = _child(rootfs, directory, 'Linux') if directory else None
    if directory is None:
        return []
    result = []
    for name in rootfs.listdir(directory):
        budget.tick()
        if (name.startswith('.') or not name.lower().endswith('.efi')
                or name.startswith('auto-')):
            continue
        path = _join(directory, name)
        if rootfs.find_file(path) is None:
            continue
        budget.entries(1, path)
        try:
            info = uki_mod.inspect(rootfs, path)
        except errors.BudgetExhausted:
            raise
        except errors.KexecError as e:
            # systemd-boot lists no entry for a file it cannot parse.
            LOG.info('%s is no usable UKI (%s), skipped', path,
                     e.reason_message)
            continue
        if info is None:
            continue
        entry = Entry(TYPE2, partition, name)
        entry.title = info.title
        entry.version = info.version
        entry.sort_key = info.sort_key
        entry.options = info.cmdline
        entry.uki_info = info
        tries = parse_tries(name, '.efi')
        if tries is not None:
            entry.tries_left, entry.tries_done = tries
        result.append(entry)
    return result


def read_default(rootfs, esp):
    """loader.conf's ``default`` (lower-cased), '@saved', or None."""
    directory = _child(rootfs, esp, 'loader')
    path = _child(rootfs, directory, 'loader.conf') if directory else None
    if path is None or rootfs.find_file(path) is None:
        return None
    default = None
    for key, value in key_values(rootfs.read_text(path, MAX_LOADER_CONF),
                                 ' \t'):
        if key != 'default':
            continue
        if value.startswith('@') and value != '@saved':
            LOG.info('loader.conf: unsupported default %r, ignored as '
                     'systemd-boot 252 does', value[:64])
            continue
        default = value
    if default is not None and len(default) > MAX_PATTERN:
        raise errors.TooLarge('loader.conf default is longer than %d '
                              'characters' % MAX_PATTERN)
    return default.lower() if default is not None else None


def load_entries(rootfs, budget=None):
    """(sorted entries, default pattern or None).

    None when systemd-boot is not installed in the image.
    """
    budget = budget if budget is not None else rootfs.budget
    found = partitions(rootfs)
    if found is None:
        return None
    esp, xbootldr = found
    entries = []
    for partition in (esp, xbootldr):
        if partition is None:
            continue
        entries.extend(_type2_entries(rootfs, partition, budget))
        entries.extend(_type1_entries(rootfs, partition, budget))

    def _cmp(a, b):
        budget.tick()
        return compare(a, b)

    entries.sort(key=functools.cmp_to_key(_cmp))
    return entries, read_default(rootfs, esp)


def choose(entries, default, budget=None):
    """``config_default_entry_select`` without the EFI variables."""
    budget = budget_mod.ensure(budget)
    LOG.info('systemd-boot: the LoaderEntryOneShot and LoaderEntryDefault '
             'EFI variables are not in the image; taken as unset')
    if default == '@saved':
        LOG.warning('systemd-boot: loader.conf says "default @saved": the '
                    'last booted entry is kept in the LoaderEntryLastBooted '
                    'EFI variable, not in the image; using the first entry')
    elif default is not None:
        for entry in entries:
            budget.tick()
            if fnmatch(default, entry.id):
                return entry
        LOG.info('systemd-boot: default %r matches no entry, the first '
                 'one boots', default[:256])
    return entries[0]


def _bootable(entries):
    result = []
    for entry in entries:
        if entry.kind == TYPE1 and entry.linux is None:
            LOG.info('systemd-boot entry %s starts an EFI program, which '
                     'kexec cannot boot: skipped', entry.id)
            continue
        result.append(entry)
    return result


def build(rootfs, entry):
    """The BootEntry for a systemd-boot entry, or None."""
    if entry.kind == TYPE2:
        return uki_mod.boot_entry(rootfs, _join(entry.partition,
                                                'EFI/Linux/' +
                                                entry.file_name),
                                  entry.uki_info)
    kernel = rootfs.find_file(_join(entry.partition, entry.linux))
    if kernel is None:
        return None
    initrds = []
    for name in entry.initrds:
        found = rootfs.find_file(_join(entry.partition, name))
        if found is None:
            LOG.warning('systemd-boot entry %s names initrd %s, not on its '
                        'partition', entry.id, name)
            return None
        initrds.append(found.path)
    cmdline = (entry_mod.normalize_cmdline(entry.options)
               if entry.options is not None else None)
    return entry_mod.BootEntry(kernel.path, initrds,
                               entry_mod.check_cmdline(cmdline),
                               protocol.SOURCE_SYSTEMD_BOOT)


def find_uki(rootfs, env=None):
    """The newest UKI in ``EFI/Linux`` when no systemd-boot is installed.

    The firmware then starts a UKI from its own Boot#### variables,
    which are not in the image; the UKI systemd-boot would list first
    (by its order) is the best guess, and the log says so.
    """
    budget = budget_mod.ensure(getattr(rootfs, 'budget', None))
    if partitions(rootfs) is not None:
        # systemd-boot is installed: its own source chooses.
        return None
    found = uki_partitions(rootfs)
    if found is None:
        return None
    entries = []
    for partition in found:
        if partition is not None:
            entries.extend(_type2_entries(rootfs, partition, budget))
    if not entries:
        return None
    entries.sort(key=functools.cmp_to_key(compare))
    LOG.info('No boot loader lists the Unified Kernel Images in the image; '
             'the firmware boot entries are not in it: choosing %s, the '
             'first in systemd-boot order', entries[0].id)
    return build(rootfs, entries[0])


def find(rootfs, env=None):
    """The entry systemd-boot boots by default, or None."""
    budget = budget_mod.ensure(getattr(rootfs, 'budget', None))
    loaded = load_entries(rootfs, budget)
    if loaded is None:
        return None
    entries, default = loaded
    entries = _bootable(entries)
    if not entries:
        return None
    chosen = choose(entries, default, budget)
    LOG.debug('systemd-boot entries %s, chosen %s',
              [e.id for e in entries[:16]], chosen.id)
    return build(rootfs, chosen)
