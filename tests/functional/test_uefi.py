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

"""End-to-end deploys on a UEFI node (OVMF, no Secure Boot).

The node is enrolled with ``boot_mode:uefi``: Ironic's ipxe boot interface
boots the agent through OVMF and iPXE's EFI build, Ironic's ipmitool
management sends the EFI boot flag, and the agent installs the instance's
NVRAM boot entry (efibootmgr). The image is ``uefi_whole_disk``: GPT, an
ESP with shim and GRUB EFI, an ext4 root.

Firmware runs are counted from OVMF's own console start (see
testbed.node). What counts after a kexec is that the instance still sees
the firmware: EFI runtime services (its EFI variables) and ACPI.
"""

from testbed import node as tb_node
from tests.functional import fixtures

IMAGE = 'uefi_whole_disk'


class _UefiTestCase(fixtures.TestbedTestCase):

    firmware = tb_node.FIRMWARE_UEFI

    def assertUefiInstance(self, result):
        # OVMF_VARS_4M.fd: no keys enrolled, Secure Boot off.
        self.assertInstanceFirmware(result, secureboot=0)

    def assertEfiBootFlags(self, result):
        """Ironic asked the BMC for EFI boots, and only for those."""
        lines = [line.text for line in tb_node.read_log(self.testbed.bmc_log)
                 if line.monotonic >= result.started]
        boot = [text for text in lines if text.startswith('boot device')]
        self.assertNotEqual([], boot, lines)
        self.assertEqual([], [text for text in boot
                              if not text.endswith(', EFI)')], boot)
        self.assertEqual([], [text for text in lines if 'mismatch' in text])
        powered = [text for text in lines if text.startswith('power on:')]
        self.assertNotEqual([], powered, lines)
        self.assertEqual([], [text for text in powered
                              if 'firmware uefi' not in text], powered)


class UefiKexecDeployTest(_UefiTestCase):
    """deploy_interface=kexec on a UEFI node."""

    def test_uefi_whole_disk(self):
        result = self.deploy(IMAGE, 'kexec')
        self.assertKexecHandoff(result)
        self.assertEfiBootFlags(result)
        self.assertUefiInstance(result)


class UefiDirectDeployTest(_UefiTestCase):
    """The stock deploy on a UEFI node: the baseline for the kexec one."""

    def test_uefi_whole_disk_direct(self):
        result = self.deploy(IMAGE, 'direct')
        self.assertStockPowerCycle(result)
        self.assertEfiBootFlags(result)
        # The instance came from the disk through OVMF's boot manager,
        # shim and GRUB EFI (which puts BOOT_IMAGE on the command line).
        boot = tb_node.find_line(self.testbed.spec.serial_log,
                                 'BdsDxe: starting Boot',
                                 result.events['handoff'])
        self.assertIsNotNone(boot, 'OVMF started no boot option')
        self.assertNotIn('MAC(', boot.text)
        self.assertIn('BOOT_IMAGE=/boot/vmlinuz-', result.instance_cmdline)
        self.assertUefiInstance(result)
