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

"""grub.cfg: the entry grub 2.06 would boot, and how it would boot it.

The script runs the way grub's normal mode runs it, restricted to what
chooses an entry: top-level commands in order (``set``, ``unset``,
``export``, ``load_env``, assignments, ``if``/``elif``/``else`` with
grub's ``test``), ``menuentry``/``submenu`` definitions, then the default
entry as normal/menu.c picks it (``default``: a number, an id, a title or
a ``>``-separated path through submenus; the first entry when nothing
matches; ``fallback`` when the default names a kernel that is not there),
and finally the chosen entry's body, where ``linux`` and ``initrd`` are
recorded. Functions are defined but never run, loops are not run, nothing
else has an effect. Every word is expanded when its command runs, with
grub's quoting and word splitting, and every expansion is charged to the
discovery's budget.

Known differences from grub: ``source``/``configfile`` are not followed
(each candidate grub.cfg is read on its own), syntax errors drop the
statement they are in and parsing resumes at the next line (grub's own
recovery differs in corner cases), file tests look in the image, and a
grub.cfg that runs ``blscfg`` is left to the BLS source.
"""

import logging
import os
import re

from ipa_kexec.bootloader import entry as entry_mod
from ipa_kexec.bootloader import grubenv
from ipa_kexec.bootloader import grubscript as gs
from ipa_kexec import budget as budget_mod
from ipa_kexec import errors
from ironic_kexec import protocol

LOG = logging.getLogger(__name__)

GRUB_CFG_PATHS = ('/boot/grub/grub.cfg', '/boot/grub2/grub.cfg')
EFI_DIRS = ('/boot/efi/EFI', '/efi/EFI', '/boot/EFI')
# Words of one command that runs; grub.cfg commands have a few dozen.
MAX_WORDS = 4096
# Script characters lexed per grub.cfg, counting a submenu or entry body
# again each time it runs: deep submenus cannot multiply the work.
LEX_FACTOR = 4

_LINUX = frozenset(('linux', 'linuxefi', 'linux16'))
_INITRD = frozenset(('initrd', 'initrdefi', 'initrd16'))
_MENU_OPTS = frozenset(('class', 'users', 'hotkey', 'source', 'id',
                        'unrestricted'))
_FAILING = frozenset(('false', 'keystatus'))
_KEYWORDS = frozenset(('if', 'then', 'elif', 'else', 'fi', 'function',
                       'for', 'while', 'until', 'do', 'done', 'case',
                       'esac', 'select', 'in'))
_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')
# grub_isspace: newline, carriage return, space and tab.
_FIELDS = re.compile(r'[^ \t\n\r]+')
_SPACE = ' \t\n\r'
# The features grub 2.06's normal mode announces (normal/main.c).
_FEATURES = ('feature_chainloader_bpb', 'feature_ntldr',
             'feature_platform_search_hint', 'feature_default_font_path',
             'feature_all_video_module', 'feature_menuentry_id',
             'feature_menuentry_options', 'feature_200_final',
             'feature_nativedisk_cmd', 'feature_timeout_style')
# Commands that change what is booted; any other command is skipped.
_HANDLED = frozenset(('menuentry', 'submenu', 'set', 'unset', 'export',
                      'load_env', 'blscfg', '[', 'test', '!')) | _FAILING \
    | _LINUX | _INITRD
_NOOP = ()
_ULONG_MAX = 2 ** 64 - 1
_MISSING = object()


class MenuEntry(object):
    """A ``menuentry`` or ``submenu``, as grub keeps it.

    Its title, id, arguments and the span of its body in the script, as
    grub_normal_add_menu_entry records them.
    """

    def __init__(self, title, ident, args, submenu, span):
        self.title = title
        self.id = ident
        self.args = args
        self.submenu = submenu
        self.span = span

    def __repr__(self):
        return '%s(%r, id=%r)' % ('Submenu' if self.submenu else 'MenuEntry',
                                  self.title, self.id)


class Context(object):
    """An environment context (normal/context.c) with its menu."""

    def __init__(self, variables=None, exported=None, args=()):
        self.vars = dict(variables or {})
        self.exported = set(exported or ())
        self.menu = []
        self.args = list(args)
        self.status = 0

    def child(self, args):
        """A submenu's context: only exported variables are copied."""
        return Context({k: v for k, v in self.vars.items()
                        if k in self.exported}, self.exported, args)


class Load(object):
    """What a menu entry's body loads."""

    def __init__(self):
        self.kernel = None
        self.args = []
        self.initrds = []


class _Frame(object):
    __slots__ = ('kind', 'phase', 'active', 'parent_active', 'taken',
                 'status', 'ncmds', 'words', 'start')

    def __init__(self, kind, phase, parent_active):
        self.kind = kind
        self.phase = phase
        self.parent_active = parent_active
        self.active = False
        self.taken = False
        self.status = 0
        self.ncmds = 0
        self.words = None
        self.start = None


class _SyntaxError(Exception):
    pass


def _strtoul(text):
    """grub_strtoul(text, &end, 0) on a 64-bit grub: (value, end, error).

    error is None, 'bad' (no digit) or 'range' (overflow), as
    grub-core/kern/misc.c reports them. Linear, and stops at an overflow.
    """
    i = 0
    n = len(text)
    while i < n and text[i] in _SPACE:
        i += 1
    base = 0
    if text[i:i + 1] == '0':
        if text[i + 1:i + 2] == 'x':
            base = 16
            i += 2
        elif '0' <= text[i + 1:i + 2] <= '7' and text[i + 1:i + 2]:
            base = 8
    base = base or 10
    num = 0
    found = False
    while i < n:
        c = text[i]
        if '0' <= c <= '9':
            digit = ord(c) - 48
        elif 'a' <= c <= 'z' or 'A' <= c <= 'Z':
            digit = ord(c.lower()) - 87
        else:
            break
        if digit >= base:
            break
        found = True
        if num > (_ULONG_MAX - digit) // base:
            return _ULONG_MAX, i, 'range'
        num = num * base + digit
        i += 1
    if not found:
        return 0, i, 'bad'
    return num, i, None


def _to_int(num):
    """C's (int) cast of an unsigned long, as menu.c does."""
    num &= 0xffffffff
    return num - 0x100000000 if num & 0x80000000 else num


def menuentry_eq(ident, spec):
    """Whether ``spec`` names ``ident`` (normal/menu.c menuentry_eq).

    ``spec`` up to its first unescaped ``>`` (``>>`` is a literal ``>``)
    must equal ``ident``.
    """
    i = j = 0
    n = len(ident)
    m = len(spec)
    while True:
        s = spec[j] if j < m else ''
        if s == '>' and spec[j + 1:j + 2] != '>':
            return i >= n
        if s == '>':
            j += 1
            s = spec[j] if j < m else ''
        c = ident[i] if i < n else ''
        if c != s:
            return False
        if c == '':
            return True
        i += 1
        j += 1


def entry_number(menu, value):
    """get_entry_number of grub 2.06: an index into ``menu`` or -1."""
    if value is None:
        return -1
    num, _end, error = _strtoul(value)
    if error == 'bad':
        for index, item in enumerate(menu):
            if menuentry_eq(item.title, value) or menuentry_eq(item.id,
                                                               value):
                return index
        return -1
    if error:
        return -1
    return _to_int(num)


def submenu_default(value):
    """What ``default`` becomes inside a submenu, or None.

    grub_menu_execute_entry sets it to the text after the first unescaped
    ``>``; without one the submenu's new context has no ``default``.
    """
    if not value:
        return None
    i = 0
    n = len(value)
    while i < n:
        if value[i] == '>':
            if value[i + 1:i + 2] == '>':
                i += 2
                continue
            return value[i + 1:] or None
        i += 1
    return None


class Interpreter(object):
    """Runs one grub.cfg's text, restricted to what chooses an entry."""

    def __init__(self, rootfs, text, cfg_path, env, budget, platform):
        self.rootfs = rootfs
        self.budget = budget
        self.env = env
        self.text = gs.prepare(text, budget)
        self.lex_left = LEX_FACTOR * max(len(self.text), 65536)
        self.blscfg = False
        self.syntax_errors = 0
        cfg_dir = os.path.dirname(cfg_path)
        self.top = Context()
        for name in _FEATURES:
            self._define(self.top, name, 'y', True)
        self._define(self.top, 'grub_cpu', 'x86_64', True)
        self._define(self.top, 'grub_platform', platform, True)
        self._define(self.top, 'prefix', cfg_dir, False)
        self._define(self.top, 'config_directory', cfg_dir, True)
        self._define(self.top, 'config_file', cfg_path, True)

    @staticmethod
    def _define(ctx, name, value, export):
        ctx.vars[name] = value
        if export:
            ctx.exported.add(name)

    # Running a script.

    def run(self, ctx, start=0, end=None, load=None):
        end = len(self.text) if end is None else end
        self.lex_left -= end - start
        if self.lex_left < 0:
            raise errors.TooComplex('grub.cfg: submenus and entries run '
                                    'more script than %d times its size'
                                    % LEX_FACTOR)
        lexer = gs.Lexer(self.text, start, end, self.budget)
        runner = _Runner(self, ctx, load)
        next_token = lexer.next
        on_word = runner.word
        while True:
            kind, value, pos = next_token()
            try:
                if kind == gs.WORD:
                    on_word(value)
                elif kind == gs.EOF:
                    runner.eof()
                    return
                else:
                    runner.token(kind, value, pos)
            except _SyntaxError:
                self.syntax_errors += 1
                if self.syntax_errors == 1:
                    LOG.debug('grub.cfg: syntax error at offset %d, '
                              'statement dropped', pos)
                runner.rollback()
                # An unterminated quote took the rest of the script, as
                # grub's lexer asks for lines until the quote closes.
                resume = lexer.pos
                lexer.skip_line(pos)
                lexer.pos = max(lexer.pos, resume)

    # Expansion.

    def lookup(self, ctx, name):
        if name[0].isdigit():
            index = int(name[:9]) if len(name) <= 9 else 0
            if 0 < index <= len(ctx.args):
                return ctx.args[index - 1]
            return ''
        if name == '#':
            return str(len(ctx.args))
        if name in ('*', '@'):
            return ' '.join(ctx.args)
        if name == '?':
            return str(ctx.status)
        value = ctx.vars.get(name, '')
        return value

    def expand(self, ctx, words):
        """The arguments grub makes of ``words`` (execute.c)."""
        argv = []
        for word in words:
            if word.plain is not None:
                argv.append(word.plain)
                continue
            cur = None
            produced = 0
            for kind, text in word.parts:
                if kind == gs.TEXT:
                    if text:
                        if cur is None:
                            cur = []
                        cur.append(text)
                    continue
                if kind == gs.QUOTED:
                    if cur is None:
                        cur = []
                    cur.append(text)
                    continue
                value = self.lookup(ctx, text)
                if not value:
                    if kind == gs.QVAR and cur is None:
                        cur = []
                    continue
                produced += len(value)
                self.budget.expanded(len(value), 'grub variable $%s'
                                     % text[:64])
                if produced > budget_mod.MAX_VALUE:
                    raise errors.TooComplex(
                        'a grub.cfg word expands to more than %d '
                        'characters' % budget_mod.MAX_VALUE)
                if kind == gs.QVAR:
                    if cur is None:
                        cur = []
                    cur.append(value)
                    continue
                fields = _FIELDS.findall(value)
                for index, field in enumerate(fields):
                    if index:
                        argv.append(''.join(cur))
                        cur = None
                    if cur is None:
                        cur = []
                    cur.append(field)
            if cur is not None:
                argv.append(''.join(cur))
        return argv

    # Commands.

    def execute(self, ctx, words, block, load, undo):
        """Run one command; returns its status (0 is success)."""
        argv = self.expand(ctx, words)
        if not argv:
            return 0
        invert = argv[0] == '!'
        if invert:
            argv = argv[1:]
            if not argv:
                return 1
        ok = self._command(ctx, argv[0], argv[1:], block, load, undo)
        return 0 if ok != invert else 1

    def _set(self, ctx, name, value, undo):
        if not name or name[0].isdigit() or name in ('#', '*', '@'):
            return False
        undo.append(('var', ctx, name, ctx.vars.get(name, _MISSING)))
        ctx.vars[name] = value
        return True

    def _command(self, ctx, name, args, block, load, undo):
        if name in ('menuentry', 'submenu'):
            return self._menuentry(ctx, args, block, name == 'submenu', undo)
        if name == 'set':
            if not args:
                return True
            var, sep, value = args[0].partition('=')
            return bool(sep) and self._set(ctx, var, value, undo)
        if name == 'unset':
            if not args:
                return False
            undo.append(('var', ctx, args[0], ctx.vars.get(args[0],
                                                           _MISSING)))
            ctx.vars.pop(args[0], None)
            return True
        if name == 'export':
            for var in args:
                if var not in ctx.exported:
                    undo.append(('export', ctx, var))
                    ctx.exported.add(var)
            return True
        if name == 'load_env':
            return self._load_env(ctx, args, undo)
        if name == 'blscfg':
            undo.append(('blscfg', self.blscfg))
            self.blscfg = True
            return True
        if name in ('[', 'test'):
            if name == '[' and args and args[-1] == ']':
                args = args[:-1]
            return _Test(self, args).run()
        if name in _FAILING:
            return False
        if load is not None and name in _LINUX:
            if not args:
                return False
            load.kernel = args[0]
            load.args = args[1:]
            load.initrds = []
            return True
        if load is not None and name in _INITRD:
            if not args or load.kernel is None:
                return False
            load.initrds = list(args)
            return True
        if '=' in name and name[0] != '=':
            # execute.c: a command that is not found but holds '=' is an
            # assignment.
            var, _sep, value = name.partition('=')
            return self._set(ctx, var, value, undo)
        return True

    def _menuentry(self, ctx, args, block, submenu, undo):
        """grub_cmd_menuentry with grub_arg_parse's option rules."""
        if block is None:
            return False
        block_arg = _BLOCK
        args = list(args) + [block_arg]
        positional = []
        opts = {}
        i = 0
        while i < len(args):
            arg = args[i]
            if arg is block_arg or arg[:1] != '-' or len(arg) == 1 or \
                    arg[1] != '-':
                # menuentry has no short options and accepts dashes.
                positional.append(arg)
                i += 1
                continue
            if arg == '--':
                positional.extend(args[i + 1:])
                break
            name, eq, value = arg[2:].partition('=')
            opt = name if name in _MENU_OPTS else None
            if opt is None:
                positional.append(arg)
                i += 1
                continue
            if not eq and opt != 'unrestricted' and i + 1 < len(args) and (
                    args[i + 1] is block_arg or args[i + 1][:1] != '-'):
                value = args[i + 1]
                eq = True
                i += 1
            if (opt == 'unrestricted') == bool(eq) or value is block_arg:
                return False
            opts[opt] = value
            i += 1
        if not positional or positional[-1] is not block_arg:
            return False
        positional.pop()
        if not positional or block_arg in positional:
            return False
        title = positional[0]
        self.budget.entries(1, 'grub menu entry %r' % title[:64])
        undo.append(('menu', ctx, len(ctx.menu)))
        ctx.menu.append(MenuEntry(title, opts.get('id', title), positional,
                                  submenu, block))
        return True

    def _load_env(self, ctx, args, undo):
        path = None
        names = []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg in ('-f', '--file') and i + 1 < len(args):
                path = args[i + 1]
                i += 2
                continue
            if arg.startswith('--file='):
                path = arg[len('--file='):]
            elif arg not in ('-s', '--skip-sig'):
                names.append(arg)
            i += 1
        if path is None:
            path = ctx.vars.get('prefix', '') + '/grubenv'
        values = self._read_env(path)
        if values is None:
            return False
        for name, value in values.items():
            if not names or name in names:
                self._set(ctx, name, value, undo)
        return True

    def _read_env(self, path):
        """The values ``load_env`` reads from ``path``.

        The grubenv discovery found stands in when ``path`` names nothing
        in the image (the device grub reads it from is not known here).
        """
        found = self.find_file(path)
        if found is None:
            return self.env or None
        try:
            return grubenv.read(self.rootfs, found.path)
        except errors.NotFoundInImage:
            return None

    def find_file(self, path, directory=False):
        """A grub path (with or without a device) in the image, or None."""
        path = entry_mod.strip_device(path)
        candidates = []
        if self.rootfs.is_mountpoint('/boot'):
            candidates.append('/boot' + path)
        candidates.append(path)
        for candidate in candidates:
            try:
                found = self.rootfs.find(candidate)
            except errors.BudgetExhausted:
                raise
            except errors.KexecError:
                return None
            if found is not None and (found.is_dir() if directory
                                      else True):
                return found
        return None

    # Choosing and booting.

    def boot(self, ctx, depth=0):
        """The BootEntry that booting ``ctx``'s menu by default loads."""
        self.budget.depth(depth, 'grub submenus')
        menu = ctx.menu
        if not menu:
            return None
        default = ctx.vars.get('default')
        index = entry_number(menu, default)
        if index < 0 or index >= len(menu):
            LOG.debug('grub default %r matches no entry, using the first',
                      None if default is None else default[:128])
            index = 0
        result = self._run_entry(ctx, menu[index], default, depth)
        if result is not None:
            return result
        # grub_menu_execute_with_fallback: the numbers in "fallback".
        fallback = ctx.vars.get('fallback')
        tried = 0
        while fallback:
            self.budget.tick()
            num, end, error = _strtoul(fallback)
            if error:
                break
            tried += 1
            if tried > len(menu) + 1:
                break
            index = _to_int(num)
            fallback = fallback[end:].lstrip(_SPACE)
            if 0 <= index < len(menu):
                result = self._run_entry(ctx, menu[index], default, depth)
                if result is not None:
                    return result
        return None

    def _run_entry(self, ctx, item, default, depth):
        start, end = item.span
        if item.submenu:
            child = ctx.child(item.args)
            inner = submenu_default(default)
            if inner is not None:
                child.vars['default'] = inner
            self.run(child, start, end)
            return self.boot(child, depth + 1)
        load = Load()
        scope = Context(args=item.args)
        # A menu entry runs in the current context, in a new scope for
        # its positional parameters.
        scope.vars = ctx.vars
        scope.exported = ctx.exported
        self.run(scope, start, end, load)
        if load.kernel is None:
            LOG.debug('grub entry %r loads no kernel', item.title[:128])
            return None
        return entry_mod.from_loader(self.rootfs, item.title, load.kernel,
                                     load.initrds, load.args, {},
                                     protocol.SOURCE_GRUB, boot_image=True)


class _BlockArg(object):
    def __repr__(self):
        return '<block>'


_BLOCK = _BlockArg()


class _Runner(object):
    """The grammar of grub-core/script/parser.y, one token at a time.

    Commands run as soon as they are complete when they are active (not
    in a block body, a branch not taken, a function or a loop). The
    effects of a top-level statement are undone if a syntax error ends
    it, since grub parses a whole statement before running it.
    """

    def __init__(self, interp, ctx, load):
        self.interp = interp
        self.ctx = ctx
        self.load = load
        self.frames = []
        self.words = None
        self.nwords = 0
        self.after = False
        self.undo = []
        self.pos = 0

    @property
    def active(self):
        return self.frames[-1].active if self.frames else True

    def _count(self):
        if self.frames:
            self.frames[-1].ncmds += 1

    def _finish(self, block=None):
        """The command being read is complete."""
        if self.words is not None:
            if self.words is _NOOP:
                self.ctx.status = 0
            elif self.active:
                status = self.interp.execute(self.ctx, self.words, block,
                                             self.load, self.undo)
                self.ctx.status = status
                if self.frames and self.frames[-1].kind == 'if':
                    self.frames[-1].status = status
            self._count()
        self.words = None
        self.nwords = 0

    def _commit(self):
        if not self.frames:
            self.undo = []

    def rollback(self):
        for record in reversed(self.undo):
            kind = record[0]
            if kind == 'var':
                _k, ctx, name, old = record
                if old is _MISSING:
                    ctx.vars.pop(name, None)
                else:
                    ctx.vars[name] = old
            elif kind == 'export':
                record[1].exported.discard(record[2])
            elif kind == 'menu':
                del record[1].menu[record[2]:]
            elif kind == 'blscfg':
                self.interp.blscfg = record[1]
        self.undo = []
        self.frames = []
        self.words = None
        self.nwords = 0
        self.after = False

    def _push(self, kind, phase):
        self.interp.budget.depth(len(self.frames) + 1, 'grub.cfg nesting')
        frame = _Frame(kind, phase, self.active)
        self.frames.append(frame)
        return frame

    def _close_compound(self):
        self.frames.pop()
        self._count()
        self.after = True

    def token(self, kind, value, pos):
        self.pos = pos
        if kind == gs.SEP:
            self._sep(value)
        elif kind == gs.LBRACE:
            self._lbrace()
        elif kind == gs.RBRACE:
            self._rbrace()
        else:
            raise _SyntaxError()

    def word(self, word):
        if self.after:
            raise _SyntaxError()
        frame = self.frames[-1] if self.frames else None
        if self.words is not None:
            self.nwords += 1
            if self.words is not _NOOP:
                if self.nwords > MAX_WORDS:
                    raise errors.TooComplex('a grub.cfg command has more '
                                            'than %d words' % MAX_WORDS)
                self.words.append(word)
            return
        if frame is not None and frame.kind == 'function':
            if frame.phase == 'name':
                if word.plain is None or not _NAME.fullmatch(word.plain):
                    raise _SyntaxError()
                frame.phase = 'brace'
                return
            if frame.phase == 'brace':
                raise _SyntaxError()
        if frame is not None and frame.kind == 'for' and frame.phase in (
                'name', 'in'):
            if frame.phase == 'name':
                if word.plain is None or not _NAME.fullmatch(word.plain):
                    raise _SyntaxError()
                frame.phase = 'in'
            elif word.plain != 'in':
                raise _SyntaxError()
            else:
                frame.phase = 'args'
                self.words = _NOOP
            return
        keyword = word.plain if word.plain in _KEYWORDS else None
        if frame is not None and frame.kind == 'for' and \
                frame.phase == 'do' and keyword != 'do':
            raise _SyntaxError()
        if keyword is None:
            self.nwords = 1
            if self.active and (word.plain is None or word.plain in _HANDLED
                                or '=' in word.plain):
                self.words = [word]
            else:
                # Inactive, or a command with no effect here (insmod,
                # echo, search...): its words are not kept or expanded.
                self.words = _NOOP
            return
        self._keyword(keyword, frame)

    def _keyword(self, keyword, frame):
        if keyword == 'if':
            frame = self._push('if', 'cond')
            frame.active = frame.parent_active
            return
        if keyword in ('then', 'elif', 'else', 'fi'):
            if frame is None or frame.kind != 'if' or not frame.ncmds:
                raise _SyntaxError()
            if keyword == 'then':
                if frame.phase != 'cond':
                    raise _SyntaxError()
                frame.active = (frame.parent_active and not frame.taken
                                and frame.status == 0)
                frame.taken = frame.taken or frame.active
                frame.phase = 'then'
            elif frame.phase != 'then' and keyword != 'fi':
                raise _SyntaxError()
            elif keyword == 'elif':
                frame.phase = 'cond'
                frame.active = frame.parent_active and not frame.taken
            elif keyword == 'else':
                frame.phase = 'else'
                frame.active = frame.parent_active and not frame.taken
            else:
                if frame.phase == 'cond':
                    raise _SyntaxError()
                self._close_compound()
                return
            frame.ncmds = 0
            frame.status = 0
            return
        if keyword == 'function':
            # parser.y: a function is a statement of the script only.
            if self.frames:
                raise _SyntaxError()
            self._push('function', 'name')
            return
        if keyword == 'for':
            self._push('for', 'name')
            return
        if keyword in ('while', 'until'):
            self._push('while', 'cond')
            return
        if keyword == 'do':
            if frame is None or frame.kind not in ('for', 'while') or (
                    frame.phase == 'cond' and not frame.ncmds) or \
                    frame.phase not in ('cond', 'do'):
                raise _SyntaxError()
            frame.phase = 'body'
            frame.ncmds = 0
            return
        if keyword == 'done':
            if frame is None or frame.kind not in ('for', 'while') or \
                    frame.phase != 'body' or not frame.ncmds:
                raise _SyntaxError()
            self._close_compound()
            return
        # case, esac, select, in: no command of grub's grammar starts so.
        raise _SyntaxError()

    def _sep(self, value):
        frame = self.frames[-1] if self.frames else None
        if frame is not None and frame.kind == 'for' and \
                frame.phase == 'args':
            self.words = None
            frame.phase = 'do'
            return
        if frame is not None and frame.kind in ('function', 'for') and \
                frame.phase in ('name', 'in'):
            raise _SyntaxError()
        if frame is not None and frame.kind == 'function' and \
                frame.phase == 'brace' and value != '\n':
            raise _SyntaxError()
        self._finish()
        self.after = False
        self._commit()

    def _lbrace(self):
        frame = self.frames[-1] if self.frames else None
        if frame is not None and frame.kind == 'function' and \
                frame.phase == 'brace' and self.words is None:
            frame.phase = 'body'
            frame.active = False
            return
        if self.words is None or self.after:
            raise _SyntaxError()
        owner_words = self.words
        block = self._push('block', 'body')
        block.words = owner_words
        block.start = self.pos + 1
        self.words = None
        self.nwords = 0

    def _rbrace(self):
        frame = self.frames[-1] if self.frames else None
        if frame is None or frame.kind not in ('block', 'function') or \
                frame.phase != 'body':
            raise _SyntaxError()
        self._finish()
        if not frame.ncmds:
            # parser.y: a block holds at least one command.
            raise _SyntaxError()
        self.frames.pop()
        if frame.kind == 'function':
            self.after = True
            return
        self.words = frame.words
        self._finish(block=(frame.start, self.pos))
        self.after = True

    def eof(self):
        self._finish()
        if self.frames:
            LOG.debug('grub.cfg ends inside a block or an if')
            self.rollback()


class _Test(object):
    """grub's ``test``/``[`` (grub-core/commands/test.c)."""

    def __init__(self, interp, args):
        self.interp = interp
        self.args = args
        self.pos = 0

    def run(self):
        return self._parse(0)

    def _number(self, text):
        """grub_strtosl(text, 0, 0)."""
        negative = text[:1] == '-'
        num, _end, error = _strtoul(text[1:] if negative else text)
        if error == 'bad':
            return 0
        return -num if negative else num

    def _file(self, path, test):
        found = self.interp.find_file(path)
        if found is None:
            return False
        if test == '-d':
            return found.is_dir()
        if test == '-f':
            return not found.is_dir()
        if test == '-s':
            return not found.is_dir() and found.stat.st_size > 0
        return True

    def _parse(self, depth):
        self.interp.budget.depth(depth, 'grub test parentheses')
        args = self.args
        argc = len(args)
        state = {'and': True, 'or': False, 'invert': False}

        def update(value):
            value = bool(value)
            state['and'] = state['and'] and (not value if state['invert']
                                             else value)
            state['invert'] = False

        while self.pos < argc:
            self.interp.budget.tick()
            i = self.pos
            if i + 2 < argc:
                a, op, b = args[i], args[i + 1], args[i + 2]
                result = _binary(self, a, op, b)
                if result is not None:
                    update(result)
                    self.pos += 3
                    continue
            if i + 1 < argc:
                op, a = args[i], args[i + 1]
                if op in ('-d', '-e', '-f', '-s'):
                    update(self._file(a, op))
                    self.pos += 2
                    continue
                if op == '-n':
                    update(a != '')
                    self.pos += 2
                    continue
                if op == '-z':
                    update(a == '')
                    self.pos += 2
                    continue
            arg = args[i]
            self.pos += 1
            if arg == ')':
                return state['or'] or state['and']
            if arg == '(':
                update(self._parse(depth + 1))
            elif arg == '!':
                state['invert'] = not state['invert']
            elif arg == '-a':
                pass
            elif arg == '-o':
                state['or'] = state['or'] or state['and']
                state['and'] = True
            else:
                update(arg != '')
        return state['or'] or state['and']


def _binary(test, a, op, b):
    """A three-argument test of test.c, or None if ``op`` is none."""
    if op in ('=', '=='):
        return a == b
    if op == '!=':
        return a != b
    if op in ('<', '<=', '>', '>='):
        ka, kb = a.encode('utf-8', 'replace'), b.encode('utf-8', 'replace')
        return {'<': ka < kb, '<=': ka <= kb, '>': ka > kb,
                '>=': ka >= kb}[op]
    if op in ('-eq', '-ne', '-lt', '-le', '-gt', '-ge'):
        x, y = test._number(a), test._number(b)
        return {'-eq': x == y, '-ne': x != y, '-lt': x < y, '-le': x <= y,
                '-gt': x > y, '-ge': x >= y}[op]
    if op in ('-pgt', '-plt'):
        i = 0
        while i < len(a) and i < len(b) and a[i] == b[i]:
            i += 1
        i -= 1
        while i > 0 and '0' <= a[i] <= '9':
            i -= 1
        i += 1
        x = _strtoul(a[i:])[0]
        y = _strtoul(b[i:])[0]
        return x > y if op == '-pgt' else x < y
    if op[:3] in ('-nt', '-ot'):
        # File times are not compared; both files must exist for grub
        # to say anything else than "the existing one is newer".
        fa = test.interp.find_file(a) is not None
        fb = test.interp.find_file(b) is not None
        return (fa and not fb) if op[:3] == '-nt' else (fb and not fa)
    return None


def platform():
    """grub_platform as the machine's firmware makes it."""
    return 'efi' if os.path.isdir('/sys/firmware/efi') else 'pc'


def parse(rootfs, text, cfg_path, env=None, budget=None, grub_platform='pc'):
    """Run a grub.cfg's top level; returns the :class:`Interpreter`."""
    budget = budget or getattr(rootfs, 'budget', None)
    interp = Interpreter(rootfs, text, cfg_path, env or {},
                         budget_mod.ensure(budget), grub_platform)
    interp.run(interp.top)
    return interp


def candidate_paths(rootfs):
    """The standard grub.cfg paths, then those of the EFI vendors."""
    paths = list(GRUB_CFG_PATHS)
    for efi_dir in EFI_DIRS:
        for vendor in grubenv.vendors(rootfs, efi_dir):
            paths.append('%s/%s/grub.cfg' % (efi_dir, vendor))
    return paths


def find(rootfs, env, grub_platform=None):
    """The entry the image's grub.cfg boots by default, or None.

    None when there is no grub.cfg, or its menu is empty or made by
    ``blscfg`` (the BLS source reads those entries).

    :raises: KexecError (TooLarge, UnsafePath, TooComplex) when a grub.cfg
        cannot be read or run within the bounds.
    """
    grub_platform = grub_platform or platform()
    seen = set()
    for path in candidate_paths(rootfs):
        try:
            found = rootfs.find_file(path)
        except errors.NotFoundInImage:
            found = None
        if found is None or found.path in seen:
            continue
        seen.add(found.path)
        try:
            text = rootfs.read_text(found.path)
        except errors.NotFoundInImage:
            continue
        interp = parse(rootfs, text, path, env, rootfs_budget(rootfs),
                       grub_platform)
        if interp.blscfg:
            LOG.debug('%s builds its menu with blscfg: left to the BLS '
                      'source', path)
            return None
        result = interp.boot(interp.top)
        if result is not None:
            return result
        # e.g. Ubuntu's EFI grub.cfg that only loads the real one.
        LOG.debug('%s has no usable default entry', path)
    return None


def rootfs_budget(rootfs):
    return getattr(rootfs, 'budget', None)
