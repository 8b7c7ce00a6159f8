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

"""Can the agent kexec at all, and with which system call?

Reads the running kernel's state from procfs and sysfs under a
configurable root, so that tests lay out real files.
"""

import logging
import os
import shutil

from ipa_kexec import errors
from ipa_kexec import hardware_facts
from ironic_kexec import protocol

LOG = logging.getLogger(__name__)

KEXEC_LOADED = 'sys/kernel/kexec_loaded'
LOAD_DISABLED = 'proc/sys/kernel/kexec_load_disabled'
LOCKDOWN = 'sys/kernel/security/lockdown'
EFIVARS = 'sys/firmware/efi/efivars'
SECURE_BOOT_VAR = 'SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c'
MEMINFO = 'proc/meminfo'
_MAX_READ = 4096


class Preflight(object):
    """The running (agent) kernel's kexec capabilities.

    :param system_root: where /proc and /sys are, ``/`` in the agent.
    :param kexec_binary: the kexec-tools command.
    """

    def __init__(self, system_root='/', kexec_binary='kexec'):
        self.system_root = system_root
        self.kexec_binary = kexec_binary

    def _path(self, relative):
        return os.path.join(self.system_root, relative)

    def _read(self, relative, binary=False):
        try:
            with open(self._path(relative), 'rb') as f:
                data = f.read(_MAX_READ)
        except OSError:
            return None
        return data if binary else data.decode('ascii', 'replace').strip()

    def kexec_path(self):
        return shutil.which(self.kexec_binary)

    def kexec_loaded(self):
        """True if a kernel is loaded for ``kexec -e``; None if unknown."""
        value = self._read(KEXEC_LOADED)
        return None if value is None else value == '1'

    def mem_available(self):
        """The kernel's estimate of available memory in bytes, or None."""
        for line in (self._read(MEMINFO) or '').splitlines():
            fields = line.split()
            if (len(fields) == 3 and fields[0] == 'MemAvailable:'
                    and fields[1].isdigit() and fields[2] == 'kB'):
                return int(fields[1]) * 1024
        return None

    def lockdown(self):
        """The selected lockdown mode, or None when there is none."""
        value = self._read(LOCKDOWN)
        if not value:
            return None
        for word in value.split():
            if word.startswith('[') and word.endswith(']'):
                mode = word[1:-1]
                return None if mode == 'none' else mode
        return None

    def secure_boot(self):
        # efivars: 4 bytes of attributes, then the 1-byte value.
        data = self._read(os.path.join(EFIVARS, SECURE_BOOT_VAR),
                          binary=True)
        return bool(data and len(data) >= 5 and data[4] == 1)

    def needs_file_syscall(self):
        """Why only signed kernels can be loaded, or None."""
        mode = self.lockdown()
        if mode:
            return 'kernel lockdown (%s)' % mode
        if self.secure_boot():
            return 'UEFI Secure Boot'
        return None

    def read_facts(self):
        """The running hardware, as the deny rules see it."""
        return hardware_facts.Collector(self.system_root).collect()

    def check_deny(self, rules):
        """Raise a KexecError (reason ``denied``) if a deny rule matches.

        :param rules: well-formed deny rules, or None.
        """
        if not rules:
            # No sysfs walk for the common case of no rules.
            return
        facts = self.read_facts()
        LOG.info('Checking %d hardware deny rules against system vendor '
                 '%r, product %r, %s PCI devices', len(rules),
                 facts.system_vendor, facts.system_product,
                 'unknown' if facts.devices is None
                 else len(facts.devices))
        hardware_facts.check_deny(rules, facts)

    def check(self, file_syscall=protocol.FILE_SYSCALL_AUTO):
        """Raise a KexecError unless kexec can work; return the method.

        :returns: one of :data:`ironic_kexec.protocol.LOAD_METHODS`.
        """
        if self.kexec_path() is None:
            raise errors.KexecError(
                protocol.REASON_KEXEC_UNSUPPORTED,
                'the %s command is not in the agent ramdisk'
                % self.kexec_binary)
        if self.kexec_loaded() is None:
            raise errors.KexecError(
                protocol.REASON_KEXEC_UNSUPPORTED,
                'the agent kernel has no kexec support (no /%s)'
                % KEXEC_LOADED)
        if self._read(LOAD_DISABLED) == '1':
            raise errors.KexecError(
                protocol.REASON_KEXEC_DISABLED,
                'kernel.kexec_load_disabled is set on the agent')
        why = self.needs_file_syscall()
        if file_syscall == protocol.FILE_SYSCALL_ALWAYS:
            return protocol.METHOD_KEXEC_FILE_LOAD
        if file_syscall == protocol.FILE_SYSCALL_NEVER:
            if why:
                raise errors.KexecError(
                    protocol.REASON_LOCKDOWN,
                    '%s only allows kexec_file_load, and file_syscall '
                    'is "never"' % why)
            return protocol.METHOD_KEXEC_LOAD
        if why:
            LOG.info('Using kexec_file_load because of %s', why)
            return protocol.METHOD_KEXEC_FILE_LOAD
        return protocol.METHOD_KEXEC_LOAD
