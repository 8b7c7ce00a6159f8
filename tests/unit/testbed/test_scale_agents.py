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

"""The scale harness's simulated agent: IPA's command API and answers."""

import asyncio
import json
import shutil
import tempfile
import unittest

from ironic_kexec import protocol
from testbed.scale import agents


class _FakeSim(object):
    """The parts of Simulation an Agent uses, without sockets."""

    def __init__(self):
        self.loop = asyncio.get_event_loop()
        self.handlers = agents.HANDLERS
        self.write_time = 0.0
        self.load_time = 0.0
        self.power_off_time = 0.0
        self.execute_time = 0.05
        self.api_port = None
        self.bmc_control_port = None
        # Long enough that no instance opens a real port in a test.
        self.boot_time = 600.0
        self.told_bmc = []

    def tell_bmc(self, port, event):
        self.told_bmc.append((port, event))

    def write_time_of(self, machine):
        return self.write_time


class AgentApiTestCase(unittest.TestCase):

    def setUp(self):
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.sim = _FakeSim()
        spec = {'index': 0, 'uuid': 'u-1', 'mac': '52:54:00:00:00:01',
                'bmc_port': 1, 'agent_port': 2, 'instance_port': 3}
        self.machine = agents.Machine(self.sim, spec)
        self.agent = agents.Agent(self.machine)
        self.agent.token = 'secret'
        self.machine.agent = self.agent

    def tearDown(self):
        for task in asyncio.all_tasks(self.loop):
            task.cancel()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()
        asyncio.set_event_loop(None)

    def _post(self, name, params=None, wait=True, token='secret'):
        target = '/v1/commands/?wait=%s&agent_token=%s' % (
            str(wait).lower(), token)
        return self.loop.run_until_complete(self.agent.handle(
            'POST', target, {'name': name, 'params': params or {}}))

    def _list(self):
        return self.loop.run_until_complete(self.agent.handle(
            'GET', '/v1/commands/?agent_token=secret', None))

    def test_token_required(self):
        status, body = self._post('deploy.get_deploy_steps', token='bad')
        self.assertEqual(401, status)
        self.assertIn('faultstring', body)

    def test_get_deploy_steps(self):
        status, body = self._post('deploy.get_deploy_steps',
                                  {'node': {}, 'ports': []})
        self.assertEqual(200, status)
        self.assertEqual(agents.SUCCEEDED, body['command_status'])
        self.assertEqual('get_deploy_steps', body['command_name'])
        steps = body['command_result']['deploy_steps']
        self.assertIn('write_image', [s['step'] for s in
                                      steps['GenericHardwareManager']])
        self.assertEqual(
            {'id', 'command_name', 'command_status', 'command_error',
             'command_result'}, set(body))

    def test_async_command_runs_then_lists(self):
        self.sim.write_time = 0.05
        status, body = self._post(
            'deploy.execute_deploy_step',
            {'step': {'step': 'write_image', 'interface': 'deploy'},
             'node': {}, 'ports': []}, wait=False)
        self.assertEqual(200, status)
        self.assertEqual(agents.RUNNING, body['command_status'])
        # Busy while it runs, as IPA: 409 and "Agent is busy".
        status, busy = self._post('standby.get_partition_uuids')
        self.assertEqual(409, status)
        self.assertIn('agent is busy', busy['faultstring'].lower())
        self.loop.run_until_complete(asyncio.sleep(0.1))
        status, listing = self._list()
        self.assertEqual(200, status)
        self.assertEqual(agents.SUCCEEDED,
                         listing['commands'][-1]['command_status'])
        self.assertTrue(self.machine.written)
        self.assertTrue(self.agent.heartbeat_forced)

    def test_unknown_extension_and_command(self):
        self.assertEqual(404, self._post('nope.thing')[0])
        status, body = self._post('kexec.nope')
        self.assertEqual(400, status)
        self.assertIn('unknown command', body['faultstring'].lower())

    def test_kexec_load_then_execute(self):
        status, body = self._post(
            protocol.command_name(protocol.LOAD),
            {protocol.PARAM_PROTOCOL_VERSION: protocol.PROTOCOL_VERSION})
        self.assertEqual(agents.SUCCEEDED, body['command_status'])
        result = body['command_result']
        for field in protocol.BOOT_ENTRY_FIELDS + protocol.LOAD_FIELDS:
            self.assertIn(field, result)
        self.assertEqual(protocol.PROTOCOL_VERSION,
                         result[protocol.FIELD_PROTOCOL_VERSION])
        status, body = self._post(protocol.command_name(protocol.EXECUTE),
                                  {protocol.PARAM_DELAY: 0})
        self.assertEqual(agents.SUCCEEDED, body['command_status'])
        self.assertEqual({protocol.FIELD_DELAY: 0}, body['command_result'])
        # After the delay the agent is gone and the instance boots.
        self.loop.run_until_complete(asyncio.sleep(0.1))
        self.assertFalse(self.agent.alive)
        self.assertEqual(1, self.machine.counts['kexec'])

    def test_kexec_load_refuses_unserved_version(self):
        status, body = self._post(protocol.command_name(protocol.LOAD),
                                  {protocol.PARAM_PROTOCOL_VERSION: 99})
        self.assertEqual(agents.FAILED, body['command_status'])
        self.assertEqual(protocol.REASON_PROTOCOL_MISMATCH,
                         protocol.reason_from_error(body['command_error']))

    def test_execute_without_load(self):
        status, body = self._post(protocol.command_name(protocol.EXECUTE),
                                  {protocol.PARAM_DELAY: 0})
        self.assertEqual(protocol.REASON_NOT_LOADED,
                         protocol.reason_from_error(body['command_error']))

    def test_power_off_tells_the_bmc(self):
        self._post('standby.power_off')
        self.loop.run_until_complete(asyncio.sleep(0.05))
        self.assertEqual([(1, 'off')], self.sim.told_bmc)
        self.assertFalse(self.agent.alive)

    def test_counts_requests(self):
        self._post('deploy.get_deploy_steps')
        self._list()
        self.assertEqual(1, self.machine.counts[
            'agent_POST_deploy.get_deploy_steps'])
        self.assertEqual(1, self.machine.counts['agent_GET_commands'])


class CertificateTestCase(unittest.TestCase):

    def test_self_signed_for_loopback(self):
        from cryptography import x509
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        pem, cert_path, key_path = agents.make_certificate(tmp, 'n1')
        cert = x509.load_pem_x509_certificate(pem.encode())
        san = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName)
        self.assertTrue(san.critical)
        self.assertEqual('127.0.0.1', str(san.value.get_values_for_type(
            x509.IPAddress)[0]))


class BmcLoopTestCase(unittest.TestCase):

    def test_loop_survives_pyghmi_errors(self):
        from testbed.scale import bmcs
        calls = []

        def listen(timeout):
            calls.append(timeout)
            if len(calls) < 3:
                raise AttributeError("'ServerSession' object has no "
                                     "attribute 'sessionless_data'")
            raise KeyboardInterrupt()

        counts = {}
        self.assertRaises(KeyboardInterrupt, bmcs.serve, counts, listen)
        self.assertEqual(3, len(calls))
        self.assertEqual(2, counts['loop_errors'])


class HttpTestCase(unittest.TestCase):

    def test_request_round_trip(self):
        loop = asyncio.new_event_loop()
        self.addCleanup(loop.close)
        reader = asyncio.StreamReader(loop=loop)
        body = json.dumps({'name': 'x', 'params': {}}).encode()
        reader.feed_data(b'POST /v1/commands/?wait=true HTTP/1.1\r\n'
                         b'Content-Length: %d\r\n\r\n' % len(body) + body)
        reader.feed_eof()
        method, target, parsed = loop.run_until_complete(
            agents.read_request(reader))
        self.assertEqual('POST', method)
        self.assertEqual('/v1/commands/?wait=true', target)
        self.assertEqual({'name': 'x', 'params': {}}, parsed)

    def test_dechunk(self):
        self.assertEqual(b'hello world',
                         agents._dechunk(b'5\r\nhello\r\n6\r\n world\r\n'
                                         b'0\r\n\r\n'))


if __name__ == '__main__':
    unittest.main()


class WriteSpreadTestCase(unittest.TestCase):

    def test_writes_end_spread_node_by_node(self):
        loop = asyncio.new_event_loop()
        self.addCleanup(loop.close)
        asyncio.set_event_loop(loop)
        specs = [{'index': i, 'uuid': str(i), 'mac': str(i), 'bmc_port': i,
                  'agent_port': i, 'instance_port': i} for i in range(4)]
        sim = agents.Simulation(specs, 1, 2, write_time=5.0,
                                write_spread=20.0)
        self.assertEqual([5.0, 10.0, 15.0, 20.0],
                         [sim.write_time_of(m) for m in sim.machines])


class ProcessesTestCase(unittest.TestCase):
    """Nodes shared between API and BMC processes (testbed.scale.run)."""

    def test_bmc_ranges_cover_every_node_once(self):
        from testbed.scale import run
        for count, processes in ((500, 5), (20, 3), (7, 1), (3, 5)):
            ranges = run.bmc_ranges(count, processes)
            covered = [i for first, n in ranges
                       for i in range(first, first + n)]
            self.assertEqual(list(range(count)), covered)
            self.assertLessEqual(len(ranges), processes)

    def test_node_specs_spread(self):
        from testbed.scale import run

        class Ports(object):
            apis = [100, 130]
            bmc_controls = [104, 161, 162]
            bmc = list(range(1000, 1010))
            agent = list(range(2000, 2010))
            instance = list(range(3000, 3010))

        specs = run.node_specs(10, Ports, ['kexec', 'direct'])
        self.assertEqual([100, 130] * 5, [s['api_port'] for s in specs])
        self.assertEqual([104] * 4 + [161] * 4 + [162] * 2,
                         [s['bmc_control_port'] for s in specs])
