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

"""End-to-end: what an operator sets up for Nova users, and the emergency
stop, with the real ``baremetal`` client and a real SIGHUP.

Nova writes only ``instance_info/capabilities`` and
``instance_info/traits``; a trait selects the deploy template of the same
name, whose ``set_kexec_mode`` step chooses the mode of that deploy.
"""

import json
import os
import signal
import time

from tests.functional import fixtures

TEMPLATE = 'CUSTOM_KEXEC_DISABLED'
STEP_SOURCE = 'deploy step set_kexec_mode (deploy template %s)' % TEMPLATE


class OperatorTest(fixtures.TestbedTestCase):
    """Nova's trait and deploy template; the emergency stop."""

    def test_template_disables_kexec(self):
        tb = self.testbed
        steps = [{'interface': 'deploy', 'step': 'set_kexec_mode',
                  'args': {'mode': 'disabled'}, 'priority': 150}]
        tb.baremetal('deploy', 'template', 'create', TEMPLATE,
                     '--steps', json.dumps(steps))
        self.addCleanup(tb.baremetal, 'deploy', 'template', 'delete',
                        TEMPLATE, parse=False)
        # Ironic deploys only with instance traits the node has (as
        # Placement would only pick a node that has them).
        tb.baremetal('node', 'add', 'trait', tb.node_uuid, TEMPLATE,
                     parse=False)
        self.addCleanup(tb.baremetal, 'node', 'remove', 'trait',
                        tb.node_uuid, TEMPLATE, parse=False)

        # What Nova writes for a flavor with trait:CUSTOM_KEXEC_DISABLED=
        # required: a list. The client JSON-decodes the value of
        # --instance-info KEY=VALUE (ironicclient's split_and_deserialize).
        # Undeploying (the cleanup of deploy(), run first) forgets it.
        result = self.deploy('whole_disk', 'kexec',
                             instance_info={'traits': json.dumps([TEMPLATE])})

        self.assertEqual([TEMPLATE],
                         result.node['instance_info'].get('traits'))
        # Through the BMC and the firmware, like the stock deploy.
        self.assertFellBack(result, 'disabled')
        record = result.kexec_record
        self.assertEqual('disabled', record.get('mode'), record)
        self.assertEqual(STEP_SOURCE, record.get('mode_source'), record)
        internal = result.node['driver_internal_info']
        self.assertEqual({'mode': 'disabled', 'source': STEP_SOURCE},
                         internal.get('kexec_mode_step'))
        self.assertInstanceCmdlineClean(result)

    def test_sighup_is_the_emergency_stop(self):
        """[kexec]enabled is mutable: False and a SIGHUP stop kexec at once.

        No restart: the same Ironic process deploys the next node with the
        stock power cycle.
        """
        tb = self.testbed
        pid = tb.ironic.process.pid
        self._set_enabled(False)
        self.addCleanup(self._set_enabled, True)
        result = self.deploy('whole_disk', 'kexec')
        self.assertIsNone(tb.ironic.process.poll())
        self.assertEqual(pid, tb.ironic.process.pid)
        self.assertFellBack(result, 'disabled')
        record = result.kexec_record
        self.assertEqual('[kexec]enabled', record.get('mode_source'), record)

    def _set_enabled(self, enabled):
        tb = self.testbed
        tb.ironic.kexec_options['enabled'] = str(enabled)
        tb.ironic.write_config()
        os.kill(tb.ironic.process.pid, signal.SIGHUP)
        # The API answers again once the reloaded services run.
        time.sleep(5)
        tb.ironic.wait_for_api(120)
