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
from ironic.drivers import base
from ironic.drivers.modules import agent
from ironic.drivers.modules import agent_base
from oslo_log import log

from ironic_kexec import interface
from ironic_kexec import policy
from ironic_kexec import record

LOG = log.getLogger(__name__)

METRICS = metrics_utils.get_metrics_logger(__name__)


class KexecDeploy(interface.KexecInterfaceMixin, agent.AgentDeploy):
    """The direct deploy, ending with kexec instead of a power cycle."""

    decision_step = ('tear_down_agent', 40)
    interface_name = 'kexec'

    @METRICS.timer('KexecDeploy.prepare')
    @task_manager.require_exclusive_lock
    def prepare(self, task):
        if task.node.provision_state == states.DEPLOYING:
            # A new deploy: a record of the previous one must not make
            # boot_instance skip the power on, nor the mode its deploy
            # template chose apply to this one.
            record.clear(task.node)
            policy.clear_step_mode(task.node)
        super().prepare(task)

    def _kexec_load_params(self, task, attempt):
        return policy.load_params(task)

    @METRICS.timer('KexecDeploy.tear_down_agent')
    @base.deploy_step(priority=40)
    @task_manager.require_exclusive_lock
    def tear_down_agent(self, task):
        """Tear down the agent by a kexec into the instance kernel.

        Falls back to the stock tear down (a soft power off through the
        agent) when kexec is not possible, or fails the deploy in
        ``required`` mode. When the agent may still kexec, or does not
        answer, the node is powered off through the BMC instead: the stock
        tear down would race the kexec, or wait minutes for the agent.

        :param task: a TaskManager object containing the node
        """
        not_kexec = self._kexec(task)
        if not_kexec is None:
            return None
        if not not_kexec.bmc_only:
            return super().tear_down_agent(task)
        try:
            manager_utils.node_power_action(task, states.POWER_OFF)
        except Exception as e:
            msg = ('Error powering off node %(node)s after a failed kexec '
                   '(%(reason)s). %(cls)s: %(err)s' %
                   {'node': task.node.uuid, 'reason': not_kexec.reason,
                    'cls': e.__class__.__name__, 'err': e})
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
