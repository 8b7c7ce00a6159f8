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

"""A lexer for grub's script language, as grub 2.06 reads grub.cfg.

It follows grub-core/script/yylex.l (tokens), grub-core/script/execute.c
(what quoting and escapes leave of a word) and grub-core/lib/getline.c
with normal/main.c (how a config file is read line by line). One pass,
linear in the input: every regular expression here is a single character
class repeated, matched at a fixed position, so nothing backtracks.

A word is kept as its parts (literal text or a variable reference, and
whether it was quoted), so that variables are expanded when the command
runs, as grub does, and not when it is read.
"""

import re

from ipa_kexec import budget as budget_mod

WORD = 0
SEP = 1
LBRACE = 2
RBRACE = 3
BAD = 4
EOF = 5

# Part kinds: unquoted text, quoted text, unquoted variable (its value is
# split into words), quoted variable (kept as one).
TEXT = 't'
QUOTED = 'q'
VAR = 'v'
QVAR = 'V'

# yylex.l: CHAR is [^{}|&$;<> \t\n\'\"\\]; '#' is a CHAR inside a word.
_CHARS = re.compile(r'[^{}|&$;<> \t\n\'"\\]+')
_BLANKS = re.compile(r'[ \t]+')
# DQUOTE: runs without '"', '$' and '\'; a newline is kept.
_DQ_RUN = re.compile(r'[^"$\\]+')
_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')
_DIGITS = re.compile(r'[0-9]+')
_SPECIAL = '?#*@'
_HEX = frozenset('0123456789abcdefABCDEF')
_TICK_EVERY = 1024
# The common tokens in one match: blanks, then a run of plain characters,
# a newline, ';' or a brace. The alternatives start with disjoint
# characters, so the match never backtracks past the blanks.
_SIMPLE = re.compile(r'[ \t]*([^{}|&$;<> \t\n\'"\\]+|[\n;{}])')
_CONTINUES = frozenset('\'"\\$')
_KIND = {'\n': SEP, ';': SEP, '{': LBRACE, '}': RBRACE}


class Word(object):
    """One word: ``parts`` is a tuple of (kind, text) pairs.

    ``plain`` is the word's text when it is made of plain characters only
    (no quote, escape or variable): only such a word can be a reserved
    word (``if``, ``fi``...), as in grub's lexer.
    """

    __slots__ = ('parts', 'plain')

    def __init__(self, parts, plain):
        self.parts = parts
        self.plain = plain

    def __repr__(self):
        return 'Word(%r)' % (self.parts,)


def prepare(text, budget=None):
    """The script text as grub's parser sees it.

    grub_file_getline drops every carriage return and ends a line at a NUL
    byte (lines are C strings); read_config_file_getline skips a line
    whose first character is '#', even inside a quoted string.
    """
    budget = budget_mod.ensure(budget)
    text = text.replace('\r', '')
    if '\0' not in text and '\n#' not in text and not text.startswith('#'):
        return text
    out = []
    for count, line in enumerate(text.split('\n')):
        if not count % _TICK_EVERY:
            budget.tick()
        cut = line.find('\0')
        if cut >= 0:
            line = line[:cut]
        if line.startswith('#'):
            continue
        out.append(line)
    return '\n'.join(out)


class Lexer(object):
    """Tokens of ``text[start:end]``: (kind, value, position).

    ``kind`` is WORD (value: a :class:`Word`), SEP (value: ';' or
    newline), LBRACE, RBRACE, BAD (a character or construct grub refuses:
    ``|``, ``&``, ``<``, ``>``, ``;;``, an unterminated quote, a ``$`` not
    naming a variable) or EOF.
    """

    def __init__(self, text, start=0, end=None, budget=None):
        self.text = text
        self.pos = start
        self.end = len(text) if end is None else end
        self.budget = budget_mod.ensure(budget)
        self._count = 0

    def skip_line(self, pos):
        """Resume after the line that holds ``pos``."""
        nl = self.text.find('\n', pos, self.end)
        self.pos = self.end if nl < 0 else nl + 1

    def next(self):
        self._count += 1
        if not self._count % _TICK_EVERY:
            self.budget.tick()
        text = self.text
        end = self.end
        pos = self.pos
        m = _SIMPLE.match(text, pos, end)
        if m is not None:
            token = m.group(1)
            start = m.start(1)
            after = m.end()
            c = token[0]
            if c in _KIND:
                if c != ';' or after >= end or text[after] != ';':
                    self.pos = after
                    return _KIND[c], token, start
            elif c != '#' and (after >= end
                               or text[after] not in _CONTINUES):
                self.pos = after
                return WORD, Word(((TEXT, token),), token), start
        while pos < end:
            c = text[pos]
            if c == ' ' or c == '\t':
                pos = _BLANKS.match(text, pos, end).end()
                continue
            if c == '#':
                # A comment starts only where a token starts.
                nl = text.find('\n', pos, end)
                pos = end if nl < 0 else nl
                continue
            break
        if pos >= end:
            self.pos = end
            return EOF, None, end
        c = text[pos]
        if c == '\n':
            self.pos = pos + 1
            return SEP, '\n', pos
        if c == ';':
            if pos + 1 < end and text[pos + 1] == ';':
                self.pos = pos + 2
                return BAD, ';;', pos
            self.pos = pos + 1
            return SEP, ';', pos
        if c == '{':
            self.pos = pos + 1
            return LBRACE, '{', pos
        if c == '}':
            self.pos = pos + 1
            return RBRACE, '}', pos
        if c in '|&<>':
            self.pos = pos + 1
            return BAD, c, pos
        return self._word(pos)

    def _var(self, pos, quoted):
        """A variable reference at text[pos] == '$': (part, next) or None."""
        text = self.text
        end = self.end
        pos += 1
        braced = pos < end and text[pos] == '{'
        if braced:
            pos += 1
        if pos >= end:
            return None
        c = text[pos]
        if c in _SPECIAL:
            name, after = c, pos + 1
        else:
            m = _NAME.match(text, pos, end) or _DIGITS.match(text, pos, end)
            if m is None:
                return None
            name, after = m.group(), m.end()
        if braced:
            if after >= end or text[after] != '}':
                return None
            after += 1
        return (QVAR if quoted else VAR, name), after

    def _dquote(self, pos, parts):
        """A double-quoted string from text[pos] == '"'; returns next."""
        text = self.text
        end = self.end
        pos += 1
        buf = []
        while True:
            m = _DQ_RUN.match(text, pos, end)
            if m is not None:
                buf.append(m.group())
                pos = m.end()
            if pos >= end:
                return None
            c = text[pos]
            if c == '"':
                parts.append((QUOTED, ''.join(buf)))
                return pos + 1
            if c == '\\':
                nc = text[pos + 1] if pos + 1 < end else ''
                if nc in ('$', '\\', '"'):
                    buf.append(nc)
                    pos += 2
                elif nc == '\n':
                    pos += 2
                else:
                    buf.append('\\')
                    pos += 1
                continue
            # '$'
            found = self._var(pos, True)
            if found is None:
                return None
            parts.append((QUOTED, ''.join(buf)))
            buf = []
            parts.append(found[0])
            pos = found[1]

    def _word(self, start):
        text = self.text
        end = self.end
        pos = start
        parts = []
        plain = True
        while pos < end:
            c = text[pos]
            m = _CHARS.match(text, pos, end)
            if m is not None:
                parts.append((TEXT, m.group()))
                pos = m.end()
                continue
            if c == '\\':
                plain = False
                if pos + 1 >= end:
                    self.pos = end
                    return BAD, '\\', pos
                nc = text[pos + 1]
                if nc == '\n':
                    pos += 2
                elif (nc == 'x' and pos + 3 < end
                      and text[pos + 2] in _HEX and text[pos + 3] in _HEX):
                    # wildcard_unescape keeps \xHH as it is.
                    parts.append((TEXT, text[pos:pos + 4]))
                    pos += 4
                else:
                    parts.append((TEXT, nc))
                    pos += 2
                continue
            if c == "'":
                plain = False
                close = text.find("'", pos + 1, end)
                if close < 0:
                    self.pos = end
                    return BAD, "'", pos
                parts.append((QUOTED, text[pos + 1:close]))
                pos = close + 1
                continue
            if c == '"':
                plain = False
                after = self._dquote(pos, parts)
                if after is None:
                    self.pos = end
                    return BAD, '"', pos
                pos = after
                continue
            if c == '$':
                plain = False
                if pos + 1 < end and text[pos + 1] == '"':
                    # $"..." (gettext): read as a double-quoted string.
                    after = self._dquote(pos + 1, parts)
                else:
                    found = self._var(pos, False)
                    after = None
                    if found is not None:
                        parts.append(found[0])
                        after = found[1]
                if after is None:
                    self.pos = min(pos + 1, end)
                    return BAD, '$', pos
                pos = after
                continue
            break
        self.pos = pos
        if plain and len(parts) == 1:
            return WORD, Word(tuple(parts), parts[0][1]), start
        return WORD, Word(tuple(parts), None), start


def commands(text, budget=None):
    """The commands of a script: lists of words, braces as words.

    A convenience view of :class:`Lexer` (for tests and tools): ``{`` and
    ``}`` are :class:`Word` objects whose ``plain`` is the brace; a BAD
    token ends the listing with ValueError.
    """
    lexer = Lexer(prepare(text, budget), budget=budget)
    current = []
    while True:
        kind, value, pos = lexer.next()
        if kind == EOF:
            if current:
                yield current
            return
        if kind == BAD:
            raise ValueError('grub script syntax error at %d' % pos)
        if kind == SEP:
            if current:
                yield current
            current = []
        elif kind == WORD:
            current.append(value)
        else:
            current.append(Word(((TEXT, value),), value))
