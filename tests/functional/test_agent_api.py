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

"""The kexec extension loaded by a real agent process, over its API."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import requests
import testtools

from ironic_kexec import protocol
from tests.unit.agent import test_discovery
from tests.unit.agent import trees

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
START_TIMEOUT = 60


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class TestAgentAPI(testtools.TestCase):

    def setUp(self):
        super(TestAgentAPI, self).setUp()
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.port = _free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        # The API refuses commands without the token Ironic would hand
        # out at lookup; a standalone agent takes it from its options.
        self.token = uuid.uuid4().hex
        self.log = open(os.path.join(self.tmp, 'agent.log'), 'wb')
        self.addCleanup(self.log.close)
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'tests.functional.agent_standalone',
             '--listen_host', '127.0.0.1',
             '--listen_port', str(self.port),
             '--advertise_host', '127.0.0.1',
             '--api_url', 'http://127.0.0.1:1',
             '--disk_wait_attempts', '0',
             '--agent_token', self.token,
             '--noenable_auto_tls'],
            cwd=TOP, stdout=self.log, stderr=subprocess.STDOUT)
        self.addCleanup(self._stop)
        self._wait_for_api()

    def _stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _agent_log(self):
        self.log.flush()
        with open(self.log.name, 'rb') as f:
            return f.read()[-4000:].decode('utf-8', 'replace')

    def _wait_for_api(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.fail('agent exited with %s:\n%s'
                          % (self.proc.returncode, self._agent_log()))
            try:
                requests.get(self.url + '/v1/status', timeout=2)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        self.fail('agent API not up after %ss:\n%s'
                  % (START_TIMEOUT, self._agent_log()))

    def command(self, name, **params):
        return requests.post(self.url + '/v1/commands/',
                             params={'wait': 'true',
                                     'agent_token': self.token},
                             json={'name': protocol.command_name(name),
                                   'params': params},
                             timeout=30)

    def test_get_boot_entry(self):
        root = trees.build(
            os.path.join(self.tmp, 'root'),
            test_discovery.debian_tree(test_discovery.debian_grub_cfg()))
        resp = self.command(protocol.GET_BOOT_ENTRY, root_path=root,
                            extra_args='console=ttyS0')
        self.assertEqual(200, resp.status_code, resp.text)
        body = resp.json()
        self.assertEqual('SUCCEEDED', body['command_status'], body)
        self.assertEqual(
            {'kernel': '/boot/vmlinuz-6.1.0-13-amd64',
             'initrd': '/boot/initrd.img-6.1.0-13-amd64',
             'initrds': ['/boot/initrd.img-6.1.0-13-amd64'], 'uki': None,
             'skipped': [],
             'cmdline': 'BOOT_IMAGE=/boot/vmlinuz-6.1.0-13-amd64 '
                        'root=UUID=%s ro quiet console=ttyS0'
                        % test_discovery.UUID,
             'source': 'grub', 'root_device': None},
            body['command_result'])

    def test_unsafe_path_reason_over_api(self):
        # Nothing else to boot: the refusal is the reason.
        files = {'/etc/os-release': trees.OS_RELEASE_DEBIAN,
                 '/vmlinuz': trees.Link('/../../etc/passwd')}
        root = trees.build(os.path.join(self.tmp, 'root'), files)
        resp = self.command(protocol.GET_BOOT_ENTRY, root_path=root)
        body = resp.json()
        self.assertEqual('FAILED', body['command_status'], body)
        self.assertEqual(protocol.REASON_UNSAFE_PATH,
                         protocol.reason_from_error(body['command_error']))
