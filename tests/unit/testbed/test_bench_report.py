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
from testbed import ironic_service
from testbed import scenario
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
        self.assertEqual('time-to-usable kexec/power-cycle: disk 0.76, '
                         'diskless n/a (3 runs, post 0 s)',
                         out.getvalue().rstrip('\n').splitlines()[-1])
        self.assertTrue(os.path.exists(
            os.path.join(self.dir, report.MARKDOWN_NAME)))

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
            ['time-to-usable kexec/power-cycle: disk 0.76, diskless n/a '
             '(3 runs, post 0 s)',
             'time-to-usable kexec/power-cycle: disk 0.50, diskless n/a '
             '(3 runs, post 130 s)'],
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
