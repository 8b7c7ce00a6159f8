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

"""The QEMU node: its command line, its consoles and waiting on them.

The node is ``qemu-system-x86_64 -accel tcg`` (KVM guests hang on this
kind of machine) with SeaBIOS, one virtio disk and one virtio NIC on user
networking with ``restrict=on``: the guest reaches only what is forwarded
to 127.0.0.1 (see :func:`netdev`).

Two consoles are captured, each line stamped on arrival with the host's
monotonic clock (comparable across processes) and wall time:

* the serial console (ttyS0), where the agent and the instance print;
* SeaBIOS's debug port (0x402): SeaBIOS logs every firmware run there,
  so counting :data:`FIRMWARE_MARKER` lines counts power-on self-tests,
  which is exactly what a kexec must avoid.

A log line is ``<monotonic> <wall time> <text>``. Lines the testbed adds
itself (QEMU started/exited) have text starting with :data:`TESTBED_MARK`.
"""

import dataclasses
import json
import os
import re
import socket
import threading
import time

# Fixed addresses of the design: the guest sees the host's loopback
# services at this address, through QEMU's guestfwd.
HOST_ALIAS = '10.0.2.100'
API_GUEST_PORT = 6385
AGENT_GUEST_PORT = 9999
INSTANCE_GUEST_PORT = 7000

TESTBED_MARK = '[testbed]'
# SeaBIOS prints its version banner twice per run (the second time on
# its text console); this line comes exactly once per firmware run.
FIRMWARE_MARKER = 'Running on QEMU'

BOOT_NETWORK = 'network'
BOOT_DISK = 'hd'


@dataclasses.dataclass
class NodeSpec:
    """Everything needed to start the node; shared with the BMC process."""

    workdir: str
    disk: str
    mac: str
    api_port: int
    http_port: int
    agent_port: int
    instance_port: int
    memory_mb: int = 2048
    qemu: str = 'qemu-system-x86_64'

    @property
    def serial_log(self):
        return os.path.join(self.workdir, 'serial.log')

    @property
    def firmware_log(self):
        return os.path.join(self.workdir, 'firmware.log')

    @property
    def qmp_socket(self):
        return os.path.join(self.workdir, 'qmp.sock')

    @property
    def qemu_pid_file(self):
        return os.path.join(self.workdir, 'qemu.pid')

    @property
    def qemu_log(self):
        return os.path.join(self.workdir, 'qemu.log')

    def save(self, path):
        with open(path, 'w') as f:
            json.dump(dataclasses.asdict(self), f, indent=2)

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls(**json.load(f))


def free_port():
    """A TCP port free on 127.0.0.1 (and, for the BMC, the UDP one too)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(('127.0.0.1', 0))
            port = tcp.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind(('127.0.0.1', port))
        except OSError:
            continue
        return port


def netdev(spec):
    """QEMU's user network: only loopback services, only forwarded ones."""
    bootfile = 'http://%s:%d/boot.ipxe' % (HOST_ALIAS, spec.http_port)
    return ','.join([
        'user', 'id=n0', 'restrict=on',
        'guestfwd=tcp:%s:%d-cmd:nc 127.0.0.1 %d' % (
            HOST_ALIAS, API_GUEST_PORT, spec.api_port),
        'guestfwd=tcp:%s:%d-cmd:nc 127.0.0.1 %d' % (
            HOST_ALIAS, spec.http_port, spec.http_port),
        'hostfwd=tcp:127.0.0.1:%d-:%d' % (spec.agent_port, AGENT_GUEST_PORT),
        'hostfwd=tcp:127.0.0.1:%d-:%d' % (spec.instance_port,
                                          INSTANCE_GUEST_PORT),
        'bootfile=%s' % bootfile,
    ])


def qemu_command(spec, boot_device, serial_socket, firmware_socket,
                 paused=False):
    """The QEMU command line for one power-on.

    :param boot_device: BOOT_NETWORK or BOOT_DISK.
    :param serial_socket: unix socket the serial console connects to.
    :param firmware_socket: unix socket SeaBIOS's debug port connects to.
    :param paused: start with the CPUs stopped (emulated POST delay).
    """
    order = 'n' if boot_device == BOOT_NETWORK else 'c'
    cmd = [
        spec.qemu, '-accel', 'tcg', '-m', str(spec.memory_mb),
        '-smp', '1', '-nodefaults', '-display', 'none', '-vga', 'none',
        '-no-user-config', '-name', 'ironic-kexec-testbed',
        '-boot', 'order=%s' % order,
        '-drive', 'file=%s,if=virtio,format=raw,cache=unsafe' % spec.disk,
        '-netdev', netdev(spec),
        '-device', 'virtio-net-pci,netdev=n0,mac=%s' % spec.mac,
        '-chardev', 'socket,id=ser0,path=%s' % serial_socket,
        '-serial', 'chardev:ser0',
        '-chardev', 'socket,id=fw0,path=%s' % firmware_socket,
        '-device', 'isa-debugcon,iobase=0x402,chardev=fw0',
        '-qmp', 'unix:%s,server=on,wait=off' % spec.qmp_socket,
    ]
    if paused:
        cmd.append('-S')
    return cmd


def qmp(spec, command, **arguments):
    """One QMP command to the node's QEMU; its answer.

    For fault injection (``stop``/``cont`` pause and resume the CPUs,
    ``set_link`` takes the NIC's link down or up); the BMC drives power
    through the same socket, one short connection per command, so both
    can use it. Raises OSError when QEMU is not running.
    """
    from qemu.qmp import legacy as qmp_legacy
    mon = qmp_legacy.QEMUMonitorProtocol(spec.qmp_socket)
    try:
        mon.connect()
    except qmp_legacy.QMPError as e:
        raise OSError('QMP %s: %s' % (command, e))
    try:
        return mon.cmd(command, **arguments)
    finally:
        mon.close()


def kill_recorded_qemu(spec):
    """Kill the QEMU the BMC recorded, if it still runs (cleanup only)."""
    try:
        with open(spec.qemu_pid_file) as f:
            pid = int(f.read().strip())
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            cmdline = f.read()
    except (OSError, ValueError):
        return
    # The pid may have been reused: kill only our node's QEMU.
    if spec.qmp_socket.encode() in cmdline:
        os.kill(pid, 9)


def stamp(text):
    """A log line for ``text``, stamped now."""
    now = time.time()
    wall = time.strftime('%Y-%m-%dT%H:%M:%S', time.localtime(now))
    return '%.3f %s.%03d %s\n' % (time.monotonic(), wall,
                                  int(now * 1000) % 1000, text)


def append_line(path, text):
    with open(path, 'a') as f:
        f.write(stamp(text))


class ConsoleCapture(object):
    """A unix socket QEMU's chardev connects to, logged line by line.

    It outlives QEMU: each power-on connects anew and appends to the same
    log, so one log covers a whole deploy across power cycles.
    """

    def __init__(self, socket_path, log_path):
        self.socket_path = socket_path
        self.log_path = log_path
        if os.path.exists(socket_path):
            os.unlink(socket_path)
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(socket_path)
        self._server.listen(1)
        self._stopped = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stopped:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with conn:
                self._read(conn)

    def _read(self, conn):
        pending = b''
        with open(self.log_path, 'a', buffering=1) as log:
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    data = b''
                if not data:
                    break
                pending += data
                # Stamp each line when its end arrives: that is when the
                # guest finished printing it.
                *lines, pending = pending.split(b'\n')
                for line in lines:
                    log.write(stamp(_clean(line)))
            if pending:
                log.write(stamp(_clean(pending)))

    def close(self):
        self._stopped = True
        try:
            self._server.close()
        finally:
            if os.path.exists(self.socket_path):
                os.unlink(self.socket_path)


_ANSI = re.compile(r'\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r')


def _clean(raw):
    return _ANSI.sub('', raw.decode('utf-8', 'replace')).rstrip()


@dataclasses.dataclass
class LogLine:
    monotonic: float
    wall: str
    text: str


def read_log(path):
    """The stamped lines of a console or BMC log, oldest first."""
    lines = []
    try:
        with open(path, errors='replace') as f:
            for raw in f:
                parts = raw.rstrip('\n').split(' ', 2)
                try:
                    mono = float(parts[0])
                except (ValueError, IndexError):
                    continue
                lines.append(LogLine(mono, parts[1] if len(parts) > 1
                                     else '', parts[2] if len(parts) > 2
                                     else ''))
    except FileNotFoundError:
        pass
    return lines


def find_line(path, pattern, since=0.0):
    """The first line at or after monotonic ``since`` containing pattern."""
    for line in read_log(path):
        if line.monotonic >= since and pattern in line.text:
            return line
    return None


def wait_for_line(path, pattern, timeout, since=0.0, alive=None):
    """Wait for a console line containing ``pattern``; return it.

    :param alive: optional callable; waiting stops early when it returns
        False (e.g. the deploy failed), and None is returned.
    :raises TimeoutError: when nothing came within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = find_line(path, pattern, since)
        if line is not None:
            return line
        if alive is not None and not alive():
            return None
        time.sleep(0.5)
    raise TimeoutError('no line with %r in %s after %ss' % (
        pattern, path, timeout))


def probe_port(port, timeout=2.0):
    """One connection to 127.0.0.1:port; the first line it answers, or None.

    QEMU's hostfwd accepts connections even when nothing listens in the
    guest (it then closes them at once), so an answer is what counts.
    """
    try:
        with socket.create_connection(('127.0.0.1', port),
                                      timeout=timeout) as conn:
            data = b''
            while b'\n' not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    if not data:
        return None
    return data.decode('utf-8', 'replace').strip()


def wait_for_port(port, timeout, interval=0.25):
    """Wait until 127.0.0.1:port answers a line; (monotonic, line)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = probe_port(port)
        if answer:
            return time.monotonic(), answer
        time.sleep(interval)
    raise TimeoutError('127.0.0.1:%d did not answer in %ss'
                       % (port, timeout))


def tail(path, lines=40):
    """The last lines of a file, for failure messages."""
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:])
    except OSError as exc:
        return '(cannot read %s: %s)\n' % (path, exc)
