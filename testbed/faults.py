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

"""The fault matrix: every way a kexec deploy can break, on the testbed.

Each fault is a real deploy through the real Ironic, with the fault
injected from outside the product: an agent ramdisk variant, an image
variant (both from ``testbed/images/build-fault-images.sh``), the virtual
BMC (made unreachable), QMP (the VM paused, its link down), the processes
(Ironic stopped and killed at a chosen moment, then restarted on the same
database) and the files Ironic serves. The product has no test hooks.

For each fault the harness observes, from sources independent of each
other: the end state and ``last_error`` (the API), the decision recorded
in ``driver_internal_info['kexec']`` and the node history (Ironic), the
power commands the virtual BMC received and what it did
(``bmc-power.jsonl``), the firmware runs (SeaBIOS's own log) and the
instance's own answer on its port (its kernel command line). It then
checks that the node is in no transient state, that the record agrees with
what the BMC, the firmware and the instance show, and that the node can
be deployed again (a plain kexec deploy after the fault's clean up).

Usage (root, like the functional tests)::

    python -m testbed.faults --faults 1,2,13a --out DIR
    python -m testbed.faults --list

writes ``DIR/results.json`` and ``DIR/results.md``; every deploy's logs
go under ``--workdir`` (default ``artifacts/faults``). Each fault runs on
a testbed of its own, so that a fault (a killed Ironic, an open breaker)
never leaks into the next one.
"""

import argparse
import calendar
import dataclasses
import json
import os
import shutil
import signal
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import traceback
import urllib.request

import testbed
from testbed import node as tb_node
from testbed import scenario

# Provision states a deploy may end in; anything else after the deploy
# and its clean up is a stuck node.
END_STATES = ('active', 'deploy failed')
SETTLED_STATES = END_STATES + ('available',)

# The [kexec] options of the matrix's testbeds, as an operator would set
# them to keep a failed handoff short:
# - load_timeout bounds the conductor's wait for kexec.load (its polling);
#   the agent's own bound on the kexec process (LOAD_TIMEOUT, 300 s in
#   ipa_kexec/kexec.py) only matters when nobody waits any more. A load
#   takes seconds under TCG: 45 s is ample and keeps faults 5 and 6 short.
# - verify_timeout bounds the wait for the kexec'd instance: it answers
#   3 to 40 s after the kexec under TCG (the benchmark), 120 s is three
#   times that.
KEXEC_OPTIONS = {'load_timeout': '45', 'verify_timeout': '120'}

# Where the fault harness's deploys wait for the instance's answer.
USABLE_TIMEOUT = 240


def _fault_list(text):
    return [f.strip() for f in text.split(',') if f.strip()]


# Observation helpers.

def _wall(iso):
    """A UNIX time from the API's ISO 8601 time stamps (UTC)."""
    if not iso:
        return None
    iso = iso.replace('Z', '+00:00')
    main, _, zone = iso.partition('+')
    main = main.split('.')[0]
    return calendar.timegm(time.strptime(main, '%Y-%m-%dT%H:%M:%S'))


def describe_power(events):
    """The BMC's power log as a short text."""
    words = []
    dropped = False
    for event in events:
        kind = event.get('event')
        if kind == 'chassis control':
            words.append('IPMI power %s' % event.get('action'))
        elif kind == 'started':
            words.append('node on (boot %s)' % event.get('boot'))
        elif kind == 'stopped':
            words.append('node off')
        elif kind == 'unreachable':
            words.append('[BMC unreachable]')
        elif kind == 'reachable':
            words.append('[BMC back]')
        elif kind == 'dropped' and not dropped:
            dropped = True
            words.append('IPMI dropped')
    return ', '.join(words) or 'none'


class Run(object):
    """One fault's deploy in progress: what its injector needs."""

    def __init__(self, tb, fault, images):
        self.tb = tb
        self.fault = fault
        self.images = images
        self.started = time.monotonic()
        self.started_wall = time.time()
        self.done = threading.Event()
        self.notes = []
        self.error = None
        try:
            self.log_offset = os.path.getsize(tb.ironic.log_file)
        except OSError:
            self.log_offset = 0

    def note(self, text):
        self.notes.append('%.1f s: %s' % (time.monotonic() - self.started,
                                          text))
        print('fault %s: %s' % (self.fault.number, text), file=sys.stderr)

    # Waiting for a moment of the deploy.
    def wait_for(self, predicate, timeout=900, interval=0.2):
        """Poll ``predicate`` until true; False if the deploy ended first."""
        deadline = time.monotonic() + timeout
        while not self.done.is_set() and time.monotonic() < deadline:
            try:
                if predicate():
                    return True
            except (OSError, KeyError, ValueError, TypeError):
                # The API is restarting, the agent not there yet...
                pass
            time.sleep(interval)
        return False

    def ironic_log_has(self, text):
        """Whether Ironic logged ``text`` since this deploy started."""
        try:
            with open(self.tb.ironic.log_file, errors='replace') as f:
                f.seek(self.log_offset)
                return text in f.read()
        except OSError:
            return False

    def node(self):
        return self.tb.api_node()

    def record(self):
        return (self.node().get('driver_internal_info') or {}).get('kexec')

    def deploy_step(self):
        return (self.node().get('deploy_step') or {}).get('step')

    def db_node_state(self):
        """The node's provision state in Ironic's database.

        Read from the database, not the API: the API may be stopped.
        """
        db = os.path.join(self.tb.ironic.workdir, 'ironic.sqlite')
        conn = sqlite3.connect('file:%s?mode=ro' % db, uri=True, timeout=10)
        try:
            return conn.execute(
                'SELECT provision_state FROM nodes WHERE uuid = ?',
                (self.tb.node_uuid,)).fetchone()[0]
        finally:
            conn.close()

    def agent_commands(self):
        """The agent's commands, asked with the token Ironic gave it.

        The token is read from Ironic's database (the API hides it).
        """
        db = os.path.join(self.tb.ironic.workdir, 'ironic.sqlite')
        conn = sqlite3.connect('file:%s?mode=ro' % db, uri=True, timeout=10)
        try:
            row = conn.execute(
                'SELECT driver_internal_info FROM nodes WHERE uuid = ?',
                (self.tb.node_uuid,)).fetchone()
        finally:
            conn.close()
        info = json.loads(row[0] or '{}')
        url = '%s/v1/commands/?agent_token=%s' % (
            info['agent_url'].rstrip('/'), info['agent_secret_token'])
        # The agent's certificate is its own, self-signed (auto TLS); it
        # is reached on loopback only.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with urllib.request.urlopen(url, timeout=10,
                                    context=context) as resp:
            return json.load(resp)['commands']

    def qmp(self, command, **arguments):
        return tb_node.qmp(self.tb.spec, command, **arguments)


@dataclasses.dataclass
class Fault:
    number: str
    title: str
    # The expected end, as text, and as checks: the end state,
    # the record's path (None: any) and its reasons (empty: any).
    expected: str
    state: str
    paths: tuple = ()
    reasons: tuple = ()
    image: str = 'whole_disk'
    interface: str = 'kexec'
    # An agent ramdisk variant (an attribute of the fault images).
    agent: str = None
    instance_info: dict = dataclasses.field(default_factory=dict)
    # 'plain' (the agent boots for the deploy) or 'fast-track'.
    testbed: str = 'plain'
    # More ironic.conf options of the fault's testbed, {section: {..}}.
    ironic_options: dict = dataclasses.field(default_factory=dict)
    # Seconds the deploy may take before the node counts as stuck.
    deploy_timeout: int = scenario.DEPLOY_TIMEOUT
    inject: object = None
    cleanup: object = None
    # More checks: f(run, observed) -> list of problems.
    check: object = None
    # For the CI subset and the docs.
    how: str = ''


# Injectors: run in a thread during the deploy.

def _link_down_during_load(run):
    if run.wait_for(lambda: run.ironic_log_has(
            'Executing agent command kexec.load')):
        run.qmp('set_link', name='n0', up=False)
        run.note('kexec.load sent: the node\'s link is down (QMP set_link)')


def _link_up(run):
    try:
        run.qmp('set_link', name='n0', up=True)
    except OSError:
        pass


def _pause_during_load(run):
    if run.wait_for(lambda: run.ironic_log_has(
            'Executing agent command kexec.load')):
        run.qmp('stop')
        run.note('kexec.load sent: the VM is paused (QMP stop)')


def _resume(run):
    try:
        run.qmp('cont')
    except OSError:
        pass


def _bmc_down_for_fallback(run):
    if run.wait_for(lambda: run.deploy_step() == 'write_image'):
        run.tb.set_bmc_reachable(False)
        run.note('image being written: the BMC stops answering')


def _bmc_down_after_kexec(run):
    if run.wait_for(lambda: run.ironic_log_has('with kexec (found by'),
                    interval=0.2):
        run.tb.set_bmc_reachable(False)
        run.note('kexec done: the BMC stops answering')


def _check_recovery_failed(run, obs):
    recovery = (obs['record'] or {}).get('recovery') or {}
    problems = []
    if recovery.get('status') != 'failed' or not recovery.get('message'):
        problems.append('the record\'s recovery is %r, not failed with a '
                        'message' % recovery)
    if 'BMC' not in (obs['last_error'] or ''):
        problems.append('last_error does not say the BMC failed')
    return problems


def _bmc_up(run):
    run.tb.set_bmc_reachable(True)
    run.note('the BMC answers again')


def _kill_between_load_and_execute(run):
    tb = run.tb

    def load_status():
        commands = [c for c in run.agent_commands()
                    if c.get('command_name') == 'load']
        return commands[-1].get('command_status') if commands else None

    # Ironic logs the command before it sends it: the agent's own list
    # says when the load has started.
    if not run.wait_for(lambda: run.ironic_log_has(
            'Executing agent command kexec.load')):
        return
    if not run.wait_for(lambda: load_status() is not None, timeout=60,
                        interval=0.1):
        return
    # Stopped at once, so that it cannot send kexec.execute (the load
    # takes seconds); killed once the agent has the kernel loaded.
    tb.kill_ironic(signal.SIGSTOP)
    run.note('the agent runs kexec.load: Ironic stopped (SIGSTOP)')
    try:
        if run.wait_for(lambda: load_status() not in (None, 'RUNNING'),
                        timeout=120, interval=1):
            run.note('the agent finished kexec.load (%s): Ironic killed '
                     '(SIGKILL)' % load_status())
        else:
            run.note('the agent did not finish kexec.load in 120 s: Ironic '
                     'killed (SIGKILL)')
    finally:
        tb.kill_ironic(signal.SIGKILL)
    time.sleep(5)
    tb.restart_ironic()
    run.note('Ironic restarted on the same database')


def _kill_after_kexec(run):
    """Ironic dies after the kexec, before the node reaches wait call-back.

    Stopped at once when it logs the kexec: the steps between the kexec
    and ``deploy wait`` (boot_instance, verify_kexec) take a fraction of
    a second, so the node's state is read from the database to see where
    the stop landed.
    """
    tb = run.tb
    if not run.wait_for(lambda: run.ironic_log_has('with kexec (found by'),
                        interval=0.02):
        return
    tb.kill_ironic(signal.SIGSTOP)
    try:
        state = run.db_node_state()
        run.note('kexec done, Ironic stopped (SIGSTOP) with the node in '
                 '"%s"; killed (SIGKILL)' % state)
        if state != 'deploying':
            run.error = ('the stop came too late: the node was already in '
                         '"%s"' % state)
    finally:
        tb.kill_ironic(signal.SIGKILL)
    time.sleep(5)
    tb.restart_ironic()
    run.note('Ironic restarted on the same database')


def _kill_after_execute(run):
    """Ironic dies after kexec.execute reached the agent.

    Stopped once the agent lists the command (it kexecs after its
    [kexec]execute_delay whatever the conductor does), before the
    conductor sees the agent go; killed, restarted.
    """
    tb = run.tb

    def executed():
        try:
            return any(c.get('command_name') == 'execute'
                       for c in run.agent_commands())
        except Exception:
            return False

    if not run.wait_for(lambda: run.ironic_log_has(
            'Executing agent command kexec.execute'), interval=0.02):
        return
    if not run.wait_for(executed, timeout=30, interval=0.05):
        run.error = 'the agent never listed kexec.execute'
        return
    tb.kill_ironic(signal.SIGSTOP)
    try:
        run.note('the agent has kexec.execute: Ironic stopped (SIGSTOP) '
                 'with the node in "%s"; killed (SIGKILL)'
                 % run.db_node_state())
    finally:
        tb.kill_ironic(signal.SIGKILL)
    time.sleep(5)
    tb.restart_ironic()
    run.note('Ironic restarted on the same database')


def _check_step_interrupted(step):
    """A check: the record is on the handoff path, ``step`` interrupted."""
    def check(run, obs):
        def closed():
            rec = (run.node().get('driver_internal_info') or {}).get(
                'kexec') or {}
            return (rec.get(step) or {}).get('status') == 'interrupted'

        # The periodic task closes the step after Ironic failed the
        # deploy, within [kexec]verify_interval.
        run.wait_for(closed, timeout=30, interval=2)
        rec = (run.node().get('driver_internal_info') or {}).get(
            'kexec') or {}
        obs['record'] = rec
        problems = []
        if rec.get('path') != 'handoff' or rec.get('step') != step:
            problems.append('the record says %r at step %r, not the handoff '
                            'at %s' % (rec.get('path'), rec.get('step'),
                                       step))
        status = (rec.get(step) or {}).get('status')
        if status != 'interrupted':
            problems.append('the record\'s %s status is %r, not '
                            'interrupted' % (step, status))
        return problems
    return check


def _check_verify_interrupted(run, obs):
    status = ((obs['record'] or {}).get('verify') or {}).get('status')
    if status != 'interrupted':
        return ['the record\'s verify status is %r, not interrupted'
                % status]
    return []


def _kill_during_verification(run):
    tb = run.tb

    def pending():
        # In wait call-back: verify_kexec has returned and Ironic moved
        # the node on. (Killed between the two, the node is still
        # "deploying", which a restarted Ironic fails: another fault.)
        node = run.node()
        rec = (node.get('driver_internal_info') or {}).get('kexec') or {}
        return ((rec.get('verify') or {}).get('status') == 'pending'
                and node['provision_state'] == 'wait call-back')

    if not run.wait_for(pending):
        return
    tb.kill_ironic(signal.SIGKILL)
    run.note('verification pending: Ironic killed (SIGKILL)')
    time.sleep(15)
    tb.restart_ironic()
    run.note('Ironic restarted on the same database')


def _corrupt_ramdisk_download(run):
    """The instance ramdisk changes between the checksum and the download.

    Ironic computed its checksum (kexec.load carries it); the agent
    downloads the kernel first (8 MiB), then the ramdisk. The served
    ramdisk is replaced (a new file: the cached image it is linked to
    stays whole) by itself with 512 zero bytes appended: the kernel skips
    zero padding after an initramfs, so the network boot of the fall back
    still works, but the checksum no longer matches.
    """
    if not run.wait_for(lambda: run.ironic_log_has(
            'Executing agent command kexec.load'), interval=0.05):
        return
    node_dir = os.path.join(run.tb.ironic.http_root, run.tb.node_uuid)
    path = os.path.join(node_dir, 'ramdisk')
    tmp = path + '.fault'
    shutil.copyfile(path, tmp)
    with open(tmp, 'ab') as f:
        f.write(b'\0' * 512)
    os.replace(tmp, path)
    run.note('kexec.load sent: the served instance ramdisk changed')


# Extra checks.

def _check_breaker_counted(run, obs):
    failures = (obs['node'].get('driver_info') or {}).get('kexec_failures')
    if str(failures) != '1':
        return ['driver_info/kexec_failures is %r, not 1' % failures]
    return []


def _check_powered_off(run, obs):
    if obs['node'].get('power_state') != 'power off':
        return ['the node is %s, not powered off'
                % obs['node'].get('power_state')]
    return []


def _check_unreachable_bounded(run, obs):
    """The fall back came within the load timeout, through the BMC."""
    problems = []
    rec = obs['record'] or {}
    load = (rec.get('timings') or {}).get('load')
    bound = int(KEXEC_OPTIONS['load_timeout']) + 15
    if load is None or load > bound:
        problems.append('kexec.load took %s s, more than the load timeout '
                        'allows (%d s)' % (load, bound))
    if not obs['power_after_handoff'].startswith('IPMI power off'):
        problems.append('the node was not powered off through the BMC '
                        'first: %s' % obs['power_after_handoff'])
    return problems


def _unset_failures(run):
    run.tb.baremetal('node', 'unset', run.tb.node_uuid, '--driver-info',
                     'kexec_failures', parse=False)


def _bmc_up_unset_failures(run):
    _bmc_up(run)
    _unset_failures(run)


HUNG = {'kexec_extra_args': 'init=/bin/false'}
REQUIRED = {'kexec_mode': 'required'}

FAULTS = [
    Fault('1', 'agent ramdisk without the kexec extension',
          'active via power cycle, agent_unsupported', 'active',
          ('power-cycle',), ('agent_unsupported',),
          agent='agent_no_extension',
          how='agent variant: the extension\'s entry point removed'),
    Fault('2', 'image with no findable kernel',
          'active via power cycle, no_kernel', 'active',
          ('power-cycle',), ('no_kernel',), image='no_kernel_disk',
          how='the testbed\'s no-kernel image (extlinux, odd names)'),
    Fault('3', 'image with a corrupt grub.cfg',
          'the next source, or power cycle with its reason', 'active',
          ('kexec', 'power-cycle'), image='corrupt_grub_disk',
          how='image variant: grub.cfg torn in its first entry, then junk'),
    Fault('4', 'kexec refused by the kernel (kexec_load_disabled)',
          'active via power cycle, reason recorded', 'active',
          ('power-cycle',), ('kexec_disabled', 'load_failed'),
          agent='agent_load_disabled',
          how='agent variant: sysctl kernel.kexec_load_disabled=1'),
    Fault('5', 'kexec --load hangs past the load timeout',
          'active via power cycle, timeout', 'active',
          ('power-cycle',), ('timeout',), agent='agent_load_hang',
          how='agent variant: kexec --load sleeps; [kexec]load_timeout=45'),
    Fault('6', 'agent unreachable during load (link down)',
          'active via power cycle, agent_unreachable, within the load '
          'timeout and through the BMC', 'active', ('power-cycle',),
          ('agent_unreachable',), inject=_link_down_during_load,
          cleanup=_link_up, check=_check_unreachable_bounded,
          how='QMP set_link n0 off when Ironic sends kexec.load'),
    Fault('6b', 'agent unreachable during load (VM paused)',
          'active via power cycle, agent_unreachable, within the load '
          'timeout and through the BMC', 'active', ('power-cycle',),
          ('agent_unreachable',), inject=_pause_during_load,
          cleanup=_resume, check=_check_unreachable_bounded,
          how='QMP stop when Ironic sends kexec.load'),
    Fault('7', 'agent answers execute but never kexecs',
          'active via BMC, execute_failed', 'active', ('power-cycle',),
          ('execute_failed',), agent='agent_execute_noop',
          how='agent variant: kexec -e returns and does nothing'),
    Fault('8', 'kexec\'d kernel hangs (never usable)',
          'active via BMC recovery, breaker counts it', 'active',
          ('power-cycle',), ('not_verified',), instance_info=HUNG,
          check=_check_breaker_counted, cleanup=_unset_failures,
          how='kexec_extra_args=init=/bin/false: the kexec\'d kernel '
              'panics; [kexec]verify_timeout=120'),
    Fault('9', 'BMC unreachable when the fallback needs it',
          'deploy failed, clear last_error; after the BMC is back a new '
          'deploy succeeds', 'deploy failed', image='no_kernel_disk',
          inject=_bmc_down_for_fallback, cleanup=_bmc_up,
          ironic_options={'ipmi': {'command_retry_timeout': '15'}},
          how='no-kernel image (fallback); the virtual BMC drops IPMI '
              'from write_image on; [ipmi]command_retry_timeout=15'),
    Fault('9b', 'kexec\'d kernel hangs and the BMC is unreachable for '
          'the recovery',
          'deploy failed, last_error names the failed verification and the '
          'failed power cycle', 'deploy failed', ('power-cycle',),
          ('not_verified',), instance_info=HUNG, inject=_bmc_down_after_kexec,
          check=_check_recovery_failed, cleanup=_bmc_up_unset_failures,
          ironic_options={'ipmi': {'command_retry_timeout': '15'}},
          how='fault 8, and the virtual BMC drops IPMI from the kexec on; '
              '[ipmi]command_retry_timeout=15'),
    Fault('10', 'conductor killed between load and execute, restarted',
          'no node stuck; deploy failed, the record says the handoff was '
          'interrupted at kexec.load', 'deploy failed', ('handoff',),
          inject=_kill_between_load_and_execute,
          check=_check_step_interrupted('load'),
          how='Ironic SIGSTOPped when it sends kexec.load, SIGKILLed once '
              'the agent loaded, restarted'),
    Fault('10c', 'conductor killed after kexec.execute reached the agent, '
          'restarted',
          'no node stuck; deploy failed, the record says the handoff was '
          'interrupted after kexec.execute (the instance may run)',
          'deploy failed', ('handoff',), inject=_kill_after_execute,
          check=_check_step_interrupted('execute'),
          how='Ironic SIGSTOPped once the agent lists kexec.execute, '
              'SIGKILLed, restarted'),
    Fault('10b', 'conductor killed after the kexec, before the '
          'verification, restarted',
          'no node stuck; deploy failed, the record says kexec with its '
          'verification interrupted', 'deploy failed', ('kexec',),
          inject=_kill_after_kexec, check=_check_verify_interrupted,
          how='Ironic SIGSTOPped when it logs the kexec, SIGKILLed if the '
              'node is still "deploying", restarted'),
    Fault('11', 'conductor killed during verification, restarted',
          'verification finished or recovered', 'active', ('kexec',
                                                           'power-cycle'),
          inject=_kill_during_verification,
          how='Ironic SIGKILLed while verify is pending, restarted 15 s '
              'later'),
    Fault('12', 'agent busy with another command (at kexec.load)',
          'fallback or retry, never a hang', 'active',
          ('kexec', 'power-cycle'), agent='agent_busy',
          how='agent variant: starts a 120 s command of its own right after '
              'standby.get_partition_uuids, the last command before the '
              'handoff'),
    Fault('12b', 'agent busy with another command (at Ironic\'s own step '
          'before the handoff)',
          'fallback or retry, never a hang', 'active',
          ('kexec', 'power-cycle'), agent='agent_busy_early',
          deploy_timeout=600,
          how='agent variant: starts a 120 s command of its own once the '
              'conductor saw the image written, so that Ironic\'s '
              'prepare_instance_boot finds it busy; stuck if no end state '
              'after 600 s'),
    Fault('13a', 'required mode, image with no findable kernel',
          'deploy failed with the reason (no_kernel)', 'deploy failed',
          ('failed',), ('no_kernel',), image='no_kernel_disk',
          instance_info=REQUIRED, how='fault 2 with kexec_mode=required'),
    Fault('13b', 'required mode, kexec\'d kernel hangs',
          'deploy failed with the reason (not_verified)', 'deploy failed',
          ('failed',), ('not_verified',),
          instance_info=dict(HUNG, **REQUIRED), check=_check_powered_off,
          cleanup=_unset_failures, how='fault 8 with kexec_mode=required'),
    Fault('14', 'diskless: the instance ramdisk fails its checksum',
          'network boot fallback, checksum_mismatch', 'active',
          ('power-cycle',), ('checksum_mismatch',), image='diskless',
          interface='ramdisk-kexec', testbed='fast-track',
          inject=_corrupt_ramdisk_download,
          how='fast track; the served ramdisk changes after Ironic '
              'computed its checksum'),
]

BY_NUMBER = {f.number: f for f in FAULTS}


# Running one fault.

def testbed_options(fault):
    """(kexec_options, ironic_options, provide_timeout) of its testbed."""
    ironic_options = {}
    provide_timeout = scenario.PROVIDE_TIMEOUT
    if fault.testbed == 'fast-track':
        ironic_options = {section: dict(values) for section, values
                          in scenario.FAST_TRACK_CLEANING.items()}
        provide_timeout = scenario.CLEANING_PROVIDE_TIMEOUT
    for section, values in fault.ironic_options.items():
        ironic_options.setdefault(section, {}).update(values)
    return dict(KEXEC_OPTIONS), ironic_options, provide_timeout


def _set_agent(tb, images, attr):
    tb.baremetal('node', 'set', tb.node_uuid, '--driver-info',
                 'deploy_ramdisk=%s' % scenario.file_url(
                     getattr(images, attr or 'agent_ramdisk')),
                 parse=False)


def _settle(tb, timeout=120):
    """The node's state once no conductor holds it, or the last seen."""
    deadline = time.monotonic() + timeout
    node = None
    while time.monotonic() < deadline:
        try:
            node = tb.api_node()
        except OSError:
            time.sleep(1)
            continue
        if not node.get('reservation') and (
                node['provision_state'] in SETTLED_STATES):
            return node
        time.sleep(2)
    return node


def run_fault(tb, fault, images, redeploy=True):
    """Deploy with ``fault`` on a testbed with an enrolled node.

    Leaves the node ``available`` (or as close as it could) with the
    fault cleaned up. Returns the observation, a dict (see
    :func:`judge`).

    :param redeploy: deploy again without the fault, to show that the
        node is usable (``redeploy`` in the observation).
    """
    if fault.agent:
        _set_agent(tb, images, fault.agent)
    run = Run(tb, fault, images)
    injector = None
    if fault.inject is not None:
        def _inject():
            try:
                fault.inject(run)
            except Exception as e:
                run.error = 'injection failed: %s' % e
                traceback.print_exc()
        injector = threading.Thread(target=_inject, daemon=True)
        injector.start()
    try:
        result = tb.deploy(fault.image, deploy_interface=fault.interface,
                           instance_info=fault.instance_info,
                           timeout=fault.deploy_timeout,
                           usable_timeout=USABLE_TIMEOUT)
    finally:
        run.done.set()
        if injector is not None:
            injector.join(180)
    if result.error:
        # The deploy did not end: the node is stuck where it is.
        node = result.node
        run.note('no end state after %d s: %s'
                 % (fault.deploy_timeout, result.error))
    else:
        node = _settle(tb) or result.node
    handoff = result.events.get('handoff') or run.started
    power = tb.power_events(since=run.started)
    obs = {
        'fault': fault.number,
        'title': fault.title,
        'how': fault.how,
        'expected': fault.expected,
        'expected_state': fault.state,
        'state': node['provision_state'],
        'last_error': node.get('last_error'),
        'power_state': node.get('power_state'),
        'record': (node.get('driver_internal_info') or {}).get('kexec'),
        'history': result.history_events(),
        'power_events': power,
        'power_after_handoff': describe_power(
            [e for e in power if e['monotonic'] >= handoff]),
        'firmware_runs_after_handoff': result.firmware_runs_after_handoff,
        'instance_answer': result.instance_answer,
        'usable_after': (round(result.usable - run.started, 1)
                         if result.usable else None),
        'notes': run.notes,
        'injection_error': run.error,
        'deploy_error': result.error,
        'node': node,
    }
    end = _wall(node.get('provision_updated_at'))
    obs['seconds_to_end'] = (round(end - run.started_wall, 1)
                             if end else None)
    if fault.cleanup is not None:
        try:
            fault.cleanup(run)
        except Exception as e:
            obs['cleanup_error'] = str(e)
    judge(fault, run, obs)
    if result.error:
        # Aborted (from wait call-back) and undeployed, for what follows.
        try:
            tb.recover()
        except Exception as e:
            obs['cleanup_error'] = str(e)
    if fault.agent:
        _set_agent(tb, images, None)
    if redeploy:
        obs['redeploy'] = deploy_again(tb, fault)
    else:
        tb.recover()
    return obs


def tree_commit():
    """The commit the harness runs, '-dirty' with local changes; or None."""
    try:
        out = subprocess.run(
            ['git', 'describe', '--always', '--dirty', '--abbrev=12'],
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def deploy_again(tb, fault):
    """Deploy the node again, without the fault: is it usable?"""
    try:
        tb.recover()
        image, interface = (('diskless', 'ramdisk-kexec')
                            if fault.interface == 'ramdisk-kexec'
                            else ('whole_disk', 'kexec'))
        result = tb.deploy(image, deploy_interface=interface,
                           usable_timeout=USABLE_TIMEOUT)
        rec = result.kexec_record or {}
        ok = (result.provision_state == 'active'
              and result.usable is not None
              and rec.get('path') == 'kexec'
              and (rec.get('verify') or {}).get('status') == 'verified')
        out = {'ok': ok, 'state': result.provision_state,
               'path': rec.get('path'), 'reason': rec.get('reason'),
               'verify': (rec.get('verify') or {}).get('status'),
               'usable': result.usable is not None}
        tb.recover()
        return out
    except Exception as e:
        traceback.print_exc()
        return {'ok': False, 'error': str(e)}


def judge(fault, run, obs):
    """Compare the observation with the expectation and with itself.

    Sets ``as_expected``, ``stuck``, ``disagreements`` (the record
    against the BMC, the firmware and the instance) and ``problems``.
    """
    rec = obs['record'] or {}
    path = rec.get('path')
    reason = rec.get('reason')
    problems = []
    if obs['state'] != fault.state:
        problems.append('ended %s, expected %s' % (obs['state'],
                                                   fault.state))
    if fault.paths and path not in fault.paths:
        problems.append('path %s, expected %s' % (path,
                                                  ' or '.join(fault.paths)))
    if fault.reasons and reason not in fault.reasons:
        problems.append('reason %s, expected %s'
                        % (reason, ' or '.join(fault.reasons)))
    if fault.state == 'deploy failed' and not obs['last_error']:
        problems.append('deploy failed without last_error')
    if fault.check is not None:
        problems += fault.check(run, obs)
    if obs.get('injection_error'):
        problems.append(obs['injection_error'])
    obs['stuck'] = obs['state'] not in SETTLED_STATES or bool(
        obs['node'].get('reservation'))
    obs['problems'] = problems
    obs['disagreements'] = disagreements(fault, obs)
    obs['as_expected'] = (not problems and not obs['disagreements']
                          and not obs['stuck'])
    return obs


def disagreements(fault, obs):
    """Where the record disagrees with the BMC, firmware and instance."""
    rec = obs['record'] or {}
    path = rec.get('path')
    reason = rec.get('reason')
    disagree = []
    firmware = obs['firmware_runs_after_handoff']
    answer = obs['instance_answer']
    for phase in ('verify', 'recovery'):
        if ((rec.get(phase) or {}).get('status') == 'pending'
                and obs['state'] in END_STATES):
            disagree.append('record says %s pending, the deploy ended %s'
                            % (phase, obs['state']))
    step = rec.get('step')
    if (path == 'handoff' and obs['state'] in END_STATES
            and (rec.get(step) or {}).get('status') != 'interrupted'):
        disagree.append('record says the handoff is at %s, the deploy ended '
                        '%s' % (step, obs['state']))
    if obs['state'] == 'active':
        if not rec and fault.interface in ('kexec', 'ramdisk-kexec'):
            disagree.append('active, but no kexec record')
        if path == 'kexec':
            if firmware:
                disagree.append('record says kexec, the firmware ran %d '
                                'times after the handoff' % firmware)
            if (rec.get('verify') or {}).get('status') == 'verified' and (
                    answer is None):
                disagree.append('record says verified, the instance never '
                                'answered')
            cmdline = (rec.get('entry') or {}).get('cmdline')
            if answer and cmdline and sorted(cmdline.split()) != sorted(
                    answer.split(scenario._PortProbe.MARK, 1)[-1].split()):
                disagree.append('the instance runs "%s", the record says '
                                'it kexec\'d "%s"' % (
                                    answer.split(scenario._PortProbe.MARK,
                                                 1)[-1].strip(), cmdline))
        elif path == 'power-cycle':
            if not firmware:
                disagree.append('record says power-cycle, the firmware did '
                                'not run after the handoff')
            if obs['power_after_handoff'] == 'none':
                disagree.append('record says power-cycle, the BMC saw no '
                                'power command after the handoff')
            recovery = rec.get('recovery') or {}
            if recovery.get('status') == 'verified' and answer is None:
                disagree.append('record says recovered, the instance never '
                                'answered')
        elif path == 'failed':
            disagree.append('record says failed, the node is active')
    else:
        if path == 'kexec' and (rec.get('verify') or {}).get(
                'status') != 'interrupted':
            disagree.append('record says kexec, the deploy ended %s'
                            % obs['state'])
        if path == 'failed' and reason and reason not in (
                obs['last_error'] or ''):
            disagree.append('last_error does not name the record\'s reason '
                            '%s' % reason)
        # What the BMC did last is what the node is left in.
        last = [e.get('event') for e in obs['power_events']
                if e.get('event') in ('started', 'stopped')]
        if last and last[-1] == 'started' and (
                obs['power_state'] == 'power off'):
            disagree.append('Ironic says power off, the BMC last powered '
                            'the node on')
        if last and last[-1] == 'stopped' and (
                obs['power_state'] == 'power on'):
            disagree.append('Ironic says power on, the BMC last powered '
                            'the node off')
    return disagree


# The report.

def _cell(text):
    return str(text if text is not None else '-').replace('|', '\\|')


def format_markdown(results, meta):
    lines = [
        '# Fault matrix',
        '',
        meta.get('summary', ''),
        '',
        '| # | fault | expected end | observed end | recorded path / reason '
        '| BMC after the handoff | s to end | redeploy | ok |',
        '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ]
    for obs in results:
        rec = obs.get('record') or {}
        recorded = '%s / %s' % (rec.get('path') or '-',
                                rec.get('reason') or '-')
        extra = []
        if (rec.get('verify') or {}).get('status'):
            extra.append('verify %s' % rec['verify']['status'])
        if (rec.get('recovery') or {}).get('status'):
            extra.append('recovery %s' % rec['recovery']['status'])
        if extra:
            recorded += ' (%s)' % ', '.join(extra)
        observed = obs.get('state') or '-'
        if obs.get('state') == 'deploy failed' and obs.get('last_error'):
            observed += ': ' + obs['last_error'][:160]
        redo = obs.get('redeploy') or {}
        verdict = 'yes' if obs.get('as_expected') else 'NO: ' + '; '.join(
            (obs.get('problems') or []) + (obs.get('disagreements') or [])
            + (['stuck'] if obs.get('stuck') else []))
        lines.append('| %s |' % ' | '.join(_cell(c) for c in (
            obs['fault'], obs['title'], obs['expected'], observed, recorded,
            obs.get('power_after_handoff'),
            obs.get('seconds_to_end') if obs.get('state') in END_STATES
            else 'no end',
            'ok' if redo.get('ok') else 'FAILED %s' % (
                redo.get('error') or redo.get('state') or ''),
            verdict)))
    lines += ['', 'How each fault is injected:', '']
    for obs in results:
        lines.append('- **%s** %s' % (obs['fault'], obs.get('how') or ''))
    return '\n'.join(lines) + '\n'


def summarize(results):
    stuck = sum(1 for r in results if r.get('stuck'))
    disagree = sum(1 for r in results if r.get('disagreements'))
    ok = sum(1 for r in results if r.get('as_expected'))
    redeploy = sum(1 for r in results if (r.get('redeploy') or {}).get('ok'))
    return ('%d faults: %d as expected, %d nodes stuck in a transient state, '
            '%d records that disagree with what happened, %d redeploys '
            'usable.' % (len(results), ok, stuck, disagree, redeploy))


def write_report(results, out, meta):
    os.makedirs(out, exist_ok=True)
    meta = dict(meta, summary=summarize(results))
    slim = []
    for obs in results:
        obs = dict(obs)
        node = obs.pop('node', None) or {}
        obs['driver_info_kexec_failures'] = (
            node.get('driver_info') or {}).get('kexec_failures')
        slim.append(obs)
    with open(os.path.join(out, 'results.json'), 'w') as f:
        json.dump({'meta': meta, 'results': slim}, f, indent=1,
                  sort_keys=True, default=str)
    with open(os.path.join(out, 'results.md'), 'w') as f:
        f.write(format_markdown(results, meta))
    return meta['summary']


# The command.

def load_images(path=None):
    from testbed import images as tb_images
    if path:
        with open(path) as f:
            data = json.load(f)
        base = tb_images.Images(data['paths'], data['checksums'])
    else:
        base = tb_images.ensure_images()
    return tb_images.ensure_fault_images(base)


def run_on_new_testbed(fault, images, workdir):
    kexec_options, ironic_options, provide_timeout = testbed_options(
        fault)
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    tb = scenario.Testbed(workdir, images, kexec_options=kexec_options,
                          ironic_options=ironic_options,
                          provide_timeout=provide_timeout,
                          extra_image_dirs=[images.fault_dir])
    started = time.monotonic()
    try:
        tb.start()
        tb.enrol()
        obs = run_fault(tb, fault, images)
    except Exception as e:
        traceback.print_exc()
        obs = {'fault': fault.number, 'title': fault.title,
               'how': fault.how, 'expected': fault.expected,
               'state': None, 'as_expected': False,
               'problems': ['harness error: %s' % e], 'disagreements': [],
               'stuck': None, 'logs': tb.logs_tail() if tb.ironic else ''}
    finally:
        tb.stop()
    obs['wall_seconds'] = round(time.monotonic() - started, 1)
    # Where the logs are, as given (the results name no other path).
    obs['workdir'] = os.path.join('<workdir>', os.path.basename(workdir))
    return obs


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m testbed.faults',
        description='Inject faults into kexec deploys on the testbed.')
    parser.add_argument('--faults', type=_fault_list,
                        default=[f.number for f in FAULTS],
                        help='comma separated fault numbers (default: all)')
    parser.add_argument('--out', default=os.path.join(
        testbed.repo_dir(), 'artifacts', 'faults-results'),
        help='where results.json and results.md go')
    parser.add_argument('--workdir', default=os.path.join(
        testbed.repo_dir(), 'artifacts', 'faults'),
        help='the testbeds\' logs, one directory per fault')
    parser.add_argument('--images', help='the images to use, as "python -m '
                        'testbed.images --json" prints them (default: '
                        'build or reuse those of this tree)')
    parser.add_argument('--list', action='store_true',
                        help='list the faults and exit')
    args = parser.parse_args(argv)
    if args.list:
        for f in FAULTS:
            print('%-4s %s: %s (%s)' % (f.number, f.title, f.expected,
                                        f.how))
        return 0
    unknown = [n for n in args.faults if n not in BY_NUMBER]
    if unknown:
        parser.error('unknown faults: %s' % ', '.join(unknown))
    if os.geteuid() != 0:
        parser.error('the testbed needs root')
    images = load_images(args.images)
    results = []
    started = time.time()
    commit = tree_commit()
    for number in args.faults:
        fault = BY_NUMBER[number]
        print('=== fault %s: %s' % (number, fault.title), file=sys.stderr)
        obs = run_on_new_testbed(fault, images,
                                 os.path.join(args.workdir, number))
        results.append(obs)
        print('=== fault %s: %s' % (number, 'as expected'
                                    if obs.get('as_expected') else
                                    'NOT as expected: %s %s' % (
                                        obs.get('problems'),
                                        obs.get('disagreements'))),
              file=sys.stderr)
        # Written after every fault: a long run leaves its results so far.
        summary = write_report(results, args.out, {
            'started': time.strftime('%Y-%m-%d %H:%M', time.gmtime(started)),
            'faults': args.faults,
            'kexec_options': KEXEC_OPTIONS,
            'agent_ramdisk_sha256': images.checksums['agent_ramdisk'],
            'commit': commit,
            'minutes': round((time.time() - started) / 60, 1)})
    print(summary)
    print('results: %s' % os.path.join(args.out, 'results.md'))
    return 0 if all(r.get('as_expected') for r in results) else 1


if __name__ == '__main__':
    sys.exit(main())
