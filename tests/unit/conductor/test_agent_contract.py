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

"""The conductor's client against the agent's real API and extension.

IPA's WSGI application and the real ``kexec`` extension answer through
werkzeug's test client, in place of the HTTP connection to a node. Only
commands that touch no disk and no kernel are sent: ``get_boot_entry`` on
a temporary tree, and commands the agent must refuse. ``execute`` is never
sent to the real extension.
"""

import json
import os
import shutil
import tempfile
from unittest import mock
from urllib import parse

from ironic.common import exception
from ironic.conductor import task_manager
from ironic_python_agent.api import app as ipa_app
from ironic_python_agent.extensions import base as ipa_base
from stevedore import extension
from werkzeug import test as werkzeug_test

from ipa_kexec import extension as kexec_extension
from ironic_kexec import agent_client
from ironic_kexec import errors
from ironic_kexec import handover
from ironic_kexec import policy
from ironic_kexec import protocol
from ironic_kexec import record
from tests.unit.conductor import base
from tests.unit.conductor import fakes

TOKEN = 'magic-token'


class _Agent(ipa_base.ExecuteCommandMixin):
    """The part of IronicPythonAgent that its API application uses."""

    def __init__(self, extensions):
        super().__init__()
        self.ext_mgr = extension.ExtensionManager.make_test_instance(
            [extension.Extension(name, None, None, obj)
             for name, obj in extensions.items()])

    def validate_agent_token(self, token):
        return token == TOKEN

    def list_command_results(self):
        return list(self.command_results.values())


class _WSGISession(object):
    """A requests.Session that calls a WSGI application in process."""

    def __init__(self, app):
        self.headers = {}
        self.client = werkzeug_test.Client(app)

    def mount(self, prefix, adapter):
        pass

    def _response(self, response):
        return fakes.FakeResponse(response.status_code,
                                  json.loads(response.get_data()))

    def post(self, url, params=None, data=None, verify=None, timeout=None):
        return self._response(self.client.post(
            parse.urlparse(url).path, query_string=params, data=data,
            content_type='application/json'))

    def get(self, url, params=None, verify=None, timeout=None):
        return self._response(self.client.get(
            parse.urlparse(url).path, query_string=params))


class AgentContractTestCase(base.KexecTestCase):

    def setUp(self):
        super().setUp()
        self.node = self.create_node()

    def client(self, extensions):
        app = ipa_app.Application(_Agent(extensions), {})
        client = agent_client.KexecAgentClient()
        client.session = _WSGISession(app)
        return client

    def image_tree(self):
        root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, root)
        os.makedirs(os.path.join(root, 'boot'))
        for name in ('vmlinuz-6.1.0-28-amd64', 'initrd.img-6.1.0-28-amd64'):
            with open(os.path.join(root, 'boot', name), 'wb') as f:
                f.write(b'\0' * 16)
        return root

    def test_get_boot_entry(self):
        client = self.client({'kexec': kexec_extension.KexecExtension()})
        result = client.kexec_get_boot_entry(
            self.node, {protocol.PARAM_ROOT_PATH: self.image_tree(),
                        protocol.PARAM_ROOT_UUID: base.ROOT_UUID,
                        protocol.PARAM_EXTRA_ARGS: 'console=ttyS0'})
        self.assertEqual('SUCCEEDED', result['command_status'],
                         result.get('command_error'))
        entry = result['command_result']
        self.assertEqual(set(protocol.BOOT_ENTRY_FIELDS), set(entry))
        self.assertEqual('/boot/vmlinuz-6.1.0-28-amd64',
                         entry[protocol.FIELD_KERNEL])
        self.assertIn(entry[protocol.FIELD_SOURCE], protocol.SOURCES)
        self.assertIn('console=ttyS0', entry[protocol.FIELD_CMDLINE])
        self.assertIn(base.ROOT_UUID, entry[protocol.FIELD_CMDLINE])

    def test_agent_reason_code_reaches_the_conductor(self):
        client = self.client({'kexec': kexec_extension.KexecExtension()})
        # No root UUID and no fstab: the agent cannot name the root.
        result = client.kexec_get_boot_entry(
            self.node, {protocol.PARAM_ROOT_PATH: self.image_tree()})
        self.assertEqual('FAILED', result['command_status'])
        not_done = handover._not_done_from_failed_command(result)
        self.assertEqual(protocol.REASON_NO_ROOT, not_done.reason)
        self.assertIn('root', not_done.message)
        self.assertNotIn('{', not_done.message)

    def test_no_extension_is_agent_unsupported(self):
        client = self.client({})
        with self.assertRaises(errors.NotKexec) as ctx:
            handover.load(_Task(self.node), client, {},
                          record.Attempt('auto'))
        self.assertEqual(protocol.REASON_AGENT_UNSUPPORTED,
                         ctx.exception.reason)

    def test_refused_parameters_are_agent_error(self):
        client = self.client({'kexec': kexec_extension.KexecExtension()})
        self.assertRaises(exception.AgentAPIError, client.kexec_load,
                          self.node, {'no_such_parameter': 'x'})
        with self.assertRaises(errors.NotKexec) as ctx:
            handover.load(_Task(self.node), client,
                          {protocol.PARAM_FILE_SYSCALL: 'sometimes'},
                          record.Attempt('auto'))
        self.assertEqual(protocol.REASON_AGENT_ERROR, ctx.exception.reason)
        self.assertIn('file_syscall', ctx.exception.message)

    def test_get_version(self):
        client = self.client({'kexec': kexec_extension.KexecExtension()})
        result = client._command(
            node=self.node, method=protocol.command_name(protocol.GET_VERSION),
            params={}, wait=True)
        self.assertEqual('SUCCEEDED', result['command_status'])
        self.assertEqual(
            {protocol.FIELD_PROTOCOL_VERSION: protocol.PROTOCOL_VERSION,
             protocol.FIELD_MIN_PROTOCOL_VERSION:
                 protocol.MIN_PROTOCOL_VERSION},
            result['command_result'])

    def test_conductor_newer_than_the_agent(self):
        # Both sides share one protocol module here: a conductor one
        # version ahead is made by its parameters, one of which this
        # agent cannot know.
        client = self.client({'kexec': kexec_extension.KexecExtension()})
        attempt = record.Attempt('auto')
        newer = protocol.PROTOCOL_VERSION + 1
        with self.assertRaises(errors.NotKexec) as ctx:
            handover.load(_Task(self.node), client,
                          {protocol.PARAM_PROTOCOL_VERSION: newer,
                           protocol.PARAM_FILE_SYSCALL: 'auto',
                           'parameter_of_the_future': True}, attempt)
        self.assertEqual(protocol.REASON_PROTOCOL_MISMATCH,
                         ctx.exception.reason)
        # The agent's message names both versions.
        self.assertIn('conductor speaks kexec protocol version %d' % newer,
                      ctx.exception.message)
        self.assertIn('serves versions %d to %d'
                      % (protocol.MIN_PROTOCOL_VERSION,
                         protocol.PROTOCOL_VERSION), ctx.exception.message)
        self.assertFalse(ctx.exception.executed)
        self.assertEqual(protocol.PROTOCOL_VERSION,
                         attempt.agent_protocol_version)

    def test_agent_of_version_1(self):
        # An agent of version 1 checks its parameters as this one does,
        # without deny and protocol_version.
        v1_params = tuple(
            name for name in kexec_extension.LOAD_PARAMS
            if name not in (protocol.PARAM_DENY,
                            protocol.PARAM_PROTOCOL_VERSION))
        client = self.client({'kexec': kexec_extension.KexecExtension()})
        attempt = record.Attempt('auto')
        with mock.patch.object(kexec_extension, 'LOAD_PARAMS', v1_params):
            for params in (
                    {protocol.PARAM_FILE_SYSCALL: 'auto'},
                    {protocol.PARAM_FILE_SYSCALL: 'auto',
                     protocol.PARAM_DENY: [{'id': 'gpu',
                                            'pci_ids': ['10de:*']}]}):
                params[protocol.PARAM_PROTOCOL_VERSION] = (
                    protocol.PROTOCOL_VERSION)
                with self.assertRaises(errors.NotKexec) as ctx:
                    handover.load(_Task(self.node), client, params, attempt)
                self.assertEqual(protocol.REASON_PROTOCOL_MISMATCH,
                                 ctx.exception.reason)
                self.assertIn('the agent speaks kexec protocol version 1, '
                              'this conductor version %d'
                              % protocol.PROTOCOL_VERSION,
                              ctx.exception.message)
                self.assertIn('IPA_KEXEC_VERSION', ctx.exception.message)
                self.assertEqual(1, attempt.agent_protocol_version)

    def test_conductor_parameters_are_those_the_agent_takes(self):
        # What common_load_params sends, this release's agent validates.
        with task_manager.acquire(self.context, self.node.uuid) as task:
            params = policy.load_params(task)
        self.assertEqual(protocol.PROTOCOL_VERSION,
                         params[protocol.PARAM_PROTOCOL_VERSION])
        kexec_extension._validate_load(None, **params)


class AgentVersionTestCase(base.KexecTestCase):
    """What the conductor makes of the version a load result reports."""

    def setUp(self):
        super().setUp()
        self.node = self.create_node()
        self.client = agent_client.KexecAgentClient()

    def load(self, params=None):
        attempt = record.Attempt('auto')
        params = dict(params or {}, **{protocol.PARAM_PROTOCOL_VERSION:
                                       protocol.PROTOCOL_VERSION})
        try:
            handover.load(_Task(self.node), self.client, params, attempt)
        except errors.NotKexec as e:
            return attempt, e
        return attempt, None

    def test_this_version(self):
        attempt, not_kexec = self.load()
        self.assertIsNone(not_kexec)
        self.assertEqual(protocol.PROTOCOL_VERSION,
                         attempt.agent_protocol_version)

    def test_newer_agent(self):
        self.agent.load_result[protocol.FIELD_PROTOCOL_VERSION] = (
            protocol.PROTOCOL_VERSION + 3)
        attempt, not_kexec = self.load(
            {protocol.PARAM_DENY: [{'id': 'gpu', 'pci_ids': ['10de:*']}]})
        self.assertIsNone(not_kexec)
        self.assertEqual(protocol.PROTOCOL_VERSION + 3,
                         attempt.agent_protocol_version)

    @mock.patch.object(handover.LOG, 'warning', autospec=True)
    def test_no_version_is_version_1(self, mock_warning):
        del self.agent.load_result[protocol.FIELD_PROTOCOL_VERSION]
        attempt, not_kexec = self.load()
        # Nothing this request asked for needs more than version 1.
        self.assertIsNone(not_kexec)
        self.assertEqual(1, attempt.agent_protocol_version)
        self.assertIn('taken as version 1', mock_warning.call_args[0][0])

    def test_no_version_with_deny_rules(self):
        del self.agent.load_result[protocol.FIELD_PROTOCOL_VERSION]
        attempt, not_kexec = self.load(
            {protocol.PARAM_DENY: [{'id': 'gpu', 'pci_ids': ['10de:*']}]})
        # It cannot have checked the rules: not booted.
        self.assertEqual(protocol.REASON_PROTOCOL_MISMATCH,
                         not_kexec.reason)
        self.assertIn('this deploy needs version 2', not_kexec.message)
        self.assertEqual(1, attempt.agent_protocol_version)
        # The kernel was loaded, and is in the record as such.
        self.assertEqual(fakes.KERNEL, attempt.entry[protocol.FIELD_KERNEL])

    def test_malformed_version(self):
        for junk in ('2', 0, True, [2]):
            self.agent.load_result[protocol.FIELD_PROTOCOL_VERSION] = junk
            attempt, not_kexec = self.load()
            self.assertEqual(protocol.REASON_PROTOCOL_MISMATCH,
                             not_kexec.reason)
            self.assertIn('not a protocol version', not_kexec.message)
            self.assertIsNone(attempt.agent_protocol_version)

    def test_mismatch_is_recorded(self):
        self.agent.load_status = 'FAILED'
        self.agent.load_error = {
            'type': 'ProtocolMismatch', 'code': 500,
            'message': 'kexec command failed',
            'details': protocol.error_details(
                protocol.REASON_PROTOCOL_MISMATCH, 'versions differ',
                protocol_version=7)}
        attempt, not_kexec = self.load()
        self.assertEqual(protocol.REASON_PROTOCOL_MISMATCH, not_kexec.reason)
        self.assertEqual('versions differ', not_kexec.message)
        self.assertEqual(7, attempt.agent_protocol_version)
        record.fallback(self.node, attempt, not_kexec.reason,
                        not_kexec.message)
        rec = self.node.driver_internal_info[record.KEY]
        self.assertEqual(7, rec['agent_protocol_version'])
        self.assertEqual(protocol.REASON_PROTOCOL_MISMATCH, rec['reason'])


class _Task(object):

    def __init__(self, node):
        self.node = node
