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

"""Diskless ``kexec.load``: real downloads from a real HTTP server on
127.0.0.1 through ironic-python-agent's own ImageDownload. Only
``utils.execute`` (mount, umount, kexec) stands in for the node."""

import hashlib
import http.server
import os
import socket
import threading

import fixtures
# Registers the agent's options, which importing its modules needs (the
# agent itself loads it first).
from ironic_python_agent import config  # noqa: F401
from ironic_python_agent import errors as ipa_errors
from ironic_python_agent import hardware
from ironic_python_agent import utils

from ipa_kexec import download
from ipa_kexec import errors
from ipa_kexec import preflight
from ironic_kexec import protocol
from tests.unit.agent import test_extension
from tests.unit.agent import trees

MiB = 1024 * 1024
KERNEL = b'MZ' + os.urandom(3 * MiB + 123)
INITRD = b'070701' + os.urandom(MiB + 7)
CMDLINE = 'root=/dev/ram0 text test_param ip=dhcp'
# The fake endless file is cut off here, so a test cannot hang forever.
ENDLESS_CAP = 512 * MiB
STREAM_PIECE = 64 * 1024


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class Served(object):
    """What the test server answers for one path, and what it did."""

    def __init__(self, body=None, status=200, declared_length=None,
                 endless=False):
        self.body = body
        self.status = status
        self.declared_length = declared_length
        self.endless = endless
        self.requests = 0
        self.bytes_sent = 0
        self.done = threading.Event()


class Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.0: the body of an endless file ends when the connection does.

    def log_message(self, *args):
        pass

    def do_GET(self):
        served = self.server.files.get(self.path)
        if served is None:
            self.send_error(404)
            return
        served.requests += 1
        try:
            self._answer(served)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            served.done.set()

    def _answer(self, served):
        self.send_response(served.status)
        if served.endless:
            if served.declared_length is not None:
                self.send_header('Content-Length',
                                 str(served.declared_length))
            self.end_headers()
            piece = b'\0' * STREAM_PIECE
            while served.bytes_sent < ENDLESS_CAP:
                self.wfile.write(piece)
                served.bytes_sent += len(piece)
            return
        body = served.body or b''
        length = served.declared_length
        self.send_header('Content-Length',
                         str(len(body) if length is None else length))
        self.end_headers()
        for start in range(0, len(body), STREAM_PIECE):
            piece = body[start:start + STREAM_PIECE]
            self.wfile.write(piece)
            served.bytes_sent += len(piece)


class HTTPServerFixture(fixtures.Fixture):
    """An HTTP server on 127.0.0.1, in a thread, for one test."""

    def _setUp(self):
        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      Handler)
        self.server.daemon_threads = True
        self.server.files = {}
        thread = threading.Thread(target=self.server.serve_forever,
                                  kwargs={'poll_interval': 0.05})
        thread.start()
        self.addCleanup(thread.join, 10)
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)

    def add(self, path, served):
        self.server.files[path] = served
        return served

    def url(self, path):
        return 'http://127.0.0.1:%d%s' % (self.server.server_port, path)


def refused_url(path):
    """A URL on a loopback port nobody listens on."""
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return 'http://127.0.0.1:%d%s' % (port, path)


class FakeDisklessNode(test_extension.FakeNode):
    """The node's mount and kexec; no disk command is expected.

    A tmpfs mount records its options (the directory stays a plain one),
    its unmount records what was still in it.
    """

    def __init__(self, test, sys_root):
        super(FakeDisklessNode, self).__init__(test, {}, sys_root)
        self.tmpfs = {}
        self.left_at_umount = {}
        self.mount_error = None

    def __call__(self, *cmd, **kwargs):
        if cmd[0] == 'mount' and 'tmpfs' in cmd:
            self.calls.append((cmd, kwargs))
            if self.mount_error:
                raise self.mount_error
            target = cmd[-1]
            assert os.path.isdir(target) and not os.listdir(target)
            self.tmpfs[target] = cmd[cmd.index('-o') + 1]
            return '', ''
        if cmd[0] == 'umount' and cmd[1] in self.tmpfs:
            self.calls.append((cmd, kwargs))
            self.left_at_umount[cmd[1]] = sorted(os.listdir(cmd[1]))
            del self.tmpfs[cmd[1]]
            return '', ''
        return super(FakeDisklessNode, self).__call__(*cmd, **kwargs)

    def commands(self):
        return [os.path.basename(c[0]) for c, _kw in self.calls]


class TestDisklessLoad(test_extension.ExtensionTestCase):

    def setUp(self):
        super(TestDisklessLoad, self).setUp()
        for name in ('http_proxy', 'https_proxy', 'HTTP_PROXY',
                     'HTTPS_PROXY', 'no_proxy', 'NO_PROXY'):
            self.useFixture(fixtures.EnvironmentVariable(name))
        # IPA's defaults wait 10 s between 10 connection attempts.
        self.config(image_download_connection_retries=1,
                    image_download_connection_retry_interval=0,
                    image_download_connection_timeout=10)
        self.http = self.useFixture(HTTPServerFixture())
        self.kernel = self.http.add('/images/vmlinuz', Served(KERNEL))
        self.initrd = self.http.add('/images/initrd', Served(INITRD))
        self.node = FakeDisklessNode(self, self.sys_root)
        self.patch(utils, 'execute', self.node)
        self.disk = self.useFixture(fixtures.MockPatchObject(
            hardware, 'dispatch_to_managers', autospec=True)).mock

    def params(self, **overrides):
        params = {'kernel_url': self.http.url('/images/vmlinuz'),
                  'kernel_checksum': sha256(KERNEL),
                  'initrd_url': self.http.url('/images/initrd'),
                  'initrd_checksum': sha256(INITRD),
                  'cmdline': CMDLINE}
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}

    def run_load(self, **overrides):
        result = self.ext.execute(protocol.LOAD,
                                  **self.params(**overrides)).join()
        if result.command_error is not None:
            raise result.command_error
        return result.command_result

    def assertReason(self, reason, **overrides):
        exc = self.assertRaises(errors.KexecError, self.run_load,
                                **overrides)
        self.assertEqual(reason, exc.details['reason'])
        self.assertEqual(reason,
                         protocol.reason_from_error(exc.serialize()))
        return exc

    def kexec_calls(self):
        return [c for c, _kw in self.node.calls if c[0] == self.kexec]

    def assertCleanedUp(self):
        """Every tmpfs mounted was emptied, unmounted and removed."""
        mounted = [c[-1] for c, _kw in self.node.calls
                   if c[0] == 'mount']
        self.assertNotEqual([], mounted)
        self.assertEqual({}, self.node.tmpfs)
        for target in mounted:
            self.assertEqual([], self.node.left_at_umount[target])
            self.assertFalse(os.path.exists(target))
        self.disk.assert_not_called()

    def tmpfs_options(self):
        mount = [c for c, _kw in self.node.calls if c[0] == 'mount'][0]
        return mount[mount.index('-o') + 1].split(',')

    def test_load(self):
        result = self.run_load(extra_args='console=ttyS0  nofb')
        timings = result.pop(protocol.FIELD_TIMINGS)
        self.assertEqual(
            {'kernel': self.http.url('/images/vmlinuz'),
             'initrd': self.http.url('/images/initrd'),
             'initrds': [self.http.url('/images/initrd')], 'uki': None,
             'skipped': [],
             'cmdline': CMDLINE + ' console=ttyS0 nofb',
             'source': 'url', 'root_device': None,
             'method': 'kexec_load',
             'protocol_version': protocol.PROTOCOL_VERSION}, result)
        self.assertEqual({'preflight', 'download', 'load', 'total'},
                         set(timings))
        self.assertEqual(['mount', 'kexec', 'umount'], self.node.commands())
        tmpfs = [c for c, _kw in self.node.calls if c[0] == 'mount'][0][-1]
        self.assertEqual(
            ('mount', '-t', 'tmpfs', '-o',
             'size=%d,nodev,nosuid,noexec,mode=0700'
             % (2 * download.DEFAULT_MAX_SIZE + download.TMPFS_SLACK),
             'tmpfs', tmpfs), self.node.calls[0][0])
        self.assertEqual(
            [(self.kexec, '--load', os.path.join(tmpfs, 'kernel'),
              '--initrd=%s' % os.path.join(tmpfs, 'initrd'),
              '--command-line=%s console=ttyS0 nofb' % CMDLINE,
              '--kexec-syscall')], self.kexec_calls())
        # kexec read exactly the served bytes.
        self.assertEqual(KERNEL,
                         self.node.kexec_files[os.path.join(tmpfs, 'kernel')])
        self.assertEqual(INITRD,
                         self.node.kexec_files[os.path.join(tmpfs, 'initrd')])
        self.assertEqual((1, 1), (self.kernel.requests, self.initrd.requests))
        self.assertCleanedUp()

    def test_kernel_only_exact_cmdline(self):
        result = self.run_load(initrd_url=None, initrd_checksum=None)
        self.assertIsNone(result['initrd'])
        self.assertEqual(CMDLINE, result['cmdline'])
        cmd = self.kexec_calls()[0]
        self.assertEqual('--command-line=%s' % CMDLINE, cmd[3])
        self.assertFalse([a for a in cmd if a.startswith('--initrd')])
        self.assertEqual(0, self.initrd.requests)
        self.assertIn('size=%d' % (download.DEFAULT_MAX_SIZE
                                   + download.TMPFS_SLACK),
                      self.tmpfs_options())
        self.assertCleanedUp()

    def test_file_syscall_under_lockdown(self):
        trees.build(self.sys_root, {
            'sys/kernel/security/lockdown':
                'none [integrity] confidentiality\n'})
        result = self.run_load()
        self.assertEqual('kexec_file_load', result['method'])
        self.assertEqual('--kexec-file-syscall', self.kexec_calls()[0][-1])
        self.assertCleanedUp()

    def test_checksum_algorithms(self):
        for algo in ('sha512', 'md5', 'sha256'):
            self.run_load(checksum_algo=algo,
                          kernel_checksum=hashlib.new(algo,
                                                      KERNEL).hexdigest(),
                          initrd_checksum=hashlib.new(algo,
                                                      INITRD).hexdigest())
        self.assertEqual(3, len(self.kexec_calls()))
        self.assertEqual(3, self.kernel.requests)

    def test_sha512_detected_by_length(self):
        self.run_load(kernel_checksum=hashlib.sha512(KERNEL).hexdigest())
        self.assertEqual(1, len(self.kexec_calls()))

    def test_checksum_file_urls(self):
        # A sums file as sha256sum writes it, with the other file listed.
        sums = self.http.add('/images/SHA256SUMS', Served((
            '%s  initrd\n%s *vmlinuz\n' % (sha256(INITRD), sha256(KERNEL))
        ).encode()))
        self.http.add('/images/initrd.sha512', Served(
            hashlib.sha512(INITRD).hexdigest().encode() + b'\n'))
        self.run_load(kernel_checksum=self.http.url('/images/SHA256SUMS'),
                      initrd_checksum=self.http.url('/images/initrd.sha512'))
        self.assertEqual(1, sums.requests)
        self.assertEqual(1, len(self.kexec_calls()))

    def test_checksum_file_url_with_algo(self):
        self.http.add('/images/vmlinuz.sha256', Served(
            sha256(KERNEL).encode()))
        self.run_load(checksum_algo='sha256',
                      kernel_checksum=self.http.url('/images/vmlinuz.sha256'))
        self.assertEqual(1, len(self.kexec_calls()))

    def test_checksum_mismatch(self):
        exc = self.assertReason(protocol.REASON_CHECKSUM_MISMATCH,
                                initrd_checksum=sha256(b'other'))
        self.assertIn('initrd', exc.details['message'])
        self.assertEqual([], self.kexec_calls())
        self.assertCleanedUp()

    def test_checksum_file_without_the_file(self):
        self.http.add('/images/SHA256SUMS', Served(
            ('%s  other-kernel\n' % sha256(KERNEL)).encode()))
        self.assertReason(
            protocol.REASON_DOWNLOAD_FAILED,
            kernel_checksum=self.http.url('/images/SHA256SUMS'))
        self.assertEqual(0, self.kernel.requests)
        self.assertCleanedUp()

    def test_md5_by_length_is_disabled_as_in_ipa(self):
        self.assertReason(protocol.REASON_DOWNLOAD_FAILED,
                          kernel_checksum=hashlib.md5(KERNEL).hexdigest())
        self.assertEqual([], self.kexec_calls())
        self.assertCleanedUp()

    def test_too_large_stops_streaming(self):
        endless = self.http.add('/endless', Served(endless=True))
        self.assertReason(protocol.REASON_TOO_LARGE,
                          kernel_url=self.http.url('/endless'),
                          max_size=2 * MiB)
        self.assertTrue(endless.done.wait(30))
        # The agent read at most max_size plus a chunk and hung up; what
        # the server got out is that plus the loopback socket buffers.
        self.assertLess(endless.bytes_sent, 40 * MiB)
        self.assertLess(endless.bytes_sent, ENDLESS_CAP)
        self.assertEqual(0, self.initrd.requests)
        self.assertEqual([], self.kexec_calls())
        self.assertIn('size=%d' % (4 * MiB + download.TMPFS_SLACK),
                      self.tmpfs_options())
        self.assertCleanedUp()

    def test_too_large_by_declared_length(self):
        big = self.http.add('/big', Served(endless=True,
                                           declared_length=ENDLESS_CAP))
        exc = self.assertReason(protocol.REASON_TOO_LARGE,
                                kernel_url=self.http.url('/big'),
                                max_size=MiB)
        self.assertIn('is %d bytes' % ENDLESS_CAP, exc.details['message'])
        # Refused on the header: no chunk was read.
        self.assertTrue(big.done.wait(30))
        self.assertLess(big.bytes_sent, 40 * MiB)
        self.assertCleanedUp()

    def test_exact_max_size_fits(self):
        result = self.run_load(max_size=len(KERNEL))
        self.assertEqual('url', result['source'])
        self.assertReason(protocol.REASON_TOO_LARGE,
                          max_size=len(KERNEL) - 1)

    def test_memory_bounds_the_downloads(self):
        # 9 MiB available: 3 MiB for both files, the kernel alone is more.
        trees.build(self.sys_root, {
            preflight.MEMINFO: 'MemTotal:  8000000 kB\n'
                               'MemFree:   9000 kB\n'
                               'MemAvailable:   9216 kB\n'})
        exc = self.assertReason(protocol.REASON_TOO_LARGE)
        self.assertIn('memory', exc.details['message'])
        self.assertIn('size=%d' % (3 * MiB + download.TMPFS_SLACK),
                      self.tmpfs_options())
        self.assertCleanedUp()

    def test_memory_left_for_the_initrd(self):
        # 15 MiB available: 5 MiB in all, 3 MiB kernel, 1 MiB initrd fit.
        trees.build(self.sys_root, {
            preflight.MEMINFO: 'MemAvailable:   15360 kB\n'})
        self.run_load()
        # 12 MiB: the initrd does not fit next to the kernel in 4 MiB.
        trees.build(self.sys_root, {
            preflight.MEMINFO: 'MemAvailable:   12288 kB\n'})
        exc = self.assertReason(protocol.REASON_TOO_LARGE)
        self.assertIn('initrd', exc.details['message'])
        self.assertEqual(2, self.kernel.requests)
        self.assertCleanedUp()

    def test_not_found_is_not_retried(self):
        self.assertReason(protocol.REASON_DOWNLOAD_FAILED,
                          initrd_url=self.http.url('/images/missing'))
        self.assertEqual(1, self.kernel.requests)
        self.assertEqual(0, self.initrd.requests)
        self.assertEqual([], self.kexec_calls())
        self.assertCleanedUp()

    def test_server_error_is_retried_as_ipa_does(self):
        self.config(image_download_connection_retries=2)
        broken = self.http.add('/broken', Served(b'oops', status=503))
        self.assertReason(protocol.REASON_DOWNLOAD_FAILED,
                          kernel_url=self.http.url('/broken'))
        self.assertEqual(3, broken.requests)
        self.assertCleanedUp()

    def test_connection_refused(self):
        exc = self.assertReason(protocol.REASON_DOWNLOAD_FAILED,
                                kernel_url=refused_url('/vmlinuz'))
        self.assertIn('kernel', exc.details['message'])
        self.assertEqual([], self.kexec_calls())
        self.assertCleanedUp()

    def test_load_failure_cleans_up(self):
        self.node.kexec_stderr = 'Cannot determine the file type\n'
        self.assertReason(protocol.REASON_LOAD_FAILED)
        self.assertEqual(1, len(self.kexec_calls()))
        self.assertCleanedUp()

    def test_tmpfs_mount_failure(self):
        self.node.mount_error = OSError('no tmpfs')
        self.assertReason(protocol.REASON_AGENT_ERROR)
        self.assertEqual(0, self.kernel.requests)
        self.assertEqual(['mount'], self.node.commands())
        mount_point = self.node.calls[0][0][-1]
        self.assertFalse(os.path.exists(mount_point))

    def test_preflight_first(self):
        trees.build(self.sys_root, {preflight.LOAD_DISABLED: '1\n'})
        self.assertReason(protocol.REASON_KEXEC_DISABLED)
        self.assertEqual(0, self.kernel.requests)
        self.assertEqual([], self.node.calls)


class TestDisklessParams(test_extension.ExtensionTestCase):

    GOOD = {'kernel_url': 'http://127.0.0.1:8080/vmlinuz',
            'kernel_checksum': sha256(KERNEL),
            'initrd_url': 'https://127.0.0.1:8443/initrd',
            'initrd_checksum': sha256(INITRD),
            'cmdline': CMDLINE}

    def assertInvalid(self, **params):
        self.assertRaises(ipa_errors.InvalidCommandParamsError,
                          self.ext.execute, protocol.LOAD, **params)

    def with_(self, **overrides):
        params = dict(self.GOOD, **overrides)
        return {k: v for k, v in params.items() if v is not None}

    def test_url_and_disk_sources_are_exclusive(self):
        self.assertInvalid(**self.with_(root_uuid=test_extension.UUID))
        self.assertInvalid(**self.with_(kernel='/boot/vmlinuz'))
        self.assertInvalid(**self.with_(kernel='/boot/vmlinuz',
                                        initrd='/boot/initrd.img'))

    def test_url_params_need_kernel_url(self):
        self.assertInvalid(**self.with_(kernel_url=None))
        self.assertInvalid(root_uuid=test_extension.UUID,
                           initrd_url='http://127.0.0.1/initrd',
                           initrd_checksum=sha256(INITRD))
        self.assertInvalid(max_size=MiB)
        self.assertInvalid(checksum_algo='sha256', cmdline=CMDLINE)

    def test_checksums_required(self):
        self.assertInvalid(**self.with_(kernel_checksum=None))
        self.assertInvalid(**self.with_(kernel_checksum=''))
        self.assertInvalid(**self.with_(initrd_checksum=None))
        self.assertInvalid(**self.with_(initrd_url=None))

    def test_cmdline_required(self):
        self.assertInvalid(**self.with_(cmdline=None))

    def test_url_schemes(self):
        self.assertInvalid(**self.with_(kernel_url='file:///boot/vmlinuz'))
        self.assertInvalid(**self.with_(initrd_url='ftp://127.0.0.1/i'))
        self.assertInvalid(**self.with_(initrd_url=''))

    def test_max_size(self):
        for bad in (0, -1, True, '1024', 1.5):
            self.assertInvalid(**self.with_(max_size=bad))

    def test_checksum_algo(self):
        self.assertInvalid(**self.with_(checksum_algo='crc32'))
        self.assertInvalid(**self.with_(checksum_algo=256))

    def test_not_for_get_boot_entry(self):
        self.assertRaises(ipa_errors.InvalidCommandParamsError,
                          self.ext.execute, protocol.GET_BOOT_ENTRY,
                          kernel_url=self.GOOD['kernel_url'])


class TestBudget(test_extension.ExtensionTestCase):

    def test_max_size_without_memory(self):
        budget = download.Budget(5 * MiB)
        self.assertEqual((5 * MiB, 'max_size'), budget.limit())
        budget.used = 4 * MiB
        self.assertEqual((5 * MiB, 'max_size'), budget.limit())
        self.assertEqual(10 * MiB + download.TMPFS_SLACK,
                         budget.tmpfs_size(2))

    def test_memory_share(self):
        self.assertIsNone(download.memory_budget(None))
        self.assertEqual(MiB, download.memory_budget(3 * MiB))
        budget = download.Budget(5 * MiB, 6 * MiB)
        self.assertEqual((5 * MiB, 'max_size'), budget.limit())
        budget.used = 2 * MiB
        self.assertEqual((4 * MiB, 'the memory the agent can spare'),
                         budget.limit())
        budget.used = 7 * MiB
        self.assertEqual(0, budget.limit()[0])
        self.assertEqual(6 * MiB + download.TMPFS_SLACK,
                         budget.tmpfs_size(2))

    def test_mem_available(self):
        trees.build(self.sys_root, {
            preflight.MEMINFO: 'MemTotal:  100 kB\nMemAvailable:   42 kB\n'})
        self.assertEqual(42 * 1024, self.ext.preflight.mem_available())

    def test_mem_available_unknown(self):
        self.assertIsNone(self.ext.preflight.mem_available())
        trees.build(self.sys_root, {preflight.MEMINFO: 'MemTotal: 1 kB\n'})
        self.assertIsNone(self.ext.preflight.mem_available())
