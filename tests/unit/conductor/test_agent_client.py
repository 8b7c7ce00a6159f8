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

import json
import time
from unittest import mock

from ironic.common import exception
from ironic.conductor import task_manager
from ironic.drivers.modules import agent_client as ironic_agent_client
import requests

from ironic_kexec import agent_client
from tests.unit.conductor import base


class KexecAgentClientTestCase(base.KexecTestCase):

    def setUp(self):
        super().setUp()
        self.node = self.create_node()
        self.client = agent_client.KexecAgentClient()

    def test_get_client_replaces_ironic_cached_client(self):
        with task_manager.acquire(self.context, self.node.uuid) as task:
            stock = ironic_agent_client.get_client(task)
            client = agent_client.get_client(task)
            self.assertIsInstance(client, agent_client.KexecAgentClient)
            self.assertIsNot(stock, client)
            # Ironic's own code now shares it.
            self.assertIs(client, ironic_agent_client.get_client(task))
            self.assertIs(client, agent_client.get_client(task))

    def test_get_boot_entry(self):
        result = self.client.kexec_get_boot_entry(self.node,
                                                  {'root_path': '/mnt'})
        self.assertEqual('SUCCEEDED', result['command_status'])
        self.assertEqual('bls', result['command_result']['source'])
        self.assertEqual([('kexec.get_boot_entry', {'root_path': '/mnt'},
                           'true')], self.agent.posts)

    def test_load_waits_for_completion(self):
        self.agent.load_running_polls = 2
        result = self.client.kexec_load(self.node, {'root_uuid': 'x'})
        self.assertEqual('SUCCEEDED', result['command_status'])
        self.assertEqual('/boot/vmlinuz-6.1.0-28-amd64',
                         result['command_result']['kernel'])

    def test_load_timeout(self):
        self.agent.load_running_polls = 10 ** 6
        self.assertRaises(exception.AgentCommandTimeout,
                          self.client.kexec_load, self.node, {}, timeout=0.2)

    def assertWithin(self, seconds, start):
        self.assertLess(time.monotonic() - start, seconds + 0.5)
        # No request was given more time than was left.
        self.assertTrue(all(t is not None and t <= seconds
                            for t in self.agent.timeouts), self.agent.timeouts)

    def test_load_silent_agent_bounded(self):
        # A paused VM: Ironic's own client would wait [agent]command_timeout
        # per request and retry, minutes in all.
        self.agent.silent = True
        start = time.monotonic()
        self.assertRaises(exception.AgentConnectionFailed,
                          self.client.kexec_load, self.node, {}, timeout=1)
        self.assertWithin(1, start)

    def test_load_agent_silent_while_loading_bounded(self):
        self.agent.silent_after_load = True
        self.agent.load_running_polls = 10 ** 6
        start = time.monotonic()
        self.assertRaises(exception.AgentConnectionFailed,
                          self.client.kexec_load, self.node, {}, timeout=1)
        self.assertWithin(1, start)
        self.assertEqual(['kexec.load'], self.agent.command_names())

    def test_load_timeout_from_option(self):
        self.config(load_timeout=1, group='kexec')
        self.agent.silent = True
        start = time.monotonic()
        self.assertRaises(exception.AgentConnectionFailed,
                          self.client.kexec_load, self.node, {})
        self.assertWithin(1, start)

    def test_load_polling_survives_a_lost_answer(self):
        self.agent.load_running_polls = 2
        self.agent.lost_gets = 2
        result = self.client.kexec_load(self.node, {}, timeout=5)
        self.assertEqual('SUCCEEDED', result['command_status'])

    def test_load_leaves_shared_session_unbounded(self):
        self.client.kexec_load(self.node, {}, timeout=5)
        self.assertIs(self.agent, self.client.session)
        self.client.get_commands_status(self.node)
        self.assertEqual(60, self.agent.timeouts[-1])

    def test_execute_silent_agent_bounded(self):
        self.config(command_timeout=1, group='agent')
        self.agent.silent = True
        start = time.monotonic()
        self.assertRaises(exception.AgentConnectionFailed,
                          self.client.kexec_execute, self.node, 1)
        self.assertWithin(1, start)
        self.assertEqual(['kexec.execute'], self.agent.command_names())

    def test_execute_not_retried(self):
        self.agent.execute_drops_reply = True
        self.assertRaises(exception.AgentConnectionFailed,
                          self.client.kexec_execute, self.node, 1)
        self.assertEqual(['kexec.execute'], self.agent.command_names())

    def test_execute_sends_delay_and_waits(self):
        self.client.kexec_execute(self.node, 3)
        self.assertEqual([('kexec.execute', {'delay': 3}, 'true')],
                         self.agent.posts)

    def test_agent_answers(self):
        self.assertTrue(self.client.agent_answers(self.node, 1))
        self.agent.answering = False
        self.assertFalse(self.client.agent_answers(self.node, 1))

    def test_agent_answers_sends_token_and_timeout(self):
        with mock.patch.object(self.agent, 'get', autospec=True) as get:
            self.assertTrue(self.client.agent_answers(self.node, 2.5))
        get.assert_called_once_with(
            base.AGENT_URL + '/v1/commands/',
            params={'agent_token': 'magic-token'}, verify=True, timeout=2.5)

    def test_agent_silent_is_gone(self):
        for exc in (requests.ReadTimeout, requests.ConnectTimeout,
                    requests.ConnectionError):
            with mock.patch.object(self.agent, 'get', autospec=True,
                                   side_effect=exc('x')):
                self.assertFalse(self.client.agent_answers(self.node, 1))

    def test_agent_odd_error_is_not_gone(self):
        with mock.patch.object(self.agent, 'get', autospec=True,
                               side_effect=requests.TooManyRedirects('x')):
            self.assertTrue(self.client.agent_answers(self.node, 1))

    def test_agent_without_url_is_gone(self):
        self.node.del_driver_internal_info('agent_url')
        self.assertFalse(self.client.agent_answers(self.node, 1))
        self.assertEqual([], self.agent.posts)

    def test_command_body(self):
        self.client.kexec_load(self.node, {'extra_args': 'quiet'})
        name, params, wait = self.agent.posts[0]
        self.assertEqual('kexec.load', name)
        self.assertEqual({'extra_args': 'quiet'}, json.loads(
            json.dumps(params)))
        self.assertEqual('false', wait)
