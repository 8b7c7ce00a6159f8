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

"""Hardware facts and deny rules, from a sysfs laid out by the test."""

import os
import shutil
import tempfile
from unittest import mock

from ironic_python_agent.tests.unit import base

from ipa_kexec import errors
from ipa_kexec import hardware_facts
from ipa_kexec import preflight
from ironic_kexec import protocol
from tests.unit.agent import trees

GPU = '0000:01:00.0'
NIC = '0000:00:03.0'
BRIDGE = '0000:00:00.0'


def dmi(vendor='Dell Inc.\n', product='PowerEdge R650\n'):
    """DMI attributes, reached through sysfs' class symlink."""
    files = {'/sys/class/dmi/id': trees.Link('../../devices/virtual/dmi/id'),
             '/sys/devices/virtual/dmi/id': None}
    if vendor is not None:
        files['/sys/devices/virtual/dmi/id/sys_vendor'] = vendor
    if product is not None:
        files['/sys/devices/virtual/dmi/id/product_name'] = product
    return files


def pci_device(address, vendor, device, driver=None):
    """A PCI device as sysfs shows it: a bus symlink to the device dir."""
    real = '/sys/devices/pci0000:00/' + address
    files = {
        '/sys/bus/pci/devices/' + address:
            trees.Link('../../../devices/pci0000:00/' + address),
        real: None,
    }
    if vendor is not None:
        files[real + '/vendor'] = vendor
    if device is not None:
        files[real + '/device'] = device
    if driver is not None:
        files[real + '/driver'] = trees.Link(
            '../../../bus/pci/drivers/' + driver)
    return files


def node_tree():
    files = dmi()
    files.update(pci_device(BRIDGE, '0x8086\n', '0x1237\n'))
    files.update(pci_device(NIC, '0x8086\n', '0x10D3\n', 'e1000e'))
    files.update(pci_device(GPU, '0x10de\n', '0x2204\n', 'nvidia'))
    return files


class HardwareFactsTestCase(base.IronicAgentTest):

    def setUp(self):
        super(HardwareFactsTestCase, self).setUp()
        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root, True)

    def collect(self, files):
        trees.build(self.root, files)
        return hardware_facts.Collector(self.root).collect()


class TestCollect(HardwareFactsTestCase):

    def test_node(self):
        facts = self.collect(node_tree())
        self.assertEqual({
            'system_vendor': 'Dell Inc.',
            'system_product': 'PowerEdge R650',
            # Sorted by address; 0x10D3 is lowercased.
            'pci_ids': ['8086:1237', '8086:10d3', '10de:2204'],
            # The bridge has no driver bound: not an unknown.
            'drivers': ['e1000e', 'nvidia'],
        }, facts.as_dict())
        self.assertEqual(frozenset(), facts.incomplete)
        self.assertEqual([BRIDGE, NIC, GPU],
                         [d.address for d in facts.devices])

    def test_empty_root(self):
        facts = self.collect({})
        self.assertEqual({'system_vendor': None, 'system_product': None,
                          'pci_ids': None, 'drivers': None},
                         facts.as_dict())

    def test_root_does_not_exist(self):
        facts = hardware_facts.Collector(
            os.path.join(self.root, 'missing')).collect()
        self.assertEqual({'system_vendor': None, 'system_product': None,
                          'pci_ids': None, 'drivers': None},
                         facts.as_dict())

    def test_missing_dmi_file(self):
        facts = self.collect(dmi(product=None))
        self.assertEqual('Dell Inc.', facts.system_vendor)
        self.assertIsNone(facts.system_product)

    def test_no_pci_devices(self):
        files = dmi()
        files['/sys/bus/pci/devices'] = None
        facts = self.collect(files)
        self.assertEqual([], facts.as_dict()['pci_ids'])
        self.assertEqual([], facts.as_dict()['drivers'])

    def test_read_is_bounded(self):
        facts = self.collect(dmi(vendor='V' * 200 + '\n'))
        self.assertEqual('V' * hardware_facts.MAX_READ, facts.system_vendor)

    def test_missing_device_file_makes_pci_ids_incomplete(self):
        files = pci_device(NIC, '0x8086', '0x10d3', 'e1000e')
        files.update(pci_device(GPU, '0x10de', None, 'nvidia'))
        facts = self.collect(files)
        self.assertEqual(['8086:10d3'], facts.as_dict()['pci_ids'])
        self.assertEqual(frozenset(['pci_ids']), facts.incomplete)
        # The GPU's driver is still read.
        self.assertEqual(['e1000e', 'nvidia'], facts.as_dict()['drivers'])

    def test_malformed_id_is_not_read(self):
        facts = self.collect(pci_device(GPU, 'nvidia\n', '0x2204\n'))
        self.assertEqual([], facts.as_dict()['pci_ids'])
        self.assertEqual(frozenset(['pci_ids']), facts.incomplete)

    def test_driver_not_a_link(self):
        files = pci_device(GPU, '0x10de', '0x2204')
        files['/sys/devices/pci0000:00/%s/driver' % GPU] = 'nvidia'
        facts = self.collect(files)
        self.assertEqual([], facts.as_dict()['drivers'])
        self.assertEqual(frozenset(['drivers']), facts.incomplete)

    def test_driver_link_is_not_followed(self):
        # Only the link's name counts: its target need not exist, and a
        # target outside the root is not touched.
        files = pci_device(GPU, '0x10de', '0x2204')
        files['/sys/devices/pci0000:00/%s/driver' % GPU] = trees.Link(
            '/nonexistent/drivers/nouveau')
        facts = self.collect(files)
        self.assertEqual(['nouveau'], facts.as_dict()['drivers'])
        self.assertEqual(frozenset(), facts.incomplete)

    def test_device_outside_root_is_not_read(self):
        outside = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, outside, True)
        trees.build(outside, {'/vendor': '0x10de', '/device': '0x2204',
                              '/driver': trees.Link('../nvidia')})
        files = pci_device(NIC, '0x8086', '0x10d3', 'e1000e')
        files['/sys/bus/pci/devices/' + GPU] = trees.Link(outside)
        facts = self.collect(files)
        self.assertEqual(['8086:10d3'], facts.as_dict()['pci_ids'])
        self.assertEqual(['e1000e'], facts.as_dict()['drivers'])
        self.assertEqual(frozenset(['pci_ids', 'drivers']), facts.incomplete)

    def test_attribute_link_outside_root_is_not_followed(self):
        outside = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, outside, True)
        trees.build(outside, {'/sys_vendor': 'Evil Corp'})
        files = dmi(vendor=None)
        files['/sys/devices/virtual/dmi/id/sys_vendor'] = trees.Link(
            os.path.join(outside, 'sys_vendor'))
        facts = self.collect(files)
        self.assertIsNone(facts.system_vendor)
        self.assertEqual('PowerEdge R650', facts.system_product)

    def test_fifo_is_not_read(self):
        trees.build(self.root, dmi(vendor=None))
        os.mkfifo(os.path.join(self.root,
                               'sys/devices/virtual/dmi/id/sys_vendor'))
        facts = hardware_facts.Collector(self.root).collect()
        self.assertIsNone(facts.system_vendor)

    @mock.patch.object(hardware_facts, 'MAX_PCI_DEVICES', 3)
    def test_too_many_devices(self):
        files = node_tree()
        files.update(pci_device('0000:02:00.0', '0x10de', '0x2204'))
        with mock.patch.object(hardware_facts.LOG, 'warning',
                               autospec=True) as mock_warning:
            facts = self.collect(files)
        self.assertIsNone(facts.devices)
        self.assertIsNone(facts.as_dict()['pci_ids'])
        self.assertIsNone(facts.as_dict()['drivers'])
        self.assertEqual('Dell Inc.', facts.system_vendor)
        mock_warning.assert_called_once()
        self.assertIn('More than', mock_warning.call_args[0][0])

    @mock.patch.object(hardware_facts, 'MAX_PCI_DEVICES', 3)
    def test_devices_at_the_bound(self):
        facts = self.collect(node_tree())
        self.assertEqual(3, len(facts.devices))


def rule(rule_id='nvidia-gpu', **conditions):
    conditions = conditions or {'pci_ids': ['10de:*']}
    result = dict(conditions, id=rule_id)
    protocol.check_deny_rule(result)
    return result


class TestCheckDeny(HardwareFactsTestCase):

    def setUp(self):
        super(TestCheckDeny, self).setUp()
        self.files = node_tree()
        self.preflight = preflight.Preflight(self.root)

    def check(self, *rules):
        trees.build(self.root, self.files)
        return self.preflight.check_deny(list(rules))

    def assertDenied(self, *rules):
        exc = self.assertRaises(errors.KexecError, self.check, *rules)
        self.assertEqual(protocol.REASON_DENIED, exc.reason)
        self.assertEqual(protocol.REASON_DENIED, exc.details['reason'])
        return exc.reason_message

    def test_pci_id_matches(self):
        self.assertEqual('hardware deny rule "nvidia-gpu" matches: '
                         'pci_ids 10de:2204 (%s)' % GPU,
                         self.assertDenied(rule()))

    def test_pattern_case(self):
        message = self.assertDenied(rule(pci_ids=['8086:10D3']))
        self.assertIn('8086:10d3 (%s)' % NIC, message)

    def test_driver_matches(self):
        self.assertEqual('hardware deny rule "nv" matches: '
                         'drivers nvidia (%s)' % GPU,
                         self.assertDenied(rule('nv',
                                                drivers=['nvidia*'])))

    def test_every_condition_named(self):
        message = self.assertDenied(rule(
            'r650-e1000e', system_vendor='Dell*',
            system_product='PowerEdge R650', drivers=['e1000e']))
        self.assertEqual(
            'hardware deny rule "r650-e1000e" matches: '
            'system_vendor "Dell Inc."; system_product "PowerEdge R650"; '
            'drivers e1000e (%s)' % NIC, message)

    def test_many_matches_are_counted(self):
        for bus in range(2, 6):
            self.files.update(pci_device('0000:0%d:00.0' % bus, '0x10de',
                                         '0x2204', 'nvidia'))
        message = self.assertDenied(rule())
        self.assertEqual(
            'hardware deny rule "nvidia-gpu" matches: pci_ids '
            '10de:2204 (0000:01:00.0), 10de:2204 (0000:02:00.0), '
            '10de:2204 (0000:03:00.0) and 2 more', message)

    def test_first_matching_rule_is_named(self):
        message = self.assertDenied(rule('other', pci_ids=['1af4:*']),
                                    rule('second'), rule('third'))
        self.assertIn('"second"', message)

    def test_no_match(self):
        self.assertIsNone(self.check(rule(pci_ids=['1002:*']),
                                     rule(system_vendor='HPE')))

    def test_one_condition_failing_is_no_match(self):
        self.assertIsNone(self.check(rule(system_vendor='HPE',
                                          pci_ids=['10de:*'])))

    def test_no_rules_reads_nothing(self):
        with mock.patch.object(hardware_facts.Collector, 'collect',
                               autospec=True) as mock_collect:
            self.check()
            self.preflight.check_deny(None)
        mock_collect.assert_not_called()

    @mock.patch.object(hardware_facts.LOG, 'warning', autospec=True)
    def test_undecidable_does_not_deny(self, mock_warning):
        del self.files['/sys/devices/virtual/dmi/id/sys_vendor']
        self.assertIsNone(self.check(rule('dell', system_vendor='Dell*')))
        mock_warning.assert_called_once()
        args = mock_warning.call_args[0]
        self.assertEqual(('dell', 'system_vendor'), args[1:])

    @mock.patch.object(hardware_facts.LOG, 'warning', autospec=True)
    def test_decidable_logs_no_warning(self, mock_warning):
        self.assertIsNone(self.check(rule(pci_ids=['1002:*'])))
        mock_warning.assert_not_called()

    @mock.patch.object(hardware_facts.LOG, 'warning', autospec=True)
    def test_incomplete_and_no_match_is_undecided(self, mock_warning):
        # The GPU's ID cannot be read: a rule for it cannot be decided.
        del self.files['/sys/devices/pci0000:00/%s/device' % GPU]
        self.assertIsNone(self.check(rule()))
        mock_warning.assert_called_once()
        self.assertEqual(('nvidia-gpu', 'pci_ids'),
                         mock_warning.call_args[0][1:])

    def test_incomplete_but_matching_denies(self):
        # An unreadable device does not hide another one that matches.
        del self.files['/sys/devices/pci0000:00/%s/device' % BRIDGE]
        self.assertIn(GPU, self.assertDenied(rule()))

    def test_incomplete_and_other_condition_failing(self):
        # A rule that fails on a known fact is decided, unread devices
        # or not.
        del self.files['/sys/devices/pci0000:00/%s/device' % GPU]
        with mock.patch.object(hardware_facts.LOG, 'warning',
                               autospec=True) as mock_warning:
            self.assertIsNone(self.check(rule(system_vendor='HPE',
                                              pci_ids=['10de:*'])))
        mock_warning.assert_not_called()
