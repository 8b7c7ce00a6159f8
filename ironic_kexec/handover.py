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
import re
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


# IPA's answer to parameters a command does not take, e.g. "Invalid
# command parameters: unknown parameters: deny, protocol_version".
_UNKNOWN_PARAMS = re.compile(r'unknown parameters: ([a-z_, ]+)')


def _predates_versions(exc):
    """Whether the agent refused ``protocol_version`` as unknown.

    That is an agent of protocol version 1, which knows no versions.
    """
    if not isinstance(exc, exception.AgentAPIError):
        return False
    try:
        status = int(exc.kwargs.get('status'))
    except (TypeError, ValueError):
        return False
    found = _UNKNOWN_PARAMS.search(str(exc.kwargs.get('error') or exc))
    return (status == http_client.BAD_REQUEST and found is not None
            and protocol.PARAM_PROTOCOL_VERSION
            in [name.strip() for name in found.group(1).split(',')])


def _reason_from_exception(exc):
    if isinstance(exc, exception.AgentAPIError) and _is_unknown_command(exc):
        return protocol.REASON_AGENT_UNSUPPORTED
    if _predates_versions(exc):
        return protocol.REASON_PROTOCOL_MISMATCH
    if isinstance(exc, exception.AgentCommandTimeout):
        return protocol.REASON_TIMEOUT
    if isinstance(exc, exception.AgentConnectionFailed):
        return protocol.REASON_AGENT_UNREACHABLE
    return protocol.REASON_AGENT_ERROR


_UPGRADE_HINT = ('build the agent ramdisk from the conductor\'s release of '
                 'ironic-kexec (the ironic-kexec element\'s '
                 'IPA_KEXEC_VERSION)')


def _mismatch_message(agent_version, why):
    return ('the agent speaks kexec protocol version %(agent)s, this '
            'conductor version %(conductor)d: %(why)s; %(hint)s'
            % {'agent': agent_version, 'conductor': protocol.PROTOCOL_VERSION,
               'why': why, 'hint': _UPGRADE_HINT})


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
        reason = _reason_from_exception(e)
        if reason == protocol.REASON_PROTOCOL_MISMATCH:
            raise errors.NotKexec(reason, _mismatch_message(
                1, 'its kexec extension predates protocol versions and '
                'refused the protocol_version parameter'))
        raise errors.NotKexec(reason, '%s: %s' % (e.__class__.__name__, e))


def _check_agent_version(node, params, command_result, attempt):
    """Check the agent's protocol version, from a successful load.

    Keeps it in ``attempt.agent_protocol_version``.

    :raises: NotKexec (protocol_mismatch) when the agent reports no
        version it could have honoured the request with.
    """
    version = command_result.get(protocol.FIELD_PROTOCOL_VERSION)
    if version is None:
        # Agents of version 1 report none (and refuse protocol_version, so
        # this one is odd): the version checks below still hold.
        LOG.warning('The kexec extension of the agent of node %(node)s '
                    'reported no protocol version with kexec.load; taken '
                    'as version 1', {'node': node.uuid})
        version = 1
    elif not protocol.is_version(version):
        raise errors.NotKexec(
            protocol.REASON_PROTOCOL_MISMATCH, _mismatch_message(
                repr(version)[:40], 'that is not a protocol version'))
    attempt.agent_protocol_version = version
    needed = protocol.version_needed(params)
    if version < needed:
        # It cannot have honoured what its version does not know (deny
        # rules): what it loaded must not be booted.
        raise errors.NotKexec(
            protocol.REASON_PROTOCOL_MISMATCH, _mismatch_message(
                version, 'this deploy needs version %d (%s)'
                % (needed, protocol.PROTOCOL_VERSIONS[needed])))


def load(task, client, params, attempt):
    """Make the agent load the instance kernel.

    :param task: a TaskManager instance.
    :param client: a ``KexecAgentClient``.
    :param params: the parameters of ``kexec.load``.
    :param attempt: a ``record.Attempt``; gets the seconds spent under
        'load', the boot entry, the agent's timings and protocol version.
    :raises: NotKexec; ``protocol_mismatch`` when the agent does not
        serve this conductor's protocol version, or reports a version
        lower than the parameters need.
    :returns: the command result: the boot entry and the load fields.
    """
    node = task.node
    start = time.monotonic()
    try:
        result = _call('load', node, client.kexec_load, node, params)
    except errors.NotKexec as e:
        if e.reason == protocol.REASON_PROTOCOL_MISMATCH:
            attempt.agent_protocol_version = 1
        raise
    finally:
        attempt.timings['load'] = time.monotonic() - start
    if result.get('command_status') != _SUCCEEDED:
        not_done = _not_done_from_failed_command(result)
        if not_done.reason == protocol.REASON_PROTOCOL_MISMATCH:
            error = result.get('command_error')
            details = error.get('details') if isinstance(error, dict) else {}
            version = (details.get(protocol.DETAIL_PROTOCOL_VERSION)
                       if isinstance(details, dict) else None)
            if protocol.is_version(version):
                attempt.agent_protocol_version = version
        raise not_done
    command_result = result.get('command_result') or {}
    attempt.loaded(command_result)
    _check_agent_version(node, params, command_result, attempt)


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
