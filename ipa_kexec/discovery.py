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

"""Where the boot entry comes from, in order: explicit parameters, Boot
Loader Specification entries, grub.cfg, the distribution's symlinks, the
newest kernel in /boot."""

import logging

from ipa_kexec.bootloader import bls
from ipa_kexec.bootloader import entry as entry_mod
from ipa_kexec.bootloader import files
from ipa_kexec.bootloader import grub
from ipa_kexec.bootloader import grubenv
from ipa_kexec import cmdline as cmdline_mod
from ipa_kexec import errors
from ironic_kexec import protocol

LOG = logging.getLogger(__name__)

FINDERS = (
    ('bls', lambda rootfs, env: bls.find(rootfs, env)),
    ('grub', lambda rootfs, env: grub.find(rootfs, env)),
    ('symlink', lambda rootfs, env: files.find_symlink(rootfs)),
    ('newest', lambda rootfs, env: files.find_newest(rootfs)),
)


def _explicit(rootfs, kernel, initrd):
    found = rootfs.find_file(kernel)
    if found is None:
        raise errors.KexecError(protocol.REASON_NO_KERNEL,
                                'kernel %s is not in the image' % kernel)
    initrd_found = None
    if initrd:
        initrd_found = rootfs.find_file(initrd)
        if initrd_found is None:
            raise errors.KexecError(protocol.REASON_NO_KERNEL,
                                    'initrd %s is not in the image' % initrd)
    return entry_mod.BootEntry(
        found.path, initrd_found.path if initrd_found else None, None,
        protocol.SOURCE_EXPLICIT)


def discover(rootfs, kernel=None, initrd=None, cmdline=None,
             extra_args=None, root_uuid=None, root_device=None):
    """Choose the kernel, initrd and command line to kexec into.

    :param rootfs: the image, a :class:`ipa_kexec.rootfs.RootFS`.
    :param root_uuid: UUID of the root filesystem, for a command line
        built from scratch.
    :returns: a :class:`ipa_kexec.bootloader.entry.BootEntry`.
    :raises: KexecError with reason no_kernel, no_root, unsafe_path or
        too_large.
    """
    if kernel:
        entry = _explicit(rootfs, kernel, initrd)
    else:
        env = grubenv.load(rootfs)
        entry = None
        for name, finder in FINDERS:
            entry = finder(rootfs, env)
            if entry is not None:
                break
            LOG.debug('No boot entry from %s', name)
        if entry is None:
            raise errors.KexecError(protocol.REASON_NO_KERNEL,
                                    'no kernel found in the image')
    if cmdline:
        entry.cmdline = entry_mod.normalize_cmdline(cmdline)
    elif not entry.cmdline:
        entry.cmdline = cmdline_mod.build(rootfs, root_uuid)
        if entry.cmdline is None:
            raise errors.KexecError(
                protocol.REASON_NO_ROOT,
                'cannot name the root filesystem on the kernel command '
                'line: no root UUID and no / in the image fstab')
    entry.cmdline = cmdline_mod.append_extra(entry.cmdline, extra_args)
    entry.root_device = root_device
    LOG.info('kexec boot entry: %s', entry)
    return entry
