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

"""A statsd server for the testbed's Ironic: it keeps what it receives.

Ironic's ``statsd`` metrics backend sends one UDP datagram per metric,
``<name>:<value>|<type>`` (``c`` counter, ``ms`` timer, ``g`` gauge,
optionally ``@<sample rate>``). The sink listens on 127.0.0.1, logs every
metric with the testbed's timestamps (see :mod:`testbed.node`) and keeps
them, so that a test can read the counters: the plugin's decisions as an
operator's statsd would see them (see :mod:`ironic_kexec.record`).
"""

import socketserver
import threading
import time

from testbed import node as tb_node

COUNTER = 'c'


def parse(line):
    """(name, value, type, sample rate) of one metric, or None.

    Accepts the standard ``name:1|c|@0.5`` and Ironic's ``name:1|c@0.5``.
    """
    name, sep, rest = line.strip().partition(':')
    if not sep or not name:
        return None
    value, sep, kind = rest.partition('|')
    if not sep:
        return None
    kind, _sep, rate = kind.replace('|@', '@').partition('@')
    try:
        value = float(value)
        rate = float(rate) if rate else 1.0
    except ValueError:
        return None
    if rate <= 0:
        return None
    return name, value, kind, rate


class _Handler(socketserver.BaseRequestHandler):

    def handle(self):
        data = self.request[0]
        self.server.sink.record(data.decode('utf-8', 'replace'))


class StatsdSink(object):
    """Receives statsd datagrams on 127.0.0.1 until :meth:`stop`.

    :param log_path: every metric received is appended there, one line
        each, stamped.
    :param port: 0 for any free port; :attr:`port` is the one bound.
    """

    def __init__(self, log_path, port=0):
        self.log_path = log_path
        self._lock = threading.Lock()
        self._metrics = []
        self._server = socketserver.UDPServer(('127.0.0.1', port), _Handler)
        self._server.sink = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={'poll_interval': 0.2},
                                        daemon=True)
        self._thread.start()

    def record(self, datagram):
        # One datagram may carry several metrics, one per line.
        for line in datagram.splitlines():
            if not line.strip():
                continue
            with self._lock:
                self._metrics.append((time.monotonic(), line))
            if self.log_path:
                tb_node.append_line(self.log_path, line)

    def metrics(self):
        """Every metric received: (monotonic time, line), in order."""
        with self._lock:
            return list(self._metrics)

    def counters(self, since=0.0):
        """{counter name: total} of what was received after ``since``.

        A sampled counter counts as statsd counts it: value / rate.
        """
        totals = {}
        for stamp, line in self.metrics():
            parsed = parse(line)
            if stamp < since or parsed is None:
                continue
            name, value, kind, rate = parsed
            if kind != COUNTER:
                continue
            totals[name] = totals.get(name, 0) + value / rate
        return {name: int(total) if float(total).is_integer() else total
                for name, total in totals.items()}

    def ironic_options(self):
        """The ironic.conf options that send Ironic's metrics here."""
        return {'metrics': {'backend': 'statsd'},
                'metrics_statsd': {'statsd_host': '127.0.0.1',
                                   'statsd_port': str(self.port)}}

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
