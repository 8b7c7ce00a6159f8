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

"""The testbed's statsd sink, fed by Ironic's own statsd backend."""

import configparser
import os
import shutil
import socket
import tempfile
import time
import unittest
from unittest import mock

from ironic.common import metrics_statsd

from testbed import ironic_service
from testbed import statsd_sink


class StatsdSinkTestCase(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.log = os.path.join(self.dir, 'statsd.log')
        self.sink = statsd_sink.StatsdSink(self.log)
        self.addCleanup(self.sink.stop)
        self.ironic = metrics_statsd.StatsdMetricLogger(
            'ironic_kexec.record', host='127.0.0.1', port=self.sink.port)

    def wait_for(self, count):
        deadline = time.monotonic() + 10
        while len(self.sink.metrics()) < count:
            self.assertLess(time.monotonic(), deadline, self.sink.metrics())
            time.sleep(0.01)
        return self.sink.metrics()

    def send(self, data):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(data, ('127.0.0.1', self.sink.port))

    def test_counters_from_ironic(self):
        name = self.ironic.get_metric_name
        self.ironic.send_counter(name('path.kexec'), 1)
        self.ironic.send_counter(name('path.kexec'), 1)
        self.ironic.send_counter(name('path.power-cycle.no_kernel'), 1)
        self.ironic.send_timer(name('tear_down'), 12.5)
        self.ironic.send_gauge(name('nodes'), 3)
        self.wait_for(5)
        self.assertEqual({'ironic_kexec.record.path.kexec': 2,
                          'ironic_kexec.record.path.power-cycle.no_kernel':
                              1},
                         self.sink.counters())

    def test_sampled_counter_counts_as_statsd_does(self):
        # Ironic writes "name:1|c@0.5" (no "|" before "@").
        with mock.patch('random.random', return_value=0.1):
            self.ironic.send_counter('sampled', 1, sample_rate=0.5)
        self.send(b'standard:1|c|@0.25')
        self.wait_for(2)
        self.assertEqual({'sampled': 2, 'standard': 4}, self.sink.counters())

    def test_log_has_every_metric_stamped(self):
        self.send(b'a:1|c\nb:20|ms')
        self.send(b'garbage')
        metrics = self.wait_for(3)
        self.assertEqual(['a:1|c', 'b:20|ms', 'garbage'],
                         [line for _t, line in metrics])
        with open(self.log) as f:
            lines = f.read().splitlines()
        self.assertEqual(3, len(lines))
        # The testbed's stamp: monotonic time, wall clock time, the text.
        stamp, wall, text = lines[0].split(' ', 2)
        self.assertAlmostEqual(metrics[0][0], float(stamp), delta=1)
        self.assertEqual('a:1|c', text)
        self.assertEqual({'a': 1}, self.sink.counters())

    def test_counters_since(self):
        self.send(b'a:1|c')
        first = self.wait_for(1)[0][0]
        self.send(b'a:1|c')
        self.wait_for(2)
        self.assertEqual({'a': 2}, self.sink.counters())
        self.assertEqual({'a': 1}, self.sink.counters(since=first + 1e-9))

    def test_parse(self):
        for line, expected in [
                ('a.b:1|c', ('a.b', 1.0, 'c', 1.0)),
                ('a:1|c@0.5', ('a', 1.0, 'c', 0.5)),
                ('a:1|c|@0.5', ('a', 1.0, 'c', 0.5)),
                ('a:12.5|ms', ('a', 12.5, 'ms', 1.0)),
                ('a', None), ('a:1', None), (':1|c', None),
                ('a:x|c', None), ('a:1|c@0', None)]:
            self.assertEqual(expected, statsd_sink.parse(line), line)

    def test_ironic_options(self):
        # What the testbed writes into ironic.conf for the sink.
        service = ironic_service.IronicService(
            os.path.join(self.dir, 'ironic'), 1, 2, 3, allowed_paths=[],
            extra_options=self.sink.ironic_options())
        os.makedirs(service.workdir)
        service.write_config()
        conf = configparser.RawConfigParser()
        conf.read(service.config_file)
        self.assertEqual('statsd', conf.get('metrics', 'backend'))
        self.assertEqual('127.0.0.1',
                         conf.get('metrics_statsd', 'statsd_host'))
        self.assertEqual(self.sink.port,
                         conf.getint('metrics_statsd', 'statsd_port'))
