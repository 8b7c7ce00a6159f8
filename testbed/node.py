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
kind of machine) with one virtio disk and one virtio NIC on user
networking with ``restrict=on``: the guest reaches only what is forwarded
to 127.0.0.1 (see :func:`netdev`). Its firmware (:attr:`NodeSpec.firmware`)
is SeaBIOS (``bios``, the default), OVMF (``uefi``) or OVMF with Secure
Boot and Microsoft's keys enrolled (``uefi-secureboot``); an OVMF node has
its own copy of the variable store, kept across power cycles like a real
server's NVRAM (see :func:`ensure_nvram`).

Two consoles are captured, each line stamped on arrival with the host's
monotonic clock (comparable across processes) and wall time:

* the serial console (ttyS0), where the agent and the instance print;
* the firmware log: SeaBIOS's debug port (0x402), where SeaBIOS logs
  every firmware run (:data:`SEABIOS_MARKER`, once per run). Debian's
  OVMF prints nothing there; it writes the terminal escape
  :data:`OVMF_ESCAPE` on the serial console once per firmware run, when
  its console starts, and the serial capture writes :data:`OVMF_MARKER`
  into the firmware log for each line carrying it. So counting firmware
  log lines with :func:`is_firmware_run` counts power-on self-tests under
  either firmware, which is exactly what a kexec must avoid.

A log line is ``<monotonic> <wall time> <text>``. Lines the testbed adds
itself (QEMU started/exited) have text starting with :data:`TESTBED_MARK`.
"""

import dataclasses
import json
import os
import re
import shutil
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
SEABIOS_MARKER = 'Running on QEMU'
FIRMWARE_MARKER = SEABIOS_MARKER
# OVMF's terminal driver sets this mode (twice, on one line) when it
# starts the serial console, once per firmware run, cold or warm; a kexec
# does not run it. Nothing after the firmware (grub, Linux) writes it.
OVMF_ESCAPE = b'\x1b[=3h'
# What the serial capture writes into the firmware log for it.
OVMF_MARKER = 'OVMF console started'
FIRMWARE_MARKERS = (SEABIOS_MARKER, OVMF_MARKER)

FIRMWARE_BIOS = 'bios'
FIRMWARE_UEFI = 'uefi'
FIRMWARE_UEFI_SECUREBOOT = 'uefi-secureboot'
FIRMWARES = (FIRMWARE_BIOS, FIRMWARE_UEFI, FIRMWARE_UEFI_SECUREBOOT)
# Debian's ovmf package.
OVMF_DIR = '/usr/share/OVMF'


@dataclasses.dataclass(frozen=True)
class Ovmf:
    """One OVMF build: its code, its variable store template, its machine.

    ``secure``: the code is the SMM build that keeps the variable store
    out of the OS's reach; it needs SMM and a secure flash, and hangs
    silently without them (or on the ``pc`` machine).
    """

    code: str
    vars_template: str
    machine: str
    secure: bool = False


OVMF_BUILDS = {
    # The BIOS node's machine (pc): only the firmware differs.
    FIRMWARE_UEFI: Ovmf('OVMF_CODE_4M.fd', 'OVMF_VARS_4M.fd', 'pc'),
    # Microsoft's keys enrolled, Secure Boot on: what shim is signed for.
    FIRMWARE_UEFI_SECUREBOOT: Ovmf('OVMF_CODE_4M.secboot.fd',
                                   'OVMF_VARS_4M.ms.fd', 'q35,smm=on',
                                   secure=True),
}

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
    # One of FIRMWARES.
    firmware: str = FIRMWARE_BIOS
    # A directory QEMU's own TFTP server serves to the guest, or None.
    tftp_root: str = None
    # The DHCP boot file; None: the testbed's iPXE script over HTTP.
    bootfile: str = None

    @property
    def uefi(self):
        """Whether the node's firmware can boot in UEFI mode."""
        return self.firmware in OVMF_BUILDS

    @property
    def tftp_boot(self):
        """Whether the firmware's own PXE loads the boot file by TFTP.

        The NIC then has no option ROM (``romfile=``): QEMU's default one
        for virtio-net is iPXE, which would take over the network boot
        (and iPXE cannot chain-load shim under Secure Boot,
        rhboot/shim#760). OVMF's own virtio-net driver and PXE remain.
        """
        return bool(self.tftp_root and self.bootfile
                    and '://' not in self.bootfile)

    @property
    def nvram(self):
        """The node's own OVMF variable store (UEFI nodes)."""
        return os.path.join(self.workdir, 'OVMF_VARS.fd')

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
    bootfile = spec.bootfile or 'http://%s:%d/boot.ipxe' % (HOST_ALIAS,
                                                            spec.http_port)
    options = [
        'user', 'id=n0', 'restrict=on',
        'guestfwd=tcp:%s:%d-cmd:nc 127.0.0.1 %d' % (
            HOST_ALIAS, API_GUEST_PORT, spec.api_port),
        'guestfwd=tcp:%s:%d-cmd:nc 127.0.0.1 %d' % (
            HOST_ALIAS, spec.http_port, spec.http_port),
        'hostfwd=tcp:127.0.0.1:%d-:%d' % (spec.agent_port, AGENT_GUEST_PORT),
        'hostfwd=tcp:127.0.0.1:%d-:%d' % (spec.instance_port,
                                          INSTANCE_GUEST_PORT),
        'bootfile=%s' % bootfile,
    ]
    if spec.tftp_root:
        # QEMU's built-in TFTP server (10.0.2.2 to the guest): what a
        # firmware's own PXE client (no iPXE) loads its boot file from.
        options.append('tftp=%s' % spec.tftp_root)
    return ','.join(options)


def ensure_nvram(spec):
    """The node's variable store, copied from OVMF's template once.

    It then lives as long as the node's work directory: boot entries the
    agent writes with efibootmgr survive power cycles, as in NVRAM.
    """
    if not os.path.exists(spec.nvram):
        template = os.path.join(OVMF_DIR,
                                OVMF_BUILDS[spec.firmware].vars_template)
        shutil.copyfile(template, spec.nvram + '.tmp')
        os.rename(spec.nvram + '.tmp', spec.nvram)
    return spec.nvram


def _firmware_args(spec, firmware):
    """QEMU arguments of the firmware one power-on runs."""
    if firmware == FIRMWARE_BIOS:
        # QEMU's default machine (pc) and firmware (SeaBIOS).
        return []
    build = OVMF_BUILDS[firmware]
    args = [
        '-machine', build.machine,
        '-drive', 'if=pflash,format=raw,unit=0,readonly=on,file=%s'
        % os.path.join(OVMF_DIR, build.code),
        '-drive', 'if=pflash,format=raw,unit=1,file=%s' % spec.nvram,
    ]
    if build.secure:
        # Only SMM code may then write the variable store.
        args += ['-global', 'driver=cfi.pflash01,property=secure,value=on']
    return args


def _boot_device_args(spec, firmware, boot_device):
    """The disk and the NIC, in the order the boot device asks for."""
    drive = 'file=%s,if=virtio,format=raw,cache=unsafe' % spec.disk
    nic = 'virtio-net-pci,netdev=n0,mac=%s' % spec.mac
    if spec.tftp_boot:
        nic += ',romfile='
    if firmware == FIRMWARE_BIOS:
        order = 'n' if boot_device == BOOT_NETWORK else 'c'
        return ['-boot', 'order=%s' % order, '-drive', drive,
                '-netdev', netdev(spec), '-device', nic]
    # OVMF ignores -boot order: it follows the devices' bootindex (and
    # puts its NVRAM boot entries for those devices in that order).
    net_index, disk_index = (1, 2) if boot_device == BOOT_NETWORK else (2, 1)
    return [
        '-drive', drive.replace('if=virtio', 'if=none,id=disk0'),
        '-device', 'virtio-blk-pci,drive=disk0,bootindex=%d' % disk_index,
        '-netdev', netdev(spec),
        '-device', '%s,bootindex=%d' % (nic, net_index),
    ]


def qemu_command(spec, boot_device, serial_socket, firmware_socket,
                 paused=False, firmware=None):
    """The QEMU command line for one power-on.

    :param boot_device: BOOT_NETWORK or BOOT_DISK.
    :param serial_socket: unix socket the serial console connects to.
    :param firmware_socket: unix socket SeaBIOS's debug port connects to.
    :param paused: start with the CPUs stopped (emulated POST delay).
    :param firmware: the firmware this power-on runs (one of FIRMWARES);
        default: the node's own. A UEFI node can run SeaBIOS, as a server
        in legacy (CSM) mode (see testbed.bmc).
    """
    firmware = firmware or spec.firmware
    cmd = [
        spec.qemu, '-accel', 'tcg', '-m', str(spec.memory_mb),
        '-smp', '1', '-nodefaults', '-display', 'none', '-vga', 'none',
        '-no-user-config', '-name', 'ironic-kexec-testbed',
    ]
    cmd += _firmware_args(spec, firmware)
    cmd += _boot_device_args(spec, firmware, boot_device)
    cmd += [
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

    :param firmware_log: the serial console's capture writes
        :data:`OVMF_MARKER` there for each line with :data:`OVMF_ESCAPE`
        (which the cleaned serial log no longer shows).
    """

    def __init__(self, socket_path, log_path, firmware_log=None):
        self.socket_path = socket_path
        self.log_path = log_path
        self.firmware_log = firmware_log
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
                    self._write(log, line)
            if pending:
                self._write(log, pending)

    def _write(self, log, raw):
        if self.firmware_log and OVMF_ESCAPE in raw:
            append_line(self.firmware_log, OVMF_MARKER)
        log.write(stamp(_clean(raw)))

    def close(self):
        self._stopped = True
        try:
            self._server.close()
        finally:
            if os.path.exists(self.socket_path):
                os.unlink(self.socket_path)


_ANSI = re.compile(r'\x1b\[[0-9;?=]*[A-Za-z]|\x1b[()][A-Z0-9]|\r')


def is_firmware_run(text):
    """Whether a firmware log line marks a firmware run (any firmware)."""
    return any(marker in text for marker in FIRMWARE_MARKERS)


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
    """The first line at or after monotonic ``since`` containing pattern.

    :param pattern: a string, or a tuple of strings (any of them).
    """
    patterns = (pattern,) if isinstance(pattern, str) else pattern
    for line in read_log(path):
        if line.monotonic >= since and any(p in line.text
                                           for p in patterns):
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


def probe_port(port, timeout=2.0, whole=False):
    """One connection to 127.0.0.1:port; the first line it answers, or None.

    QEMU's hostfwd accepts connections even when nothing listens in the
    guest (it then closes them at once), so an answer is what counts.

    :param whole: return the whole answer, up to the guest closing the
        connection (or ``timeout`` without data), not only its first line.
    """
    data = b''
    try:
        with socket.create_connection(('127.0.0.1', port),
                                      timeout=timeout) as conn:
            while whole or b'\n' not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        # A whole answer may end by a timeout; a first line must come.
        if not (whole and b'\n' in data):
            return None
    if not data:
        return None
    text = data.decode('utf-8', 'replace')
    if not whole:
        text = text.split('\n', 1)[0]
    return text.strip()


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
