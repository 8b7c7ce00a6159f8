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

"""The ``kexec`` deploy interface.

The ``direct`` deploy, except that the agent is torn down by a kexec into
the deployed kernel instead of a power off, and the instance is then
already running instead of being powered on. Whenever kexec is not
possible the stock steps run unchanged, unless the mode is ``required``.
"""

from ironic.common import metrics_utils
from ironic.common import states
from ironic.conductor import task_manager
from ironic.conductor import utils as manager_utils
from ironic.conf import CONF
from ironic.drivers import base
from ironic.drivers.modules import agent
from ironic.drivers.modules import agent_base
from ironic.drivers import utils as driver_utils
from oslo_log import log

from ironic_kexec import agent_client
from ironic_kexec import handover
from ironic_kexec import interface
from ironic_kexec import policy
from ironic_kexec import record

LOG = log.getLogger(__name__)

METRICS = metrics_utils.get_metrics_logger(__name__)


class KexecDeploy(interface.KexecInterfaceMixin, agent.AgentDeploy):
    """The direct deploy, ending with kexec instead of a power cycle."""

    @METRICS.timer('KexecDeploy.prepare')
    @task_manager.require_exclusive_lock
    def prepare(self, task):
        if task.node.provision_state == states.DEPLOYING:
            # A new deploy: a record of the previous one must not make
            # boot_instance skip the power on.
            record.clear(task.node)
        super().prepare(task)

    @METRICS.timer('KexecDeploy.tear_down_agent')
    @base.deploy_step(priority=40)
    @task_manager.require_exclusive_lock
    def tear_down_agent(self, task):
        """Tear down the agent by a kexec into the instance kernel.

        Falls back to the stock tear down (a power off) when kexec is not
        possible, or fails the deploy in ``required`` mode.

        :param task: a TaskManager object containing the node
        """
        node = task.node
        record.clear(node)
        mode = policy.get_mode(node)
        skip = policy.reason_to_skip(task, mode)
        if skip is not None:
            return self._fall_back(task, mode, *skip)

        client = agent_client.get_client(task)
        timings = {}
        entry = None
        agent_timings = None
        try:
            result = handover.load(task, client, policy.load_params(task),
                                   timings)
            entry = record.entry_from_result(result)
            agent_timings = result.get('timings')
            if CONF.agent.deploy_logs_collect == 'always':
                # Now or never: the agent is about to go away.
                driver_utils.collect_ramdisk_logs(node)
            handover.execute(task, client, timings)
        except handover.KexecNotDone as e:
            return self._fall_back(task, mode, e.reason, e.message,
                                   executed=e.executed, entry=entry,
                                   timings=timings,
                                   agent_timings=agent_timings)

        # What a power off would wipe: the agent, its URL and token are
        # gone, whatever heartbeats next is a new agent.
        manager_utils.wipe_internal_info_on_power_off(node)
        record.kexec(node, mode, entry, timings, agent_timings)

    def _fall_back(self, task, mode, reason, message, executed=False,
                   entry=None, timings=None, agent_timings=None):
        node = task.node
        self._give_up_kexec(task, mode, reason, message, entry, timings,
                            agent_timings)
        if not executed:
            return super().tear_down_agent(task)

        # The agent was told to kexec and may still do it any moment: a
        # soft power off through it would race that, the BMC does not.
        try:
            manager_utils.node_power_action(task, states.POWER_OFF)
        except Exception as e:
            msg = ('Error powering off node %(node)s after a failed kexec. '
                   '%(cls)s: %(error)s' %
                   {'node': node.uuid, 'cls': e.__class__.__name__,
                    'error': e})
            agent_base.log_and_raise_deployment_error(task, msg, exc=e)

    @METRICS.timer('KexecDeploy.boot_instance')
    @base.deploy_step(priority=20)
    @task_manager.require_exclusive_lock
    def boot_instance(self, task):
        """Boot the instance, unless kexec already did.

        :param task: a TaskManager object containing the node
        """
        if record.booted_by_kexec(task.node):
            LOG.info('Node %s is already running the instance kernel '
                     '(kexec), not powering it on', task.node.uuid)
            return
        super().boot_instance(task)
