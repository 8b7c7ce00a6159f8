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

"""The benchmark's outputs: Markdown table, JSON file and PNG chart.

Everything is made from the recorded data (see :mod:`testbed.bench_stats`)
so that ``python -m testbed.bench --report-only DIR`` can make the report
again from a results folder's JSON file.
"""

import json
import os
import platform
import subprocess

from testbed import bench_stats as stats

JSON_NAME = 'results.json'
MARKDOWN_NAME = 'results.md'
CHART_NAME = 'phases.png'
# Why a fast-track deploy has no "to agent up": the timeline's agent
# heartbeat is the first one after the request, which with fast track is
# any heartbeat of the agent already running.
FAST_TRACK_NOTE = (
    'With fast track (a live agent before the deploy request, and none '
    'booted during the deploy), to agent up is not measured ("-"): the '
    'agent was already up, and the first heartbeat after the request is '
    'its next routine one, not its start. The time from the request '
    'counts in the next phase (image write, or to handoff for a diskless '
    'deploy).')
TCG_NOTE = ('All times are QEMU TCG (software emulation) times on the '
            'machine below, far slower than real hardware: compare the '
            'variants with each other, never with hardware times.')


def machine_info(qemu='qemu-system-x86_64'):
    """What the figures were measured on."""
    cpu = None
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        out = subprocess.run([qemu, '--version'], capture_output=True,
                             text=True, timeout=30).stdout
        qemu_version = out.splitlines()[0].strip() if out else None
    except (OSError, subprocess.SubprocessError):
        qemu_version = None
    return {'cpu_model': cpu, 'cores': os.cpu_count(), 'accel': 'tcg',
            'kernel': platform.release(), 'qemu': qemu_version,
            'python': platform.python_version()}


def post_label(post):
    return ('emulated POST %s s' % stats.format_post(post)) if post else (
        'no POST')


def cell(value):
    return '-' if value is None else '%.1f' % value


def _triple(desc):
    if not desc['n']:
        return '-'
    return '%s / %s / %s' % (cell(desc['min']), cell(desc['median']),
                             cell(desc['max']))


def markdown(data):
    """The report: one table per emulated POST value, then the ratios."""
    summary = stats.summarize(data['runs'])
    posts = data['settings']['posts']
    names = data['settings']['variants']
    machine = data['machine']
    lines = ['# Benchmark: time to a usable node, kexec against the power '
             'cycle', '', TCG_NOTE, '',
             '- machine: %s, %s cores, accel=%s, kernel %s, %s' % (
                 machine.get('cpu_model'), machine.get('cores'),
                 machine.get('accel'), machine.get('kernel'),
                 machine.get('qemu')),
             '- runs per variant: %d (variants alternated: %s)' % (
                 data['settings']['runs'], ', '.join(names)),
             '- started: %s' % data['settings'].get('started')]
    for part in data['settings'].get('parts') or ():
        lines.append('- part started %s: %d deploys of %s with %s' % (
            part.get('started'), part['deploys'],
            ', '.join(part['variants']),
            ' and '.join(post_label(p) for p in part['posts'])))
    lines.append('')
    if data['settings'].get('stopped'):
        lines += ['- the benchmark stopped early: %s' %
                  data['settings']['stopped'], '']
    unavailable = data['settings'].get('unavailable') or {}
    for pair, why in sorted(unavailable.items()):
        lines.append('- %s pair not run: %s' % (pair, why))
    if unavailable:
        lines.append('')
    columns = [p for p, _ in stats.PHASES] + [stats.TOTAL]
    for post in posts:
        lines += ['## %s' % post_label(post), '',
                  'Seconds, min / median / max of the successful runs.', '',
                  '| variant | runs (failed) | ' + ' | '.join(columns) + ' |',
                  '|---|---|' + '---|' * len(columns)]
        for name in names:
            entry = summary.get((post, name))
            if not entry:
                continue
            label = name + (' (emulated POST)' if post else '')
            lines.append('| %s | %d (%d) | %s |' % (
                label, entry['runs'], entry['failed'],
                ' | '.join(_triple(entry['phases'][c]) for c in columns)))
        lines.append('')
        for pair in stats.PAIRS:
            lines.append(
                '- %s: median time to usable, kexec / power cycle = %s; '
                'median handoff to usable (%s) = %s' % (
                    pair, _ratio(summary, post, pair), _handoff_to_usable(
                        summary, post, pair),
                    _ratio(summary, post, pair, stats.HANDOFF_TO_USABLE)))
        lines += _agent_alive(data, post, names)
        lines.append('')
        lines += _handoff_table(data, post, names)
    failures = [r for r in data['runs'] if not stats.succeeded(r)]
    if failures:
        lines += ['## Failed runs', '']
        for r in failures:
            lines.append('- %s round %d, post %s: %s' % (
                r['variant'], r['round'], stats.format_post(r['post']),
                r.get('error') or r.get('provision_state')))
        lines.append('')
    lines += ['Phases end at: ' + '; '.join(
        '%s = %s' % (p, dict(stats.MILESTONE_TITLES)[m])
        for p, m in stats.PHASES) + '.', '']
    if any(stats.agent_up_before(r) for r in data['runs']):
        lines += [FAST_TRACK_NOTE, '']
    return '\n'.join(lines)


def _ratio(summary, post, pair, figure=stats.TOTAL):
    r = stats.ratio(summary, post, pair, figure)
    return 'n/a' if r is None else '%.2f' % r


def _handoff_to_usable(summary, post, pair):
    """The medians behind the handoff-to-usable ratio, power cycle first."""
    cells = []
    for name in stats.variants_of([pair]):
        entry = summary.get((post, name))
        median = entry and entry['phases'][stats.HANDOFF_TO_USABLE]['median']
        cells.append('%s %s s' % (name, cell(median)))
    return ' against '.join(cells)


def _agent_alive(data, post, names):
    """How many deploys of each fast-track pair had a live agent before.

    Without one, fast track cannot be used: the deploy boots the agent
    through the firmware (and ramdisk-kexec falls back by design).
    """
    counts = stats.agent_alive(data['runs'])
    lines = []
    for pair in stats.FAST_TRACK_PAIRS:
        cells = []
        for name in stats.variants_of([pair]):
            if name not in names or (post, name) not in counts:
                continue
            c = counts[(post, name)]
            notes = []
            if c['unknown']:
                notes.append('%d not checked' % c['unknown'])
            if c['booted']:
                notes.append('%d booted an agent all the same' % c['booted'])
            cells.append('%s %d of %d%s' % (
                name, c['alive'], c['deploys'],
                ' (%s)' % ', '.join(notes) if notes else ''))
        if cells:
            lines.append('- %s: deploys that started with a live agent '
                         '(fast track): %s' % (pair, ', '.join(cells)))
    return lines


def _verified(counts):
    """The verification cell: deploys verified, then the other outcomes."""
    others = sorted(('%s x%d' % (status or 'no record', n)
                     for status, n in counts.items()
                     if status != stats.VERIFIED))
    return '%d of %d%s' % (counts.get(stats.VERIFIED, 0),
                           sum(counts.values()),
                           ' (%s)' % ', '.join(others) if others else '')


def _handoff_table(data, post, names):
    """The kexec record of the kexec variants: path, check and timings."""
    paths = stats.kexec_paths(data['runs'])
    timings = stats.kexec_timings(data['runs'])
    verify = stats.kexec_verify(data['runs'])
    titles = [t for t, _side, _key in stats.KEXEC_TIMINGS
              if any(t in timings.get((post, n), {}) for n in names)]
    rows = [n for n in names if (post, n) in paths]
    if not rows:
        return []
    # Results from before the verified handoff have no verification: no
    # such column then.
    checked = any(status is not None for n in rows
                  for status in verify.get((post, n), {}))
    head = ['variant', 'path taken'] + (['verified'] if checked else [])
    lines = ['The kexec hand-off, from the node\'s kexec record (seconds, '
             'min / median / max of the successful runs%s):' % (
                 '; verified: the deploys whose instance answered the '
                 'conductor after the kexec, of all with a record'
                 if checked else ''), '',
             _row(head + titles), '|' + '---|' * (len(head) + len(titles))]
    for name in rows:
        cells = [name, ', '.join('%s x%d' % (path, count) for path, count
                                 in sorted(paths[(post, name)].items()))]
        if checked:
            cells.append(_verified(verify.get((post, name), {})))
        table = timings.get((post, name), {})
        lines.append(_row(cells + [_triple(table[t]) if t in table else '-'
                                   for t in titles]))
    return lines + ['']


def _row(cells):
    return '| %s |' % ' | '.join(cells)


def write_json(data, directory):
    path = os.path.join(directory, JSON_NAME)
    with open(path, 'w') as f:
        json.dump(data, f, indent=2, sort_keys=True)
    return path


def read_json(directory):
    with open(os.path.join(directory, JSON_NAME)) as f:
        return json.load(f)


def merge(parts):
    """One benchmark's data from the data of several invocations.

    For a run made in parts (one ``--post`` value or pair at a time):
    the runs are put together, the settings say what each part was.
    """
    parts = list(parts)
    if len(parts) == 1:
        return parts[0]
    names = {n for part in parts for n in part['settings']['variants']}
    unavailable = {}
    for part in parts:
        unavailable.update(part['settings'].get('unavailable') or {})
    settings = {
        'runs': min(part['settings']['runs'] for part in parts),
        'posts': sorted({p for part in parts
                         for p in part['settings']['posts']}),
        'variants': [v[0] for v in stats.VARIANTS if v[0] in names],
        'unavailable': unavailable,
        'started': min(part['settings'].get('started') or ''
                       for part in parts),
        # What each part holds, from its runs: a part may have been
        # stopped before it ran all it was asked to.
        'parts': [{'started': part['settings'].get('started'),
                   'deploys': len(part['runs']),
                   'variants': [v[0] for v in stats.VARIANTS
                                if any(r['variant'] == v[0]
                                       for r in part['runs'])],
                   'posts': sorted({r['post'] for r in part['runs']})}
                  for part in parts],
    }
    stopped = [part['settings']['stopped'] for part in parts
               if part['settings'].get('stopped')]
    if stopped:
        settings['stopped'] = '; '.join(stopped)
    return {'machine': parts[0]['machine'], 'settings': settings,
            'runs': [run for part in parts for run in part['runs']]}


def chart_bars(data):
    """The bars of the chart, one per post and variant.

    Each is (label, [(phase, median seconds)], median time to usable).
    A missing phase (None) is drawn as 0: its time is in the next phase.
    The medians of the phases need not add up to the median time to
    usable, which the bar's label gives.
    """
    summary = stats.summarize(data['runs'])
    bars = []
    for post in data['settings']['posts']:
        for name in data['settings']['variants']:
            entry = summary.get((post, name))
            if not entry or not entry['phases'][stats.TOTAL]['n']:
                continue
            label = name + ('\n(emulated POST %s s)' % stats.format_post(
                post) if post else '')
            bars.append((label, [(p, entry['phases'][p]['median'] or 0.0)
                                 for p, _ in stats.PHASES],
                         entry['phases'][stats.TOTAL]['median']))
    return bars


def write_chart(data, directory):
    """A stacked bar chart of the median phases; the PNG's path.

    Needs matplotlib (in the ``bench`` tox environment only); returns
    None without it.
    """
    try:
        import matplotlib
        matplotlib.use('Agg')
        from matplotlib import pyplot
    except ImportError:
        return None
    bars = chart_bars(data)
    if not bars:
        return None
    fig, ax = pyplot.subplots(figsize=(10, 1.2 + 0.8 * len(bars)))
    labels = [bar[0] for bar in bars]
    ypos = list(range(len(bars)))
    left = [0.0] * len(bars)
    colours = pyplot.get_cmap('tab10')
    for i, (phase, _milestone) in enumerate(stats.PHASES):
        widths = [dict(bar[1])[phase] for bar in bars]
        ax.barh(ypos, widths, left=left, color=colours(i), label=phase,
                edgecolor='white')
        left = [a + b for a, b in zip(left, widths)]
    for y, end, bar in zip(ypos, left, bars):
        ax.text(end, y, ' %.0f s to usable' % bar[2], va='center')
    ax.set_yticks(ypos)
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    ax.set_xlim(0, max(left) * 1.25)
    ax.set_xlabel('seconds since the deploy request (median; QEMU TCG, '
                  'not hardware times)')
    ax.set_title('Time to a usable node, per phase (%d runs per variant)'
                 % data['settings']['runs'])
    ax.legend(loc='upper center', bbox_to_anchor=(0.5, -0.12 - 0.3 / len(
        bars)), ncol=len(stats.PHASES), fontsize='small', frameon=False)
    fig.tight_layout()
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, CHART_NAME)
    fig.savefig(path, dpi=100)
    pyplot.close(fig)
    return path


def write_all(data, directory):
    """JSON, Markdown and chart into ``directory``; their paths."""
    os.makedirs(directory, exist_ok=True)
    paths = [write_json(data, directory)]
    path = os.path.join(directory, MARKDOWN_NAME)
    with open(path, 'w') as f:
        f.write(markdown(data))
    paths.append(path)
    chart = write_chart(data, directory)
    if chart:
        paths.append(chart)
    return paths
