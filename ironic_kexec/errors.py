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


"""The one way the conductor side says "this deploy does not kexec"."""

from ironic_kexec import protocol


class NotKexec(Exception):
    """kexec is not possible, or did not happen; the node is power cycled.

    Raised by :mod:`ironic_kexec.policy` before anything is asked of the
    agent, and by :mod:`ironic_kexec.handover` when the agent could not
    load or execute; the deploy interface then falls back to the stock
    power cycle, or fails the deploy in ``required`` mode.

    :param reason: a reason code of :data:`ironic_kexec.protocol.REASONS`.
    :param message: what happened, for the operator.
    :param executed: True if the agent was told to kexec, so that it
        might still do it any moment.
    """

    def __init__(self, reason, message, executed=False):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.executed = executed

    @property
    def bmc_only(self):
        """Whether only the BMC may stop the node now, not the agent.

        The agent was told to kexec and may still do it any moment, or it
        stopped answering: a power off through it would race the kexec, or
        wait for an agent that is gone.
        """
        return (self.executed
                or self.reason == protocol.REASON_AGENT_UNREACHABLE)
