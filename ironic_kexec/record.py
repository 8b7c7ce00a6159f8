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
                   'power-cycle': the node was power cycled as usual
                   (instead of a kexec, or after one that was not
                   verified);
                   'failed': mode "required" and kexec was not possible
                   or not verified, the deploy failed;
                   'handoff': the handoff is under way, at ``step``
                   (transient: the conductor writes it before it asks
                   the agent, so that one that dies meanwhile leaves a
                   true record).
    step           only on the 'handoff' path: 'load' (kexec.load is
                   asked or running; nothing was booted) or 'execute'
                   (kexec.execute is sent: the instance kernel may run).
    reason         None on the kexec path, otherwise a reason code of
                   ironic_kexec.protocol.REASONS.
    message        one line for the operator.
    mode           the mode of this deploy: disabled, auto or required.
    mode_source    which setting gave the mode, e.g. 'driver_info/
                   kexec_mode' or 'deploy step set_kexec_mode (deploy
                   template CUSTOM_KEXEC_DISABLED)', see
                   ironic_kexec.policy.get_mode_and_source.
    entry          only once the agent loaded a kernel: kernel, initrd,
                   cmdline, source (how the agent found them) and method
                   (the system call that loaded them).
    timings        seconds spent per phase: 'load', 'execute',
                   'agent_gone' (the conductor's), then 'verify' (from the
                   kexec to the instance's answer) and 'recovery' (from
                   the power cycle to the instance's answer).
    agent_timings  seconds per phase as measured by the agent, if any.
    agent_protocol_version
                   the protocol version of the agent's kexec extension,
                   once known (kexec.load answered, or refused with
                   protocol_mismatch); 1 for an agent that reports none.
    executed_at    when the agent went away after kexec.execute (UNIX
                   time).
    verify         after a kexec: status ('pending', 'verified', 'failed',
                   'unknown': no address known, 'none': verification off,
                   'interrupted': the deploy ended before the check did),
                   target (e.g. 'tcp:192.0.2.10:22'), source (where the
                   target came from), deadline (UNIX time, while pending).
    recovery       after a failed verification in "auto" mode: the power
                   cycle through the BMC, with status, target, deadline
                   as for verify.
    load, execute  on the 'handoff' path of a deploy that ended during
                   that step (its conductor died): status 'interrupted'
                   and a message.

Each decision is also a node history event (event type "deploying", as
Ironic's own deploy events): INFO for kexec, a verified handoff, or when
kexec is disabled; WARNING for a fall back to the power cycle and for a
handoff that was not verified. A failed deploy gets Ironic's usual ERROR
event and last_error instead.

The record is cleared when a deploy starts, so that a record left by an
earlier deploy never stands for this one.

Each decision is also counted in Ironic's metrics (``[metrics]backend``,
e.g. ``statsd``), one counter of 1 per decision, named under this
module's prefix: with Ironic's defaults a name reaches statsd as
``ironic_kexec.record.<name>`` (``[metrics]global_prefix``, when set,
goes first; ``[metrics]prepend_host`` does not apply, as to Ironic's own
module metrics)::

    path.kexec                    the instance kernel was started with
                                  kexec
    path.power-cycle.<reason>     power cycled instead; <reason> is a
                                  code of ironic_kexec.protocol.REASONS
                                  ('other' for anything else)
    path.failed.<reason>          mode "required", kexec not possible:
                                  the deploy failed
    verify.verified               after a kexec: the instance answered
    verify.not_verified           ... it did not, within the timeout
    verify.unknown                ... no address of the instance known
    verify.off                    ... not verified, by configuration
    recovery.verified             after verify.not_verified ("auto"): the
                                  power-cycled instance answered
    recovery.not_verified         ... it did not answer either
    recovery.failed               ... the power cycle itself failed
    verify.interrupted            the deploy ended (failed, aborted)
    recovery.interrupted          before its check of the instance did
    load.interrupted              the deploy ended during kexec.load
    execute.interrupted           ... after kexec.execute was sent, before
                                  the agent was seen to go
    breaker.opened                the node's circuit breaker opened

``path.*`` counts the decision of each deploy at its handoff, once: a
kexec that is then not verified stays counted as ``path.kexec`` (its
record's path becomes 'power-cycle' or 'failed'). A ``path.kexec`` is
followed by one ``verify.*``, a ``verify.not_verified`` in "auto" mode
by one ``recovery.*``, unless the deploy ends otherwise in between
(aborted, failed, deleted: not counted). A metrics backend that fails never
fails a deploy: the error is logged and the deploy goes on.
"""

import time

from ironic.common import metrics_utils
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
PATH_HANDOFF = 'handoff'

# The steps of the handoff path.
LOAD = 'load'
EXECUTE = 'execute'
_STEP_MESSAGES = {
    LOAD: 'asking the agent to load the instance kernel (kexec.load)',
    EXECUTE: 'kexec.execute sent, waiting for the agent to go away',
}
_INTERRUPTED_MESSAGES = {
    LOAD: 'the deploy ended (%s) during kexec.load: the agent was not '
          'told to kexec, nothing was booted',
    EXECUTE: 'the deploy ended (%s) after kexec.execute was sent, before '
             'the agent was seen to go: the instance kernel may be '
             'running',
}

VERIFY = 'verify'
RECOVERY = 'recovery'
PENDING = 'pending'
VERIFIED = 'verified'
NOT_VERIFIED = 'failed'
UNKNOWN = 'unknown'
OFF = 'none'
INTERRUPTED = 'interrupted'

_ENTRY_FIELDS = (protocol.FIELD_KERNEL, protocol.FIELD_INITRD,
                 protocol.FIELD_CMDLINE, protocol.FIELD_SOURCE,
                 protocol.FIELD_METHOD)
# Recorded only when they say something: several initrds, a UKI, the
# sources that refused the image.
_OPTIONAL_ENTRY_FIELDS = (protocol.FIELD_INITRDS, protocol.FIELD_UKI,
                          protocol.FIELD_SKIPPED)


# The agent's result is kept on the node: what it says about a tenant's
# image is bounded before it is stored.
MAX_RECORD_STRING = 4096
MAX_RECORD_ITEMS = 32


def _bounded(value, depth=0):
    if isinstance(value, str):
        return value[:MAX_RECORD_STRING]
    if isinstance(value, list) and depth < 2:
        return [_bounded(v, depth + 1) for v in value[:MAX_RECORD_ITEMS]]
    if isinstance(value, dict) and depth < 2:
        return {str(k)[:64]: _bounded(v, depth + 1)
                for k, v in list(value.items())[:MAX_RECORD_ITEMS]}
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return None


class Attempt(object):
    """What one kexec attempt learned on its way, for its record."""

    def __init__(self, mode, mode_source=None):
        self.mode = mode
        self.mode_source = mode_source
        self.entry = None
        self.timings = {}
        self.agent_timings = None
        self.agent_protocol_version = None

    def loaded(self, result):
        """Keep the boot entry and timings of a ``kexec.load`` result."""
        result = result or {}
        self.entry = {field: _bounded(result.get(field))
                      for field in _ENTRY_FIELDS}
        for field in _OPTIONAL_ENTRY_FIELDS:
            value = result.get(field)
            if value and not (field == protocol.FIELD_INITRDS
                              and len(value) < 2):
                self.entry[field] = _bounded(value)
        self.agent_timings = result.get(protocol.FIELD_TIMINGS)


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


def _log(node, severity, message):
    (LOG.info if severity == 'INFO' else LOG.warning)(
        'Node %(node)s: %(msg)s', {'node': node.uuid, 'msg': message})


# The counters (see the module docstring).
COUNTER_KEXEC = 'path.kexec'
COUNTER_VERIFIED = 'verify.verified'
COUNTER_NOT_VERIFIED = 'verify.not_verified'
COUNTER_UNKNOWN = 'verify.unknown'
COUNTER_OFF = 'verify.off'
COUNTER_RECOVERED = 'recovery.verified'
COUNTER_NOT_RECOVERED = 'recovery.not_verified'
COUNTER_RECOVERY_FAILED = 'recovery.failed'
COUNTER_BREAKER_OPENED = 'breaker.opened'
COUNTER_INTERRUPTED = '%s.interrupted'
# Counted instead of a reason code outside REASONS, so that the set of
# names stays bounded.
OTHER_REASON = 'other'


def path_counter(path, reason=None):
    """The counter of a path decision, e.g. ``path.failed.lockdown``."""
    if path == PATH_KEXEC:
        return COUNTER_KEXEC
    if reason not in protocol.REASONS:
        reason = OTHER_REASON
    return 'path.%s.%s' % (path, reason)


def _count(node, name):
    """Add 1 to the counter ``name`` in Ironic's metrics; never raises."""
    try:
        # Built at each call rather than at import: the backend and the
        # prefix are those of the configuration now, even if this module
        # was imported before the configuration was read.
        metrics = metrics_utils.get_metrics_logger(__name__)
        metrics.send_counter(metrics.get_metric_name(name), 1)
    except Exception as e:
        # Ironic's statsd backend creates its socket outside of its own
        # error handling (e.g. EMFILE): a metric never fails a deploy.
        LOG.warning('Node %(node)s: could not count %(name)s in the '
                    'metrics: %(cls)s: %(err)s',
                    {'node': node.uuid, 'name': name,
                     'cls': e.__class__.__name__, 'err': e})


def _store(node, path, attempt, reason, message, **more):
    value = {'path': path, 'reason': reason, 'message': message,
             'mode': attempt.mode, 'timings': _round(attempt.timings)}
    if attempt.mode_source:
        value['mode_source'] = attempt.mode_source
    if attempt.entry:
        value['entry'] = attempt.entry
    if attempt.agent_timings:
        value['agent_timings'] = attempt.agent_timings
    if attempt.agent_protocol_version is not None:
        value['agent_protocol_version'] = attempt.agent_protocol_version
    value.update(more)
    node.set_driver_internal_info(KEY, value)


def handoff(node, attempt, step):
    """Record that the handoff's ``step`` (LOAD, EXECUTE) is under way.

    Saved before the agent is asked: a conductor that dies in the middle
    leaves a record of how far it got, which the periodic task marks
    interrupted once Ironic has failed the deploy (see
    :func:`unfinished_check`).
    """
    _store(node, PATH_HANDOFF, attempt, None, _STEP_MESSAGES[step],
           step=step)
    node.save()


def kexec(node, attempt):
    """Record that the instance kernel was started with kexec."""
    entry = attempt.entry or {}
    message = ('started %(kernel)s with kexec (found by %(source)s, '
               'loaded with %(method)s) in %(total).1f s' %
               {'kernel': entry.get(protocol.FIELD_KERNEL),
                'source': entry.get(protocol.FIELD_SOURCE),
                'method': entry.get(protocol.FIELD_METHOD),
                'total': sum(attempt.timings.values())})
    _store(node, PATH_KEXEC, attempt, None, message,
           executed_at=time.time())
    _history(node, 'kexec: %s' % message, 'INFO')
    node.save()
    _log(node, 'INFO', message)
    _count(node, path_counter(PATH_KEXEC))


def fallback(node, attempt, reason, message):
    """Record that the node is power cycled instead, and why."""
    _store(node, PATH_POWER_CYCLE, attempt, reason, message)
    severity = 'INFO' if reason == protocol.REASON_DISABLED else 'WARNING'
    event = ('kexec not used (%(reason)s): %(msg)s; power cycling the '
             'node instead' % {'reason': reason, 'msg': message})
    _history(node, event, severity)
    node.save()
    _log(node, severity, event)
    _count(node, path_counter(PATH_POWER_CYCLE, reason))


def failed(node, attempt, reason, message):
    """Record that kexec was required but not possible.

    The caller fails the deploy, which records the error event.
    """
    _store(node, PATH_FAILED, attempt, reason, message)
    node.save()
    _count(node, path_counter(PATH_FAILED, reason))


# The verification of a kexec handoff, and the recovery after it.

def _update(node, **changes):
    value = dict(get(node) or {})
    value.update(changes)
    node.set_driver_internal_info(KEY, value)
    return value


def _elapsed(since):
    return round(max(0.0, time.time() - since), 3)


def verification_off(node, source):
    """Record that this handoff is not verified, by configuration."""
    _update(node, verify={'status': OFF, 'source': source})
    node.save()
    _count(node, COUNTER_OFF)


def verification_unknown(node, message):
    """Record that no address of the instance is known."""
    _update(node, verify={'status': UNKNOWN, 'message': message})
    event = 'kexec handoff not verified (unknown): %s' % message
    _history(node, event, 'INFO')
    node.save()
    _log(node, 'INFO', event)
    _count(node, COUNTER_UNKNOWN)


def verification_pending(node, target, source, timeout):
    """Record that the instance's answer is awaited, until when."""
    rec = get(node) or {}
    since = rec.get('executed_at') or time.time()
    _update(node, verify={'status': PENDING, 'target': target,
                          'source': source, 'deadline': since + timeout})
    node.save()
    LOG.info('Node %(node)s: waiting up to %(timeout)d s after the kexec '
             'for the instance to answer %(target)s (%(source)s)',
             {'node': node.uuid, 'timeout': timeout, 'target': target,
              'source': source})


def pending_check(driver_internal_info):
    """The check a node waits for: (phase, target, deadline), or None.

    :param driver_internal_info: the node's, as a periodic task reads it
        from the database without loading the node.
    """
    rec = (driver_internal_info or {}).get(KEY) or {}
    for phase in (RECOVERY, VERIFY):
        check = rec.get(phase) or {}
        if check.get('status') == PENDING:
            return phase, check.get('target'), check.get('deadline') or 0
    return None


def verified(node):
    """Record that the kexec'd instance answered."""
    rec = get(node) or {}
    check = dict(rec.get(VERIFY) or {})
    seconds = _elapsed(rec.get('executed_at') or time.time())
    check.update(status=VERIFIED, seconds=seconds)
    check.pop('deadline', None)
    timings = dict(rec.get('timings') or {}, verify=seconds)
    _update(node, verify=check, timings=timings)
    event = ('kexec handoff verified: the instance answered %s %.1f s '
             'after the kexec' % (check.get('target'), seconds))
    _history(node, event, 'INFO')
    node.save()
    _log(node, 'INFO', event)
    _count(node, COUNTER_VERIFIED)


def not_verified(node, recovering):
    """Record that the kexec'd instance did not answer in time.

    :param recovering: True when the node is power cycled to recover it
        ("auto"), False when the deploy fails ("required").
    """
    rec = get(node) or {}
    check = dict(rec.get(VERIFY) or {})
    seconds = _elapsed(rec.get('executed_at') or time.time())
    check.update(status=NOT_VERIFIED, seconds=seconds)
    check.pop('deadline', None)
    message = ('kexec executed, but the instance did not answer %s within '
               '%.0f s' % (check.get('target'), seconds))
    changes = {'verify': check, 'reason': protocol.REASON_NOT_VERIFIED,
               'message': message}
    if recovering:
        changes['path'] = PATH_POWER_CYCLE
        changes[RECOVERY] = {'status': PENDING,
                             'target': check.get('target'),
                             'started_at': time.time(),
                             'deadline': (time.time()
                                          + CONF.kexec.verify_timeout)}
        event = ('%s; power cycling it through the BMC (%s)'
                 % (message, protocol.REASON_NOT_VERIFIED))
        _history(node, event, 'WARNING')
        _log(node, 'WARNING', event)
    else:
        changes['path'] = PATH_FAILED
    _update(node, **changes)
    node.save()
    _count(node, COUNTER_NOT_VERIFIED)
    return message


def recovery_done(node, answered):
    """Record whether the power-cycled instance answered."""
    rec = get(node) or {}
    check = dict(rec.get(RECOVERY) or {})
    seconds = _elapsed(check.get('started_at') or time.time())
    check.update(status=VERIFIED if answered else NOT_VERIFIED,
                 seconds=seconds)
    check.pop('deadline', None)
    changes = {RECOVERY: check}
    if answered:
        changes['timings'] = dict(rec.get('timings') or {},
                                  recovery=seconds)
        event = ('recovered by a power cycle: the instance answered %s '
                 '%.1f s after it' % (check.get('target'), seconds))
        severity = 'INFO'
    else:
        event = ('power cycled after the kexec, but the instance did not '
                 'answer %s within %.0f s either; the deploy ends as the '
                 'stock power cycle would, unverified'
                 % (check.get('target'), seconds))
        severity = 'WARNING'
    _update(node, **changes)
    _history(node, event, severity)
    node.save()
    _log(node, severity, event)
    _count(node, COUNTER_RECOVERED if answered else COUNTER_NOT_RECOVERED)


def recovery_failed(node, message):
    """Record that the power cycle of the recovery could not be done."""
    rec = get(node) or {}
    check = dict(rec.get(RECOVERY) or {})
    check.update(status=NOT_VERIFIED, message=message)
    check.pop('deadline', None)
    _update(node, **{RECOVERY: check})
    node.save()
    _count(node, COUNTER_RECOVERY_FAILED)


def unfinished_check(driver_internal_info):
    """The check a deploy that ended now will never finish, or None.

    The pending check, the verification of a kexec that has not started
    yet (the deploy ended between the kexec and ``verify_kexec``), or the
    handoff step the deploy ended in (LOAD or EXECUTE).

    :param driver_internal_info: the node's, as a periodic task reads it
        from the database without loading the node.
    """
    check = pending_check(driver_internal_info)
    if check is not None:
        return check[0]
    rec = (driver_internal_info or {}).get(KEY) or {}
    if rec.get('path') == PATH_KEXEC and not rec.get(VERIFY):
        return VERIFY
    step = rec.get('step')
    if (rec.get('path') == PATH_HANDOFF and step in _STEP_MESSAGES
            and not rec.get(step)):
        return step
    return None


def interrupted(node):
    """Record that the deploy ended before its check or handoff step did.

    E.g. the conductor died after the kexec and before ``deploy wait``,
    or during the handoff, and Ironic failed the deploy when it (or
    another conductor) took the node over; or the deploy was aborted
    while it waited. Nothing awaits the instance's answer any
    more: the record must not say it does.

    :returns: the phase that was left unfinished, or None.
    """
    phase = unfinished_check(node.driver_internal_info)
    if phase is None:
        return None
    value = dict((get(node) or {}).get(phase) or {})
    value.pop('deadline', None)
    message = (_INTERRUPTED_MESSAGES.get(
        phase, 'the deploy ended (%s) before the instance\'s answer') %
        node.provision_state)
    value.update(status=INTERRUPTED, message=message)
    _update(node, **{phase: value})
    event = 'kexec handoff %s interrupted: %s' % (phase, message)
    _history(node, event, 'WARNING')
    node.save()
    _log(node, 'WARNING', event)
    _count(node, COUNTER_INTERRUPTED % phase)
    return phase


def breaker_opened(node, failures, reset_hint):
    """Record that the node stops using kexec (circuit_open)."""
    event = ('kexec circuit breaker open (%s): %d kexec handoffs in a row '
             'failed verification, the next deploys power cycle; reset '
             'with "%s"' % (protocol.REASON_CIRCUIT_OPEN, failures,
                            reset_hint))
    _history(node, event, 'WARNING')
    node.save()
    _log(node, 'WARNING', event)
    _count(node, COUNTER_BREAKER_OPENED)
