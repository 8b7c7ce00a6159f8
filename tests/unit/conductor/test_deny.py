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

"""The hardware deny list: real files, and real inspection data in the
database.
"""

import json
import os
from unittest import mock

import fixtures
from ironic.conductor import task_manager
from ironic.conf import CONF
from ironic.drivers.modules import inspect_utils
from ironic import objects
from oslo_utils import uuidutils

from ironic_kexec import deny
from tests.unit.conductor import base

# As the agent reports it and Ironic's in-band inspection stores it: the
# inventory, and the rest of the agent's data (with the optional
# "pci-devices" collector) as plugin_data.
INVENTORY = {
    'system_vendor': {'manufacturer': 'Dell Inc.',
                      'product_name': 'PowerEdge R640 (SKU=0716;'
                                      'ModelName=PowerEdge R640)',
                      'serial_number': 'ABC1234',
                      'firmware': {'vendor': 'Dell Inc.',
                                   'version': '2.19.1',
                                   'build_date': '03/07/2023'}},
    'cpu': {'model_name': 'Intel(R) Xeon(R) Gold 6130', 'count': 64,
            'architecture': 'x86_64'},
    'memory': {'total': 201326592000, 'physical_mb': 196608},
    'interfaces': [{'name': 'eno1', 'mac_address': '52:54:00:12:34:56',
                    'ipv4_address': '192.0.2.10', 'has_carrier': True,
                    'vendor': '0x8086', 'product': '0x1572',
                    'driver': 'i40e'}],
    'disks': [{'name': '/dev/sda', 'size': 480103981056,
               'rotational': False, 'model': 'SSDSC2KB480G8R'}],
    'boot': {'current_boot_mode': 'uefi', 'pxe_interface': 'eno1'},
    'bmc_address': '192.0.2.200',
}
PLUGIN_DATA = {
    'pci_devices': [
        {'vendor_id': '8086', 'product_id': '1572', 'class': '020000',
         'revision': '02', 'bus': '0000:18:00.0'},
        {'vendor_id': '10de', 'product_id': '2204', 'class': '030000',
         'revision': 'a1', 'bus': '0000:3b:00.0'},
        {'vendor_id': '102b', 'product_id': '0536', 'class': '030000',
         'revision': '04', 'bus': '0000:03:00.0'},
    ],
    'boot_interface': '52:54:00:12:34:56',
    'root_disk': {'name': '/dev/sda', 'size': 480103981056},
    'error': None,
}

DELL = {'id': 'dell-r640', 'system_vendor': 'Dell*',
        'system_product': 'PowerEdge R640*'}
NVIDIA = {'id': 'nvidia-ampere', 'comment': 'GPU hangs after kexec',
          'pci_ids': ['10de:22*', '10de:20b*']}
HPE = {'id': 'hpe', 'system_vendor': 'HPE'}
MELLANOX = {'id': 'mlx', 'pci_ids': ['15b3:*']}
DRIVER = {'id': 'mpt3sas', 'drivers': ['mpt3sas']}


class DenyTestCase(base.KexecTestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        # The cache is the module's; no test sees another's rules.
        self.addCleanup(deny._cache.clear)
        deny._cache.clear()

    def write(self, content, name='deny.json'):
        path = os.path.join(self.dir, name)
        if not isinstance(content, (str, bytes)):
            content = json.dumps(content)
        if isinstance(content, str):
            content = content.encode()
        with open(path, 'wb') as f:
            f.write(content)
        return path

    def use(self, rules):
        path = self.write(rules)
        self.config(deny_list=path, group='kexec')
        return path


class LoadRulesTestCase(DenyTestCase):

    def test_valid(self):
        rules = [DELL, NVIDIA, HPE, DRIVER,
                 {'id': 'all', 'system_vendor': 'a', 'system_product': 'b',
                  'pci_ids': ['c'], 'drivers': ['d'], 'comment': 'e'}]
        path = self.use(rules)
        self.assertEqual(rules, deny.load_rules())
        self.assertEqual(rules, deny.load_rules(path))

    def test_empty_list(self):
        self.use([])
        self.assertEqual([], deny.load_rules())

    def test_no_option(self):
        self.assertEqual('', CONF.kexec.deny_list)
        self.assertEqual([], deny.load_rules())
        self.config(deny_list='', group='kexec')
        self.assertEqual([], deny.load_rules())

    def test_explicit_path_over_option(self):
        self.use([HPE])
        other = self.write([DELL], name='other.json')
        self.assertEqual([DELL], deny.load_rules(other))
        self.assertEqual([HPE], deny.load_rules())

    def assertInvalid(self, content, *fragments):
        path = self.use(content)
        e = self.assertRaises(deny.InvalidDenyList, deny.load_rules)
        self.assertIn(path, str(e))
        for fragment in fragments:
            self.assertIn(fragment, str(e))
        return e

    def test_missing_file(self):
        path = os.path.join(self.dir, 'missing.json')
        self.config(deny_list=path, group='kexec')
        e = self.assertRaises(deny.InvalidDenyList, deny.load_rules)
        self.assertIn(path, str(e))

    def test_directory(self):
        self.config(deny_list=self.dir, group='kexec')
        self.assertRaises(deny.InvalidDenyList, deny.load_rules)

    def test_bad_json(self):
        self.assertInvalid('[{"id": "x", "system_vendor": "y"},]')
        self.assertInvalid('')
        self.assertInvalid('[{"id": "x"')
        self.assertInvalid(b'["\xff\xfe"]')

    def test_not_a_list(self):
        self.assertInvalid({'id': 'x', 'system_vendor': 'y'}, 'JSON list')
        self.assertInvalid('"dell"', 'JSON list')
        self.assertInvalid('null', 'JSON list')
        self.assertInvalid('42', 'JSON list')

    def test_max_rules(self):
        rules = [{'id': 'r%d' % i, 'system_vendor': 'v%d' % i}
                 for i in range(deny.MAX_RULES)]
        self.use(rules)
        self.assertEqual(deny.MAX_RULES, len(deny.load_rules()))
        rules.append({'id': 'one-more', 'system_vendor': 'x'})
        self.assertInvalid(rules, 'at most %d rules' % deny.MAX_RULES)

    def test_max_file_size(self):
        text = json.dumps([HPE])
        # Valid JSON, exactly at the bound: accepted.
        self.use(text + ' ' * (deny.MAX_FILE_SIZE - len(text)))
        self.assertEqual([HPE], deny.load_rules())
        # One byte more: refused, however valid.
        self.assertInvalid(text + ' ' * (deny.MAX_FILE_SIZE + 1 - len(text)),
                           'larger than %d bytes' % deny.MAX_FILE_SIZE)

    def test_invalid_rules(self):
        for rule in [
                'dell',
                ['id', 'x'],
                {'system_vendor': 'Dell*'},                  # no id
                {'id': '', 'system_vendor': 'Dell*'},
                {'id': 7, 'system_vendor': 'Dell*'},
                {'id': 'x'},                                 # no condition
                {'id': 'x', 'comment': 'only a comment'},
                {'id': 'x', 'vendor': 'Dell*'},              # unknown field
                {'id': 'x', 'system_vendor': 'Dell*', 'extra': 1},
                {'id': 'x', 'system_vendor': ''},
                {'id': 'x', 'system_vendor': ['Dell*']},
                {'id': 'x', 'system_product': None},
                {'id': 'x', 'pci_ids': '10de:*'},
                {'id': 'x', 'pci_ids': []},
                {'id': 'x', 'pci_ids': ['10de:*', '']},
                {'id': 'x', 'pci_ids': [10]},
                {'id': 'x', 'drivers': 'nouveau'},
                {'id': 'x', 'drivers': [None]}]:
            self.assertInvalid([HPE, rule])
            deny._cache.clear()

    def test_invalid_rule_names_rule(self):
        self.assertInvalid([{'id': 'gpu-rule', 'pci_ids': []}], 'gpu-rule',
                           'pci_ids')

    def change(self, path, content):
        """Rewrite a file so that its change shows, whatever the clock."""
        before = os.stat(path)
        self.write(content, name=os.path.basename(path))
        os.utime(path, ns=(before.st_atime_ns,
                           before.st_mtime_ns + 1000000007))

    def test_reread_after_change(self):
        path = self.use([HPE])
        self.assertEqual([HPE], deny.load_rules())
        # Same size: only the modification time tells.
        other = dict(HPE, system_vendor='XYZ')
        self.assertEqual(len(json.dumps([HPE])), len(json.dumps([other])))
        self.change(path, [other])
        self.assertEqual([other], deny.load_rules())
        self.change(path, [DELL, NVIDIA])
        self.assertEqual([DELL, NVIDIA], deny.load_rules())
        self.change(path, [])
        self.assertEqual([], deny.load_rules())

    def test_becomes_invalid(self):
        path = self.use([HPE])
        self.assertEqual([HPE], deny.load_rules())
        self.change(path, '[')
        self.assertRaises(deny.InvalidDenyList, deny.load_rules)
        # And stays so: a bad file is never replaced by the old rules.
        self.assertRaises(deny.InvalidDenyList, deny.load_rules)
        self.change(path, [DELL])
        self.assertEqual([DELL], deny.load_rules())

    def test_removed(self):
        path = self.use([HPE])
        self.assertEqual([HPE], deny.load_rules())
        os.unlink(path)
        self.assertRaises(deny.InvalidDenyList, deny.load_rules)

    def test_unchanged_file_is_not_read_again(self):
        # Read once per change, not once per deploy: a rewrite that keeps
        # the size and the modification time goes unseen.
        path = self.use([HPE])
        before = os.stat(path)
        self.assertEqual([HPE], deny.load_rules())
        self.write([dict(HPE, system_vendor='XYZ')])
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        self.assertEqual([HPE], deny.load_rules())


class InventoryFactsTestCase(DenyTestCase):

    def test_ipa_data(self):
        self.assertEqual(
            {'system_vendor': 'Dell Inc.',
             'system_product': 'PowerEdge R640 (SKU=0716;ModelName='
                               'PowerEdge R640)',
             'pci_ids': ['8086:1572', '10de:2204', '102b:0536']},
            deny.inventory_facts(INVENTORY, PLUGIN_DATA))

    def test_nothing_known(self):
        self.assertEqual({}, deny.inventory_facts(None, None))
        self.assertEqual({}, deny.inventory_facts({}, {}))
        self.assertEqual({}, deny.inventory_facts('junk', ['junk']))

    def test_no_pci_collector(self):
        # Without the "pci-devices" collector the PCI devices are unknown,
        # not absent.
        facts = deny.inventory_facts(INVENTORY, {'root_disk': {}})
        self.assertNotIn('pci_ids', facts)
        self.assertEqual('Dell Inc.', facts['system_vendor'])

    def test_no_pci_device(self):
        self.assertEqual({'pci_ids': []},
                         deny.inventory_facts(None, {'pci_devices': []}))

    def test_partial_and_junk(self):
        inventory = {'system_vendor': {'manufacturer': 'QEMU',
                                       'product_name': None}}
        plugin_data = {'pci_devices': [
            'junk', None, {'vendor_id': '1af4', 'product_id': '1000'}]}
        self.assertEqual({'system_vendor': 'QEMU', 'pci_ids': ['1af4:1000']},
                         deny.inventory_facts(inventory, plugin_data))
        self.assertEqual({}, deny.inventory_facts(
            {'system_vendor': 'Dell Inc.'}, {'pci_devices': 'junk'}))


class EvaluateTestCase(DenyTestCase):

    def setUp(self):
        super().setUp()
        self.node = self.create_node()

    def inspected(self, node=None, inventory=INVENTORY,
                  plugin_data=PLUGIN_DATA):
        node = node or self.node
        objects.NodeInventory(self.context, node_id=node.id,
                              inventory_data=inventory,
                              plugin_data=plugin_data).create()

    def evaluate(self, node=None):
        node = node or self.node
        with task_manager.acquire(self.context, node.uuid,
                                  shared=True) as task:
            return deny.evaluate(task)

    def test_inspection_data_read_once_per_task(self):
        # check() and the load parameters both evaluate the rules in the
        # same step: one read of the database row (or Swift object).
        self.inspected()
        self.use([NVIDIA, {'id': 'mpt', 'drivers': ['mpt3sas']}])
        with mock.patch.object(
                inspect_utils, 'get_inspection_data', autospec=True,
                side_effect=inspect_utils.get_inspection_data) as read:
            with task_manager.acquire(self.context, self.node.uuid,
                                      shared=True) as task:
                first = deny.evaluate(task)
                self.assertEqual(first, deny.evaluate(task))
        self.assertEqual(1, read.call_count)
        self.assertIn('nvidia-ampere', first[0])

    def test_no_rules(self):
        self.inspected()
        self.assertEqual((None, []), self.evaluate())
        self.use([])
        self.assertEqual((None, []), self.evaluate())

    def test_system_rule_matches(self):
        self.inspected()
        self.use([HPE, DELL])
        message, undecided = self.evaluate()
        self.assertIn('"dell-r640"', message)
        self.assertIn('Dell Inc.', message)
        self.assertIn('PowerEdge R640', message)
        self.assertNotIn('hpe', message)
        self.assertEqual([], undecided)

    def test_case_insensitive(self):
        self.inspected()
        self.use([{'id': 'dell', 'system_vendor': 'DELL INC.'}])
        message, _undecided = self.evaluate()
        self.assertIn('"dell"', message)

    def test_pci_rule_matches(self):
        self.inspected()
        self.use([MELLANOX, NVIDIA])
        message, undecided = self.evaluate()
        self.assertIn('"nvidia-ampere"', message)
        # It names the device that matched, not the others.
        self.assertIn('10de:2204', message)
        self.assertNotIn('8086:1572', message)
        self.assertEqual([], undecided)

    def test_no_match(self):
        self.inspected()
        self.use([HPE, MELLANOX,
                  # Every condition must match.
                  {'id': 'dell-gpu', 'system_vendor': 'Dell*',
                   'pci_ids': ['15b3:*']}])
        self.assertEqual((None, []), self.evaluate())

    def test_undecidable_rule(self):
        self.inspected()
        mixed = {'id': 'dell-mpt', 'system_vendor': 'Dell*',
                 'drivers': ['mpt3sas']}
        not_dell = {'id': 'hpe-mpt', 'system_vendor': 'HPE',
                    'drivers': ['mpt3sas']}
        self.use([HPE, DRIVER, mixed, not_dell])
        message, undecided = self.evaluate()
        self.assertIsNone(message)
        # A rule already refuted by the inspection data is not sent.
        self.assertEqual([DRIVER, mixed], undecided)

    def test_match_wins_over_undecided(self):
        self.inspected()
        self.use([DRIVER, DELL])
        message, undecided = self.evaluate()
        self.assertIn('"dell-r640"', message)
        self.assertEqual([], undecided)

    def test_pci_rule_without_pci_data(self):
        self.inspected(plugin_data={})
        self.use([NVIDIA, HPE])
        self.assertEqual((None, [NVIDIA]), self.evaluate())

    def test_no_inventory(self):
        rules = [DELL, NVIDIA, HPE, DRIVER]
        self.use(rules)
        self.assertEqual((None, rules), self.evaluate())

    def test_other_node_inventory_not_used(self):
        other = self.create_node(uuid=uuidutils.generate_uuid())
        self.inspected(node=other)
        self.use([DELL])
        self.assertEqual((None, [DELL]), self.evaluate())
        message, _undecided = self.evaluate(other)
        self.assertIn('"dell-r640"', message)

    def test_invalid_list(self):
        self.inspected()
        self.use({'id': 'not-a-list'})
        self.assertRaises(deny.InvalidDenyList, self.evaluate)
        self.config(deny_list=os.path.join(self.dir, 'missing'),
                    group='kexec')
        self.assertRaises(deny.InvalidDenyList, self.evaluate)
