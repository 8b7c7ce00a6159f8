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

"""End-to-end diskless deploys: deploy_interface=ramdisk-kexec.

The instance is the testbed's busybox kernel and initramfs, network
booted by Ironic's iPXE configuration, or kexec'd by a running agent.
A running agent before the deploy is what fast track gives: ``provide``
runs automated cleaning (with no real clean steps), which boots the agent
and, with ``[deploy]fast_track``, leaves it running and heartbeating.
"""

from testbed import scenario
from testbed import timeline
from tests.functional import fixtures

# What iPXE adds to the command line and kexec has no use for: the
# initrd is passed by kexec itself.
IPXE_INITRD_ARG = 'initrd=ramdisk'
# What Ironic's build_extra_pxe_options appends to every iPXE ramdisk
# entry, the instance's too: no option keeps them out.
IRONIC_IPA_ARGS = ('ipa-debug', 'ipa-global-request-id')


def _cmdline(answer):
    """The instance's /proc/cmdline words, from its port's answer."""
    return answer.split(scenario._PortProbe.MARK, 1)[1].split()


class _DisklessTestCase(fixtures.TestbedTestCase):
    """A testbed class whose Ironic takes extra options."""

    def assertInstanceCmdlineClean(self, result):
        """The instance runs its own command line, not the agent's.

        Unlike a disk instance's, a diskless instance's command line is
        the one Ironic's iPXE ramdisk entry gives, which always carries
        IRONIC_IPA_ARGS; none of the agent's own arguments (BOOTIF,
        ipa-api-url, ipa-advertise-*, ...) may be there.
        """
        cmdline = _cmdline(result.instance_answer)
        self.assertIn('console=ttyS0,115200', cmdline)
        self.assertEqual([], [a for a in cmdline if a.startswith('ipa-')
                              and a.split('=')[0] not in IRONIC_IPA_ARGS])
        self.assertEqual([], [a for a in cmdline
                              if a.startswith('BOOTIF')])


class DisklessKexecTest(_DisklessTestCase):
    """Fast track: the agent left by cleaning kexecs into the instance."""

    ironic_options = scenario.FAST_TRACK_CLEANING
    provide_timeout = scenario.CLEANING_PROVIDE_TIMEOUT

    def test_kexec_then_reboot(self):
        tb = self.testbed
        self.assertTrue(tb.agent_alive(),
                        'no live agent after provide: %s' % (
                            tb.api_node().get('driver_internal_info')))

        result = self.deploy('diskless', 'ramdisk-kexec')
        self.assertDeployedActive(result)
        record = result.kexec_record
        self.assertIsNotNone(record, 'no kexec record on the node')
        self.assertEqual('kexec', record.get('path'), record)
        self.assertIsNone(record.get('reason'), record)
        self.assertEqual('url', (record.get('entry') or {}).get('source'),
                         record)
        # The agent was booted by cleaning, before the deploy: the deploy
        # itself ran no firmware at all, and no power action followed the
        # handoff.
        self.assertEqual(0, result.firmware_runs)
        self.assertEqual(0, result.firmware_runs_after_handoff)
        self.assertEqual([], result.power_actions_after_handoff)
        kernel = result.events.get('instance kernel')
        self.assertIsNotNone(kernel, 'no instance kernel after the handoff')
        self.assertLess(result.events['handoff'], kernel)
        self.assertLess(kernel, result.usable)
        self.assertInstanceCmdlineClean(result)
        # The conductor saw the instance answer before it said active.
        self.assertEqual('verified', (record.get('verify') or {}).get(
            'status'), record)

        # The kexec'd instance runs the command line of Ironic's iPXE
        # entry, but for the initrd argument only iPXE needs.
        ipxe = tb.ipxe_ramdisk_cmdline().split()
        self.assertIn(IPXE_INITRD_ARG, ipxe)
        self.assertEqual([a for a in ipxe if a != IPXE_INITRD_ARG],
                         _cmdline(result.instance_answer))

        # A power cycle through the BMC network-boots the same instance,
        # as after a stock ramdisk deploy.
        reboot = tb.reboot()
        self._save(reboot, 'reboot')
        print(timeline.format_side_by_side([result, reboot]))
        print(reboot.summary())
        self.assertIsNone(reboot.error, reboot.error)
        self.assertEqual('active', reboot.provision_state)
        self.assertIsNotNone(reboot.usable)
        self.assertEqual(1, reboot.firmware_runs)
        self.assertNotEqual([], reboot.power_actions_after_handoff)
        self.assertIsNotNone(reboot.events.get('instance kernel'))
        self.assertEqual(ipxe, _cmdline(reboot.instance_answer))


class DisklessNoAgentTest(_DisklessTestCase):
    """No fast track: no agent to kexec from, the stock network boot."""

    def test_fallback_no_agent(self):
        tb = self.testbed
        self.assertFalse(tb.agent_alive())

        result = self.deploy('diskless', 'ramdisk-kexec')
        # Through the BMC and the firmware, like the stock ramdisk deploy;
        # no agent was ever booted.
        self.assertFellBack(result, 'no_agent')
        self.assertEqual(1, result.firmware_runs)
        self.assertIsNone(result.events.get('agent starting'))
        self.assertInstanceCmdlineClean(result)
        self.assertEqual(tb.ipxe_ramdisk_cmdline().split(),
                         _cmdline(result.instance_answer))
