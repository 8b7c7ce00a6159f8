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

"""The hardware types, loaded through their entry points by Ironic."""
from ironic.common import driver_factory
from ironic.common import exception
from ironic.conductor import task_manager
from ironic.drivers import ipmi
from ironic.drivers.modules import agent
from ironic.drivers import redfish
from ironic.tests.unit.objects import utils as obj_utils

from ironic_kexec import deploy
from ironic_kexec import hardware
from ironic_kexec import ramdisk_deploy
from tests.unit.conductor import base


class HardwareTypeTestCase(base.KexecTestCase):

    def setUp(self):
        super().setUp()
        self.config(enabled_hardware_types=['ipmi-kexec', 'redfish-kexec',
                                            'ipmi'])
        self.config(enabled_deploy_interfaces=['direct', 'kexec'])

    def node(self, **kwargs):
        return obj_utils.get_test_node(self.context, **kwargs)

    def test_types_are_the_stock_ones_plus_kexec(self):
        for kexec_type, stock_type in (
                (hardware.IPMIKexecHardware, ipmi.IPMIHardware),
                (hardware.RedfishKexecHardware, redfish.RedfishHardware)):
            ours, stock = kexec_type(), stock_type()
            self.assertEqual(
                [deploy.KexecDeploy] + stock.supported_deploy_interfaces
                + [ramdisk_deploy.RamdiskKexecDeploy],
                ours.supported_deploy_interfaces)
            self.assertEqual(stock.supported_power_interfaces,
                             ours.supported_power_interfaces)
            self.assertEqual(stock.supported_management_interfaces,
                             ours.supported_management_interfaces)

    def test_ramdisk_kexec_is_never_the_default(self):
        self.config(enabled_deploy_interfaces=['direct', 'ramdisk-kexec'])
        node = self.node(driver='ipmi-kexec', deploy_interface=None)
        driver_factory.check_and_update_node_interfaces(node)
        self.assertEqual('direct', node.deploy_interface)

    def test_kexec_is_the_default_when_enabled(self):
        self.config(enabled_deploy_interfaces=['direct', 'kexec',
                                               'ramdisk-kexec'])
        node = self.node(driver='ipmi-kexec', deploy_interface=None)
        driver_factory.check_and_update_node_interfaces(node)
        self.assertEqual('kexec', node.deploy_interface)

    def test_entry_points(self):
        self.assertIsInstance(driver_factory.get_hardware_type('ipmi-kexec'),
                              hardware.IPMIKexecHardware)
        self.assertIsInstance(
            driver_factory.get_hardware_type('redfish-kexec'),
            hardware.RedfishKexecHardware)
        self.assertIsInstance(driver_factory.get_interface(
            driver_factory.get_hardware_type('ipmi-kexec'), 'deploy',
            'kexec'), deploy.KexecDeploy)

    def test_interface_names_are_their_entry_points(self):
        # The periodic task picks its nodes by this name.
        self.config(enabled_deploy_interfaces=['direct', 'kexec',
                                               'ramdisk-kexec'])
        ipmi = driver_factory.get_hardware_type('ipmi-kexec')
        for cls in (deploy.KexecDeploy,
                    ramdisk_deploy.RamdiskKexecDeploy):
            self.assertIsInstance(driver_factory.get_interface(
                ipmi, 'deploy', cls.interface_name), cls)

    def test_kexec_accepted(self):
        for driver in ('ipmi-kexec', 'redfish-kexec'):
            node = self.node(driver=driver, deploy_interface='kexec')
            self.assertTrue(
                driver_factory.check_and_update_node_interfaces(node))
            self.assertEqual('kexec', node.deploy_interface)

    def test_kexec_is_the_default(self):
        node = self.node(driver='ipmi-kexec')
        driver_factory.check_and_update_node_interfaces(node)
        self.assertEqual('kexec', node.deploy_interface)

    def test_direct_still_accepted(self):
        node = self.node(driver='ipmi-kexec', deploy_interface='direct')
        driver_factory.check_and_update_node_interfaces(node)
        node.create()
        with task_manager.acquire(self.context, node.uuid) as task:
            self.assertIsInstance(task.driver.deploy, agent.AgentDeploy)
            self.assertNotIsInstance(task.driver.deploy, deploy.KexecDeploy)

    def test_default_without_kexec_enabled(self):
        self.config(enabled_deploy_interfaces=['direct'])
        node = self.node(driver='ipmi-kexec')
        driver_factory.check_and_update_node_interfaces(node)
        self.assertEqual('direct', node.deploy_interface)

    def test_kexec_rejected_on_stock_ipmi(self):
        node = self.node(driver='ipmi', deploy_interface='kexec')
        self.assertRaises(exception.IncompatibleInterface,
                          driver_factory.check_and_update_node_interfaces,
                          node)

    def test_kexec_rejected_when_not_enabled(self):
        self.config(enabled_deploy_interfaces=['direct'])
        node = self.node(driver='ipmi-kexec', deploy_interface='kexec')
        self.assertRaises(exception.InterfaceNotFoundInEntrypoint,
                          driver_factory.check_and_update_node_interfaces,
                          node)
