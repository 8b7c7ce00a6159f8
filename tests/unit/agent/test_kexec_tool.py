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

"""``kexec --load`` and the bounded execution of tools, with real
processes: a fake ``kexec`` script stands in for kexec-tools."""

import os
import shutil
import stat
import subprocess
import tempfile
import time

from ironic_python_agent.tests.unit import base
from ironic_python_agent import utils
from oslo_concurrency import processutils

from ipa_kexec import errors
from ipa_kexec import kexec
from ipa_kexec import process
from ironic_kexec import protocol


def process_gone(pid):
    """No such process, or a zombie nobody of ours has to reap."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            state = f.read().rsplit(')', 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ('Z', 'X')


def wait_gone(pids, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(process_gone(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


class ToolTestCase(base.IronicAgentTest):
    """Runs real processes: scripts written in a temporary directory."""

    block_execute = False

    def setUp(self):
        super(ToolTestCase, self).setUp()
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.pidfile = os.path.join(self.dir, 'pids')

    def script(self, name, body):
        path = os.path.join(self.dir, name)
        with open(path, 'w') as f:
            f.write('#!/bin/sh\n' + body)
        os.chmod(path, stat.S_IRWXU)
        return path

    def hanging(self, name):
        """A tool that starts a child, records both pids and hangs."""
        return self.script(name, 'sleep 300 &\n'
                                 'echo $$ $! > %s\n'
                                 'wait\n' % self.pidfile)

    def pids(self):
        with open(self.pidfile) as f:
            pids = [int(p) for p in f.read().split()]
        for pid in pids:
            self.addCleanup(self._kill, pid)
        return pids

    @staticmethod
    def _kill(pid):
        # Only if a test failed and left it: these are our own pids.
        if not process_gone(pid):
            os.kill(pid, 9)


class TestOsloTimeout(ToolTestCase):
    """What oslo.concurrency does at a timeout: why execute_bounded is.

    It raises subprocess.TimeoutExpired and leaves the process and its
    children running.
    """

    def test_oslo_leaves_the_process_running(self):
        tool = self.hanging('tool')
        self.assertRaises(subprocess.TimeoutExpired, utils.execute, tool,
                          timeout=0.5)
        pids = self.pids()
        time.sleep(0.3)
        self.assertFalse(any(process_gone(p) for p in pids))


class TestExecuteBounded(ToolTestCase):

    def test_timeout_kills_process_and_children(self):
        tool = self.hanging('tool')
        start = time.monotonic()
        exc = self.assertRaises(errors.KexecError, process.execute_bounded,
                                tool, timeout=0.5,
                                timeout_reason=protocol.REASON_NO_ROOT)
        self.assertEqual(protocol.REASON_NO_ROOT, exc.reason)
        self.assertIn('tool did not finish within 0.5 seconds',
                      exc.reason_message)
        self.assertLess(time.monotonic() - start, process.REAP_TIMEOUT)
        shell, child = self.pids()
        # The tool itself was reaped by us: not even a zombie is left.
        self.assertFalse(os.path.exists('/proc/%d' % shell))
        # Its child, reparented when the shell died, was killed too.
        self.assertTrue(wait_gone([child]))

    def test_timeout_ignoring_sigterm(self):
        # SIGKILL, not a polite SIGTERM that a tool may ignore.
        tool = self.script('tool', "trap '' TERM\n"
                                   'echo $$ > %s\n'
                                   'while :; do sleep 1; done\n'
                                   % self.pidfile)
        self.assertRaises(errors.KexecError, process.execute_bounded, tool,
                          timeout=0.5, timeout_reason=protocol.REASON_TIMEOUT)
        self.assertTrue(wait_gone(self.pids()))

    def test_success_and_failure_unchanged(self):
        tool = self.script('tool', 'echo out; echo err >&2; exit ${1:-0}\n')
        self.assertEqual(('out\n', 'err\n'), process.execute_bounded(
            tool, timeout=10, timeout_reason=protocol.REASON_TIMEOUT))
        exc = self.assertRaises(
            processutils.ProcessExecutionError, process.execute_bounded,
            tool, '3', timeout=10,
            timeout_reason=protocol.REASON_TIMEOUT)
        self.assertEqual(3, exc.exit_code)


class TestLoad(ToolTestCase):

    def setUp(self):
        super(TestLoad, self).setUp()
        self.args = os.path.join(self.dir, 'args')

    def fake_kexec(self, status=0, stderr=''):
        return self.script('kexec', 'printf "%%s\\n" "$@" > %s\n'
                                    'echo "%s" >&2\n'
                                    'exit %d\n' % (self.args, stderr, status))

    def test_load(self):
        tool = self.fake_kexec()
        kexec.load(tool, '/k', '/i', 'root=UUID=x ro "a b"',
                   protocol.METHOD_KEXEC_FILE_LOAD)
        with open(self.args) as f:
            self.assertEqual(['--load', '/k', '--initrd=/i',
                              '--command-line=root=UUID=x ro "a b"',
                              '--kexec-file-syscall'],
                             f.read().splitlines())

    def test_load_failed(self):
        tool = self.fake_kexec(1, 'Cannot load /k')
        exc = self.assertRaises(errors.KexecError, kexec.load, tool, '/k',
                                None, 'ro', protocol.METHOD_KEXEC_LOAD)
        self.assertEqual(protocol.REASON_LOAD_FAILED, exc.reason)

    def test_lockdown(self):
        # kexec-tools 2.0.25's words for the refusals of a kernel that only
        # loads signed kernels (all but the last seen under OVMF Secure
        # Boot with Debian 12's kernel).
        for method, stderr in (
                (protocol.METHOD_KEXEC_LOAD,
                 'kexec_load failed: Permission denied'),
                (protocol.METHOD_KEXEC_LOAD,
                 'kexec_load failed: Operation not permitted'),
                (protocol.METHOD_KEXEC_FILE_LOAD,
                 'kexec_file_load failed: No data available'),
                (protocol.METHOD_KEXEC_FILE_LOAD,
                 'kexec_file_load failed: Required key not available'),
                (protocol.METHOD_KEXEC_FILE_LOAD,
                 'kexec_file_load failed: Key was rejected by service')):
            tool = self.fake_kexec(1, stderr)
            exc = self.assertRaises(errors.KexecError, kexec.load, tool,
                                    '/k', None, 'ro', method,
                                    lockdown_reason='Secure Boot')
            self.assertEqual(protocol.REASON_LOCKDOWN, exc.reason, stderr)
            self.assertIn(stderr, exc.reason_message)

    def test_refusal_without_lockdown_is_load_failed(self):
        tool = self.fake_kexec(1, 'kexec_file_load failed: No data available')
        exc = self.assertRaises(errors.KexecError, kexec.load, tool, '/k',
                                None, 'ro', protocol.METHOD_KEXEC_FILE_LOAD)
        self.assertEqual(protocol.REASON_LOAD_FAILED, exc.reason)

    def test_load_returns_method(self):
        tool = self.fake_kexec()
        self.assertEqual(protocol.METHOD_KEXEC_LOAD,
                         kexec.load(tool, '/k', None, 'ro',
                                    protocol.METHOD_KEXEC_LOAD,
                                    retry_file_load=True))
        with open(self.args) as f:
            self.assertEqual('--kexec-syscall', f.read().splitlines()[-1])

    def syscall_kexec(self, load_stderr, file_load_stderr=None):
        """kexec_load refused; kexec_file_load as given (None: loads)."""
        file_load = ('exit 0\n' if file_load_stderr is None
                     else 'echo "%s" >&2\nexit 255\n' % file_load_stderr)
        return self.script(
            'kexec', 'printf "%%s\\n" "$@" >> %s\n'
                     'case "$*" in *--kexec-syscall*)\n'
                     '  echo "%s" >&2; exit 255;;\n'
                     'esac\n%s' % (self.args, load_stderr, file_load))

    def syscalls(self):
        with open(self.args) as f:
            return [a for a in f.read().splitlines()
                    if a.startswith('--kexec-')]

    def test_undetected_lockdown_retries_file_load(self):
        # The testbed's agent ramdisk under OVMF Secure Boot: no securityfs
        # nor efivarfs, so preflight chose kexec_load, which the locked
        # down kernel refused; the signed kernel loads with the file call.
        for stderr in ('kexec_load failed: Permission denied',
                       'kexec_load failed: Operation not permitted'):
            if os.path.exists(self.args):
                os.unlink(self.args)
            tool = self.syscall_kexec(stderr)
            self.assertEqual(protocol.METHOD_KEXEC_FILE_LOAD,
                             kexec.load(tool, '/k', '/i', 'ro',
                                        protocol.METHOD_KEXEC_LOAD,
                                        retry_file_load=True))
            self.assertEqual(['--kexec-syscall', '--kexec-file-syscall'],
                             self.syscalls())

    def test_undetected_lockdown_unsigned_kernel_is_lockdown(self):
        tool = self.syscall_kexec('kexec_load failed: Permission denied',
                                  'kexec_file_load failed: No data available')
        exc = self.assertRaises(errors.KexecError, kexec.load, tool, '/k',
                                None, 'ro', protocol.METHOD_KEXEC_LOAD,
                                retry_file_load=True)
        self.assertEqual(protocol.REASON_LOCKDOWN, exc.reason)
        self.assertIn('refused kexec_load: kexec_load failed: Permission '
                      'denied', exc.reason_message)
        self.assertIn('kexec_file_load failed: No data available',
                      exc.reason_message)
        self.assertEqual(['--kexec-syscall', '--kexec-file-syscall'],
                         self.syscalls())

    def test_no_retry_unless_asked_or_other_failure(self):
        # file_syscall "never" (no retry_file_load), and failures that are
        # not a refusal: kexec_load only, load_failed.
        for stderr, retry in (
                ('kexec_load failed: Permission denied', False),
                ('Cannot determine the file type of /k', True)):
            if os.path.exists(self.args):
                os.unlink(self.args)
            tool = self.syscall_kexec(stderr)
            exc = self.assertRaises(errors.KexecError, kexec.load, tool,
                                    '/k', None, 'ro',
                                    protocol.METHOD_KEXEC_LOAD,
                                    retry_file_load=retry)
            self.assertEqual(protocol.REASON_LOAD_FAILED, exc.reason)
            self.assertEqual(['--kexec-syscall'], self.syscalls())

    def test_file_load_is_not_retried(self):
        tool = self.syscall_kexec('unused', 'kexec_file_load failed: '
                                  'Operation not permitted')
        exc = self.assertRaises(errors.KexecError, kexec.load, tool, '/k',
                                None, 'ro', protocol.METHOD_KEXEC_FILE_LOAD,
                                retry_file_load=True)
        self.assertEqual(protocol.REASON_LOAD_FAILED, exc.reason)
        self.assertEqual(['--kexec-file-syscall'], self.syscalls())

    def test_load_timeout_kills_kexec(self):
        tool = self.hanging('kexec')
        self.patch(kexec, 'LOAD_TIMEOUT', 0.5)
        exc = self.assertRaises(errors.KexecError, kexec.load, tool, '/k',
                                '/i', 'ro', protocol.METHOD_KEXEC_LOAD)
        self.assertEqual(protocol.REASON_TIMEOUT, exc.reason)
        shell, child = self.pids()
        self.assertFalse(os.path.exists('/proc/%d' % shell))
        self.assertTrue(wait_gone([child]))

    def test_nul_in_cmdline_is_refused_without_running_kexec(self):
        tool = self.fake_kexec()
        exc = self.assertRaises(errors.KexecError, kexec.load, tool, '/k',
                                None, 'ro\0init=/bin/sh',
                                protocol.METHOD_KEXEC_LOAD)
        self.assertEqual(protocol.REASON_LOAD_FAILED, exc.reason)
        self.assertFalse(os.path.exists(self.args))
