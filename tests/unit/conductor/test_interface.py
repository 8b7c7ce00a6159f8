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


"""The kexec attempt's verification and recovery, shared by both
interfaces: the ``verify_kexec`` step and the periodic task that ends its
wait. The instance is a real TCP server on the loopback; the conductor's
RPC to resume a deploy is recorded instead of sent.
"""

import json
import os
import socket
import threading
import time
from unittest import mock

import fixtures
import futurist
from ironic.common import exception
from ironic.common import image_service
from ironic.common import states
from ironic.conductor import rpcapi
from ironic.conductor import steps as conductor_steps
from ironic.conductor import task_manager
from ironic.drivers.modules import deploy_utils
from ironic.drivers.modules import ipmitool
from ironic import objects
from ironic.tests.unit.objects import utils as obj_utils
from oslo_utils import uuidutils

from ironic_kexec import deploy
from ironic_kexec import interface
from ironic_kexec import policy
from ironic_kexec import protocol
from ironic_kexec import ramdisk_deploy
from ironic_kexec import record
from ironic_kexec import verify
from tests.unit.conductor import base
from tests.unit.conductor import fakes
from tests.unit.conductor import test_ramdisk_deploy


class ConductorDied(BaseException):
    """The conductor's process ends here, as a SIGKILL ends it."""


class FakeConductor(object):
    """What the periodic task asks of its conductor: its nodes.

    The real database query of ``BaseConductorManager.iter_nodes``,
    without the hash ring: this test's conductor owns every node.
    """

    def __init__(self, dbapi):
        self.dbapi = dbapi
        self.queries = []
        self.spawned = 0
        self.free_workers = 100

    def iter_nodes(self, fields=None, **kwargs):
        self.queries.append((fields, kwargs))
        columns = ['uuid', 'driver', 'conductor_group'] + list(fields or ())
        yield from self.dbapi.get_nodeinfo_list(columns=columns, **kwargs)

    def _spawn_worker(self, func, *args, **kwargs):
        # The conductor's worker pool, run in line: the unit test's
        # database is not shared between threads.
        if self.spawned >= self.free_workers:
            raise exception.NoFreeConductorWorker()
        self.spawned += 1
        return futurist.SynchronousExecutor().submit(func, *args, **kwargs)


def run_verify_step(task):
    """``verify_kexec`` as the conductor runs a deploy step; its result."""
    task.node.deploy_step = {'interface': 'deploy',
                             'step': interface.VERIFY_STEP,
                             'priority': interface.VERIFY_PRIORITY,
                             'argsinfo': None}
    result = task.driver.deploy.verify_kexec(task)
    if result == states.DEPLOYWAIT:
        # What the conductor does with a step's "deploy wait".
        task.process_event('wait')
    return result


def record_resumes(test):
    """The UUIDs of the deploys resumed during ``test``, as a list.

    Resuming is an RPC to a conductor, which a unit test has not.
    """
    resumed = []
    patcher = mock.patch.object(
        rpcapi.ConductorAPI, 'continue_node_deploy', autospec=True,
        side_effect=lambda api, ctx, uuid, topic=None: resumed.append(uuid))
    patcher.start()
    test.addCleanup(patcher.stop)
    return resumed


class Instance(object):
    """A deployed instance's port on the loopback: silent until started.

    :param banner: True to send a first byte to every connection, as SSH
        does and as ``banner:`` targets need.
    """

    def __init__(self, banner=True):
        self.banner = banner
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.port = self.sock.getsockname()[1]
        self._thread = None

    def start(self):
        self.sock.listen(16)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            with conn:
                if self.banner:
                    conn.sendall(b'SSH-2.0-instance\r\n')

    def stop(self):
        self.sock.close()


class VerificationTestCase(base.KexecTestCase):

    def setUp(self):
        super().setUp()
        self.config(verify_probe_timeout=0.5, group='kexec')
        self.instance = Instance()
        self.addCleanup(self.instance.stop)
        self.resumed = record_resumes(self)
        self.conductor = FakeConductor(self.dbapi)

    def target(self, kind='banner'):
        return '%s:127.0.0.1:%d' % (kind, self.instance.port)

    def kexec_node(self, **kwargs):
        """A node whose agent just kexec'd; verify_kexec's result."""
        driver_info = {'ipmi_address': '127.0.0.1',
                       'deploy_kernel': 'http://127.0.0.1/k',
                       'deploy_ramdisk': 'http://127.0.0.1/r',
                       'kexec_verify': self.target()}
        driver_info.update(kwargs.pop('driver_info', {}))
        node = self.create_node(driver_info=driver_info, **kwargs)
        with task_manager.acquire(self.context, node.uuid) as task:
            task.driver.deploy.tear_down_agent(task)
            result = run_verify_step(task)
        node.refresh()
        return node, result

    def run_periodic(self, iface=None):
        iface = iface or deploy.KexecDeploy()
        iface._check_kexec_handoffs(self.conductor, self.context)

    def record_of(self, node):
        node.refresh()
        return node.driver_internal_info[record.KEY]

    def expire(self, node, phase=record.VERIFY):
        """Move the deadline of the pending check to the past."""
        rec = self.record_of(node)
        rec[phase]['deadline'] = time.time() - 1
        node.set_driver_internal_info(record.KEY, rec)
        node.save()

    def events(self, node):
        return [(e.severity, e.event) for e in
                objects.NodeHistory.list_by_node_id(self.context, node.id)]

    # Verified.

    def test_verified(self):
        node, result = self.kexec_node(
            driver_info={policy.FAILURES: 2})
        self.assertEqual(states.DEPLOYWAIT, result)
        self.assertEqual(states.DEPLOYWAIT, node.provision_state)
        rec = self.record_of(node)
        self.assertEqual(record.PENDING, rec['verify']['status'])
        self.assertEqual(self.target(), rec['verify']['target'])
        self.assertEqual('driver_info/kexec_verify', rec['verify']['source'])
        self.assertAlmostEqual(rec['executed_at'] + 600,
                               rec['verify']['deadline'], delta=1)

        # Not up yet: nothing happens, the node is not even locked.
        with mock.patch.object(task_manager, 'acquire',
                               autospec=True) as acquire:
            self.run_periodic()
        acquire.assert_not_called()
        self.assertEqual([], self.resumed)

        self.instance.start()
        self.run_periodic()
        rec = self.record_of(node)
        self.assertEqual(record.VERIFIED, rec['verify']['status'])
        self.assertNotIn('deadline', rec['verify'])
        self.assertEqual(record.PATH_KEXEC, rec['path'])
        self.assertGreater(rec['timings']['verify'], 0)
        self.assertEqual(rec['timings']['verify'], rec['verify']['seconds'])
        self.assertEqual([node.uuid], self.resumed)
        # A verified handoff closes the breaker's count.
        self.assertNotIn(policy.FAILURES, node.driver_info)
        severity, event = self.events(node)[-1]
        self.assertEqual('INFO', severity)
        self.assertIn('verified', event)
        self.assertIn(self.target(), event)
        self.assertEqual([], self.bmc.actions)

    def test_tcp_target_needs_no_banner(self):
        self.instance.banner = False
        node, _result = self.kexec_node(
            driver_info={'kexec_verify': self.target('tcp')})
        self.instance.start()
        self.run_periodic()
        self.assertEqual(record.VERIFIED,
                         self.record_of(node)['verify']['status'])

    def test_silent_instance_is_not_verified_by_banner(self):
        # A proxy (QEMU's user network, NAT) accepts on the instance's
        # behalf: only a first byte proves the instance.
        self.instance.banner = False
        node, _result = self.kexec_node()
        self.instance.start()
        self.run_periodic()
        self.assertEqual(record.PENDING,
                         self.record_of(node)['verify']['status'])
        self.assertEqual([], self.resumed)

    def test_instance_info_wins(self):
        other = Instance()
        self.addCleanup(other.stop)
        node, _result = self.kexec_node(
            instance_info={'image_source': 'http://127.0.0.1/img',
                           'kexec_verify': 'tcp:%d' % other.port,
                           'kexec_verify_address': '127.0.0.1'})
        rec = self.record_of(node)
        self.assertEqual('tcp:127.0.0.1:%d' % other.port,
                         rec['verify']['target'])
        self.assertIn('instance_info/kexec_verify', rec['verify']['source'])
        self.assertIn('instance_info/kexec_verify_address',
                      rec['verify']['source'])

    # Not verified: recovery through the BMC.

    def test_not_verified_recovered(self):
        node, _result = self.kexec_node()
        self.expire(node)
        self.run_periodic()

        rec = self.record_of(node)
        self.assertEqual(record.PATH_POWER_CYCLE, rec['path'])
        self.assertEqual(protocol.REASON_NOT_VERIFIED, rec['reason'])
        self.assertEqual(record.NOT_VERIFIED, rec['verify']['status'])
        self.assertEqual(record.PENDING, rec['recovery']['status'])
        self.assertEqual(self.target(), rec['recovery']['target'])
        # Power cycled through the BMC; still waiting, still not active.
        self.assertEqual([states.REBOOT], self.bmc.actions)
        self.assertEqual(states.DEPLOYWAIT, node.provision_state)
        self.assertEqual([], self.resumed)
        self.assertEqual(1, node.driver_info[policy.FAILURES])
        severity, event = self.events(node)[-1]
        self.assertEqual('WARNING', severity)
        self.assertIn('not_verified', event)
        self.assertIn('power cycling', event)

        self.instance.start()
        self.run_periodic()
        rec = self.record_of(node)
        self.assertEqual(record.VERIFIED, rec['recovery']['status'])
        self.assertGreaterEqual(rec['timings']['recovery'], 0)
        self.assertEqual([node.uuid], self.resumed)
        severity, event = self.events(node)[-1]
        self.assertEqual('INFO', severity)
        self.assertIn('recovered by a power cycle', event)
        # Not verified, recovered, and never powered again.
        self.assertEqual([states.REBOOT], self.bmc.actions)

    def test_recovery_not_verified_still_active(self):
        node, _result = self.kexec_node()
        self.expire(node)
        self.run_periodic()
        self.expire(node, record.RECOVERY)
        self.run_periodic()
        rec = self.record_of(node)
        self.assertEqual(record.NOT_VERIFIED, rec['recovery']['status'])
        # "auto": as the stock deploy, which never checks, it goes on.
        self.assertEqual([node.uuid], self.resumed)
        self.assertEqual([states.REBOOT], self.bmc.actions)
        severity, event = self.events(node)[-1]
        self.assertEqual('WARNING', severity)
        self.assertIn('did not answer', event)

    def test_recovery_bmc_fails(self):
        node, _result = self.kexec_node()
        self.expire(node)
        with mock.patch.object(ipmitool.IPMIPower, 'reboot',
                               side_effect=RuntimeError('BMC unreachable')):
            self.run_periodic()
        node.refresh()
        self.assertEqual(states.DEPLOYFAIL, node.provision_state)
        self.assertIn('BMC unreachable', node.last_error)
        self.assertIn('did not answer', node.last_error)
        rec = self.record_of(node)
        self.assertEqual(record.NOT_VERIFIED, rec['recovery']['status'])
        self.assertEqual([], self.resumed)

    def test_required_fails_and_powers_off(self):
        node, _result = self.kexec_node(
            driver_info={'kexec_mode': 'required'})
        self.expire(node)
        self.run_periodic()
        node.refresh()
        self.assertEqual(states.DEPLOYFAIL, node.provision_state)
        self.assertIn('not_verified', node.last_error)
        rec = self.record_of(node)
        self.assertEqual(record.PATH_FAILED, rec['path'])
        self.assertEqual(protocol.REASON_NOT_VERIFIED, rec['reason'])
        self.assertNotIn('recovery', rec)
        # No power cycle to the instance: powered off, and left off.
        self.assertNotIn(states.REBOOT, self.bmc.actions)
        self.assertEqual(states.POWER_OFF, self.bmc.state)
        self.assertEqual([], self.resumed)
        self.assertEqual(1, node.driver_info[policy.FAILURES])

    # Nothing to verify.

    def test_no_address_is_unknown(self):
        node, result = self.kexec_node(driver_info={'kexec_verify':
                                                    'tcp:22'})
        self.assertIsNone(result)
        self.assertEqual(states.DEPLOYING, node.provision_state)
        rec = self.record_of(node)
        self.assertEqual(record.UNKNOWN, rec['verify']['status'])
        self.assertIn('no address', rec['verify']['message'])
        self.assertEqual(record.PATH_KEXEC, rec['path'])
        severity, event = self.events(node)[-1]
        self.assertEqual('INFO', severity)
        self.assertIn('unknown', event)

    def test_verification_off(self):
        node, result = self.kexec_node(driver_info={'kexec_verify':
                                                    'none'})
        self.assertIsNone(result)
        rec = self.record_of(node)
        self.assertEqual({'status': record.OFF,
                          'source': 'driver_info/kexec_verify'},
                         rec['verify'])

    def test_power_cycled_deploy_is_not_verified(self):
        self.agent.extensions.discard('kexec')
        node, result = self.kexec_node()
        self.assertIsNone(result)
        self.assertNotIn('verify', self.record_of(node))

    # The circuit breaker.

    def test_breaker_opens_and_resets(self):
        self.config(circuit_breaker_threshold=2, group='kexec')
        node, _result = self.kexec_node(driver_info={policy.FAILURES: 1})
        self.expire(node)
        self.run_periodic()
        node.refresh()
        self.assertEqual(2, node.driver_info[policy.FAILURES])
        events = [e for _s, e in self.events(node)]
        self.assertTrue([e for e in events if 'circuit_open' in e], events)
        self.assertTrue([e for e in events if 'baremetal node unset' in e])

        # The next deploy does not even ask the agent.
        self.agent.posts.clear()
        node2 = node
        with task_manager.acquire(self.context, node2.uuid) as task:
            task.node.provision_state = states.DEPLOYING
            task.node.set_driver_internal_info('agent_url', base.AGENT_URL)
            task.node.save()
            task.driver.deploy.tear_down_agent(task)
        rec = self.record_of(node2)
        self.assertEqual(protocol.REASON_CIRCUIT_OPEN, rec['reason'])
        self.assertIn('baremetal node unset %s --driver-info '
                      'kexec_failures' % node.uuid, rec['message'])
        self.assertNotIn('kexec.load', self.agent.command_names())

        # The operator's reset: baremetal node unset --driver-info.
        node2.refresh()
        info = dict(node2.driver_info)
        del info[policy.FAILURES]
        node2.driver_info = info
        node2.provision_state = states.DEPLOYING
        node2.set_driver_internal_info('agent_url', base.AGENT_URL)
        node2.save()
        self.agent.answering = True
        self.agent.commands.clear()
        self.agent.answers_after_execute = 1
        with task_manager.acquire(self.context, node2.uuid) as task:
            task.driver.deploy.tear_down_agent(task)
        self.assertEqual(record.PATH_KEXEC, self.record_of(node2)['path'])

    # Restarts and other conductors.

    def test_another_conductor_finishes(self):
        # Everything the wait needs is on the node: a conductor that never
        # saw this deploy (a restart, a takeover) ends it.
        node, _result = self.kexec_node()
        self.instance.start()
        self.run_periodic(deploy.KexecDeploy())
        self.assertEqual([node.uuid], self.resumed)

    def test_other_interface_nodes_left_alone(self):
        from ironic_kexec import ramdisk_deploy

        node, _result = self.kexec_node()
        self.instance.start()
        # Not even probed: every interface has a periodic task of its own.
        with mock.patch.object(verify, 'probe_all',
                               autospec=True) as probe_all:
            self.run_periodic(ramdisk_deploy.RamdiskKexecDeploy())
        probe_all.assert_not_called()
        self.assertEqual([], self.resumed)
        self.assertEqual(record.PENDING,
                         self.record_of(node)['verify']['status'])

    def test_maintenance_nodes_wait(self):
        node, _result = self.kexec_node()
        node.maintenance = True
        node.save()
        self.expire(node)
        self.run_periodic()
        self.assertEqual([], self.bmc.actions)
        self.assertEqual(record.PENDING,
                         self.record_of(node)['verify']['status'])

    # Deploys that ended while they waited.

    def assertInterrupted(self, node, phase):
        check = self.record_of(node)[phase]
        self.assertEqual(record.INTERRUPTED, check['status'])
        self.assertNotIn('deadline', check)
        self.assertIn(states.DEPLOYFAIL, check['message'])
        severity, event = self.events(node)[-1]
        self.assertEqual('WARNING', severity)
        self.assertIn('%s interrupted' % phase, event)
        self.assertEqual([], self.resumed)
        # Once: the next run finds nothing to do on the node.
        with mock.patch.object(task_manager, 'acquire',
                               autospec=True) as acquire:
            self.run_periodic()
        acquire.assert_not_called()

    def test_conductor_died_before_deploy_wait(self):
        # The record says "pending", then the conductor dies before the
        # node reaches "deploy wait"; Ironic fails the deploy when the
        # conductor comes back.
        node = self.create_node(driver_info={
            'ipmi_address': '127.0.0.1',
            'deploy_kernel': 'http://127.0.0.1/k',
            'deploy_ramdisk': 'http://127.0.0.1/r',
            'kexec_verify': self.target()})
        with task_manager.acquire(self.context, node.uuid) as task:
            task.driver.deploy.tear_down_agent(task)
            self.assertEqual(states.DEPLOYWAIT,
                             task.driver.deploy.verify_kexec(task))
            task.process_event('fail')
        self.assertEqual(record.PENDING,
                         self.record_of(node)['verify']['status'])
        self.run_periodic()
        self.assertInterrupted(node, record.VERIFY)
        self.assertEqual([], self.bmc.actions)

    def test_conductor_died_before_verify_kexec(self):
        # Killed between the kexec (tear_down_agent) and verify_kexec.
        node = self.create_node()
        with task_manager.acquire(self.context, node.uuid) as task:
            task.driver.deploy.tear_down_agent(task)
            task.process_event('fail')
        self.assertNotIn(record.VERIFY, self.record_of(node))
        self.run_periodic()
        self.assertInterrupted(node, record.VERIFY)
        self.assertEqual(record.PATH_KEXEC, self.record_of(node)['path'])

    def conductor_dies_at(self, command):
        """Deploy a node whose conductor dies when it sends ``command``.

        The conductor's process ends there (a BaseException escapes the
        plugin's error handling as a kill ends everything); the agent got
        the command. Then Ironic fails the deploy, as the conductor that
        takes the node over does.
        """
        node = self.create_node()
        handler_name = '_kexec_%s' % command
        handler = getattr(self.agent, handler_name)

        def die(result):
            handler(result)
            raise ConductorDied()

        setattr(self.agent, handler_name, die)
        with task_manager.acquire(self.context, node.uuid) as task:
            self.assertRaises(ConductorDied,
                              task.driver.deploy.tear_down_agent, task)
        node.refresh()
        with task_manager.acquire(self.context, node.uuid) as task:
            task.process_event('fail')
        return node

    def test_conductor_died_during_load(self):
        node = self.conductor_dies_at(protocol.LOAD)
        rec = self.record_of(node)
        self.assertEqual((record.PATH_HANDOFF, record.LOAD),
                         (rec['path'], rec['step']))
        self.run_periodic()
        self.assertInterrupted(node, record.LOAD)
        self.assertIn('nothing was booted',
                      self.record_of(node)[record.LOAD]['message'])
        self.assertEqual([], self.bmc.actions)

    def test_conductor_died_during_execute(self):
        node = self.conductor_dies_at(protocol.EXECUTE)
        rec = self.record_of(node)
        self.assertEqual((record.PATH_HANDOFF, record.EXECUTE),
                         (rec['path'], rec['step']))
        # What was loaded is on the record: what the instance may run.
        self.assertEqual(fakes.load_result()[protocol.FIELD_KERNEL],
                         rec['entry'][protocol.FIELD_KERNEL])
        self.run_periodic()
        self.assertInterrupted(node, record.EXECUTE)
        self.assertIn('may be running',
                      self.record_of(node)[record.EXECUTE]['message'])

    def test_handoff_step_saved_before_the_agent_is_asked(self):
        node = self.create_node()
        seen = {}
        for command in (protocol.LOAD, protocol.EXECUTE):
            name = '_kexec_%s' % command

            def snapshot(result, command=command,
                         handler=getattr(self.agent, name)):
                saved = objects.Node.get_by_uuid(self.context, node.uuid)
                rec = saved.driver_internal_info.get(record.KEY) or {}
                seen[command] = (rec.get('path'), rec.get('step'))
                handler(result)

            setattr(self.agent, name, snapshot)
        with task_manager.acquire(self.context, node.uuid) as task:
            task.driver.deploy.tear_down_agent(task)
        self.assertEqual(
            {protocol.LOAD: (record.PATH_HANDOFF, record.LOAD),
             protocol.EXECUTE: (record.PATH_HANDOFF, record.EXECUTE)}, seen)
        rec = self.record_of(node)
        self.assertEqual(record.PATH_KEXEC, rec['path'])
        self.assertNotIn('step', rec)

    def test_failed_deploy_read_once(self):
        # A failed deploy with nothing to close is read once per failure,
        # not at every run; a new failure is read again.
        self.agent.extensions.discard('kexec')
        node = self.create_node()
        with task_manager.acquire(self.context, node.uuid) as task:
            task.driver.deploy.tear_down_agent(task)
            task.process_event('fail')
        iface = deploy.KexecDeploy()
        self.run_periodic(iface)
        self.assertEqual(2, len(self.conductor.queries))
        self.run_periodic(iface)
        self.assertEqual(3, len(self.conductor.queries))
        node.refresh()
        node.last_error = 'failed again'
        node.save()
        self.run_periodic(iface)
        self.assertEqual(5, len(self.conductor.queries))

    def test_only_verify_step_nodes_read(self):
        # Nodes waiting for their agent are not read in full.
        self.create_node(
            uuid=uuidutils.generate_uuid(), name='waits-for-agent',
            provision_state=states.DEPLOYWAIT,
            deploy_step={'interface': 'deploy', 'step': 'write_image',
                         'priority': 80, 'args': {}})
        self.run_periodic()
        self.assertEqual(1, len(self.conductor.queries))
        self.assertNotIn('driver_internal_info',
                         self.conductor.queries[0][0])

    def waiting_node(self):
        """A node that waits in verify_kexec for self.instance."""
        return self.create_node(
            uuid=uuidutils.generate_uuid(), name=None,
            provision_state=states.DEPLOYWAIT,
            deploy_step={'interface': 'deploy', 'step': 'verify_kexec',
                         'priority': interface.VERIFY_PRIORITY, 'args': {}},
            driver_internal_info={record.KEY: {
                'path': record.PATH_KEXEC, 'mode': 'auto',
                'executed_at': time.time(),
                'verify': {'status': record.PENDING,
                           'target': self.target(),
                           'deadline': time.time() + 600}}})

    def test_verify_step_name(self):
        # The periodic task finds waiting nodes by this name.
        node = self.create_node()
        with task_manager.acquire(self.context, node.uuid) as task:
            steps = task.driver.deploy.get_deploy_steps(task)
        self.assertIn((interface.VERIFY_STEP, interface.VERIFY_PRIORITY),
                      [(s['step'], s['priority']) for s in steps])

    def test_answers_handled_in_workers(self):
        nodes = [self.waiting_node() for _i in range(5)]
        self.config(periodic_max_workers=3, group='conductor')
        self.instance.start()
        self.run_periodic()
        # The periodic task's own thread and two workers.
        self.assertEqual(2, self.conductor.spawned)
        self.assertEqual(sorted(n.uuid for n in nodes), sorted(self.resumed))

    def test_answers_handled_without_free_workers(self):
        nodes = [self.waiting_node() for _i in range(3)]
        self.conductor.free_workers = 0
        self.instance.start()
        self.run_periodic()
        self.assertEqual(0, self.conductor.spawned)
        self.assertEqual(sorted(n.uuid for n in nodes), sorted(self.resumed))

    def test_one_node_failing_leaves_others_checked(self):
        for _i in range(3):
            self.waiting_node()
        self.instance.start()
        real = record.verified
        calls = []

        def verified(node):
            calls.append(node.uuid)
            if len(calls) == 1:
                raise RuntimeError('database gone for a moment')
            real(node)

        with mock.patch.object(record, 'verified', autospec=True,
                               side_effect=verified):
            self.run_periodic()
        self.assertEqual(3, len(calls))
        self.assertEqual(sorted(calls[1:]), sorted(self.resumed))

    def test_failed_power_cycle_fallback_left_alone(self):
        # A deploy that failed after a fall back has no check to close.
        self.agent.extensions.discard('kexec')
        node = self.create_node()
        with task_manager.acquire(self.context, node.uuid) as task:
            task.driver.deploy.tear_down_agent(task)
            task.process_event('fail')
        before = self.record_of(node)
        with mock.patch.object(task_manager, 'acquire',
                               autospec=True) as acquire:
            self.run_periodic()
        acquire.assert_not_called()
        self.assertEqual(before, self.record_of(node))

    def test_failed_during_recovery(self):
        node, _result = self.kexec_node()
        self.expire(node)
        self.run_periodic()
        self.assertEqual(record.PENDING,
                         self.record_of(node)[record.RECOVERY]['status'])
        with task_manager.acquire(self.context, node.uuid) as task:
            task.process_event('fail')
        self.run_periodic()
        self.assertInterrupted(node, record.RECOVERY)
        self.assertEqual(record.NOT_VERIFIED,
                         self.record_of(node)[record.VERIFY]['status'])

    def test_waiting_nodes_not_interrupted(self):
        node, _result = self.kexec_node()
        self.run_periodic()
        self.assertEqual(record.PENDING,
                         self.record_of(node)['verify']['status'])

    def test_many_nodes_one_probe_round(self):
        # Silent instances cost one probe timeout together, not each.
        silent = []
        for i in range(12):
            inst = Instance(banner=False)
            inst.start()
            self.addCleanup(inst.stop)
            silent.append(inst)
            node = self.create_node(
                uuid=uuidutils.generate_uuid(), name='node-%d' % i,
                provision_state=states.DEPLOYWAIT,
                deploy_step={'interface': 'deploy', 'step': 'verify_kexec',
                             'priority': interface.VERIFY_PRIORITY,
                             'args': {}},
                driver_internal_info={record.KEY: {
                    'path': record.PATH_KEXEC, 'mode': 'auto',
                    'executed_at': time.time(),
                    'verify': {'status': record.PENDING,
                               'target': 'banner:127.0.0.1:%d' % inst.port,
                               'deadline': time.time() + 600}}})
        start = time.monotonic()
        with mock.patch.object(verify, 'probe_all', autospec=True,
                               side_effect=verify.probe_all) as probe_all:
            self.run_periodic()
        self.assertLess(time.monotonic() - start, 1.5)
        probe_all.assert_called_once_with(mock.ANY, 0.5)
        self.assertEqual(12, len(probe_all.call_args[0][0]))
        self.assertEqual([], self.resumed)
        node.refresh()
        self.assertEqual(states.DEPLOYWAIT, node.provision_state)


class BusyAgentTestCase(base.KexecTestCase):
    """A deploy step that found the agent busy runs again once it is not.

    Ironic (39.0) marks the step to run again (``AgentInProgress``) and
    then waits for that step's own agent command, which never comes.
    """

    def setUp(self):
        super().setUp()
        self.resumed = record_resumes(self)
        write_image = {'interface': 'deploy', 'step': 'write_image',
                       'priority': 80, 'args': {}}
        self.node = self.create_node(
            provision_state=states.DEPLOYWAIT,
            deploy_step={'interface': 'deploy',
                         'step': 'prepare_instance_boot',
                         'priority': 60, 'args': {}},
            driver_internal_info={'skip_current_deploy_step': False})
        self.agent.commands.extend([
            {'command_name': 'get_deploy_steps',
             'command_status': 'SUCCEEDED', 'command_result': {}},
            {'command_name': 'execute_deploy_step',
             'command_status': 'SUCCEEDED',
             'command_result': {'deploy_step': write_image}},
            {'command_name': 'collect_system_logs',
             'command_status': 'RUNNING', 'command_result': None}])

    def heartbeat(self, iface=None):
        """What a heartbeat in "deploy wait" asks of the interface."""
        with task_manager.acquire(self.context, self.node.uuid) as task:
            (iface or task.driver.deploy).process_next_step(task, 'deploy')

    def test_step_runs_again_once_agent_idle(self):
        self.heartbeat()
        self.assertEqual([], self.resumed)
        self.agent.commands[-1]['command_status'] = 'SUCCEEDED'
        self.heartbeat()
        self.assertEqual([self.node.uuid], self.resumed)

    def test_stock_interface_waits_for_ever(self):
        # What the override is for: stock Ironic never goes on.
        from ironic.drivers.modules import agent

        self.agent.commands[-1]['command_status'] = 'SUCCEEDED'
        for _ in range(3):
            self.heartbeat(agent.AgentDeploy())
        self.assertEqual([], self.resumed)

    def test_step_not_marked_to_run_again(self):
        self.node.del_driver_internal_info('skip_current_deploy_step')
        self.node.save()
        self.agent.commands[-1]['command_status'] = 'SUCCEEDED'
        self.heartbeat()
        self.assertEqual([], self.resumed)

    def test_ramdisk_kexec_too(self):
        self.agent.commands[-1]['command_status'] = 'SUCCEEDED'
        self.heartbeat(ramdisk_deploy.RamdiskKexecDeploy())
        self.assertEqual([self.node.uuid], self.resumed)


class DenyListTestCase(base.KexecTestCase):
    """Deny rules decided by the inspection data, or by the agent."""

    def setUp(self):
        super().setUp()
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'deny.json')
        with open(path, 'w') as f:
            json.dump([{'id': 'gpu-hangs', 'pci_ids': ['10de:*']},
                       {'id': 'bad-nic', 'drivers': ['badnic']}], f)
        self.config(deny_list=path, group='kexec')

    def tear_down_agent(self, node):
        with task_manager.acquire(self.context, node.uuid) as task:
            task.driver.deploy.tear_down_agent(task)
        node.refresh()
        return node.driver_internal_info[record.KEY]

    def test_denied_by_inspection_data(self):
        node = self.create_node()
        objects.NodeInventory(
            self.context, node_id=node.id, inventory_data={'interfaces': []},
            plugin_data={'pci_devices': [{'vendor_id': '10de',
                                          'product_id': '2204'}]}).create()
        rec = self.tear_down_agent(node)
        self.assertEqual(protocol.REASON_DENIED, rec['reason'])
        self.assertIn('gpu-hangs', rec['message'])
        # Decided on the conductor: the agent was never asked.
        self.assertNotIn('kexec.load', self.agent.command_names())

    def test_undecided_rules_go_to_the_agent(self):
        node = self.create_node()
        objects.NodeInventory(
            self.context, node_id=node.id, inventory_data={'interfaces': []},
            plugin_data={'pci_devices': [{'vendor_id': '8086',
                                          'product_id': '100e'}]}).create()
        self.agent.load_status = 'FAILED'
        self.agent.load_error = fakes.agent_error(
            protocol.REASON_DENIED,
            'hardware deny rule "bad-nic" matches: drivers badnic')
        rec = self.tear_down_agent(node)
        # The PCI rule did not match the inspection data; the driver rule
        # cannot be decided from it, so the agent got it, and said no.
        self.assertEqual([{'id': 'bad-nic', 'drivers': ['badnic']}],
                         self.agent.posts[0][1][protocol.PARAM_DENY])
        self.assertEqual(protocol.REASON_DENIED, rec['reason'])
        self.assertIn('bad-nic', rec['message'])
        self.assertEqual(record.PATH_POWER_CYCLE, rec['path'])


class _TemplateMixin(object):
    """Deploy templates in the database, deploy steps as Ironic runs them.

    The list ``conductor.steps`` builds from the driver and from the
    templates matching instance_info/traits, each step started as
    ``conductor.deployments.do_next_deploy_step`` starts it.
    """

    def template(self, name, mode='disabled', priority=150, args=None):
        return obj_utils.create_test_deploy_template(
            self.context, name=name, uuid=uuidutils.generate_uuid(),
            steps=[{'interface': 'deploy', 'step': policy.STEP,
                    'args': {'mode': mode} if args is None else args,
                    'priority': priority}])

    def set_steps(self, node):
        """Validate and set the node's deploy steps; the list."""
        with task_manager.acquire(self.context, node.uuid) as task:
            conductor_steps.validate_user_deploy_steps_and_templates(task)
            conductor_steps.set_node_deployment_steps(task,
                                                      skip_missing=True)
        node.refresh()
        return node.driver_internal_info['deploy_steps']

    def mode_step(self, node):
        [step] = [s for s in node.driver_internal_info['deploy_steps']
                  if s['step'] == policy.STEP]
        return step

    def run_step(self, node, step):
        with task_manager.acquire(self.context, node.uuid) as task:
            steps = task.node.driver_internal_info['deploy_steps']
            task.node.deploy_step = step
            task.node.set_driver_internal_info('deploy_step_index',
                                               steps.index(step))
            task.node.save()
            result = task.driver.deploy.execute_deploy_step(task, step)
        node.refresh()
        return result


class SetKexecModeTestCase(_TemplateMixin, base.KexecTestCase):
    """The set_kexec_mode deploy step, on deploys as Nova asks for them."""

    STEP = {'interface': 'deploy', 'step': policy.STEP,
            'args': {'mode': 'disabled'}, 'priority': 150}

    def nova_node(self, traits=None, capabilities=None, **kwargs):
        return self.create_node(
            uuid=uuidutils.generate_uuid(),
            instance_info=base.nova_instance_info(capabilities, traits),
            **kwargs)

    def tear_down_agent(self, node):
        with task_manager.acquire(self.context, node.uuid) as task:
            task.driver.deploy.tear_down_agent(task)
        node.refresh()
        return node.driver_internal_info[record.KEY]

    def test_both_interfaces_have_it_disabled(self):
        for iface in (deploy.KexecDeploy(),
                      ramdisk_deploy.RamdiskKexecDeploy()):
            [step] = [s for s in iface.deploy_steps
                      if s['step'] == policy.STEP]
            # Priority 0: only a deploy template (or the deploy request)
            # runs it.
            self.assertEqual(0, step['priority'])
            self.assertEqual('deploy', step['interface'])
            self.assertEqual({'mode'}, set(step['argsinfo']))
            self.assertTrue(step['argsinfo']['mode']['required'])

    def test_not_run_without_template(self):
        self.template('CUSTOM_KEXEC_DISABLED')
        node = self.nova_node(traits=['CUSTOM_GPU'])
        steps = self.set_steps(node)
        self.assertNotIn(policy.STEP, [s['step'] for s in steps])
        rec = self.tear_down_agent(node)
        self.assertEqual(record.PATH_KEXEC, rec['path'])
        self.assertEqual('[kexec]default_mode', rec['mode_source'])

    def test_template_disables_kexec(self):
        self.template('CUSTOM_KEXEC_DISABLED')
        self.template('CUSTOM_KEXEC_REQUIRED', mode='required')
        node = self.nova_node(traits=['CUSTOM_GPU', 'CUSTOM_KEXEC_DISABLED'],
                              capabilities={'kexec_mode': 'required'})
        steps = self.set_steps(node)
        # In Ironic's list of this deploy, before the agent is torn down.
        self.assertIn(self.STEP, steps)
        names = [s['step'] for s in steps]
        self.assertLess(names.index(policy.STEP),
                        names.index('tear_down_agent'))
        self.assertLess(names.index(policy.STEP), names.index('deploy'))

        self.assertIsNone(self.run_step(node, self.mode_step(node)))
        source = ('deploy step set_kexec_mode (deploy template '
                  'CUSTOM_KEXEC_DISABLED)')
        self.assertEqual({'mode': 'disabled', 'source': source},
                         node.driver_internal_info[policy.STEP_MODE])

        # Over the flavor's capability.
        rec = self.tear_down_agent(node)
        self.assertEqual(record.PATH_POWER_CYCLE, rec['path'])
        self.assertEqual(protocol.REASON_DISABLED, rec['reason'])
        self.assertEqual('disabled', rec['mode'])
        self.assertEqual(source, rec['mode_source'])
        self.assertNotIn('kexec.load', self.agent.command_names())

    def test_template_requires_kexec(self):
        self.template('CUSTOM_KEXEC_REQUIRED', mode='required')
        node = self.nova_node(traits=['CUSTOM_KEXEC_REQUIRED'],
                              capabilities={'kexec_mode': 'disabled'},
                              driver_info={'ipmi_address': '127.0.0.1',
                                           'deploy_kernel': 'http://h/k',
                                           'deploy_ramdisk': 'http://h/r',
                                           'kexec_mode': 'disabled'})
        self.set_steps(node)
        self.run_step(node, self.mode_step(node))
        rec = self.tear_down_agent(node)
        self.assertEqual(record.PATH_KEXEC, rec['path'])
        self.assertEqual('required', rec['mode'])
        self.assertIn('CUSTOM_KEXEC_REQUIRED', rec['mode_source'])
        self.assertEqual([], self.bmc.actions)

    def test_emergency_stop_wins(self):
        self.config(enabled=False, group='kexec')
        self.template('CUSTOM_KEXEC_REQUIRED', mode='required')
        node = self.nova_node(traits=['CUSTOM_KEXEC_REQUIRED'])
        self.set_steps(node)
        self.run_step(node, self.mode_step(node))
        rec = self.tear_down_agent(node)
        self.assertEqual(protocol.REASON_DISABLED, rec['reason'])
        self.assertEqual('[kexec]enabled', rec['mode_source'])

    def test_deploy_request_steps(self):
        # baremetal node deploy --deploy-steps, over a template's step.
        self.template('CUSTOM_KEXEC_DISABLED')
        node = self.nova_node(
            traits=['CUSTOM_KEXEC_DISABLED'],
            driver_internal_info={'user_deploy_steps': [
                {'interface': 'deploy', 'step': policy.STEP,
                 'args': {'mode': 'required'}, 'priority': 200}]})
        self.set_steps(node)
        step = self.mode_step(node)
        self.assertEqual({'mode': 'required'}, step['args'])
        self.run_step(node, step)
        rec = self.tear_down_agent(node)
        self.assertEqual('required', rec['mode'])
        self.assertEqual('deploy step set_kexec_mode (deploy steps of the '
                         'deploy request)', rec['mode_source'])

    def test_template_without_mode_refused_by_ironic(self):
        self.template('CUSTOM_KEXEC', args={})
        node = self.nova_node(traits=['CUSTOM_KEXEC'])
        e = self.assertRaises(exception.InvalidParameterValue,
                              self.set_steps, node)
        self.assertIn('mode', str(e))
        self.assertIn('CUSTOM_KEXEC', str(e))

    def test_disabled_template_step_not_run(self):
        self.template('CUSTOM_KEXEC_DISABLED', priority=0)
        node = self.nova_node(traits=['CUSTOM_KEXEC_DISABLED'])
        steps = self.set_steps(node)
        self.assertNotIn(policy.STEP, [s['step'] for s in steps])

    def test_invalid_mode_refused(self):
        self.template('CUSTOM_KEXEC_SOMETIMES', mode='sometimes')
        node = self.nova_node(traits=['CUSTOM_KEXEC_SOMETIMES'])
        self.set_steps(node)
        e = self.assertRaises(exception.InvalidParameterValue,
                              self.run_step, node, self.mode_step(node))
        self.assertIn('sometimes', str(e))
        node.refresh()
        self.assertNotIn(policy.STEP_MODE, node.driver_internal_info)

    def test_too_late_refused(self):
        # After tear_down_agent (40): kexec is decided already.
        self.template('CUSTOM_KEXEC_DISABLED', priority=30)
        node = self.nova_node(traits=['CUSTOM_KEXEC_DISABLED'])
        self.set_steps(node)
        e = self.assertRaises(exception.InvalidParameterValue,
                              self.run_step, node, self.mode_step(node))
        self.assertIn('tear_down_agent', str(e))
        self.assertIn('above 40', str(e))
        node.refresh()
        self.assertNotIn(policy.STEP_MODE, node.driver_internal_info)

    def test_validate_refuses_bad_templates(self):
        # When the deploy is requested, before anything is written.
        self.config(http_url='http://127.0.0.1:8080', group='deploy')
        self.config(http_root='/nonexistent', group='deploy')
        self.template('CUSTOM_KEXEC_SOMETIMES', mode='sometimes')
        self.template('CUSTOM_KEXEC_LATE', priority=40)
        self.template('CUSTOM_KEXEC_OFF', mode='sometimes', priority=0)
        self.template('CUSTOM_KEXEC_DISABLED')
        node = self.create_node(provision_state=states.AVAILABLE,
                                target_provision_state=None,
                                uuid=uuidutils.generate_uuid())
        obj_utils.create_test_port(self.context, node_id=node.id)
        for traits, error in (
                (['CUSTOM_KEXEC_SOMETIMES'], '"sometimes"'),
                (['CUSTOM_KEXEC_LATE'], 'above 40 in deploy template '
                                        'CUSTOM_KEXEC_LATE'),
                (['CUSTOM_KEXEC_OFF', 'CUSTOM_KEXEC_DISABLED'], None),
                (['CUSTOM_GPU'], None)):
            with task_manager.acquire(self.context, node.uuid) as task:
                task.node.instance_info = dict(task.node.instance_info,
                                               traits=traits)
                if error:
                    self.assertRaisesRegex(exception.InvalidParameterValue,
                                           error,
                                           task.driver.deploy.validate, task)
                else:
                    task.driver.deploy.validate(task)

    def test_called_directly(self):
        # Outside the conductor's deploy steps, nothing to compare with.
        node = self.nova_node()
        with task_manager.acquire(self.context, node.uuid) as task:
            task.driver.deploy.set_kexec_mode(task, mode='disabled')
        node.refresh()
        self.assertEqual({'mode': 'disabled',
                          'source': 'deploy step set_kexec_mode'},
                         node.driver_internal_info[policy.STEP_MODE])

    @mock.patch.object(image_service.HttpImageService, 'validate_href',
                       autospec=True, return_value=None)
    @mock.patch.object(deploy_utils, 'prepare_agent_boot', autospec=True)
    def test_cleared_at_next_deploy(self, prepare_boot, validate_href):
        self.template('CUSTOM_KEXEC_DISABLED')
        node = self.create_node(
            uuid=uuidutils.generate_uuid(),
            instance_info={'image_source': 'http://127.0.0.1/img',
                           'image_checksum': 'a' * 32, 'root_gb': 10,
                           'traits': ['CUSTOM_KEXEC_DISABLED']})
        self.set_steps(node)
        self.run_step(node, self.mode_step(node))
        self.tear_down_agent(node)
        # Rebuild without the trait: a new deploy, prepared.
        node.instance_info = dict(node.instance_info, traits=[])
        node.power_state = states.POWER_OFF
        node.save()
        self.bmc.state = states.POWER_OFF
        with task_manager.acquire(self.context, node.uuid) as task:
            task.driver.deploy.prepare(task)
        node.refresh()
        self.assertNotIn(policy.STEP_MODE, node.driver_internal_info)
        self.assertEqual(('auto', '[kexec]default_mode'),
                         policy.get_mode_and_source(node))

    def test_kept_by_takeover(self):
        node = self.create_node(
            uuid=uuidutils.generate_uuid(),
            provision_state=states.ACTIVE, target_provision_state=None,
            driver_internal_info={policy.STEP_MODE: {
                'mode': 'disabled', 'source': 'deploy step set_kexec_mode'}})
        with task_manager.acquire(self.context, node.uuid) as task:
            with mock.patch.object(task.driver.boot, 'prepare_instance',
                                   autospec=True):
                task.driver.deploy.prepare(task)
        node.refresh()
        self.assertIn(policy.STEP_MODE, node.driver_internal_info)

    def test_cleared_at_tear_down(self):
        node = self.create_node(
            uuid=uuidutils.generate_uuid(),
            provision_state=states.DELETING,
            target_provision_state=states.AVAILABLE,
            driver_internal_info={policy.STEP_MODE: {
                'mode': 'disabled', 'source': 'deploy step set_kexec_mode'}})
        with task_manager.acquire(self.context, node.uuid) as task:
            with mock.patch.object(task.driver.boot, 'clean_up_instance',
                                   autospec=True):
                task.driver.deploy.tear_down(task)
        node.refresh()
        self.assertNotIn(policy.STEP_MODE, node.driver_internal_info)


class RamdiskSetKexecModeTestCase(_TemplateMixin,
                                  test_ramdisk_deploy.RamdiskKexecTestCase):
    """ramdisk-kexec: prepare() runs before any deploy step."""

    def prepare(self, node):
        with task_manager.acquire(self.context, node.uuid) as task:
            task.driver.deploy.prepare(task)
        node.refresh()

    def test_template_enables_kexec(self):
        # Another setting says disabled: prepare() already counts the
        # template's step and keeps the agent running for it.
        self.template('CUSTOM_KEXEC_AUTO', mode='auto')
        node = self.create_node(driver_info={'kexec_mode': 'disabled'},
                                instance_info={'traits': [
                                    'CUSTOM_KEXEC_AUTO']})
        self.prepare(node)
        self.assertEqual([], self.bmc.actions)
        steps = self.set_steps(node)
        names = [s['step'] for s in steps]
        self.assertLess(names.index(policy.STEP), names.index('deploy'))
        self.run_step(node, self.mode_step(node))
        rec = self.deploy(node)
        self.assertEqual(record.PATH_KEXEC, rec['path'])
        self.assertEqual('auto', rec['mode'])
        self.assertIn('CUSTOM_KEXEC_AUTO', rec['mode_source'])

    def test_template_disables_kexec(self):
        self.template('CUSTOM_KEXEC_DISABLED')
        node = self.create_node(instance_info={'traits': [
            'CUSTOM_KEXEC_DISABLED']})
        self.prepare(node)
        # The stock prepare: no agent to keep for a kexec.
        self.assertEqual([states.POWER_OFF], self.bmc.actions)

    def test_emergency_stop_wins_at_prepare(self):
        self.config(enabled=False, group='kexec')
        self.template('CUSTOM_KEXEC_AUTO', mode='auto')
        node = self.create_node(instance_info={'traits': [
            'CUSTOM_KEXEC_AUTO']})
        self.prepare(node)
        self.assertEqual([states.POWER_OFF], self.bmc.actions)

    def test_stale_step_mode_cleared_by_prepare(self):
        node = self.create_node(driver_internal_info={policy.STEP_MODE: {
            'mode': 'disabled', 'source': 'deploy step set_kexec_mode'}})
        self.prepare(node)
        self.assertNotIn(policy.STEP_MODE, node.driver_internal_info)
        # The earlier deploy's "disabled" did not count: agent kept.
        self.assertEqual([], self.bmc.actions)

    def test_too_late_refused(self):
        # At the priority of deploy (100), after it: Ironic keeps the
        # driver's steps first among equal priorities.
        self.template('CUSTOM_KEXEC_DISABLED', priority=100)
        node = self.create_node(instance_info={'traits': [
            'CUSTOM_KEXEC_DISABLED']})
        steps = self.set_steps(node)
        names = [s['step'] for s in steps]
        self.assertLess(names.index('deploy'), names.index(policy.STEP))
        e = self.assertRaises(exception.InvalidParameterValue,
                              self.run_step, node, self.mode_step(node))
        self.assertIn('above 100', str(e))
