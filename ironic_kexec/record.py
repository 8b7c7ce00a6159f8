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

"""What the last deploy did instead of (or as) its power cycle.

The record is ``driver_internal_info['kexec']``, shown by
``baremetal node show --fields driver_internal_info``::

    path           'kexec': the instance kernel was started with kexec;
                   'power-cycle': the node was power cycled as usual;
                   'failed': mode "required" and kexec was not possible,
                   the deploy failed.
    reason         None on the kexec path, otherwise a reason code of
                   ironic_kexec.protocol.REASONS.
    message        one line for the operator.
    mode           the mode of this deploy: disabled, auto or required.
    entry          only once the agent loaded a kernel: kernel, initrd,
                   cmdline, source (how the agent found them) and method
                   (the system call that loaded them).
    timings        seconds spent by the conductor per phase: 'load',
                   'execute', 'agent_gone'.
    agent_timings  seconds per phase as measured by the agent, if any.

Each record is also a node history event (event type "deploying", as
Ironic's own deploy events): INFO for kexec or when kexec is disabled,
WARNING for a fall back to the power cycle. A failed deploy gets Ironic's
usual ERROR event and last_error instead.

The record is cleared when a deploy starts, so that a record left by an
earlier deploy never stands for this one.
"""

from ironic.common import states
from ironic.conductor import utils as manager_utils
from ironic.conf import CONF
from ironic import objects
from oslo_log import log

from ironic_kexec import protocol

LOG = log.getLogger(__name__)

KEY = 'kexec'

PATH_KEXEC = 'kexec'
PATH_POWER_CYCLE = 'power-cycle'
PATH_FAILED = 'failed'

_ENTRY_FIELDS = (protocol.FIELD_KERNEL, protocol.FIELD_INITRD,
                 protocol.FIELD_CMDLINE, protocol.FIELD_SOURCE,
                 protocol.FIELD_METHOD)


def clear(node):
    """Forget what an earlier deploy recorded. Saves the node."""
    if node.del_driver_internal_info(KEY) is not None:
        node.save()


def get(node):
    """The record of this deploy, or None."""
    return node.driver_internal_info.get(KEY)


def booted_by_kexec(node):
    """Whether this deploy already started the instance with kexec."""
    current = get(node) or {}
    return current.get('path') == PATH_KEXEC


def entry_from_result(result):
    """The boot entry part of a ``kexec.load`` result."""
    result = result or {}
    return {field: result.get(field) for field in _ENTRY_FIELDS}


def _round(timings):
    return {phase: round(seconds, 3) for phase, seconds in timings.items()}


def _history(node, event, severity):
    if severity == 'INFO':
        manager_utils.node_history_record(node, event=event,
                                          event_type=states.DEPLOYING)
        return
    # node_history_record only knows INFO and ERROR, and ERROR also sets
    # last_error: a fall back is neither.
    if CONF.conductor.node_history:
        objects.NodeHistory(
            node_id=node.id, conductor=CONF.host, severity=severity,
            event=event, event_type=states.DEPLOYING,
            state=node.provision_state,
            target_provision_state=node.target_provision_state).create()


def _store(node, path, mode, reason, message, entry, timings,
           agent_timings):
    value = {'path': path, 'reason': reason, 'message': message,
             'mode': mode, 'timings': _round(timings or {})}
    if entry:
        value['entry'] = entry
    if agent_timings:
        value['agent_timings'] = agent_timings
    node.set_driver_internal_info(KEY, value)


def kexec(node, mode, entry, timings, agent_timings=None):
    """Record that the instance kernel was started with kexec."""
    total = sum(timings.values())
    message = ('started %(kernel)s with kexec (found by %(source)s, '
               'loaded with %(method)s) in %(total).1f s' %
               {'kernel': entry.get(protocol.FIELD_KERNEL),
                'source': entry.get(protocol.FIELD_SOURCE),
                'method': entry.get(protocol.FIELD_METHOD),
                'total': total})
    _store(node, PATH_KEXEC, mode, None, message, entry, timings,
           agent_timings)
    _history(node, 'kexec: %s' % message, 'INFO')
    node.save()
    LOG.info('Node %(node)s: %(msg)s', {'node': node.uuid, 'msg': message})


def fallback(node, mode, reason, message, entry=None, timings=None,
             agent_timings=None):
    """Record that the node is power cycled instead, and why."""
    _store(node, PATH_POWER_CYCLE, mode, reason, message, entry, timings,
           agent_timings)
    severity = 'INFO' if reason == protocol.REASON_DISABLED else 'WARNING'
    _history(node, 'kexec not used (%(reason)s): %(msg)s; power cycling '
             'the node instead' % {'reason': reason, 'msg': message},
             severity)
    node.save()
    log = LOG.info if severity == 'INFO' else LOG.warning
    log('Node %(node)s will be power cycled, kexec not used '
        '(%(reason)s): %(msg)s',
        {'node': node.uuid, 'reason': reason, 'msg': message})


def failed(node, mode, reason, message, entry=None, timings=None,
           agent_timings=None):
    """Record that kexec was required but not possible.

    The caller fails the deploy, which records the error event.
    """
    _store(node, PATH_FAILED, mode, reason, message, entry, timings,
           agent_timings)
    node.save()
