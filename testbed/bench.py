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
  testbed to run Ironic with fast track and the agent left running;
* ``disk-fast-track``: ``direct-fast-track`` against ``kexec-fast-track``,
  the ``direct`` and ``kexec`` deploy interfaces and the whole-disk image
  on a testbed with fast track and cleaning, like ``diskless``: each
  deploy starts with the agent running (the redeploy of a node cleaned or
  inspected just before), where ``disk`` boots it through the firmware.
* ``uefi-disk``: ``uefi-direct`` against ``uefi-kexec``, the ``direct``
  and ``kexec`` deploy interfaces on a UEFI node (OVMF, boot mode uefi)
  with the UEFI whole-disk image (GPT, ESP, shim and GRUB EFI).

For each ``--post`` value (seconds of power-on self-test the virtual BMC
emulates) a testbed is started and every variant deployed. Each deploy's
milestones come from the testbed's timeline (deploy request, agent up,
image written, handoff, instance kernel, instance usable); the report
gives min / median / max of each phase and of the time to usable, and the
ratio kexec / power cycle of the medians. A deploy that starts with a
live agent (fast track) has no "agent up" phase; the report says how many
deploys of the fast-track pairs did. Into ``--results`` go
``results.md``, ``results.json`` (every raw figure and the machine) and
``phases.png`` (stacked bars, when matplotlib is installed: ``tox -e
bench`` has it), plus the testbed's logs and each deploy's timeline.

Run as root (the testbed builds images and loop devices)::

    tox -e bench -- --variants disk,diskless,disk-fast-track,uefi-disk \
        --post 0,130

The last line printed, one per ``--post`` value, is (on one line)::

    time-to-usable kexec/power-cycle: disk R, diskless R,
    disk-fast-track R[, uefi-disk R] (N runs, post S s)

with ``n/a`` for a pair that was not run or never got usable, or that
results made before the pair existed do not have; ``uefi-disk`` is named
only when it was run. All times are QEMU TCG
(software emulation) times: never present them as hardware times.
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
               'diskless R, disk-fast-track R (N runs, post S s)", with '
               '", uefi-disk R" before the parenthesis when it was run.')
    parser.add_argument('--runs', type=int, default=3,
                        help='deploys per variant (default: 3)')
    parser.add_argument('--variants', default='disk',
                        help='pairs to run, comma separated: disk '
                             '(direct vs kexec), diskless (ramdisk vs '
                             'ramdisk-kexec, with fast track), '
                             'disk-fast-track (direct vs kexec with fast '
                             'track: the agent already running at each '
                             'deploy), uefi-disk (direct vs kexec on a UEFI '
                             'node); default: disk')
    parser.add_argument('--post', action='append', type=_floats,
                        help='seconds of emulated power-on self-test, '
                             'repeatable or comma separated, e.g. '
                             '--post 0,130 (default: 0)')
    parser.add_argument('--results', help='results folder (default: '
                        'results/bench-<timestamp>/ at the top of the '
                        'tree)')
    parser.add_argument('--report-only', metavar='DIR', nargs='+',
                        help='make the report again from DIR/results.json '
                             'without deploying; with several folders '
                             '(a benchmark run in parts), their runs are '
                             'put together and the report goes to '
                             '--results')
    args = parser.parse_args(argv)
    args.pairs = [p.strip() for p in args.variants.split(',') if p.strip()]
    bad = set(args.pairs) - set(stats.PAIRS)
    if bad or not args.pairs:
        parser.error('--variants takes %s' % ' and/or '.join(stats.PAIRS))
    args.posts = sorted({p for group in (args.post or [[0.0]])
                         for p in group})
    if args.runs < 1:
        parser.error('--runs must be at least 1')
    if args.report_only and len(args.report_only) > 1 and not args.results:
        parser.error('several --report-only folders need --results')
    return args


def fast_track_unavailable():
    """Why the testbed cannot run Ironic with fast track; None if it can.

    The fast-track pairs need a testbed whose Ironic takes extra options.
    """
    from testbed import scenario
    params = inspect.signature(scenario.Testbed).parameters
    if ('ironic_options' not in params
            or not hasattr(scenario, 'FAST_TRACK_CLEANING')):
        return 'the testbed cannot configure fast track'
    return None


def diskless_unavailable():
    """Why the testbed cannot run the diskless pair; None if it can.

    The pair needs the ramdisk deploy interfaces, a diskless instance
    image and a testbed whose Ironic takes extra options (fast track).
    """
    from testbed import ironic_service
    from testbed import scenario
    if 'ramdisk-kexec' not in ironic_service.deploy_interfaces():
        return 'the ramdisk-kexec deploy interface is not installed'
    if 'diskless' not in getattr(scenario, 'DISKLESS_IMAGES', ()):
        return 'the testbed has no diskless instance image'
    return fast_track_unavailable()


def uefi_unavailable():
    """Why the testbed cannot run a UEFI node; None if it can."""
    from testbed import node as tb_node
    code = os.path.join(tb_node.OVMF_DIR,
                        tb_node.OVMF_BUILDS[tb_node.FIRMWARE_UEFI].code)
    if not os.path.exists(code):
        return 'no OVMF (%s; Debian package ovmf)' % code
    return None


def unavailable(pair):
    """Why the testbed cannot run the pair; None if it can."""
    if pair == 'diskless':
        return diskless_unavailable()
    if pair in stats.UEFI_PAIRS:
        return uefi_unavailable()
    if pair in stats.FAST_TRACK_PAIRS:
        return fast_track_unavailable()
    return None


def _testbed_kwargs(pair):
    from testbed import scenario
    if pair in stats.FAST_TRACK_PAIRS:
        # Each deploy of the pair then starts with a live agent: cleaning
        # boots it after every undeploy (and at enrolment) and fast track
        # keeps it running. ramdisk-kexec needs it; the power-cycle
        # variants power cycle the node all the same.
        return {'ironic_options': scenario.FAST_TRACK_CLEANING,
                'provide_timeout': scenario.CLEANING_PROVIDE_TIMEOUT}
    if pair in stats.UEFI_PAIRS:
        from testbed import node as tb_node
        return {'firmware': tb_node.FIRMWARE_UEFI}
    return {}


def _recover_timeout(pair):
    from testbed import scenario
    # With cleaning, the undeploy boots the agent and waits for it.
    return (scenario.CLEANING_PROVIDE_TIMEOUT
            if pair in stats.FAST_TRACK_PAIRS else scenario.UNDEPLOY_TIMEOUT)


def run_record(result, name, post, round_no, agent_alive=None):
    """The JSON record of one deploy."""
    _name, pair, role, iface, image = stats.variant(name)
    milestones = {m: result.relative(m) for m in timeline.MILESTONES}
    ok = result.provision_state == 'active' and result.usable is not None
    record = {
        'variant': name, 'pair': pair, 'role': role, 'post': post,
        'round': round_no, 'deploy_interface': iface, 'image': image,
        'ok': ok, 'error': result.error or result.last_error,
        'provision_state': result.provision_state,
        'milestones': milestones,
        'firmware_runs': result.firmware_runs,
        'firmware_runs_after_handoff': result.firmware_runs_after_handoff,
        'power_actions_after_handoff': result.power_actions_after_handoff,
        'kexec_record': result.kexec_record,
        # Fast-track pairs only: whether fast track had an agent up
        # before the deploy (without it the deploy boots one, and
        # ramdisk-kexec falls back by design).
        'agent_alive_before': agent_alive,
    }
    # With the agent up before the request, its first heartbeat after it
    # is no "agent up": see stats.phases.
    record['phases'] = stats.run_phases(record)
    return record


def failed_record(name, post, round_no, error, agent_alive=None):
    """The JSON record of a deploy the testbed could not carry out."""
    _name, pair, role, iface, image = stats.variant(name)
    milestones = {m: None for m in timeline.MILESTONES}
    milestones['deploy request'] = 0.0
    return {
        'variant': name, 'pair': pair, 'role': role, 'post': post,
        'round': round_no, 'deploy_interface': iface, 'image': image,
        'ok': False, 'error': 'testbed error: %s' % error,
        'provision_state': None, 'milestones': milestones,
        'phases': stats.phases(milestones),
        'agent_alive_before': agent_alive,
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
            alive = None
            try:
                if pair in stats.FAST_TRACK_PAIRS:
                    alive = tb.agent_alive()
                result = tb.deploy(image, deploy_interface=iface)
            except Exception as exc:
                # The testbed's tools failed (not the deploy, which
                # deploy() reports): record it and go on with the rest.
                record = failed_record(name, post, round_no, exc, alive)
            else:
                timeline.save(result, os.path.join(
                    workdir, 'round-%d-%s.timeline.txt' % (round_no, name)))
                record = run_record(result, name, post, round_no, alive)
            data['runs'].append(record)
            report.write_json(data, out)
            print('bench:   %s, time to usable %s%s' % (
                'ok' if record['ok'] else 'FAILED: %s' % record['error'],
                report.cell(record['milestones']['instance usable']),
                '' if alive is None else ', live agent before: %s' % (
                    'yes' if alive else 'no')), flush=True)
            if not record['ok']:
                print(tb.logs_tail(), file=sys.stderr)
            tb.recover(_recover_timeout(pair))


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
        out = args.results or args.report_only[0]
        os.makedirs(out, exist_ok=True)
        return finish(report.merge(report.read_json(d)
                                   for d in args.report_only), out)
    out = os.path.abspath(args.results or os.path.join(
        testbed.repo_dir(), 'results',
        'bench-%s' % time.strftime('%Y%m%d-%H%M%S')))
    os.makedirs(out, exist_ok=True)
    missing = {}
    for pair in args.pairs:
        why = unavailable(pair)
        if why:
            missing[pair] = why
            print('bench: %s pair unavailable: %s' % (pair, why))
    pairs = [p for p in args.pairs if p not in missing]
    data = {
        'machine': report.machine_info(),
        'settings': {
            'runs': args.runs, 'posts': args.posts,
            'variants': stats.variants_of(pairs),
            'unavailable': missing,
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
        try:
            for post in args.posts:
                for pair in pairs:
                    _deploy_pair(data, out, images, post, pair, args.runs)
        except Exception as exc:
            # Report what was measured; the exit code says it broke.
            print('bench: stopped: %s' % exc, file=sys.stderr)
            data['settings']['stopped'] = str(exc)
    rc = finish(data, out)
    return 1 if data['settings'].get('stopped') else rc


if __name__ == '__main__':
    sys.exit(main())
