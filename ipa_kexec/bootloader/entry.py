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

"""A boot entry and helpers shared by the boot loader parsers."""

import logging
import re

from ipa_kexec import budget as budget_mod
from ipa_kexec import errors
from ironic_kexec import protocol

# Bounded runs, so that a 1 MiB version string is no quadratic work.
_CHUNK = re.compile(r'(\d{1,64}|[a-zA-Z]{1,64})')
LOG = logging.getLogger(__name__)

_VAR = re.compile(r'\$(?:\{([A-Za-z0-9_]{1,128})\}|([A-Za-z0-9_]{1,128}))')
# Grub device prefixes such as ($root), (hd0,gpt2) or $root.
_DEVICE_PREFIX = re.compile(r'^(?:\([^)]{0,256}\)|\$\{?root\}?)(?=/|$)')
# A loader's index: plain ASCII digits, few enough to be an index. grub's
# own grub_strtoul stops at the first non-digit and ignores a number that
# does not fit; a longer run matches no entry either way.
_INDEX = re.compile(r'[0-9]{1,9}')
# Version strings (and entry ids compared as versions) longer than this
# sort by their first characters only: real ones are a few dozen, and a
# sort of many entries must not cost their full length at each compare.
MAX_VERSION = 256


class BootEntry(object):
    """The kernel, initrds and command line chosen in an image.

    ``kernel`` and every initrd are paths inside the image; ``initrd`` is
    None, one path or a list of paths, concatenated in order at load
    time (early microcode first). ``uki`` is a Unified Kernel Image the
    kernel and initrd are taken from. ``cmdline`` is None when the source
    has none (the caller builds one).
    """

    def __init__(self, kernel, initrd, cmdline, source, root_device=None,
                 uki=None):
        self.kernel = kernel
        if initrd is None:
            self.initrds = []
        elif isinstance(initrd, str):
            self.initrds = [initrd]
        else:
            self.initrds = list(initrd)
        self.cmdline = cmdline
        self.source = source
        self.root_device = root_device
        self.uki = uki
        # The sources that refused the image before this one.
        self.skipped = []

    @property
    def initrd(self):
        """The main initrd (the last one), or None."""
        return self.initrds[-1] if self.initrds else None

    def to_result(self):
        return {protocol.FIELD_KERNEL: self.kernel,
                protocol.FIELD_INITRD: self.initrd,
                protocol.FIELD_INITRDS: list(self.initrds),
                protocol.FIELD_UKI: self.uki,
                protocol.FIELD_CMDLINE: self.cmdline,
                protocol.FIELD_SOURCE: self.source,
                protocol.FIELD_ROOT_DEVICE: self.root_device,
                protocol.FIELD_SKIPPED: list(self.skipped)}

    def __repr__(self):
        return 'BootEntry(%r)' % self.to_result()


def parse_index(text):
    """The index a loader reads from ``text``, or None if it is none."""
    if isinstance(text, str) and _INDEX.fullmatch(text.strip()):
        return int(text.strip())
    return None


def version_key(text):
    """A sort key that orders versions as rpm and grub's blscfg do.

    Numeric runs compare as numbers and rank above alphabetic runs, so
    ``6.10`` is newer than ``6.9`` and ``5.14.0-427`` newer than
    ``5.14.0-70``.
    """
    key = []
    for chunk in _CHUNK.findall(text[:MAX_VERSION]):
        if chunk.isdigit():
            key.append((1, int(chunk), ''))
        else:
            key.append((0, 0, chunk))
    return key


def expand_vars(text, variables, budget=None, what='a variable'):
    """Expand ``$var`` and ``${var}`` as grub does (unset is empty).

    One level, as the loaders do: a value is not expanded again. What the
    expansion produces is charged to the discovery's budget.
    """
    budget = budget_mod.ensure(budget)
    out = []
    size = 0
    pos = 0
    for match in _VAR.finditer(text):
        value = variables.get(match.group(1) or match.group(2), '')
        if not isinstance(value, str):
            value = ''
        out.append(text[pos:match.start()])
        out.append(value)
        size += match.start() - pos + len(value)
        pos = match.end()
        budget.expanded(size, what)
        budget.tick()
    out.append(text[pos:])
    return ''.join(out)


def normalize_cmdline(text):
    return ' '.join(text.split())


def check_cmdline(cmdline):
    """Refuse a command line no kernel takes (too long, NUL bytes)."""
    if cmdline is None:
        return None
    if '\0' in cmdline:
        raise errors.UnsafePath('the kernel command line has a NUL byte')
    if len(cmdline.encode('utf-8', 'replace')) > budget_mod.MAX_CMDLINE:
        raise errors.TooLarge('the kernel command line is longer than %d '
                              'bytes' % budget_mod.MAX_CMDLINE)
    return cmdline


def loader_cmdline(args):
    """The command line grub passes for ``args``.

    As grub's ``grub_create_loader_cmdline`` (grub-core/lib/cmdline.c)
    builds it: backslashes and both quotes are escaped with a backslash,
    and an argument that contains a space is put in double quotes, so
    that the kernel reads ``"acpi_osi=Windows 2015"`` back as one
    parameter.
    """
    parts = []
    for arg in args:
        if not arg:
            continue
        escaped = (arg.replace('\\', '\\\\').replace("'", "\\'")
                   .replace('"', '\\"'))
        parts.append('"%s"' % escaped if ' ' in arg else escaped)
    return ' '.join(parts)


def strip_device(path):
    """Drop a grub device prefix: ``($root)/vmlinuz`` -> ``/vmlinuz``."""
    path = _DEVICE_PREFIX.sub('', path)
    if not path.startswith('/'):
        path = '/' + path
    return path


def locate(rootfs, path, boot_dir=None):
    """Find a file named by a boot loader config, as a path in the image.

    Boot loaders name files relative to the filesystem they read them
    from: with a separate ``/boot``, ``/vmlinuz-X`` in its config is
    ``/boot/vmlinuz-X`` in the image. ``boot_dir`` is the directory the
    loader's paths are relative to, when the loader says so (BLS: the
    directory that holds ``loader/``, even when it is no separate
    filesystem, as grub's blscfg reads it). Returns the resolved
    :class:`ipa_kexec.rootfs.Resolved` or None; raises UnsafePath.
    """
    path = strip_device(path)
    subvol = '/%s/' % rootfs.subvol.strip('/') if rootfs.subvol else None
    if subvol and path.startswith(subvol):
        # On btrfs grub names files from the top level, the subvolume
        # holding the root included (/@rootfs/boot/vmlinuz-X).
        path = path[len(subvol) - 1:]
    candidates = []
    if boot_dir and boot_dir != '/':
        candidates.append(boot_dir.rstrip('/') + path)
    elif rootfs.is_mountpoint('/boot'):
        candidates.append('/boot' + path)
    candidates.append(path)
    for candidate in candidates:
        found = rootfs.find_file(candidate)
        if found is not None:
            return found
    return None


def from_loader(rootfs, label, kernel, initrds, options, variables, source,
                boot_dir=None, boot_image=False):
    """A BootEntry from what a boot loader entry names, or None.

    :param label: the entry's name, for the log.
    :param kernel: the kernel path as the loader names it.
    :param initrds: the initrd paths, in order, as the loader names them
        (variables already expanded by the loader's parser).
    :param options: the command line: a list of arguments as the loader's
        own tokenizer produced them (quotes removed), or a string already
        in command line form.
    :param variables: unused, kept for parsers that expanded nothing.
    :param source: one of protocol.SOURCES.
    :param boot_dir: see :func:`locate`.
    :param boot_image: start the command line with ``BOOT_IMAGE=`` and
        the kernel as the loader names it, as grub's ``linux`` command
        does (grub-core/loader/i386/linux.c, LINUX_IMAGE).
    :returns: None when a named file is not in the image.
    """
    found_kernel = locate(rootfs, kernel, boot_dir)
    if found_kernel is None:
        LOG.warning('%s entry %r names kernel %s, not in the image',
                    source, label, kernel)
        return None
    found_initrds = []
    for name in initrds:
        found = locate(rootfs, name, boot_dir)
        if found is None:
            LOG.warning('%s entry %r names initrd %s, not in the image',
                        source, label, name)
            return None
        found_initrds.append(found.path)
    if isinstance(options, str):
        cmdline = normalize_cmdline(options)
    else:
        cmdline = loader_cmdline(options)
    if boot_image:
        cmdline = ' '.join(
            part for part in ('BOOT_IMAGE=' + loader_cmdline([kernel]),
                              cmdline) if part)
    return BootEntry(found_kernel.path, found_initrds,
                     check_cmdline(cmdline), source)
