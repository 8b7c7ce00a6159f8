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

"""Boot Loader Specification entries as grub's ``blscfg`` reads them.

Fedora, RHEL 8+ and CentOS Stream keep one file per kernel in
``loader/entries``; grub's ``blscfg`` command (Fedora's grub2,
grub-core/commands/blscfg.c) turns them into menu entries. This module
follows it:

- the entries are read from ``($root)/loader/entries``, else
  ``($root)/boot/loader/entries``, where ``$root`` is the filesystem
  holding ``/boot``; the paths an entry names are prefixed with
  ``($root)``, so they are relative to the directory that holds
  ``loader/`` (``/boot`` in the image, separate or not);
- a line is a key, one space (else a tab) and a value; an empty line
  ends the file; the first ``linux``, ``title`` and ``options`` count,
  every ``initrd`` line counts, in order;
- entries are sorted newest first by their file name, compared as rpm
  compares name-version-release (``bls_cmp``/``vercmp``);
- ``options`` has its ``$var`` replaced from the grubenv (``expand_val``),
  then, as the menu entry is a grub script, is split into arguments by
  grub's quoting rules, which also expands variables once more;
- the default is the grubenv's ``next_entry``, else ``saved_entry``, as
  Fedora's grub.cfg sets ``default``, matched as grub's menu does: by
  id (the file name without ``.conf``), then title, then index.
"""

import functools
import logging

from ipa_kexec.bootloader import entry as entry_mod
from ipa_kexec import budget as budget_mod
from ipa_kexec import errors
from ironic_kexec import protocol

LOG = logging.getLogger(__name__)

# (entries directory, the directory its paths are relative to), in the
# order grub's blscfg tries them (find_entry: blsdir, then the fallback).
ENTRY_DIRS = (('/loader/entries', '/'), ('/boot/loader/entries', '/boot'))
ENTRIES_DIR = '/boot/loader/entries'
MAX_ENTRY_SIZE = 64 * 1024
SUFFIX = '.conf'
_NAME_CHARS = frozenset('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'
                        '0123456789_')
_ALNUM = _NAME_CHARS - {'_'}


class BLSEntry(object):
    """One entry file: its id and its keys, in file order."""

    def __init__(self, entry_id, pairs):
        self.id = entry_id
        self.pairs = pairs
        self.title = self.first('title')
        self.version = self.first('version')
        self.linux = self.first('linux')
        self.options = self.first('options')
        self.initrds = [v for k, v in pairs if k == 'initrd']

    def first(self, key):
        # blscfg's bls_get_val: the first line with that key.
        for k, v in self.pairs:
            if k == key:
                return v
        return None

    def __repr__(self):
        return 'BLSEntry(%r)' % self.id


def parse_entry(entry_id, text):
    """Parse an entry file as blscfg's ``read_entry`` does."""
    pairs = []
    for line in text.replace('\r', '').split('\n'):
        # grub keeps the line as a C string: it ends at a NUL.
        line = line.split('\0', 1)[0].lstrip(' \t')
        if line.startswith('#'):
            continue
        # A space anywhere wins over an earlier tab, as strchr(' ') is
        # tried first; no separator, or nothing after it, ends the file.
        sep = line.find(' ')
        if sep < 0:
            sep = line.find('\t')
        if sep < 0 or sep == len(line) - 1:
            break
        pairs.append((line[:sep], line[sep + 1:].lstrip(' \t')))
    return BLSEntry(entry_id, pairs)


def _segments(text):
    """rpm's version segments of ``text``: ('~'|'+'|'n'|'a', value)."""
    out = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in '~+':
            out.append((c, ''))
            i += 1
        elif c.isascii() and c.isdigit():
            j = i
            while j < n and text[j].isascii() and text[j].isdigit():
                j += 1
            out.append(('n', text[i:j].lstrip('0')))
            i = j
        elif c.isascii() and c.isalpha():
            j = i
            while j < n and text[j].isascii() and text[j].isalpha():
                j += 1
            out.append(('a', text[i:j]))
            i = j
        else:
            i += 1
    return out


def vercmp(a, b):
    """Compare two versions as rpm (and blscfg's ``vercmp``) do: 1, 0, -1.

    Linear in the length of the strings, which are cut at
    :data:`entry.MAX_VERSION`.
    """
    a = a[:entry_mod.MAX_VERSION]
    b = b[:entry_mod.MAX_VERSION]
    if a == b:
        return 0
    sa = _segments(a)
    sb = _segments(b)
    i = 0
    while True:
        one = sa[i] if i < len(sa) else None
        two = sb[i] if i < len(sb) else None
        i += 1
        if one is None and two is None:
            return 0
        if (one and one[0] == '~') or (two and two[0] == '~'):
            # A tilde sorts before everything, the end included.
            if not one or one[0] != '~':
                return 1
            if not two or two[0] != '~':
                return -1
            continue
        if (one and one[0] == '+') or (two and two[0] == '+'):
            # A plus sorts after the end, before anything else.
            if one is None:
                return -1
            if two is None:
                return 1
            if one[0] != '+':
                return 1
            if two[0] != '+':
                return -1
            continue
        if one is None:
            return -1
        if two is None:
            return 1
        if one[0] != two[0]:
            # Numeric segments are newer than alphabetic ones.
            return 1 if one[0] == 'n' else -1
        x, y = one[1], two[1]
        if one[0] == 'n' and len(x) != len(y):
            return 1 if len(x) > len(y) else -1
        if x != y:
            return 1 if x > y else -1


def _split_nvr(text):
    # blscfg's split_package_string with a name: the last "-" starts
    # the release, the one before it the version.
    name, sep, release = text.rpartition('-')
    if not sep:
        return text, '', ''
    name2, sep2, version = name.rpartition('-')
    if not sep2:
        return name, release, ''
    return name2, version, release


def bls_cmp(id0, id1):
    """blscfg's ``bls_cmp``: 1 if ``id0`` is newer than ``id1``."""
    for x, y in zip(_split_nvr(id0), _split_nvr(id1)):
        r = vercmp(x, y)
        if r:
            return r
    return 0


def _sort(entries, budget):
    """Newest first, dropping entries equal to one already listed.

    blscfg inserts each entry before the first older one and drops one
    that compares equal to an entry already in the list.
    """
    def _cmp(a, b):
        budget.tick()
        return -bls_cmp(a.id, b.id)

    ordered = sorted(entries, key=functools.cmp_to_key(_cmp))
    result = []
    for e in ordered:
        if result and bls_cmp(result[-1].id, e.id) == 0:
            LOG.debug('BLS entry %s sorts equal to %s, ignored as blscfg '
                      'does', e.id, result[-1].id)
            continue
        result.append(e)
    return result


def entries_dir(rootfs):
    """(entries directory, base directory) grub reads, or (None, None)."""
    if rootfs.is_mountpoint('/boot'):
        # $root is /boot's own filesystem: its /loader/entries.
        dirs = (ENTRY_DIRS[1],)
    else:
        dirs = ENTRY_DIRS
    for path, base in dirs:
        if rootfs.is_dir(path):
            return path, base
    return None, None


def load_entries(rootfs, budget=None):
    """The entries grub's blscfg reads, newest first, and their base.

    :returns: (list of BLSEntry, base directory); entries without a
        ``linux`` line are left out, as blscfg makes no menu entry of
        them.
    :raises: TooLarge for an entries directory of too many names.
    """
    budget = budget if budget is not None else rootfs.budget
    directory, base = entries_dir(rootfs)
    if directory is None:
        return [], None
    entries = []
    for name in rootfs.listdir(directory):
        budget.tick()
        if (name.startswith('.') or len(name) <= len(SUFFIX)
                or not name.endswith(SUFFIX)):
            continue
        budget.entries(1, '%s/%s' % (directory, name))
        try:
            text = rootfs.read_text('%s/%s' % (directory, name),
                                    MAX_ENTRY_SIZE)
        except errors.NotFoundInImage:
            continue
        entry = parse_entry(name[:-len(SUFFIX)], text)
        if entry.linux:
            entries.append(entry)
        else:
            LOG.debug('BLS entry %s has no linux line, skipped', name)
    return _sort(entries, budget), base


def expand_val(text, variables, budget):
    """blscfg's ``expand_val``: ``$name`` becomes its value and a space.

    An unset variable is dropped; ``\\$`` is left for the script's own
    parser. One pass: a value is not expanded again here.
    """
    out = []
    i = 0
    n = len(text)
    start = 0
    while i < n:
        if text[i] == '$' and (i == 0 or text[i - 1] != '\\'):
            out.append(text[start:i])
            j = i + 1
            while j < n and text[j] in _NAME_CHARS:
                j += 1
            value = variables.get(text[i + 1:j]) if j > i + 1 else None
            if isinstance(value, str):
                budget.expanded(len(value) + 1, 'BLS options')
                out.append(value + ' ')
            i = start = j
            budget.tick()
            continue
        i += 1
    out.append(text[start:])
    return ''.join(out)


class _Words(object):
    """Arguments being built: words, and whether one is open."""

    def __init__(self, budget):
        self.args = []
        self.word = []
        self.open = False
        self.budget = budget

    def add(self, text):
        self.word.append(text)
        self.open = True

    def end(self):
        if self.open:
            self.budget.tick()
            self.args.append(''.join(self.word))
        self.word = []
        self.open = False

    def add_split(self, value):
        # An unquoted expansion: the value's blanks separate arguments.
        for k, part in enumerate(value.split(' ') if value else ()):
            if k:
                self.end()
            if part:
                self.add(part)


def _variable(text, pos, variables, budget, what):
    """(value, next position) for the ``$`` at ``pos``.

    The value is None when no variable name follows the ``$``.
    """
    n = len(text)
    if pos + 1 < n and text[pos + 1] == '{':
        end = text.find('}', pos + 2)
        if end < 0:
            return None, pos + 1
        name = text[pos + 2:end]
        nxt = end + 1
    else:
        nxt = pos + 1
        while nxt < n and text[nxt] in _NAME_CHARS:
            nxt += 1
        name = text[pos + 1:nxt]
    if not name:
        return None, pos + 1
    value = variables.get(name)
    value = value if isinstance(value, str) else ''
    budget.expanded(len(value), what)
    return value, nxt


def _double_quoted(text, i, words, variables, budget, what):
    """Scan a ``"..."`` body from ``i``; returns the position after it."""
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            return i + 1
        if c == '\\' and i + 1 < n and text[i + 1] in '$"\\':
            words.add(text[i + 1])
            i += 2
        elif c == '$':
            value, i = _variable(text, i, variables, budget, what)
            words.add('$' if value is None else value)
        else:
            words.add(c)
            i += 1
    return n


def split_args(text, variables, budget, what='BLS options'):
    """Split a grub script command's arguments, as grub's lexer does.

    Blanks separate words; ``'...'`` is literal; in ``"..."`` a
    backslash escapes ``$``, ``"`` and ``\\``; outside quotes a
    backslash escapes any character. ``$name`` and ``${name}`` expand
    (not inside single quotes); an unquoted value splits into words, a
    quoted one does not. Linear in the input plus what expands; an
    unterminated quote runs to the end.
    """
    words = _Words(budget)
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in ' \t\n':
            words.end()
            i += 1
        elif c == "'":
            end = text.find("'", i + 1)
            end = n if end < 0 else end
            words.add(text[i + 1:end])
            i = end + 1
        elif c == '"':
            words.add('')
            i = _double_quoted(text, i + 1, words, variables, budget, what)
        elif c == '\\' and i + 1 < n:
            words.add(text[i + 1])
            i += 2
        elif c == '$':
            value, i = _variable(text, i, variables, budget, what)
            if value is None:
                words.add('$')
            else:
                words.add_split(value)
        else:
            words.add(c)
            i += 1
    words.end()
    return [a for a in words.args if a]


def choose(entries, env):
    """The default entry given the grubenv variables.

    Fedora's grub.cfg sets ``default`` to ``next_entry`` when set, else
    to ``saved_entry``; grub's menu matches it by id (up to the first
    blank), then by title, then as an index; anything else, or an index
    past the end, boots the first entry.
    """
    wanted = env.get('next_entry') or env.get('saved_entry')
    if not isinstance(wanted, str) or not wanted:
        return entries[0]
    first_word = wanted.split(None, 1)[0] if wanted.strip() else ''
    for e in entries:
        if e.id == first_word:
            return e
    for e in entries:
        if e.title == wanted:
            return e
    index = entry_mod.parse_index(wanted)
    if index is not None and index < len(entries):
        return entries[index]
    LOG.info('grubenv default %r matches no BLS entry, grub boots the '
             'first one', wanted[:256])
    return entries[0]


def _initrds(chosen, env, budget):
    names = []
    early = env.get('early_initrd')
    if isinstance(early, str) and early:
        # blscfg puts $early_initrd first, in the directory of the first
        # initrd (else of the kernel).
        ref = chosen.initrds[0] if chosen.initrds else chosen.linux
        prefix = ref[:ref.rfind('/') + 1]
        for name in early.split(' '):
            if name:
                names.append(prefix + name)
    for value in chosen.initrds:
        names.extend(split_args(value, env, budget, 'BLS initrd'))
    return names


def build(rootfs, chosen, base, env, budget=None):
    """The BootEntry for a chosen BLS entry, or None."""
    budget = budget if budget is not None else rootfs.budget
    options = chosen.options
    if options is None:
        options = env.get('default_kernelopts')
    args = []
    if isinstance(options, str):
        args = split_args(expand_val(options, env, budget), env, budget)
    kernel = split_args(chosen.linux, env, budget, 'BLS linux')
    if not kernel:
        return None
    # grub runs "linux ($root)<linux> <options>": any word after the
    # path is an argument too.
    args = kernel[1:] + args
    return entry_mod.from_loader(rootfs, chosen.id, kernel[0],
                                 _initrds(chosen, env, budget), args, env,
                                 protocol.SOURCE_BLS, boot_dir=base)


def find(rootfs, env):
    """The default BLS entry as a BootEntry, or None if there is none."""
    budget = budget_mod.ensure(getattr(rootfs, 'budget', None))
    entries, base = load_entries(rootfs, budget)
    if not entries:
        return None
    chosen = choose(entries, env or {})
    LOG.debug('BLS entries %s, chosen %s', [e.id for e in entries[:16]],
              chosen.id)
    return build(rootfs, chosen, base, env or {}, budget)
