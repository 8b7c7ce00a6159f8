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

"""The timeline of a deploy, from the testbed's logs, and its printing.

Milestones, all on the host's monotonic clock:

``deploy request``  the ``baremetal node deploy`` call;
``agent starting``  the ramdisk's "AGENT STARTING" console line;
``agent heartbeat`` the first heartbeat in Ironic's log;
``image written``   the next deploy step starts after ``write_image``;
``handoff``         ``tear_down_agent`` starts (kexec or power off); for
                    the ramdisk deploy interfaces, which have no such
                    step, their ``deploy`` step starts;
``instance kernel`` the first ``Linux version`` console line after the
                    handoff;
``active``          Ironic reports ``active``;
``instance usable`` the first answer on the instance's port.

Ironic logs wall-clock times; they are moved onto the monotonic clock with
the offset between the two clocks measured when the log is read. All times
are TCG times: never present them as hardware times.
"""

import dataclasses
import datetime
import os
import re
import time

from testbed import node as tb_node

AGENT_MARKER = 'IRONIC-KEXEC-TESTBED AGENT STARTING'
INSTANCE_MARKER = 'IRONIC-KEXEC-TESTBED INSTANCE UP'
CMDLINE_MARKER = 'IRONIC-KEXEC-TESTBED CMDLINE:'
# The second line of the instance's answer on its port.
FIRMWARE_REPLY_MARKER = 'IRONIC-KEXEC-TESTBED-FIRMWARE'
KERNEL_MARKER = 'Linux version'

MILESTONES = ('deploy request', 'agent starting', 'agent heartbeat',
              'image written', 'handoff', 'instance kernel', 'active',
              'instance usable')

_IRONIC_LINE = re.compile(
    r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) \d+ (\w+) (\S+) (.*)$')
_STEP = re.compile(r"Executing \{'step': '(\w+)'")


def ironic_events(log_path, node_uuid, since):
    """(monotonic, level, message) of Ironic's log lines about the node."""
    offset = time.time() - time.monotonic()
    events = []
    try:
        with open(log_path, errors='replace') as f:
            for raw in f:
                match = _IRONIC_LINE.match(raw)
                if not match or node_uuid not in raw:
                    continue
                wall = datetime.datetime.strptime(
                    match.group(1), '%Y-%m-%d %H:%M:%S.%f').timestamp()
                mono = wall - offset
                if mono >= since - 1:
                    events.append((mono, match.group(2), match.group(4)))
    except FileNotFoundError:
        pass
    return events


def deploy_steps(events):
    """[(monotonic, step name)] of the deploy steps Ironic started."""
    steps = []
    for mono, _level, message in events:
        match = _STEP.search(message)
        if match and 'on node' in message:
            steps.append((mono, match.group(1)))
    return steps


def parse_firmware_facts(text):
    """{key: value} of ``key=value`` words; yes/no as bools, counts as ints.

    '-' (the instance's "absent") is None.
    """
    facts = {}
    for word in text.split():
        key, sep, value = word.partition('=')
        if not sep:
            continue
        if value in ('yes', 'no'):
            value = value == 'yes'
        elif value == '-':
            value = None
        elif value.isdigit():
            value = int(value)
        facts[key] = value
    return facts


def parse_instance_reply(text):
    """(first line, firmware facts or None) of the instance's answer.

    The first line is the instance's kernel command line after its marker,
    as it always was; the firmware facts (see
    testbed/instance/ironic-kexec-testbed-firmware) follow on a line of
    their own, which older instances do not send.
    """
    if text is None:
        return None, None
    lines = text.splitlines()
    facts = None
    for line in lines[1:]:
        if line.startswith(FIRMWARE_REPLY_MARKER + ' '):
            facts = parse_firmware_facts(
                line[len(FIRMWARE_REPLY_MARKER):])
    return (lines[0] if lines else text), facts


@dataclasses.dataclass
class DeployResult:
    """What one deploy did and when. Filled by :class:`Testbed.deploy`."""

    label: str
    deploy_interface: str
    image: str
    started: float
    workdir: str = ''
    active: float = None
    usable: float = None
    instance_answer: str = None
    node: dict = None
    history: list = None
    events: dict = dataclasses.field(default_factory=dict)
    steps: list = dataclasses.field(default_factory=list)
    firmware_runs: int = 0
    firmware_runs_after_handoff: int = 0
    power_actions_after_handoff: list = dataclasses.field(
        default_factory=list)
    instance_cmdline: str = None
    # What the instance reported of its firmware (parse_firmware_facts):
    # efi, efivars, efivars_read, secureboot, acpi_tables.
    instance_firmware: dict = None
    # Set when the deploy did not finish in time.
    error: str = None

    @property
    def provision_state(self):
        return (self.node or {}).get('provision_state')

    @property
    def last_error(self):
        return (self.node or {}).get('last_error')

    @property
    def kexec_record(self):
        return ((self.node or {}).get('driver_internal_info') or {}).get(
            'kexec')

    def history_events(self):
        return [h.get('Event') or h.get('event') or ''
                for h in self.history or []]

    def collect(self, spec, bmc_log, ironic_log, node_uuid):
        """Read the milestones out of the logs of this deploy."""
        since = self.started
        ev = self.events
        ev['deploy request'] = since
        line = tb_node.find_line(spec.serial_log, AGENT_MARKER, since)
        ev['agent starting'] = line and line.monotonic

        ironic = ironic_events(ironic_log, node_uuid, since)
        for mono, _level, message in ironic:
            if 'Heartbeat from node' in message:
                ev['agent heartbeat'] = mono
                break
        self.steps = deploy_steps(ironic)
        names = [name for _mono, name in self.steps]
        if 'write_image' in names:
            after = names.index('write_image') + 1
            if after < len(self.steps):
                ev['image written'] = self.steps[after][0]
        handoff_step = ('deploy'
                        if self.deploy_interface.startswith('ramdisk')
                        else 'tear_down_agent')
        for mono, name in self.steps:
            if name == handoff_step:
                ev['handoff'] = mono
        handoff = ev.get('handoff')
        if handoff:
            line = tb_node.find_line(spec.serial_log, KERNEL_MARKER,
                                     handoff)
            ev['instance kernel'] = line and line.monotonic
        ev['active'] = self.active
        ev['instance usable'] = self.usable

        runs = [ln.monotonic for ln in tb_node.read_log(spec.firmware_log)
                if tb_node.is_firmware_run(ln.text)
                and ln.monotonic >= since]
        self.firmware_runs = len(runs)
        if handoff:
            end = self.usable or float('inf')
            self.firmware_runs_after_handoff = len(
                [r for r in runs if handoff <= r <= end])
            self.power_actions_after_handoff = [
                ln.text for ln in tb_node.read_log(bmc_log)
                if ln.monotonic >= handoff and (
                    'chassis control' in ln.text
                    or ln.text.startswith('power '))]
        line = tb_node.find_line(spec.serial_log, CMDLINE_MARKER,
                                 handoff or since)
        if line:
            self.instance_cmdline = line.text.split(CMDLINE_MARKER, 1)[1]
        return self

    def relative(self, name):
        mono = self.events.get(name)
        return None if mono is None else mono - self.started

    def summary(self):
        """A few lines: outcome, firmware runs, the kexec record."""
        rec = self.kexec_record or {}
        return '\n'.join([
            '%s: %s%s' % (self.label, self.provision_state,
                          ' (%s)' % (self.error or self.last_error)
                          if self.error or self.last_error else ''),
            '  firmware runs: %d in the deploy, %d after the handoff' % (
                self.firmware_runs, self.firmware_runs_after_handoff),
            '  power actions after the handoff: %s' % (
                '; '.join(self.power_actions_after_handoff) or 'none'),
            '  kexec record: path=%s reason=%s%s' % (
                rec.get('path'), rec.get('reason'),
                ' (left by an earlier deploy: this one did not use kexec)'
                if rec and 'kexec' not in self.deploy_interface else ''),
        ] + (['  instance firmware: %s' % ' '.join(
            '%s=%s' % kv for kv in sorted(self.instance_firmware.items()))]
             if self.instance_firmware else []))


def _fmt(seconds):
    return '-' if seconds is None else '%7.1f s' % seconds


def format_side_by_side(results):
    """The timelines of several deploys as one table.

    Each cell is the time since that deploy's request; the last rows are
    the handoff-to-usable time, the part kexec shortens.
    """
    width = max([22] + [len(r.label) + 2 for r in results])
    head = '%-22s' % 'milestone (TCG)' + ''.join(
        '%*s' % (width, r.label) for r in results)
    lines = [head, '-' * len(head)]
    for name in MILESTONES:
        lines.append('%-22s' % name + ''.join(
            '%*s' % (width, _fmt(r.relative(name))) for r in results))
    lines.append('-' * len(head))
    for title, start in (('handoff -> usable', 'handoff'),
                         ('image -> usable', 'image written')):
        cells = []
        for r in results:
            a, b = r.events.get(start), r.events.get('instance usable')
            cells.append(_fmt(b - a if a is not None and b is not None
                              else None))
        lines.append('%-22s' % title + ''.join(
            '%*s' % (width, c) for c in cells))
    lines.append('%-22s' % 'firmware runs' + ''.join(
        '%*s' % (width, '%d (%d after handoff)' % (
            r.firmware_runs, r.firmware_runs_after_handoff))
        for r in results))
    return '\n'.join(lines)


def save(result, path):
    """Write a result (without the bulky node/history) as text."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(format_side_by_side([result]) + '\n\n')
        f.write(result.summary() + '\n\nsteps:\n')
        for mono, name in result.steps:
            f.write('  %7.1f s  %s\n' % (mono - result.started, name))
