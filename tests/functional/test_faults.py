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

"""A representative subset of the fault matrix (testbed.faults), in CI.

The whole matrix runs with ``tox -e faults`` (about an hour); here four
faults on one testbed, one of each kind of end:

* 13a, ``required`` mode and no kernel to find: the deploy fails, with the
  reason in last_error, and the node is deployed again afterwards;
* 7, the agent's ``kexec -e`` does nothing (an agent ramdisk variant):
  the BMC power-cycles the node, ``execute_failed``;
* 11, Ironic is killed while the handoff is being verified and started
  again on the same database: the restarted conductor finishes the
  verification;
* 6b, the VM is paused (QMP ``stop``) while the agent loads: the
  fallback comes within ``[kexec]load_timeout``, through the BMC,
  ``agent_unreachable``.

Each checks the matrix's own verdict (expected end state, path and reason;
no node stuck; the record agrees with the BMC's power log, the firmware's
log and the instance's answer) and says what differs.
"""

import json
import os

from testbed import faults
from tests.functional import fixtures


class FaultMatrixTest(fixtures.TestbedTestCase):
    """Faults injected into kexec deploys; one testbed for the class."""

    kexec_options = faults.KEXEC_OPTIONS

    @classmethod
    def build_images(cls):
        # The fault images (agent and image variants) too.
        from testbed import images
        return images.ensure_fault_images(super().build_images())

    @classmethod
    def extra_image_dirs(cls, images):
        return [images.fault_dir]

    def run_fault(self, number, redeploy=False):
        tb = self.testbed
        obs = faults.run_fault(tb, faults.BY_NUMBER[number], tb.images,
                               redeploy=redeploy)
        out = os.path.join(self.workdir, 'fault-%s.json' % number)
        with open(out, 'w') as f:
            json.dump(obs, f, indent=1, sort_keys=True, default=str)
        print(faults.format_markdown([obs], {}))
        self.assertFalse(obs['stuck'], 'node stuck: %s' % obs['state'])
        self.assertEqual([], obs['disagreements'])
        self.assertEqual([], obs['problems'])
        if redeploy:
            self.assertTrue(obs['redeploy']['ok'], obs['redeploy'])
        return obs

    def test_fault_13a_required_no_kernel(self):
        obs = self.run_fault('13a', redeploy=True)
        self.assertIn('no_kernel', obs['last_error'])
        # Nothing was kexec'd, and the failed deploy left the node off.
        self.assertEqual(0, obs['firmware_runs_after_handoff'])

    def test_fault_7_execute_noop(self):
        obs = self.run_fault('7')
        # The BMC powered the node off and on after the handoff.
        self.assertIn('IPMI power off', obs['power_after_handoff'])
        self.assertIn('node on (boot hd)', obs['power_after_handoff'])

    def test_fault_11_conductor_killed_during_verification(self):
        obs = self.run_fault('11')
        self.assertEqual('kexec', obs['record']['path'])
        self.assertEqual('verified', obs['record']['verify']['status'])
        self.assertTrue([n for n in obs['notes'] if 'restarted' in n],
                        obs['notes'])

    def test_fault_6b_vm_paused_during_load(self):
        obs = self.run_fault('6b')
        self.assertEqual('agent_unreachable', obs['record']['reason'])
        self.assertLessEqual(obs['record']['timings']['load'],
                             int(faults.KEXEC_OPTIONS['load_timeout']) + 15)
        self.assertTrue(obs['power_after_handoff'].startswith(
            'IPMI power off'), obs['power_after_handoff'])
