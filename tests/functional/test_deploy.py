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

"""End-to-end deploys: a real Ironic, IPMI, agent and QEMU node.

Whether a deploy went through the firmware is read from SeaBIOS's own
log (one line per firmware run, see testbed.node) and from the virtual
BMC's log of power actions, not from what Ironic says it did.
"""

from testbed import node as tb_node
from tests.functional import fixtures


class KexecDeployTest(fixtures.TestbedTestCase):
    """deploy_interface=kexec: the agent kexecs into the instance."""

    def assertCounted(self, before, name):
        """The testbed's statsd received ``name`` once since ``before``."""
        after = self.testbed.metrics_counters()
        self.assertEqual(1, after.get(name, 0) - before.get(name, 0), after)

    def test_whole_disk(self):
        before = self.testbed.metrics_counters()
        result = self.deploy('whole_disk', 'kexec')
        self.assertKexecHandoff(result)
        self.assertCounted(before, 'ironic_kexec.record.path.kexec')

    def test_hung_kexec_recovered_by_bmc(self):
        """The kexec'd kernel never comes up: the BMC brings the instance up.

        ``init=/bin/false`` on the kexec'd kernel only: its init exits,
        the kernel panics and hangs (Debian's kernels do not reboot on a
        panic). The power cycle boots grub's entry, without it.
        """
        tb = self.testbed
        self.addCleanup(tb.baremetal, 'node', 'unset', tb.node_uuid,
                        '--driver-info', 'kexec_failures', parse=False)
        result = self.deploy('whole_disk', 'kexec',
                             instance_info={'kexec_extra_args':
                                            'init=/bin/false'})
        self.assertDeployedActive(result)
        record = result.kexec_record
        self.assertEqual('power-cycle', record.get('path'), record)
        self.assertEqual('not_verified', record.get('reason'), record)
        self.assertIn('init=/bin/false', record['entry']['cmdline'])
        self.assertEqual('failed', record['verify']['status'], record)
        self.assertEqual('verified', record['recovery']['status'], record)
        self.assertGreater(record['timings']['recovery'], 0)
        # The hang was real: the kexec'd kernel panicked on the console.
        self.assertIsNotNone(tb_node.find_line(
            tb.spec.serial_log, 'Attempted to kill init',
            result.events['handoff']))
        # Recovered through the BMC and the firmware, after the kexec.
        self.assertNotEqual([], result.power_actions_after_handoff)
        self.assertEqual(1, result.firmware_runs_after_handoff)
        self.assertNotIn('init=/bin/false', result.instance_cmdline)
        # grub itself then booted its default entry: the agent had chosen
        # exactly what grub boots, its command line included.
        self.assertEqual(result.instance_cmdline.split() + ['init=/bin/false'],
                         record['entry']['cmdline'].split())
        events = result.history_events()
        self.assertTrue([e for e in events if 'not_verified' in e], events)
        self.assertTrue([e for e in events
                         if 'recovered by a power cycle' in e], events)
        # The circuit breaker counted it.
        driver_info = result.node['driver_info']
        self.assertEqual(1, int(driver_info.get('kexec_failures')),
                         driver_info)

    def test_partition(self):
        result = self.deploy('partition', 'kexec')
        self.assertKexecHandoff(result)

    def test_fallback_no_kernel(self):
        """No kernel to find: the deploy still succeeds, by power cycle."""
        before = self.testbed.metrics_counters()
        result = self.deploy('no_kernel_disk', 'kexec')
        # Through the BMC and the firmware, like the stock deploy.
        self.assertFellBack(result, 'no_kernel')
        self.assertInstanceCmdlineClean(result)
        self.assertCounted(
            before, 'ironic_kexec.record.path.power-cycle.no_kernel')


class DirectDeployTest(fixtures.TestbedTestCase):
    """The stock deploy interface: the baseline kexec is measured against."""

    def test_whole_disk_direct(self):
        result = self.deploy('whole_disk', 'direct')
        self.assertStockPowerCycle(result)
