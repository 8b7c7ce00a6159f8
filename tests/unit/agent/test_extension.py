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

"""The extension's commands: load through the mount layer, execute's
ordering, and the detached kexec -e."""

import os
import shutil
import stat
import sys
import tempfile
import time
from unittest import mock

import fixtures
from ironic_python_agent import errors as ipa_errors
from ironic_python_agent.extensions import base as ext_base
from ironic_python_agent import hardware
from ironic_python_agent.tests.unit import base
from ironic_python_agent import utils
from oslo_concurrency import processutils

from ipa_kexec import errors
from ipa_kexec import extension
from ipa_kexec import hardware_facts
from ipa_kexec import kexec
from ipa_kexec import preflight
from ironic_kexec import protocol
from tests.unit.agent import test_discovery
from tests.unit.agent import test_hardware_facts
from tests.unit.agent import test_uki
from tests.unit.agent import trees

UUID = test_discovery.UUID
LSBLK = ('KNAME="vda" TYPE="disk" FSTYPE="" UUID="" PARTUUID="" LABEL=""\n'
         'KNAME="vda1" TYPE="part" FSTYPE="vfat" UUID="0A1B-2C3D" '
         'PARTUUID="p1" LABEL=""\n'
         'KNAME="vda2" TYPE="part" FSTYPE="ext4" UUID="%s" '
         'PARTUUID="p2" LABEL=""\n'
         'KNAME="vda3" TYPE="part" FSTYPE="swap" UUID="sw" PARTUUID="p3" '
         'LABEL=""\n' % UUID)


def _tmpdir(test):
    path = tempfile.mkdtemp()
    test.addCleanup(shutil.rmtree, path, True)
    return path


class FakeNode(object):
    """Stands in for the node's disk and kernel (utils.execute).

    ``mount`` copies the tree of a partition into the mount point,
    ``umount`` empties it, ``kexec --load`` records its arguments and
    marks a kernel as loaded in the fake sysfs.
    """

    def __init__(self, test, partitions, sys_root):
        self.partitions = partitions
        self.sys_root = sys_root
        self.mounted = {}
        self.calls = []
        self.kexec_stderr = None
        # cmd -> stderr (None: loads), when set; else kexec_stderr.
        self.kexec_stderr_for = None
        self.kexec_files = {}

    def __call__(self, *cmd, **kwargs):
        self.calls.append((cmd, kwargs))
        assert 'timeout' in kwargs, cmd
        name = os.path.basename(cmd[0])
        if name == 'lsblk':
            return LSBLK, ''
        if name in ('vgchange', 'mdadm'):
            raise processutils.ProcessExecutionError(exit_code=5)
        if name == 'mount' and cmd[-2] == 'tmpfs':
            # A private tmpfs for copies (several initrds, a UKI).
            self.mounted[cmd[-1]] = 'tmpfs'
            return '', ''
        if name == 'mount':
            device, target = cmd[-2], cmd[-1]
            if device not in self.partitions:
                raise processutils.ProcessExecutionError(exit_code=32)
            trees.build(target, self.partitions[device])
            self.mounted[target] = device
            return '', ''
        if name == 'umount':
            device = self.mounted.pop(cmd[1])
            for entry in os.listdir(cmd[1]):
                path = os.path.join(cmd[1], entry)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
            return device, ''
        if name == 'kexec':
            # kexec reads the files at load time: they must be mounted.
            for arg in cmd[1:]:
                path = arg.split('=', 1)[-1]
                if path.startswith('/') and not arg.startswith('--command'):
                    with open(path, 'rb') as f:
                        self.kexec_files[path] = f.read()
            stderr = (self.kexec_stderr_for(cmd) if self.kexec_stderr_for
                      else self.kexec_stderr)
            if stderr:
                raise processutils.ProcessExecutionError(
                    exit_code=1, stderr=stderr)
            with open(os.path.join(self.sys_root,
                                   preflight.KEXEC_LOADED), 'w') as f:
                f.write('1\n')
            return '', ''
        raise AssertionError('unexpected command %s' % (cmd,))


class ExtensionTestCase(base.IronicAgentTest):

    def setUp(self):
        super(ExtensionTestCase, self).setUp()
        self.sys_root = _tmpdir(self)
        trees.build(self.sys_root, {
            preflight.KEXEC_LOADED: '0\n',
            preflight.LOAD_DISABLED: '0\n'})
        bindir = _tmpdir(self)
        self.kexec = os.path.join(bindir, 'kexec')
        with open(self.kexec, 'w') as f:
            f.write('#!/bin/sh\nexit 0\n')
        os.chmod(self.kexec, stat.S_IRWXU)
        self.useFixture(fixtures.EnvironmentVariable('PATH', bindir))
        self.ext = extension.KexecExtension()
        self.ext.preflight = preflight.Preflight(self.sys_root)

    def set_loaded(self):
        with open(os.path.join(self.sys_root, preflight.KEXEC_LOADED),
                  'w') as f:
            f.write('1\n')


@mock.patch.object(hardware, 'dispatch_to_managers', autospec=True,
                   return_value='/dev/vda')
class TestLoad(ExtensionTestCase):

    def setUp(self):
        super(TestLoad, self).setUp()
        root = test_discovery.debian_tree(test_discovery.debian_grub_cfg())
        root['/etc/fstab'] += 'UUID=0A1B-2C3D /boot/efi vfat umask=0077 0 1\n'
        root['/boot/efi'] = None
        self.node = FakeNode(self, {
            '/dev/vda1': {'/EFI/debian/grubx64.efi': b'efi'},
            '/dev/vda2': root}, self.sys_root)
        self.patch(utils, 'execute', self.node)

    def run_load(self, **params):
        result = self.ext.execute(protocol.LOAD, **params).join()
        if result.command_error is not None:
            raise result.command_error
        return result.command_result

    def test_load(self, mock_dispatch):
        result = self.run_load(extra_args='console=ttyS0')
        timings = result.pop(protocol.FIELD_TIMINGS)
        self.assertEqual({'kernel': '/boot/vmlinuz-6.1.0-13-amd64',
                          'initrd': '/boot/initrd.img-6.1.0-13-amd64',
                          'initrds': ['/boot/initrd.img-6.1.0-13-amd64'],
                          'uki': None, 'skipped': [],
                          'cmdline': 'BOOT_IMAGE=/boot/vmlinuz-6.1.0-13-amd64 '
                                     'root=UUID=%s ro quiet console=ttyS0'
                                     % UUID,
                          'source': 'grub', 'root_device': '/dev/vda2',
                          'method': 'kexec_load',
                          'protocol_version': protocol.PROTOCOL_VERSION},
                         result)
        self.assertEqual({'preflight', 'discover', 'load', 'total'},
                         set(timings))
        mock_dispatch.assert_called_once_with('get_os_install_device')
        mounts = [c for c, kw in self.node.calls if c[0] == 'mount']
        # vfat is tried first and is no root, then the ext4 root, then
        # /boot/efi from the image's fstab.
        self.assertEqual(['/dev/vda1', '/dev/vda2', '/dev/vda1'],
                         [c[-2] for c in mounts])
        self.assertEqual(('mount', '-o', 'ro,nodev,nosuid,noexec,noload',
                          '-t', 'ext4'), mounts[1][:5])
        kexec_cmd = [c for c, kw in self.node.calls if c[0] == self.kexec]
        self.assertEqual(1, len(kexec_cmd))
        cmd = kexec_cmd[0]
        root_mount = mounts[1][-1]
        self.assertEqual(
            (self.kexec, '--load',
             root_mount + '/boot/vmlinuz-6.1.0-13-amd64',
             '--initrd=%s/boot/initrd.img-6.1.0-13-amd64' % root_mount,
             '--command-line=BOOT_IMAGE=/boot/vmlinuz-6.1.0-13-amd64 '
             'root=UUID=%s ro quiet console=ttyS0' % UUID,
             '--kexec-syscall'), cmd)
        self.assertEqual(trees.KERNEL, self.node.kexec_files[cmd[2]])
        # Everything is unmounted and the mount points removed.
        self.assertEqual({}, self.node.mounted)
        for c in mounts:
            self.assertFalse(os.path.exists(c[-1]))

    def test_load_several_initrds_concatenated(self, mock_dispatch):
        # grub-mkconfig names the early microcode image first.
        cfg = test_discovery.debian_grub_cfg().replace(
            'initrd\t/boot/initrd.img-6.1.0-13-amd64',
            'initrd\t/boot/intel-ucode.img /boot/initrd.img-6.1.0-13-amd64')
        root = self.node.partitions['/dev/vda2']
        root['/boot/grub/grub.cfg'] = cfg
        root['/boot/intel-ucode.img'] = b'070701ucode'
        result = self.run_load()
        self.assertEqual(['/boot/intel-ucode.img',
                          '/boot/initrd.img-6.1.0-13-amd64'],
                         result['initrds'])
        cmd = [c for c, kw in self.node.calls if c[0] == self.kexec][0]
        initrd = cmd[3][len('--initrd='):]
        # One file: each part padded to 4 bytes, as grub loads them.
        self.assertEqual(b'070701ucode\0' + trees.INITRD + b'\0',
                         self.node.kexec_files[initrd])
        self.assertEqual({}, self.node.mounted)
        self.assertFalse(os.path.exists(initrd))

    def test_load_unified_kernel_image(self, mock_dispatch):
        # A UKI on the ESP, no grub.cfg: its sections are copied out,
        # since kexec-tools cannot load a UKI.
        self.node.partitions['/dev/vda2'].pop('/boot/grub/grub.cfg')
        self.node.partitions['/dev/vda1'][
            '/EFI/Linux/debian-6.1.0-13-amd64.efi'] = test_uki.uki_image()
        result = self.run_load()
        self.assertEqual(
            ('uki', '/boot/efi/EFI/Linux/debian-6.1.0-13-amd64.efi'),
            (result['source'], result['uki']))
        self.assertEqual('root=UUID=abcd ro quiet', result['cmdline'])
        cmd = [c for c, kw in self.node.calls if c[0] == self.kexec][0]
        kernel, initrd = cmd[2], cmd[3][len('--initrd='):]
        self.assertEqual(trees.KERNEL, self.node.kexec_files[kernel])
        pad = b'\0' * (-len(trees.INITRD) % 4)
        self.assertEqual(trees.INITRD + pad, self.node.kexec_files[initrd])
        self.assertEqual({}, self.node.mounted)
        self.assertFalse(os.path.exists(kernel))

    def test_load_with_root_uuid(self, mock_dispatch):
        result = self.run_load(root_uuid=UUID)
        self.assertEqual('/dev/vda2', result['root_device'])
        mounts = [c for c, kw in self.node.calls if c[0] == 'mount']
        self.assertEqual('/dev/vda2', mounts[0][-2])

    def test_lockdown_refusal(self, mock_dispatch):
        trees.build(self.sys_root, {
            'sys/kernel/security/lockdown':
                'none [integrity] confidentiality\n'})
        self.node.kexec_stderr = (
            'kexec_file_load failed: Operation not permitted\n')
        exc = self.assertRaises(errors.KexecError, self.run_load)
        self.assertEqual(protocol.REASON_LOCKDOWN, exc.details['reason'])
        cmd = [c for c, kw in self.node.calls if c[0] == self.kexec][0]
        self.assertEqual('--kexec-file-syscall', cmd[-1])
        self.assertEqual({}, self.node.mounted)

    def test_undetected_lockdown_falls_back_to_file_load(self,
                                                         mock_dispatch):
        # No securityfs, no efivarfs: preflight sees no lockdown and
        # chooses kexec_load, which the locked down kernel refuses.
        calls = []

        def kexec_tool(cmd):
            calls.append(cmd[-1])
            if cmd[-1] == '--kexec-syscall':
                return 'kexec_load failed: Permission denied\n'
            return None

        self.node.kexec_stderr_for = kexec_tool
        result = self.run_load()
        self.assertEqual(protocol.METHOD_KEXEC_FILE_LOAD, result['method'])
        self.assertEqual(['--kexec-syscall', '--kexec-file-syscall'], calls)
        self.assertEqual({}, self.node.mounted)

    def test_undetected_lockdown_no_fallback_when_never(self,
                                                        mock_dispatch):
        self.node.kexec_stderr = 'kexec_load failed: Permission denied\n'
        exc = self.assertRaises(errors.KexecError, self.run_load,
                                file_syscall=protocol.FILE_SYSCALL_NEVER)
        self.assertEqual(protocol.REASON_LOAD_FAILED, exc.details['reason'])
        self.assertEqual(1, len(self.kexec_calls()))

    def test_load_failed(self, mock_dispatch):
        self.node.kexec_stderr = 'Cannot determine the file type\n'
        exc = self.assertRaises(errors.KexecError, self.run_load)
        self.assertEqual(protocol.REASON_LOAD_FAILED, exc.details['reason'])
        self.assertEqual({}, self.node.mounted)

    def test_preflight_before_disk(self, mock_dispatch):
        trees.build(self.sys_root, {preflight.LOAD_DISABLED: '1\n'})
        exc = self.assertRaises(errors.KexecError, self.run_load)
        self.assertEqual(protocol.REASON_KEXEC_DISABLED,
                         exc.details['reason'])
        self.assertEqual([], self.node.calls)

    def test_no_root(self, mock_dispatch):
        self.node.partitions['/dev/vda2'] = {'/data/file': 'x'}
        exc = self.assertRaises(errors.KexecError, self.run_load)
        self.assertEqual(protocol.REASON_NO_ROOT, exc.details['reason'])
        self.assertEqual({}, self.node.mounted)

    def test_url_without_checksum_and_cmdline(self, mock_dispatch):
        self.assertRaises(ipa_errors.InvalidCommandParamsError,
                          self.ext.execute, protocol.LOAD,
                          kernel_url='http://127.0.0.1/vmlinuz')
        self.assertEqual([], self.node.calls)

    def kexec_calls(self):
        return [c for c, kw in self.node.calls if c[0] == self.kexec]

    def test_deny_rule_matches(self, mock_dispatch):
        trees.build(self.sys_root, test_hardware_facts.node_tree())
        exc = self.assertRaises(
            errors.KexecError, self.run_load,
            deny=[{'id': 'amd-gpu', 'pci_ids': ['1002:*']},
                  {'id': 'nvidia-gpu', 'comment': 'hangs after kexec',
                   'pci_ids': ['10de:*']}])
        self.assertEqual(protocol.REASON_DENIED, exc.details['reason'])
        self.assertEqual('hardware deny rule "nvidia-gpu" matches: '
                         'pci_ids 10de:2204 (0000:01:00.0)',
                         exc.details['message'])
        # Refused before the disk is touched or anything loaded.
        self.assertEqual([], self.node.calls)
        mock_dispatch.assert_not_called()

    def test_deny_rule_does_not_match(self, mock_dispatch):
        trees.build(self.sys_root, test_hardware_facts.node_tree())
        result = self.run_load(deny=[
            {'id': 'amd-gpu', 'pci_ids': ['1002:*']},
            {'id': 'hpe', 'system_vendor': 'HPE', 'drivers': ['nvidia']}])
        self.assertEqual('kexec_load', result['method'])
        self.assertNotIn('deny', result)
        self.assertEqual(1, len(self.kexec_calls()))

    @mock.patch.object(hardware_facts.LOG, 'warning', autospec=True)
    def test_undecidable_deny_rule_loads(self, mock_warning, mock_dispatch):
        # No DMI in this sysfs: the vendor is unknown.
        result = self.run_load(deny=[{'id': 'dell',
                                      'system_vendor': 'Dell*'}])
        self.assertEqual('grub', result['source'])
        self.assertEqual(1, len(self.kexec_calls()))
        mock_warning.assert_called_once()
        self.assertIn('dell', mock_warning.call_args[0])

    def test_empty_deny_loads(self, mock_dispatch):
        self.run_load(deny=[])
        self.assertEqual(1, len(self.kexec_calls()))

    def test_invalid_deny(self, mock_dispatch):
        rule = {'id': 'gpu', 'pci_ids': ['10de:*']}
        for deny in ('10de:*', rule, [rule, 'gpu'], [{'id': 'gpu'}],
                     [{'pci_ids': ['10de:*']}], [dict(rule, bogus='x')],
                     [dict(rule, pci_ids='10de:*')],
                     [rule] * (extension.MAX_DENY_RULES + 1)):
            self.assertRaises(ipa_errors.InvalidCommandParamsError,
                              self.ext.execute, protocol.LOAD, deny=deny)
        self.assertEqual([], self.node.calls)

    def test_deny_at_the_bound(self, mock_dispatch):
        rule = {'id': 'gpu', 'pci_ids': ['10de:*']}
        self.run_load(deny=[rule] * extension.MAX_DENY_RULES)
        self.assertEqual(1, len(self.kexec_calls()))

    def test_conductor_versions_served(self, mock_dispatch):
        # This release's conductor, an older one, and one of version 1
        # that sends no version at all.
        for version in range(protocol.MIN_PROTOCOL_VERSION,
                             protocol.PROTOCOL_VERSION + 1):
            result = self.run_load(protocol_version=version)
            self.assertEqual(protocol.PROTOCOL_VERSION,
                             result[protocol.FIELD_PROTOCOL_VERSION])
        result = self.run_load()
        self.assertEqual(protocol.PROTOCOL_VERSION,
                         result[protocol.FIELD_PROTOCOL_VERSION])
        self.assertEqual(protocol.PROTOCOL_VERSION
                         - protocol.MIN_PROTOCOL_VERSION + 2,
                         len(self.kexec_calls()))

    def test_newer_conductor_refused(self, mock_dispatch):
        newer = protocol.PROTOCOL_VERSION + 1
        # Its parameters may be unknown here: refused for the version,
        # not as unknown parameters, and before anything is touched.
        exc = self.assertRaises(errors.KexecError, self.run_load,
                                protocol_version=newer,
                                parameter_of_the_future='x')
        self.assertEqual(protocol.REASON_PROTOCOL_MISMATCH,
                         protocol.reason_from_error(exc.serialize()))
        message = exc.details['message']
        self.assertIn('version %d' % newer, message)
        self.assertIn('versions %d to %d' % (protocol.MIN_PROTOCOL_VERSION,
                                             protocol.PROTOCOL_VERSION),
                      message)
        self.assertEqual(protocol.PROTOCOL_VERSION,
                         exc.details[protocol.DETAIL_PROTOCOL_VERSION])
        self.assertEqual([], self.node.calls)
        mock_dispatch.assert_not_called()

    def test_malformed_protocol_version(self, mock_dispatch):
        for version in ('2', 0, -1, True, 2.0, [2]):
            self.assertRaises(ipa_errors.InvalidCommandParamsError,
                              self.ext.execute, protocol.LOAD,
                              protocol_version=version)
        self.assertEqual([], self.node.calls)

    def test_served_version_still_checks_parameters(self, mock_dispatch):
        self.assertRaises(ipa_errors.InvalidCommandParamsError,
                          self.ext.execute, protocol.LOAD,
                          protocol_version=protocol.PROTOCOL_VERSION,
                          bogus='1')
        self.assertEqual([], self.node.calls)

    def test_get_boot_entry_mounts(self, mock_dispatch):
        result = self.ext.execute(protocol.GET_BOOT_ENTRY)
        self.assertEqual('SUCCEEDED', result.command_status)
        self.assertEqual('/boot/vmlinuz-6.1.0-13-amd64',
                         result.command_result['kernel'])
        self.assertEqual({}, self.node.mounted)


class TestGetBootEntry(ExtensionTestCase):

    def test_root_path(self):
        root = trees.build(_tmpdir(self), test_discovery.debian_tree())
        result = self.ext.execute(protocol.GET_BOOT_ENTRY, root_path=root)
        self.assertEqual({'kernel': '/boot/vmlinuz-6.1.0-13-amd64',
                          'initrd': '/boot/initrd.img-6.1.0-13-amd64',
                          'initrds': ['/boot/initrd.img-6.1.0-13-amd64'],
                          'uki': None, 'skipped': [],
                          'cmdline': 'root=UUID=%s ro console=ttyS0,115200 '
                                     'quiet' % UUID,
                          'source': 'symlink', 'root_device': None},
                         result.command_result)

    def test_unsafe_path_reason(self):
        files = {'/etc/os-release': trees.OS_RELEASE_DEBIAN,
                 '/vmlinuz': trees.Link('/../../etc/passwd')}
        root = trees.build(_tmpdir(self), files)
        # The agent turns this into a FAILED result carrying the error.
        exc = self.assertRaises(errors.KexecError, self.ext.execute,
                                protocol.GET_BOOT_ENTRY, root_path=root)
        self.assertEqual(protocol.REASON_UNSAFE_PATH,
                         protocol.reason_from_error(exc.serialize()))

    def test_bad_params(self):
        self.assertRaises(ipa_errors.InvalidCommandParamsError,
                          self.ext.execute,
                          protocol.GET_BOOT_ENTRY, file_syscall='maybe')
        self.assertRaises(ipa_errors.InvalidCommandParamsError,
                          self.ext.execute,
                          protocol.GET_BOOT_ENTRY, bogus='1')
        # Deny rules are checked by load only.
        self.assertRaises(ipa_errors.InvalidCommandParamsError,
                          self.ext.execute, protocol.GET_BOOT_ENTRY,
                          deny=[{'id': 'gpu', 'pci_ids': ['10de:*']}])


class TestGetVersion(ExtensionTestCase):

    def test_versions(self):
        result = self.ext.execute(protocol.GET_VERSION)
        self.assertEqual(ext_base.AgentCommandStatus.SUCCEEDED,
                         result.command_status)
        self.assertEqual(
            {protocol.FIELD_PROTOCOL_VERSION: protocol.PROTOCOL_VERSION,
             protocol.FIELD_MIN_PROTOCOL_VERSION:
                 protocol.MIN_PROTOCOL_VERSION},
            result.command_result)
        self.assertEqual(set(protocol.VERSION_FIELDS),
                         set(result.command_result))

    def test_no_parameters(self):
        self.assertRaises(ipa_errors.InvalidCommandParamsError,
                          self.ext.execute, protocol.GET_VERSION,
                          protocol_version=protocol.PROTOCOL_VERSION)


@mock.patch.object(kexec.subprocess, 'Popen', autospec=True)
@mock.patch.object(hardware, 'dispatch_to_all_managers', autospec=True)
class TestExecute(ExtensionTestCase):

    def run_execute(self, **params):
        return self.ext.execute(protocol.EXECUTE, **params).join()

    def test_flush_then_spawn_with_delay(self, mock_sync, mock_popen):
        self.set_loaded()
        order = mock.Mock()
        order.attach_mock(mock_sync, 'sync')
        order.attach_mock(mock_popen, 'popen')
        before = time.monotonic()
        result = self.run_execute(delay=7)
        after = time.monotonic()
        self.assertEqual(ext_base.AgentCommandStatus.SUCCEEDED,
                         result.command_status)
        self.assertEqual({'delay': 7}, result.command_result)
        self.assertEqual(['sync', 'popen'],
                         [c[0] for c in order.mock_calls])
        mock_sync.assert_called_once_with('full_sync')
        args, kwargs = mock_popen.call_args
        argv = args[0]
        self.assertEqual([sys.executable, '-I', '-S', '-c',
                          kexec._EXEC_LATER], argv[:5])
        # The child gets the moment to kexec at, on the monotonic clock,
        # not a delay that its own start-up would lengthen.
        self.assertTrue(before + 7 <= float(argv[5]) <= after + 7)
        self.assertEqual(self.kexec, argv[6])
        self.assertTrue(kwargs['start_new_session'])
        self.assertNotIn('shell', kwargs)

    def test_not_loaded(self, mock_sync, mock_popen):
        result = self.run_execute()
        self.assertEqual(protocol.REASON_NOT_LOADED,
                         result.command_error.details['reason'])
        mock_sync.assert_not_called()
        mock_popen.assert_not_called()

    def test_sync_failure_no_kexec(self, mock_sync, mock_popen):
        self.set_loaded()
        mock_sync.side_effect = RuntimeError('I/O error')
        result = self.run_execute()
        self.assertEqual(protocol.REASON_AGENT_ERROR,
                         result.command_error.details['reason'])
        mock_popen.assert_not_called()

    def test_bad_delay(self, mock_sync, mock_popen):
        self.assertRaises(ipa_errors.InvalidCommandParamsError,
                          self.ext.execute, protocol.EXECUTE,
                          delay='soon')
        mock_popen.assert_not_called()


class TestSpawnExecute(base.IronicAgentTest):

    def test_detached_process_runs_kexec_e_after_delay(self):
        tmp = _tmpdir(self)
        out = os.path.join(tmp, 'out')
        fake = os.path.join(tmp, 'kexec')
        with open(fake, 'w') as f:
            f.write('#!/bin/sh\necho "$@" > %s.tmp\nmv %s.tmp %s\n'
                    % (out, out, out))
        os.chmod(fake, stat.S_IRWXU)
        start = time.monotonic()
        proc = kexec.spawn_execute(fake, 0.5)
        self.assertNotEqual(os.getsid(0), os.getsid(proc.pid))
        self.assertFalse(os.path.exists(out))
        self.assertEqual(0, proc.wait(timeout=30))
        self.assertGreaterEqual(time.monotonic() - start, 0.5)
        with open(out) as f:
            self.assertEqual('-e\n', f.read())
