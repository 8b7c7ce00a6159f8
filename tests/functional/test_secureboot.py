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

"""kexec deploys of a Secure Boot node: OVMF with Microsoft's keys.

The node boots the agent the way a Debian server does, with Ironic's
``pxe`` boot interface in UEFI mode (testbed.secureboot): OVMF's own PXE
(the NIC has no iPXE ROM), QEMU's TFTP serving Ironic's tftp_root, shim,
Debian's signed network GRUB, the Debian-signed agent kernel, which then
runs locked down (``integrity``). Such a kernel kexecs only kernels its
keys trust, and only with kexec_file_load.

* ``uefi_whole_disk``: the Debian-signed kernel is loaded with
  kexec_file_load and the instance runs with Secure Boot still on, no
  firmware run in between.
* ``uefi_unsigned_disk``: the same image with the signature removed from
  its kernel. The agent's load is refused (lockdown) and the deploy ends
  as the stock one does: Ironic's power cycle. Shim's GRUB then refuses
  that kernel too, so the instance never answers; Ironic says active all
  the same (the stock deploy does not wait for the instance).
"""

from testbed import node as tb_node
from testbed import secureboot
from testbed import timeline
from tests.functional import fixtures

# What Debian's GRUB prints when shim's verifier refuses a kernel.
SHIM_REFUSAL = 'error: bad shim signature'
# How long the power-cycled unsigned instance is waited for: it cannot
# answer (its GRUB refuses the kernel); the serial console tells why.
REFUSAL_TIMEOUT = 300


class SecureBootKexecTest(fixtures.TestbedTestCase):
    """deploy_interface=kexec on an OVMF Secure Boot node."""

    firmware = tb_node.FIRMWARE_UEFI_SECUREBOOT
    boot_interface = secureboot.BOOT_INTERFACE

    def assertAgentBootedByShim(self, result):
        """The agent came through OVMF's PXE, shim and network GRUB."""
        log = self.testbed.spec.serial_log
        # The testbed's master grub.cfg (secureboot.INITIAL_GRUB_TEMPLATE).
        line = tb_node.find_line(log, 'Booting from (tftp,',
                                 result.started)
        self.assertIsNotNone(line, 'no network GRUB on the console')
        line = tb_node.find_line(log, 'Secure boot enabled', result.started)
        self.assertIsNotNone(line, 'the agent kernel saw no Secure Boot')

    def test_signed_kernel_kexec(self):
        """The Debian-signed kernel: kexec_file_load, still Secure Boot."""
        result = self.deploy('uefi_whole_disk', 'kexec')
        self.assertKexecHandoff(result)
        record = result.kexec_record
        # Under lockdown only kexec_file_load can load.
        self.assertEqual('kexec_file_load', record['entry']['method'],
                         record)
        self.assertAgentBootedByShim(result)
        # After the kexec (no firmware in between) the instance still
        # runs with Secure Boot on, EFI runtime and ACPI handed over.
        self.assertInstanceFirmware(result, secureboot=1)

    def test_unsigned_kernel_falls_back(self):
        """An unsigned kernel is refused (lockdown): the power cycle."""
        result = self.deploy('uefi_unsigned_disk', 'kexec',
                             usable_timeout=60)
        self.assertEqual('active', result.provision_state,
                         'last_error: %s' % result.last_error)
        record = result.kexec_record
        self.assertIsNotNone(record, 'no kexec record on the node')
        self.assertEqual('power-cycle', record.get('path'), record)
        self.assertEqual('lockdown', record.get('reason'), record)
        # The agent's refusal, by name: kexec_file_load of an unsigned
        # kernel under lockdown fails with ENODATA (kexec_load: EPERM).
        self.assertIn('kexec_file_load', record.get('message', ''), record)
        self.assertIn('No data available', record.get('message', ''),
                      record)
        self.assertTrue(
            [e for e in result.history_events() if 'lockdown' in e],
            result.history_events())
        self.assertNotEqual([], result.power_actions_after_handoff)
        self.assertEqual(1, result.firmware_runs_after_handoff)
        # The power-cycled boot: OVMF starts the disk's boot entry (the
        # agent's efibootmgr one: shim on the ESP), and the image's GRUB,
        # verifying through shim, refuses the unsigned kernel: the
        # instance never runs.
        log = self.testbed.spec.serial_log
        boot = tb_node.wait_for_line(log, 'BdsDxe: starting Boot',
                                     REFUSAL_TIMEOUT,
                                     since=result.events['handoff'])
        print('power-cycled boot: %s' % boot.text)
        self.assertIn('shimx64.efi', boot.text)
        self.assertNotIn('MAC(', boot.text)
        line = tb_node.wait_for_line(log, SHIM_REFUSAL, REFUSAL_TIMEOUT,
                                     since=boot.monotonic)
        print('power-cycled boot: %s' % line.text)
        self.assertIsNone(result.usable)
        self.assertIsNone(tb_node.find_line(
            log, timeline.INSTANCE_MARKER, result.events['handoff']))
