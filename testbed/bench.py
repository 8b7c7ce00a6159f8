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

"""Benchmark: time to a usable node, kexec against the power cycle.

Deploys the same node with the same image ``--runs`` times per variant on
the testbed, alternating the variants (ABAB...) so that the machine's
noise hits them alike:

* ``disk``: ``direct`` (stock, power cycle) against ``kexec``, a
  whole-disk image;
* ``diskless``: ``ramdisk`` against ``ramdisk-kexec``, which needs the
  testbed to run Ironic with fast track and the agent left running.

For each ``--post`` value (seconds of power-on self-test the virtual BMC
emulates) a testbed is started and every variant deployed. Each deploy's
milestones come from the testbed's timeline (deploy request, agent up,
image written, handoff, instance kernel, instance usable); the report
gives min / median / max of each phase and of the time to usable, and the
ratio kexec / power cycle of the medians. Into ``--results`` go
``results.md``, ``results.json`` (every raw figure and the machine) and
``phases.png`` (stacked bars, when matplotlib is installed: ``tox -e
bench`` has it), plus the testbed's logs and each deploy's timeline.

Run as root (the testbed builds images and loop devices)::

    tox -e bench -- --runs 3 --variants disk,diskless --post 0,130

The last line printed, one per ``--post`` value, is::

    time-to-usable kexec/power-cycle: disk R, diskless R (N runs, post S s)

with ``n/a`` for a pair that was not run or never got usable. All times
are QEMU TCG (software emulation) times: never present them as hardware
times.
"""

import argparse
import inspect
import os
import sys
import time

import testbed
from testbed import bench_report as report
from testbed import bench_stats as stats
from testbed import timeline


def _floats(text):
    return [float(v) for v in text.split(',') if v.strip()]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m testbed.bench',
        description=__doc__.split('\n')[0],
        epilog='Times are QEMU TCG times, not hardware times. The last '
               'line is "time-to-usable kexec/power-cycle: disk R, '
               'diskless R (N runs, post S s)".')
    parser.add_argument('--runs', type=int, default=3,
                        help='deploys per variant (default: 3)')
    parser.add_argument('--variants', default='disk',
                        help='pairs to run, comma separated: disk '
                             '(direct vs kexec), diskless (ramdisk vs '
                             'ramdisk-kexec); default: disk')
    parser.add_argument('--post', action='append', type=_floats,
                        help='seconds of emulated power-on self-test, '
                             'repeatable or comma separated, e.g. '
                             '--post 0,130 (default: 0)')
    parser.add_argument('--results', help='results folder (default: '
                        'results/bench-<timestamp>/ at the top of the '
                        'tree)')
    parser.add_argument('--report-only', metavar='DIR',
                        help='make the report again from DIR/results.json '
                             'without deploying')
    args = parser.parse_args(argv)
    args.pairs = [p.strip() for p in args.variants.split(',') if p.strip()]
    bad = set(args.pairs) - set(stats.PAIRS)
    if bad or not args.pairs:
        parser.error('--variants takes %s' % ' and/or '.join(stats.PAIRS))
    args.posts = sorted({p for group in (args.post or [[0.0]])
                         for p in group})
    if args.runs < 1:
        parser.error('--runs must be at least 1')
    return args


def diskless_unavailable():
    """Why the testbed cannot run the diskless pair; None if it can.

    The pair needs the ramdisk deploy interfaces and a testbed that runs
    Ironic with fast track (the agent stays up after cleaning).
    """
    from testbed import ironic_service
    from testbed import scenario
    if 'ramdisk-kexec' not in ironic_service.deploy_interfaces():
        return 'the ramdisk-kexec deploy interface is not installed'
    params = inspect.signature(scenario.Testbed).parameters
    if 'fast_track' not in params:
        return ('the testbed has no fast-track mode yet '
                '(scenario.Testbed takes no fast_track)')
    return None


def _testbed_kwargs(pair):
    return {'fast_track': True} if pair == 'diskless' else {}


def run_record(result, name, post, round_no):
    """The JSON record of one deploy."""
    _name, pair, role, iface, image = stats.variant(name)
    milestones = {m: result.relative(m) for m in timeline.MILESTONES}
    ok = result.provision_state == 'active' and result.usable is not None
    return {
        'variant': name, 'pair': pair, 'role': role, 'post': post,
        'round': round_no, 'deploy_interface': iface, 'image': image,
        'ok': ok, 'error': result.error or result.last_error,
        'provision_state': result.provision_state,
        'milestones': milestones,
        'phases': stats.phases(milestones),
        'firmware_runs': result.firmware_runs,
        'firmware_runs_after_handoff': result.firmware_runs_after_handoff,
        'power_actions_after_handoff': result.power_actions_after_handoff,
        'kexec_record': result.kexec_record,
    }


def _deploy_pair(data, out, images, post, pair, runs):
    from testbed import scenario
    names = stats.variants_of([pair])
    workdir = os.path.join(out, 'post-%s-%s' % (stats.format_post(post),
                                                pair))
    print('bench: starting the testbed in %s (%s)' % (
        workdir, report.post_label(post)), flush=True)
    with scenario.Testbed(workdir, images, post_delay=post,
                          **_testbed_kwargs(pair)) as tb:
        tb.enrol(stats.variant(names[0])[3])
        for round_no, name in stats.schedule(names, runs):
            _n, _p, _r, iface, image = stats.variant(name)
            print('bench: round %d, %s (%s)...' % (
                round_no, name, report.post_label(post)), flush=True)
            result = tb.deploy(image, deploy_interface=iface)
            timeline.save(result, os.path.join(
                workdir, 'round-%d-%s.timeline.txt' % (round_no, name)))
            record = run_record(result, name, post, round_no)
            data['runs'].append(record)
            report.write_json(data, out)
            print('bench:   %s, time to usable %s' % (
                'ok' if record['ok'] else 'FAILED: %s' % record['error'],
                report._cell(record['milestones']['instance usable'])),
                flush=True)
            if not record['ok']:
                print(tb.logs_tail(), file=sys.stderr)
            tb.recover()


def finish(data, out):
    """Write the report, print it and the last lines."""
    paths = report.write_all(data, out)
    print(report.markdown(data))
    for path in paths:
        print('bench: wrote %s' % path)
    if not any(p.endswith(report.CHART_NAME) for p in paths):
        print('bench: no chart (matplotlib is not installed; '
              'tox -e bench has it)')
    summary = stats.summarize(data['runs'])
    for post in data['settings']['posts']:
        print(stats.final_line(summary, post, data['settings']['runs']))
    return 0 if all(stats.succeeded(r) for r in data['runs']) else 1


def main(argv=None):
    args = parse_args(argv)
    if args.report_only:
        return finish(report.read_json(args.report_only), args.report_only)
    out = os.path.abspath(args.results or os.path.join(
        testbed.repo_dir(), 'results',
        'bench-%s' % time.strftime('%Y%m%d-%H%M%S')))
    os.makedirs(out, exist_ok=True)
    unavailable = {}
    if 'diskless' in args.pairs:
        why = diskless_unavailable()
        if why:
            unavailable['diskless'] = why
            print('bench: diskless pair unavailable: %s' % why)
    pairs = [p for p in args.pairs if p not in unavailable]
    data = {
        'machine': report.machine_info(),
        'settings': {
            'runs': args.runs, 'posts': args.posts,
            'variants': stats.variants_of(pairs),
            'unavailable': unavailable,
            'started': time.strftime('%Y-%m-%d %H:%M:%S %z'),
        },
        'runs': [],
    }
    report.write_json(data, out)
    if pairs:
        # Imported here: building images needs root, --help must not.
        from testbed import images as tb_images
        print('bench: building or finding the images (cached by '
              'content)...', flush=True)
        images = tb_images.ensure_images()
        for post in args.posts:
            for pair in pairs:
                _deploy_pair(data, out, images, post, pair, args.runs)
    return finish(data, out)


if __name__ == '__main__':
    sys.exit(main())
