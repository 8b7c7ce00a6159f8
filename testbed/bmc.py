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

"""A virtual BMC: IPMI 2.0 (lanplus) on 127.0.0.1 driving a QEMU node.

Built like virtualbmc, on pyghmi's IPMI server, but without libvirt: the
BMC owns the QEMU process. Powering on starts QEMU with the persistent
boot device's boot order; powering off quits it through QMP; soft off is
an ACPI power button press; reset is QMP ``system_reset``.

Every IPMI request and every power action is written, timestamped like
the consoles (see :mod:`testbed.node`), to the BMC log, so a test can
tell whether a deploy power-cycled the node. With ``--power-log`` the
power commands alone also go to a JSON-lines file, one object a line
(see :func:`read_power_log`): what a fault harness compares with what
Ironic recorded.

The BMC can be made unreachable, as a BMC whose network is gone: after a
``SIGUSR1`` it drops every IPMI packet unanswered (the node runs on,
its consoles are still captured); a ``SIGUSR2`` makes it answer again.

Runs as its own process (pyghmi's server loop is process-global)::

    python -m testbed.bmc --spec node.json --port 6230 --log bmc.log

``--post-delay S`` holds a powered-on node in "firmware" for S seconds
(QEMU starts with its CPUs stopped), an emulated power-on self-test.

The boot flags (IPMI set system boot options, parameter 5) carry the
boot device, whether it is persistent, and the boot type: legacy or EFI
(data byte 1, bit 5). Ironic's ipmitool management sends the EFI type
(raw ``0x00 0x08 0x05 0xe0|0xa0 <device> ...``) when the node's boot mode
is uefi, and a plain ``chassis bootdev`` (legacy type) when it is bios.
The BMC records and logs it, and the next power-on runs the firmware it
asks for (see :func:`boot_firmware`): the node's OVMF for EFI; for
legacy, SeaBIOS on a ``uefi`` node (a dual-mode server's CSM), but still
OVMF on a ``uefi-secureboot`` node (Secure Boot requires the CSM off), a
mismatch the BMC logs, as it does an EFI boot asked of a BIOS-only node.
Until a boot flag arrives, a node runs its own firmware.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time

from pyghmi.ipmi import bmc as ipmi_bmc
from qemu.qmp import legacy as qmp_legacy

from testbed import node as tb_node

POWER_ACTIONS = {0: 'off', 1: 'on', 2: 'cycle', 3: 'reset', 4: 'diag',
                 5: 'soft'}
# (netfn, command) -> what it is, for the log.
COMMAND_NAMES = {
    (6, 1): 'get device id',
    (6, 2): 'cold reset',
    (6, 0x37): 'get system guid',
    (0, 1): 'get chassis status',
    (0, 2): 'chassis control',
    (0, 8): 'set system boot options',
    (0, 9): 'get system boot options',
}
QUIT_TIMEOUT = 15

# Boot flags (parameter 5), data byte 1.
BOOT_FLAGS_VALID = 0x80
BOOT_FLAGS_PERSISTENT = 0x40
BOOT_FLAGS_EFI = 0x20


def parse_boot_flags(data):
    """(valid, persistent, efi) of set system boot options' data.

    ``data`` is the request's data: the parameter selector, then the
    parameter's bytes. None when it is not the boot flags parameter.
    """
    if len(data) < 2 or data[0] & 0x7f != 5:
        return None
    flags = data[1]
    return (bool(flags & BOOT_FLAGS_VALID),
            bool(flags & BOOT_FLAGS_PERSISTENT),
            bool(flags & BOOT_FLAGS_EFI))


def boot_firmware(node_firmware, efi):
    """(the firmware a power-on runs, a mismatch message or None).

    :param node_firmware: the node's firmware (testbed.node.FIRMWARES).
    :param efi: the boot type of the last boot flags: True for EFI, False
        for legacy, None when none came yet.
    """
    if efi is None:
        return node_firmware, None
    if node_firmware == tb_node.FIRMWARE_BIOS:
        if efi:
            return node_firmware, ('EFI boot asked of a BIOS-only node: '
                                   'booting SeaBIOS')
        return node_firmware, None
    if efi:
        return node_firmware, None
    if node_firmware == tb_node.FIRMWARE_UEFI:
        # A dual-mode server boots legacy through its CSM.
        return tb_node.FIRMWARE_BIOS, None
    return node_firmware, ('legacy boot asked of a Secure Boot node (no '
                           'CSM): booting UEFI')


class QemuBmc(ipmi_bmc.Bmc):
    """The BMC of one QEMU node described by a :class:`NodeSpec`."""

    def __init__(self, spec, port, log_path, post_delay=0.0,
                 username='admin', password='password', power_log=None):
        super().__init__({username: password}, port=port,
                         address='127.0.0.1')
        self.spec = spec
        self.log_path = log_path
        self.power_log = power_log
        self.unreachable = False
        self._dropped = 0
        self.post_delay = post_delay
        self.boot_device = tb_node.BOOT_NETWORK
        self.persistent = True
        self.next_boot_device = None
        # The boot type of the boot flags: True EFI, False legacy, None
        # (none yet); and that of a next-boot-only boot device.
        self.boot_efi = None
        self.next_boot_efi = None
        self._efi = None
        self.process = None
        self._lock = threading.RLock()
        self._closed = False
        os.makedirs(spec.workdir, exist_ok=True)
        self.serial = tb_node.ConsoleCapture(
            os.path.join(spec.workdir, 'serial.sock'), spec.serial_log,
            firmware_log=spec.firmware_log)
        self.firmware = tb_node.ConsoleCapture(
            os.path.join(spec.workdir, 'firmware.sock'), spec.firmware_log)
        self.log('listening on 127.0.0.1:%d' % port)

    def log(self, message):
        tb_node.append_line(self.log_path, message)

    def power_event(self, event, **details):
        """One line of the power log: a power command or what it did."""
        if not self.power_log:
            return
        now = time.time()
        details.update(monotonic=round(time.monotonic(), 3),
                       time=round(now, 3), event=event)
        with open(self.power_log, 'a') as f:
            f.write(json.dumps(details, sort_keys=True) + '\n')

    # Reachability (signals, see the module docstring).
    def set_unreachable(self, unreachable):
        self.unreachable = unreachable
        if unreachable:
            self._dropped = 0
            self.log('unreachable: dropping every IPMI packet')
        else:
            self.log('reachable again (%d IPMI packets dropped)'
                     % self._dropped)
        self.power_event('unreachable' if unreachable else 'reachable')

    def _drop(self):
        self._dropped += 1
        if self._dropped == 1:
            self.log('unreachable: IPMI request dropped')
            self.power_event('dropped')

    def sessionless_data(self, data, sockaddr):
        # Every ipmitool run starts here (channel authentication
        # capabilities, then the session's opening).
        if self.unreachable:
            self._drop()
            return None
        return super().sessionless_data(data, sockaddr)

    # IPMI requests: log each, then let pyghmi dispatch it.
    def handle_raw_request(self, request, session):
        if self.unreachable:
            self._drop()
            return None
        key = (request['netfn'], request['command'])
        name = COMMAND_NAMES.get(key, 'netfn 0x%02x command 0x%02x' % key)
        data = list(request.get('data') or [])
        if key == (0, 2) and data:
            name += ' ' + POWER_ACTIONS.get(data[0], str(data[0]))
            self.power_event('chassis control', action=POWER_ACTIONS.get(
                data[0], str(data[0])), state=self.get_power_state())
        self.log('ipmi %s data=%s' % (name, ' '.join(
            '0x%02x' % b for b in data)))
        with self._lock:
            return super().handle_raw_request(request, session)

    def set_system_boot_options(self, request, session):
        flags = parse_boot_flags(request['data'])
        if flags is not None and len(request['data']) > 2:
            _valid, self.persistent, self._efi = flags
        return super().set_system_boot_options(request, session)

    def get_system_guid(self):
        return self.uuid

    def cold_reset(self):
        return 0

    # Power.
    def _running(self):
        return self.process is not None and self.process.poll() is None

    def get_power_state(self):
        return 'on' if self._running() else 'off'

    def is_active(self):
        return self._running()

    def power_on(self):
        if self._running():
            self.log('power on: already on')
            return 0
        device = self.next_boot_device or self.boot_device
        efi = (self.next_boot_efi if self.next_boot_device
               else self.boot_efi)
        self.next_boot_device = None
        self.next_boot_efi = None
        firmware, mismatch = boot_firmware(self.spec.firmware, efi)
        if mismatch:
            self.log('boot type mismatch: %s' % mismatch)
        self._start(device, firmware)
        return 0

    def power_off(self):
        if not self._running():
            self.log('power off: already off')
            return 0
        self.log('power off (hard)')
        self._stop()
        return 0

    def power_shutdown(self):
        if not self._running():
            self.log('soft off: already off')
            return 0
        self.log('soft off: ACPI power button')
        self._qmp('system_powerdown')
        return 0

    def power_reset(self):
        if not self._running():
            # IPMI: a reset of a powered off chassis is not a power on.
            self.log('reset: node is off')
            return 0xd5
        self.log('reset: system_reset')
        self._qmp('system_reset')
        return 0

    def power_cycle(self):
        if not self._running():
            self.log('power cycle: node is off')
            return 0xd5
        self.log('power cycle')
        self._stop()
        return self.power_on()

    # Boot device.
    def get_boot_device(self):
        return self.next_boot_device or self.boot_device

    def set_boot_device(self, bootdevice):
        device = (tb_node.BOOT_NETWORK
                  if bootdevice in ('network', 'pxe', 'net')
                  else tb_node.BOOT_DISK)
        efi, self._efi = self._efi, None
        if self.persistent:
            self.boot_device = device
            self.boot_efi = efi
            self.next_boot_device = None
        else:
            self.next_boot_device = device
            self.next_boot_efi = efi
        boot_type = {None: 'no boot type', True: 'EFI',
                     False: 'legacy'}[efi]
        self.log('boot device %s -> %s (%s, %s)' % (
            bootdevice, device,
            'persistent' if self.persistent else 'next boot only',
            boot_type))
        self.power_event('boot device', device=device,
                         persistent=self.persistent, efi=efi)

    # QEMU.
    def _start(self, device, firmware):
        serial_sock = self.serial.socket_path
        fw_sock = self.firmware.socket_path
        paused = self.post_delay > 0
        if firmware != tb_node.FIRMWARE_BIOS:
            tb_node.ensure_nvram(self.spec)
        cmd = tb_node.qemu_command(self.spec, device, serial_sock, fw_sock,
                                   paused=paused, firmware=firmware)
        if os.path.exists(self.spec.qmp_socket):
            os.unlink(self.spec.qmp_socket)
        qemu_log = open(self.spec.qemu_log, 'a')
        qemu_log.write('$ %s\n' % ' '.join(cmd))
        qemu_log.flush()
        self.process = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=qemu_log,
            stderr=subprocess.STDOUT, start_new_session=True)
        qemu_log.close()
        with open(self.spec.qemu_pid_file, 'w') as f:
            f.write('%d\n' % self.process.pid)
        self.log('power on: QEMU pid %d, boot %s, firmware %s%s' % (
            self.process.pid, device, firmware,
            ', POST delay %ss' % self.post_delay if paused else ''))
        self.power_event('started', boot=device, firmware=firmware)
        tb_node.append_line(self.spec.serial_log, '%s QEMU started, boot %s'
                            % (tb_node.TESTBED_MARK, device))
        threading.Thread(target=self._reap, args=(self.process,),
                         daemon=True).start()
        if paused:
            threading.Thread(target=self._post, args=(self.process,),
                             daemon=True).start()

    def _post(self, process):
        time.sleep(self.post_delay)
        if process.poll() is None:
            self._qmp('cont')
            self.log('POST delay over: CPUs running')

    def _reap(self, process):
        rc = process.wait()
        self.log('QEMU pid %d exited with %s' % (process.pid, rc))
        self.power_event('stopped', rc=rc)
        if rc > 0:
            # QEMU refused to start or died: say why, in the BMC's log.
            self.log('QEMU said: %s' % tb_node.tail(
                self.spec.qemu_log, 3).strip().replace('\n', ' | '))
        tb_node.append_line(self.spec.serial_log, '%s QEMU exited (%s)'
                            % (tb_node.TESTBED_MARK, rc))

    def _qmp(self, command):
        # One connection per command: QEMU and its socket come and go with
        # the power state. QEMU creates the socket a moment after it starts.
        deadline = time.monotonic() + 10
        while True:
            try:
                mon = qmp_legacy.QEMUMonitorProtocol(self.spec.qmp_socket)
                mon.connect()
                break
            except (OSError, qmp_legacy.QMPError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        try:
            return mon.cmd(command)
        finally:
            mon.close()

    def _stop(self):
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            self._qmp('quit')
        except Exception as exc:
            # QEMU may close the monitor before it answers 'quit'.
            if process.poll() is None:
                self.log('QMP quit: %r' % exc)
        try:
            process.wait(QUIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.log('QEMU did not quit, killing it')
            process.kill()
            process.wait(QUIT_TIMEOUT)

    def shutdown(self):
        """Stop QEMU and the consoles: the BMC process is going away."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            if self._running():
                self.process.kill()
                self.process.wait(QUIT_TIMEOUT)
                self.log('BMC exiting: QEMU killed')
        self.serial.close()
        self.firmware.close()


def read_power_log(path, since=None):
    """The power log's events, oldest first; since: a monotonic time.

    Each event is a dict with ``event`` ('chassis control' with its
    ``action``: on, off, cycle, reset, soft...; 'boot device'; 'started'
    with ``boot``: QEMU powered on; 'stopped': QEMU gone; 'unreachable',
    'reachable', 'dropped'), ``monotonic`` and ``time``.
    """
    events = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if since is None or event.get('monotonic', 0) >= since:
                    events.append(event)
    except FileNotFoundError:
        pass
    return events


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--spec', required=True,
                        help='the node, as written by NodeSpec.save')
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--log', required=True)
    parser.add_argument('--post-delay', type=float, default=0.0)
    parser.add_argument('--username', default='admin')
    parser.add_argument('--password', default='password')
    parser.add_argument('--power-log',
                        help='JSON lines of the power commands and their '
                             'effects (see read_power_log)')
    args = parser.parse_args(argv)

    bmc = QemuBmc(tb_node.NodeSpec.load(args.spec), args.port, args.log,
                  post_delay=args.post_delay, username=args.username,
                  password=args.password, power_log=args.power_log)

    def _terminate(signum, frame):
        bmc.shutdown()
        sys.exit(0)

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    signal.signal(signal.SIGUSR1, lambda s, f: bmc.set_unreachable(True))
    signal.signal(signal.SIGUSR2, lambda s, f: bmc.set_unreachable(False))
    try:
        bmc.listen(timeout=1)
    finally:
        bmc.shutdown()


if __name__ == '__main__':
    main()
