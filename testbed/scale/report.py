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

"""Measurements of the scale harness and their report.

From ``/proc``: CPU seconds of a process tree (``utime + stime`` of each
live process, plus ``cutime + cstime``: what its exited children, e.g.
``ipmitool`` runs, used), thread counts. The report: results JSON, a
markdown table and, when matplotlib is importable, a chart of
time-to-active and conductor CPU per deploy against the number of
nodes.
"""

import json
import os

CLK_TCK = os.sysconf('SC_CLK_TCK') if hasattr(os, 'sysconf') else 100


def _stat_fields(pid, proc='/proc'):
    try:
        with open('%s/%d/stat' % (proc, pid)) as f:
            data = f.read()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces.
    return data[data.rindex(')') + 2:].split()


def cpu_seconds(pid, proc='/proc', children=True):
    """utime + stime (+ cutime + cstime) of one process, in seconds."""
    fields = _stat_fields(pid, proc)
    if fields is None:
        return None
    # Fields after the name start at field 3 (state): utime is field 14.
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / float(CLK_TCK)


def children(pid, proc='/proc'):
    """Every live descendant of ``pid``."""
    parents = {}
    try:
        entries = os.listdir(proc)
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry), proc)
        if fields is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out.extend(kids)
        todo.extend(kids)
    return out


def tree_cpu_seconds(pid, proc='/proc'):
    """CPU seconds of a process and all its descendants, dead or alive."""
    own = cpu_seconds(pid, proc)
    if own is None:
        return None
    return own + sum(cpu_seconds(k, proc) or 0.0
                     for k in children(pid, proc))


def threads(pid, proc='/proc'):
    """Threads of a process tree (the conductor's worker pool is most)."""
    total = 0
    for p in [pid] + children(pid, proc):
        try:
            with open('%s/%d/status' % (proc, p)) as f:
                for line in f:
                    if line.startswith('Threads:'):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def per_deploy(total, deploys):
    if total is None or not deploys:
        return None
    return total / float(deploys)


def is_request(key):
    """Whether an agent counter counts HTTP requests (see agents.py)."""
    return (key.startswith(('agent_', 'ironic_'))
            and key != 'agent_boots' and not key.endswith('_failed'))


def requests_per_interface(nodes):
    """Mean requests an agent made or answered, per deploy interface."""
    totals = {}
    for node in nodes:
        count = sum(v for k, v in (node.get('agent_requests') or {}).items()
                    if is_request(k))
        totals.setdefault(node['deploy_interface'], []).append(count)
    return {iface: sum(v) / float(len(v)) for iface, v in totals.items()}


def summarize(run):
    """The headline figures of one run (a results dict, see run.py)."""
    nodes = run['nodes']
    out = {
        'name': run['name'],
        'interfaces': '+'.join(run.get('interfaces') or ()),
        'nodes': len(nodes),
        'conductors': run['conductors'],
        'active': sum(1 for n in nodes if n['provision_state'] == 'active'),
        'failed': sum(1 for n in nodes
                      if n['provision_state'] == 'deploy failed'),
        'other': sum(1 for n in nodes if n['provision_state']
                     not in ('active', 'deploy failed')),
        # The run's time until every node ended (active or deploy
        # failed); "all active" only when none failed.
        'time_to_all_ended': run.get('time_to_all_active'),
    }
    out['time_to_all_active'] = (run.get('time_to_all_active')
                                 if out['active'] == out['nodes'] else None)
    for iface in ('kexec', 'direct'):
        times = sorted(n['time_to_active'] for n in nodes
                       if n['deploy_interface'] == iface
                       and n.get('time_to_active') is not None)
        out['%s_p50' % iface] = times[len(times) // 2] if times else None
        out['%s_max' % iface] = times[-1] if times else None
    cpu = run.get('cpu', {})
    cond = sum(v for k, v in cpu.items() if k.startswith('conductor')
               and v is not None)
    out['conductor_cpu_s'] = cond
    out['conductor_cpu_per_deploy'] = per_deploy(cond, len(nodes))
    # Every ironic-api process, every BMC process.
    api = sum(v for k, v in cpu.items() if k.startswith('api')
              and v is not None)
    bmcs = sum(v for k, v in cpu.items() if k.startswith('bmcs')
               and v is not None)
    out['api_cpu_per_deploy'] = per_deploy(api if 'api' in cpu else None,
                                           len(nodes))
    out['db_cpu_per_deploy'] = per_deploy(cpu.get('postgres'), len(nodes))
    out['sim_cpu_per_deploy'] = per_deploy(
        (cpu.get('agents') or 0) + bmcs, len(nodes))
    db = run.get('db', {})
    out['db_statements_per_deploy'] = per_deploy(db.get('statements'),
                                                 len(nodes))
    out['db_xacts_per_deploy'] = per_deploy(db.get('xact_commit'),
                                            len(nodes))
    agents = (requests_per_interface(nodes)
              if any('agent_requests' in n for n in nodes)
              else run.get('agent_requests', {}))
    for iface in ('kexec', 'direct'):
        out['agent_requests_per_%s' % iface] = agents.get(iface)
    out['max_threads'] = run.get('max_threads')
    out['max_deploying'] = run.get('max_deploying')
    return out


def _fmt(value, digits=1):
    if value is None:
        return '-'
    if isinstance(value, float):
        return '%.*f' % (digits, value)
    return str(value)


COLUMNS = [
    ('name', 'run', 0),
    ('nodes', 'nodes', 0),
    ('conductors', 'cond.', 0),
    ('active', 'active', 0),
    ('failed', 'failed', 0),
    ('other', 'other', 0),
    ('time_to_all_active', 'all active (s)', 1),
    ('time_to_all_ended', 'all ended (s)', 1),
    ('kexec_p50', 'kexec p50 (s)', 1),
    ('direct_p50', 'direct p50 (s)', 1),
    ('conductor_cpu_per_deploy', 'cond. CPU s/deploy', 2),
    ('api_cpu_per_deploy', 'API CPU s/deploy', 2),
    ('db_cpu_per_deploy', 'DB CPU s/deploy', 2),
    ('db_statements_per_deploy', 'SQL stmts/deploy', 0),
    ('agent_requests_per_kexec', 'agent req./kexec', 1),
    ('agent_requests_per_direct', 'agent req./direct', 1),
    ('max_threads', 'cond. threads max', 0),
    ('max_deploying', 'max in deploying', 0),
]


def markdown(summaries):
    head = '| ' + ' | '.join(c[1] for c in COLUMNS) + ' |'
    rule = '|' + '|'.join('---' for _ in COLUMNS) + '|'
    rows = ['| ' + ' | '.join(_fmt(s.get(key), digits)
                              for key, _, digits in COLUMNS) + ' |'
            for s in summaries]
    return '\n'.join([head, rule] + rows) + '\n'


def chart(summaries, path):
    """time-to-active and conductor CPU/deploy against nodes; or None."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        from matplotlib import pyplot
    except ImportError:
        return None
    one = [s for s in summaries if s['conductors'] == 1]
    # The lines: the runs of both interfaces; the runs of one interface
    # (what the handoff costs) are points of their own.
    points = sorted((s for s in one if '+' in s.get('interfaces', '+')),
                    key=lambda s: s['nodes'])
    alone = {iface: [s for s in one if s.get('interfaces') == iface]
             for iface in ('kexec', 'direct')}
    if not points:
        return None
    nodes = [s['nodes'] for s in points]
    fig, (left, right) = pyplot.subplots(1, 2, figsize=(10, 4))
    left.plot(nodes, [s['time_to_all_active'] for s in points], 'o-',
              label='all active')
    left.plot(nodes, [s['kexec_p50'] for s in points], 's--',
              label='kexec p50')
    left.plot(nodes, [s['direct_p50'] for s in points], '^--',
              label='direct p50')
    left.set_xlabel('concurrent deploys (nodes)')
    left.set_ylabel('seconds')
    left.set_title('Time to active')
    left.set_xscale('log')
    left.legend()
    right.plot(nodes, [s['conductor_cpu_per_deploy'] for s in points], 'o-',
               label='kexec and direct')
    for iface, marker in (('kexec', 's'), ('direct', '^')):
        if alone[iface]:
            right.plot([s['nodes'] for s in alone[iface]],
                       [s['conductor_cpu_per_deploy'] for s in alone[iface]],
                       marker, label='%s only' % iface)
    right.legend()
    right.set_xlabel('concurrent deploys (nodes)')
    right.set_ylabel('CPU seconds per deploy')
    right.set_title('Conductor CPU per deploy')
    right.set_xscale('log')
    right.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    pyplot.close(fig)
    return path


def write(results, outdir):
    """results.json, results.md and results.png (when possible)."""
    os.makedirs(outdir, exist_ok=True)
    summaries = [summarize(r) for r in results]
    with open(os.path.join(outdir, 'results.json'), 'w') as f:
        json.dump({'summaries': summaries, 'runs': results}, f, indent=1,
                  sort_keys=True)
    with open(os.path.join(outdir, 'results.md'), 'w') as f:
        f.write(markdown(summaries))
    chart(summaries, os.path.join(outdir, 'results.png'))
    return summaries
