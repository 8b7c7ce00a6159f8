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

import os
import time
from unittest import mock

from ironic.common import exception
from ironic.common import image_service
from ironic.common import states
from ironic.conductor import task_manager
from ironic.conf import CONF
from ironic.drivers.modules import deploy_utils
from ironic import objects
from ironic.tests.unit.objects import utils as obj_utils

from ironic_kexec import deploy
from ironic_kexec import protocol
from ironic_kexec import record
from tests.unit.conductor import base
from tests.unit.conductor import fakes

KEXEC_COMMANDS = ['kexec.load', 'kexec.execute']


class KexecDeployTestCase(base.KexecTestCase):

    def tear_down_agent(self, node):
        with task_manager.acquire(self.context, node.uuid) as task:
            self.assertIsInstance(task.driver.deploy, deploy.KexecDeploy)
            task.driver.deploy.tear_down_agent(task)
        node.refresh()
        return node.driver_internal_info.get(record.KEY)

    def boot_instance(self, node):
        with task_manager.acquire(self.context, node.uuid) as task:
            task.driver.deploy.boot_instance(task)
        node.refresh()

    def history(self, node):
        return objects.NodeHistory.list_by_node_id(self.context, node.id)

    def assertPowerCycled(self, node, soft=True):
        if soft:
            self.assertIn('standby.power_off', self.agent.command_names())
            self.assertEqual([states.POWER_ON], self.bmc.actions)
        else:
            self.assertNotIn('standby.power_off',
                             self.agent.command_names())
            self.assertEqual([states.POWER_OFF, states.POWER_ON],
                             self.bmc.actions)
        self.assertEqual(states.POWER_ON, node.power_state)

    def assertFellBack(self, node, rec, reason, mode='auto'):
        self.assertEqual(record.PATH_POWER_CYCLE, rec['path'])
        self.assertEqual(reason, rec['reason'])
        self.assertEqual(mode, rec['mode'])
        self.assertEqual(states.POWER_OFF, self.bmc.state)
        self.boot_instance(node)

    # The kexec path.

    def test_kexec(self):
        node = self.create_node()
        rec = self.tear_down_agent(node)

        self.assertEqual(KEXEC_COMMANDS, self.agent.command_names())
        load_params = self.agent.posts[0][1]
        self.assertEqual(
            {protocol.PARAM_PROTOCOL_VERSION: protocol.PROTOCOL_VERSION,
             protocol.PARAM_ROOT_UUID: base.ROOT_UUID,
             protocol.PARAM_BOOT_MODE: 'uefi',
             protocol.PARAM_FILE_SYSCALL: 'auto'},
            load_params)
        self.assertEqual('false', self.agent.posts[0][2])
        self.assertEqual(({protocol.PARAM_DELAY: 0.05}, 'true'),
                         self.agent.posts[1][1:])
        # The agent answers on purpose during its delay: it is not probed
        # before the delay is over.
        executed_at = dict(self.agent.times)['kexec.execute']
        probes = [t for name, t in self.agent.times
                  if name == 'GET' and t > executed_at]
        self.assertGreaterEqual(probes[0] - executed_at, 0.05)

        self.assertEqual(record.PATH_KEXEC, rec['path'])
        self.assertIsNone(rec['reason'])
        self.assertEqual('auto', rec['mode'])
        self.assertEqual(protocol.PROTOCOL_VERSION,
                         rec['agent_protocol_version'])
        self.assertEqual({'kernel': fakes.KERNEL, 'initrd': fakes.INITRD,
                          'cmdline': fakes.CMDLINE, 'source': 'bls',
                          'method': 'kexec_load'}, rec['entry'])
        self.assertEqual({'load', 'execute', 'agent_gone'},
                         set(rec['timings']))
        self.assertTrue(all(t >= 0 for t in rec['timings'].values()))
        self.assertEqual({'discover': 0.2, 'load': 0.4},
                         rec['agent_timings'])
        self.assertIn(fakes.KERNEL, rec['message'])

        # Never touched the BMC; the node runs the instance, so it is on.
        self.assertEqual([], self.bmc.actions)
        self.assertEqual(states.POWER_ON, node.power_state)
        # The agent is gone, as after a power off.
        for key in ('agent_url', 'agent_secret_token',
                    'agent_cached_deploy_steps'):
            self.assertNotIn(key, node.driver_internal_info)

        events = self.history(node)
        self.assertEqual(1, len(events))
        self.assertEqual('INFO', events[0].severity)
        self.assertEqual(states.DEPLOYING, events[0].event_type)
        self.assertIn('kexec', events[0].event)
        self.assertIn(fakes.KERNEL, events[0].event)

        self.boot_instance(node)
        self.assertEqual([], self.bmc.actions)
        self.assertEqual(states.POWER_ON, node.power_state)

    def test_kexec_extra_args_precedence(self):
        self.config(extra_args=' console=ttyS0 ', file_syscall='always',
                    group='kexec')
        node = self.create_node(
            driver_info={'kexec_extra_args': 'quiet=0',
                         'kernel_append_params': 'ipa-debug=1'},
            instance_info={'image_source': 'http://127.0.0.1/img',
                           'image_checksum': 'a' * 32,
                           'kexec_extra_args': 'nomodeset',
                           'kexec_kernel': '/vmlinuz',
                           'kexec_initrd': '/initrd.img'},
            properties={'capabilities': 'boot_mode:bios'})
        self.tear_down_agent(node)
        self.assertEqual(
            {protocol.PARAM_PROTOCOL_VERSION: protocol.PROTOCOL_VERSION,
             protocol.PARAM_ROOT_UUID: base.ROOT_UUID,
             protocol.PARAM_EXTRA_ARGS: 'console=ttyS0 quiet=0 nomodeset',
             protocol.PARAM_BOOT_MODE: 'bios',
             protocol.PARAM_FILE_SYSCALL: 'always',
             protocol.PARAM_KERNEL: '/vmlinuz',
             protocol.PARAM_INITRD: '/initrd.img'},
            self.agent.posts[0][1])

    def test_kexec_whole_disk_image_has_no_root_uuid(self):
        node = self.create_node(
            driver_internal_info={'is_whole_disk_image': True,
                                  'root_uuid_or_disk_id': '0x1234abcd'})
        rec = self.tear_down_agent(node)
        self.assertNotIn(protocol.PARAM_ROOT_UUID, self.agent.posts[0][1])
        self.assertEqual(record.PATH_KEXEC, rec['path'])

    def test_kexec_load_polled_until_done(self):
        self.agent.load_running_polls = 3
        node = self.create_node()
        rec = self.tear_down_agent(node)
        self.assertEqual(record.PATH_KEXEC, rec['path'])

    def test_kexec_execute_reply_lost_but_agent_gone(self):
        self.agent.execute_drops_reply = True
        node = self.create_node()
        rec = self.tear_down_agent(node)
        # Sent once only: no retry of kexec.execute.
        self.assertEqual(KEXEC_COMMANDS, self.agent.command_names())
        self.assertEqual(record.PATH_KEXEC, rec['path'])
        self.assertEqual([], self.bmc.actions)

    def test_kexec_collects_logs_before_execute(self):
        self.config(deploy_logs_collect='always', group='agent')
        self.config_temp_dir('deploy_logs_local_path', group='agent')
        node = self.create_node()
        rec = self.tear_down_agent(node)
        self.assertEqual(['kexec.load', 'log.collect_system_logs',
                          'kexec.execute'], self.agent.command_names())
        self.assertEqual(record.PATH_KEXEC, rec['path'])
        [log_file] = os.listdir(CONF.agent.deploy_logs_local_path)
        self.assertIn(node.uuid, log_file)

    # Falling back to the power cycle, each reason.

    def test_fallback_agent_unsupported_no_extension(self):
        self.agent.extensions.discard('kexec')
        node = self.create_node()
        rec = self.tear_down_agent(node)
        self.assertFellBack(node, rec, protocol.REASON_AGENT_UNSUPPORTED)
        self.assertPowerCycled(node)
        self.assertNotIn('entry', rec)
        events = self.history(node)
        self.assertEqual(['WARNING'], [e.severity for e in events])
        self.assertIn('agent_unsupported', events[0].event)

    def test_fallback_agent_unsupported_unknown_command(self):
        self.agent._kexec_load = None
        node = self.create_node()
        rec = self.tear_down_agent(node)
        self.assertFellBack(node, rec, protocol.REASON_AGENT_UNSUPPORTED)
        self.assertPowerCycled(node)

    def test_fallback_agent_reason(self):
        self.agent.load_status = 'FAILED'
        self.agent.load_error = fakes.agent_error(
            protocol.REASON_NO_KERNEL, 'no kernel in /boot of /dev/sda2')
        node = self.create_node()
        rec = self.tear_down_agent(node)
        self.assertEqual('no kernel in /boot of /dev/sda2', rec['message'])
        self.assertFellBack(node, rec, protocol.REASON_NO_KERNEL)
        self.assertPowerCycled(node)
        self.assertIn('no kernel in /boot', self.history(node)[0].event)

    def test_fallback_agent_error_without_reason(self):
        self.agent.load_status = 'FAILED'
        self.agent.load_error = {'type': 'CommandExecutionError',
                                 'code': 500, 'message': 'boom',
                                 'details': 'disk on fire'}
        node = self.create_node()
        rec = self.tear_down_agent(node)
        self.assertIn('disk on fire', rec['message'])
        self.assertFellBack(node, rec, protocol.REASON_AGENT_ERROR)
        self.assertPowerCycled(node)

    def test_fallback_agent_busy(self):
        self.agent.busy = True
        node = self.create_node()
        rec = self.tear_down_agent(node)
        self.assertFellBack(node, rec, protocol.REASON_AGENT_ERROR)
        self.assertIn('busy', rec['message'])
        # Stock: the busy agent refuses to power off, the BMC does it.
        self.assertEqual([states.POWER_OFF, states.POWER_ON],
                         self.bmc.actions)

    def test_fallback_timeout(self):
        self.config(load_timeout=1, load_poll_interval=0.05, group='kexec')
        self.agent.load_running_polls = 10 ** 6
        node = self.create_node()
        rec = self.tear_down_agent(node)
        self.assertFellBack(node, rec, protocol.REASON_TIMEOUT)
        self.assertGreaterEqual(rec['timings']['load'], 1)
        self.assertPowerCycled(node)

    def test_fallback_agent_not_answering(self):
        self.agent.answering = False
        node = self.create_node()
        rec = self.tear_down_agent(node)
        self.assertFellBack(node, rec, protocol.REASON_AGENT_UNREACHABLE)
        # Through the BMC: a soft power off would wait for the agent.
        self.assertEqual([], self.agent.command_names())
        self.assertPowerCycled(node, soft=False)

    def test_fallback_agent_silent_bounded_by_load_timeout(self):
        # A paused VM or a dead link: no answer, not even a refusal.
        self.config(load_timeout=1, group='kexec')
        self.agent.silent = True
        node = self.create_node()
        start = time.monotonic()
        rec = self.tear_down_agent(node)
        self.assertLess(time.monotonic() - start, 2)
        self.assertFellBack(node, rec, protocol.REASON_AGENT_UNREACHABLE)
        self.assertLess(rec['timings']['load'], 1.5)
        self.assertPowerCycled(node, soft=False)

    def test_required_agent_unreachable_fails_deploy(self):
        self.config(load_timeout=1, group='kexec')
        self.agent.silent_after_load = True
        self.agent.load_running_polls = 10 ** 6
        node = self.create_node(driver_info={'kexec_mode': 'required'})
        self.assertRaises(exception.InstanceDeployFailure,
                          self.tear_down_agent, node)
        node.refresh()
        self.assertEqual(states.DEPLOYFAIL, node.provision_state)
        self.assertIn(protocol.REASON_AGENT_UNREACHABLE, node.last_error)
        rec = node.driver_internal_info[record.KEY]
        self.assertEqual(record.PATH_FAILED, rec['path'])
        self.assertEqual(protocol.REASON_AGENT_UNREACHABLE, rec['reason'])

    def test_fallback_no_agent_url(self):
        node = self.create_node(driver_internal_info={'agent_url': None})
        rec = self.tear_down_agent(node)
        self.assertEqual(protocol.REASON_NO_AGENT, rec['reason'])
        self.assertEqual([], self.agent.posts)
        self.assertEqual([states.POWER_OFF], self.bmc.actions)

    def test_fallback_execute_fails_in_agent(self):
        self.agent.execute_status = 'FAILED'
        self.agent.execute_error = fakes.agent_error(
            protocol.REASON_KEXEC_UNSUPPORTED, 'no kexec in this kernel')
        node = self.create_node()
        rec = self.tear_down_agent(node)
        self.assertEqual(record.PATH_POWER_CYCLE, rec['path'])
        self.assertEqual(protocol.REASON_KEXEC_UNSUPPORTED, rec['reason'])
        self.assertEqual(fakes.KERNEL, rec['entry']['kernel'])
        # The agent did not go: soft power off through it, as stock.
        self.assertFellBack(node, rec, protocol.REASON_KEXEC_UNSUPPORTED)
        self.assertPowerCycled(node)

    def test_fallback_execute_unknown_to_agent(self):
        self.agent._kexec_execute = None
        node = self.create_node()
        rec = self.tear_down_agent(node)
        self.assertEqual(KEXEC_COMMANDS + ['standby.power_off'],
                         self.agent.command_names())
        self.assertFellBack(node, rec, protocol.REASON_AGENT_UNSUPPORTED)
        self.assertPowerCycled(node)

    def test_fallback_execute_failed_agent_still_there(self):
        self.config(agent_gone_timeout=1, agent_gone_interval=0.1,
                    execute_delay=0, group='kexec')
        self.agent.answers_after_execute = None
        node = self.create_node()
        rec = self.tear_down_agent(node)
        self.assertEqual(KEXEC_COMMANDS, self.agent.command_names())
        self.assertEqual(protocol.REASON_EXECUTE_FAILED, rec['reason'])
        self.assertEqual(fakes.KERNEL, rec['entry']['kernel'])
        self.assertGreaterEqual(rec['timings']['agent_gone'], 1)
        self.assertFellBack(node, rec, protocol.REASON_EXECUTE_FAILED)
        # Hard power off through the BMC, not through the agent.
        self.assertPowerCycled(node, soft=False)

    # Modes.

    def test_disabled_globally_even_if_required(self):
        self.config(enabled=False, group='kexec')
        node = self.create_node(driver_info={'kexec_mode': 'required'})
        rec = self.tear_down_agent(node)
        self.assertFellBack(node, rec, protocol.REASON_DISABLED,
                            mode='disabled')
        self.assertNotIn('kexec.load', self.agent.command_names())
        self.assertPowerCycled(node)
        self.assertEqual(['INFO'], [e.severity for e in self.history(node)])

    def test_disabled_by_default_mode(self):
        self.config(default_mode='disabled', group='kexec')
        node = self.create_node()
        rec = self.tear_down_agent(node)
        self.assertFellBack(node, rec, protocol.REASON_DISABLED,
                            mode='disabled')

    def test_disabled_per_node(self):
        node = self.create_node(driver_info={'kexec_mode': 'disabled'})
        rec = self.tear_down_agent(node)
        self.assertFellBack(node, rec, protocol.REASON_DISABLED,
                            mode='disabled')
        self.assertPowerCycled(node)

    def test_disabled_per_deploy_overrides_node(self):
        node = self.create_node(
            driver_info={'kexec_mode': 'required'},
            instance_info={'image_source': 'http://127.0.0.1/img',
                           'kexec_mode': 'disabled'})
        rec = self.tear_down_agent(node)
        self.assertFellBack(node, rec, protocol.REASON_DISABLED,
                            mode='disabled')

    def test_enabled_per_deploy_overrides_node(self):
        node = self.create_node(
            driver_info={'kexec_mode': 'disabled'},
            instance_info={'image_source': 'http://127.0.0.1/img',
                           'kexec_mode': 'auto'})
        rec = self.tear_down_agent(node)
        self.assertEqual(record.PATH_KEXEC, rec['path'])

    def test_required_fails_deploy(self):
        self.agent.load_status = 'FAILED'
        self.agent.load_error = fakes.agent_error(
            protocol.REASON_LOCKDOWN, 'kernel lockdown: unsigned kernel')
        node = self.create_node(driver_info={'kexec_mode': 'required'})
        self.assertRaises(exception.InstanceDeployFailure,
                          self.tear_down_agent, node)
        node.refresh()
        self.assertEqual(states.DEPLOYFAIL, node.provision_state)
        self.assertIn('lockdown', node.last_error)
        self.assertIn('kernel lockdown: unsigned kernel', node.last_error)
        rec = node.driver_internal_info[record.KEY]
        self.assertEqual(record.PATH_FAILED, rec['path'])
        self.assertEqual(protocol.REASON_LOCKDOWN, rec['reason'])
        # No soft power off through the agent was attempted.
        self.assertNotIn('standby.power_off', self.agent.command_names())
        self.assertEqual('ERROR', self.history(node)[-1].severity)

    def test_required_execute_failed_fails_deploy(self):
        self.config(agent_gone_timeout=1, execute_delay=0, group='kexec')
        self.agent.answers_after_execute = None
        node = self.create_node(
            instance_info={'image_source': 'http://127.0.0.1/img',
                           'kexec_mode': 'required'})
        self.assertRaises(exception.InstanceDeployFailure,
                          self.tear_down_agent, node)
        node.refresh()
        self.assertEqual(states.DEPLOYFAIL, node.provision_state)
        self.assertIn('execute_failed', node.last_error)
        self.assertEqual(states.POWER_OFF, node.power_state)

    def test_required_kexec_succeeds(self):
        node = self.create_node(driver_info={'kexec_mode': 'required'})
        rec = self.tear_down_agent(node)
        self.assertEqual(record.PATH_KEXEC, rec['path'])
        self.assertEqual('required', rec['mode'])

    # Cases where the stock path is kept.

    def test_network_isolation(self):
        node = self.create_node(network_interface='neutron')
        rec = self.tear_down_agent(node)
        self.assertFellBack(node, rec, protocol.REASON_NETWORK_ISOLATION)
        self.assertNotIn('kexec.load', self.agent.command_names())
        self.assertPowerCycled(node)

    def test_network_isolation_allowed(self):
        self.config(allow_network_isolation=True, group='kexec')
        node = self.create_node(network_interface='neutron')
        rec = self.tear_down_agent(node)
        self.assertEqual(record.PATH_KEXEC, rec['path'])

    def test_network_isolation_fails_required(self):
        # "required" must never start a tenant's OS on the provisioning
        # network: the deploy fails rather than kexec there.
        node = self.create_node(network_interface='neutron',
                                driver_info={'kexec_mode': 'required'})
        self.assertRaises(exception.InstanceDeployFailure,
                          self.tear_down_agent, node)
        node.refresh()
        rec = node.driver_internal_info[record.KEY]
        self.assertEqual(record.PATH_FAILED, rec['path'])
        self.assertEqual(protocol.REASON_NETWORK_ISOLATION, rec['reason'])
        self.assertIn('network_isolation', node.last_error)
        self.assertNotIn('kexec.load', self.agent.command_names())
        # Ironic powers a failed node off.
        self.assertEqual([states.POWER_OFF], self.bmc.actions)

    def test_network_isolation_allowed_when_required(self):
        self.config(allow_network_isolation=True, group='kexec')
        node = self.create_node(network_interface='neutron',
                                driver_info={'kexec_mode': 'required'})
        rec = self.tear_down_agent(node)
        self.assertEqual(record.PATH_KEXEC, rec['path'])

    def test_flat_network_is_no_isolation(self):
        node = self.create_node(network_interface='flat')
        rec = self.tear_down_agent(node)
        self.assertEqual(record.PATH_KEXEC, rec['path'])

    def test_forced_oob_reboot_keeps_stock_path(self):
        node = self.create_node(
            driver_info={'deploy_forces_oob_reboot': True})
        rec = self.tear_down_agent(node)
        self.assertFellBack(node, rec, protocol.REASON_NOT_APPLICABLE)
        # Stock: sync through the agent, then power off through the BMC.
        self.assertEqual(['standby.sync'], self.agent.command_names())
        self.assertEqual([states.POWER_OFF, states.POWER_ON],
                         self.bmc.actions)

    def test_disable_power_off_keeps_stock_path(self):
        node = self.create_node(disable_power_off=True)
        rec = self.tear_down_agent(node)
        self.assertEqual(protocol.REASON_NOT_APPLICABLE, rec['reason'])
        # Stock: the agent is locked down, the node is never powered off.
        self.assertEqual(['standby.sync', 'system.lockdown'],
                         self.agent.command_names())
        self.assertEqual([], self.bmc.actions)
        self.boot_instance(node)
        self.assertEqual([states.REBOOT], self.bmc.actions)

    # Records across deploys.

    def test_stale_record_cleared_by_tear_down(self):
        stale = {'path': record.PATH_KEXEC, 'reason': None}
        node = self.create_node(driver_info={'kexec_mode': 'disabled'},
                                driver_internal_info={'kexec': stale})
        self.tear_down_agent(node)
        self.boot_instance(node)
        self.assertEqual([states.POWER_ON], self.bmc.actions)
        self.assertEqual(states.POWER_ON, node.power_state)

    @mock.patch.object(image_service.HttpImageService, 'validate_href',
                       autospec=True, return_value=None)
    @mock.patch.object(deploy_utils, 'prepare_agent_boot', autospec=True)
    def test_stale_record_cleared_by_prepare(self, prepare_boot,
                                             validate_href):
        stale = {'path': record.PATH_KEXEC, 'reason': None}
        node = self.create_node(driver_internal_info={'kexec': stale},
                                power_state=states.POWER_OFF)
        self.bmc.state = states.POWER_OFF
        with task_manager.acquire(self.context, node.uuid) as task:
            task.driver.deploy.prepare(task)
        prepare_boot.assert_called_once_with(mock.ANY)
        node.refresh()
        self.assertNotIn(record.KEY, node.driver_internal_info)
        self.boot_instance(node)
        self.assertEqual([states.POWER_ON], self.bmc.actions)

    def test_record_cleared_by_undeploy(self):
        node = self.create_node(provision_state=states.DELETING,
                                target_provision_state=states.AVAILABLE,
                                driver_internal_info={'kexec': {
                                    'path': record.PATH_KEXEC}})
        with task_manager.acquire(self.context, node.uuid) as task:
            with mock.patch.object(task.driver.boot, 'clean_up_instance',
                                   autospec=True):
                task.driver.deploy.tear_down(task)
        node.refresh()
        self.assertNotIn(record.KEY, node.driver_internal_info)
        self.assertEqual([states.POWER_OFF], self.bmc.actions)

    def test_record_kept_after_active(self):
        node = self.create_node(provision_state=states.ACTIVE,
                                target_provision_state=None,
                                driver_internal_info={'kexec': {
                                    'path': record.PATH_KEXEC}})
        with task_manager.acquire(self.context, node.uuid) as task:
            # Conductor take over of an active node.
            with mock.patch.object(task.driver.boot, 'prepare_instance',
                                   autospec=True):
                task.driver.deploy.prepare(task)
        node.refresh()
        self.assertEqual(record.PATH_KEXEC,
                         node.driver_internal_info['kexec']['path'])

    # The interface itself.

    def test_deploy_steps(self):
        node = self.create_node()
        with task_manager.acquire(self.context, node.uuid) as task:
            steps = {s['step']: s['priority']
                     for s in task.driver.deploy.deploy_steps}
        self.assertEqual(40, steps['tear_down_agent'])
        self.assertEqual(20, steps['boot_instance'])
        self.assertEqual(30, steps['switch_to_tenant_network'])
        self.assertEqual(80, steps['write_image'])
        # Last: after the instance is on its tenant network.
        self.assertEqual(10, steps['verify_kexec'])

    def test_get_properties(self):
        props = deploy.KexecDeploy().get_properties()
        self.assertIn('kexec_mode', props)
        self.assertIn('kexec_extra_args', props)
        self.assertIn('deploy_kernel', props)


class ValidateTestCase(base.KexecTestCase):

    def setUp(self):
        super().setUp()
        self.config(http_url='http://127.0.0.1:8080', group='deploy')
        self.config(http_root='/nonexistent', group='deploy')

    def validate(self, **kwargs):
        node = self.create_node(provision_state=states.AVAILABLE,
                                target_provision_state=None, **kwargs)
        obj_utils.create_test_port(self.context, node_id=node.id)
        with task_manager.acquire(self.context, node.uuid) as task:
            task.driver.deploy.validate(task)

    def test_validate_ok(self):
        self.validate(driver_info={'deploy_kernel': 'http://h/k',
                                   'deploy_ramdisk': 'http://h/r',
                                   'kexec_mode': 'required',
                                   'kexec_extra_args': 'quiet'})

    def test_validate_bad_node_mode(self):
        self.assertRaisesRegex(
            exception.InvalidParameterValue, 'driver_info/kexec_mode',
            self.validate, driver_info={'deploy_kernel': 'http://h/k',
                                        'deploy_ramdisk': 'http://h/r',
                                        'kexec_mode': 'sometimes'})

    def test_validate_bad_deploy_mode(self):
        self.assertRaisesRegex(
            exception.InvalidParameterValue, 'instance_info/kexec_mode',
            self.validate, instance_info={'image_source': 'http://h/i',
                                          'image_checksum': 'a' * 32,
                                          'kexec_mode': 'yes'})

    def test_validate_bad_extra_args(self):
        self.assertRaisesRegex(
            exception.InvalidParameterValue, 'kexec_extra_args',
            self.validate, driver_info={'deploy_kernel': 'http://h/k',
                                        'deploy_ramdisk': 'http://h/r',
                                        'kexec_extra_args': ['quiet']})

    def test_validate_bad_explicit_kernel(self):
        self.assertRaisesRegex(
            exception.InvalidParameterValue, 'instance_info/kexec_kernel',
            self.validate, instance_info={'image_source': 'http://h/i',
                                          'image_checksum': 'a' * 32,
                                          'kexec_kernel': 42})

    def test_validate_initrd_without_kernel(self):
        self.assertRaisesRegex(
            exception.InvalidParameterValue, 'needs instance_info/kexec_k',
            self.validate, instance_info={'image_source': 'http://h/i',
                                          'image_checksum': 'a' * 32,
                                          'kexec_initrd': '/initrd.img'})
