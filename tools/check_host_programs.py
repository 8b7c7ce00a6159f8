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

"""Fails when the host side runs a program that bindep.txt does not bring.

A fresh Debian has the Essential and Priority: required packages and what
they depend on; tools/install-deps.sh adds the packages bindep.txt names
(profile "test") and their dependencies (Depends, Pre-Depends: it installs
without Recommends). Every program that the host-side scripts and the
testbed's host-side Python code run must come from one of those packages,
or a fresh machine fails half-way (as the image builds once did, without
kmod's depmod).

What runs on the host:

* shell: tools/*.sh, the boot tree builder (tools/boot-trees/) and
  testbed/images/*.sh, the commands outside the chroots. What runs
  inside a chroot (``chroot ROOT CMD``, or a function that passes its
  arguments to chroot, like ``in_root``) comes from the image package
  lists (testbed/images/*-packages.txt), which are not
  checked here: their packages are not installed on the host, so their
  file lists are not at hand. testbed/ramdisk/, testbed/instance/ and
  elements/ are copied into images and run there. devstack/ runs on a
  devstack host, whose packages devstack installs by its own means.
* Python: testbed/*.py, tests/functional/*.py, tools/*.py; the program
  of each subprocess call, os.exec*/spawn* call and shutil.which, when the
  code names it (see :func:`scan_python`). Programs of the Python venv
  (``sys.executable``, or a helper that joins a name to its directory) are
  pip's business, not Debian's. What the extractor cannot follow is listed
  as unresolved; DECLARED and INDIRECT cover the cases in this tree.

A program comes from a package when the package's dpkg file list has it
in /usr/bin, /usr/sbin or /usr/games (/bin, /sbin through merged /usr),
or when the package provides it as a Debian alternative (nc from
netcat-openbsd). The dpkg database is read directly, so that the logic
can be tested on a fake one.

The image build scripts check their host programs up front with
``require_tools PROGRAM:PACKAGE ...`` (testbed/images/common.sh); this
checker also fails when a build script runs a program that a minimal
Debian lacks and its require_tools call does not name.

    python tools/check_host_programs.py [--verbose] [--bindep FILE]
        [--admindir DPKG_DIR]
"""

import argparse
import ast
import collections
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The scripts that are run; what they source is read through them.
SHELL_GLOBS = ('tools/*.sh', 'tools/boot-trees/build.sh',
               'tools/boot-trees/check.sh', 'testbed/images/*.sh')
PYTHON_GLOBS = ('testbed/*.py', 'tests/functional/*.py', 'tools/*.py')
# The scripts testbed/images.py runs; each calls require_tools.
BUILD_SCRIPT_GLOB = 'testbed/images/build-*.sh'
BINDEP_PROFILE = 'test'
# Where a program is looked up, after merged /usr (see canonical()).
BIN_DIRS = frozenset(('/usr/bin', '/usr/sbin', '/usr/games'))

# Call sites whose argv[0] the extractor cannot follow, with where the
# program's name is defined instead: the default of a class attribute.
# (file, function) -> (file, Class.attribute). A declaration whose call
# site is gone, or resolves by itself now, is reported as stale.
DECLARED = {
    # tb_node.qemu_command(spec, ...) puts spec.qemu first.
    ('testbed/bmc.py', 'QemuBmc._start'): ('testbed/node.py',
                                           'NodeSpec.qemu'),
}

# Programs that a program the testbed starts runs on the host, found by a
# pattern (group 1 is the program) in the string constants of the file
# that asks for them. A pattern that matches nothing is reported stale.
INDIRECT = (
    ('testbed/node.py', r'-cmd:(\S+)',
     "QEMU's user network runs guestfwd=...-cmd: commands"),
    ('testbed/ironic_service.py', r'^(ipmitool)$',
     "Ironic's ipmitool power and management interfaces run it"),
)

Finding = collections.namedtuple(
    'Finding', 'program path line side kind detail func')
# kind: 'program' (looked up on PATH: the one that is checked), 'path' (a
# file run by its path), 'venv' (the Python venv's), 'unresolved' (built
# at run time), 'argument' (a function's "$@": its callers are checked).


class ShellSyntaxError(Exception):
    pass


def canonical(path):
    """The path under merged /usr: dpkg lists /sbin/depmod, /bin/kmod."""
    for top in ('/bin/', '/sbin/', '/lib/', '/lib32/', '/lib64/',
                '/libx32/'):
        if path.startswith(top):
            return '/usr' + path
    return path


def program_name(path):
    """The name a PATH lookup finds the file as, or None.

    None when the file is in no PATH directory: /usr/lib/... holds no
    programs.
    """
    directory, _, name = canonical(path).rpartition('/')
    return name if directory in BIN_DIRS and name else None


# Shell.

_OPERATORS = ('<<<', '<<-', '&>>', ';;&', '<<', '>>', '<&', '>&', '<>',
              '>|', '&>', '&&', '||', ';;', ';&', '|&', '<', '>', ';',
              '&', '|', '(', ')')
_REDIRECTIONS = frozenset(('<<<', '<<-', '&>>', '<<', '>>', '<&', '>&',
                           '<>', '>|', '&>', '<', '>'))
_NAME_RE = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')
_ASSIGN_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)(\[[^]]*\])?\+?=')
_RESERVED = frozenset(('if', 'then', 'else', 'elif', 'fi', 'case', 'esac',
                       'for', 'select', 'while', 'until', 'do', 'done',
                       'function', '{', '}', '[[', ']]', '!', 'time', 'in'))
_BUILTINS = frozenset((
    '.', ':', '[', 'alias', 'bg', 'bind', 'break', 'builtin', 'caller',
    'cd', 'command', 'compgen', 'complete', 'compopt', 'continue',
    'declare', 'dirs', 'disown', 'echo', 'enable', 'eval', 'exec', 'exit',
    'export', 'false', 'fc', 'fg', 'getopts', 'hash', 'help', 'history',
    'jobs', 'kill', 'let', 'local', 'logout', 'mapfile', 'popd', 'printf',
    'pushd', 'pwd', 'read', 'readarray', 'readonly', 'return', 'set',
    'shift', 'shopt', 'source', 'suspend', 'test', 'times', 'trap', 'true',
    'type', 'typeset', 'ulimit', 'umask', 'unalias', 'unset', 'wait'))
_DECLARATIONS = frozenset(('local', 'declare', 'typeset', 'export',
                           'readonly'))
_POSITIONAL = frozenset('@*0123456789')
_SHELLS = frozenset(('sh', 'bash', 'dash'))
# Commands that run their argument program: the options that take a
# value, whether NAME=VALUE words may come first, and how many operands
# come before the program (timeout's duration).
_PREFIXES = {
    'env': (('-u', '--unset', '-C', '--chdir', '-S', '--split-string'),
            True, 0),
    'xargs': (('-a', '--arg-file', '-d', '--delimiter', '-E', '-I', '-L',
               '--max-lines', '-n', '--max-args', '-P', '--max-procs', '-s',
               '--max-chars', '--process-slot-var'), False, 0),
    'sudo': (('-u', '--user', '-g', '--group', '-C', '--close-from', '-D',
              '--chdir', '-h', '--host', '-p', '--prompt', '-r', '--role',
              '-t', '--type', '-U', '--other-user', '-T',
              '--command-timeout'), True, 0),
    'timeout': (('-s', '--signal', '-k', '--kill-after'), False, 1),
    'nice': (('-n', '--adjustment'), False, 0),
    'ionice': (('-c', '--class', '-n', '--classdata'), False, 0),
    'stdbuf': (('-i', '--input', '-o', '--output', '-e', '--error'), False,
               0),
    'nohup': ((), False, 0),
    'setsid': ((), False, 0),
    'exec': (('-a',), False, 0),
    'command': ((), False, 0),
    'builtin': ((), False, 0),
}


class Op(object):
    """An operator token (newline included)."""

    def __init__(self, text, line):
        self.text = text
        self.line = line

    def __repr__(self):
        return 'Op(%r)' % self.text


class Word(object):
    """One shell word.

    parts: (text, quoted) for literal text, (None, name) for an expansion
    (name None unless it is a plain $name, ${name} or positional); subs:
    the token lists of its command and process substitutions.
    """

    def __init__(self, line, start=0):
        self.line = line
        self.start = start
        self.raw = ''
        self.parts = []
        self.subs = []

    def lit(self, text, quoted=False):
        if self.parts and self.parts[-1][0] is not None and (
                self.parts[-1][1] == quoted):
            self.parts[-1] = (self.parts[-1][0] + text, quoted)
        else:
            self.parts.append((text, quoted))

    def expansion(self, name=None):
        self.parts.append((None, name))

    @property
    def value(self):
        """The word after quote removal; None when an expansion is in it."""
        if any(text is None for text, _ in self.parts):
            return None
        return ''.join(text for text, _ in self.parts)

    @property
    def var(self):
        """The parameter's name when the word is one expansion alone."""
        parts = [p for p in self.parts if p[0] != '']
        if len(parts) == 1 and parts[0][0] is None:
            return parts[0][1]
        return None

    @property
    def slash(self):
        # With a "/" in its literal text the word names a file by path,
        # whatever its expansions give: bash looks it up on no PATH.
        return any(text is not None and '/' in text
                   for text, _ in self.parts)

    def text(self, placeholder='$_'):
        return ''.join(placeholder if text is None else text
                       for text, _ in self.parts)

    def assigned(self):
        """(name, value Word) of an assignment word, else None."""
        if not self.parts or self.parts[0][0] is None or self.parts[0][1]:
            return None
        m = _ASSIGN_RE.match(self.parts[0][0])
        if not m:
            return None
        value = Word(self.line, self.start)
        value.raw = self.raw[m.end():]
        rest = self.parts[0][0][m.end():]
        if rest:
            value.parts.append((rest, False))
        value.parts.extend(self.parts[1:])
        value.subs = self.subs
        return m.group(1), value

    def is_array_start(self):
        return (len(self.parts) == 1 and self.parts[0][0] is not None
                and not self.parts[0][1]
                and _ASSIGN_RE.fullmatch(self.parts[0][0]) is not None)

    def __repr__(self):
        return 'Word(%r)' % self.raw


class _Run(object):
    """The tokens of one tokens() call so far."""

    def __init__(self):
        self.toks = []
        self.word = None
        self.depth = 0
        self.delim = None


class Lexer(object):
    """Splits shell source into words and operators.

    Quotes, $( ), backticks, ${ }, $(( )), here-documents, comments and
    line continuations are handled; the command and process substitutions
    a word holds are tokenized too and kept in the word. A case pattern
    inside $( ) is not understood (none occurs in this tree).
    """

    def __init__(self, src, line=1):
        self.src = src
        self.pos = 0
        self.line = line
        self.heredocs = []

    def error(self, what):
        raise ShellSyntaxError('line %d: %s' % (self.line, what))

    def tokens(self, until_paren=False):
        run = _Run()
        src = self.src
        while self.pos < len(src):
            c = src[self.pos]
            if c == '\\' and src[self.pos + 1:self.pos + 2] == '\n':
                self.pos += 2
                self.line += 1
            elif c in ' \t':
                self._end(run)
                self.pos += 1
            elif c == '\n':
                self._end(run)
                run.toks.append(Op('\n', self.line))
                self.pos += 1
                self.line += 1
                self._read_heredocs()
            elif c == '#' and run.word is None:
                end = src.find('\n', self.pos)
                self.pos = len(src) if end < 0 else end
            elif c in '<>' and src[self.pos + 1:self.pos + 2] == '(':
                word = self._current_word(run)
                self.pos += 2
                word.subs.append(self.tokens(until_paren=True))
                word.expansion()
            elif c == '(' and run.word is not None and (
                    run.word.is_array_start()):
                self._array(run.word)
            elif c in '();&|<>':
                if self._operator(run, until_paren):
                    return run.toks
            else:
                self._word_char(self._current_word(run))
        self._end(run)
        if until_paren:
            self.error('unterminated $( or (')
        if self.heredocs:
            self.error('unterminated here-document')
        return run.toks

    def _current_word(self, run):
        if run.word is None:
            run.word = Word(self.line, self.pos)
        return run.word

    def _end(self, run):
        word = run.word
        if word is None:
            return
        word.raw = self.src[word.start:self.pos]
        run.toks.append(word)
        run.word = None
        if run.delim:
            quoted = any(q or text is None for text, q in word.parts)
            self.heredocs.append((word, word.text(''), run.delim == '<<-',
                                  quoted))
            run.delim = None

    def _operator(self, run, until_paren):
        src = self.src
        c = src[self.pos]
        if c == '(' and src[self.pos + 1:self.pos + 2] == '(' and (
                run.word is None):
            # An arithmetic command, (( ... )) or for (( ... )).
            line = self.line
            self.pos += 2
            self._skip_parens(2)
            run.toks.append(Op('((', line))
            return False
        if c == ')' and until_paren and run.depth == 0:
            self._end(run)
            self.pos += 1
            return True
        word = run.word
        if c in '<>' and word is not None and (
                src[word.start:self.pos].isdigit()):
            run.word = None  # the file descriptor of a redirection
        else:
            self._end(run)
        op = next(o for o in _OPERATORS if src.startswith(o, self.pos))
        if op == '(':
            run.depth += 1
        elif op == ')':
            run.depth -= 1
        run.toks.append(Op(op, self.line))
        self.pos += len(op)
        if op in ('<<', '<<-'):
            run.delim = op
        return False

    def _array(self, word):
        # NAME=( ... ): the elements are words, not commands; only their
        # substitutions run.
        self.pos += 1
        for tok in self.tokens(until_paren=True):
            if isinstance(tok, Word):
                word.subs.extend(tok.subs)
        word.expansion()

    def _word_char(self, word):
        src = self.src
        c = src[self.pos]
        if c == '\\':
            word.lit(src[self.pos + 1:self.pos + 2], True)
            self.pos += 2
        elif c == "'":
            end = src.find("'", self.pos + 1)
            if end < 0:
                self.error("unterminated '")
            text = src[self.pos + 1:end]
            self.line += text.count('\n')
            word.lit(text, True)
            self.pos = end + 1
        elif c == '"':
            self._double(word)
        elif c == '`':
            self._backtick(word)
        elif c == '$':
            self._dollar(word, quoted=False)
        else:
            word.lit(c)
            self.pos += 1

    def _double(self, word):
        src = self.src
        self.pos += 1
        word.lit('', True)
        while True:
            if self.pos >= len(src):
                self.error('unterminated "')
            c = src[self.pos]
            if c == '"':
                self.pos += 1
                return
            if c == '\\':
                nxt = src[self.pos + 1:self.pos + 2]
                if nxt == '\n':
                    self.line += 1
                elif nxt in ('$', '`', '"', '\\'):
                    word.lit(nxt, True)
                else:
                    word.lit('\\' + nxt, True)
                self.pos += 2
            elif c == '$':
                self._dollar(word, quoted=True)
            elif c == '`':
                self._backtick(word)
            else:
                if c == '\n':
                    self.line += 1
                word.lit(c, True)
                self.pos += 1

    def _dollar(self, word, quoted):
        src = self.src
        nxt = src[self.pos + 1:self.pos + 2]
        if src.startswith('$((', self.pos):
            self.pos += 3
            self._skip_parens(2)
            word.expansion()
        elif nxt == '(':
            self.pos += 2
            word.subs.append(self.tokens(until_paren=True))
            word.expansion()
        elif nxt == '{':
            self._param(word)
        elif nxt == "'" and not quoted:
            self._ansi_c(word)
        elif nxt == '"' and not quoted:
            self.pos += 1
            self._double(word)
        else:
            m = _NAME_RE.match(src, self.pos + 1)
            if m:
                word.expansion(m.group())
                self.pos = m.end()
            elif nxt and (nxt.isdigit() or nxt in '@*#?$!-'):
                word.expansion(nxt)
                self.pos += 2
            else:
                word.lit('$', quoted)
                self.pos += 1

    def _param(self, word):
        src = self.src
        self.pos += 2
        m = _NAME_RE.match(src, self.pos)
        name = None
        if m and src[m.end():m.end() + 1] == '}':
            name = m.group()
        elif src[self.pos:self.pos + 2] in ('@}', '*}'):
            name = src[self.pos]
        depth = 1
        while depth:
            if self.pos >= len(src):
                self.error('unterminated ${')
            c = src[self.pos]
            if src.startswith('${', self.pos):
                depth += 1
                self.pos += 2
            elif c == '}':
                depth -= 1
                self.pos += 1
            elif c == '\\':
                self.pos += 2
            elif c == "'":
                end = src.find("'", self.pos + 1)
                if end < 0:
                    self.error("unterminated '")
                self.line += src.count('\n', self.pos, end)
                self.pos = end + 1
            elif c == '"':
                inner = Word(self.line, self.pos)
                self._double(inner)
                word.subs.extend(inner.subs)
            elif c in ('$', '`'):
                inner = Word(self.line, self.pos)
                if c == '$':
                    self._dollar(inner, quoted=True)
                else:
                    self._backtick(inner)
                word.subs.extend(inner.subs)
            else:
                self.line += c == '\n'
                self.pos += 1
        word.expansion(name)

    def _ansi_c(self, word):
        src = self.src
        self.pos += 2
        start = self.pos
        while self.pos < len(src) and src[self.pos] != "'":
            self.pos += 2 if src[self.pos] == '\\' else 1
        if self.pos >= len(src):
            self.error("unterminated $'")
        text = src[start:self.pos]
        self.line += text.count('\n')
        word.lit(text, True)
        self.pos += 1

    def _backtick(self, word):
        src = self.src
        line = self.line
        self.pos += 1
        buf = []
        while True:
            if self.pos >= len(src):
                self.error('unterminated `')
            c = src[self.pos]
            if c == '`':
                self.pos += 1
                break
            if c == '\\' and src[self.pos + 1:self.pos + 2] in (
                    '`', '$', '\\'):
                buf.append(src[self.pos + 1])
                self.pos += 2
                continue
            self.line += c == '\n'
            buf.append(c)
            self.pos += 1
        word.subs.append(Lexer(''.join(buf), line).tokens())
        word.expansion()

    def _skip_parens(self, depth):
        src = self.src
        while depth:
            if self.pos >= len(src):
                self.error('unterminated ((')
            c = src[self.pos]
            depth += (c == '(') - (c == ')')
            self.line += c == '\n'
            self.pos += 1

    def _read_heredocs(self):
        src = self.src
        for word, delim, strip, quoted in self.heredocs:
            line = self.line
            body = []
            while True:
                if self.pos >= len(src):
                    self.error('here-document without its %s line' % delim)
                end = src.find('\n', self.pos)
                end = len(src) if end < 0 else end
                text = src[self.pos:end]
                self.pos = end + 1
                self.line += 1
                if (text.lstrip('\t') if strip else text) == delim:
                    break
                body.append(text)
            if not quoted:
                # An unquoted body's $( ) and backticks run.
                word.subs.extend(
                    Lexer('\n'.join(body) + '\n', line).expansions())
        self.heredocs = []
        self.pos = min(self.pos, len(src))

    def expansions(self):
        """The substitutions of text expanded like a here-document."""
        word = Word(self.line)
        src = self.src
        while self.pos < len(src):
            c = src[self.pos]
            if c == '\\':
                self.line += src[self.pos + 1:self.pos + 2] == '\n'
                self.pos += 2
            elif c == '$':
                self._dollar(word, quoted=True)
            elif c == '`':
                self._backtick(word)
            else:
                self.line += c == '\n'
                self.pos += 1
        return word.subs


class Command(object):
    """A command found: the word naming it, its arguments, where it runs.

    side: 'host', or 'image' inside a chroot; func: the shell function
    whose body has it (None at the top level).
    """

    def __init__(self, word, args, side, func):
        self.word = word
        self.args = args
        self.side = side
        self.func = func

    @property
    def line(self):
        return self.word.line

    def __repr__(self):
        return 'Command(%r, %s)' % (self.word.raw, self.side)


class _State(object):
    """Where the parser is in one token list."""

    def __init__(self, toks, side, func):
        self.toks = toks
        self.i = 0
        self.side = side
        self.func = func
        self.at_cmd = True
        self.mode = None
        self.depth = 0
        self.bodies = []
        self.pending = None

    @property
    def current(self):
        return self.bodies[-1][0] if self.bodies else self.func


def _source_directives(text):
    """Line -> path of the "# shellcheck source=PATH" comment above it."""
    found = {}
    for number, line in enumerate(text.splitlines(), 1):
        m = re.match(r'\s*#\s*shellcheck\s+source=(\S+)', line)
        if m:
            found[number + 1] = m.group(1)
    return found


class ShellScript(object):
    """What one parse of a script finds.

    functions: the functions the script defines; known: those plus the
    ones of the scripts it sources (calls to them run no program);
    wrappers: known functions that run their arguments in a chroot.
    """

    def __init__(self, path, text, known=(), wrappers=()):
        self.path = path
        self.functions = {}
        self.commands = []
        self.sources = []
        self.assignments = collections.defaultdict(list)
        self.wrapper_hits = set()
        self.known = set(known)
        self.wrappers = set(wrappers)
        self.directives = _source_directives(text)
        try:
            self._parse(Lexer(text).tokens(), 'host', None)
        except ShellSyntaxError as e:
            raise ShellSyntaxError('%s: %s' % (path, e))

    def _parse(self, toks, side, func):
        st = _State(toks, side, func)
        while st.i < len(st.toks):
            tok = st.toks[st.i]
            if isinstance(tok, Op):
                self._op(st, tok)
            else:
                self._subs(st, tok)
                self._word(st, tok)

    def _subs(self, st, word):
        # A substitution runs in the shell that expands the word: on the
        # host even in the arguments of a chroot.
        for toks in word.subs:
            self._parse(toks, st.side, st.current)

    def _op(self, st, tok):
        st.i += 1
        text = tok.text
        if st.mode == 'pattern':
            if text == ')':
                st.mode = None
                st.at_cmd = True
        elif st.mode == 'dbracket':
            pass
        elif text in _REDIRECTIONS:
            self._redirect_target(st)
        elif text in (';;', ';&', ';;&'):
            st.mode = 'pattern'
        elif st.mode == 'for':
            if text in (';', '\n'):
                st.mode = None
                st.at_cmd = True
        else:
            st.at_cmd = text not in ('((', ')')

    def _redirect_target(self, st):
        if st.i < len(st.toks) and isinstance(st.toks[st.i], Word):
            self._subs(st, st.toks[st.i])
            st.i += 1

    def _word(self, st, tok):
        value = tok.value
        mode = st.mode
        if mode in ('pattern', 'case_subject', 'case_in', 'for', 'dbracket'):
            st.i += 1
            if mode == 'pattern' and value == 'esac':
                st.mode = None
                st.at_cmd = False
            elif mode == 'case_subject':
                st.mode = 'case_in'
            elif mode == 'case_in':
                st.mode = 'pattern'
            elif (mode, value) in (('for', 'do'), ('dbracket', ']]')):
                st.mode = None
                st.at_cmd = mode == 'for'
        elif not st.at_cmd:
            st.i += 1
        elif value in _RESERVED:
            self._reserved(st, value)
        elif tok.assigned():
            name, assigned = tok.assigned()
            self.assignments[name].append(assigned)
            st.i += 1
        elif not self._function_header(st, tok):
            self._simple(st)

    def _reserved(self, st, value):
        st.i += 1
        if value == '{':
            st.depth += 1
            if st.pending:
                st.bodies.append((st.pending, st.depth))
                st.pending = None
        elif value == '}':
            if st.bodies and st.bodies[-1][1] == st.depth:
                st.bodies.pop()
            st.depth -= 1
            st.at_cmd = False
        elif value in ('fi', 'done', 'esac'):
            st.at_cmd = False
        elif value == 'case':
            st.mode = 'case_subject'
        elif value in ('for', 'select'):
            st.mode = 'for'
        elif value == '[[':
            st.mode = 'dbracket'
        elif value == 'function' and st.i < len(st.toks):
            name = st.toks[st.i]
            st.i += 1
            if isinstance(name, Word) and name.value:
                self.functions.setdefault(name.value, name.line)
                st.pending = name.value
            while st.i < len(st.toks) and isinstance(
                    st.toks[st.i], Op) and st.toks[st.i].text in ('(', ')'):
                st.i += 1

    def _function_header(self, st, tok):
        after = st.toks[st.i + 1:st.i + 3]
        if tok.value and [getattr(t, 'text', None) for t in after] == [
                '(', ')']:
            self.functions.setdefault(tok.value, tok.line)
            st.pending = tok.value
            st.i += 3
            st.at_cmd = True
            return True
        return False

    def _simple(self, st):
        words = [st.toks[st.i]]
        st.i += 1
        while st.i < len(st.toks):
            tok = st.toks[st.i]
            if isinstance(tok, Op):
                if tok.text not in _REDIRECTIONS:
                    break
                st.i += 1
                self._redirect_target(st)
                continue
            self._subs(st, tok)
            words.append(tok)
            st.i += 1
        st.at_cmd = False
        self._command(words, st.side, st.current)

    def _command(self, words, side, func):
        word, args = words[0], words[1:]
        self.commands.append(Command(word, args, side, func))
        if word.var in _POSITIONAL and side == 'image' and func:
            # chroot ROOT ... "$@": the function is a chroot wrapper.
            self.wrapper_hits.add(func)
        value = word.value
        if value is None:
            return
        if value in self.known:
            if value in self.wrappers and args:
                self._command(args, 'image', func)
            return
        base = value.rsplit('/', 1)[-1]
        if base in _DECLARATIONS:
            for arg in args:
                if arg.assigned():
                    name, assigned = arg.assigned()
                    self.assignments[name].append(assigned)
        elif base in ('source', '.') and args:
            self.sources.append((word.line, args[0],
                                 self.directives.get(word.line)))
        elif base == 'chroot':
            self._chroot(args, func)
        elif base == 'command' and any(
                a.value in ('-v', '-V') for a in args[:1]):
            pass  # a lookup, not a run
        elif base in _PREFIXES:
            rest = _after_prefix(base, args)
            if rest:
                self._command(rest, side, func)
        elif base in _SHELLS:
            self._shell_code(args, side, func)
        elif base == 'find':
            self._find_exec(args, side, func)
        elif base in ('trap', 'eval') and args:
            code = args if base == 'eval' else args[:1]
            if base == 'eval' or code[0].value not in ('', '-'):
                self._code(' '.join(a.text() for a in code), word.line,
                           side, func)

    def _chroot(self, args, func):
        i = 0
        while i < len(args) and (args[i].value or '').startswith('-'):
            i += 1
        rest = args[i + 1:]
        if rest:
            self._command(rest, 'image', func)

    def _shell_code(self, args, side, func):
        # sh -c CODE: the code is parsed like the script's own.
        want_code = False
        i = 0
        while i < len(args):
            value = args[i].value
            if value is not None and value[:1] in ('-', '+') and (
                    value not in ('-', '--')):
                if value[1:] in ('o', 'O'):
                    i += 1
                elif not value.startswith('--') and 'c' in value[1:]:
                    want_code = True
                i += 1
                continue
            if want_code:
                self._code(args[i].text(), args[i].line, side, func)
            return

    def _find_exec(self, args, side, func):
        for i, arg in enumerate(args):
            if arg.value in ('-exec', '-execdir', '-ok', '-okdir'):
                rest = []
                for word in args[i + 1:]:
                    if word.value in (';', '+'):
                        break
                    rest.append(word)
                if rest:
                    self._command(rest, side, func)

    def _code(self, code, line, side, func):
        self._parse(Lexer(code, line).tokens(), side, func)


def _after_prefix(name, args):
    """The words from the program a prefix command (env, xargs, ...) runs."""
    with_value, assignments, operands = _PREFIXES[name]
    i = 0
    while i < len(args):
        value = args[i].value
        # env and sudo take NAME=VALUE arguments themselves, quoted or not.
        if assignments and _ASSIGN_RE.match(args[i].text()):
            i += 1
        elif value == '--':
            i += 1
            break
        elif value and value.startswith('-') and len(value) > 1:
            i += 2 if value in with_value else 1
        else:
            break
    return args[i + operands:]


def parse_shell(text, path='<string>', known=(), wrappers=()):
    """One script alone, parsed until its functions are known.

    A function may be called above its definition, and a chroot wrapper
    is known only once its body has been read.
    """
    script = ShellScript(path, text, known, wrappers)
    for _ in range(5):
        again = ShellScript(path, text,
                            set(known) | set(script.functions),
                            set(wrappers) | script.wrapper_hits)
        if (again.functions, again.wrapper_hits) == (
                script.functions, script.wrapper_hits):
            return again
        script = again
    return script


def classify_shell(command, assignments, depth=0):
    """(kind, name) pairs of what a command runs; [] for a builtin.

    assignments: name -> value Words of the script's variables, which
    resolve "$tox"-like command words.
    """
    word = command.word
    value = word.value
    if value is not None:
        if value in _BUILTINS or value in _RESERVED:
            return []
        if '/' not in value:
            return [('program', value)]
        name = program_name(value)
        return [('program', name)] if name else [('path', value)]
    if word.slash:
        return [('path', word.raw)]
    var = word.var
    if var in _POSITIONAL and command.func:
        return [('argument', word.raw)]
    if var in assignments and depth < 3:
        found = []
        for assigned in assignments[var]:
            for kind, name in classify_shell(
                    Command(assigned, [], command.side, command.func),
                    assignments, depth + 1):
                found.append((kind, name if kind == 'program' else
                              '%s (%s=%s)' % (word.raw, var, name)))
        return found
    return [('unresolved', word.raw)]


class ShellAnalysis(object):
    """The host scripts, the scripts they source, and what they run."""

    def __init__(self, root, paths):
        self.root = root
        self.texts = {}
        self.sources = {}
        self.problems = []
        for path in paths:
            self._read(path)
        self.scripts = self._fixpoint()
        self.findings = []
        for path in sorted(self.scripts):
            self.findings += self._findings(path)

    def _read(self, path):
        if path in self.texts:
            return
        try:
            with open(os.path.join(self.root, path)) as f:
                self.texts[path] = f.read()
        except OSError as e:
            self.problems.append('%s: cannot read: %s' % (path, e))
            self.texts[path] = ''
        self.sources[path] = []

    def _sourced(self, path):
        """The scripts a script sources, itself not included, in order."""
        seen = []
        todo = list(self.sources.get(path, ()))
        while todo:
            other = todo.pop(0)
            if other not in seen and other != path:
                seen.append(other)
                todo += self.sources.get(other, ())
        return seen

    def _context(self, path):
        """The scripts that source this one, and all they source.

        A sourced file (a library of cases) calls the functions of the
        files its sourcing script read before it.
        """
        context = []
        for parent in self.sources:
            if parent != path and path in self._sourced(parent):
                for other in [parent] + self._sourced(parent):
                    if other != path and other not in context:
                        context.append(other)
        return context

    def _fixpoint(self):
        # Parsed again until nothing new turns up: which functions each
        # script knows (its own and its sourced scripts'), which of them
        # are chroot wrappers, which files are sourced.
        functions = {}
        wrapper_hits = set()
        for _ in range(10):
            state = (functions, set(wrapper_hits), dict(self.sources))
            scripts, functions, problems = {}, {}, []
            for path in sorted(self.texts):
                known = set(state[0].get(path, ()))
                for other in self._sourced(path) + self._context(path):
                    known |= set(state[0].get(other, ()))
                try:
                    script = ShellScript(path, self.texts[path], known,
                                         known & wrapper_hits)
                except ShellSyntaxError as e:
                    problems.append('cannot parse %s' % e)
                    script = ShellScript(path, '')
                scripts[path] = script
                functions[path] = script.functions
                wrapper_hits |= script.wrapper_hits
                self.sources[path] = self._resolve_sources(path, script,
                                                           problems)
            if (functions, wrapper_hits, self.sources) == state:
                break
        self.problems += problems
        return scripts

    def _resolve_sources(self, path, script, problems):
        found = []
        for line, word, directive in script.sources:
            if directive:
                # shellcheck -x resolves source= from the repository root,
                # where tox runs it.
                target = os.path.normpath(directive)
            elif word.value is not None:
                target = os.path.normpath(os.path.join(
                    os.path.dirname(path), word.value))
            else:
                problems.append(
                    '%s:%d: cannot tell which file "source %s" reads: add '
                    'a "# shellcheck source=PATH" line above it'
                    % (path, line, word.raw))
                continue
            self._read(target)
            found.append(target)
        return found

    def assignments(self, path):
        merged = collections.defaultdict(list)
        for other in [path] + self._sourced(path):
            for name, values in self.scripts[other].assignments.items():
                merged[name] += values
        return merged

    def _findings(self, path):
        script = self.scripts[path]
        assignments = self.assignments(path)
        found = []
        for command in script.commands:
            if command.word.value in script.known:
                continue
            for kind, name in classify_shell(command, assignments):
                found.append(Finding(name, path, command.line, command.side,
                                     kind, None, command.func))
        return found

    def definition(self, path, name):
        """The script whose definition of a function a script calls."""
        for other in [path] + self._sourced(path):
            if name in self.scripts[other].functions:
                return other
        return None

    def reachable(self, path):
        """(script, function) pairs a script runs.

        Its top level, the top level of what it sources, and the functions
        they call.
        """
        todo = [(path, None)] + [(s, None) for s in self._sourced(path)]
        seen = set()
        while todo:
            node = todo.pop()
            if node in seen:
                continue
            seen.add(node)
            where, func = node
            for command in self.scripts[where].commands:
                name = command.word.value
                if command.func == func and name in self.scripts[
                        where].known:
                    target = self.definition(path, name)
                    if target:
                        todo.append((target, name))
        return seen

    def calls(self, path, name):
        """The top-level calls of a function in a script, as Commands."""
        return [c for c in self.scripts[path].commands
                if c.func is None and c.word.value == name]


# Python.

_RUNNERS = dict(
    [(('subprocess', name), 'argv') for name in (
        'run', 'call', 'check_call', 'check_output', 'Popen', 'getoutput',
        'getstatusoutput')]
    + [(('os', name), 'argv') for name in ('system', 'popen')]
    + [(('os', 'exec' + suffix), 'file') for suffix in (
        'v', 've', 'vp', 'vpe', 'l', 'le', 'lp', 'lpe')]
    + [(('os', name), 'file') for name in ('posix_spawn', 'posix_spawnp')]
    + [(('shutil', 'which'), 'file')])
_SPAWN_RE = re.compile(r'spawn[lv]p?e?$')
_RUNNER_MODULES = frozenset(('subprocess', 'os', 'shutil'))

Res = collections.namedtuple('Res', 'kind name detail')


def _is_venv_helper(func):
    """Whether a function names a program of the venv's bin directory.

    That is, returns os.path.join(os.path.dirname(sys.executable), PARAM).
    """
    body = [s for s in func.body if not (
        isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    if len(body) != 1 or not isinstance(body[0], ast.Return):
        return False
    value = body[0].value
    params = [a.arg for a in func.args.args]
    return (isinstance(value, ast.Call)
            and ast.unparse(value.func) == 'os.path.join'
            and len(value.args) == 2
            and ast.unparse(value.args[0]) == (
                'os.path.dirname(sys.executable)')
            and isinstance(value.args[1], ast.Name)
            and value.args[1].id in params)


class PythonModule(object):
    """One module's imports, functions and the calls that run programs."""

    def __init__(self, path, text):
        self.path = path
        self.tree = ast.parse(text, path)
        self.modules = {}
        self.imported = {}
        self.functions = {}
        self.methods = set()
        self.calls = []
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in _RUNNER_MODULES:
                        self.modules[alias.asname or alias.name] = alias.name
            elif isinstance(node, ast.ImportFrom) and (
                    node.module in _RUNNER_MODULES):
                for alias in node.names:
                    self.imported[alias.asname or alias.name] = (
                        node.module, alias.name)
        self._walk(self.tree, None, False)

    def _walk(self, node, qual, in_class):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = '%s.%s' % (qual, child.name) if qual else child.name
                self.functions[name] = child
                if in_class:
                    self.methods.add(name)
                self._walk(child, name, False)
            elif isinstance(child, ast.ClassDef):
                name = '%s.%s' % (qual, child.name) if qual else child.name
                self._walk(child, name, True)
            else:
                if isinstance(child, ast.Call):
                    self.calls.append((child, qual))
                self._walk(child, qual, in_class)

    def target(self, call):
        """(module, function) a call goes to, for the runner modules."""
        func = call.func
        if isinstance(func, ast.Attribute) and isinstance(
                func.value, ast.Name) and func.value.id in self.modules:
            return self.modules[func.value.id], func.attr
        if isinstance(func, ast.Name) and func.id in self.imported:
            return self.imported[func.id]
        return None


def _statements(node):
    """The nodes of a scope, nested functions and classes left out."""
    todo = list(ast.iter_child_nodes(node))
    while todo:
        child = todo.pop()
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                              ast.ClassDef, ast.Lambda)):
            continue
        yield child
        todo.extend(ast.iter_child_nodes(child))


def _bound(scope, name):
    """The values a scope assigns to a name.

    Augmented assignments, which append to a command, do not change its
    program.
    """
    values = []
    for node in _statements(scope):
        if isinstance(node, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == name
                   for t in node.targets):
                values.append(node.value)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            if isinstance(node.target, ast.Name) and node.target.id == name:
                values.append(node.value)
    return values


class PythonAnalysis(object):
    """The programs the host-side Python code runs."""

    def __init__(self, root, paths):
        self.root = root
        self.modules = {}
        self.problems = []
        for path in paths:
            try:
                with open(os.path.join(root, path)) as f:
                    self.modules[path] = PythonModule(path, f.read())
            except (OSError, SyntaxError) as e:
                self.problems.append('%s: cannot parse: %s' % (path, e))
        self.venv_helpers = {
            name.rsplit('.', 1)[-1] for module in self.modules.values()
            for name, func in module.functions.items()
            if _is_venv_helper(func)}
        self.findings = []
        for path in sorted(self.modules):
            self.findings += self._findings(self.modules[path])

    def _findings(self, module):
        found = []
        for call, qual in module.calls:
            target = module.target(call)
            if target is None:
                continue
            want = _RUNNERS.get(target)
            index = 0
            if want is None and target[0] == 'os' and _SPAWN_RE.match(
                    target[1]):
                want, index = 'file', 1
            if want is None:
                continue
            arg = call.args[index] if len(call.args) > index else next(
                (k.value for k in call.keywords
                 if k.arg in ('args', 'cmd', 'command', 'file', 'path')),
                None)
            if arg is None:
                continue
            for res in self.resolve(module, qual, arg, want, 0):
                found.append(Finding(res.name, module.path, call.lineno,
                                     'host', res.kind, res.detail, qual))
        return found

    def resolve(self, module, qual, node, want, depth):
        """What an expression names, as a list of Res.

        want: 'argv' for an argument vector, 'file' for a program.
        """
        if want == 'argv' and isinstance(node, (ast.List, ast.Tuple)):
            if not node.elts or isinstance(node.elts[0], ast.Starred):
                return [_unresolved(node)]
            return self.resolve(module, qual, node.elts[0], 'file', depth)
        if want == 'argv' and isinstance(node, ast.BinOp) and isinstance(
                node.op, ast.Add):
            return self.resolve(module, qual, node.left, want, depth)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            words = node.value.split()
            return [_program_res(words[0])] if words else []
        if isinstance(node, ast.Attribute) and ast.unparse(
                node) == 'sys.executable':
            return [Res('venv', 'python', 'sys.executable')]
        if isinstance(node, ast.Call):
            return self._resolve_call(module, qual, node, want, depth)
        if isinstance(node, ast.Name) and depth < 4:
            return self._resolve_name(module, qual, node, want, depth)
        return [_unresolved(node)]

    def _resolve_call(self, module, qual, node, want, depth):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else (
            func.attr if isinstance(func, ast.Attribute) else None)
        if name in self.venv_helpers and node.args and isinstance(
                node.args[0], ast.Constant):
            return [Res('venv', node.args[0].value, '%s()' % name)]
        if name in ('list', 'tuple') and len(node.args) == 1:
            return self.resolve(module, qual, node.args[0], want, depth)
        return [_unresolved(node)]

    def _resolve_name(self, module, qual, node, want, depth):
        func = module.functions.get(qual) if qual else None
        if func is not None:
            values = _bound(func, node.id)
            if values:
                return [r for v in values
                        for r in self.resolve(module, qual, v, want,
                                              depth + 1)]
            if node.id in [a.arg for a in func.args.posonlyargs
                           + func.args.args + func.args.kwonlyargs]:
                return self._resolve_parameter(module, qual, node.id, want,
                                               depth)
        values = _bound(module.tree, node.id)
        if values:
            return [r for v in values
                    for r in self.resolve(module, None, v, want, depth + 1)]
        return [_unresolved(node)]

    def _resolve_parameter(self, module, qual, name, want, depth):
        # The parameter's default, and what the calls in this module give.
        func = module.functions[qual]
        args = func.args
        positional = [a.arg for a in args.posonlyargs + args.args]
        found = []
        defaults = dict(zip(positional[len(positional)
                                       - len(args.defaults):],
                            args.defaults))
        defaults.update((a.arg, d) for a, d in zip(args.kwonlyargs,
                                                   args.kw_defaults) if d)
        if name in defaults:
            found += self.resolve(module, None, defaults[name], want,
                                  depth + 1)
        short = qual.rsplit('.', 1)[-1]
        method = qual in module.methods
        for call, caller in module.calls:
            callee = call.func
            if method and isinstance(callee, ast.Attribute) and (
                    callee.attr == short):
                params = positional[1:]
            elif not method and isinstance(callee, ast.Name) and (
                    callee.id == short):
                params = positional
            else:
                continue
            given = None
            if name in params and params.index(name) < len(call.args):
                given = call.args[params.index(name)]
            for keyword in call.keywords:
                if keyword.arg == name:
                    given = keyword.value
            if given is not None and not isinstance(given, ast.Starred):
                found += self.resolve(module, caller, given, want,
                                      depth + 1)
        if not found:
            found.append(Res('unresolved', 'parameter %s of %s()'
                             % (name, qual), None))
        return found


def _unresolved(node):
    return Res('unresolved', ast.unparse(node), None)


def _program_res(text):
    if '/' not in text:
        return Res('program', text, None)
    name = program_name(text)
    return Res('program', name, None) if name else Res('path', text, None)


def class_default(root, path, dotted):
    """The constant default of Class.attribute in a module, or None."""
    class_name, attr = dotted.split('.')
    try:
        with open(os.path.join(root, path)) as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign):
                    targets = [stmt.target]
                elif isinstance(stmt, ast.Assign):
                    targets = stmt.targets
                else:
                    continue
                if any(isinstance(t, ast.Name) and t.id == attr
                       for t in targets) and isinstance(
                        stmt.value, ast.Constant) and isinstance(
                        stmt.value.value, str):
                    return stmt.value.value
    return None


def apply_declarations(root, findings, declared=DECLARED):
    """Unresolved findings a declaration covers, given its program.

    Returns the findings, and the problems of declarations that cover
    nothing.
    """
    out = []
    used = set()
    problems = []
    for finding in findings:
        key = (finding.path, finding.func)
        if finding.kind != 'unresolved' or key not in declared:
            out.append(finding)
            continue
        used.add(key)
        where, dotted = declared[key]
        program = class_default(root, where, dotted)
        if program is None:
            problems.append('DECLARED in tools/check_host_programs.py: %s '
                            'has no string default of %s'
                            % (where, dotted))
            out.append(finding)
            continue
        res = _program_res(program)
        out.append(finding._replace(
            program=res.name, kind=res.kind,
            detail='declared: the default of %s in %s' % (dotted, where)))
    for key in sorted(set(declared) - used):
        problems.append('DECLARED in tools/check_host_programs.py: %s, '
                        'function %s, has no unresolved call any more: '
                        'update the declaration' % key)
    return out, problems


def indirect_findings(root, rules=INDIRECT):
    """Programs started by programs the testbed starts (see INDIRECT)."""
    found = []
    problems = []
    for path, pattern, why in rules:
        try:
            with open(os.path.join(root, path)) as f:
                tree = ast.parse(f.read(), path)
        except (OSError, SyntaxError) as e:
            problems.append('INDIRECT in tools/check_host_programs.py: '
                            'cannot read %s: %s' % (path, e))
            continue
        matched = False
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value,
                                                             str):
                for m in re.finditer(pattern, node.value):
                    matched = True
                    found.append(Finding(m.group(1), path, node.lineno,
                                         'host', 'program', why, None))
        if not matched:
            problems.append('INDIRECT in tools/check_host_programs.py: '
                            '%r matches nothing in %s any more: update it'
                            % (pattern, path))
    return found, problems


# bindep.

def _selector_status(selectors, profiles):
    """bindep's evaluation of one partition of a rule's selectors.

    None when it has none, else whether it matches.
    """
    if not selectors:
        return None
    positive = matched = group_found = group_matched = False
    for selector in selectors:
        if isinstance(selector, list):
            group_found = True
            if all((p in profiles) == sense for sense, p in selector):
                group_matched = True
            continue
        sense, profile = selector
        if not sense and profile in profiles:
            return False
        if sense:
            positive = True
            matched = matched or profile in profiles
    return group_matched or matched or not (group_found or positive)


def bindep_packages(text, profiles):
    """(package, line number) of the bindep.txt rules profiles select.

    profiles: the user profiles and the platform:... ones together.
    """
    selected = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        m = re.match(r'([A-Za-z0-9][A-Za-z0-9+._:-]*)\s*(\[([^]]*)\])?',
                     line)
        if not m:
            raise ValueError('bindep line %d: cannot parse %r'
                             % (number, line))
        platform, user = [], []
        for group, atom in re.findall(r'\(([^)]*)\)|([^\s()]+)',
                                      m.group(3) or ''):
            if group:
                user.append([(not p.startswith('!'), p.lstrip('!'))
                             for p in group.split()])
                continue
            sense, profile = not atom.startswith('!'), atom.lstrip('!')
            (platform if profile.startswith('platform:') else user).append(
                (sense, profile))
        statuses = (_selector_status(platform, profiles),
                    _selector_status(user, profiles))
        if False not in statuses:
            selected.append((m.group(1), number))
    return selected


def platform_profiles(os_release='/etc/os-release'):
    """bindep's platform profiles of this machine (for a dpkg one)."""
    profiles = {'platform:dpkg'}
    fields = {}
    try:
        with open(os_release) as f:
            for line in f:
                key, _, value = line.strip().partition('=')
                fields[key] = value.strip('"')
    except OSError:
        return profiles
    for distro in [fields.get('ID')] + fields.get('ID_LIKE', '').split():
        if distro:
            profiles.add('platform:%s' % distro)
    if fields.get('ID'):
        for suffix in (fields.get('VERSION_ID'),
                       fields.get('VERSION_CODENAME')):
            if suffix:
                profiles.add('platform:%s-%s' % (fields['ID'], suffix))
    return profiles


# dpkg.

Package = collections.namedtuple('Package',
                                 'name essential priority depends provides')


def parse_relations(field):
    """A Depends-like field as alternatives: [[name, ...], ...].

    Versions, architecture qualifiers and restrictions are dropped.
    """
    relations = []
    for clause in field.split(','):
        names = []
        for atom in clause.split('|'):
            atom = re.sub(r'\([^)]*\)|\[[^]]*\]|<[^>]*>', ' ', atom).split()
            if atom:
                names.append(atom[0].split(':')[0])
        if names:
            relations.append(names)
    return relations


def parse_dpkg_status(text):
    """The installed packages of a dpkg status file: name -> Package."""
    packages = {}
    for stanza in re.split(r'\n[ \t]*\n', text):
        fields = {}
        key = None
        for line in stanza.splitlines():
            if line[:1] in (' ', '\t'):
                if key:
                    fields[key] += ' ' + line.strip()
            elif ':' in line:
                key, value = line.split(':', 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        name = fields.get('package')
        if not name or fields.get('status', '').split()[-1:] != [
                'installed']:
            continue
        depends = (parse_relations(fields.get('pre-depends', ''))
                   + parse_relations(fields.get('depends', '')))
        provides = [r[0] for r in parse_relations(fields.get('provides',
                                                             ''))]
        old = packages.get(name)
        if old:  # the same package for another architecture
            depends = old.depends + depends
            provides = old.provides + provides
        packages[name] = Package(
            name, fields.get('essential') == 'yes' or bool(
                old and old.essential),
            fields.get('priority', old.priority if old else ''), depends,
            provides)
    return packages


def _satisfiers(alternatives, packages, providers):
    # The first alternative that is installed, as a real package or by
    # the packages that provide it. A fresh machine's apt prefers the first
    # alternative too; where this machine has a later one only, it is the
    # one that counts here.
    for name in alternatives:
        if name in packages:
            return [name]
        if providers.get(name):
            return sorted(providers[name])
    return []


def closure(roots, packages):
    """Every installed package the roots need (Depends, Pre-Depends).

    name -> the package that brought it in (None for a root).
    """
    providers = collections.defaultdict(set)
    for package in packages.values():
        for name in package.provides:
            providers[name].add(package.name)
    found = {}
    queue = collections.deque()
    for root in roots:
        if root in packages and root not in found:
            found[root] = None
            queue.append(root)
    while queue:
        name = queue.popleft()
        for alternatives in packages[name].depends:
            for dep in _satisfiers(alternatives, packages, providers):
                if dep not in found:
                    found[dep] = name
                    queue.append(dep)
    return found


class Allowed(object):
    """The packages a program may come from.

    baseline: what every Debian has (Essential: yes, Priority: required
    and their dependencies); named: what bindep.txt names and their
    dependencies; missing: names bindep.txt has that are not installed.
    """

    def __init__(self, bindep_names, packages, bindep_label='bindep.txt'):
        self.packages = packages
        self.label = bindep_label
        self.baseline = closure(sorted(
            n for n, p in packages.items()
            if p.essential or p.priority == 'required'), packages)
        self.named = closure(bindep_names, packages)
        self.missing = [n for n in bindep_names if n not in packages]

    def __contains__(self, name):
        return name in self.baseline or name in self.named

    def reason(self, name):
        if name in self.baseline:
            package = self.packages[self.chain(self.baseline, name)[0]]
            tree = self.baseline
            why = 'Essential' if package.essential else 'Priority: required'
        elif name in self.named:
            tree, why = self.named, self.label
        else:
            return None
        chain = self.chain(tree, name)
        return why if len(chain) == 1 else '%s: %s' % (why,
                                                       ' -> '.join(chain))

    @staticmethod
    def chain(tree, name):
        chain = [name]
        while tree[chain[0]] is not None:
            chain.insert(0, tree[chain[0]])
        return chain


def parse_alternatives(name, text):
    """An alternatives file of /var/lib/dpkg/alternatives.

    Returns (links, choices): links [(name, link path)], master first;
    choices [(path, [slave path or '', ...])].
    """
    lines = text.split('\n')
    if len(lines) < 3:
        return [], []
    links = [(name, lines[1])]
    i = 2
    while i + 1 < len(lines) and lines[i]:
        links.append((lines[i], lines[i + 1]))
        i += 2
    i += 1
    choices = []
    slaves = len(links) - 1
    while i + 1 < len(lines) and lines[i]:
        path = lines[i]
        choices.append((path, lines[i + 2:i + 2 + slaves]))
        i += 2 + slaves
    return links, choices


def program_index(file_lists, alternatives):
    """Program name -> {package: how}.

    From the files in PATH directories of the file lists, and from the
    alternatives' links to a package's file.
    """
    index = collections.defaultdict(dict)
    owner = {}
    for package in sorted(file_lists):
        for path in file_lists[package]:
            owner.setdefault(canonical(path), package)
            name = program_name(path)
            if name:
                index[name].setdefault(package, path)
    for links, choices in alternatives:
        for path, slave_paths in choices:
            for (_, link), target in zip(links, [path] + list(slave_paths)):
                name = program_name(link)
                package = owner.get(canonical(target)) if target else None
                if name and package:
                    index[name].setdefault(
                        package, 'alternative %s -> %s' % (link, target))
    return index


Dpkg = collections.namedtuple('Dpkg', 'packages file_lists alternatives')


def read_dpkg(admindir='/var/lib/dpkg'):
    """This machine's dpkg database (the only part that reads it)."""
    with open(os.path.join(admindir, 'status'), errors='replace') as f:
        packages = parse_dpkg_status(f.read())
    file_lists = collections.defaultdict(list)
    for path in glob.glob(os.path.join(admindir, 'info', '*.list')):
        package = os.path.basename(path)[:-len('.list')].split(':')[0]
        if package in packages:
            with open(path, errors='replace') as f:
                file_lists[package] += f.read().splitlines()
    alternatives = []
    for path in sorted(glob.glob(os.path.join(admindir, 'alternatives',
                                              '*'))):
        with open(path, errors='replace') as f:
            alternatives.append(parse_alternatives(os.path.basename(path),
                                                   f.read()))
    return Dpkg(packages, dict(file_lists), alternatives)


# The check.

def _places(findings):
    """file:line,line, file:line of some findings, in order."""
    by_file = collections.OrderedDict()
    for f in sorted(findings, key=lambda f: (f.path, f.line)):
        lines = by_file.setdefault(f.path, [])
        if f.line not in lines:
            lines.append(f.line)
    return ', '.join('%s:%s' % (path, ','.join(str(n) for n in lines))
                     for path, lines in by_file.items())


def _or(names):
    names = sorted(names)
    return names[0] if len(names) == 1 else '%s or %s' % (
        ', '.join(names[:-1]), names[-1])


def check_programs(findings, allowed, index):
    """One problem per host program that no allowed package provides."""
    problems = []
    by_program = collections.defaultdict(list)
    for f in findings:
        if f.side == 'host' and f.kind == 'program':
            by_program[f.program].append(f)
    for program in sorted(by_program):
        owners = index.get(program, {})
        if any(p in allowed for p in owners):
            continue
        where = '%s (%s)' % (program, _places(by_program[program]))
        if owners:
            problems.append('%s comes from %s, which %s does not name'
                            % (where, _or(owners), allowed.label))
        else:
            problems.append('%s: no installed package provides it%s' % (
                where, ' (run tools/install-deps.sh first)'
                if allowed.missing else ''))
    return problems


def parse_require_tools(commands):
    """(program, package, line) of the arguments of require_tools calls.

    Returns them and the problems of malformed ones.
    """
    entries = []
    problems = []
    for command in commands:
        for arg in command.args:
            program, _, package = (arg.value or '').partition(':')
            if not (program and package):
                problems.append('line %d: require_tools wants PROGRAM:'
                                'PACKAGE, not %s' % (arg.line, arg.raw))
            else:
                entries.append((program, package, arg.line))
    return entries, problems


def check_require_tools(shell, paths, allowed, index):
    """Problems of the build scripts' require_tools calls.

    Each names every host program the script runs (its own lines and the
    functions it calls) that a minimal Debian lacks, with the package it
    comes from, and nothing else.
    """
    problems = []
    for path in paths:
        reachable = shell.reachable(path)
        runs = collections.defaultdict(list)
        for f in shell.findings:
            if (f.path, f.func) in reachable and f.side == 'host' and (
                    f.kind == 'program'):
                runs[f.program].append(f)
        entries, bad = parse_require_tools(shell.calls(path,
                                                       'require_tools'))
        problems += ['%s: %s' % (path, p) for p in bad]
        named = {program: package for program, package, _ in entries}
        for program in sorted(runs):
            owners = index.get(program, {})
            if not owners or any(p in allowed.baseline for p in owners):
                continue  # baseline, or reported by check_programs
            if program not in named:
                problems.append(
                    '%s runs %s (%s), which a minimal Debian lacks: add '
                    '%s:%s to its require_tools call' % (
                        path, program, _places(runs[program]), program,
                        _or(p for p in owners if p in allowed)
                        if any(p in allowed for p in owners)
                        else _or(owners)))
        for program, package, line in entries:
            if program not in runs:
                problems.append('%s:%d: require_tools names %s, which the '
                                'script does not run' % (path, line,
                                                         program))
            elif index.get(program) and package not in index[program]:
                problems.append('%s:%d: require_tools says %s comes from '
                                '%s; dpkg says %s' % (
                                    path, line, program, package,
                                    _or(index[program])))
    return problems


def _expand(root, patterns):
    found = []
    for pattern in patterns:
        found += sorted(os.path.relpath(p, root)
                        for p in glob.glob(os.path.join(root, pattern)))
    return found


def report(findings, allowed, index):
    """The --verbose listing: every program, where, and what allows it."""
    lines = []
    sections = (
        ('host programs', lambda f: f.side == 'host'
         and f.kind == 'program'),
        ('image side (in a chroot: the image package lists bring these; '
         'not checked)', lambda f: f.side == 'image'
         and f.kind == 'program'),
        ('run by path (no PATH lookup: files of the venv, the repository '
         'or the build)', lambda f: f.side == 'host' and f.kind == 'path'),
        ("the Python venv's (pip installs them, not Debian)",
         lambda f: f.kind == 'venv'),
        ('unresolved (built at run time; not checked)',
         lambda f: f.side == 'host' and f.kind == 'unresolved'),
    )
    for title, wanted in sections:
        group = collections.defaultdict(list)
        for f in findings:
            if wanted(f):
                group[f.program].append(f)
        if not group:
            continue
        lines.append('%s:' % title)
        for program in sorted(group):
            how = ''
            if title == 'host programs':
                owners = index.get(program, {})
                ok = [p for p in sorted(owners) if p in allowed]
                how = ('%s (%s)' % (ok[0], allowed.reason(ok[0])) if ok
                       else 'NOT ALLOWED')
            details = sorted({f.detail for f in group[program]
                              if f.detail})
            lines.append('  %-22s %s %s%s' % (
                program, how, _places(group[program]),
                ''.join(' [%s]' % d for d in details)))
    used = set()
    for f in findings:
        if f.side == 'host' and f.kind == 'program':
            used |= set(index.get(f.program, {}))
    idle = sorted(n for n in allowed.named if allowed.named[n] is None
                  and n not in used)
    if idle:
        lines.append('%s packages no host program found comes from '
                     '(libraries, firmware, compilers, tools that others '
                     'run): %s' % (allowed.label, ', '.join(idle)))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Check that every program the host side runs comes '
        'from a package bindep.txt names, a dependency of one, or a '
        'package every Debian has.')
    parser.add_argument('--bindep', default=os.path.join(ROOT, 'bindep.txt'),
                        help='the bindep file (default: bindep.txt)')
    parser.add_argument('--admindir', default='/var/lib/dpkg',
                        help="dpkg's database (default: /var/lib/dpkg)")
    parser.add_argument('-v', '--verbose', action='store_true',
                        help='list every program found, where, and which '
                        'package allows it')
    args = parser.parse_args(argv)
    label = os.path.relpath(os.path.abspath(args.bindep), ROOT)
    if label.startswith('..'):
        label = args.bindep
    with open(args.bindep) as f:
        names = [n for n, _ in bindep_packages(
            f.read(), platform_profiles() | {BINDEP_PROFILE})]
    if not os.path.exists(os.path.join(args.admindir, 'status')):
        print('check_host_programs: no dpkg database in %s: the host '
              'programs are checked on Debian only' % args.admindir)
        return 1
    dpkg = read_dpkg(args.admindir)
    allowed = Allowed(names, dpkg.packages, label)
    index = program_index(dpkg.file_lists, dpkg.alternatives)

    shell = ShellAnalysis(ROOT, _expand(ROOT, SHELL_GLOBS))
    python = PythonAnalysis(ROOT, _expand(ROOT, PYTHON_GLOBS))
    python_findings, declared_problems = apply_declarations(
        ROOT, python.findings)
    indirect, indirect_problems = indirect_findings(ROOT)
    findings = shell.findings + python_findings + indirect

    problems = ['%s names %s, which is not installed: run '
                'tools/install-deps.sh first' % (label, name)
                for name in allowed.missing]
    problems += shell.problems + python.problems + declared_problems
    problems += indirect_problems
    problems += check_programs(findings, allowed, index)
    problems += check_require_tools(
        shell, _expand(ROOT, (BUILD_SCRIPT_GLOB,)), allowed, index)

    if args.verbose:
        for line in report(findings, allowed, index):
            print(line)
    for problem in problems:
        print(problem)
    checked = {f.program for f in findings
               if f.side == 'host' and f.kind == 'program'}
    print('check_host_programs: %d host programs checked against %s (%d '
          'packages with their dependencies) and the %d packages every '
          'Debian has: %s' % (
              len(checked), label, len(allowed.named),
              len(allowed.baseline),
              '%d problem%s' % (len(problems), 's' * (len(problems) != 1))
              if problems else 'OK'))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
