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

"""The testbed's firmware plumbing: QEMU command lines, boot flags, replies.

Pure logic only; tests/functional/test_uefi.py boots the real firmware.
"""

import os
import shutil
import socket
import tempfile
import threading
import time
import unittest
from unittest import mock

from testbed import bmc as tb_bmc
from testbed import node as tb_node
from testbed import timeline


def _spec(workdir='/nodes/n1', **kwargs):
    return tb_node.NodeSpec(workdir=workdir, disk='/nodes/n1/disk.img',
                            mac='52:54:00:6b:78:01', api_port=1001,
                            http_port=1002, agent_port=1003,
                            instance_port=1004, **kwargs)


def _command(spec, boot=tb_node.BOOT_NETWORK, firmware=None):
    return tb_node.qemu_command(spec, boot, '/s/serial.sock', '/s/fw.sock',
                                firmware=firmware)


def _option(cmd, name):
    """The values of every ``name`` option of a command line."""
    return [cmd[i + 1] for i, word in enumerate(cmd) if word == name]


class BiosCommandTestCase(unittest.TestCase):
    """The default node is today's SeaBIOS node, argument for argument."""

    def test_default_firmware(self):
        self.assertEqual(tb_node.FIRMWARE_BIOS, _spec().firmware)
        self.assertFalse(_spec().uefi)

    def test_network_boot(self):
        cmd = _command(_spec())
        self.assertEqual(['order=n'], _option(cmd, '-boot'))
        self.assertEqual([], _option(cmd, '-machine'))
        self.assertEqual(
            ['file=/nodes/n1/disk.img,if=virtio,format=raw,cache=unsafe'],
            _option(cmd, '-drive'))
        self.assertIn('virtio-net-pci,netdev=n0,mac=52:54:00:6b:78:01',
                      _option(cmd, '-device'))
        self.assertNotIn('bootindex', ' '.join(cmd))
        self.assertNotIn('pflash', ' '.join(cmd))

    def test_disk_boot(self):
        cmd = _command(_spec(), boot=tb_node.BOOT_DISK)
        self.assertEqual(['order=c'], _option(cmd, '-boot'))

    def test_argument_order(self):
        cmd = _command(_spec())
        start = cmd.index('-boot')
        self.assertEqual(['-boot', '-drive', '-netdev', '-device', '-chardev'],
                         cmd[start:start + 10:2])


class UefiCommandTestCase(unittest.TestCase):

    def test_uefi_firmware(self):
        spec = _spec(firmware=tb_node.FIRMWARE_UEFI)
        self.assertTrue(spec.uefi)
        cmd = _command(spec)
        self.assertEqual(['pc'], _option(cmd, '-machine'))
        drives = _option(cmd, '-drive')
        self.assertIn('if=pflash,format=raw,unit=0,readonly=on,'
                      'file=/usr/share/OVMF/OVMF_CODE_4M.fd', drives)
        self.assertIn('if=pflash,format=raw,unit=1,'
                      'file=/nodes/n1/OVMF_VARS.fd', drives)
        self.assertEqual([], _option(cmd, '-global'))
        self.assertEqual([], _option(cmd, '-boot'))

    def test_secureboot_firmware(self):
        spec = _spec(firmware=tb_node.FIRMWARE_UEFI_SECUREBOOT)
        cmd = _command(spec)
        self.assertEqual(['q35,smm=on'], _option(cmd, '-machine'))
        self.assertIn('if=pflash,format=raw,unit=0,readonly=on,'
                      'file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd',
                      _option(cmd, '-drive'))
        self.assertEqual(['driver=cfi.pflash01,property=secure,value=on'],
                         _option(cmd, '-global'))

    def test_boot_order_by_bootindex(self):
        spec = _spec(firmware=tb_node.FIRMWARE_UEFI)
        net = _option(_command(spec, tb_node.BOOT_NETWORK), '-device')
        self.assertIn('virtio-blk-pci,drive=disk0,bootindex=2', net)
        self.assertIn('virtio-net-pci,netdev=n0,mac=52:54:00:6b:78:01,'
                      'bootindex=1', net)
        disk = _option(_command(spec, tb_node.BOOT_DISK), '-device')
        self.assertIn('virtio-blk-pci,drive=disk0,bootindex=1', disk)
        self.assertIn('virtio-net-pci,netdev=n0,mac=52:54:00:6b:78:01,'
                      'bootindex=2', disk)

    def test_uefi_node_in_legacy_mode(self):
        """A dual-mode node asked to boot legacy runs SeaBIOS."""
        spec = _spec(firmware=tb_node.FIRMWARE_UEFI)
        self.assertEqual(_command(_spec()),
                         _command(spec, firmware=tb_node.FIRMWARE_BIOS))


class NetdevTestCase(unittest.TestCase):

    def test_default(self):
        net = tb_node.netdev(_spec())
        self.assertIn('bootfile=http://10.0.2.100:1002/boot.ipxe', net)
        self.assertIn('restrict=on', net)
        self.assertNotIn('tftp=', net)

    def test_tftp_and_bootfile(self):
        net = tb_node.netdev(_spec(tftp_root='/srv/tftp',
                                   bootfile='shimx64.efi'))
        options = net.split(',')
        self.assertIn('tftp=/srv/tftp', options)
        self.assertIn('bootfile=shimx64.efi', options)
        self.assertNotIn('boot.ipxe', net)
        self.assertIn('restrict=on', options)

    def _nic(self, spec, boot=tb_node.BOOT_NETWORK):
        return [d for d in _option(_command(spec, boot), '-device')
                if d.startswith('virtio-net-pci')]

    def test_tftp_boot_nic_has_no_ipxe_rom(self):
        """Booting by TFTP, the firmware's own PXE: no option ROM."""
        spec = _spec(firmware=tb_node.FIRMWARE_UEFI_SECUREBOOT,
                     tftp_root='/srv/tftp', bootfile='shimx64.efi')
        self.assertTrue(spec.tftp_boot)
        for boot in (tb_node.BOOT_NETWORK, tb_node.BOOT_DISK):
            self.assertEqual(['virtio-net-pci,netdev=n0,'
                              'mac=52:54:00:6b:78:01,romfile=,bootindex=%d'
                              % (1 if boot == tb_node.BOOT_NETWORK else 2)],
                             self._nic(spec, boot))

    def test_ipxe_nodes_keep_the_rom(self):
        for spec in (_spec(), _spec(firmware=tb_node.FIRMWARE_UEFI),
                     _spec(firmware=tb_node.FIRMWARE_UEFI_SECUREBOOT),
                     # A TFTP root alone, the boot file still iPXE's.
                     _spec(firmware=tb_node.FIRMWARE_UEFI,
                           tftp_root='/srv/tftp'),
                     _spec(firmware=tb_node.FIRMWARE_UEFI,
                           tftp_root='/srv/tftp',
                           bootfile='http://10.0.2.100:1/boot.ipxe')):
            self.assertFalse(spec.tftp_boot, spec)
            for nic in self._nic(spec):
                self.assertNotIn('romfile', nic)


class NvramTestCase(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.ovmf = os.path.join(self.dir, 'ovmf')
        os.makedirs(self.ovmf)
        for name in ('OVMF_VARS_4M.fd', 'OVMF_VARS_4M.ms.fd'):
            with open(os.path.join(self.ovmf, name), 'w') as f:
                f.write(name)
        patcher = mock.patch.object(tb_node, 'OVMF_DIR', self.ovmf)
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_copied_once(self):
        spec = _spec(workdir=self.dir, firmware=tb_node.FIRMWARE_UEFI)
        self.assertEqual(spec.nvram, tb_node.ensure_nvram(spec))
        with open(spec.nvram) as f:
            self.assertEqual('OVMF_VARS_4M.fd', f.read())
        # What the guest wrote stays, power cycle after power cycle.
        with open(spec.nvram, 'w') as f:
            f.write('boot entries')
        tb_node.ensure_nvram(spec)
        with open(spec.nvram) as f:
            self.assertEqual('boot entries', f.read())

    def test_microsoft_keys(self):
        spec = _spec(workdir=self.dir,
                     firmware=tb_node.FIRMWARE_UEFI_SECUREBOOT)
        tb_node.ensure_nvram(spec)
        with open(spec.nvram) as f:
            self.assertEqual('OVMF_VARS_4M.ms.fd', f.read())

    def test_spec_round_trip(self):
        spec = _spec(workdir=self.dir, firmware=tb_node.FIRMWARE_UEFI,
                     tftp_root='/srv/tftp', bootfile='shimx64.efi')
        path = os.path.join(self.dir, 'node.json')
        spec.save(path)
        self.assertEqual(spec, tb_node.NodeSpec.load(path))


class FirmwareMarkerTestCase(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir, True)

    def test_is_firmware_run(self):
        self.assertTrue(tb_node.is_firmware_run('Running on QEMU (i440fx)'))
        self.assertTrue(tb_node.is_firmware_run(tb_node.OVMF_MARKER))
        self.assertFalse(tb_node.is_firmware_run('Linux version 6.1.0'))

    def test_serial_capture_marks_ovmf_runs(self):
        serial = os.path.join(self.dir, 'serial.log')
        firmware = os.path.join(self.dir, 'firmware.log')
        sock = os.path.join(self.dir, 'serial.sock')
        capture = tb_node.ConsoleCapture(sock, serial, firmware_log=firmware)
        self.addCleanup(capture.close)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(sock)
            # As OVMF writes it: twice on one line, then its messages.
            conn.sendall(b'\x1b[=3h\x1b[=3h\x1b[2J\x1b[01;01H\r\n'
                         b'BdsDxe: loading Boot0001\r\n'
                         b'Linux version 6.1.0\r\n')
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if len(tb_node.read_log(serial)) == 3:
                break
            time.sleep(0.05)
        texts = [line.text for line in tb_node.read_log(serial)]
        self.assertEqual(['', 'BdsDxe: loading Boot0001',
                          'Linux version 6.1.0'], texts)
        runs = [line for line in tb_node.read_log(firmware)
                if tb_node.is_firmware_run(line.text)]
        self.assertEqual(1, len(runs))


class BootFlagsTestCase(unittest.TestCase):

    def test_ironic_uefi_persistent(self):
        # Ironic 39, ipmitool management, boot mode uefi, persistent:
        # raw 0x00 0x08 0x05 0xe0 0x04 0x00 0x00 0x00 (network).
        self.assertEqual((True, True, True),
                         tb_bmc.parse_boot_flags([5, 0xe0, 4, 0, 0, 0]))

    def test_ironic_uefi_next_boot(self):
        self.assertEqual((True, False, True),
                         tb_bmc.parse_boot_flags([5, 0xa0, 8, 0, 0, 0]))

    def test_ipmitool_legacy(self):
        # chassis bootdev pxe options=persistent
        self.assertEqual((True, True, False),
                         tb_bmc.parse_boot_flags([5, 0xc0, 4, 0, 0]))

    def test_other_parameters(self):
        self.assertIsNone(tb_bmc.parse_boot_flags([3, 8]))
        self.assertIsNone(tb_bmc.parse_boot_flags([5]))

    def test_firmware_choice(self):
        bios, uefi, sb = tb_node.FIRMWARES
        self.assertEqual((bios, None), tb_bmc.boot_firmware(bios, None))
        self.assertEqual((bios, None), tb_bmc.boot_firmware(bios, False))
        firmware, mismatch = tb_bmc.boot_firmware(bios, True)
        self.assertEqual(bios, firmware)
        self.assertIn('BIOS-only', mismatch)
        self.assertEqual((uefi, None), tb_bmc.boot_firmware(uefi, None))
        self.assertEqual((uefi, None), tb_bmc.boot_firmware(uefi, True))
        # Dual mode: legacy boots through the CSM.
        self.assertEqual((bios, None), tb_bmc.boot_firmware(uefi, False))
        self.assertEqual((sb, None), tb_bmc.boot_firmware(sb, True))
        firmware, mismatch = tb_bmc.boot_firmware(sb, False)
        self.assertEqual(sb, firmware)
        self.assertIn('Secure Boot', mismatch)


class _Session(object):
    def __init__(self):
        self.responses = []

    def send_ipmi_response(self, data=None, code=0):
        self.responses.append(code)


class BmcBootTypeTestCase(unittest.TestCase):
    """The BMC keeps the boot type with the boot device it came with."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir, True)
        spec = _spec(workdir=self.dir, firmware=tb_node.FIRMWARE_UEFI)
        self.bmc = tb_bmc.QemuBmc(spec, tb_node.free_port(),
                                  os.path.join(self.dir, 'bmc.log'))
        self.addCleanup(self.bmc.shutdown)
        self.started = []
        self.bmc._start = lambda device, firmware: self.started.append(
            (device, firmware))

    def _set(self, *data):
        session = _Session()
        self.bmc.set_system_boot_options({'data': list(data)}, session)
        self.assertEqual([0], session.responses)

    def test_efi_persistent(self):
        self._set(5, 0xe0, 4, 0, 0, 0)
        self.assertEqual(tb_node.BOOT_NETWORK, self.bmc.boot_device)
        self.assertIs(True, self.bmc.boot_efi)
        self.bmc.power_on()
        self.assertEqual([(tb_node.BOOT_NETWORK, tb_node.FIRMWARE_UEFI)],
                         self.started)
        with open(os.path.join(self.dir, 'bmc.log')) as f:
            self.assertIn('(persistent, EFI)', f.read())

    def test_legacy_on_dual_mode_node(self):
        self._set(5, 0xc0, 8, 0, 0)
        self.bmc.power_on()
        self.assertEqual([(tb_node.BOOT_DISK, tb_node.FIRMWARE_BIOS)],
                         self.started)

    def test_next_boot_only(self):
        self._set(5, 0xc0, 8, 0, 0)
        self._set(5, 0xa0, 4, 0, 0, 0)
        self.assertEqual(tb_node.BOOT_NETWORK, self.bmc.next_boot_device)
        self.bmc.power_on()
        self.bmc.process = None
        self.bmc.power_on()
        self.assertEqual([(tb_node.BOOT_NETWORK, tb_node.FIRMWARE_UEFI),
                          (tb_node.BOOT_DISK, tb_node.FIRMWARE_BIOS)],
                         self.started)

    def test_no_flags_yet(self):
        self.bmc.power_on()
        self.assertEqual([(tb_node.BOOT_NETWORK, tb_node.FIRMWARE_UEFI)],
                         self.started)


class InstanceReplyTestCase(unittest.TestCase):

    CMDLINE = ('IRONIC-KEXEC-TESTBED BOOT_IMAGE=/boot/vmlinuz-6.1.0-56-amd64 '
               'root=UUID=0a1b ro console=ttyS0,115200')

    def test_with_firmware_facts(self):
        first, facts = timeline.parse_instance_reply(
            self.CMDLINE + '\nIRONIC-KEXEC-TESTBED-FIRMWARE efi=yes '
            'efivars=41 efivars_read=yes secureboot=0 acpi_tables=8\n')
        self.assertEqual(self.CMDLINE, first)
        self.assertEqual({'efi': True, 'efivars': 41, 'efivars_read': True,
                          'secureboot': 0, 'acpi_tables': 8}, facts)

    def test_bios_instance(self):
        _first, facts = timeline.parse_instance_reply(
            self.CMDLINE + '\nIRONIC-KEXEC-TESTBED-FIRMWARE efi=no '
            'efivars=0 efivars_read=no secureboot=- acpi_tables=5')
        self.assertEqual({'efi': False, 'efivars': 0, 'efivars_read': False,
                          'secureboot': None, 'acpi_tables': 5}, facts)

    def test_first_line_only(self):
        """An instance from before the firmware facts."""
        self.assertEqual((self.CMDLINE, None),
                         timeline.parse_instance_reply(self.CMDLINE))

    def test_none(self):
        self.assertEqual((None, None), timeline.parse_instance_reply(None))


class ProbePortTestCase(unittest.TestCase):
    """A probe reads the first line, or the whole answer when asked."""

    def setUp(self):
        self.server = socket.socket()
        self.server.bind(('127.0.0.1', 0))
        self.server.listen(4)
        self.addCleanup(self.server.close)
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b'first line\n')
                time.sleep(0.2)
                conn.sendall(b'second line\n')

    def test_first_line(self):
        self.assertEqual('first line', tb_node.probe_port(self.port))

    def test_whole(self):
        self.assertEqual('first line\nsecond line',
                         tb_node.probe_port(self.port, whole=True))
