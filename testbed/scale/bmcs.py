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

"""Many virtual IPMI BMCs in one process: pyghmi servers on 127.0.0.1.

Each BMC is a :class:`pyghmi.ipmi.bmc.Bmc` on its own UDP port, like
:mod:`testbed.bmc`, but the machine behind it is simulated: a power
state and a boot device. Every change is sent as one JSON datagram to
the simulated machines (:mod:`testbed.scale.agents`) on their control
port; they send back ``{"port": P, "event": "off"}`` when an agent
powers its machine off (IPA's ``standby.power_off``).

pyghmi serves all its BMCs from one process-global loop built on
``select.select()``, which refuses file descriptors above 1023
(FD_SETSIZE). The BMCs therefore live in a process of their own: with
the agents' sockets in the same process, 500 nodes would pass that
limit. Here 500 BMCs use about 510 descriptors.

    python -m testbed.scale.bmcs --first-port 20000 --count 500 \
        --events-port 19999 --control-port 19998
"""

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time

from pyghmi.ipmi import bmc as ipmi_bmc

USERNAME = 'admin'
PASSWORD = 'password'


class SimBmc(ipmi_bmc.Bmc):
    """The BMC of one simulated machine."""

    def __init__(self, port, notify):
        super().__init__({USERNAME: PASSWORD}, port=port,
                         address='127.0.0.1')
        self.port = port
        self.notify = notify
        self.power = 'off'
        self.boot_device = 'network'
        self.next_boot_device = None
        self.persistent = True
        self.requests = 0
        self._lock = threading.Lock()

    def handle_raw_request(self, request, session):
        self.requests += 1
        return super().handle_raw_request(request, session)

    def set_system_boot_options(self, request, session):
        data = request['data']
        if data[0] == 5 and len(data) > 2:
            self.persistent = bool(data[1] & 0x40)
        return super().set_system_boot_options(request, session)

    def cold_reset(self):
        return 0

    def get_power_state(self):
        return self.power

    def is_active(self):
        return self.power == 'on'

    def _boot(self, event):
        device = self.next_boot_device or self.boot_device
        self.next_boot_device = None
        self.power = 'on'
        self.notify(self.port, event, device)

    def power_on(self):
        with self._lock:
            if self.power != 'on':
                self._boot('on')
        return 0

    def power_off(self):
        with self._lock:
            if self.power != 'off':
                self.power = 'off'
                self.notify(self.port, 'off', None)
        return 0

    power_shutdown = power_off

    def power_reset(self):
        with self._lock:
            if self.power != 'on':
                return 0xd5
            self._boot('reset')
        return 0

    def power_cycle(self):
        with self._lock:
            if self.power != 'on':
                return 0xd5
            self._boot('reset')
        return 0

    def get_boot_device(self):
        return self.next_boot_device or self.boot_device

    def set_boot_device(self, bootdevice):
        device = ('network' if bootdevice in ('network', 'pxe', 'net')
                  else 'hd')
        if self.persistent:
            self.boot_device = device
            self.next_boot_device = None
        else:
            self.next_boot_device = device

    def agent_powered_off(self):
        """The machine's own OS powered it off (no event sent back)."""
        with self._lock:
            self.power = 'off'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--first-port', type=int, required=True)
    parser.add_argument('--count', type=int, required=True)
    parser.add_argument('--events-port', type=int, required=True,
                        help='UDP port of the simulated machines')
    parser.add_argument('--control-port', type=int, required=True,
                        help='UDP port this process takes orders on')
    parser.add_argument('--stats', help='JSON file written on exit')
    args = parser.parse_args(argv)

    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out_lock = threading.Lock()
    counts = {'events': 0}

    def notify(port, event, device):
        counts['events'] += 1
        msg = json.dumps({'port': port, 'event': event, 'bootdev': device,
                          'time': time.time()}).encode()
        with out_lock:
            out.sendto(msg, ('127.0.0.1', args.events_port))

    bmcs = {}
    for i in range(args.count):
        port = args.first_port + i
        bmcs[port] = SimBmc(port, notify)

    control = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    control.bind(('127.0.0.1', args.control_port))

    def control_loop():
        while True:
            data, _addr = control.recvfrom(65536)
            try:
                msg = json.loads(data)
                bmc = bmcs[msg['port']]
            except (ValueError, KeyError):
                continue
            if msg.get('event') == 'off':
                bmc.agent_powered_off()

    def write_stats(*_args):
        if args.stats:
            with open(args.stats, 'w') as f:
                json.dump({'bmcs': len(bmcs), 'events': counts['events'],
                           'loop_errors': counts.get('loop_errors', 0),
                           'ipmi_requests': sum(b.requests
                                                for b in bmcs.values()),
                           'fds': len(os.listdir('/proc/self/fd'))}, f)

    def stop(*_args):
        write_stats()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGUSR1, write_stats)
    threading.Thread(target=control_loop, daemon=True).start()
    print('listening on 127.0.0.1:%d-%d, %d descriptors'
          % (args.first_port, args.first_port + args.count - 1,
             len(os.listdir('/proc/self/fd'))), flush=True)
    serve(counts)


def serve(counts, listen=None):
    """pyghmi's server loop, kept alive through pyghmi's own errors.

    pyghmi 1.6.19 can raise out of its loop under many concurrent
    sessions: the 500-node run died on ``AttributeError: 'ServerSession'
    object has no attribute 'sessionless_data'`` in
    ``Session.process_pktqueue``, and every BMC with it. The packet that
    raised is lost (ipmitool retries, Ironic too); the loop goes on and
    the error is counted and logged.
    """
    listen = listen or ipmi_bmc.Bmc.listen
    while True:
        try:
            listen(timeout=30)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:
            counts['loop_errors'] = counts.get('loop_errors', 0) + 1
            print('%s pyghmi loop error %d: %s: %s' % (
                time.strftime('%H:%M:%S'), counts['loop_errors'],
                e.__class__.__name__, e), flush=True)
            if counts['loop_errors'] > 100000:
                raise


if __name__ == '__main__':
    sys.exit(main())
