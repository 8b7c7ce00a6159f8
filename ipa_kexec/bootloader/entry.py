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

from ironic_kexec import protocol

_CHUNK = re.compile(r'(\d+|[a-zA-Z]+)')
LOG = logging.getLogger(__name__)

_VAR = re.compile(r'\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))')
# Grub device prefixes such as ($root), (hd0,gpt2) or $root.
_DEVICE_PREFIX = re.compile(r'^(?:\([^)]*\)|\$\{?root\}?)(?=/|$)')


class BootEntry(object):
    """The kernel, initrd and command line chosen in an image.

    ``kernel`` and ``initrd`` are paths inside the image; ``cmdline`` is
    None when the source has none (the caller builds one).
    """

    def __init__(self, kernel, initrd, cmdline, source, root_device=None):
        self.kernel = kernel
        self.initrd = initrd
        self.cmdline = cmdline
        self.source = source
        self.root_device = root_device

    def to_result(self):
        return {protocol.FIELD_KERNEL: self.kernel,
                protocol.FIELD_INITRD: self.initrd,
                protocol.FIELD_CMDLINE: self.cmdline,
                protocol.FIELD_SOURCE: self.source,
                protocol.FIELD_ROOT_DEVICE: self.root_device}

    def __repr__(self):
        return 'BootEntry(%r)' % self.to_result()


def version_key(text):
    """A sort key that orders versions as rpm and grub's blscfg do.

    Numeric runs compare as numbers and rank above alphabetic runs, so
    ``6.10`` is newer than ``6.9`` and ``5.14.0-427`` newer than
    ``5.14.0-70``.
    """
    key = []
    for chunk in _CHUNK.findall(text):
        if chunk.isdigit():
            key.append((1, int(chunk), ''))
        else:
            key.append((0, 0, chunk))
    return key


def expand_vars(text, variables):
    """Expand ``$var`` and ``${var}`` as grub does (unset is empty)."""
    def _sub(match):
        name = match.group(1) or match.group(2)
        return variables.get(name, '')
    return _VAR.sub(_sub, text)


def normalize_cmdline(text):
    return ' '.join(text.split())


def strip_device(path):
    """Drop a grub device prefix: ``($root)/vmlinuz`` -> ``/vmlinuz``."""
    path = _DEVICE_PREFIX.sub('', path)
    if not path.startswith('/'):
        path = '/' + path
    return path


def locate(rootfs, path):
    """Find a file named by a boot loader config, as a path in the image.

    Boot loaders name files relative to the filesystem they read them
    from: with a separate ``/boot``, ``/vmlinuz-X`` in its config is
    ``/boot/vmlinuz-X`` in the image. Returns the resolved
    :class:`ipa_kexec.rootfs.Resolved` or None; raises UnsafePath.
    """
    path = strip_device(path)
    candidates = []
    if rootfs.is_mountpoint('/boot'):
        candidates.append('/boot' + path)
    candidates.append(path)
    for candidate in candidates:
        found = rootfs.find_file(candidate)
        if found is not None:
            return found
    return None


def from_loader(rootfs, label, kernel, initrds, options, variables, source):
    """A BootEntry from what a boot loader entry names, or None.

    :param label: the entry's name, for the log.
    :param kernel: the kernel path as the loader names it.
    :param initrds: the initrd words, before variable expansion.
    :param options: the command line words, before variable expansion.
    :param variables: the loader's variables (grubenv, grub.cfg ``set``).
    :param source: one of protocol.SOURCES.
    :returns: None when a named file is not in the image.
    """
    found_kernel = locate(rootfs, kernel)
    if found_kernel is None:
        LOG.warning('%s entry %r names kernel %s, not in the image',
                    source, label, kernel)
        return None
    initrd = None
    names = expand_vars(' '.join(initrds), variables).split()
    if names:
        # kexec takes one initrd; the last is the main one (earlier ones
        # are early CPU microcode).
        initrd = locate(rootfs, names[-1])
        if initrd is None:
            LOG.warning('%s entry %r names initrd %s, not in the image',
                        source, label, names[-1])
            return None
    cmdline = normalize_cmdline(expand_vars(' '.join(options), variables))
    return BootEntry(found_kernel.path, initrd.path if initrd else None,
                     cmdline, source)
