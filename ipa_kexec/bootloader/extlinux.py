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

"""extlinux.conf and syslinux.cfg, as u-boot reads them.

u-boot-menu's ``u-boot-update`` writes ``/boot/extlinux/extlinux.conf``
(ARM boards, embedded); u-boot's distro boot reads it with
boot/pxe_utils.c, which this module follows:

- keywords are case-insensitive; a value runs to the end of its line;
  ``#`` starts a comment where a keyword is expected;
- ``label NAME`` opens a label; ``kernel``/``linux``, ``initrd`` (the
  first one counts; syslinux allows a comma separated list), ``append``
  (an ``initrd=`` in it counts when no ``initrd`` line did), ``fdt``,
  ``fdtdir``, ``menu label``, ``menu default``; any other keyword ends
  the label;
- ``default NAME`` (the last one) names the default label; else the
  first ``menu default``; a default naming no label, or a label whose
  kernel cannot be read, makes u-boot try the labels in order;
- ``include FILE`` and ``menu include FILE`` read another file, at most
  16 levels deep (MAX_NEST_LEVEL);
- a path starting with ``/`` is relative to the filesystem holding the
  file (u-boot reads partitions, not the image), any other path to the
  file's directory.
"""

import logging

from ipa_kexec.bootloader import entry as entry_mod
from ipa_kexec import budget as budget_mod
from ipa_kexec import errors
from ironic_kexec import protocol

LOG = logging.getLogger(__name__)

CONFIG_PATHS = ('/boot/extlinux/extlinux.conf', '/extlinux/extlinux.conf',
                '/boot/syslinux/syslinux.cfg', '/syslinux/syslinux.cfg')
MAX_CONFIG_SIZE = 1024 * 1024
# pxe_utils.c's MAX_NEST_LEVEL (pxelinux's own limit).
MAX_NEST_LEVEL = 16
LABEL_KEYWORDS = frozenset(('menu', 'kernel', 'linux', 'append', 'initrd',
                            'fdt', 'devicetree', 'fdtdir', 'devicetreedir',
                            'fdtoverlays', 'devicetree-overlay',
                            'localboot', 'ipappend', 'kaslrseed'))
# syslinux modules run by "kernel"; no Linux kernel.
COMBOOT_SUFFIXES = ('.c32', '.com', '.cbt', '.bin', '.0')


class Label(object):
    def __init__(self, name):
        self.name = name
        self.menu_label = None
        self.kernel = None
        self.initrd = None
        self.append = None
        self.fdt = None
        self.fdtdir = None
        self.localboot = False

    def __repr__(self):
        return 'Label(%r)' % self.name


class Menu(object):
    def __init__(self):
        self.labels = []
        self.default = None


def _keyword(line):
    """(keyword lower-cased, rest of the line without leading blanks)."""
    line = line.lstrip(' \t')
    end = 0
    # get_string(..., ' ', 1): a keyword ends at any isspace().
    while end < len(line) and line[end] not in ' \t\v\f\r':
        end += 1
    return line[:end].lower(), line[end:].lstrip(' \t\v\f\r')


def _literal(rest):
    # A string literal runs to the end of the line.
    return rest.rstrip(' \t\r')


class _Parser(object):
    def __init__(self, rootfs, base, config_dir, budget):
        self.rootfs = rootfs
        self.base = base
        self.config_dir = config_dir
        self.budget = budget
        self.menu = Menu()

    def parse_file(self, path, level):
        if level > MAX_NEST_LEVEL:
            raise errors.TooComplex('%s: includes nest deeper than %d'
                                    % (path, MAX_NEST_LEVEL))
        self.budget.depth(level, path)
        text = self.rootfs.read_text(path, MAX_CONFIG_SIZE)
        self.parse_text(text, level)

    def parse_text(self, text, level):
        label = None
        # u-boot parses the file as one C string: it ends at a NUL.
        for line in text.split('\0', 1)[0].split('\n'):
            self.budget.tick()
            if line.lstrip(' \t').startswith('#'):
                continue
            key, rest = _keyword(line)
            if not key:
                continue
            if label is not None and key in LABEL_KEYWORDS:
                self._label_line(label, key, rest, level)
                continue
            label = None
            if key == 'label':
                self.budget.entries(1, 'extlinux label')
                label = Label(_literal(rest))
                self.menu.labels.append(label)
            elif key in ('default', 'ontimeout'):
                self.menu.default = _literal(rest)
            elif key == 'include':
                self._include(_literal(rest), level)
            elif key == 'menu':
                sub, value = _keyword(rest)
                if sub == 'include':
                    self._include(_literal(value), level)

    def _label_line(self, label, key, rest, level):
        value = _literal(rest)
        if key in ('kernel', 'linux'):
            # "file#config" names a FIT configuration: the file is before.
            label.kernel = value.split('#', 1)[0]
        elif key == 'append':
            label.append = value
            if label.initrd is None:
                for word in value.split():
                    if word.startswith('initrd='):
                        label.initrd = word[len('initrd='):]
                        break
        elif key == 'initrd':
            if label.initrd is None:
                label.initrd = value
        elif key in ('fdt', 'devicetree'):
            label.fdt = label.fdt or value
        elif key in ('fdtdir', 'devicetreedir'):
            label.fdtdir = label.fdtdir or value
        elif key == 'localboot':
            label.localboot = True
        elif key == 'menu':
            sub, value = _keyword(rest)
            if sub == 'default':
                if self.menu.default is None:
                    self.menu.default = label.name
            elif sub == 'label':
                label.menu_label = _literal(value)

    def _include(self, name, level):
        if not name:
            return
        path = self.path_of(name)
        try:
            self.parse_file(path, level + 1)
        except errors.NotFoundInImage:
            # u-boot's parse_pxefile_top gives up on the whole file when
            # an include cannot be read.
            raise errors.KexecError(
                protocol.REASON_NO_KERNEL,
                'extlinux include %s is not in the image' % path[:256])

    def path_of(self, name):
        """The image path of a file the configuration names."""
        if name.startswith('/'):
            return self.base.rstrip('/') + name
        return self.config_dir.rstrip('/') + '/' + name


def config_file(rootfs):
    """(path, base) of the first configuration file, or (None, None).

    ``base`` is the filesystem root its absolute paths are relative to:
    ``/boot`` for a file on a separate /boot, else ``/``.
    """
    for path in CONFIG_PATHS:
        if rootfs.find_file(path) is not None:
            base = '/'
            if path.startswith('/boot/') and rootfs.is_mountpoint('/boot'):
                base = '/boot'
            return path, base
    return None, None


def parse(rootfs, path, base, budget=None):
    """The menu of a configuration file and the files it includes."""
    budget = budget if budget is not None else rootfs.budget
    parser = _Parser(rootfs, base, path.rsplit('/', 1)[0] or '/', budget)
    parser.parse_file(path, 1)
    return parser


def _candidates(menu):
    """Labels in the order u-boot tries them: the default, then all."""
    order = []
    if menu.default is not None:
        for label in menu.labels:
            if label.name == menu.default:
                order.append(label)
                break
        else:
            LOG.info('extlinux default %r names no label; u-boot tries '
                     'the labels in order', menu.default[:256])
    first = order[0] if order else None
    order.extend(label for label in menu.labels if label is not first)
    return order


def _initrd_paths(value):
    # syslinux takes "initrd a,b"; u-boot a single file.
    return [name for name in value.split(',') if name] if value else []


def _build(rootfs, parser, label):
    if label.localboot or not label.kernel:
        return None
    if label.kernel.lower().endswith(COMBOOT_SUFFIXES):
        LOG.debug('extlinux label %r runs %s, no kernel', label.name,
                  label.kernel)
        return None
    if label.fdt or label.fdtdir:
        LOG.info('extlinux label %r names a device tree (%s); kexec keeps '
                 'the running one', label.name, label.fdt or label.fdtdir)
    kernel = rootfs.find_file(parser.path_of(label.kernel))
    if kernel is None:
        LOG.warning('extlinux label %r names kernel %s, not in the image',
                    label.name, label.kernel)
        return None
    initrds = []
    for name in _initrd_paths(label.initrd):
        found = rootfs.find_file(parser.path_of(name))
        if found is None:
            LOG.warning('extlinux label %r names initrd %s, not in the '
                        'image', label.name, name)
            return None
        initrds.append(found.path)
    cmdline = None
    if label.append is not None and label.append != '-':
        # The kernel gets "append" as written (initrd= included, which
        # the kernel ignores).
        cmdline = entry_mod.normalize_cmdline(label.append)
    return entry_mod.BootEntry(kernel.path, initrds,
                               entry_mod.check_cmdline(cmdline),
                               protocol.SOURCE_EXTLINUX)


def find(rootfs, env=None):
    """The label u-boot boots from extlinux.conf, or None."""
    budget = budget_mod.ensure(getattr(rootfs, 'budget', None))
    path, base = config_file(rootfs)
    if path is None:
        return None
    parser = parse(rootfs, path, base, budget)
    for label in _candidates(parser.menu):
        budget.tick()
        entry = _build(rootfs, parser, label)
        if entry is not None:
            return entry
    return None
