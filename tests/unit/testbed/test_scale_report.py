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

"""The scale harness's measurements (/proc) and report."""

import json
import os
import shutil
import tempfile
import unittest

from testbed.scale import report


def _run(name='10-1c', nodes=4, conductors=1):
    return {
        'name': name, 'conductors': conductors,
        'time_to_all_active': 40.0,
        'cpu': {'conductor0': 8.0, 'api': 2.0, 'postgres': 1.0,
                'agents': 0.4, 'bmcs': 0.4},
        'db': {'statements': 400, 'xact_commit': 100},
        'agent_requests': {'kexec': 20.0, 'direct': 12.0},
        'max_threads': 50, 'max_deploying': 4,
        'nodes': [
            {'deploy_interface': 'kexec', 'provision_state': 'active',
             'time_to_active': 30.0},
            {'deploy_interface': 'direct', 'provision_state': 'active',
             'time_to_active': 28.0},
            {'deploy_interface': 'kexec', 'provision_state': 'active',
             'time_to_active': 40.0},
            {'deploy_interface': 'direct', 'provision_state':
             'deploy failed', 'time_to_active': None},
        ][:nodes],
    }


class ProcTestCase(unittest.TestCase):

    def setUp(self):
        self.proc = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.proc)

    def _process(self, pid, ppid, utime, stime, cutime=0, cstime=0,
                 threads=1, name='ironic conductor'):
        os.makedirs(os.path.join(self.proc, str(pid)))
        # Fields after "(name)": state ppid pgrp session tty tpgid flags
        # minflt cminflt majflt cmajflt utime stime cutime cstime ...
        fields = ['S', str(ppid)] + ['0'] * 9 + [
            str(utime), str(stime), str(cutime), str(cstime)] + ['0'] * 30
        with open(os.path.join(self.proc, str(pid), 'stat'), 'w') as f:
            f.write('%d (%s) %s\n' % (pid, name, ' '.join(fields)))
        with open(os.path.join(self.proc, str(pid), 'status'), 'w') as f:
            f.write('Name:\tx\nThreads:\t%d\n' % threads)

    def test_cpu_seconds_counts_reaped_children(self):
        self._process(10, 1, 100, 50, cutime=30, cstime=20)
        hz = float(report.CLK_TCK)
        self.assertAlmostEqual(200 / hz, report.cpu_seconds(10, self.proc))
        self.assertAlmostEqual(150 / hz, report.cpu_seconds(
            10, self.proc, children=False))

    def test_tree_and_threads(self):
        self._process(10, 1, 100, 0, threads=40)
        self._process(11, 10, 50, 0, threads=3)
        self._process(12, 11, 10, 0, threads=1)
        self._process(13, 1, 999, 0, threads=9)
        self.assertEqual([11, 12], sorted(report.children(10, self.proc)))
        hz = float(report.CLK_TCK)
        self.assertAlmostEqual(160 / hz,
                               report.tree_cpu_seconds(10, self.proc))
        self.assertEqual(44, report.threads(10, self.proc))

    def test_missing_process(self):
        self.assertIsNone(report.cpu_seconds(12345, self.proc))
        self.assertIsNone(report.tree_cpu_seconds(12345, self.proc))


class SummaryTestCase(unittest.TestCase):

    def test_summarize(self):
        s = report.summarize(_run())
        self.assertEqual(4, s['nodes'])
        self.assertEqual(3, s['active'])
        self.assertEqual(1, s['failed'])
        self.assertEqual(0, s['other'])
        self.assertEqual(2.0, s['conductor_cpu_per_deploy'])
        self.assertEqual(100.0, s['db_statements_per_deploy'])
        self.assertEqual(40.0, s['kexec_p50'])
        self.assertEqual(28.0, s['direct_p50'])
        self.assertEqual(20.0, s['agent_requests_per_kexec'])

    def test_conductor_cpu_sums_conductors(self):
        run = _run(conductors=2)
        run['cpu']['conductor1'] = 4.0
        self.assertEqual(3.0,
                         report.summarize(run)['conductor_cpu_per_deploy'])

    def test_markdown_and_files(self):
        out = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, out)
        summaries = report.write([_run(), _run('100-1c')], out)
        with open(os.path.join(out, 'results.md')) as f:
            text = f.read()
        self.assertEqual(4, len(text.splitlines()))
        # One node failed: no "all active" time, the "all ended" one.
        self.assertIn('| 10-1c | 4 | 1 | 3 | 1 | 0 | - | 40.0 |', text)
        with open(os.path.join(out, 'results.json')) as f:
            data = json.load(f)
        self.assertEqual(summaries, data['summaries'])
        self.assertEqual(2, len(data['runs']))

    def test_missing_values_are_dashes(self):
        self.assertEqual('-', report._fmt(None))
        self.assertEqual('1.50', report._fmt(1.5, 2))


if __name__ == '__main__':
    unittest.main()
