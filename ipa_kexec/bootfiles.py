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

"""The files ``kexec --load`` reads for a boot entry.

kexec takes one kernel file and one initrd file. A boot entry with
several initrds (early microcode before the main initramfs) is loaded
as grub loads it: the files one after the other, each padded to four
bytes, which the kernel unpacks as concatenated cpio archives. A
Unified Kernel Image holds its kernel and initrd as PE sections, which
Debian 12's kexec-tools cannot take apart. Both are copied into a
private tmpfs bounded by the memory the agent can spare; a single
initrd and a plain kernel are read by kexec where they are.
"""

import contextlib
import os

from ipa_kexec.bootloader import uki
from ipa_kexec import budget as budget_mod
from ipa_kexec import download
from ipa_kexec import errors
from ironic_kexec import protocol

# grub aligns each initrd to 4 bytes (ALIGN_UP in loader/linux.c).
ALIGN = 4
CHUNK = 1024 * 1024


class _Copier(object):
    """Copies pieces of the image into one file, within a byte bound."""

    def __init__(self, path, limit):
        self.path = path
        self.limit = limit
        self.size = 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.out = os.fdopen(fd, 'wb')

    def write(self, data):
        self.size += len(data)
        if self.size > self.limit:
            raise errors.TooLarge(
                'the boot files are over their bound of %d bytes'
                % self.limit)
        self.out.write(data)

    def copy_file(self, rootfs, path):
        found, f = rootfs.open_file(path)
        with f:
            while True:
                data = f.read(CHUNK)
                if not data:
                    break
                self.write(data)

    def pad(self):
        if self.size % ALIGN:
            self.write(b'\0' * (ALIGN - self.size % ALIGN))

    def close(self):
        self.out.close()


def _size(rootfs, path):
    found = rootfs.find_file(path)
    if found is None:
        raise errors.KexecError(protocol.REASON_NO_KERNEL,
                                '%s is not in the image' % path)
    return found.stat.st_size


def _needs_copy(entry):
    return entry.uki is not None or len(entry.initrds) > 1


def _limit(entry, rootfs, mem_available):
    total = sum(_size(rootfs, p) for p in entry.initrds)
    if entry.uki is not None:
        total += _size(rootfs, entry.uki)
    # Room for the padding after each part.
    total += ALIGN * (len(entry.initrds) + 1)
    bound = budget_mod.MAX_PAYLOAD
    spare = download.memory_budget(mem_available)
    if spare is not None:
        bound = min(bound, spare)
    if total > bound:
        raise errors.TooLarge(
            'the boot files of %s take %d bytes, more than the %d bytes '
            'the agent can hold in memory' % (entry.kernel, total, bound))
    return total


@contextlib.contextmanager
def boot_files(rootfs, entry, mem_available=None):
    """Agent paths of the entry's kernel and initrd, valid in the context.

    :param rootfs: the mounted image.
    :param entry: a :class:`ipa_kexec.bootloader.entry.BootEntry`.
    :param mem_available: bytes of available memory, None if unknown.
    :yields: (kernel path, initrd path or None)
    :raises: KexecError (too_large, no_kernel, unsafe_path).
    """
    if not _needs_copy(entry):
        kernel = rootfs.resolve(entry.kernel).host_path
        initrd = (rootfs.resolve(entry.initrd).host_path
                  if entry.initrd else None)
        yield kernel, initrd
        return
    limit = _limit(entry, rootfs, mem_available)
    with download.memory_dir(limit + download.TMPFS_SLACK) as directory:
        kernel = rootfs.resolve(entry.kernel).host_path
        initrd = None
        if entry.uki is not None:
            kernel = os.path.join(directory, 'kernel')
            copier = _Copier(kernel, limit)
            try:
                uki.copy_section(rootfs, entry.uki, uki.LINUX, copier)
            finally:
                copier.close()
        parts = [(path, None) for path in entry.initrds]
        if entry.uki is not None and uki.has_section(rootfs, entry.uki,
                                                     uki.INITRD):
            parts.append((entry.uki, uki.INITRD))
        if parts:
            initrd = os.path.join(directory, 'initrd')
            copier = _Copier(initrd, limit)
            try:
                for path, section in parts:
                    if section is None:
                        copier.copy_file(rootfs, path)
                    else:
                        uki.copy_section(rootfs, path, section, copier)
                    copier.pad()
            finally:
                copier.close()
        yield kernel, initrd
