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


"""What both kexec deploy interfaces add to their stock parents.

One kexec attempt, in one place, for both interfaces:

1. :meth:`KexecInterfaceMixin._kexec` in the interface's own step: the
   policy (may this deploy kexec?), ``kexec.load``, ``kexec.execute`` and
   the agent going away. Anything that stops it before the kexec is a
   :class:`ironic_kexec.errors.NotKexec`: recorded, then the interface's
   stock power cycle runs (or, in ``required`` mode, the deploy fails).
2. The ``verify_kexec`` deploy step, last of the deploy: when the
   instance was started by kexec, it records where the instance must
   answer and returns ``deploy wait``. No worker waits.
3. A periodic task of every conductor probes the instance of each waiting
   node at once. An answer resumes the deploy (``active``); no answer by
   the deadline power-cycles the node through its BMC (``auto``), whose
   boot is then checked the same way, or fails the deploy
   (``required``). Everything it needs is in the node's record, so a
   restarted conductor, or the one that takes the node over, finishes
   the job.

Before all that, the ``set_kexec_mode`` deploy step (priority 0: only
when a deploy template or the deploy request names it) may choose the
mode of this deploy, see :meth:`KexecInterfaceMixin.set_kexec_mode`.
"""

import queue
import time
import types

from ironic.common import async_steps
from ironic.common import exception
from ironic.common import metrics_utils
from ironic.common import states
from ironic.conductor import periodics
from ironic.conductor import task_manager
from ironic.conductor import utils as manager_utils
from ironic.conf import CONF
from ironic.drivers import base
from ironic.drivers.modules import agent_base
from ironic.drivers import utils as driver_utils
from ironic import objects
from oslo_log import log

from ironic_kexec import agent_client
from ironic_kexec import conf as kexec_conf
from ironic_kexec import errors
from ironic_kexec import handover
from ironic_kexec import policy
from ironic_kexec import record
from ironic_kexec import verify

LOG = log.getLogger(__name__)

METRICS = metrics_utils.get_metrics_logger(__name__)

# After the stock steps: boot_instance is 20. The instance must be on its
# tenant network before it can answer there.
VERIFY_PRIORITY = 10
VERIFY_STEP = 'verify_kexec'

SET_MODE_ARGSINFO = {
    'mode': {
        'description': 'The kexec mode of this deploy: "disabled", "auto" '
                       'or "required". It overrides instance_info/'
                       'kexec_mode, instance_info/capabilities and '
                       'driver_info/kexec_mode; [kexec]enabled = False '
                       'still disables kexec. Give the step a priority '
                       'above 40 (kexec) or 100 (ramdisk-kexec), e.g. '
                       '150.',
        'required': True,
    },
}


def _is_mode_step(step):
    return (step.get('interface') == 'deploy'
            and step.get('step') == policy.STEP)


def _template_mode_steps(task):
    """The ``set_kexec_mode`` steps of this deploy's deploy templates.

    The templates are those Ironic runs: named like one of
    ``instance_info/traits`` (``conductor.steps._get_deployment_templates``
    matches them the same way).

    :returns: a list of (template name, step dict).
    """
    traits = task.node.instance_info.get('traits')
    if not traits or not isinstance(traits, list):
        return []
    return [(template.name, step)
            for template in objects.DeployTemplate.list_by_names(
                task.context, traits)
            for step in template.steps if _is_mode_step(step)]


def _step_origin(task):
    """What named the running ``set_kexec_mode`` step, or None."""
    node = task.node
    # The deploy request's steps override a template's same step.
    if any(_is_mode_step(step) for step in
           node.driver_internal_info.get('user_deploy_steps') or ()):
        return 'deploy steps of the deploy request'
    names = sorted({name for name, _step in _template_mode_steps(task)})
    if names:
        return 'deploy template %s' % ', '.join(names)
    return None


def _enabled(step):
    try:
        return int(step.get('priority') or 0) > 0
    except (TypeError, ValueError):
        return False


class KexecInterfaceMixin(object):
    """The kexec attempt, its verification and recovery, the record.

    Mixed in before a stock deploy interface, which ``super()`` reaches.
    A subclass gives :meth:`_kexec_load_params`, calls :meth:`_kexec`
    from the step that replaces its power cycle and names that step in
    :attr:`decision_step`.
    """

    diskless = False
    # (name, priority) of the deploy step that calls _kexec: the
    # set_kexec_mode step must run before it.
    decision_step = None
    # The interface's name in setup.cfg: each interface's periodic task
    # reads, probes and locks its own nodes only.
    interface_name = None
    # The failed deploys of this interface whose record was found closed,
    # {uuid: updated_at}: the periodic task reads each failure's record
    # once, not at every run. Replaced at each run.
    _failed_checked = types.MappingProxyType({})

    def get_properties(self):
        props = super().get_properties().copy()
        props.update(policy.PROPERTIES)
        return props

    @METRICS.timer('KexecInterfaceMixin.validate')
    def validate(self, task):
        super().validate(task)
        policy.validate(task.node)
        self._validate_template_steps(task)

    @METRICS.timer('KexecInterfaceMixin.tear_down')
    @task_manager.require_exclusive_lock
    def tear_down(self, task):
        # The record belongs to the instance going away; a later deploy
        # through another interface must not show it as its own. So does
        # the mode its deploy template chose.
        record.clear(task.node)
        policy.clear_step_mode(task.node)
        return super().tear_down(task)

    # The mode from a deploy template.

    @METRICS.timer('KexecInterfaceMixin.set_kexec_mode')
    @base.deploy_step(priority=0, argsinfo=SET_MODE_ARGSINFO)
    @task_manager.require_exclusive_lock
    def set_kexec_mode(self, task, mode):
        """Choose the kexec mode of this deploy, e.g. from a deploy template.

        Disabled by default (priority 0): it runs only when a deploy
        template matching one of the deploy's ``instance_info/traits``
        (from a Nova flavor's ``trait:CUSTOM_...=required``), or the deploy
        request's deploy steps, name it with a priority. It must run before
        :attr:`decision_step` (``tear_down_agent``, 40, for ``kexec``;
        ``deploy``, 100, for ``ramdisk-kexec``): 150 suits both. The mode
        holds for this deploy only: a new deploy and the tear down forget
        it.

        :param task: a TaskManager object containing the node
        :param mode: ``disabled``, ``auto`` or ``required``.
        :raises: InvalidParameterValue for another mode, or when the step
            runs after the step that decides whether to kexec.
        """
        node = task.node
        self._check_before_decision(task)
        source = policy.set_step_mode(node, mode, origin=_step_origin(task))
        LOG.info('Node %(node)s: kexec mode "%(mode)s" for this deploy, '
                 'from the %(source)s', {'node': node.uuid, 'mode': mode,
                                         'source': source})

    def _check_before_decision(self, task):
        """Refuse a set_kexec_mode step that runs too late to count."""
        node = task.node
        if not self.decision_step:
            return
        steps = node.driver_internal_info.get('deploy_steps')
        index = node.driver_internal_info.get('deploy_step_index')
        if not steps or index is None:
            # Not run by the conductor's deploy steps: nothing to compare.
            return
        name, _priority = self.decision_step
        if any(step.get('interface') == 'deploy' and step.get('step') == name
               for step in steps[index + 1:]):
            return
        raise self._too_late(node, 'the deploy template or deploy steps')

    def _too_late(self, node, where):
        name, priority = self.decision_step
        return exception.InvalidParameterValue(
            'The deploy step %(step)s of node %(node)s runs after the deploy '
            'step %(decision)s, which decides whether the deploy ends with '
            'kexec: it cannot apply. Give it a priority above %(prio)d in '
            '%(where)s.' %
            {'step': policy.STEP, 'node': node.uuid, 'decision': name,
             'prio': priority, 'where': where})

    def _validate_template_steps(self, task):
        """Refuse what a template's set_kexec_mode step would, earlier.

        When the deploy is requested rather than once it runs: a mode
        that is not one of ``conf.MODES``, a priority that puts the step
        after :attr:`decision_step` (Ironic runs the driver's step first
        among equal priorities). A missing ``mode`` is Ironic's to refuse.
        """
        for name, step in _template_mode_steps(task):
            if not _enabled(step):
                continue
            args = step.get('args') or {}
            if 'mode' in args:
                policy.check_mode(args['mode'], 'the "mode" argument of the '
                                  'deploy step %s in deploy template %s'
                                  % (policy.STEP, name))
            if (self.decision_step
                    and int(step['priority']) <= self.decision_step[1]):
                raise self._too_late(task.node, 'deploy template %s' % name)

    def _mode_before_steps(self, task):
        """The mode of this deploy as far as ``prepare`` can tell.

        Deploy steps run after ``prepare``; a deploy template's
        ``set_kexec_mode`` step is counted already, as it will run.
        Deploy steps given with the deploy request are not known yet.
        """
        mode = policy.get_mode(task.node)
        if not CONF.kexec.enabled:
            return mode
        for _name, step in _template_mode_steps(task):
            step_mode = (step.get('args') or {}).get('mode')
            if _enabled(step) and step_mode in kexec_conf.MODES:
                return step_mode
        return mode

    # The attempt.

    def _kexec_load_params(self, task, attempt):
        """Get ready for the kexec; the parameters of ``kexec.load``.

        :raises: NotKexec
        """
        raise NotImplementedError()

    def _kexec(self, task):
        """Try to start the instance by kexec.

        :returns: None when the instance kernel runs; otherwise the
            NotKexec that stopped it, recorded, for the caller's stock
            power cycle.
        :raises: InstanceDeployFailure in ``required`` mode, instead of
            returning a NotKexec.
        """
        node = task.node
        record.clear(node)
        attempt = record.Attempt(*policy.get_mode_and_source(node))
        try:
            policy.check(task, attempt.mode, diskless=self.diskless)
            params = self._kexec_load_params(task, attempt)
            client = agent_client.get_client(task)
            record.handoff(node, attempt, record.LOAD)
            handover.load(task, client, params, attempt)
            if CONF.agent.deploy_logs_collect == 'always':
                # Now or never: the agent is about to go away.
                driver_utils.collect_ramdisk_logs(node)
            record.handoff(node, attempt, record.EXECUTE)
            handover.execute(task, client, attempt)
        except errors.NotKexec as e:
            self._give_up_kexec(task, attempt, e)
            return e
        # What a power off would wipe: the agent, its URL and token are
        # gone, whatever heartbeats next is a new agent.
        manager_utils.wipe_internal_info_on_power_off(node)
        record.kexec(node, attempt)
        return None

    def _give_up_kexec(self, task, attempt, not_kexec):
        """Record a fall back to the power cycle, or fail the deploy."""
        node = task.node
        if attempt.mode == kexec_conf.MODE_REQUIRED:
            record.failed(node, attempt, not_kexec.reason, not_kexec.message)
            msg = ('kexec is required for node %(node)s but not possible '
                   '(%(reason)s): %(msg)s' %
                   {'node': node.uuid, 'reason': not_kexec.reason,
                    'msg': not_kexec.message})
            if not_kexec.executed:
                # The agent may still kexec any moment: stop it.
                _power_off_quietly(task)
            agent_base.log_and_raise_deployment_error(task, msg)
        record.fallback(node, attempt, not_kexec.reason, not_kexec.message)

    # A deploy step that found the agent busy.

    def process_next_step(self, task, step_type, **kwargs):
        """Go on with the deploy at the agent's heartbeat.

        As the stock method, and also re-runs a deploy step that found the
        agent busy, once the agent is idle: Ironic waits for that step's
        own agent command to finish, which was refused and never comes,
        so the node would wait in ``deploy wait`` for as long as the agent
        heartbeats (a step of the conductor's, such as
        ``prepare_instance_boot``, or an agent step whose command the agent
        refused).
        """
        if step_type == 'deploy' and self._retry_refused_step(task):
            return None
        return super().process_next_step(task, step_type, **kwargs)

    def _retry_refused_step(self, task):
        node = task.node
        # False only where Ironic waits to run the current step again:
        # the agent was busy, or not reachable yet.
        if node.driver_internal_info.get(
                async_steps.SKIP_CURRENT_DEPLOY_STEP) is not False:
            return False
        commands = agent_client.get_client(task).get_commands_status(node)
        if all(command.get('command_name') == 'get_deploy_steps'
               for command in commands):
            # A fresh agent: the stock method goes on.
            return False
        if commands[-1].get('command_status') == 'RUNNING':
            return False
        LOG.info('The agent of node %(node)s was busy when the deploy step '
                 '%(step)s ran and is idle now (last command %(cmd)s): '
                 'running the step again',
                 {'node': node.uuid, 'step': node.deploy_step,
                  'cmd': commands[-1].get('command_name')})
        manager_utils.notify_conductor_resume_deploy(task)
        return True

    # The verification.

    @METRICS.timer('KexecInterfaceMixin.verify_kexec')
    @base.deploy_step(priority=VERIFY_PRIORITY)
    @task_manager.require_exclusive_lock
    def verify_kexec(self, task):
        """Wait for the kexec'd instance to answer, without a worker.

        Does nothing when the instance was not started by kexec. Returns
        ``deploy wait`` while the instance is awaited; the periodic task
        ``_check_kexec_handoffs`` ends the wait.

        :param task: a TaskManager object containing the node
        """
        node = task.node
        if not record.booted_by_kexec(node):
            return None
        try:
            target, source = verify.resolve(task)
        except verify.NoAddress as e:
            record.verification_unknown(node, str(e))
            return None
        except ValueError as e:
            # validate() refuses a malformed spec; [kexec]verify is
            # mutable and may have changed since.
            record.verification_unknown(node, str(e))
            return None
        if target is None:
            record.verification_off(node, source)
            return None
        record.verification_pending(node, verify.format_target(target),
                                    source, CONF.kexec.verify_timeout)
        return states.DEPLOYWAIT

    @METRICS.timer('KexecInterfaceMixin._check_kexec_handoffs')
    @periodics.periodic(spacing=CONF.kexec.verify_interval)
    def _check_kexec_handoffs(self, manager, context):
        """Probe every waiting instance at once; act on answers and ends.

        Nodes whose instance neither answered nor ran out of time are not
        even locked. Those that did are handed to up to
        ``[conductor]periodic_max_workers`` workers, as Ironic's own power
        state sync does: one after the other, their locks, records and
        resumes would make the last answer of a large rollout wait for
        all the others.
        """
        waiting, ended = self._nodes_to_check(manager)
        if ended:
            _in_workers(manager, ended, self._close_interrupted, context)
        if not waiting:
            return
        targets = {}
        for uuid, (_phase, target, _deadline) in waiting.items():
            try:
                targets[uuid] = verify.parse(target)
            except ValueError:
                targets[uuid] = None
        answers = verify.probe_all(
            {uuid: t for uuid, t in targets.items() if t is not None},
            CONF.kexec.verify_probe_timeout)
        now = time.time()
        due = [(uuid, answers.get(uuid, False))
               for uuid, (_phase, _target, deadline) in waiting.items()
               if answers.get(uuid, False) or now >= deadline]
        if due:
            _in_workers(manager, due, self._end_wait_of, context)

    def _nodes_to_check(self, manager):
        """This interface's nodes the periodic task acts on.

        :returns: ({uuid: pending check} of the nodes waiting in
            ``verify_kexec``, [uuid] of failed deploys whose record has a
            check or handoff step left unfinished).
        """
        # Two queries, so that driver_internal_info (the largest column: it
        # holds the deploy's steps) is read for those nodes only, not for
        # every node that waits for its agent during a large rollout. A
        # failed deploy is read once per failure (its updated_at), not at
        # every run.
        candidates = []
        seen_failed = {}
        for (uuid, _driver, _group, state, maintenance, iface, step,
             updated) in manager.iter_nodes(
                fields=['provision_state', 'maintenance', 'deploy_interface',
                        'deploy_step', 'updated_at'],
                filters={'provision_state_in': [states.DEPLOYWAIT,
                                                states.DEPLOYFAIL],
                         'reserved': False}):
            if iface != self.interface_name:
                continue
            if state == states.DEPLOYWAIT:
                if not maintenance and _is_verify_step(step):
                    candidates.append(uuid)
                continue
            seen_failed[uuid] = updated
            if self._failed_checked.get(uuid) != updated:
                candidates.append(uuid)
        # The failed deploys that were redeployed or deleted are forgotten.
        checked = {uuid: updated
                   for uuid, updated in self._failed_checked.items()
                   if seen_failed.get(uuid) == updated}
        waiting, ended = {}, []
        if not candidates:
            self._failed_checked = checked
            return waiting, ended
        for uuid, _driver, _group, state, info in manager.iter_nodes(
                fields=['provision_state', 'driver_internal_info'],
                filters={'uuid_in': candidates}):
            if state == states.DEPLOYWAIT:
                check = record.pending_check(info)
                if check is not None:
                    waiting[uuid] = check
            elif state == states.DEPLOYFAIL:
                if record.unfinished_check(info) is not None:
                    ended.append(uuid)
                elif uuid in seen_failed:
                    checked[uuid] = seen_failed[uuid]
        self._failed_checked = checked
        return waiting, ended

    def _close_interrupted(self, context, uuid):
        """Close the check or handoff step of a deploy that ended first.

        Ironic fails a deploy whose conductor died during the handoff or
        between the kexec and ``deploy wait``, and an operator may abort
        a waiting one: the record must then say the check (or step) was
        interrupted, not pending or yet to come.
        """
        try:
            with task_manager.acquire(
                    context, uuid, purpose='kexec handoff record') as task:
                if (type(task.driver.deploy) is type(self)
                        and task.node.provision_state == states.DEPLOYFAIL):
                    record.interrupted(task.node)
        except (exception.NodeLocked, exception.NodeNotFound):
            LOG.debug('Node %s is busy or gone, its kexec record is '
                      'closed at the next run', uuid)

    def _end_wait_of(self, context, item):
        uuid, answered = item
        try:
            with task_manager.acquire(
                    context, uuid, shared=True,
                    purpose='kexec handoff verification') as task:
                # Each kexec interface checks its own nodes only.
                if type(task.driver.deploy) is not type(self):
                    return
                task.upgrade_lock(purpose='kexec handoff verification')
                self._end_wait(task, answered)
        except (exception.NodeLocked, exception.NodeNotFound):
            LOG.debug('Node %s is busy or gone, its kexec handoff is '
                      'checked at the next run', uuid)

    def _end_wait(self, task, answered):
        node = task.node
        check = record.pending_check(node.driver_internal_info)
        # Checked again under the lock: another conductor, or an abort,
        # may have been there since the probe.
        if node.provision_state != states.DEPLOYWAIT or check is None:
            return
        phase, _target, deadline = check
        if not answered and time.time() < deadline:
            return
        if phase == record.RECOVERY:
            record.recovery_done(node, answered)
            manager_utils.notify_conductor_resume_deploy(task)
        elif answered:
            policy.note_verification(node, ok=True)
            record.verified(node)
            manager_utils.notify_conductor_resume_deploy(task)
        else:
            self._not_verified(task)

    def _not_verified(self, task):
        node = task.node
        opened = policy.note_verification(node, ok=False)
        mode = (record.get(node) or {}).get('mode')
        required = mode == kexec_conf.MODE_REQUIRED
        message = record.not_verified(node, recovering=not required)
        if opened:
            record.breaker_opened(node, policy.breaker_failures(node),
                                  policy.reset_hint(node))
        if required:
            # "required" refuses the power cycle: the deploy fails, and
            # the hung node is powered off rather than left running.
            _power_off_quietly(task)
            manager_utils.deploying_error_handler(
                task, 'kexec is required for node %s but its handoff failed '
                '(not_verified): %s' % (node.uuid, message))
            return
        try:
            manager_utils.node_power_action(task, states.REBOOT)
        except Exception as e:
            msg = ('Node %(node)s: %(msg)s, and power cycling it through '
                   'the BMC failed: %(cls)s: %(err)s'
                   % {'node': node.uuid, 'msg': message,
                      'cls': e.__class__.__name__, 'err': e})
            record.recovery_failed(node, msg)
            manager_utils.deploying_error_handler(task, msg)


def _is_verify_step(step):
    return ((step or {}).get('interface') == 'deploy'
            and (step or {}).get('step') == VERIFY_STEP)


def _in_workers(manager, items, func, context):
    """Run ``func(context, item)`` for each item, in parallel.

    The periodic task's own thread and up to
    ``[conductor]periodic_max_workers - 1`` workers of the conductor take
    the items from one queue, as Ironic's power state sync does; when the
    pool is full, the periodic task's thread does it all. Waits for all.
    """
    items_queue = queue.Queue()
    for item in items:
        items_queue.put(item)

    def drain():
        while True:
            try:
                item = items_queue.get_nowait()
            except queue.Empty:
                return
            try:
                func(context, item)
            except Exception:
                # One node's trouble must not leave the others unchecked.
                LOG.exception('Checking the kexec handoff of %s failed',
                              item)

    futures = []
    for _i in range(min(CONF.conductor.periodic_max_workers,
                        len(items)) - 1):
        try:
            futures.append(manager._spawn_worker(drain))
        except exception.NoFreeConductorWorker:
            break
    drain()
    for future in futures:
        future.result()


def _power_off_quietly(task):
    try:
        manager_utils.node_power_action(task, states.POWER_OFF)
    except Exception as e:
        LOG.error('Could not power off node %(node)s after a failed kexec '
                  'handoff. %(cls)s: %(err)s',
                  {'node': task.node.uuid, 'cls': e.__class__.__name__,
                   'err': e})
