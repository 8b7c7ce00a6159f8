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

"""Kernels found without a boot loader entry: the ``/vmlinuz`` symlinks
Debian and Ubuntu maintain, else the newest ``/boot/vmlinuz-*``."""

import logging

from ipa_kexec.bootloader import entry as entry_mod
from ironic_kexec import protocol

LOG = logging.getLogger(__name__)

SYMLINK_PAIRS = (('/boot/vmlinuz', '/boot/initrd.img'),
                 ('/vmlinuz', '/initrd.img'))
KERNEL_PREFIXES = ('vmlinuz-', 'vmlinux-', 'bzImage-')
INITRD_PATTERNS = ('initrd.img-%s', 'initramfs-%s.img', 'initrd-%s',
                   'initrd-%s.img')


def find_symlink(rootfs):
    """The kernel the distribution's symlinks name, or None."""
    for kernel_link, initrd_link in SYMLINK_PAIRS:
        kernel = rootfs.find_file(kernel_link)
        if kernel is None:
            continue
        initrd = rootfs.find_file(initrd_link)
        return entry_mod.BootEntry(kernel.path,
                                   initrd.path if initrd else None,
                                   None, protocol.SOURCE_SYMLINK)
    return None


def _is_rescue(version):
    # Fedora's rescue kernel boots a generic initramfs, never choose it
    # when a real one exists.
    return '-rescue-' in version or version.startswith('0-rescue')


def find_newest(rootfs):
    """The newest ``/boot/vmlinuz-<version>`` and its initrd, or None."""
    kernels = []
    for name in rootfs.listdir('/boot'):
        for prefix in KERNEL_PREFIXES:
            if name.startswith(prefix) and len(name) > len(prefix):
                version = name[len(prefix):]
                if rootfs.find_file('/boot/' + name) is not None:
                    kernels.append((not _is_rescue(version),
                                    entry_mod.version_key(version),
                                    name, version))
                break
    if not kernels:
        return None
    _real, _key, name, version = max(kernels)
    kernel = rootfs.resolve('/boot/' + name)
    initrd = None
    for pattern in INITRD_PATTERNS:
        initrd = rootfs.find_file('/boot/' + pattern % version)
        if initrd is not None:
            break
    return entry_mod.BootEntry(kernel.path,
                               initrd.path if initrd else None,
                               None, protocol.SOURCE_NEWEST)
