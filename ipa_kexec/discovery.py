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

"""Where the boot entry comes from, in order: explicit parameters, then
the boot loaders (systemd-boot, Boot Loader Specification entries as
grub's blscfg reads them, grub.cfg, extlinux.conf), then the
distribution's symlinks and the newest kernel in /boot.

A source that refuses the image (a file over its bound, a path leaving
the image, a configuration too deep) is skipped and the next one tried;
the discovery's shared budget running out ends the discovery.
"""

import logging

from ipa_kexec.bootloader import bls
from ipa_kexec.bootloader import entry as entry_mod
from ipa_kexec.bootloader import extlinux
from ipa_kexec.bootloader import files
from ipa_kexec.bootloader import grub
from ipa_kexec.bootloader import grubenv
from ipa_kexec.bootloader import sdboot
from ipa_kexec.bootloader import uki
from ipa_kexec import cmdline as cmdline_mod
from ipa_kexec import errors
from ironic_kexec import protocol

LOG = logging.getLogger(__name__)

SOURCES = (
    (protocol.SOURCE_SYSTEMD_BOOT, sdboot.find),
    (protocol.SOURCE_BLS, bls.find),
    (protocol.SOURCE_GRUB, grub.find),
    (protocol.SOURCE_EXTLINUX, extlinux.find),
    (protocol.SOURCE_UKI, uki.find),
    (protocol.SOURCE_SYMLINK, lambda rootfs, env: files.find_symlink(rootfs)),
    (protocol.SOURCE_NEWEST, lambda rootfs, env: files.find_newest(rootfs)),
)
# The sources that choose by the grubenv's saved_entry and next_entry:
# without a readable grubenv they cannot choose what grub would.
GRUBENV_SOURCES = (protocol.SOURCE_BLS, protocol.SOURCE_GRUB)
# A skipped source's message, as kept in the result.
MAX_SKIPPED_MESSAGE = 200


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


def _grubenv(rootfs):
    """The grubenv, or the refusal that leaves grub's choice unknown."""
    try:
        return grubenv.load(rootfs), None
    except errors.BudgetExhausted:
        raise
    except errors.KexecError as e:
        return None, e


def _from_sources(rootfs, skipped):
    env, env_error = _grubenv(rootfs)
    for name, finder in SOURCES:
        if env_error is not None and name in GRUBENV_SOURCES:
            # grub reads the grubenv this agent refused: its saved or
            # next entry could be any of them.
            skipped.append((name, env_error))
            continue
        try:
            entry = finder(rootfs, env)
        except errors.BudgetExhausted:
            raise
        except errors.KexecError as e:
            LOG.warning('Boot entry source %s refused the image (%s: %s), '
                        'trying the next one', name, e.reason,
                        e.reason_message)
            skipped.append((name, e))
            continue
        except errors.NotFoundInImage:
            entry = None
        if entry is not None:
            return entry
        LOG.debug('No boot entry from %s', name)
    if skipped:
        first = skipped[0][1]
        raise errors.KexecError(
            first.reason, 'no boot entry found; %s'
            % '; '.join('%s: %s' % (n, e.reason_message)
                        for n, e in skipped))
    raise errors.KexecError(protocol.REASON_NO_KERNEL,
                            'no kernel found in the image')


def _discover(rootfs, kernel, initrd, cmdline, extra_args, root_uuid,
              skipped):
    if kernel:
        entry = _explicit(rootfs, kernel, initrd)
    else:
        entry = _from_sources(rootfs, skipped)
    if cmdline:
        entry.cmdline = entry_mod.normalize_cmdline(cmdline)
    elif not entry.cmdline:
        entry.cmdline = cmdline_mod.build(rootfs, root_uuid)
        if entry.cmdline is None:
            raise errors.KexecError(
                protocol.REASON_NO_ROOT,
                'cannot name the root filesystem on the kernel command '
                'line: no root UUID and no / in the image fstab')
    entry.cmdline = entry_mod.check_cmdline(
        cmdline_mod.append_extra(entry.cmdline, extra_args))
    return entry


def discover(rootfs, kernel=None, initrd=None, cmdline=None,
             extra_args=None, root_uuid=None, root_device=None):
    """Choose the kernel, initrd and command line to kexec into.

    :param rootfs: the image, a :class:`ipa_kexec.rootfs.RootFS`; its
        budget bounds the whole discovery.
    :param root_uuid: UUID of the root filesystem, for a command line
        built from scratch.
    :returns: a :class:`ipa_kexec.bootloader.entry.BootEntry`; its
        ``skipped`` lists the sources that refused the image.
    :raises: KexecError with reason no_kernel, no_root, unsafe_path,
        too_large or too_complex.
    """
    skipped = []
    try:
        entry = _discover(rootfs, kernel, initrd, cmdline, extra_args,
                          root_uuid, skipped)
    except errors.KexecError:
        raise
    except errors.NotFoundInImage as e:
        raise errors.KexecError(protocol.REASON_NO_KERNEL,
                                '%s is not in the image' % e)
    except (RecursionError, MemoryError) as e:
        raise errors.KexecError(
            protocol.REASON_TOO_COMPLEX,
            'the boot configuration of the image is too complex: %s'
            % type(e).__name__)
    except Exception as e:
        # The parsers are meant to turn any input into an entry or a
        # reason; should one not, the node is still power cycled with a
        # reason, not left with a traceback.
        LOG.exception('Boot entry discovery failed on the image')
        raise errors.KexecError(
            protocol.REASON_AGENT_ERROR,
            'boot entry discovery failed: %s' % type(e).__name__)
    entry.root_device = root_device
    entry.skipped = [
        {protocol.FIELD_SOURCE: name, 'reason': e.reason,
         'message': e.reason_message[:MAX_SKIPPED_MESSAGE]}
        for name, e in skipped]
    LOG.info('kexec boot entry: %s (budget used: %s)', entry,
             rootfs.budget.summary())
    return entry
