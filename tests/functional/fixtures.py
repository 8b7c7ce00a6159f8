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

"""Test classes for deploys on the end-to-end testbed.

One testbed (Ironic, virtual BMC, QEMU node, HTTP server) per test class,
started in ``setUpClass`` and stopped in ``tearDownClass``. Each test
deploys once, prints the deploy's timeline, writes its artifacts and
undeploys. Artifacts go to ``artifacts/<TestClass>/`` at the top of the
tree (or ``$IRONIC_KEXEC_ARTIFACTS``): the whole run's logs (serial,
firmware, BMC, HTTP, Ironic) and, per test, the timeline, the node and
its history, and the part of the consoles that belongs to that deploy.
"""

import json
import os
import shutil
import sys
import unittest

import fixtures
import testtools
from testtools import content

import testbed
from testbed import node as tb_node
from testbed import scenario
from testbed import timeline


def artifacts_dir():
    return os.environ.get('IRONIC_KEXEC_ARTIFACTS') or os.path.join(
        testbed.repo_dir(), 'artifacts')


class TestbedTestCase(testtools.TestCase):
    """A test class with its own testbed; see the module docstring."""

    # Options for the plugin's [kexec] group and for Ironic, per class.
    kexec_options = {}
    ironic_options = {}
    provide_timeout = scenario.PROVIDE_TIMEOUT
    # The node's firmware (testbed.node.FIRMWARES).
    firmware = tb_node.FIRMWARE_BIOS
    # Ironic's boot interface for the node: ipxe, or pxe (Secure Boot).
    boot_interface = 'ipxe'
    _setup_error = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.workdir = os.path.join(artifacts_dir(), cls.__name__)
        cls.testbed = None
        if os.geteuid() != 0:
            # Building images (debootstrap, loop devices) needs root.
            cls._setup_error = 'the testbed needs root'
            return
        shutil.rmtree(cls.workdir, ignore_errors=True)
        os.makedirs(cls.workdir)
        cls.images = cls.build_images()
        cls.testbed = scenario.Testbed(
            cls.workdir, cls.images, kexec_options=cls.kexec_options,
            ironic_options=cls.ironic_options,
            provide_timeout=cls.provide_timeout,
            extra_image_dirs=cls.extra_image_dirs(cls.images),
            firmware=cls.firmware, boot_interface=cls.boot_interface)
        try:
            cls.testbed.start()
            cls.testbed.enrol()
        except BaseException:
            print(cls.testbed.logs_tail(), file=sys.stderr)
            cls.testbed.stop()
            raise

    @classmethod
    def build_images(cls):
        """The images of the class's testbed, built or reused."""
        # Imported here: building images needs root, and importing the
        # module must not, so that discovery works anywhere.
        from testbed import images
        return images.ensure_images()

    @classmethod
    def extra_image_dirs(cls, images):
        """More directories Ironic may take file:// images from."""
        return ()

    @classmethod
    def tearDownClass(cls):
        if cls.testbed is not None:
            cls.testbed.stop()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        if self._setup_error:
            raise unittest.SkipTest(self._setup_error)
        timeout = int(os.environ.get('OS_TEST_TIMEOUT') or 0)
        if timeout > 0:
            self.useFixture(fixtures.Timeout(timeout, gentle=True))

    def deploy(self, image, deploy_interface, instance_info=None,
               usable_timeout=scenario.USABLE_TIMEOUT):
        """Deploy, print and save the timeline, undeploy at cleanup."""
        tb = self.testbed
        self.addCleanup(tb.recover)
        result = tb.deploy(image, deploy_interface=deploy_interface,
                           instance_info=instance_info,
                           usable_timeout=usable_timeout)
        self._save(result)
        print(timeline.format_side_by_side([result]))
        print(result.summary())
        if result.provision_state != 'active' or result.usable is None:
            self.addDetail('logs', content.text_content(
                tb.logs_tail()))
        return result

    def _save(self, result, name=None):
        """The artifacts of a deploy (or, named, of another result)."""
        out = os.path.join(self.workdir, self.id().rsplit('.', 1)[-1],
                           name or '')
        os.makedirs(out, exist_ok=True)
        timeline.save(result, os.path.join(out, 'timeline.txt'))
        with open(os.path.join(out, 'node.json'), 'w') as f:
            json.dump({'node': result.node, 'history': result.history,
                       'events': result.events,
                       'instance_answer': result.instance_answer,
                       'instance_firmware': result.instance_firmware}, f,
                      indent=2, sort_keys=True, default=str)
        spec = self.testbed.spec
        for name, path in (('serial.log', spec.serial_log),
                           ('firmware.log', spec.firmware_log),
                           ('bmc.log', self.testbed.bmc_log)):
            with open(os.path.join(out, name), 'w') as f:
                for line in tb_node.read_log(path):
                    if line.monotonic >= result.started:
                        f.write('%.3f %s %s\n' % (line.monotonic, line.wall,
                                                  line.text))

    # Assertions shared by the tests.
    def assertDeployedActive(self, result):
        self.assertEqual('active', result.provision_state,
                         'last_error: %s' % result.last_error)
        self.assertIsNotNone(result.usable,
                             'the instance never answered on its port')
        self.assertIsNotNone(result.instance_answer)

    def assertKexecHandoff(self, result):
        """Active through a verified kexec: no firmware after the handoff."""
        self.assertDeployedActive(result)
        record = result.kexec_record
        self.assertIsNotNone(record, 'no kexec record on the node')
        self.assertEqual('kexec', record.get('path'), record)
        self.assertIsNone(record.get('reason'), record)
        # The agent was booted through the firmware once; the instance
        # was not: no firmware run and no power action after the handoff.
        self.assertEqual(1, result.firmware_runs)
        self.assertEqual(0, result.firmware_runs_after_handoff)
        self.assertEqual([], result.power_actions_after_handoff)
        # The instance's kernel printed after the handoff, before the
        # instance answered.
        kernel = result.events.get('instance kernel')
        self.assertIsNotNone(kernel)
        self.assertLess(result.events['handoff'], kernel)
        self.assertLess(kernel, result.usable)
        self.assertInstanceCmdlineClean(result)
        # The conductor saw the instance answer before it said active.
        verify = record.get('verify') or {}
        self.assertEqual('verified', verify.get('status'), record)
        self.assertGreater(record['timings']['verify'], 0)
        self.assertEqual(record['timings']['verify'], verify['seconds'])

    def assertStockPowerCycle(self, result):
        """Active by the stock deploy: no record, the firmware ran twice.

        Once for the agent, once for the instance after the handoff,
        which the BMC powered on.
        """
        self.assertDeployedActive(result)
        self.assertIsNone(result.kexec_record)
        self.assertNotEqual([], result.power_actions_after_handoff)
        self.assertEqual(1, result.firmware_runs_after_handoff)
        self.assertEqual(2, result.firmware_runs)
        self.assertInstanceCmdlineClean(result)

    def assertInstanceFirmware(self, result, secureboot):
        """The instance runs with the firmware's EFI runtime and ACPI.

        :param secureboot: the SecureBoot value the instance must read.
        """
        facts = result.instance_firmware
        self.assertIsNotNone(facts, 'the instance sent no firmware facts: '
                             '%r' % result.instance_answer)
        self.assertIs(True, facts.get('efi'), facts)
        self.assertGreater(facts.get('efivars', 0), 0, facts)
        self.assertIs(True, facts.get('efivars_read'), facts)
        self.assertEqual(secureboot, facts.get('secureboot'), facts)
        self.assertGreater(facts.get('acpi_tables', 0), 0, facts)

    def assertFellBack(self, result, reason):
        """Active by the power cycle, with ``reason`` on the node.

        The record and a node history event name the reason, and the
        instance was started through the BMC and the firmware.
        """
        self.assertDeployedActive(result)
        record = result.kexec_record
        self.assertIsNotNone(record, 'no kexec record on the node')
        self.assertEqual('power-cycle', record.get('path'), record)
        self.assertEqual(reason, record.get('reason'), record)
        self.assertTrue(
            [e for e in result.history_events() if reason in e],
            'no node history event names %s: %s'
            % (reason, result.history_events()))
        self.assertNotEqual([], result.power_actions_after_handoff)
        self.assertEqual(1, result.firmware_runs_after_handoff)

    def assertInstanceCmdlineClean(self, result):
        """The instance runs its own command line, not the agent's."""
        cmdline = result.instance_answer.split(
            scenario._PortProbe.MARK, 1)[1].split()
        self.assertIn('console=ttyS0', ' '.join(cmdline))
        self.assertEqual([], [a for a in cmdline if a.startswith('ipa-')])
        self.assertEqual([], [a for a in cmdline
                              if a.startswith('BOOTIF')])
