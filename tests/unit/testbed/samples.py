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

"""Benchmark data as the benchmark records it, for the report's tests.

The figures are shaped like the testbed's (seconds since the deploy
request under TCG) but chosen so the expected statistics are easy to
check by hand.
"""

import copy

from testbed import bench_stats as stats


def run(variant, round_no, usable, post=0.0, agent=60.0, written=120.0,
        handoff=130.0, kernel=None, ok=True, fast_track=False):
    """One deploy's record.

    :param fast_track: the deploy started with a live agent: no agent
        boots, and ``agent`` is the running agent's next heartbeat.
    """
    _name, pair, role, iface, image = stats.variant(variant)
    if kernel is None:
        kernel = handoff + 20.0
    milestones = {
        'deploy request': 0.0,
        'agent starting': None if fast_track else agent - 10.0,
        'agent heartbeat': agent, 'image written': written,
        'handoff': handoff, 'instance kernel': kernel,
        'active': kernel + 1.0,
        'instance usable': usable if ok else None,
    }
    if image == 'diskless':
        milestones['image written'] = None
    out = {'variant': variant, 'pair': pair, 'role': role, 'post': post,
           'round': round_no, 'deploy_interface': iface, 'image': image,
           'ok': ok, 'error': None if ok else 'deploy failed: boom',
           'provision_state': 'active' if ok else 'deploy failed',
           'milestones': milestones}
    if pair in stats.FAST_TRACK_PAIRS:
        out['agent_alive_before'] = fast_track
    return out


def kexec_record(path='kexec', reason=None, load=4.0, execute=1.0,
                 agent_gone=0.5, discover=1.5, kexec_load=2.0,
                 verify=None, verify_status='verified'):
    """A node's kexec record, shaped as ironic_kexec.record writes it.

    :param verify: seconds from the kexec to the instance's answer, or
        to the end of the wait if it never came: the record then has the
        verification (before it, records had none). Only a verified
        handoff gets the timing, as in ironic_kexec.record.
    """
    rec = {'path': path, 'reason': reason, 'mode': 'auto',
           'timings': {'load': load, 'execute': execute,
                       'agent_gone': agent_gone},
           'agent_timings': {'preflight': 0.01, 'discover': discover,
                             'load': kexec_load,
                             'total': discover + kexec_load}}
    if verify is not None:
        if verify_status == 'verified':
            rec['timings']['verify'] = verify
        rec['verify'] = {'status': verify_status, 'seconds': verify,
                         'target': 'tcp:192.0.2.10:22',
                         'source': 'instance_info'}
    return rec


def data(runs=None, posts=(0.0,), variants=('direct', 'kexec'),
         unavailable=None):
    if runs is None:
        # Three rounds, ABAB: power cycle 200/210/260 s, kexec 150/160/
        # 170 s to usable.
        runs = []
        for i, (d, k) in enumerate(((200.0, 150.0), (260.0, 170.0),
                                    (210.0, 160.0))):
            runs.append(run('direct', i + 1, d, kernel=180.0))
            runs.append(run('kexec', i + 1, k, kernel=140.0))
    return copy.deepcopy({
        'machine': {'cpu_model': 'Sample CPU', 'cores': 2, 'accel': 'tcg',
                    'kernel': '6.1.0-sample', 'qemu': 'QEMU 7.2',
                    'python': '3.11'},
        'settings': {'runs': 3, 'posts': list(posts),
                     'variants': list(variants),
                     'unavailable': unavailable or {},
                     'started': '2026-01-01 00:00:00 +0000'},
        'runs': runs,
    })


# The milestones of the first smoke run of the benchmark on the testbed
# (QEMU TCG, 2 cores, one run per variant, no emulated POST), as
# results.json recorded them, rounded to milliseconds.
SMOKE_MILESTONES = {
    'direct': {'deploy request': 0.0, 'agent starting': 48.107,
               'agent heartbeat': 72.046, 'image written': 128.564,
               'handoff': 131.96, 'instance kernel': 153.411,
               'active': 141.959, 'instance usable': 193.983},
    'kexec': {'deploy request': 0.0, 'agent starting': 39.939,
              'agent heartbeat': 63.626, 'image written': 125.444,
              'handoff': 128.866, 'instance kernel': 142.34,
              'active': 139.876, 'instance usable': 180.38},
}


def smoke_data():
    runs = []
    for name in ('direct', 'kexec'):
        run_ = run(name, 1, 0.0)
        run_['milestones'] = dict(SMOKE_MILESTONES[name])
        runs.append(run_)
    out = data(runs=runs)
    out['settings']['runs'] = 1
    return out
