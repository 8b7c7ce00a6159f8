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

"""grub.cfg: the default menu entry, as grub would choose it.

Only what grub-mkconfig generates is understood: ``menuentry`` and
``submenu`` blocks, top-level ``set`` assignments and the ``set default``
of ``00_header`` (an index, an id, a title, a ``>``-separated path into
submenus, or ``${saved_entry}``/``${next_entry}`` from the grubenv).
Nothing in the file is executed.
"""

import logging
import shlex

from ipa_kexec.bootloader import entry as entry_mod
from ipa_kexec import errors
from ironic_kexec import protocol

LOG = logging.getLogger(__name__)

GRUB_CFG_PATHS = ('/boot/grub/grub.cfg', '/boot/grub2/grub.cfg')
EFI_DIR = '/boot/efi/EFI'

_LINUX = ('linux', 'linuxefi', 'linux16')
_INITRD = ('initrd', 'initrdefi', 'initrd16')
# menuentry options that take an argument.
_OPTS_WITH_ARG = ('--class', '--users', '--hotkey', '--id')
_ID_OPTION = ('$menuentry_id_option', '${menuentry_id_option}')


class MenuEntry(object):
    def __init__(self, title, ident):
        self.title = title
        self.id = ident
        self.linux = None
        self.initrd = None


class Submenu(object):
    def __init__(self, title, ident):
        self.title = title
        self.id = ident
        self.items = []


class GrubConfig(object):
    def __init__(self):
        self.menu = Submenu(None, None)
        # Top-level (name, unexpanded value) assignments, in order.
        self.assignments = []


def _menu_args(tokens):
    title = ident = None
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == '{':
            break
        if tok in _ID_OPTION or tok == '--id':
            if i + 1 < len(tokens):
                ident = tokens[i + 1]
            i += 2
            continue
        if tok.startswith('--id='):
            ident = tok[len('--id='):]
        elif tok in _OPTS_WITH_ARG:
            i += 1
        elif tok.startswith('--'):
            pass
        elif title is None:
            title = tok
        i += 1
    return title, ident


def parse(text):
    """Parse grub.cfg text into a :class:`GrubConfig`."""
    config = GrubConfig()
    # Each open brace: a Submenu, a MenuEntry or None (a function).
    stack = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith('#'):
            continue
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            LOG.debug('Ignoring unparseable grub.cfg line %r', line)
            continue
        if not tokens:
            continue
        word = tokens[0]
        menus = [b for b in stack if isinstance(b, Submenu)]
        current_menu = menus[-1] if menus else config.menu
        if word in ('menuentry', 'submenu'):
            title, ident = _menu_args(tokens[1:])
            if word == 'menuentry':
                node = MenuEntry(title, ident)
            else:
                node = Submenu(title, ident)
            current_menu.items.append(node)
            if line.endswith('{'):
                stack.append(node)
            continue
        if word == '}':
            if stack:
                stack.pop()
            continue
        if line.endswith('{'):
            stack.append(None)
            continue
        in_entry = [b for b in stack if isinstance(b, MenuEntry)]
        if in_entry:
            if word in _LINUX and len(tokens) > 1:
                in_entry[-1].linux = tokens[1:]
            elif word in _INITRD and len(tokens) > 1:
                in_entry[-1].initrd = tokens[1:]
        elif not stack and word == 'set' and len(tokens) > 1:
            name, sep, value = tokens[1].partition('=')
            if sep:
                config.assignments.append((name, value))
    return config


def variables(config, env):
    """grub's variables after the top-level assignments."""
    result = dict(env)
    for name, value in config.assignments:
        if name not in ('default', 'next_entry', 'saved_entry'):
            result[name] = entry_mod.expand_vars(value, result)
    return result


def default_value(config, env):
    """The value ``default`` ends up with, as 00_header's script runs."""
    values = [v for n, v in config.assignments if n == 'default']
    if env.get('next_entry') and any('next_entry' in v for v in values):
        return env['next_entry']
    values = [v for v in values if 'next_entry' not in v]
    if not values:
        return '0'
    return entry_mod.expand_vars(values[-1], env).strip() or '0'


def _find_item(items, wanted):
    if wanted.isdigit():
        index = int(wanted)
        return items[index] if index < len(items) else None
    for item in items:
        if wanted in (item.id, item.title):
            return item
    return None


def _first_entry(item):
    while isinstance(item, Submenu):
        if not item.items:
            return None
        item = item.items[0]
    return item


def choose(config, env):
    """The default MenuEntry, or None if the menu has no entry."""
    value = default_value(config, env)
    items = config.menu.items
    item = None
    for part in value.split('>'):
        item = _find_item(items, part.strip())
        if item is None:
            break
        if isinstance(item, Submenu):
            items = item.items
    if item is None:
        # grub boots the first entry when the default is invalid.
        LOG.debug('grub default %r matches no entry, using the first',
                  value)
        item = config.menu.items[0] if config.menu.items else None
    return _first_entry(item) if item is not None else None


def candidate_paths(rootfs):
    paths = list(GRUB_CFG_PATHS)
    for vendor in rootfs.listdir(EFI_DIR):
        paths.append('%s/%s/grub.cfg' % (EFI_DIR, vendor))
    return paths


def find(rootfs, env):
    """The default entry of the image's grub.cfg as a BootEntry, or None.

    :raises: TooLarge for a grub.cfg over the bound, UnsafePath.
    """
    for path in candidate_paths(rootfs):
        try:
            text = rootfs.read_text(path)
        except errors.NotFoundInImage:
            continue
        config = parse(text)
        chosen = choose(config, env)
        if chosen is None or not chosen.linux:
            # e.g. Ubuntu's EFI stub that only loads the real grub.cfg.
            LOG.debug('%s has no usable default entry', path)
            continue
        result = _to_boot_entry(rootfs, chosen, variables(config, env))
        if result is not None:
            return result
    return None


def _to_boot_entry(rootfs, chosen, grub_vars):
    return entry_mod.from_loader(rootfs, chosen.title, chosen.linux[0],
                                 chosen.initrd or [], chosen.linux[1:],
                                 grub_vars, protocol.SOURCE_GRUB)
