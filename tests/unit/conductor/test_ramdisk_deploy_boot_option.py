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

"""How Ironic's boot option helper sees ramdisk-kexec nodes."""

from unittest import mock

from ironic.drivers.modules import deploy_utils
from ironic.tests.unit.objects import utils as obj_utils

from ironic_kexec import ramdisk_boot_option
from ironic_kexec import ramdisk_deploy  # noqa: F401  installs it
from tests.unit.conductor import base


class BootOptionTestCase(base.KexecTestCase):

    def node(self, deploy_interface):
        return obj_utils.get_test_node(self.context,
                                       deploy_interface=deploy_interface)

    def test_installed_on_import(self):
        self.assertTrue(ramdisk_boot_option.installed())

    def test_ramdisk_kexec_boots_ramdisk(self):
        self.assertEqual('ramdisk', deploy_utils.get_boot_option(
            self.node('ramdisk-kexec')))
        self.assertTrue(deploy_utils.is_ramdisk_deploy(
            self.node('ramdisk-kexec')))

    def test_other_interfaces_unchanged(self):
        for iface, option in (('ramdisk', 'ramdisk'),
                              ('kexec', 'local'),
                              ('direct', 'local'),
                              ('anaconda', 'kickstart'),
                              ('ramdisk-kexec-not', 'local')):
            self.assertEqual(option, deploy_utils.get_boot_option(
                self.node(iface)), iface)
            self.assertEqual(
                ramdisk_boot_option.original()(self.node(iface)),
                deploy_utils.is_ramdisk_deploy(self.node(iface)), iface)

    def test_delegates_to_the_original(self):
        # Whatever Ironic's function answers for other names is kept.
        calls = []

        def original(node):
            calls.append(node)
            return 'from ironic'

        with mock.patch.object(deploy_utils, 'is_ramdisk_deploy', original):
            ramdisk_boot_option.install()
            node = self.node('direct')
            self.assertEqual('from ironic',
                             deploy_utils.is_ramdisk_deploy(node))
            self.assertEqual([node], calls)
            self.assertTrue(deploy_utils.is_ramdisk_deploy(
                self.node('ramdisk-kexec')))
            self.assertEqual([node], calls)
            self.assertIs(original, ramdisk_boot_option.original())

    def test_install_is_idempotent(self):
        with mock.patch.object(deploy_utils, 'is_ramdisk_deploy',
                               ramdisk_boot_option.original()):
            self.assertFalse(ramdisk_boot_option.installed())
            ramdisk_boot_option.install()
            wrapper = deploy_utils.is_ramdisk_deploy
            ramdisk_boot_option.install()
            self.assertIs(wrapper, deploy_utils.is_ramdisk_deploy)
            self.assertTrue(ramdisk_boot_option.installed())
            self.assertIs(
                ramdisk_boot_option.original(),
                getattr(wrapper, '_ironic_kexec_original'))
