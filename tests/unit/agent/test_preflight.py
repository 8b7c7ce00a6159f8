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

"""Preflight reasons, from procfs/sysfs files laid out by the test."""

import os
import shutil
import stat
import tempfile

import fixtures
from ironic_python_agent.tests.unit import base

from ipa_kexec import errors
from ipa_kexec import preflight
from ironic_kexec import protocol
from tests.unit.agent import trees


class TestPreflight(base.IronicAgentTest):

    def setUp(self):
        super(TestPreflight, self).setUp()
        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root, True)
        # A kexec command the preflight finds on PATH.
        bindir = os.path.join(self.root, 'bin')
        os.makedirs(bindir)
        kexec = os.path.join(bindir, 'kexec')
        with open(kexec, 'w') as f:
            f.write('#!/bin/sh\nexit 0\n')
        os.chmod(kexec, stat.S_IRWXU)
        self.kexec = kexec
        self.useFixture(fixtures.EnvironmentVariable(
            'PATH', bindir))
        self.files = {'/sys/kernel/kexec_loaded': '0\n',
                      '/proc/sys/kernel/kexec_load_disabled': '0\n'}

    def check(self, mode=protocol.FILE_SYSCALL_AUTO):
        trees.build(self.root, self.files)
        return preflight.Preflight(self.root).check(mode)

    def assertReason(self, reason, mode=protocol.FILE_SYSCALL_AUTO):
        exc = self.assertRaises(errors.KexecError, self.check, mode)
        self.assertEqual(reason, exc.reason)
        self.assertEqual(reason, exc.details['reason'])

    def test_plain(self):
        self.assertEqual(protocol.METHOD_KEXEC_LOAD, self.check())
        self.assertEqual(self.kexec, preflight.Preflight(
            self.root).kexec_path())

    def test_no_kexec_binary(self):
        os.unlink(self.kexec)
        self.assertReason(protocol.REASON_KEXEC_UNSUPPORTED)

    def test_kernel_without_kexec(self):
        del self.files['/sys/kernel/kexec_loaded']
        self.assertReason(protocol.REASON_KEXEC_UNSUPPORTED)

    def test_load_disabled(self):
        self.files['/proc/sys/kernel/kexec_load_disabled'] = '1\n'
        self.assertReason(protocol.REASON_KEXEC_DISABLED)

    def test_lockdown_integrity_needs_file_syscall(self):
        self.files['/sys/kernel/security/lockdown'] = (
            'none [integrity] confidentiality\n')
        self.assertEqual(protocol.METHOD_KEXEC_FILE_LOAD, self.check())

    def test_lockdown_none(self):
        self.files['/sys/kernel/security/lockdown'] = (
            '[none] integrity confidentiality\n')
        self.assertEqual(protocol.METHOD_KEXEC_LOAD, self.check())

    def test_lockdown_with_never(self):
        self.files['/sys/kernel/security/lockdown'] = (
            'none integrity [confidentiality]\n')
        self.assertReason(protocol.REASON_LOCKDOWN,
                          protocol.FILE_SYSCALL_NEVER)

    def test_secure_boot(self):
        self.files['/sys/firmware/efi/efivars/' +
                   preflight.SECURE_BOOT_VAR] = b'\x06\x00\x00\x00\x01'
        self.assertEqual(protocol.METHOD_KEXEC_FILE_LOAD, self.check())

    def test_secure_boot_off(self):
        self.files['/sys/firmware/efi/efivars/' +
                   preflight.SECURE_BOOT_VAR] = b'\x06\x00\x00\x00\x00'
        self.assertEqual(protocol.METHOD_KEXEC_LOAD, self.check())

    def test_always(self):
        self.assertEqual(protocol.METHOD_KEXEC_FILE_LOAD,
                         self.check(protocol.FILE_SYSCALL_ALWAYS))

    def test_kexec_loaded(self):
        self.files['/sys/kernel/kexec_loaded'] = '1\n'
        trees.build(self.root, self.files)
        self.assertTrue(preflight.Preflight(self.root).kexec_loaded())
