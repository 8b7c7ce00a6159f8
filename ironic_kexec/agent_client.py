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

"""Ironic's agent client, taught the commands of the ``kexec`` extension."""

import copy
import time

from ironic.common import exception
from ironic.common import metrics_utils
from ironic.conf import CONF
from ironic.drivers.modules import agent_client
from oslo_log import log
import requests
import tenacity

from ironic_kexec import conf  # noqa: F401  registers [kexec]
from ironic_kexec import protocol

LOG = log.getLogger(__name__)

METRICS = metrics_utils.get_metrics_logger(__name__)

_RUNNING = 'RUNNING'


def get_client(task):
    """The task's agent client, shared with Ironic's own agent code.

    Ironic caches a plain ``AgentClient`` on the task; replacing it with
    this subclass lets the stock code (e.g. ``soft_power_off``) and ours
    share one HTTP session.
    """
    client = getattr(task, 'cached_agent_client', None)
    if not isinstance(client, KexecAgentClient):
        client = KexecAgentClient()
        task.cached_agent_client = client
    return client


class KexecAgentClient(agent_client.AgentClient):
    """Agent client with the ``kexec.*`` commands."""

    @METRICS.timer('KexecAgentClient.kexec_get_boot_entry')
    def kexec_get_boot_entry(self, node, params):
        """Ask the agent which kernel it would boot. Nothing is loaded.

        :param node: A Node object.
        :param params: the parameters of :data:`protocol.GET_BOOT_ENTRY`.
        :raises: the exceptions of ``AgentClient._command``.
        :returns: the command result, see ``get_commands_status``.
        """
        return self._command(
            node=node,
            method=protocol.command_name(protocol.GET_BOOT_ENTRY),
            params=params, wait=True)

    def _bounded(self, seconds, bound):
        """This client, with all its requests bounded by one deadline.

        Ironic's ``_command`` and ``get_commands_status`` give each request
        ``[agent]command_timeout`` and retry it ``[agent]max_command_attempts``
        times, checking the agent's command list between attempts: minutes
        for an agent that stopped answering (a paused VM, a dead link),
        which an option of ours must bound. Their logic is kept; only the
        session under them is bounded, in a copy, so that the client
        shared on the task is unchanged.
        """
        bounded = copy.copy(self)
        bounded.session = _DeadlineSession(
            self.session, time.monotonic() + seconds,
            '%s (%g s) has passed' % (bound, seconds))
        return bounded

    @METRICS.timer('KexecAgentClient.kexec_load')
    def kexec_load(self, node, params, timeout=None):
        """Load the instance kernel in the agent and wait for the result.

        Everything, the request, its retries and the polling, ends within
        ``timeout`` seconds, whether the agent works slowly or has stopped
        answering.

        :param node: A Node object.
        :param params: the parameters of :data:`protocol.LOAD`.
        :param timeout: seconds for the whole command, defaults to
            ``[kexec]load_timeout``.
        :raises: AgentCommandTimeout if the agent still reported the command
            running at the deadline.
        :raises: AgentConnectionFailed if the agent did not answer, at the
            deadline or before it.
        :raises: the other exceptions of ``AgentClient._command``.
        :returns: the finished command's status; ``command_status`` is
            ``SUCCEEDED`` or ``FAILED``.
        """
        client = self._bounded(
            timeout if timeout is not None else CONF.kexec.load_timeout,
            '[kexec]load_timeout')
        method = protocol.command_name(protocol.LOAD)
        result = client._command(node=node, method=method, params=params)
        if result.get('command_status') != _RUNNING:
            return result
        return client._wait_until_done(node, method)

    def _wait_until_done(self, node, method):
        # NOTE: Ironic's _wait_for_command takes its bounds from [agent]
        # at import time. Polling goes on through lost answers: the
        # deadline of the session under it decides, and the last error
        # tells whether the agent was slow or gone.
        @tenacity.retry(
            retry=tenacity.retry_if_exception_type(
                (exception.AgentCommandTimeout,
                 exception.AgentConnectionFailed)),
            stop=lambda _state: self.session.expired(),
            wait=tenacity.wait_fixed(CONF.kexec.load_poll_interval),
            sleep=time.sleep,
            reraise=True)
        def _poll():
            result = self.get_last_command_status(node, method)
            if result is None or result.get('command_status') == _RUNNING:
                raise exception.AgentCommandTimeout(command=method,
                                                    node=node.uuid)
            return result

        try:
            return _poll()
        except exception.AgentConnectionFailed:
            if self.session.answered:
                # The agent answered its last request: only the deadline
                # kept the next one from being sent.
                raise exception.AgentCommandTimeout(command=method,
                                                    node=node.uuid)
            raise

    @METRICS.timer('KexecAgentClient.kexec_execute')
    def kexec_execute(self, node, delay):
        """Tell the agent to kexec into the loaded kernel.

        The call is never retried: the agent goes away on purpose once it
        has answered, and a second command would at best find it busy. The
        request and Ironic's check of a lost answer together take at most
        ``[agent]command_timeout``.

        :param node: A Node object.
        :param delay: seconds the agent waits between its answer and the
            kexec.
        :raises: AgentConnectionFailed if the answer was lost; the agent may
            or may not have received the command.
        :raises: the other exceptions of ``AgentClient._command``.
        :returns: the command result, see ``get_commands_status``.
        """
        command = agent_client.AgentClient._command.retry_with(
            stop=tenacity.stop_after_attempt(1))
        return command(self._bounded(CONF.agent.command_timeout,
                                     '[agent]command_timeout'),
                       node=node,
                       method=protocol.command_name(protocol.EXECUTE),
                       params={protocol.PARAM_DELAY: delay}, wait=True)

    def agent_answers(self, node, timeout):
        """Whether the agent answers a status request within ``timeout``.

        Unlike ``get_commands_status`` this neither retries nor waits for
        ``[agent]command_timeout``: after a kexec the agent's address may
        silently drop packets, and this probe is on the deploy's critical
        path. A refused or unanswered connection, or no answer in time,
        means the agent is gone; anything that answers is taken as the
        agent (an error page included), the safe side, since a wrong
        "gone" would leave the node in the ramdisk.

        :param node: A Node object.
        :param timeout: seconds to wait for an answer.
        """
        try:
            url = self._get_command_url(node)
        except exception.AgentConnectionFailed:
            return False
        params = {}
        token = node.driver_internal_info.get('agent_secret_token')
        if token:
            params['agent_token'] = token
        try:
            self.session.get(url, params=params,
                             verify=self._get_verify(node),
                             timeout=timeout)
        except (requests.ConnectionError, requests.Timeout) as e:
            LOG.debug('The agent of node %(node)s does not answer: '
                      '%(err)s', {'node': node.uuid, 'err': e})
            return False
        except requests.RequestException as e:
            LOG.warning('Unexpected error probing the agent of node '
                        '%(node)s, assuming it still runs: %(err)s',
                        {'node': node.uuid, 'err': e})
        return True


class _DeadlineSession(object):
    """A ``requests.Session`` whose requests all end by one deadline.

    Each request's timeout is cut to the time left; once it is spent, a
    request fails at once as a timeout, which Ironic's agent client
    handles as an agent that does not answer. requests applies a timeout
    to each socket operation, so an agent that trickles bytes could still
    overrun the deadline; one that is gone cannot.
    """

    def __init__(self, session, deadline, why):
        self._session = session
        self._deadline = deadline
        self._why = why
        # Whether the last request sent got an answer (None: none sent).
        self.answered = None

    def expired(self):
        return time.monotonic() >= self._deadline

    def _timeout(self, kwargs):
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise requests.Timeout(self._why)
        timeout = kwargs.get('timeout')
        kwargs['timeout'] = left if timeout is None else min(timeout, left)
        return kwargs

    def _send(self, request, url, kwargs):
        kwargs = self._timeout(kwargs)
        try:
            response = request(url, **kwargs)
        except requests.RequestException:
            self.answered = False
            raise
        self.answered = True
        return response

    def get(self, url, **kwargs):
        return self._send(self._session.get, url, kwargs)

    def post(self, url, **kwargs):
        return self._send(self._session.post, url, kwargs)
