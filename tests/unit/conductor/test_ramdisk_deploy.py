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

"""The ``ramdisk-kexec`` deploy interface, with Ironic's real iPXE boot
interface: the instance kernel and ramdisk are really cached in the HTTP
root and the iPXE configuration is really written.
"""

import hashlib
import os
from unittest import mock

import fixtures
from ironic.common import boot_devices
from ironic.common import driver_factory
from ironic.common import exception
from ironic.common import states
from ironic.conductor import task_manager
from ironic.drivers.modules import deploy_utils
from ironic.drivers.modules import ipmitool
from ironic.drivers.modules import ramdisk
from ironic import objects
from ironic.tests.unit.objects import utils as obj_utils
from oslo_utils import timeutils
from oslo_utils import uuidutils

from ipa_kexec import extension as kexec_extension
from ironic_kexec import protocol
from ironic_kexec import ramdisk_deploy
from ironic_kexec import record
from tests.unit.conductor import base
from tests.unit.conductor import fakes

HTTP_URL = 'http://127.0.0.1:8080'
KERNEL_DATA = b'instance kernel ' * 64
RAMDISK_DATA = b'instance ramdisk ' * 100
KEXEC_COMMANDS = ['kexec.load', 'kexec.execute']


class RamdiskKexecTestCase(base.KexecTestCase):

    def setUp(self):
        super().setUp()
        self.config(enabled_deploy_interfaces=['direct', 'kexec', 'ramdisk',
                                               'ramdisk-kexec'])
        self.config(enabled_boot_interfaces=['ipxe', 'pxe', 'fake'])
        self.config(fast_track=True, group='deploy')
        self.config(force_raw_images=False)
        self.config(debug=False)
        tmp = self.useFixture(fixtures.TempDir()).path
        self.http_root = os.path.join(tmp, 'httpboot')
        self.images = os.path.join(tmp, 'images')
        for path in (self.http_root, self.images,
                     os.path.join(tmp, 'tftpboot'), os.path.join(tmp, 'm')):
            os.makedirs(path)
        self.config(http_url=HTTP_URL, http_root=self.http_root,
                    group='deploy')
        self.config(tftp_root=os.path.join(tmp, 'tftpboot'),
                    tftp_master_path=os.path.join(tmp, 'm'), group='pxe')
        self.config(file_url_allowed_paths=[tmp], group='conductor')
        self.kernel = os.path.join(self.images, 'vmlinuz')
        self.ramdisk = os.path.join(self.images, 'initrd.img')
        for path, data in ((self.kernel, KERNEL_DATA),
                           (self.ramdisk, RAMDISK_DATA)):
            with open(path, 'wb') as f:
                f.write(data)

        # The BMC's boot device, which only hardware could really have.
        self.boot_devices = []
        patcher = mock.patch.object(
            ipmitool.IPMIManagement, 'set_boot_device', autospec=True,
            side_effect=lambda iface, task, device, persistent=False:
                self.boot_devices.append((device, persistent)))
        patcher.start()
        self.addCleanup(patcher.stop)

    def create_node(self, **kwargs):
        internal = {'agent_last_heartbeat': timeutils.utcnow().strftime(
            '%Y-%m-%dT%H:%M:%S.%f')}
        internal.update(kwargs.pop('driver_internal_info', {}))
        instance_info = {'kernel': 'file://' + self.kernel,
                         'ramdisk': 'file://' + self.ramdisk,
                         'ramdisk_kernel_arguments': 'console=ttyS0 rd.x=1'}
        instance_info.update(kwargs.pop('instance_info', {}))
        driver_info = {'ipmi_address': '127.0.0.1',
                       'deploy_kernel': 'http://127.0.0.1/k',
                       'deploy_ramdisk': 'http://127.0.0.1/r'}
        driver_info.update(kwargs.pop('driver_info', {}))
        values = {'uuid': uuidutils.generate_uuid(),
                  'deploy_interface': 'ramdisk-kexec',
                  'boot_interface': 'ipxe',
                  'instance_info': instance_info,
                  'driver_info': driver_info,
                  'driver_internal_info': internal}
        values.update(kwargs)
        node = super().create_node(**values)
        obj_utils.create_test_port(self.context, node_id=node.id,
                                   uuid=uuidutils.generate_uuid(),
                                   address='52:54:00:12:34:%02x' % node.id)
        # What the agent's kexec.load reports for these parameters.
        self.agent.load_result = {
            protocol.FIELD_KERNEL: self.url(node, 'kernel'),
            protocol.FIELD_INITRD: self.url(node, 'ramdisk'),
            protocol.FIELD_CMDLINE: 'root=/dev/ram0 text',
            protocol.FIELD_SOURCE: protocol.SOURCE_URL,
            protocol.FIELD_ROOT_DEVICE: None,
            protocol.FIELD_METHOD: protocol.METHOD_KEXEC_LOAD,
            protocol.FIELD_TIMINGS: {'download': 0.3, 'load': 0.4}}
        return node

    def url(self, node, label):
        return '%s/%s/%s' % (HTTP_URL, node.uuid, label)

    def deploy(self, node):
        with task_manager.acquire(self.context, node.uuid) as task:
            self.assertIsInstance(task.driver.deploy,
                                  ramdisk_deploy.RamdiskKexecDeploy)
            task.driver.deploy.deploy(task)
        node.refresh()
        return node.driver_internal_info.get(record.KEY)

    def history(self, node):
        return objects.NodeHistory.list_by_node_id(self.context, node.id)

    def cached(self, node, label):
        return os.path.join(self.http_root, node.uuid, label)

    def ipxe_ramdisk_kernel_line(self, node):
        """The kernel line of the boot_ramdisk entry Ironic wrote."""
        with open(os.path.join(self.http_root, node.uuid, 'config')) as f:
            lines = f.read().splitlines()
        start = lines.index(':boot_ramdisk')
        return next(line for line in lines[start:]
                    if line.startswith('kernel '))

    def assertBootPrepared(self, node):
        # What a later reboot network-boots: the instance, persistently.
        with open(self.cached(node, 'kernel'), 'rb') as f:
            self.assertEqual(KERNEL_DATA, f.read())
        with open(self.cached(node, 'ramdisk'), 'rb') as f:
            self.assertEqual(RAMDISK_DATA, f.read())
        with open(os.path.join(self.http_root, node.uuid, 'config')) as f:
            self.assertIn('goto boot_ramdisk', f.read())
        # Set at least once, by prepare_instance; the stock path of a
        # fall back sets it again.
        self.assertTrue(self.boot_devices)
        self.assertEqual({(boot_devices.PXE, True)}, set(self.boot_devices))

    def assertStockPath(self, node, rec, reason, mode='auto'):
        self.assertEqual(record.PATH_POWER_CYCLE, rec['path'])
        self.assertEqual(reason, rec['reason'])
        self.assertEqual(mode, rec['mode'])
        # Stock: hard power off through the BMC, network boot, power on.
        self.assertEqual([states.POWER_OFF, states.POWER_ON],
                         self.bmc.actions)
        self.assertNotIn('standby.power_off', self.agent.command_names())
        self.assertEqual(states.POWER_ON, node.power_state)
        self.assertIn((boot_devices.PXE, True), self.boot_devices)
        self.assertNotIn('agent_url', node.driver_internal_info)


class KexecPathTestCase(RamdiskKexecTestCase):

    def test_kexec(self):
        node = self.create_node()
        rec = self.deploy(node)

        self.assertEqual(KEXEC_COMMANDS, self.agent.command_names())
        params = self.agent.posts[0][1]
        kernel_url = self.url(node, 'kernel')
        ramdisk_url = self.url(node, 'ramdisk')
        self.assertEqual(
            {protocol.PARAM_KERNEL_URL: kernel_url,
             protocol.PARAM_INITRD_URL: ramdisk_url,
             protocol.PARAM_KERNEL_CHECKSUM:
                 hashlib.sha256(KERNEL_DATA).hexdigest(),
             protocol.PARAM_INITRD_CHECKSUM:
                 hashlib.sha256(RAMDISK_DATA).hexdigest(),
             protocol.PARAM_CHECKSUM_ALGO: 'sha256',
             protocol.PARAM_MAX_SIZE: len(RAMDISK_DATA),
             # [pxe]kernel_append_params (Ironic's default), the request
             # id Ironic adds, instance_info/ramdisk_kernel_arguments.
             protocol.PARAM_CMDLINE:
                 'root=/dev/ram0 text nofb vga=normal '
                 'ipa-global-request-id=%s console=ttyS0 rd.x=1'
                 % self.context.global_id,
             protocol.PARAM_BOOT_MODE: 'uefi',
             protocol.PARAM_FILE_SYSCALL: 'auto',
             protocol.PARAM_PROTOCOL_VERSION: protocol.PROTOCOL_VERSION},
            params)
        # The agent's own validation of kexec.load accepts them.
        kexec_extension._validate_load(None, **params)
        # The agent is told to fetch what the iPXE config boots.
        line = self.ipxe_ramdisk_kernel_line(node)
        self.assertIn(' %s ' % kernel_url, line)
        self.assertIn(' %s ' % params[protocol.PARAM_CMDLINE], line)
        self.assertEqual(({protocol.PARAM_DELAY: 0.05}, 'true'),
                         self.agent.posts[1][1:])

        self.assertEqual(record.PATH_KEXEC, rec['path'])
        self.assertIsNone(rec['reason'])
        self.assertEqual('auto', rec['mode'])
        self.assertEqual({'kernel': kernel_url, 'initrd': ramdisk_url,
                          'cmdline': 'root=/dev/ram0 text',
                          'source': 'url', 'method': 'kexec_load'},
                         rec['entry'])
        self.assertEqual({'checksum', 'load', 'execute', 'agent_gone'},
                         set(rec['timings']))
        self.assertTrue(all(t >= 0 for t in rec['timings'].values()))
        self.assertEqual({'download': 0.3, 'load': 0.4},
                         rec['agent_timings'])

        # Prepared as for a ramdisk deploy, yet never powered.
        self.assertBootPrepared(node)
        self.assertEqual([], self.bmc.actions)
        self.assertEqual(states.POWER_ON, node.power_state)
        for key in ('agent_url', 'agent_secret_token'):
            self.assertNotIn(key, node.driver_internal_info)

        events = self.history(node)
        self.assertEqual(['INFO'], [e.severity for e in events])
        self.assertEqual(states.DEPLOYING, events[0].event_type)
        self.assertIn(kernel_url, events[0].event)

    def test_kexec_command_line_is_the_ipxe_one(self):
        # Whatever Ironic puts on the boot_ramdisk kernel line, kexec gets,
        # and kexec_extra_args are appended by the agent as for disks.
        self.config(debug=True)
        self.config(extra_args='quiet', group='kexec')
        node = self.create_node(
            driver_info={'kernel_append_params': '%default% console=ttyS1',
                         'kexec_extra_args': 'panic=5'},
            instance_info={'ramdisk_kernel_arguments': 'ip=dhcp'})
        self.deploy(node)
        params = self.agent.posts[0][1]

        line = self.ipxe_ramdisk_kernel_line(node)
        args = line.split(' || ')[0].split(self.url(node, 'kernel'), 1)[1]
        args = args.split()
        self.assertEqual('initrd=ramdisk', args.pop())
        self.assertEqual(' '.join(args), params[protocol.PARAM_CMDLINE])
        self.assertEqual(
            'root=/dev/ram0 text nofb vga=normal console=ttyS1 ipa-debug=1 '
            'ipa-global-request-id=%s ip=dhcp' % self.context.global_id,
            params[protocol.PARAM_CMDLINE])
        self.assertEqual('quiet panic=5', params[protocol.PARAM_EXTRA_ARGS])

    def test_tenant_networks_configured_after_kexec(self):
        node = self.create_node(network_interface='flat')
        with task_manager.acquire(self.context, node.uuid) as task:
            with mock.patch.object(task.driver.network,
                                   'configure_tenant_networks',
                                   autospec=True) as configure:
                configure.side_effect = lambda task: self.assertEqual(
                    KEXEC_COMMANDS, self.agent.command_names())
                task.driver.deploy.deploy(task)
            configure.assert_called_once_with(task)

    def test_required_kexec_succeeds(self):
        node = self.create_node(driver_info={'kexec_mode': 'required'})
        rec = self.deploy(node)
        self.assertEqual(record.PATH_KEXEC, rec['path'])
        self.assertEqual('required', rec['mode'])


class FallbackTestCase(RamdiskKexecTestCase):

    def test_no_live_agent(self):
        self.config(fast_track_timeout=60, group='deploy')
        node = self.create_node(driver_internal_info={
            'agent_last_heartbeat': '2020-01-01T00:00:00.000000'})
        rec = self.deploy(node)
        self.assertStockPath(node, rec, protocol.REASON_NO_AGENT)
        self.assertEqual([], self.agent.posts)
        self.assertBootPrepared(node)

    def test_fast_track_disabled(self):
        self.config(fast_track=False, group='deploy')
        node = self.create_node()
        rec = self.deploy(node)
        self.assertStockPath(node, rec, protocol.REASON_NO_AGENT)
        self.assertEqual([], self.agent.posts)

    def test_boot_iso(self):
        node = self.create_node(instance_info={
            'kernel': None, 'ramdisk': None,
            'boot_iso': 'file://' + self.kernel})
        with mock.patch.object(ramdisk.RamdiskDeploy,
                               'deploy', autospec=True) as stock:
            rec = self.deploy(node)
        self.assertEqual(record.PATH_POWER_CYCLE, rec['path'])
        self.assertEqual(protocol.REASON_NOT_APPLICABLE, rec['reason'])
        self.assertIn('boot_iso', rec['message'])
        self.assertEqual([], self.agent.posts)
        stock.assert_called_once_with(mock.ANY, mock.ANY)

    def test_boot_interface_without_http(self):
        node = self.create_node(boot_interface='pxe')
        with mock.patch.object(ramdisk.RamdiskDeploy,
                               'deploy', autospec=True) as stock:
            rec = self.deploy(node)
        self.assertEqual(protocol.REASON_NOT_APPLICABLE, rec['reason'])
        self.assertIn('"pxe"', rec['message'])
        self.assertEqual([], self.agent.posts)
        stock.assert_called_once_with(mock.ANY, mock.ANY)

    def test_agent_without_extension(self):
        self.agent.extensions.discard('kexec')
        node = self.create_node()
        rec = self.deploy(node)
        self.assertStockPath(node, rec, protocol.REASON_AGENT_UNSUPPORTED)
        self.assertEqual(['kexec.load'], self.agent.command_names())
        self.assertNotIn('entry', rec)
        self.assertBootPrepared(node)
        events = self.history(node)
        self.assertEqual(['WARNING'], [e.severity for e in events])
        self.assertIn('agent_unsupported', events[0].event)

    def test_checksum_mismatch(self):
        self.agent.load_status = 'FAILED'
        self.agent.load_error = fakes.agent_error(
            protocol.REASON_CHECKSUM_MISMATCH,
            'the kernel from %s does not match its checksum' % HTTP_URL)
        node = self.create_node()
        rec = self.deploy(node)
        self.assertStockPath(node, rec, protocol.REASON_CHECKSUM_MISMATCH)
        self.assertIn('does not match its checksum', rec['message'])
        self.assertIn('checksum_mismatch', self.history(node)[0].event)

    def test_load_timeout(self):
        self.config(load_timeout=1, load_poll_interval=0.05, group='kexec')
        self.agent.load_running_polls = 10 ** 6
        node = self.create_node()
        rec = self.deploy(node)
        self.assertStockPath(node, rec, protocol.REASON_TIMEOUT)
        self.assertGreaterEqual(rec['timings']['load'], 1)

    def test_execute_failed(self):
        self.config(agent_gone_timeout=1, agent_gone_interval=0.1,
                    execute_delay=0, group='kexec')
        self.agent.answers_after_execute = None
        node = self.create_node()
        rec = self.deploy(node)
        self.assertEqual(KEXEC_COMMANDS, self.agent.command_names())
        self.assertGreaterEqual(rec['timings']['agent_gone'], 1)
        self.assertEqual(self.url(node, 'kernel'), rec['entry']['kernel'])
        self.assertEqual(protocol.SOURCE_URL, rec['entry']['source'])
        # Hard power off through the BMC, then the stock power on.
        self.assertStockPath(node, rec, protocol.REASON_EXECUTE_FAILED)

    def test_cached_file_gone(self):
        # The cached ramdisk disappears between prepare_instance and the
        # checksum (e.g. an image cache clean up on the conductor).
        node = self.create_node()
        with task_manager.acquire(self.context, node.uuid) as task:
            boot = task.driver.boot
            real = boot.prepare_instance
            calls = []

            def prepare_then_lose_ramdisk(task):
                real(task)
                if not calls:
                    os.unlink(self.cached(node, 'ramdisk'))
                calls.append(task)

            with mock.patch.object(boot, 'prepare_instance',
                                   side_effect=prepare_then_lose_ramdisk):
                task.driver.deploy.deploy(task)
        node.refresh()
        rec = node.driver_internal_info[record.KEY]
        self.assertStockPath(node, rec, protocol.REASON_NOT_APPLICABLE)
        self.assertIn('ramdisk', rec['message'])
        self.assertEqual([], self.agent.posts)
        # The stock path prepared the boot again: the file is back.
        self.assertEqual(2, len(calls))
        self.assertBootPrepared(node)

    def test_disabled(self):
        node = self.create_node(driver_info={'kexec_mode': 'disabled'})
        rec = self.deploy(node)
        self.assertStockPath(node, rec, protocol.REASON_DISABLED,
                             mode='disabled')
        self.assertEqual([], self.agent.posts)
        self.assertEqual(['INFO'], [e.severity for e in self.history(node)])

    def test_disabled_globally_even_if_required(self):
        self.config(enabled=False, group='kexec')
        node = self.create_node(instance_info={'kexec_mode': 'required'})
        rec = self.deploy(node)
        self.assertStockPath(node, rec, protocol.REASON_DISABLED,
                             mode='disabled')

    def test_network_isolation(self):
        node = self.create_node(network_interface='neutron')
        with mock.patch.object(ramdisk.RamdiskDeploy,
                               'deploy', autospec=True) as stock:
            rec = self.deploy(node)
        self.assertEqual(protocol.REASON_NETWORK_ISOLATION, rec['reason'])
        stock.assert_called_once_with(mock.ANY, mock.ANY)

    def test_required_fails_deploy(self):
        self.agent.load_status = 'FAILED'
        self.agent.load_error = fakes.agent_error(
            protocol.REASON_DOWNLOAD_FAILED, 'connection refused')
        node = self.create_node(driver_info={'kexec_mode': 'required'})
        self.assertRaises(exception.InstanceDeployFailure, self.deploy, node)
        node.refresh()
        self.assertEqual(states.DEPLOYFAIL, node.provision_state)
        self.assertIn('download_failed', node.last_error)
        self.assertIn('connection refused', node.last_error)
        rec = node.driver_internal_info[record.KEY]
        self.assertEqual(record.PATH_FAILED, rec['path'])
        self.assertEqual(protocol.REASON_DOWNLOAD_FAILED, rec['reason'])
        # Failed, not power cycled into the instance.
        self.assertNotIn(states.POWER_ON, self.bmc.actions)
        self.assertEqual('ERROR', self.history(node)[-1].severity)

    def test_required_without_agent_fails_deploy(self):
        self.config(fast_track=False, group='deploy')
        node = self.create_node(driver_info={'kexec_mode': 'required'})
        self.assertRaises(exception.InstanceDeployFailure, self.deploy, node)
        node.refresh()
        self.assertIn('no_agent', node.last_error)
        self.assertEqual([], self.agent.posts)


class PrepareTestCase(RamdiskKexecTestCase):

    def prepare(self, node):
        with task_manager.acquire(self.context, node.uuid) as task:
            task.driver.deploy.prepare(task)
        node.refresh()

    def test_live_agent_kept_running(self):
        node = self.create_node()
        self.prepare(node)
        self.assertEqual([], self.bmc.actions)
        self.assertEqual(states.POWER_ON, node.power_state)
        self.assertIn('agent_url', node.driver_internal_info)

    def test_no_live_agent_powered_off(self):
        self.config(fast_track=False, group='deploy')
        node = self.create_node()
        self.prepare(node)
        self.assertEqual([states.POWER_OFF], self.bmc.actions)

    def test_disabled_powered_off(self):
        node = self.create_node(driver_info={'kexec_mode': 'disabled'})
        self.prepare(node)
        self.assertEqual([states.POWER_OFF], self.bmc.actions)

    def test_then_deploy_by_kexec(self):
        node = self.create_node()
        self.prepare(node)
        rec = self.deploy(node)
        self.assertEqual(record.PATH_KEXEC, rec['path'])
        self.assertEqual([], self.bmc.actions)


class InterfaceTestCase(RamdiskKexecTestCase):

    def test_boot_option(self):
        for iface, option in (('ramdisk-kexec', 'ramdisk'),
                              ('ramdisk', 'ramdisk'),
                              ('kexec', 'local'),
                              ('direct', 'local')):
            node = self.create_node(deploy_interface=iface)
            self.assertEqual(option, deploy_utils.get_boot_option(node),
                             iface)

    def test_record_cleared_by_undeploy(self):
        node = self.create_node(provision_state=states.DELETING,
                                target_provision_state=states.AVAILABLE,
                                driver_internal_info={'kexec': {
                                    'path': record.PATH_KEXEC}})
        with task_manager.acquire(self.context, node.uuid) as task:
            with mock.patch.object(task.driver.boot, 'clean_up_instance',
                                   autospec=True):
                task.driver.deploy.tear_down(task)
        node.refresh()
        self.assertNotIn(record.KEY, node.driver_internal_info)
        self.assertEqual([states.POWER_OFF], self.bmc.actions)

    def test_deploy_steps(self):
        node = self.create_node()
        with task_manager.acquire(self.context, node.uuid) as task:
            steps = {s['step']: s['priority']
                     for s in task.driver.deploy.deploy_steps}
        # set_kexec_mode runs only when a deploy template names it.
        self.assertEqual({'deploy': 100, 'verify_kexec': 10,
                          'set_kexec_mode': 0}, steps)

    def test_properties(self):
        props = ramdisk_deploy.RamdiskKexecDeploy().get_properties()
        self.assertIn('kexec_mode', props)

    def test_validate_rejects_bad_mode(self):
        node = self.create_node(provision_state=states.AVAILABLE,
                                target_provision_state=None,
                                driver_info={'ipmi_address': '127.0.0.1',
                                             'deploy_kernel': 'http://h/k',
                                             'deploy_ramdisk': 'http://h/r',
                                             'kexec_mode': 'sometimes'})
        with task_manager.acquire(self.context, node.uuid) as task:
            self.assertRaisesRegex(exception.InvalidParameterValue,
                                   'kexec_mode', task.driver.deploy.validate,
                                   task)

    def test_validate_ok(self):
        node = self.create_node(provision_state=states.AVAILABLE,
                                target_provision_state=None,
                                driver_info={'ipmi_address': '127.0.0.1',
                                             'deploy_kernel': 'http://h/k',
                                             'deploy_ramdisk': 'http://h/r',
                                             'kexec_mode': 'required'})
        with task_manager.acquire(self.context, node.uuid) as task:
            task.driver.deploy.validate(task)

    def test_kexec_stays_the_default(self):
        node = obj_utils.get_test_node(self.context, driver='ipmi-kexec')
        driver_factory.check_and_update_node_interfaces(node)
        self.assertEqual('kexec', node.deploy_interface)
