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


"""What both kexec deploy interfaces add to their stock parents."""

from ironic.common import metrics_utils
from ironic.conductor import task_manager
from ironic.drivers.modules import agent_base

from ironic_kexec import conf as kexec_conf
from ironic_kexec import policy
from ironic_kexec import record

METRICS = metrics_utils.get_metrics_logger(__name__)


class KexecInterfaceMixin(object):
    """Validation, properties, the record's life and giving up on kexec.

    Mixed in before a stock deploy interface, which ``super()`` reaches.
    """

    def get_properties(self):
        props = super().get_properties().copy()
        props.update(policy.PROPERTIES)
        return props

    @METRICS.timer('KexecInterfaceMixin.validate')
    def validate(self, task):
        super().validate(task)
        policy.validate(task.node)

    @METRICS.timer('KexecInterfaceMixin.tear_down')
    @task_manager.require_exclusive_lock
    def tear_down(self, task):
        # The record belongs to the instance going away; a later deploy
        # through another interface must not show it as its own.
        record.clear(task.node)
        return super().tear_down(task)

    def _give_up_kexec(self, task, mode, reason, message, entry=None,
                       timings=None, agent_timings=None):
        """Record a fallback to the power cycle, or fail the deploy.

        In ``required`` mode the deploy fails with the reason code and
        the agent's message in ``last_error``; otherwise the fallback is
        recorded and the caller goes on with the stock path.
        """
        node = task.node
        if mode == kexec_conf.MODE_REQUIRED:
            record.failed(node, mode, reason, message, entry, timings,
                          agent_timings)
            msg = ('kexec is required for node %(node)s but not possible '
                   '(%(reason)s): %(msg)s' %
                   {'node': node.uuid, 'reason': reason, 'msg': message})
            agent_base.log_and_raise_deployment_error(task, msg)
        record.fallback(node, mode, reason, message, entry, timings,
                        agent_timings)
