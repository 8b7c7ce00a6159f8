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

"""The benchmark's report: Markdown, JSON, chart and command line."""

import contextlib
import importlib.util
import io
import os
import shutil
import tempfile
import unittest
from unittest import mock

from testbed import bench
from testbed import bench_report as report
from testbed import bench_stats as stats
from testbed import ironic_service
from testbed import scenario
from testbed import timeline
from tests.unit.testbed import samples

HAVE_MATPLOTLIB = importlib.util.find_spec('matplotlib') is not None


class TempDirMixin(object):

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix='bench-test-')
        self.addCleanup(shutil.rmtree, self.dir, True)


class MarkdownTestCase(unittest.TestCase):

    def table_rows(self, text):
        return [ln for ln in text.splitlines() if ln.startswith('| ')]

    def table(self, text, head):
        """{first cell: cells} of the first table whose header starts so."""
        lines = text.splitlines()
        start = [i for i, ln in enumerate(lines) if ln.startswith(head)][0]
        rows = {}
        for ln in lines[start + 2:]:
            if not ln.startswith('| '):
                break
            cells = [c.strip() for c in ln.strip('|').split('|')]
            rows[cells[0]] = cells
        return rows

    def test_table_has_min_median_max(self):
        text = report.markdown(samples.data())
        rows = self.table_rows(text)
        self.assertTrue(rows[0].startswith('| variant | runs (failed) |'))
        direct = [r for r in rows if r.startswith('| direct ')][0]
        cells = [c.strip() for c in direct.strip('|').split('|')]
        self.assertEqual('3 (0)', cells[1])
        # Time to usable is the last column.
        self.assertEqual('200.0 / 210.0 / 260.0', cells[-1])
        self.assertIn('disk: median time to usable, kexec / power cycle '
                      '= 0.76', text)
        self.assertIn('diskless: median time to usable, kexec / power '
                      'cycle = n/a', text)
        self.assertIn('TCG', text)
        self.assertIn('Sample CPU, 2 cores, accel=tcg', text)

    def test_handoff_to_usable_ratio_and_kexec_table(self):
        data = samples.data()
        for r in data['runs']:
            if r['variant'] == 'kexec':
                r['kexec_record'] = samples.kexec_record()
        text = report.markdown(data)
        self.assertIn('median handoff to usable (direct 80.0 s against '
                      'kexec 30.0 s) = 0.38', text)
        row = [ln for ln in self.table_rows(text)
               if ln.startswith('| kexec | kexec x3 |')][0]
        self.assertIn('| 4.0 / 4.0 / 4.0 | 1.0 / 1.0 / 1.0 |', row)
        header = [ln for ln in self.table_rows(text)
                  if ln.startswith('| variant | path taken |')][0]
        self.assertIn('load (conductor)', header)
        self.assertNotIn('download (agent)', header)

    def test_older_records_have_no_verified_column(self):
        data = samples.data()
        for r in data['runs']:
            if r['variant'] == 'kexec':
                r['kexec_record'] = samples.kexec_record()
        text = report.markdown(data)
        header = [ln for ln in self.table_rows(text)
                  if ln.startswith('| variant | path taken |')][0]
        self.assertNotIn('verified', header)
        self.assertNotIn('verify (conductor)', header)

    def test_verified_deploys_and_verify_timing(self):
        data = fast_track_data()
        text = report.markdown(data)
        header = [ln for ln in self.table_rows(text)
                  if ln.startswith('| variant | path taken |')][0]
        titles = [c.strip() for c in header.strip('|').split('|')]
        self.assertEqual(['variant', 'path taken', 'verified'], titles[:3])
        self.assertIn('verify (conductor)', titles)
        rows = self.table(text, '| variant | path taken |')
        kexec = rows['kexec']
        self.assertEqual('3 of 3', kexec[2])
        self.assertEqual('40.0 / 41.0 / 42.0',
                         kexec[titles.index('verify (conductor)')])
        # One deploy not verified (its power cycle recovered it), one
        # failed before any kexec: both counted, neither verified.
        fast = rows['kexec-fast-track']
        self.assertEqual('kexec x2, power-cycle (no_kernel) x1, '
                         'power-cycle (not_verified) x1', fast[1])
        self.assertEqual('2 of 4 (failed x1, no record x1)', fast[2])
        # Only a verified handoff has a verify time; the recovered one
        # has the recovery's.
        self.assertEqual('31.0 / 31.5 / 32.0',
                         fast[titles.index('verify (conductor)')])
        self.assertEqual('50.0 / 50.0 / 50.0',
                         fast[titles.index('recovery (conductor)')])
        self.assertEqual('-', kexec[titles.index('recovery (conductor)')])
        self.assertEqual(len(titles), len(fast))
        # The table's separator has a cell per column.
        sep = text.splitlines()[text.splitlines().index(header) + 1]
        self.assertEqual(len(titles), sep.count('---'))

    def test_fast_track_pair(self):
        text = report.markdown(fast_track_data())
        rows = self.table(text, '| variant | runs (failed) |')
        direct = rows['direct-fast-track']
        self.assertEqual('3 (0)', direct[1])
        # No agent up with the agent running; the image write starts at
        # the deploy request.
        self.assertEqual('-', direct[2])
        self.assertEqual('55.0 / 55.0 / 55.0', direct[3])
        self.assertEqual('120.0 / 125.0 / 130.0', direct[-1])
        self.assertEqual('-', rows['kexec-fast-track'][2])
        # The disk pair boots its agent.
        self.assertEqual('60.0 / 60.0 / 60.0', rows['direct'][2])
        # kexec-fast-track: 90, 95, 92 and 100 s to usable, handoff to
        # usable 32, 37, 34 and 42 s.
        self.assertIn('- disk-fast-track: median time to usable, kexec / '
                      'power cycle = 0.75; median handoff to usable '
                      '(direct-fast-track 67.0 s against kexec-fast-track '
                      '35.5 s) = 0.53', text)
        self.assertIn('- disk-fast-track: deploys that started with a live '
                      'agent (fast track): direct-fast-track 3 of 3, '
                      'kexec-fast-track 4 of 4', text)
        self.assertIn(report.FAST_TRACK_NOTE, text)
        # Only the fast-track pairs say it.
        self.assertNotIn('- disk: deploys that started', text)

    def test_deploys_without_a_live_agent(self):
        runs = [samples.run('ramdisk', 1, 24.0, handoff=3.5, kernel=20.0,
                            fast_track=True),
                samples.run('ramdisk-kexec', 1, 30.0, handoff=1.3,
                            kernel=14.0),
                samples.run('direct-fast-track', 1, 200.0),
                samples.run('kexec-fast-track', 1, 150.0)]
        runs[3]['agent_alive_before'] = True
        failed = bench.failed_record('kexec-fast-track', 0.0, 2,
                                     RuntimeError('cli'))
        text = report.markdown(samples.data(
            runs=runs + [failed], variants=stats.variants_of(
                ['diskless', 'disk-fast-track'])))
        self.assertIn('- diskless: deploys that started with a live agent '
                      '(fast track): ramdisk 1 of 1, ramdisk-kexec 0 of 1',
                      text)
        self.assertIn('- disk-fast-track: deploys that started with a live '
                      'agent (fast track): direct-fast-track 0 of 1, '
                      'kexec-fast-track 1 of 2 (1 not checked, 1 booted an '
                      'agent all the same)', text)
        row = [r for r in self.table_rows(text)
               if r.startswith('| kexec-fast-track |')][0]
        # The agent it booted came up: that is measured.
        self.assertEqual('60.0 / 60.0 / 60.0',
                         row.strip('|').split('|')[2].strip())

    def test_no_fast_track_note_without_fast_track(self):
        text = report.markdown(samples.data())
        self.assertNotIn(report.FAST_TRACK_NOTE, text)
        self.assertNotIn('started with a live agent', text)

    def test_recorded_diskless_runs(self):
        # As the benchmark recorded them (no heartbeat before the
        # handoff): the table is as before the fast-track pair.
        runs = []
        for i in (1, 2, 3):
            for name, handoff, kernel, usable in (
                    ('ramdisk', 3.5, 20.1, 24.1),
                    ('ramdisk-kexec', 1.3, 14.0, 18.6)):
                run = samples.run(name, i, usable, handoff=handoff,
                                  kernel=kernel, fast_track=True)
                run['milestones']['agent heartbeat'] = None
                runs.append(run)
        text = report.markdown(samples.data(
            runs=runs, variants=('ramdisk', 'ramdisk-kexec')))
        self.assertIn('| ramdisk-kexec | 3 (0) | - | - | 1.3 / 1.3 / 1.3 '
                      '| 12.7 / 12.7 / 12.7 | 4.6 / 4.6 / 4.6 | 18.6 / '
                      '18.6 / 18.6 |', text)
        self.assertIn('ramdisk 3 of 3, ramdisk-kexec 3 of 3', text)
        self.assertIn(report.FAST_TRACK_NOTE, text)

    def test_no_kexec_table_without_records(self):
        self.assertNotIn('path taken', report.markdown(samples.data()))

    def test_emulated_post_rows_are_labelled(self):
        runs = [samples.run('direct', 1, 300.0, post=130.0),
                samples.run('kexec', 1, 150.0, post=130.0)]
        text = report.markdown(samples.data(runs=runs, posts=(130.0,)))
        self.assertIn('## emulated POST 130 s', text)
        self.assertIn('| kexec (emulated POST) | 1 (0) |', text)

    def test_failures_and_unavailable_pairs_are_reported(self):
        runs = samples.data()['runs'] + [
            samples.run('kexec', 4, 1.0, ok=False)]
        text = report.markdown(samples.data(
            runs=runs, unavailable={'diskless': 'no fast track'}))
        self.assertIn('- diskless pair not run: no fast track', text)
        self.assertIn('## Failed runs', text)
        self.assertIn('- kexec round 4, post 0: deploy failed: boom', text)
        self.assertIn('| kexec | 4 (1) |', text)

    def test_missing_phase_is_a_dash(self):
        runs = [samples.run('ramdisk', 1, 100.0),
                samples.run('ramdisk-kexec', 1, 50.0)]
        text = report.markdown(samples.data(
            runs=runs, variants=('ramdisk', 'ramdisk-kexec')))
        row = [r for r in self.table_rows(text)
               if r.startswith('| ramdisk |')][0]
        cells = [c.strip() for c in row.strip('|').split('|')]
        self.assertEqual('-', cells[3])  # image write
        self.assertIn('diskless: median time to usable, kexec / power '
                      'cycle = 0.50', text)


def fast_track_data():
    """The disk pair and the fast-track pair, with verified handoffs.

    disk: as samples.data(), every kexec verified 40/41/42 s after the
    kexec. disk-fast-track: every deploy starts with the agent running,
    whose next heartbeat comes during the image write (30 s); power
    cycle 120/125/130 s to usable, kexec 90/95/92 s, and a fourth kexec
    deploy that fell back before any kexec.
    """
    runs = samples.data()['runs']
    for r, seconds in zip([r for r in runs if r['variant'] == 'kexec'],
                          (40.0, 41.0, 42.0)):
        r['kexec_record'] = samples.kexec_record(verify=seconds)
    for i, (d, k) in enumerate(((120.0, 90.0), (125.0, 95.0),
                                (130.0, 92.0)), 1):
        runs.append(samples.run('direct-fast-track', i, d, agent=30.0,
                                written=55.0, handoff=58.0, kernel=80.0,
                                fast_track=True))
        kexec = samples.run('kexec-fast-track', i, k, agent=30.0,
                            written=55.0, handoff=58.0, kernel=68.0,
                            fast_track=True)
        kexec['kexec_record'] = samples.kexec_record(verify=30.0 + i)
        runs.append(kexec)
    # Round 3's kexec was not verified: the power cycle recovered it.
    runs[-1]['kexec_record'] = samples.kexec_record(
        'power-cycle', 'not_verified', verify=180.0,
        verify_status='failed')
    runs[-1]['kexec_record']['timings']['recovery'] = 50.0
    fallback = samples.run('kexec-fast-track', 4, 100.0, agent=30.0,
                           written=55.0, handoff=58.0, fast_track=True)
    fallback['kexec_record'] = samples.kexec_record('power-cycle',
                                                    'no_kernel')
    runs.append(fallback)
    return samples.data(runs=runs, variants=stats.variants_of(
        ['disk', 'disk-fast-track']))


class JsonTestCase(TempDirMixin, unittest.TestCase):

    def test_round_trip(self):
        data = samples.data()
        report.write_json(data, self.dir)
        self.assertEqual(data, report.read_json(self.dir))

    def test_machine_info(self):
        info = report.machine_info()
        self.assertEqual('tcg', info['accel'])
        self.assertEqual(os.cpu_count(), info['cores'])
        self.assertTrue(info['kernel'])

    def test_machine_info_without_qemu(self):
        info = report.machine_info(qemu='/nonexistent/qemu')
        self.assertIsNone(info['qemu'])


class ChartTestCase(TempDirMixin, unittest.TestCase):

    def test_bars_are_median_phases(self):
        bars = report.chart_bars(samples.data())
        self.assertEqual(['direct', 'kexec'], [b[0] for b in bars])
        direct = dict(bars[0][1])
        # Median kernel-to-usable of the power cycle: 200-180, 260-180,
        # 210-180 -> 30.
        self.assertEqual(30.0, direct['kernel to usable'])
        self.assertEqual(50.0, direct['handoff to kernel'])
        self.assertEqual(210.0, bars[0][2])

    def test_no_bar_for_a_variant_never_usable(self):
        runs = [samples.run('direct', 1, 200.0),
                samples.run('kexec', 1, 150.0, ok=False)]
        bars = report.chart_bars(samples.data(runs=runs))
        self.assertEqual(['direct'], [b[0] for b in bars])

    def test_bars_of_the_fast_track_pair(self):
        bars = report.chart_bars(fast_track_data())
        self.assertEqual(['direct', 'kexec', 'direct-fast-track',
                          'kexec-fast-track'], [b[0] for b in bars])
        fast = dict(bars[2][1])
        # No agent up to draw: the bar starts with the image write.
        self.assertEqual(0.0, fast['to agent up'])
        self.assertEqual(55.0, fast['image write'])
        self.assertEqual(125.0, bars[2][2])

    @unittest.skipUnless(HAVE_MATPLOTLIB, 'matplotlib is in tox -e bench')
    def test_png_of_every_pair(self):
        data = fast_track_data()
        data['runs'] += [samples.run('ramdisk', 1, 24.0, handoff=3.5,
                                     kernel=20.0, fast_track=True),
                         samples.run('ramdisk-kexec', 1, 18.6, handoff=1.3,
                                     kernel=14.0, fast_track=True)]
        data['settings']['variants'] = stats.variants_of(stats.PAIRS)
        self.assertEqual(6, len(report.chart_bars(data)))
        path = report.write_chart(data, self.dir)
        with open(path, 'rb') as f:
            self.assertEqual(b'\x89PNG\r\n\x1a\n', f.read(8))

    @unittest.skipUnless(HAVE_MATPLOTLIB, 'matplotlib is in tox -e bench')
    def test_png(self):
        path = report.write_chart(samples.data(), self.dir)
        self.assertEqual(os.path.join(self.dir, report.CHART_NAME), path)
        with open(path, 'rb') as f:
            self.assertEqual(b'\x89PNG\r\n\x1a\n', f.read(8))


class CommandLineTestCase(TempDirMixin, unittest.TestCase):

    def test_post_values_and_pairs(self):
        args = bench.parse_args(['--post', '130,0', '--post', '30',
                                 '--variants', 'disk,diskless'])
        self.assertEqual([0.0, 30.0, 130.0], args.posts)
        self.assertEqual(['disk', 'diskless'], args.pairs)
        self.assertEqual(3, args.runs)

    def test_fast_track_pair(self):
        args = bench.parse_args(['--variants',
                                 'disk,diskless,disk-fast-track'])
        self.assertEqual(['disk', 'diskless', 'disk-fast-track'], args.pairs)
        args = bench.parse_args(['--variants', 'disk-fast-track'])
        self.assertEqual(['disk-fast-track'], args.pairs)

    def test_help_names_every_pair(self):
        out = io.StringIO()
        # Wide enough that argparse does not wrap the help at a hyphen.
        with contextlib.redirect_stdout(out), \
                mock.patch.dict(os.environ, {'COLUMNS': '1000'}):
            self.assertRaises(SystemExit, bench.parse_args, ['--help'])
        text = ' '.join(out.getvalue().split())
        for pair in stats.PAIRS:
            self.assertIn(pair + ' (', text)
        self.assertIn('disk R, diskless R, disk-fast-track R (N runs, post '
                      'S s)', text)
        self.assertIn('disk-fast-track R', ' '.join(bench.__doc__.split()))

    def test_defaults(self):
        args = bench.parse_args([])
        self.assertEqual([0.0], args.posts)
        self.assertEqual(['disk'], args.pairs)

    def test_bad_pair(self):
        with contextlib.redirect_stderr(io.StringIO()):
            self.assertRaises(SystemExit, bench.parse_args,
                              ['--variants', 'pxe'])

    def test_report_only_ends_with_the_ratio_line(self):
        report.write_json(samples.data(), self.dir)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = bench.main(['--report-only', self.dir])
        self.assertEqual(0, rc)
        # Results made before the fast-track pair: n/a for it.
        self.assertEqual('time-to-usable kexec/power-cycle: disk 0.76, '
                         'diskless n/a, disk-fast-track n/a (3 runs, post '
                         '0 s)',
                         out.getvalue().rstrip('\n').splitlines()[-1])
        self.assertTrue(os.path.exists(
            os.path.join(self.dir, report.MARKDOWN_NAME)))

    def test_report_only_with_the_fast_track_pair(self):
        report.write_json(fast_track_data(), self.dir)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = bench.main(['--report-only', self.dir])
        self.assertEqual(0, rc)
        # direct-fast-track 125 s, kexec-fast-track 93.5 s (median of
        # 90, 95, 92, 100).
        self.assertEqual('time-to-usable kexec/power-cycle: disk 0.76, '
                         'diskless n/a, disk-fast-track 0.75 (3 runs, post '
                         '0 s)', out.getvalue().rstrip('\n').splitlines()[-1])
        with open(os.path.join(self.dir, report.MARKDOWN_NAME)) as f:
            self.assertIn('kexec-fast-track 4 of 4', f.read())

    def test_unavailable_fast_track_pair(self):
        out = io.StringIO()
        with mock.patch.object(bench, 'fast_track_unavailable',
                               return_value='no fast track'), \
                contextlib.redirect_stdout(out):
            rc = bench.main(['--variants', 'disk-fast-track',
                             '--results', self.dir])
        self.assertEqual(0, rc)
        self.assertIn('bench: disk-fast-track pair unavailable: no fast '
                      'track', out.getvalue())
        data = report.read_json(self.dir)
        self.assertEqual({'disk-fast-track': 'no fast track'},
                         data['settings']['unavailable'])
        self.assertEqual([], data['settings']['variants'])
        with open(os.path.join(self.dir, report.MARKDOWN_NAME)) as f:
            self.assertIn('- disk-fast-track pair not run: no fast track',
                          f.read())

    def test_report_only_merges_a_run_made_in_parts(self):
        post0 = samples.data()
        post130 = samples.data(
            runs=[samples.run('direct', 1, 460.0, post=130.0),
                  samples.run('kexec', 1, 230.0, post=130.0)],
            posts=(130.0,))
        post130['settings']['started'] = '2026-01-01 01:00:00 +0000'
        dirs = []
        for i, data in enumerate((post0, post130)):
            dirs.append(os.path.join(self.dir, 'part%d' % i))
            os.makedirs(dirs[-1])
            report.write_json(data, dirs[-1])
        merged = os.path.join(self.dir, 'merged')
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = bench.main(['--report-only'] + dirs + ['--results', merged])
        self.assertEqual(0, rc)
        self.assertEqual(
            ['time-to-usable kexec/power-cycle: disk 0.76, diskless n/a, '
             'disk-fast-track n/a (3 runs, post 0 s)',
             'time-to-usable kexec/power-cycle: disk 0.50, diskless n/a, '
             'disk-fast-track n/a (3 runs, post 130 s)'],
            out.getvalue().rstrip('\n').splitlines()[-2:])
        data = report.read_json(merged)
        self.assertEqual(8, len(data['runs']))
        self.assertEqual([0.0, 130.0], data['settings']['posts'])
        self.assertEqual('2026-01-01 00:00:00 +0000',
                         data['settings']['started'])
        with open(os.path.join(merged, report.MARKDOWN_NAME)) as f:
            self.assertIn('- part started 2026-01-01 01:00:00 +0000: 2 '
                          'deploys of direct, kexec with emulated POST '
                          '130 s', f.read())

    def test_parts_are_described_by_their_runs(self):
        # A part asked for two POST values but stopped after the first.
        stopped = samples.data(posts=(0.0, 130.0))
        other = samples.data(
            runs=[samples.run('ramdisk', 1, 150.0, post=130.0)],
            posts=(130.0,), variants=('ramdisk', 'ramdisk-kexec'))
        merged = report.merge([stopped, other])
        self.assertEqual(
            [{'started': '2026-01-01 00:00:00 +0000', 'deploys': 6,
              'variants': ['direct', 'kexec'], 'posts': [0.0]},
             {'started': '2026-01-01 00:00:00 +0000', 'deploys': 1,
              'variants': ['ramdisk'], 'posts': [130.0]}],
            merged['settings']['parts'])
        self.assertEqual(['direct', 'kexec', 'ramdisk', 'ramdisk-kexec'],
                         merged['settings']['variants'])

    def test_several_folders_need_a_results_folder(self):
        with contextlib.redirect_stderr(io.StringIO()):
            self.assertRaises(SystemExit, bench.parse_args,
                              ['--report-only', 'a', 'b'])

    def test_report_only_fails_with_a_failed_run(self):
        data = samples.data()
        data['runs'].append(samples.run('kexec', 4, 1.0, ok=False))
        report.write_json(data, self.dir)
        with contextlib.redirect_stdout(io.StringIO()):
            self.assertEqual(1, bench.main(['--report-only', self.dir]))


class DisklessAvailabilityTestCase(unittest.TestCase):

    def test_needs_a_diskless_image(self):
        with mock.patch.object(ironic_service, 'deploy_interfaces',
                               return_value=['direct', 'kexec', 'ramdisk',
                                             'ramdisk-kexec']), \
                mock.patch.object(scenario, 'DISKLESS_IMAGES', (),
                                  create=True):
            self.assertIn('no diskless instance image',
                          bench.diskless_unavailable())

    def test_needs_the_ramdisk_kexec_interface(self):
        with mock.patch.object(ironic_service, 'deploy_interfaces',
                               return_value=['direct', 'kexec']):
            self.assertIn('ramdisk-kexec', bench.diskless_unavailable())

    def test_fast_track_options(self):
        kwargs = bench._testbed_kwargs('diskless')
        self.assertEqual('True',
                         kwargs['ironic_options']['deploy']['fast_track'])
        self.assertEqual({}, bench._testbed_kwargs('disk'))

    def test_fast_track_pair_runs_like_diskless(self):
        # Fast track and cleaning: the cleaning after each undeploy boots
        # the agent that the next deploy finds running.
        kwargs = bench._testbed_kwargs('disk-fast-track')
        self.assertEqual(bench._testbed_kwargs('diskless'), kwargs)
        self.assertIs(scenario.FAST_TRACK_CLEANING, kwargs['ironic_options'])
        self.assertEqual('True', kwargs['ironic_options']['conductor'][
            'automated_clean'])
        self.assertEqual(scenario.CLEANING_PROVIDE_TIMEOUT,
                         kwargs['provide_timeout'])
        self.assertEqual(scenario.CLEANING_PROVIDE_TIMEOUT,
                         bench._recover_timeout('disk-fast-track'))
        self.assertEqual(scenario.CLEANING_PROVIDE_TIMEOUT,
                         bench._recover_timeout('diskless'))
        self.assertEqual(scenario.UNDEPLOY_TIMEOUT,
                         bench._recover_timeout('disk'))

    def test_fast_track_pair_is_available(self):
        self.assertIsNone(bench.unavailable('disk-fast-track'))
        self.assertIsNone(bench.unavailable('disk'))

    def test_fast_track_pair_needs_ironic_options(self):
        class OldTestbed(object):
            def __init__(self, workdir, images, post_delay=0.0):
                pass

        with mock.patch.object(scenario, 'Testbed', OldTestbed), \
                mock.patch.object(ironic_service, 'deploy_interfaces',
                                  return_value=['direct', 'kexec', 'ramdisk',
                                                'ramdisk-kexec']):
            self.assertIn('fast track', bench.unavailable('disk-fast-track'))
            self.assertIn('fast track', bench.unavailable('diskless'))
            self.assertIsNone(bench.unavailable('disk'))


class FakeTestbed(object):
    """A testbed that deploys in no time, recording what it was asked.

    Each deploy is shaped like a fast-track one: no agent boots, the
    running agent heartbeats 30 s after the request.
    """

    def __init__(self, workdir, images, post_delay=0.0, **kwargs):
        self.workdir = workdir
        self.kwargs = kwargs
        self.calls = []
        self.fail = False
        FakeTestbed.last = self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def enrol(self, deploy_interface):
        self.calls.append(('enrol', deploy_interface))

    def agent_alive(self):
        self.calls.append(('agent_alive',))
        return True

    def deploy(self, image, deploy_interface):
        self.calls.append(('deploy', image, deploy_interface))
        if self.fail:
            raise RuntimeError('cli')
        result = timeline.DeployResult(
            label=deploy_interface, deploy_interface=deploy_interface,
            image=image, started=1000.0)
        rec = samples.kexec_record(verify=30.0)
        result.node = {'provision_state': 'active',
                       'driver_internal_info': (
                           {'kexec': rec} if deploy_interface == 'kexec'
                           else {})}
        result.usable = 1100.0
        result.events = {'deploy request': 1000.0,
                         'agent heartbeat': 1030.0,
                         'image written': 1055.0, 'handoff': 1058.0,
                         'instance kernel': 1070.0, 'active': 1080.0,
                         'instance usable': 1100.0}
        return result

    def recover(self, timeout):
        self.calls.append(('recover', timeout))

    def logs_tail(self):
        return ''


class DeployPairTestCase(TempDirMixin, unittest.TestCase):

    def deploy_pair(self, pair, fail=False):
        data = {'runs': []}

        def testbed(*args, **kwargs):
            tb = FakeTestbed(*args, **kwargs)
            tb.fail = fail
            return tb

        with mock.patch.object(scenario, 'Testbed', testbed), \
                mock.patch.object(timeline, 'save'), \
                contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            bench._deploy_pair(data, self.dir, None, 0.0, pair, 2)
        return data['runs'], FakeTestbed.last

    def test_fast_track_pair(self):
        runs, tb = self.deploy_pair('disk-fast-track')
        self.assertEqual(bench._testbed_kwargs('disk-fast-track'), tb.kwargs)
        self.assertTrue(tb.workdir.endswith('post-0-disk-fast-track'))
        self.assertEqual(('enrol', 'direct'), tb.calls[0])
        # The agent is checked right before each deploy; each deploy is
        # followed by the long (cleaning) recovery.
        timeout = scenario.CLEANING_PROVIDE_TIMEOUT
        self.assertEqual(
            [('agent_alive',), ('deploy', 'whole_disk', 'direct'),
             ('recover', timeout),
             ('agent_alive',), ('deploy', 'whole_disk', 'kexec'),
             ('recover', timeout)] * 2, tb.calls[1:])
        self.assertEqual(['direct-fast-track', 'kexec-fast-track'] * 2,
                         [r['variant'] for r in runs])
        for run in runs:
            self.assertTrue(run['ok'])
            self.assertEqual('disk-fast-track', run['pair'])
            self.assertIs(True, run['agent_alive_before'])
            # The raw milestone is kept; it ends no phase.
            self.assertEqual(30.0, run['milestones']['agent heartbeat'])
            self.assertIsNone(run['phases']['to agent up'])
            self.assertEqual(55.0, run['phases']['image write'])
            self.assertEqual(100.0, run['phases']['time to usable'])
        self.assertEqual('verified',
                         runs[1]['kexec_record']['verify']['status'])
        self.assertEqual(4, len(report.read_json(self.dir)['runs']))

    def test_disk_pair_does_not_check_the_agent(self):
        runs, tb = self.deploy_pair('disk')
        self.assertEqual({}, tb.kwargs)
        self.assertNotIn(('agent_alive',), tb.calls)
        self.assertIn(('recover', scenario.UNDEPLOY_TIMEOUT), tb.calls)
        for run in runs:
            self.assertIsNone(run['agent_alive_before'])
            self.assertEqual(30.0, run['phases']['to agent up'])

    def test_testbed_error_keeps_the_agent_check(self):
        runs, _tb = self.deploy_pair('disk-fast-track', fail=True)
        self.assertEqual(4, len(runs))
        for run in runs:
            self.assertFalse(run['ok'])
            self.assertEqual('testbed error: cli', run['error'])
            self.assertIs(True, run['agent_alive_before'])


class FailedRecordTestCase(unittest.TestCase):

    def test_testbed_error_is_a_failed_run(self):
        record = bench.failed_record('kexec', 0.0, 2, RuntimeError('cli'))
        self.assertFalse(record['ok'])
        self.assertEqual('testbed error: cli', record['error'])
        data = samples.data()
        data['runs'].append(record)
        text = report.markdown(data)
        self.assertIn('| kexec | 4 (1) |', text)
        self.assertIn('- kexec round 2, post 0: testbed error: cli', text)

    def test_stopped_run_is_reported(self):
        data = samples.data()
        data['settings']['stopped'] = 'boom'
        self.assertIn('- the benchmark stopped early: boom',
                      report.markdown(data))
