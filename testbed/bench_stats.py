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

"""The benchmark's figures: phases of a deploy and their statistics.

Pure functions over recorded runs (plain dicts, as stored in the
benchmark's JSON file), so a report can be made again from the JSON and
tested without QEMU.

A run's ``milestones`` are seconds since its deploy request. A phase
lasts from the last milestone recorded before its end to its end: a
milestone a deploy does not have (a diskless deploy writes no image)
gives a phase of ``None`` and its time counts in the next phase, so the
phases of a run always add up to its time to usable.

With fast track the agent is up before the deploy request: the first
heartbeat after the request (the timeline's ``agent heartbeat``) is the
running agent's next one, at any time of the deploy, not the agent coming
up. Such a run has no "to agent up" phase (``None``); its next phase
starts at the deploy request.
"""

import statistics

# The variants: (name, pair, role, deploy interface, image).
VARIANTS = (
    ('direct', 'disk', 'power-cycle', 'direct', 'whole_disk'),
    ('kexec', 'disk', 'kexec', 'kexec', 'whole_disk'),
    ('ramdisk', 'diskless', 'power-cycle', 'ramdisk', 'diskless'),
    ('ramdisk-kexec', 'diskless', 'kexec', 'ramdisk-kexec', 'diskless'),
    ('direct-fast-track', 'disk-fast-track', 'power-cycle', 'direct',
     'whole_disk'),
    ('kexec-fast-track', 'disk-fast-track', 'kexec', 'kexec', 'whole_disk'),
    ('uefi-direct', 'uefi-disk', 'power-cycle', 'direct', 'uefi_whole_disk'),
    ('uefi-kexec', 'uefi-disk', 'kexec', 'kexec', 'uefi_whole_disk'),
)
PAIRS = ('disk', 'diskless', 'disk-fast-track', 'uefi-disk')
# The pairs deployed on a UEFI node (OVMF), with the UEFI whole-disk image.
UEFI_PAIRS = ('uefi-disk',)
# The pairs the last line always names (see final_line).
LINE_PAIRS = ('disk', 'diskless', 'disk-fast-track')
# The pairs deployed on a testbed with fast track and cleaning: cleaning
# boots the agent after each undeploy and fast track keeps it running,
# so each deploy starts with a live agent (the redeploy of a node just
# cleaned or inspected).
FAST_TRACK_PAIRS = ('diskless', 'disk-fast-track')

# (phase, the testbed timeline's milestone that ends it), in order; the
# first phase starts at the deploy request.
PHASES = (
    ('to agent up', 'agent heartbeat'),
    ('image write', 'image written'),
    ('to handoff', 'handoff'),
    ('handoff to kernel', 'instance kernel'),
    ('kernel to usable', 'instance usable'),
)
TOTAL = 'time to usable'
# The part of a deploy that the deploy interface changes: the phases
# before it are the same code for both variants of a pair, and their
# noise (the agent's boot under TCG varies by several seconds) would
# hide the difference in the time to usable.
HANDOFF_TO_USABLE = 'handoff to usable'
# The milestones of a run as the report names them.
MILESTONE_TITLES = (
    ('deploy request', 'deploy request'),
    ('agent heartbeat', 'agent up'),
    ('image written', 'image written'),
    ('handoff', 'handoff started'),
    ('instance kernel', 'instance kernel'),
    ('instance usable', 'instance usable'),
)


def variant(name):
    """The variant's (name, pair, role, deploy interface, image)."""
    for v in VARIANTS:
        if v[0] == name:
            return v
    raise ValueError('unknown variant %r' % name)


def variants_of(pairs):
    """The variants of the given pairs, power cycle first in each pair."""
    return [v[0] for v in VARIANTS if v[1] in pairs]


def schedule(names, runs):
    """The order of the deploys: ABAB..., so noise hits every variant.

    :returns: [(round, variant)] with rounds counted from 1.
    """
    return [(r + 1, name) for r in range(runs) for name in names]


def phases(milestones, agent_up=False):
    """{phase: seconds or None} of one run, plus its time to usable.

    :param agent_up: the agent was up before the deploy request (fast
        track, see :func:`agent_up_before`): the 'agent heartbeat'
        milestone ends no phase.
    """
    out = {}
    last = milestones.get('deploy request', 0.0) or 0.0
    for phase, end in PHASES:
        at = milestones.get(end)
        if agent_up and end == 'agent heartbeat':
            at = None
        # A milestone before the previous one ends no phase: a phase of
        # negative length would be wrong twice, in itself and in the
        # next one. (An agent heartbeat logged just before the request,
        # which the timeline's one-second margin lets in, is one.)
        if at is None or at < last:
            out[phase] = None
            continue
        out[phase] = at - last
        last = at
    usable = milestones.get('instance usable')
    out[TOTAL] = usable
    handoff = milestones.get('handoff')
    out[HANDOFF_TO_USABLE] = (usable - handoff if None not in (
        usable, handoff) else None)
    return out


def agent_up_before(run):
    """Whether the run's agent was up before its deploy request.

    That is, the testbed saw a live agent before the request (recorded by
    the fast-track pairs) and no agent booted during the deploy: Ironic
    boots one anyway when it finds fast track unusable, and then the
    first heartbeat is that agent coming up.
    """
    return (run.get('agent_alive_before') is True
            and (run.get('milestones') or {}).get('agent starting') is None)


def run_phases(run):
    """:func:`phases` of a recorded run, fast track taken into account."""
    return phases(run['milestones'], agent_up_before(run))


def succeeded(run):
    return bool(run.get('ok')) and run.get('milestones', {}).get(
        'instance usable') is not None


def describe(values):
    """min, median, max (and how many) of the values that are not None."""
    values = [v for v in values if v is not None]
    if not values:
        return {'n': 0, 'min': None, 'median': None, 'max': None}
    return {'n': len(values), 'min': min(values),
            'median': statistics.median(values), 'max': max(values)}


def summarize(runs):
    """Statistics per (post, variant) of the successful runs.

    :returns: {(post, variant): {'runs': n, 'failed': n,
        'phases': {phase: describe(...)}}}, phases including TOTAL.
    """
    groups = {}
    for run in runs:
        key = (run['post'], run['variant'])
        groups.setdefault(key, []).append(run)
    out = {}
    for key, group in groups.items():
        good = [r for r in group if succeeded(r)]
        table = {}
        for phase in [p for p, _ in PHASES] + [TOTAL, HANDOFF_TO_USABLE]:
            table[phase] = describe(run_phases(r)[phase] for r in good)
        out[key] = {'runs': len(group), 'failed': len(group) - len(good),
                    'phases': table}
    return out


def agent_alive(runs):
    """{(post, variant): counts} of the deploys of the fast-track pairs.

    The counts: 'deploys', 'alive' (a live agent before the request),
    'unknown' (not checked: the testbed failed first, or the results
    predate the check) and 'booted' (alive, yet an agent booted during
    the deploy: Ironic did not use fast track).
    """
    out = {}
    for run in runs:
        if run.get('pair') not in FAST_TRACK_PAIRS:
            continue
        counts = out.setdefault((run['post'], run['variant']), {
            'deploys': 0, 'alive': 0, 'unknown': 0, 'booted': 0})
        counts['deploys'] += 1
        alive = run.get('agent_alive_before')
        if alive is None:
            counts['unknown'] += 1
        elif alive:
            counts['alive'] += 1
            if not agent_up_before(run):
                counts['booted'] += 1
    return out


def ratio(summary, post, pair, figure=TOTAL):
    """Median ``figure`` (time to usable), kexec over power cycle.

    ``None`` when either variant of the pair has no successful run.
    """
    medians = {}
    for name, v_pair, role, _iface, _image in VARIANTS:
        if v_pair != pair:
            continue
        stats = summary.get((post, name))
        if not stats:
            return None
        median = stats['phases'][figure]['median']
        if median is None:
            return None
        medians[role] = median
    if not medians.get('power-cycle'):
        return None
    return medians['kexec'] / medians['power-cycle']


# The kexec record's timings (see ironic_kexec.record): the conductor's
# side of the hand-off, then the agent's. Each is (title, side, key).
# 'verify' runs from the kexec to the instance's answer; 'recovery' from
# the power cycle after a failed verification to the answer.
KEXEC_TIMINGS = (
    ('load (conductor)', 'timings', 'load'),
    ('execute (conductor)', 'timings', 'execute'),
    ('agent gone (conductor)', 'timings', 'agent_gone'),
    ('verify (conductor)', 'timings', 'verify'),
    ('recovery (conductor)', 'timings', 'recovery'),
    ('discover (agent)', 'agent_timings', 'discover'),
    ('download (agent)', 'agent_timings', 'download'),
    ('kexec --load (agent)', 'agent_timings', 'load'),
)


def kexec_paths(runs):
    """{(post, variant): {path taken: count}} from the kexec records."""
    out = {}
    for run in runs:
        rec = run.get('kexec_record') or {}
        if not rec.get('path'):
            continue
        paths = out.setdefault((run['post'], run['variant']), {})
        key = rec['path'] + (' (%s)' % rec['reason']
                             if rec.get('reason') else '')
        paths[key] = paths.get(key, 0) + 1
    return out


# The kexec record's verify status of a kexec'd instance that answered
# (ironic_kexec.record.VERIFIED; the testbed does not import the plugin).
VERIFIED = 'verified'


def kexec_verify(runs):
    """{(post, variant): {verify status: count}} from the kexec records.

    Every deploy with a kexec record counts, failed ones too; a record
    without verification (no kexec was executed, or the results predate
    it) counts as None.
    """
    out = {}
    for run in runs:
        rec = run.get('kexec_record') or {}
        if not rec.get('path'):
            continue
        status = (rec.get('verify') or {}).get('status')
        counts = out.setdefault((run['post'], run['variant']), {})
        counts[status] = counts.get(status, 0) + 1
    return out


def kexec_timings(runs):
    """{(post, variant): {title: describe(...)}} of the successful runs.

    Only the timings some run recorded are given.
    """
    groups = {}
    for run in runs:
        rec = run.get('kexec_record') or {}
        if succeeded(run) and rec.get('timings'):
            groups.setdefault((run['post'], run['variant']), []).append(rec)
    out = {}
    for key, recs in groups.items():
        table = {}
        for title, side, name in KEXEC_TIMINGS:
            desc = describe((r.get(side) or {}).get(name) for r in recs)
            if desc['n']:
                table[title] = desc
        out[key] = table
    return out


def final_line(summary, post, runs):
    """The benchmark's last line, for one emulated POST value.

    Every pair of LINE_PAIRS has its cell (n/a when not measured); the
    UEFI pairs, which came later, only when the summary has their runs,
    so that the line of a BIOS-only run keeps its format.
    """
    cells = []
    measured = {variant(name)[1] for _post, name in summary}
    for pair in LINE_PAIRS + tuple(p for p in UEFI_PAIRS if p in measured):
        r = ratio(summary, post, pair)
        cells.append('%s %s' % (pair, 'n/a' if r is None else '%.2f' % r))
    return 'time-to-usable kexec/power-cycle: %s (%d runs, post %s s)' % (
        ', '.join(cells), runs, format_post(post))


def format_post(post):
    return ('%g' % post) if post is not None else '0'
