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

"""The benchmark's statistics over recorded runs."""

import unittest

from testbed import bench_stats as stats
from tests.unit.testbed import samples


class PhasesTestCase(unittest.TestCase):

    def test_phases_split_the_time_to_usable(self):
        ms = samples.run('kexec', 1, 170.0, agent=60.0, written=120.0,
                         handoff=130.0, kernel=140.0)['milestones']
        got = stats.phases(ms)
        self.assertEqual({'to agent up': 60.0, 'image write': 60.0,
                          'to handoff': 10.0, 'handoff to kernel': 10.0,
                          'kernel to usable': 30.0,
                          'time to usable': 170.0,
                          'handoff to usable': 40.0}, got)

    def test_missing_milestone_counts_in_next_phase(self):
        # A diskless deploy writes no image: the agent-to-handoff time
        # goes to the handoff phase and the phases still add up.
        ms = samples.run('ramdisk-kexec', 1, 100.0, agent=20.0,
                         handoff=40.0, kernel=55.0)['milestones']
        got = stats.phases(ms)
        self.assertIsNone(got['image write'])
        self.assertEqual(20.0, got['to handoff'])
        parts = [got[p] for p, _m in stats.PHASES if got[p] is not None]
        self.assertEqual(got['time to usable'], sum(parts))

    def test_heartbeat_before_the_request_is_not_agent_up(self):
        # The timeline takes Ironic's log lines from one second before
        # the request: a heartbeat there is an agent already running.
        got = stats.phases({'deploy request': 0.0, 'agent heartbeat': -0.5,
                            'image written': 50.0, 'handoff': 53.0,
                            'instance kernel': 63.0,
                            'instance usable': 100.0})
        self.assertIsNone(got['to agent up'])
        self.assertEqual(50.0, got['image write'])
        self.assertEqual(100.0, sum(got[p] for p, _m in stats.PHASES
                                    if got[p] is not None))

    def test_a_milestone_out_of_order_ends_no_phase(self):
        got = stats.phases({'deploy request': 0.0, 'agent heartbeat': 5.0,
                            'handoff': 1.3, 'instance kernel': 14.0,
                            'instance usable': 18.6})
        self.assertEqual(5.0, got['to agent up'])
        self.assertIsNone(got['to handoff'])
        self.assertEqual(9.0, got['handoff to kernel'])
        for phase, _m in stats.PHASES:
            self.assertFalse(got[phase] is not None and got[phase] < 0)

    def test_failed_run_has_no_time_to_usable(self):
        ms = samples.run('direct', 1, 200.0, ok=False)['milestones']
        got = stats.phases(ms)
        self.assertIsNone(got['time to usable'])
        self.assertIsNone(got['kernel to usable'])


class FastTrackPhasesTestCase(unittest.TestCase):
    """A deploy that starts with the agent running has no "agent up"."""

    def test_the_running_agents_heartbeat_is_not_agent_up(self):
        # The running agent's next heartbeat comes during the image
        # write: it ends no phase, the image write starts at the request.
        run = samples.run('kexec-fast-track', 1, 100.0, agent=35.0,
                          written=55.0, handoff=58.0, kernel=68.0,
                          fast_track=True)
        self.assertTrue(stats.agent_up_before(run))
        got = stats.run_phases(run)
        self.assertIsNone(got['to agent up'])
        self.assertEqual(55.0, got['image write'])
        self.assertEqual(3.0, got['to handoff'])
        self.assertEqual(100.0, sum(got[p] for p, _m in stats.PHASES
                                    if got[p] is not None))
        self.assertEqual(42.0, got['handoff to usable'])

    def test_no_heartbeat_at_all(self):
        # As in the recorded diskless runs: the handoff comes before the
        # running agent's next heartbeat.
        run = samples.run('ramdisk-kexec', 1, 18.6, handoff=1.3,
                          kernel=14.0, fast_track=True)
        run['milestones']['agent heartbeat'] = None
        got = stats.run_phases(run)
        self.assertIsNone(got['to agent up'])
        self.assertEqual(1.3, got['to handoff'])

    def test_heartbeat_after_the_handoff(self):
        # ramdisk-kexec: the agent runs on after its deploy step starts.
        run = samples.run('ramdisk-kexec', 1, 18.6, agent=5.0,
                          handoff=1.3, kernel=14.0, fast_track=True)
        got = stats.run_phases(run)
        self.assertIsNone(got['to agent up'])
        self.assertEqual(1.3, got['to handoff'])
        self.assertAlmostEqual(12.7, got['handoff to kernel'])

    def test_an_agent_booted_all_the_same_is_agent_up(self):
        # A live agent before the request, yet Ironic booted one (it
        # found fast track unusable): its first heartbeat is agent up.
        run = samples.run('direct-fast-track', 1, 200.0, agent=60.0)
        run['agent_alive_before'] = True
        self.assertFalse(stats.agent_up_before(run))
        self.assertEqual(60.0, stats.run_phases(run)['to agent up'])

    def test_no_live_agent(self):
        run = samples.run('direct-fast-track', 1, 200.0, agent=60.0)
        self.assertIs(False, run['agent_alive_before'])
        self.assertEqual(60.0, stats.run_phases(run)['to agent up'])

    def test_runs_without_the_check_are_as_before(self):
        # The disk pair, and results made before the check.
        run = samples.run('kexec', 1, 170.0)
        self.assertNotIn('agent_alive_before', run)
        self.assertFalse(stats.agent_up_before(run))
        self.assertEqual(60.0, stats.run_phases(run)['to agent up'])

    def test_summary_of_a_fast_track_variant(self):
        runs = [samples.run('direct-fast-track', i, usable, agent=agent,
                            written=55.0, handoff=58.0, kernel=80.0,
                            fast_track=True)
                for i, (usable, agent) in enumerate(
                    ((120.0, 20.0), (130.0, 40.0), (125.0, 57.0)), 1)]
        table = stats.summarize(runs)[(0.0, 'direct-fast-track')]['phases']
        self.assertEqual(0, table['to agent up']['n'])
        self.assertEqual({'n': 3, 'min': 55.0, 'median': 55.0,
                          'max': 55.0}, table['image write'])
        self.assertEqual(125.0, table['time to usable']['median'])


class AgentAliveTestCase(unittest.TestCase):

    def test_counts_per_post_and_variant(self):
        booted = samples.run('kexec-fast-track', 3, 150.0)
        booted['agent_alive_before'] = True
        unknown = samples.run('kexec-fast-track', 4, 1.0, ok=False)
        unknown['agent_alive_before'] = None
        runs = samples.data()['runs'] + [
            samples.run('direct-fast-track', 1, 120.0, fast_track=True),
            samples.run('kexec-fast-track', 1, 90.0, fast_track=True),
            samples.run('direct-fast-track', 2, 220.0),
            samples.run('kexec-fast-track', 2, 95.0, fast_track=True),
            booted, unknown,
            samples.run('ramdisk-kexec', 1, 20.0, post=130.0,
                        fast_track=True)]
        self.assertEqual(
            {(0.0, 'direct-fast-track'): {'deploys': 2, 'alive': 1,
                                          'unknown': 0, 'booted': 0},
             (0.0, 'kexec-fast-track'): {'deploys': 4, 'alive': 3,
                                         'unknown': 1, 'booted': 1},
             (130.0, 'ramdisk-kexec'): {'deploys': 1, 'alive': 1,
                                        'unknown': 0, 'booted': 0}},
            stats.agent_alive(runs))


class DescribeTestCase(unittest.TestCase):

    def test_min_median_max(self):
        self.assertEqual({'n': 4, 'min': 1.0, 'median': 2.5, 'max': 9.0},
                         stats.describe([9.0, 2.0, 1.0, 3.0]))

    def test_ignores_none(self):
        self.assertEqual({'n': 2, 'min': 1.0, 'median': 2.0, 'max': 3.0},
                         stats.describe([None, 3.0, 1.0]))

    def test_nothing(self):
        self.assertEqual({'n': 0, 'min': None, 'median': None,
                          'max': None}, stats.describe([None]))


class ScheduleTestCase(unittest.TestCase):

    def test_variants_alternate(self):
        self.assertEqual(
            [(1, 'direct'), (1, 'kexec'), (2, 'direct'), (2, 'kexec')],
            stats.schedule(['direct', 'kexec'], 2))

    def test_variants_of_pairs(self):
        self.assertEqual(['direct', 'kexec'], stats.variants_of(['disk']))
        self.assertEqual(['direct', 'kexec', 'ramdisk', 'ramdisk-kexec'],
                         stats.variants_of(['diskless', 'disk']))
        self.assertEqual(['direct-fast-track', 'kexec-fast-track'],
                         stats.variants_of(['disk-fast-track']))

    def test_fast_track_pair(self):
        self.assertEqual(('disk', 'diskless', 'disk-fast-track',
                          'uefi-disk'), stats.PAIRS)
        self.assertEqual(('diskless', 'disk-fast-track'),
                         stats.FAST_TRACK_PAIRS)
        self.assertEqual(('direct-fast-track', 'disk-fast-track',
                          'power-cycle', 'direct', 'whole_disk'),
                         stats.variant('direct-fast-track'))
        self.assertEqual(('kexec-fast-track', 'disk-fast-track', 'kexec',
                          'kexec', 'whole_disk'),
                         stats.variant('kexec-fast-track'))

    def test_every_pair_has_a_power_cycle_and_a_kexec_variant(self):
        for pair in stats.PAIRS:
            roles = [v[2] for v in stats.VARIANTS if v[1] == pair]
            self.assertEqual(['power-cycle', 'kexec'], roles, pair)

    def test_unknown_variant(self):
        self.assertRaises(ValueError, stats.variant, 'pxe')


class SummaryTestCase(unittest.TestCase):

    def test_summary_and_ratio(self):
        summary = stats.summarize(samples.data()['runs'])
        direct = summary[(0.0, 'direct')]
        self.assertEqual(3, direct['runs'])
        self.assertEqual(0, direct['failed'])
        self.assertEqual({'n': 3, 'min': 200.0, 'median': 210.0,
                          'max': 260.0}, direct['phases']['time to usable'])
        kexec = summary[(0.0, 'kexec')]['phases']
        self.assertEqual(160.0, kexec['time to usable']['median'])
        self.assertEqual(10.0, kexec['kernel to usable']['min'])
        self.assertAlmostEqual(160.0 / 210.0,
                               stats.ratio(summary, 0.0, 'disk'))
        self.assertIsNone(stats.ratio(summary, 0.0, 'diskless'))

    def test_handoff_to_usable(self):
        # direct: handoff at 130 s, usable at 200/260/210 s; kexec: 150/
        # 170/160 s.
        summary = stats.summarize(samples.data()['runs'])
        self.assertEqual(
            80.0,
            summary[(0.0, 'direct')]['phases']['handoff to usable']['median'])
        self.assertAlmostEqual(
            30.0 / 80.0,
            stats.ratio(summary, 0.0, 'disk', stats.HANDOFF_TO_USABLE))

    def test_handoff_to_usable_needs_both_milestones(self):
        got = stats.phases({'deploy request': 0.0, 'handoff': None,
                            'instance usable': 50.0})
        self.assertIsNone(got['handoff to usable'])
        self.assertEqual(50.0, got['time to usable'])

    def test_failed_runs_are_counted_not_averaged(self):
        runs = samples.data()['runs'] + [
            samples.run('kexec', 4, 1.0, ok=False)]
        entry = stats.summarize(runs)[(0.0, 'kexec')]
        self.assertEqual(4, entry['runs'])
        self.assertEqual(1, entry['failed'])
        self.assertEqual(150.0, entry['phases']['time to usable']['min'])

    def test_posts_are_kept_apart(self):
        runs = [samples.run('direct', 1, 300.0, post=130.0),
                samples.run('kexec', 1, 150.0, post=130.0),
                samples.run('direct', 1, 200.0),
                samples.run('kexec', 1, 150.0)]
        summary = stats.summarize(runs)
        self.assertAlmostEqual(0.5, stats.ratio(summary, 130.0, 'disk'))
        self.assertAlmostEqual(0.75, stats.ratio(summary, 0.0, 'disk'))

    def test_pairs_are_kept_apart(self):
        runs = samples.data()['runs'] + [
            samples.run('direct-fast-track', 1, 100.0, fast_track=True),
            samples.run('kexec-fast-track', 1, 80.0, fast_track=True)]
        summary = stats.summarize(runs)
        self.assertAlmostEqual(0.8,
                               stats.ratio(summary, 0.0, 'disk-fast-track'))
        self.assertAlmostEqual(160.0 / 210.0,
                               stats.ratio(summary, 0.0, 'disk'))

    def test_no_ratio_without_a_usable_baseline(self):
        runs = [samples.run('direct', 1, 200.0, ok=False),
                samples.run('kexec', 1, 150.0)]
        self.assertIsNone(stats.ratio(stats.summarize(runs), 0.0, 'disk'))


class KexecRecordTestCase(unittest.TestCase):

    def runs(self):
        runs = samples.data()['runs']
        kexec = [r for r in runs if r['variant'] == 'kexec']
        for r, load in zip(kexec, (4.0, 3.0, 5.0)):
            r['kexec_record'] = samples.kexec_record(load=load)
        failed = samples.run('kexec', 4, 1.0, ok=False)
        failed['kexec_record'] = samples.kexec_record(
            'power-cycle', 'no_kernel', load=99.0)
        return runs + [failed]

    def test_paths_taken_with_reasons(self):
        self.assertEqual({(0.0, 'kexec'): {'kexec': 3,
                                           'power-cycle (no_kernel)': 1}},
                         stats.kexec_paths(self.runs()))

    def test_timings_of_the_successful_runs(self):
        table = stats.kexec_timings(self.runs())[(0.0, 'kexec')]
        self.assertEqual({'n': 3, 'min': 3.0, 'median': 4.0, 'max': 5.0},
                         table['load (conductor)'])
        self.assertEqual(2.0, table['kexec --load (agent)']['median'])
        # No run downloaded anything: no such column.
        self.assertNotIn('download (agent)', table)

    def test_power_cycle_variants_have_no_record(self):
        self.assertNotIn((0.0, 'direct'), stats.kexec_paths(self.runs()))

    def test_verify_timing(self):
        runs = self.runs()
        for r, seconds in zip(runs[1::2], (38.0, 40.0, 45.0)):
            r['kexec_record'] = samples.kexec_record(verify=seconds)
        table = stats.kexec_timings(runs)[(0.0, 'kexec')]
        self.assertEqual({'n': 3, 'min': 38.0, 'median': 40.0,
                          'max': 45.0}, table['verify (conductor)'])
        self.assertNotIn('recovery (conductor)', table)

    def test_no_verify_timing_in_older_records(self):
        table = stats.kexec_timings(self.runs())[(0.0, 'kexec')]
        self.assertNotIn('verify (conductor)', table)

    def test_verify_statuses(self):
        runs = self.runs()
        for r in runs[1::2]:
            r['kexec_record'] = samples.kexec_record(verify=40.0)
        runs[3]['kexec_record'] = samples.kexec_record(
            'power-cycle', 'not_verified', verify=180.0,
            verify_status='failed')
        # The failed deploy's record (no kexec executed) has no verify.
        self.assertEqual({(0.0, 'kexec'): {'verified': 2, 'failed': 1,
                                           None: 1}},
                         stats.kexec_verify(runs))

    def test_verify_statuses_of_each_variant(self):
        runs = [samples.run('kexec', 1, 150.0),
                samples.run('kexec-fast-track', 1, 90.0, fast_track=True),
                samples.run('direct-fast-track', 1, 120.0, fast_track=True)]
        runs[0]['kexec_record'] = samples.kexec_record(verify=40.0)
        runs[1]['kexec_record'] = samples.kexec_record(verify=38.0)
        self.assertEqual({(0.0, 'kexec'): {'verified': 1},
                          (0.0, 'kexec-fast-track'): {'verified': 1}},
                         stats.kexec_verify(runs))


class FinalLineTestCase(unittest.TestCase):

    def test_every_pair(self):
        runs = samples.data()['runs'] + [
            samples.run('ramdisk', 1, 100.0, post=0.0),
            samples.run('ramdisk-kexec', 1, 40.0, post=0.0),
            samples.run('direct-fast-track', 1, 120.0, fast_track=True),
            samples.run('kexec-fast-track', 1, 90.0, fast_track=True)]
        line = stats.final_line(stats.summarize(runs), 0.0, 3)
        self.assertEqual('time-to-usable kexec/power-cycle: disk 0.76, '
                         'diskless 0.40, disk-fast-track 0.75 (3 runs, '
                         'post 0 s)', line)

    def test_missing_pair_is_na(self):
        line = stats.final_line(stats.summarize(samples.data()['runs']),
                                130.0, 1)
        self.assertEqual('time-to-usable kexec/power-cycle: disk n/a, '
                         'diskless n/a, disk-fast-track n/a (1 runs, post '
                         '130 s)', line)

    def test_only_the_fast_track_pair(self):
        runs = [samples.run('direct-fast-track', 1, 120.0, fast_track=True),
                samples.run('kexec-fast-track', 1, 60.0, fast_track=True)]
        line = stats.final_line(stats.summarize(runs), 0.0, 1)
        self.assertEqual('time-to-usable kexec/power-cycle: disk n/a, '
                         'diskless n/a, disk-fast-track 0.50 (1 runs, post '
                         '0 s)', line)

    def test_uefi_pair_when_run(self):
        runs = samples.data()['runs'] + [
            samples.run('uefi-direct', 1, 200.0, post=0.0),
            samples.run('uefi-kexec', 1, 150.0, post=0.0)]
        line = stats.final_line(stats.summarize(runs), 0.0, 3)
        self.assertEqual('time-to-usable kexec/power-cycle: disk 0.76, '
                         'diskless n/a, disk-fast-track n/a, uefi-disk 0.75 '
                         '(3 runs, post 0 s)', line)

    def test_uefi_pair_variants(self):
        self.assertEqual(['uefi-direct', 'uefi-kexec'],
                         stats.variants_of(['uefi-disk']))
        self.assertEqual(('uefi-kexec', 'uefi-disk', 'kexec', 'kexec',
                          'uefi_whole_disk'), stats.variant('uefi-kexec'))


class RecordedSmokeRunTestCase(unittest.TestCase):
    """The figures of a real testbed run, as the benchmark recorded them."""

    def test_phases(self):
        got = stats.phases(samples.SMOKE_MILESTONES['kexec'])
        self.assertAlmostEqual(63.626, got['to agent up'])
        self.assertAlmostEqual(61.818, got['image write'])
        self.assertAlmostEqual(3.422, got['to handoff'])
        self.assertAlmostEqual(13.474, got['handoff to kernel'])
        self.assertAlmostEqual(38.04, got['kernel to usable'])
        self.assertAlmostEqual(180.38, got['time to usable'])

    def test_final_line(self):
        data = samples.smoke_data()
        line = stats.final_line(stats.summarize(data['runs']), 0.0, 1)
        # 180.38 / 193.983 = 0.9299
        self.assertEqual('time-to-usable kexec/power-cycle: disk 0.93, '
                         'diskless n/a, disk-fast-track n/a (1 runs, post '
                         '0 s)', line)
