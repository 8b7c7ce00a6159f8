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

"""The instance's kernel command line when its boot entry has none.

Never the agent's own ``/proc/cmdline``: its ``ipa-*`` and ``BOOTIF``
arguments must not reach the instance.

The files read here are the tenant's: every parser is one pass over its
input, expansions are charged to the discovery budget, and a result is
never longer than ``budget.MAX_CMDLINE``.
"""

import logging
import re

from ipa_kexec.bootloader import entry as entry_mod
from ipa_kexec import budget as budget_mod
from ipa_kexec import errors

LOG = logging.getLogger(__name__)

KERNEL_CMDLINE = '/etc/kernel/cmdline'
DEFAULT_GRUB = '/etc/default/grub'
DEFAULT_GRUB_D = '/etc/default/grub.d'
FSTAB = '/etc/fstab'
_GRUB_VARS = ('GRUB_CMDLINE_LINUX', 'GRUB_CMDLINE_LINUX_DEFAULT')

# Ends a shell word (outside quotes).
_WORD_END = frozenset(' \t\n;&|<>()')
_NAME_START = frozenset('abcdefghijklmnopqrstuvwxyz'
                        'ABCDEFGHIJKLMNOPQRSTUVWXYZ_')
_NAME_CHARS = _NAME_START | frozenset('0123456789')
_DECLARATIONS = ('export', 'readonly', 'local', 'declare', 'typeset')
# Inside double quotes a backslash only escapes these (POSIX 2.2.3).
_DQUOTE_ESCAPES = frozenset('$`"\\\n')
# Runs of characters with no meaning to the scanner, taken whole: one
# character class each, so matching is linear and never backtracks.
_PLAIN_RUN = re.compile(r'[^\\$`"\'= \t\n;&|<>()]+')
_DQUOTED_RUN = re.compile(r'[^\\$`"]+')


class _Word(object):
    __slots__ = ('chars', 'name', 'plain', 'unsupported')

    def __init__(self):
        self.chars = []
        # The NAME of NAME=value, once its unquoted '=' was seen.
        self.name = None
        # No quote, escape or expansion before the first '=' yet: only
        # then is the word an assignment.
        self.plain = True
        # Needs what is never done here (a command substitution, an
        # expansion with an operator, an unterminated quote): the
        # assignment is left out rather than guessed.
        self.unsupported = False


class _ShellScanner(object):
    """POSIX shell words and commands, as much as assignments need.

    One pass: each character of the input is looked at a bounded number
    of times, and each character an expansion produces is charged to the
    budget.
    """

    def __init__(self, text, budget, variables):
        # bash drops NUL bytes of a script (with a warning); so do we.
        self.text = text.replace('\0', '')
        self.pos = 0
        self.budget = budget
        self.variables = variables
        # The assignments of the command being read: the shell performs
        # them in order, so a later word sees an earlier one's value.
        self.pending = {}

    def _skip_to(self, closing, opening=None):
        """Move past the matching ``closing`` (nesting on ``opening``)."""
        text, depth, pos = self.text, 1, self.pos
        while pos < len(text):
            c = text[pos]
            pos += 1
            if c == '\\':
                pos += 1
            elif c == opening:
                depth += 1
            elif c == closing:
                depth -= 1
                if depth == 0:
                    break
        self.pos = pos

    def _expand(self, word):
        """``$NAME`` or ``${NAME}`` at self.pos (on the '$')."""
        text, pos = self.text, self.pos + 1
        nxt = text[pos:pos + 1]
        if nxt == '{':
            end = pos + 1
            while end < len(text) and text[end] in _NAME_CHARS:
                end += 1
            name = text[pos + 1:end]
            if text[end:end + 1] != '}' or not _is_name(name):
                # ${#X}, ${X:-y}, ${X%y}...
                word.unsupported = True
                self.pos = pos + 1
                self._skip_to('}', '{')
                return
            self.pos = end + 1
        elif nxt and nxt in _NAME_START:
            end = pos
            while end < len(text) and text[end] in _NAME_CHARS:
                end += 1
            name = text[pos:end]
            self.pos = end
        elif nxt == '(':
            # $(cmd) or $((arithmetic)): a program's output.
            word.unsupported = True
            self.pos = pos + 1
            self._skip_to(')', '(')
            return
        elif nxt and nxt in '0123456789#?*@!$-':
            # The script's arguments, status, pids: not known here.
            word.unsupported = True
            self.pos = pos + 1
            return
        else:
            # A lone '$' is a literal.
            word.chars.append('$')
            self.pos = pos
            return
        value = self.pending.get(name, self.variables.get(name, ''))
        if value:
            self.budget.expanded(len(value),
                                 '$%s in %s' % (name, DEFAULT_GRUB))
            word.chars.append(value)

    def _word(self):
        """The word at self.pos; self.pos ends on its first separator."""
        text = self.text
        word = _Word()
        quote = None
        while self.pos < len(text):
            run = (_PLAIN_RUN if quote is None else
                   _DQUOTED_RUN if quote == '"' else None)
            match = run.match(text, self.pos) if run is not None else None
            if match is not None:
                word.chars.append(match.group())
                self.pos = match.end()
                continue
            c = text[self.pos]
            if quote == "'":
                end = text.find("'", self.pos)
                if end < 0:
                    word.unsupported = True
                    end = len(text)
                word.chars.append(text[self.pos:end])
                self.pos = end + 1
                quote = None
                continue
            if c in '\\$`"\'' and word.name is None:
                word.plain = False
            if c == '\\':
                nxt = text[self.pos + 1:self.pos + 2]
                if nxt == '\n':
                    pass
                elif quote == '"' and nxt not in _DQUOTE_ESCAPES:
                    word.chars.append('\\' + nxt)
                else:
                    word.chars.append(nxt)
                self.pos += 2
            elif c == '$':
                self._expand(word)
            elif c == '`':
                word.unsupported = True
                self.pos += 1
                self._skip_to('`')
            elif quote == '"':
                if c == '"':
                    quote = None
                else:
                    word.chars.append(c)
                self.pos += 1
            elif c in _WORD_END:
                break
            else:
                if c in '"\'':
                    quote = c
                elif c == '=' and word.plain and word.name is None:
                    name = ''.join(word.chars)
                    if _is_name(name):
                        word.name = name
                        word.chars = []
                    else:
                        word.plain = False
                        word.chars.append(c)
                else:
                    word.chars.append(c)
                self.pos += 1
        if quote is not None:
            word.unsupported = True
        return word

    def _command_end(self, words):
        """Apply a command that is nothing but assignments."""
        self.pending = {}
        if words and words[0].name is None and ''.join(
                words[0].chars) in _DECLARATIONS:
            words = words[1:]
        if not words or any(w.name is None for w in words):
            # A command, perhaps with assignment prefixes (``A=b cmd``
            # sets A for cmd only): not run, nothing assigned.
            return
        for word in words:
            if word.unsupported:
                LOG.debug('Leaving out %s of %s: it needs more than '
                          'plain expansions', word.name, DEFAULT_GRUB)
                self.variables.pop(word.name, None)
            else:
                self.variables[word.name] = ''.join(word.chars)

    def _add(self, words, word):
        words.append(word)
        if word.name is None:
            return
        value = '' if word.unsupported else ''.join(word.chars)
        if len(value) > budget_mod.MAX_VALUE:
            raise errors.TooComplex(
                '%s in %s is longer than %d characters'
                % (word.name, DEFAULT_GRUB, budget_mod.MAX_VALUE))
        self.pending[word.name] = value

    def run(self):
        """Read every command, applying the plain assignments."""
        text = self.text
        words = []
        while self.pos < len(text):
            self.budget.tick()
            c = text[self.pos]
            if c in ' \t':
                self.pos += 1
            elif c == '#':
                # Between words, '#' starts a comment.
                end = text.find('\n', self.pos)
                self.pos = len(text) if end < 0 else end
            elif c in _WORD_END:
                self.pos += 1
                self._command_end(words)
                words = []
            else:
                self._add(words, self._word())
        self._command_end(words)


def _is_name(text):
    return (bool(text) and text[0] in _NAME_START
            and all(c in _NAME_CHARS for c in text))


def parse_shell_assignments(text, budget=None):
    """``NAME=value`` assignments of a shell file, parsed, never executed.

    Quoting is the shell's; ``$NAME`` and ``${NAME}`` expand to what the
    file assigned before (an unset name is empty, as for the shell).
    Assignments whose value needs a command substitution or an expansion
    with an operator are left out, as are the prefixes of commands
    (``A=b cmd`` sets A for cmd only). Commands are not run; an
    assignment inside an ``if`` counts as if it were taken.

    :raises: TooComplex or BudgetExhausted when the expansions are over
        their bounds.
    """
    result = {}
    _ShellScanner(text, budget_mod.ensure(budget), result).run()
    return result


def _fstab_unescape(field):
    # getmntent(3): \040 space, \011 tab, \012 newline, \134 backslash.
    if '\\' not in field:
        return field
    out = []
    i = 0
    while i < len(field):
        chunk = field[i + 1:i + 4]
        if (field[i] == '\\' and len(chunk) == 3
                and all(c in '01234567' for c in chunk)):
            out.append(chr(int(chunk, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return ''.join(out)


def fstab_entries(text):
    """(spec, mount point, fs type, options) of each fstab line."""
    for line in text.splitlines():
        line = line.split('#', 1)[0].strip()
        fields = line.split()
        if len(fields) >= 3:
            options = fields[3] if len(fields) > 3 else 'defaults'
            yield (_fstab_unescape(fields[0]), _fstab_unescape(fields[1]),
                   fields[2], options)


def fstab_root_spec(rootfs):
    """The root's ``UUID=...`` (or other spec) from the image's fstab."""
    text = rootfs.read_text_or_none(FSTAB)
    for spec, mountpoint, _fstype, _opts in fstab_entries(text or ''):
        if mountpoint == '/':
            return spec
    return None


def checked(text, what):
    """A command line with words separated by single spaces, bounded.

    NUL bytes are dropped, as the shell tools that write these files
    drop them (the kernel would end the command line at the first one).

    :raises: TooLarge if it is longer than budget.MAX_CMDLINE.
    """
    result = entry_mod.normalize_cmdline(text.replace('\0', ' '))
    if len(result) > budget_mod.MAX_CMDLINE:
        raise errors.TooLarge('the command line from %s is longer than %d '
                              'characters' % (what, budget_mod.MAX_CMDLINE))
    return result


def _grub_defaults(rootfs):
    """/etc/default/grub, then /etc/default/grub.d/*.cfg, as one text.

    grub-mkconfig sources them in that order (the drop-ins sorted by
    name), so a drop-in's ``GRUB_CMDLINE_LINUX=...`` overrides, and its
    ``$GRUB_CMDLINE_LINUX`` sees, what came before; one scan of the
    files one after the other gives the same values.
    """
    texts = [rootfs.read_text_or_none(DEFAULT_GRUB) or '']
    for name in rootfs.listdir(DEFAULT_GRUB_D):
        if name.endswith('.cfg'):
            texts.append(rootfs.read_text_or_none(
                '%s/%s' % (DEFAULT_GRUB_D, name)) or '')
    return '\n'.join(texts)


def _has_rootflags(args):
    return any(word.startswith('rootflags=') for word in args.split())


def build(rootfs, root_uuid=None):
    """The command line from the image's own configuration.

    ``/etc/kernel/cmdline`` (kernel-install's) if present, else
    ``root=... ro`` with grub's ``GRUB_CMDLINE_LINUX`` and
    ``GRUB_CMDLINE_LINUX_DEFAULT``. As grub's ``10_linux`` does, a root
    in a btrfs subvolume gets ``rootflags=subvol=`` unless the image's
    settings give their own ``rootflags``. Returns None if the root
    cannot be named.

    :raises: KexecError (too_large, too_complex, unsafe_path).
    """
    text = rootfs.read_text_or_none(KERNEL_CMDLINE)
    if text and text.strip():
        return checked(text, KERNEL_CMDLINE)
    root = 'UUID=%s' % root_uuid if root_uuid else fstab_root_spec(rootfs)
    if not root:
        return None
    parts = ['root=%s' % root, 'ro']
    defaults = parse_shell_assignments(_grub_defaults(rootfs),
                                       getattr(rootfs, 'budget', None))
    args = [defaults[name] for name in _GRUB_VARS if defaults.get(name)]
    subvol = getattr(rootfs, 'subvol', None)
    if subvol and not _has_rootflags(' '.join(args)):
        parts.append('rootflags=subvol=%s' % subvol)
    return checked(' '.join(parts + args), DEFAULT_GRUB)


def append_extra(cmdline, extra_args):
    if not extra_args:
        return cmdline
    return checked('%s %s' % (cmdline, extra_args), 'extra_args')
