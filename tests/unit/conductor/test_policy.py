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

"""Whether a deploy may kexec: real nodes, tasks and inspection data."""

import json
import os
from unittest import mock

import fixtures
from ironic.common import exception
from ironic.common import states
from ironic.conductor import task_manager
from ironic.drivers.modules import ipmitool
from ironic import objects
from ironic.tests.unit.objects import utils as obj_utils
from oslo_utils import uuidutils

from ironic_kexec import deny
from ironic_kexec import errors
from ironic_kexec import policy
from ironic_kexec import protocol
from tests.unit.conductor import base

INVENTORY = {'system_vendor': {'manufacturer': 'Dell Inc.',
                               'product_name': 'PowerEdge R640',
                               'serial_number': 'ABC1234'}}
PLUGIN_DATA = {'pci_devices': [
    {'vendor_id': '8086', 'product_id': '1572', 'class': '020000',
     'revision': '02'},
    {'vendor_id': '10de', 'product_id': '2204', 'class': '030000',
     'revision': 'a1'}]}


class PolicyTestCase(base.KexecTestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.addCleanup(deny._cache.clear)
        deny._cache.clear()

    def node(self, driver_info=None, instance_info=None, **kwargs):
        """A deploying node; the info given is added to the defaults."""
        node = self.create_node(uuid=uuidutils.generate_uuid(), **kwargs)
        if driver_info or instance_info:
            node.driver_info = dict(node.driver_info, **(driver_info or {}))
            node.instance_info = dict(node.instance_info,
                                      **(instance_info or {}))
            node.save()
        return node

    def deny_list(self, rules):
        path = os.path.join(self.dir, 'deny-%d.json' % len(os.listdir(
            self.dir)))
        with open(path, 'w') as f:
            f.write(rules if isinstance(rules, str) else json.dumps(rules))
        self.config(deny_list=path, group='kexec')
        return path

    def check(self, node, mode=None, diskless=False):
        with task_manager.acquire(self.context, node.uuid,
                                  shared=True) as task:
            if mode is None:
                mode = policy.get_mode(task.node)
            return policy.check(task, mode, diskless=diskless)

    def inspected(self, node):
        objects.NodeInventory(self.context, node_id=node.id,
                              inventory_data=INVENTORY,
                              plugin_data=PLUGIN_DATA).create()


class CheckTestCase(PolicyTestCase):

    def assertNotKexec(self, reason, node, mode=None, *fragments):
        e = self.assertRaises(errors.NotKexec, self.check, node, mode)
        self.assertEqual(reason, e.reason)
        self.assertFalse(e.executed)
        self.assertEqual(str(e), e.message)
        for fragment in fragments:
            self.assertIn(fragment, e.message)
        return e

    def test_ok(self):
        node = self.node()
        for mode in ('auto', 'required'):
            self.assertIsNone(self.check(node, mode))

    # disabled

    def test_disabled(self):
        self.assertNotKexec(protocol.REASON_DISABLED, self.node(),
                            'disabled')

    def test_disabled_by_node(self):
        node = self.node(driver_info={'kexec_mode': 'disabled'})
        self.assertNotKexec(protocol.REASON_DISABLED, node)

    def test_disabled_globally_even_if_required(self):
        self.config(enabled=False, group='kexec')
        node = self.node(instance_info={'kexec_mode': 'required'})
        self.assertNotKexec(protocol.REASON_DISABLED, node)

    def test_disabled_comes_first(self):
        # Nothing else is looked at: not even an unreadable deny list.
        self.config(deny_list=os.path.join(self.dir, 'missing'),
                    group='kexec')
        node = self.node(network_interface='neutron',
                         disable_power_off=True,
                         driver_internal_info={'agent_url': None})
        self.assertNotKexec(protocol.REASON_DISABLED, node, 'disabled')

    # not_applicable

    def test_boot_from_volume(self):
        self.config(enabled_storage_interfaces=['noop', 'cinder'])
        node = self.node(storage_interface='cinder')
        # No image: the instance boots from its volume.
        node.instance_info = {'root_gb': 10}
        node.save()
        obj_utils.create_test_volume_target(
            self.context, node_id=node.id, boot_index=0,
            volume_id='1234', volume_type='iscsi')
        self.assertNotKexec(protocol.REASON_NOT_APPLICABLE, node, 'auto',
                            'volume')

    def test_cinder_storage_with_image_written(self):
        self.config(enabled_storage_interfaces=['noop', 'cinder'])
        node = self.node(storage_interface='cinder')
        obj_utils.create_test_volume_target(
            self.context, node_id=node.id, boot_index=1,
            volume_id='1234', volume_type='iscsi')
        self.assertIsNone(self.check(node))

    def test_disable_power_off(self):
        node = self.node(disable_power_off=True)
        self.assertNotKexec(protocol.REASON_NOT_APPLICABLE, node, 'required',
                            'disable_power_off')

    def test_deploy_forces_oob_reboot(self):
        for value in (True, 'true', 'True', '1', 'yes'):
            node = self.node(driver_info={'deploy_forces_oob_reboot': value})
            self.assertNotKexec(protocol.REASON_NOT_APPLICABLE, node, 'auto',
                                'deploy_forces_oob_reboot')
        for value in (False, 'false', '0', 'no'):
            node = self.node(driver_info={'deploy_forces_oob_reboot': value})
            self.assertIsNone(self.check(node))

    def test_power_interface_cannot_power_on(self):
        # No in-tree power interface lacks power on; this one stands for
        # an out-of-tree one.
        with mock.patch.object(ipmitool.IPMIPower,
                               'get_supported_power_states', autospec=True,
                               return_value=[states.POWER_OFF]):
            self.assertNotKexec(protocol.REASON_NOT_APPLICABLE, self.node(),
                                'auto', 'power')

    # network_isolation

    def test_network_isolation_auto(self):
        node = self.node(network_interface='neutron')
        self.assertNotKexec(protocol.REASON_NETWORK_ISOLATION, node, 'auto',
                            '"neutron"', 'allow_network_isolation')

    def test_network_isolation_required(self):
        # The security fix: "required" must not start a tenant's OS on the
        # provisioning network either.
        node = self.node(network_interface='neutron',
                         driver_info={'kexec_mode': 'required'})
        self.assertNotKexec(protocol.REASON_NETWORK_ISOLATION, node, None,
                            '"neutron"')
        self.assertNotKexec(protocol.REASON_NETWORK_ISOLATION, node,
                            'required')

    def test_network_isolation_allowed(self):
        self.config(allow_network_isolation=True, group='kexec')
        node = self.node(network_interface='neutron')
        for mode in ('auto', 'required'):
            self.assertIsNone(self.check(node, mode))

    def test_static_network_interfaces(self):
        for iface in ('flat', 'noop'):
            node = self.node(network_interface=iface)
            for mode in ('auto', 'required'):
                self.assertIsNone(self.check(node, mode))

    # circuit_open

    def test_circuit_open(self):
        node = self.node(driver_info={'kexec_failures': 3})
        for mode in ('auto', 'required'):
            e = self.assertNotKexec(protocol.REASON_CIRCUIT_OPEN, node, mode,
                                    'last 3 kexec handoffs',
                                    'circuit_breaker_threshold is 3')
            self.assertIn(policy.reset_hint(node), e.message)
            self.assertIn(node.uuid, e.message)
            self.assertIn('--driver-info kexec_failures', e.message)

    def test_circuit_open_above_threshold(self):
        self.config(circuit_breaker_threshold=1, group='kexec')
        node = self.node(driver_info={'kexec_failures': '5'})
        self.assertNotKexec(protocol.REASON_CIRCUIT_OPEN, node, 'auto',
                            'last 5 kexec handoffs')

    def test_circuit_closed_below_threshold(self):
        node = self.node(driver_info={'kexec_failures': 2})
        self.assertIsNone(self.check(node))
        self.config(circuit_breaker_threshold=10, group='kexec')
        node = self.node(driver_info={'kexec_failures': 9})
        self.assertIsNone(self.check(node))

    def test_circuit_never_opens_with_threshold_0(self):
        self.config(circuit_breaker_threshold=0, group='kexec')
        for failures in (0, 1, 3, 1000):
            node = self.node(driver_info={'kexec_failures': failures})
            self.assertIsNone(self.check(node))

    def test_circuit_junk_count(self):
        node = self.node(driver_info={'kexec_failures': 'many'})
        self.assertIsNone(self.check(node))

    # denied

    def test_denied_by_inventory(self):
        node = self.node()
        self.inspected(node)
        self.deny_list([{'id': 'hpe', 'system_vendor': 'HPE'},
                        {'id': 'nvidia', 'pci_ids': ['10de:*']}])
        for mode in ('auto', 'required'):
            self.assertNotKexec(protocol.REASON_DENIED, node, mode,
                                '"nvidia"', '10de:2204')

    def test_not_denied(self):
        node = self.node()
        self.inspected(node)
        self.deny_list([{'id': 'hpe', 'system_vendor': 'HPE'},
                        # Undecided: the agent decides.
                        {'id': 'mpt', 'drivers': ['mpt3sas']}])
        self.assertIsNone(self.check(node))

    def test_not_inspected_not_denied(self):
        # The agent decides every rule then.
        self.deny_list([{'id': 'dell', 'system_vendor': 'Dell*'}])
        self.assertIsNone(self.check(self.node()))

    def test_deny_list_missing_fails_safe(self):
        path = os.path.join(self.dir, 'missing.json')
        self.config(deny_list=path, group='kexec')
        self.assertNotKexec(protocol.REASON_DENIED, self.node(), 'auto',
                            path)

    def test_deny_list_malformed_fails_safe(self):
        for content in ('[{"id": "x"', '{"id": "x", "pci_ids": ["*"]}',
                        [{'id': 'x', 'pci_ids': '10de:*'}]):
            path = self.deny_list(content)
            node = self.node()
            self.assertNotKexec(protocol.REASON_DENIED, node, 'auto', path)

    # no_agent

    def test_no_agent(self):
        for url in (None, ''):
            node = self.node(driver_internal_info={'agent_url': url})
            self.assertNotKexec(protocol.REASON_NO_AGENT, node, 'auto',
                                'agent')
            self.assertNotKexec(protocol.REASON_NO_AGENT, node, 'required')


class BreakerTestCase(PolicyTestCase):

    def test_breaker_failures(self):
        for value, expected in [
                (None, 0), (0, 0), (3, 3), ('3', 3), (' 4 ', 4), (2.0, 2),
                ('', 0), ('many', 0), ('3.5', 0), (-2, 0), ('-2', 0),
                ([], 0), ([3], 0), ({}, 0), ({'n': 3}, 0),
                (float('nan'), 0), ('9' * 5000, 0)]:
            node = obj_utils.get_test_node(
                self.context, driver_info={'kexec_failures': value})
            self.assertEqual(expected, policy.breaker_failures(node),
                             repr(value)[:20])
        node = obj_utils.get_test_node(self.context, driver_info={})
        self.assertEqual(0, policy.breaker_failures(node))

    def test_breaker_failures_infinite(self):
        # JSON's 1e999 (or Infinity) is a float infinity, which int()
        # refuses with OverflowError: junk like any other.
        node = obj_utils.get_test_node(
            self.context, driver_info={'kexec_failures': float('inf')})
        failures = policy.breaker_failures(node)
        self.assertIsInstance(failures, int)
        self.assertGreaterEqual(failures, 0)

    def test_note_verification(self):
        node = self.node()
        before = dict(node.driver_info)
        opened = []
        for _ in range(5):
            opened.append(policy.note_verification(node, ok=False))
            node.save()
            node.refresh()
        self.assertEqual([False, False, True, False, False], opened)
        self.assertEqual(5, node.driver_info['kexec_failures'])
        self.assertEqual(5, policy.breaker_failures(node))
        # The rest of driver_info is kept.
        self.assertEqual(before, {k: v for k, v in node.driver_info.items()
                                  if k != 'kexec_failures'})
        # One success resets the count, the key goes away.
        self.assertFalse(policy.note_verification(node, ok=True))
        node.save()
        node.refresh()
        self.assertNotIn('kexec_failures', node.driver_info)
        self.assertEqual(before, node.driver_info)
        self.assertFalse(policy.note_verification(node, ok=False))
        self.assertEqual(1, node.driver_info['kexec_failures'])

    def test_note_verification_does_not_save(self):
        node = self.node()
        policy.note_verification(node, ok=False)
        node.refresh()
        self.assertNotIn('kexec_failures', node.driver_info)

    def test_success_without_failures(self):
        node = self.node()
        before = dict(node.driver_info)
        self.assertFalse(policy.note_verification(node, ok=True))
        self.assertEqual(before, node.driver_info)

    def test_opens_exactly_at_threshold(self):
        for threshold in (1, 2, 7):
            self.config(circuit_breaker_threshold=threshold, group='kexec')
            node = self.node()
            opened = [policy.note_verification(node, ok=False)
                      for _ in range(threshold + 2)]
            self.assertEqual([n == threshold
                              for n in range(1, threshold + 3)], opened)

    def test_never_opens_with_threshold_0(self):
        self.config(circuit_breaker_threshold=0, group='kexec')
        node = self.node()
        self.assertFalse(any(policy.note_verification(node, ok=False)
                             for _ in range(10)))
        self.assertEqual(10, policy.breaker_failures(node))

    def test_junk_count_restarts(self):
        node = self.node(driver_info={'kexec_failures': 'junk'})
        self.assertFalse(policy.note_verification(node, ok=False))
        self.assertEqual(1, node.driver_info['kexec_failures'])

    def test_breaker_opens_check(self):
        # What the verification counts is what check() refuses on.
        node = self.node()
        for _ in range(3):
            self.assertIsNone(self.check(node))
            policy.note_verification(node, ok=False)
            node.save()
        e = self.assertRaises(errors.NotKexec, self.check, node)
        self.assertEqual(protocol.REASON_CIRCUIT_OPEN, e.reason)
        # Unset by the operator, as the hint says.
        node.driver_info = {k: v for k, v in node.driver_info.items()
                            if k != 'kexec_failures'}
        node.save()
        self.assertIsNone(self.check(node))

    def test_reset_hint(self):
        node = self.node()
        self.assertEqual('baremetal node unset %s --driver-info '
                         'kexec_failures' % node.uuid,
                         policy.reset_hint(node))


class ValidateTestCase(PolicyTestCase):

    def validate(self, driver_info=None, instance_info=None):
        node = obj_utils.get_test_node(
            self.context, uuid=uuidutils.generate_uuid(),
            driver_info=driver_info or {},
            instance_info=instance_info or {})
        policy.validate(node)
        return node

    def test_ok(self):
        self.validate()
        for spec in ('none', ' none ', 'tcp:22', 'banner:[::1]:8022',
                     'tcp:instance.example:22'):
            self.validate(driver_info={'kexec_verify': spec},
                          instance_info={'kexec_verify': spec})
        self.validate(instance_info={'kexec_verify': 'banner:22',
                                     'kexec_verify_address': '192.0.2.7'})

    def test_bad_spec(self):
        for field in ('driver_info', 'instance_info'):
            for spec in ('tcp:0', 'tcp:65536', 'udp:53', 'tcp:bad host:22',
                         'tcp:\u0662\u0662', 'off', 22, ['tcp:22']):
                e = self.assertRaises(exception.InvalidParameterValue,
                                      self.validate, **{field: {
                                          'kexec_verify': spec}})
                self.assertIn('%s/kexec_verify' % field, str(e))

    def test_bad_spec_names_node(self):
        e = self.assertRaises(exception.InvalidParameterValue,
                              self.validate,
                              instance_info={'kexec_verify': 'tcp:0'})
        self.assertIn('tcp:0', str(e))
        self.assertIn(' of node ', str(e))

    def test_address_not_a_string(self):
        for address in (42, ['192.0.2.7'], {'ip': '192.0.2.7'}, True):
            e = self.assertRaises(
                exception.InvalidParameterValue, self.validate,
                instance_info={'kexec_verify_address': address})
            self.assertIn('instance_info/kexec_verify_address', str(e))

    def test_through_the_deploy_interface(self):
        self.config(http_url='http://127.0.0.1:8080', group='deploy')
        self.config(http_root='/nonexistent', group='deploy')
        node = self.create_node(provision_state=states.AVAILABLE,
                                target_provision_state=None,
                                uuid=uuidutils.generate_uuid())
        obj_utils.create_test_port(self.context, node_id=node.id)
        node.driver_info = dict(node.driver_info, kexec_verify='tcp:0')
        node.save()
        with task_manager.acquire(self.context, node.uuid) as task:
            self.assertRaisesRegex(exception.InvalidParameterValue,
                                   'driver_info/kexec_verify',
                                   task.driver.deploy.validate, task)


class LoadParamsTestCase(PolicyTestCase):

    def params(self, node):
        with task_manager.acquire(self.context, node.uuid,
                                  shared=True) as task:
            return policy.common_load_params(task)

    def test_undecided_rules(self):
        node = self.node()
        self.inspected(node)
        mpt = {'id': 'mpt', 'drivers': ['mpt3sas']}
        dell_mpt = {'id': 'dell-mpt', 'system_vendor': 'Dell*',
                    'drivers': ['megaraid_sas']}
        self.deny_list([{'id': 'hpe', 'system_vendor': 'HPE'},
                        mpt,
                        {'id': 'hpe-mpt', 'system_vendor': 'HPE',
                         'drivers': ['mpt3sas']},
                        dell_mpt])
        params = self.params(node)
        self.assertEqual([mpt, dell_mpt], params[protocol.PARAM_DENY])
        self.assertEqual('auto', params[protocol.PARAM_FILE_SYSCALL])
        # What the agent is sent is JSON.
        self.assertEqual(params, json.loads(json.dumps(params)))

    def test_not_inspected(self):
        node = self.node()
        rules = [{'id': 'dell', 'system_vendor': 'Dell*'},
                 {'id': 'nvidia', 'pci_ids': ['10de:*']}]
        self.deny_list(rules)
        self.assertEqual(rules, self.params(node)[protocol.PARAM_DENY])

    def test_no_undecided_rules(self):
        node = self.node()
        self.inspected(node)
        self.deny_list([{'id': 'hpe', 'system_vendor': 'HPE'}])
        self.assertNotIn(protocol.PARAM_DENY, self.params(node))

    def test_no_deny_list(self):
        node = self.node()
        params = self.params(node)
        self.assertNotIn(protocol.PARAM_DENY, params)
        self.deny_list([])
        self.assertNotIn(protocol.PARAM_DENY, self.params(node))

    def test_invalid_deny_list(self):
        # check() has refused the deploy already.
        self.deny_list('[')
        self.assertNotIn(protocol.PARAM_DENY, self.params(self.node()))

    def test_load_params_carry_them(self):
        node = self.node()
        rules = [{'id': 'mpt', 'drivers': ['mpt3sas']}]
        self.deny_list(rules)
        with task_manager.acquire(self.context, node.uuid,
                                  shared=True) as task:
            params = policy.load_params(task)
        self.assertEqual(rules, params[protocol.PARAM_DENY])
        self.assertEqual(base.ROOT_UUID, params[protocol.PARAM_ROOT_UUID])


class NovaModeTestCase(PolicyTestCase):
    """The mode from what Nova writes, and the precedence of all sources.

    Nova sets neither instance_info/kexec_mode nor driver_info: a flavor's
    ``capabilities:kexec_mode`` reaches instance_info/capabilities, its
    ``trait:CUSTOM_...=required`` instance_info/traits, which select the
    deploy templates whose set_kexec_mode step writes
    driver_internal_info/kexec_mode_step.
    """

    def nova_node(self, capabilities=None, traits=None, node_mode=None,
                  **kwargs):
        """A node deployed by Nova; ``node_mode``: driver_info/kexec_mode."""
        node = self.create_node(
            uuid=uuidutils.generate_uuid(),
            instance_info=base.nova_instance_info(capabilities, traits),
            **kwargs)
        if node_mode:
            node.driver_info = dict(node.driver_info, kexec_mode=node_mode)
            node.save()
        return node

    def mode(self, node):
        node.refresh()
        return policy.get_mode_and_source(node)

    def test_flavor_capability(self):
        node = self.nova_node(capabilities={'kexec_mode': 'required',
                                            'boot_mode': 'uefi'},
                              traits=['CUSTOM_GPU'])
        # Nova's form: a JSON string, not a dict.
        self.assertIsInstance(node.instance_info['capabilities'], str)
        self.assertEqual(('required', 'instance_info/capabilities/kexec_mode'),
                         self.mode(node))
        policy.validate(node)

    def test_capabilities_as_a_dict(self):
        # What the API stores from "baremetal node set --instance-info
        # capabilities='{"kexec_mode": "disabled"}'" (the client decodes
        # JSON values).
        node = self.nova_node()
        node.instance_info = dict(node.instance_info,
                                  capabilities={'kexec_mode': 'disabled'})
        node.save()
        self.assertEqual(('disabled', 'instance_info/capabilities/kexec_mode'),
                         self.mode(node))
        policy.validate(node)

    def test_other_capabilities_only(self):
        node = self.nova_node(capabilities={'boot_mode': 'uefi'},
                              node_mode='disabled')
        self.assertEqual(('disabled', 'driver_info/kexec_mode'),
                         self.mode(node))

    def test_nothing_from_nova(self):
        node = self.nova_node()
        self.assertEqual(('auto', '[kexec]default_mode'), self.mode(node))
        self.config(default_mode='required', group='kexec')
        self.assertEqual(('required', '[kexec]default_mode'),
                         self.mode(node))

    def test_precedence(self):
        """Each source in turn overrides the ones before it."""
        self.config(default_mode='disabled', group='kexec')
        node = self.nova_node(traits=['CUSTOM_KEXEC'])
        self.assertEqual(('disabled', '[kexec]default_mode'),
                         self.mode(node))

        node.driver_info = dict(node.driver_info, kexec_mode='auto')
        node.save()
        self.assertEqual(('auto', 'driver_info/kexec_mode'), self.mode(node))

        node.instance_info = dict(node.instance_info, capabilities=json.dumps(
            {'kexec_mode': 'required'}))
        node.save()
        self.assertEqual(('required', 'instance_info/capabilities/kexec_mode'),
                         self.mode(node))

        node.instance_info = dict(node.instance_info, kexec_mode='disabled')
        node.save()
        self.assertEqual(('disabled', 'instance_info/kexec_mode'),
                         self.mode(node))

        policy.set_step_mode(node, 'auto',
                             origin='deploy template CUSTOM_KEXEC')
        self.assertEqual(('auto', 'deploy step set_kexec_mode (deploy '
                                  'template CUSTOM_KEXEC)'), self.mode(node))
        self.assertEqual('auto', policy.get_mode(node))

        # The emergency stop overrides them all.
        self.config(enabled=False, group='kexec')
        self.assertEqual(('disabled', '[kexec]enabled'), self.mode(node))

        # Without the step, the flat key is back.
        self.config(enabled=True, group='kexec')
        policy.clear_step_mode(node)
        self.assertEqual(('disabled', 'instance_info/kexec_mode'),
                         self.mode(node))

    def test_step_mode_is_validated(self):
        node = self.nova_node()
        for mode in ('sometimes', '', None, 'Required', ['auto']):
            e = self.assertRaises(exception.InvalidParameterValue,
                                  policy.set_step_mode, node, mode)
            self.assertIn('set_kexec_mode', str(e))
        node.refresh()
        self.assertNotIn(policy.STEP_MODE, node.driver_internal_info)

    def test_step_mode_without_origin(self):
        node = self.nova_node()
        self.assertEqual('deploy step set_kexec_mode',
                         policy.set_step_mode(node, 'required'))
        self.assertEqual(('required', 'deploy step set_kexec_mode'),
                         self.mode(node))

    def test_junk_step_mode_ignored(self):
        node = self.nova_node(driver_internal_info={
            policy.STEP_MODE: 'required'})
        self.assertEqual(('auto', '[kexec]default_mode'), self.mode(node))

    def test_clear_step_mode_saves(self):
        node = self.nova_node()
        policy.set_step_mode(node, 'disabled')
        policy.clear_step_mode(node)
        node.refresh()
        self.assertNotIn(policy.STEP_MODE, node.driver_internal_info)
        # Nothing to clear: nothing happens.
        policy.clear_step_mode(node)

    def test_validate_refuses_bad_capability(self):
        for mode in ('sometimes', '', 'Required', 's== required', True):
            node = self.nova_node(capabilities={'kexec_mode': mode})
            e = self.assertRaises(exception.InvalidParameterValue,
                                  policy.validate, node)
            self.assertIn('instance_info/capabilities/kexec_mode', str(e))
            self.assertIn(node.uuid, str(e))
            self.assertIn('capabilities:kexec_mode', str(e))

    def test_malformed_capabilities(self):
        # Refused by validate() as Ironic's own parser refuses them; a
        # deploy that has them anyway does without them.
        for capabilities in ('{"kexec_mode": "disabled"', '["kexec_mode"]',
                             42):
            node = self.nova_node(node_mode='required')
            node.instance_info = dict(node.instance_info,
                                      capabilities=capabilities)
            node.save()
            self.assertRaisesRegex(exception.InvalidParameterValue,
                                   'capabilities', policy.validate, node)
            self.assertEqual(('required', 'driver_info/kexec_mode'),
                             self.mode(node))

    def test_validate_through_the_deploy_interface(self):
        self.config(http_url='http://127.0.0.1:8080', group='deploy')
        self.config(http_root='/nonexistent', group='deploy')
        node = self.create_node(provision_state=states.AVAILABLE,
                                target_provision_state=None,
                                uuid=uuidutils.generate_uuid())
        obj_utils.create_test_port(self.context, node_id=node.id)
        node.instance_info = dict(node.instance_info, capabilities=json.dumps(
            {'kexec_mode': 'sometimes'}))
        node.save()
        with task_manager.acquire(self.context, node.uuid) as task:
            self.assertRaisesRegex(exception.InvalidParameterValue,
                                   'capabilities/kexec_mode',
                                   task.driver.deploy.validate, task)
            task.node.instance_info = dict(
                task.node.instance_info,
                capabilities=json.dumps({'kexec_mode': 'required'}))
            task.driver.deploy.validate(task)
