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

"""The conversation that hands a node from the agent to the instance.

:func:`load` then :func:`execute`; each turns every way the agent can fail
into :class:`ironic_kexec.errors.NotKexec` with a reason code of
:data:`ironic_kexec.protocol.REASONS`, so that the deploy interface only
decides between kexec and the power cycle.
"""

from http import client as http_client
import time

from ironic.common import exception
from ironic.conf import CONF
from ironic.drivers.modules import agent_client as ironic_agent_client
from oslo_log import log

from ironic_kexec import errors
from ironic_kexec import protocol

LOG = log.getLogger(__name__)

_SUCCEEDED = 'SUCCEEDED'

# How long a probe waits for the agent's answer. A live agent answers a
# status request in milliseconds; no answer in this time means the agent
# is gone.
_PROBE_TIMEOUT = 2.0


def _is_unknown_command(exc):
    # IPA answers 404 for an unknown extension and 400 "Invalid command:
    # Unknown command" for a command an older extension lacks.
    # IronicException keeps its keyword arguments as strings.
    try:
        status = int(exc.kwargs.get('status'))
    except (TypeError, ValueError):
        return False
    return (status == http_client.NOT_FOUND
            or (status == http_client.BAD_REQUEST
                and 'unknown command' in str(exc).lower()))


def _reason_from_exception(exc):
    if isinstance(exc, exception.AgentAPIError) and _is_unknown_command(exc):
        return protocol.REASON_AGENT_UNSUPPORTED
    if isinstance(exc, exception.AgentCommandTimeout):
        return protocol.REASON_TIMEOUT
    return protocol.REASON_AGENT_ERROR


def _not_done_from_failed_command(result, executed=False):
    error = result.get('command_error')
    reason = (protocol.reason_from_error(error)
              or protocol.REASON_AGENT_ERROR)
    details = error.get('details') if isinstance(error, dict) else None
    if isinstance(details, dict):
        message = details.get(protocol.DETAIL_MESSAGE) or str(details)
    else:
        message = ironic_agent_client.get_command_error(result)
    return errors.NotKexec(reason, message, executed=executed)


def _call(what, node, func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except Exception as e:
        # kexec is an optimisation: whatever goes wrong here, the power
        # cycle still works, so nothing escapes as a deploy failure.
        LOG.warning('kexec %(what)s failed for node %(node)s. '
                    '%(cls)s: %(err)s',
                    {'what': what, 'node': node.uuid,
                     'cls': e.__class__.__name__, 'err': e},
                    exc_info=not isinstance(e, exception.IronicException))
        raise errors.NotKexec(_reason_from_exception(e),
                              '%s: %s' % (e.__class__.__name__, e))


def load(task, client, params, attempt):
    """Make the agent load the instance kernel.

    :param task: a TaskManager instance.
    :param client: a ``KexecAgentClient``.
    :param params: the parameters of ``kexec.load``.
    :param attempt: a ``record.Attempt``; gets the seconds spent under
        'load', the boot entry and the agent's timings.
    :raises: NotKexec
    :returns: the command result: the boot entry and the load fields.
    """
    node = task.node
    start = time.monotonic()
    try:
        result = _call('load', node, client.kexec_load, node, params)
    finally:
        attempt.timings['load'] = time.monotonic() - start
    if result.get('command_status') != _SUCCEEDED:
        raise _not_done_from_failed_command(result)
    attempt.loaded(result.get('command_result'))


def execute(task, client, attempt):
    """Make the agent kexec, then wait until it stops answering.

    :param task: a TaskManager instance.
    :param client: a ``KexecAgentClient``.
    :param attempt: a ``record.Attempt``; gets the seconds spent under
        'execute' and 'agent_gone'.
    :raises: NotKexec; its ``executed`` is True when the agent may have
        received the command.
    """
    node = task.node
    start = time.monotonic()
    try:
        result = _call('execute', node, _send_execute, client, node)
    finally:
        attempt.timings['execute'] = time.monotonic() - start
    if result is not None and result.get('command_status') != _SUCCEEDED:
        raise _not_done_from_failed_command(result)

    start = time.monotonic()
    try:
        gone = _wait_until_gone(node, client)
    finally:
        attempt.timings['agent_gone'] = time.monotonic() - start
    if not gone:
        raise errors.NotKexec(
            protocol.REASON_EXECUTE_FAILED,
            'the agent still answered %g seconds after kexec.execute'
            % (CONF.kexec.execute_delay + CONF.kexec.agent_gone_timeout),
            executed=True)


def _send_execute(client, node):
    try:
        return client.kexec_execute(node, CONF.kexec.execute_delay)
    except exception.AgentConnectionFailed as e:
        # The answer may be lost because the kexec came first: only the
        # agent's silence tells.
        LOG.warning('No answer to kexec.execute from node %(node)s, '
                    'checking whether the agent is gone: %(err)s',
                    {'node': node.uuid, 'err': e})
        return None


def _wait_until_gone(node, client):
    # The agent answers on purpose during its delay: probing it then only
    # costs TLS handshakes, and only the time after it counts against the
    # timeout.
    time.sleep(CONF.kexec.execute_delay)
    deadline = time.monotonic() + CONF.kexec.agent_gone_timeout
    while True:
        if not client.agent_answers(node, _PROBE_TIMEOUT):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(CONF.kexec.agent_gone_interval)
