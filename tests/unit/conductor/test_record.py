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

"""The counters of ironic_kexec.record, through Ironic's own statsd
backend to a real UDP socket on the loopback: real decisions of the deploy
interface, the datagrams as statsd receives them.
"""

import errno
import socket
import time
from unittest import mock

from ironic.common import exception
from ironic.common import metrics_statsd
from ironic.common import metrics_utils
from ironic.common import states
from ironic.conductor import rpcapi
from ironic.conductor import task_manager
from ironic.drivers.modules import ipmitool
from oslo_utils import uuidutils

from ironic_kexec import deploy
from ironic_kexec import policy
from ironic_kexec import protocol
from ironic_kexec import record
from tests.unit.conductor import base
from tests.unit.conductor import fakes
from tests.unit.conductor import test_interface

# What reaches statsd with Ironic's defaults: the module's name, then the
# counter's.
PREFIX = 'ironic_kexec.record.'


class StatsdSocket(object):
    """A statsd server's socket on 127.0.0.1: the datagrams it received.

    Ironic's backend sends each metric with one ``sendto`` before the
    decision returns, and loopback delivers at once: what was sent is in
    the socket's buffer when :meth:`received` reads it.
    """

    def __init__(self, test):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        test.addCleanup(self.sock.close)
        self.sock.bind(('127.0.0.1', 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.05)

    def received(self):
        """The datagrams received since the last call, in order."""
        out = []
        while True:
            try:
                data, _addr = self.sock.recvfrom(65535)
            except socket.timeout:
                return out
            out.append(data.decode())

    def counters(self):
        """The counter datagrams received since the last call."""
        return [d for d in self.received() if d.endswith('|c')]


def counted(*names):
    return ['%s%s:1|c' % (PREFIX, name) for name in names]


class StatsdTestCase(base.KexecTestCase):
    """Ironic configured as a deployment sends to statsd, to our socket."""

    def setUp(self):
        super().setUp()
        self.statsd = StatsdSocket(self)
        self.config(backend='statsd', group='metrics')
        self.config(statsd_host='127.0.0.1', statsd_port=self.statsd.port,
                    group='metrics_statsd')

    def tear_down_agent(self, node):
        with task_manager.acquire(self.context, node.uuid) as task:
            task.driver.deploy.tear_down_agent(task)
        node.refresh()
        return node.driver_internal_info.get(record.KEY)


class CountersTestCase(StatsdTestCase):
    """The path of a deploy, counted."""

    def test_kexec(self):
        node = self.create_node()
        rec = self.tear_down_agent(node)
        self.assertEqual(record.PATH_KEXEC, rec['path'])
        self.assertEqual(['ironic_kexec.record.path.kexec:1|c'],
                         self.statsd.counters())

    def test_fallback_with_reason(self):
        self.agent.load_status = 'FAILED'
        self.agent.load_error = fakes.agent_error(
            protocol.REASON_NO_KERNEL, 'no kernel in /boot of /dev/sda2')
        node = self.create_node()
        rec = self.tear_down_agent(node)
        self.assertEqual(record.PATH_POWER_CYCLE, rec['path'])
        self.assertEqual(
            ['ironic_kexec.record.path.power-cycle.no_kernel:1|c'],
            self.statsd.counters())

    def test_fallback_disabled(self):
        node = self.create_node(driver_info={'kexec_mode': 'disabled'})
        self.tear_down_agent(node)
        self.assertEqual(counted('path.power-cycle.disabled'),
                         self.statsd.counters())

    def test_required_fails(self):
        self.agent.load_status = 'FAILED'
        self.agent.load_error = fakes.agent_error(
            protocol.REASON_LOCKDOWN, 'kernel lockdown: unsigned kernel')
        node = self.create_node(driver_info={'kexec_mode': 'required'})
        self.assertRaises(exception.InstanceDeployFailure,
                          self.tear_down_agent, node)
        node.refresh()
        self.assertEqual(states.DEPLOYFAIL, node.provision_state)
        self.assertEqual(counted('path.failed.lockdown'),
                         self.statsd.counters())

    def test_one_counter_per_deploy(self):
        # The fake agent kexecs once; the other nodes do not ask it.
        for i, mode in enumerate(('auto', 'disabled', 'disabled')):
            node = self.create_node(uuid=uuidutils.generate_uuid(),
                                    name='node-%d' % i,
                                    driver_info={'kexec_mode': mode})
            self.tear_down_agent(node)
        self.assertEqual(counted('path.kexec', 'path.power-cycle.disabled',
                                 'path.power-cycle.disabled'),
                         self.statsd.counters())

    # Names and configuration.

    def test_global_prefix(self):
        self.config(global_prefix='fleet', group='metrics')
        self.tear_down_agent(self.create_node())
        self.assertEqual(['fleet.ironic_kexec.record.path.kexec:1|c'],
                         self.statsd.counters())

    def test_prepend_host_does_not_apply(self):
        # As for Ironic's own module metrics: no host is passed.
        self.config(prepend_host=True, group='metrics')
        self.config(host='conductor-1.example.org')
        self.tear_down_agent(self.create_node())
        self.assertEqual(counted('path.kexec'), self.statsd.counters())

    def test_noop_backend_sends_nothing(self):
        self.config(backend='noop', group='metrics')
        rec = self.tear_down_agent(self.create_node())
        self.assertEqual(record.PATH_KEXEC, rec['path'])
        self.assertEqual([], self.statsd.received())

    def test_path_counter_names(self):
        self.assertEqual('path.kexec', record.path_counter('kexec'))
        for reason in protocol.REASONS:
            self.assertEqual('path.power-cycle.%s' % reason,
                             record.path_counter('power-cycle', reason))
            self.assertEqual('path.failed.%s' % reason,
                             record.path_counter('failed', reason))
        # Bounded: anything else is 'other'.
        self.assertEqual('path.power-cycle.other',
                         record.path_counter('power-cycle', 'a:b|c'))
        self.assertEqual('path.failed.other',
                         record.path_counter('failed', None))

    # A metrics backend that fails.

    def test_statsd_socket_error_does_not_break_the_deploy(self):
        # Ironic's statsd backend opens its socket outside of its own
        # error handling: the error reaches the caller.
        with mock.patch.object(metrics_statsd.StatsdMetricLogger,
                               '_open_socket', autospec=True,
                               side_effect=OSError(errno.EMFILE,
                                                   'Too many open files')):
            with mock.patch.object(record.LOG, 'warning',
                                   autospec=True) as warning:
                node = self.create_node()
                rec = self.tear_down_agent(node)
        self.assertEqual(record.PATH_KEXEC, rec['path'])
        self.assertEqual([], self.statsd.received())
        self.assertIn('Too many open files', str(warning.call_args))
        self.assertIn('path.kexec', str(warning.call_args))
        # Deployed as usual: the agent kexec'd, the BMC never touched.
        self.assertEqual([], self.bmc.actions)

    def test_metrics_error_does_not_break_a_fallback(self):
        self.agent.extensions.discard('kexec')
        with mock.patch.object(metrics_utils, 'get_metrics_logger',
                               autospec=True,
                               side_effect=exception.InvalidMetricConfig(
                                   reason='broken')):
            node = self.create_node()
            rec = self.tear_down_agent(node)
        self.assertEqual(record.PATH_POWER_CYCLE, rec['path'])
        self.assertEqual(protocol.REASON_AGENT_UNSUPPORTED, rec['reason'])
        self.assertEqual(states.POWER_OFF, self.bmc.state)


class VerificationCountersTestCase(StatsdTestCase):
    """The verification and recovery after a kexec, counted."""

    def setUp(self):
        super().setUp()
        self.config(verify_probe_timeout=0.5, group='kexec')
        self.instance = test_interface.Instance()
        self.addCleanup(self.instance.stop)
        patcher = mock.patch.object(
            rpcapi.ConductorAPI, 'continue_node_deploy', autospec=True)
        patcher.start()
        self.addCleanup(patcher.stop)
        self.conductor = test_interface.FakeConductor(self.dbapi)

    def kexec_node(self, verify=None, **kwargs):
        """A node the agent just kexec'd, and verify_kexec run."""
        target = 'banner:127.0.0.1:%d' % self.instance.port
        driver_info = {'ipmi_address': '127.0.0.1',
                       'deploy_kernel': 'http://127.0.0.1/k',
                       'deploy_ramdisk': 'http://127.0.0.1/r',
                       'kexec_verify': verify or target}
        driver_info.update(kwargs.pop('driver_info', {}))
        node = self.create_node(driver_info=driver_info, **kwargs)
        with task_manager.acquire(self.context, node.uuid) as task:
            task.driver.deploy.tear_down_agent(task)
            test_interface.run_verify_step(task)
        node.refresh()
        return node

    def run_periodic(self):
        deploy.KexecDeploy()._check_kexec_handoffs(self.conductor,
                                                   self.context)

    def expire(self, node, phase=record.VERIFY):
        node.refresh()
        rec = node.driver_internal_info[record.KEY]
        rec[phase]['deadline'] = time.time() - 1
        node.set_driver_internal_info(record.KEY, rec)
        node.save()

    def test_verified(self):
        self.kexec_node()
        # Waiting is no decision: nothing counted yet.
        self.assertEqual(counted('path.kexec'), self.statsd.counters())
        self.instance.start()
        self.run_periodic()
        self.assertEqual(counted('verify.verified'), self.statsd.counters())

    def test_unknown(self):
        self.kexec_node(verify='tcp:22')
        self.assertEqual(counted('path.kexec', 'verify.unknown'),
                         self.statsd.counters())

    def test_off(self):
        self.kexec_node(verify='none')
        self.assertEqual(counted('path.kexec', 'verify.off'),
                         self.statsd.counters())

    def test_not_verified_recovered(self):
        node = self.kexec_node()
        self.expire(node)
        self.run_periodic()
        self.instance.start()
        self.run_periodic()
        self.assertEqual(counted('path.kexec', 'verify.not_verified',
                                 'recovery.verified'),
                         self.statsd.counters())
        # The record's path changed, its counter did not.
        node.refresh()
        self.assertEqual(record.PATH_POWER_CYCLE,
                         node.driver_internal_info[record.KEY]['path'])

    def test_not_verified_not_recovered(self):
        node = self.kexec_node()
        self.expire(node)
        self.run_periodic()
        self.expire(node, record.RECOVERY)
        self.run_periodic()
        self.assertEqual(counted('path.kexec', 'verify.not_verified',
                                 'recovery.not_verified'),
                         self.statsd.counters())

    def test_recovery_power_cycle_fails(self):
        node = self.kexec_node()
        self.expire(node)
        with mock.patch.object(ipmitool.IPMIPower, 'reboot',
                               side_effect=RuntimeError('BMC unreachable')):
            self.run_periodic()
        self.assertEqual(counted('path.kexec', 'verify.not_verified',
                                 'recovery.failed'),
                         self.statsd.counters())

    def test_required_not_verified(self):
        node = self.kexec_node(driver_info={'kexec_mode': 'required'})
        self.expire(node)
        self.run_periodic()
        node.refresh()
        self.assertEqual(states.DEPLOYFAIL, node.provision_state)
        self.assertEqual(counted('path.kexec', 'verify.not_verified'),
                         self.statsd.counters())

    def test_breaker_opened(self):
        self.config(circuit_breaker_threshold=2, group='kexec')
        node = self.kexec_node(driver_info={policy.FAILURES: 1})
        self.expire(node)
        self.run_periodic()
        self.assertEqual(counted('path.kexec', 'verify.not_verified',
                                 'breaker.opened'),
                         self.statsd.counters())
        # The next deploy of the node power cycles, counted as such.
        with task_manager.acquire(self.context, node.uuid) as task:
            task.node.provision_state = states.DEPLOYING
            task.node.set_driver_internal_info('agent_url', base.AGENT_URL)
            task.node.save()
            task.driver.deploy.tear_down_agent(task)
        self.assertEqual(counted('path.power-cycle.circuit_open'),
                         self.statsd.counters())


class AttemptEntryTestCase(base.KexecTestCase):
    """What an agent says about a tenant's image is stored bounded."""

    def test_plain_entry_keeps_the_version_1_fields(self):
        attempt = record.Attempt('auto')
        attempt.loaded(fakes.load_result())
        self.assertEqual({'kernel', 'initrd', 'cmdline', 'source', 'method'},
                         set(attempt.entry))

    def test_several_initrds_uki_and_skipped_sources_recorded(self):
        result = fakes.load_result()
        result[protocol.FIELD_INITRDS] = ['/boot/intel-ucode.img',
                                          fakes.INITRD]
        result[protocol.FIELD_UKI] = '/efi/EFI/Linux/debian.efi'
        result[protocol.FIELD_SKIPPED] = [
            {'source': 'grub', 'reason': 'too_large', 'message': 'big'}]
        attempt = record.Attempt('auto')
        attempt.loaded(result)
        self.assertEqual(['/boot/intel-ucode.img', fakes.INITRD],
                         attempt.entry[protocol.FIELD_INITRDS])
        self.assertEqual('/efi/EFI/Linux/debian.efi',
                         attempt.entry[protocol.FIELD_UKI])
        self.assertEqual('too_large',
                         attempt.entry[protocol.FIELD_SKIPPED][0]['reason'])

    def test_oversized_values_are_cut(self):
        result = fakes.load_result()
        result[protocol.FIELD_CMDLINE] = 'x' * 100000
        result[protocol.FIELD_INITRDS] = ['/i%d' % i for i in range(1000)]
        result[protocol.FIELD_SKIPPED] = [{'source': object()}]
        attempt = record.Attempt('auto')
        attempt.loaded(result)
        self.assertEqual(record.MAX_RECORD_STRING,
                         len(attempt.entry[protocol.FIELD_CMDLINE]))
        self.assertEqual(record.MAX_RECORD_ITEMS,
                         len(attempt.entry[protocol.FIELD_INITRDS]))
        self.assertEqual([{'source': None}],
                         attempt.entry[protocol.FIELD_SKIPPED])
