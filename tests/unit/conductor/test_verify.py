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

"""Verification targets, where they come from, and the probes, which run
against real sockets on the loopback interface.
"""

import socket
import threading
import time
import types
from unittest import mock

from ironic.common import exception
from ironic.common import neutron
from ironic.conductor import task_manager
from ironic.tests.unit.objects import utils as obj_utils
from openstack import exceptions as sdk_exceptions
from oslo_utils import uuidutils
from oslotest import base as test_base

from ironic_kexec import verify
from tests.unit.conductor import base

T = verify.Target


class ParseTestCase(test_base.BaseTestCase):

    def test_valid(self):
        for spec, target in [
                ('tcp:22', T('tcp', None, 22)),
                ('banner:22', T('banner', None, 22)),
                ('tcp:1', T('tcp', None, 1)),
                ('tcp:65535', T('tcp', None, 65535)),
                ('tcp:192.0.2.1:2222', T('tcp', '192.0.2.1', 2222)),
                ('banner:instance-1.example.org:22',
                 T('banner', 'instance-1.example.org', 22)),
                ('tcp:localhost:22', T('tcp', 'localhost', 22)),
                ('tcp:[2001:db8::1]:22', T('tcp', '2001:db8::1', 22)),
                ('banner:[::1]:8022', T('banner', '::1', 8022)),
                ('  tcp:22\n', T('tcp', None, 22))]:
            self.assertEqual(target, verify.parse(spec), spec)

    def test_none(self):
        for spec in ('none', ' none', 'none ', '\tnone\n'):
            self.assertIsNone(verify.parse(spec), repr(spec))

    def test_invalid(self):
        for spec in [
                # Not a spec at all.
                '', '   ', 'None', 'NONE', 'no ne', 'off', '22', 'tcp',
                'tcp:', 'TCP:22', 'udp:53', 'http:80', 'ssh:22',
                # Ports.
                'tcp:0', 'tcp:65536', 'tcp:99999', 'tcp:-1', 'tcp:+22',
                'tcp: 22', 'tcp:22x', 'tcp:2 2', 'tcp:0x16',
                'tcp:\u0662\u0662',              # ARABIC-INDIC "22"
                'tcp:\uff12\uff12',              # FULLWIDTH "22"
                'tcp:\u00b2',                    # SUPERSCRIPT TWO
                'tcp:host:', 'banner:[::1]:',
                # Hosts.
                'tcp::22', 'tcp:[]:22', 'tcp:[::1]22', 'tcp:[::1:22',
                'tcp:::1]:22x', 'tcp:a..b:22', 'tcp:.example:22',
                'tcp:host.:22', 'tcp:bad host:22', 'tcp:under_score:22',
                'tcp:h\u00f6st:22', 'tcp:%s:22' % ('a' * 64),
                'tcp:%s:22' % '.'.join(['a' * 60] * 5),
                'tcp:a/b:22', 'tcp:host:name:22', 'tcp:[fe80::1]x:22']:
            self.assertRaises(ValueError, verify.parse, spec)

    def test_invalid_message_names_spec(self):
        e = self.assertRaises(ValueError, verify.parse, 'tcp:65536')
        self.assertIn('tcp:65536', str(e))
        e = self.assertRaises(ValueError, verify.parse, 'tcp:bad host:22')
        self.assertIn('"bad host"', str(e))
        e = self.assertRaises(ValueError, verify.parse, 'tcp:[::1]22')
        self.assertIn('IPv6', str(e))

    def test_not_a_string(self):
        for spec in (None, 22, ['tcp:22'], {'tcp': 22}, b'tcp:22'):
            self.assertRaises(ValueError, verify.parse, spec)

    def test_format_target(self):
        for target, text in [
                (T('tcp', None, 22), 'tcp:22'),
                (T('banner', '192.0.2.1', 2222), 'banner:192.0.2.1:2222'),
                (T('tcp', 'host.example', 22), 'tcp:host.example:22'),
                (T('tcp', '2001:db8::1', 22), 'tcp:[2001:db8::1]:22')]:
            self.assertEqual(text, verify.format_target(target))

    def test_round_trip(self):
        for spec in ('tcp:22', 'banner:65535', 'tcp:192.0.2.1:1',
                     'banner:host-1.example:22', 'tcp:[::1]:22',
                     'banner:[2001:db8::42]:8022',
                     'tcp:[fe80::1%eth0]:22'):
            target = verify.parse(spec)
            self.assertEqual(spec, verify.format_target(target))
            self.assertEqual(target,
                             verify.parse(verify.format_target(target)))

    def test_check_target_spec(self):
        verify.check_target_spec('banner:22', 'somewhere')
        verify.check_target_spec('none', 'somewhere')
        e = self.assertRaises(exception.InvalidParameterValue,
                              verify.check_target_spec, 'tcp:0',
                              'driver_info/kexec_verify of node N')
        self.assertIn('driver_info/kexec_verify of node N', str(e))
        self.assertIn('tcp:0', str(e))


class _Server(object):
    """A listening socket on the loopback interface.

    :param action: None (never accept: the kernel completes the
        handshakes, nobody says anything), 'send' (accept and send one
        byte), or 'close' (accept and close without a word).
    """

    def __init__(self, test, action=None, family=socket.AF_INET,
                 host='127.0.0.1'):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        test.addCleanup(self.sock.close)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        if action is not None:
            self._stop = threading.Event()
            self.sock.settimeout(0.05)
            thread = threading.Thread(target=self._serve, args=(action,),
                                      daemon=True)
            thread.start()
            test.addCleanup(thread.join, 5)
            test.addCleanup(self._stop.set)

    def _serve(self, action):
        while not self._stop.is_set():
            try:
                conn, _addr = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted.append(conn)
            if action == 'send':
                conn.sendall(b'S')
            else:
                conn.close()
        for conn in self.accepted:
            conn.close()


class ProbeTestCase(test_base.BaseTestCase):

    def closed_port(self):
        """A port of 127.0.0.1 that refuses connections.

        Bound but not listening: the kernel answers with a reset, and the
        port stays ours for the test.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]

    def test_tcp_listening(self):
        server = _Server(self)
        self.assertEqual(
            {'n1': True},
            verify.probe_all({'n1': T('tcp', '127.0.0.1', server.port)}, 2))

    def test_tcp_listening_answers_at_once(self):
        server = _Server(self)
        start = time.monotonic()
        answers = verify.probe_all(
            {'n1': T('tcp', '127.0.0.1', server.port)}, 5)
        self.assertEqual({'n1': True}, answers)
        self.assertLess(time.monotonic() - start, 2)

    def test_banner_silent_peer(self):
        # Accepted (by the kernel), but nothing ever comes: a NAT proxy.
        server = _Server(self)
        start = time.monotonic()
        answers = verify.probe_all(
            {'n1': T('banner', '127.0.0.1', server.port)}, 0.3)
        self.assertEqual({'n1': False}, answers)
        # It waited for the byte until the end of the round.
        self.assertGreaterEqual(time.monotonic() - start, 0.25)

    def test_banner_peer_sends(self):
        server = _Server(self, action='send')
        start = time.monotonic()
        answers = verify.probe_all(
            {'n1': T('banner', '127.0.0.1', server.port)}, 5)
        self.assertEqual({'n1': True}, answers)
        self.assertLess(time.monotonic() - start, 2)

    def test_banner_peer_closes_without_a_byte(self):
        server = _Server(self, action='close')
        answers = verify.probe_all(
            {'n1': T('banner', '127.0.0.1', server.port)}, 2)
        self.assertEqual({'n1': False}, answers)

    def test_tcp_peer_that_sends_is_also_fine(self):
        server = _Server(self, action='send')
        self.assertEqual(
            {'n1': True},
            verify.probe_all({'n1': T('tcp', '127.0.0.1', server.port)}, 2))

    def test_closed_port(self):
        port = self.closed_port()
        start = time.monotonic()
        answers = verify.probe_all({'tcp': T('tcp', '127.0.0.1', port),
                                    'banner': T('banner', '127.0.0.1',
                                                port)}, 5)
        self.assertEqual({'tcp': False, 'banner': False}, answers)
        # A refusal ends the probe, it does not wait for the timeout.
        self.assertLess(time.monotonic() - start, 2)

    def test_unresolvable_host(self):
        for host in ('no-such-host.invalid', 'a' * 64 + '.invalid'):
            self.assertEqual(
                {'n1': False},
                verify.probe_all({'n1': T('tcp', host, 22)}, 0.5), host)

    def test_ipv6_loopback(self):
        try:
            server = _Server(self, action='send', family=socket.AF_INET6,
                             host='::1')
        except OSError as e:
            self.skipTest('no IPv6 loopback: %s' % e)
        self.assertEqual(
            {'tcp': True, 'banner': True},
            verify.probe_all({'tcp': T('tcp', '::1', server.port),
                              'banner': T('banner', '::1', server.port)}, 2))

    def test_no_targets(self):
        self.assertEqual({}, verify.probe_all({}, 0.5))

    def test_many_at_once(self):
        # 20 silent peers cost one timeout, not twenty.
        timeout = 0.5
        silent = _Server(self)
        talking = _Server(self, action='send')
        closed = self.closed_port()
        targets = {'silent-%d' % i: T('banner', '127.0.0.1', silent.port)
                   for i in range(20)}
        targets.update({'tcp-%d' % i: T('tcp', '127.0.0.1', silent.port)
                        for i in range(5)})
        targets.update({'talking-%d' % i: T('banner', '127.0.0.1',
                                            talking.port)
                        for i in range(5)})
        targets['closed'] = T('tcp', '127.0.0.1', closed)
        targets['unknown'] = T('tcp', 'no-such-host.invalid', 22)
        start = time.monotonic()
        answers = verify.probe_all(targets, timeout)
        elapsed = time.monotonic() - start
        self.assertLess(elapsed, 2 * timeout)
        self.assertGreaterEqual(elapsed, 0.9 * timeout)
        self.assertEqual(set(targets), set(answers))
        expected = {key: key.startswith(('tcp-', 'talking-'))
                    for key in targets}
        self.assertEqual(expected, answers)


class GetSpecTestCase(base.KexecTestCase):

    def node(self, instance_info=None, driver_info=None):
        return obj_utils.get_test_node(self.context,
                                       instance_info=instance_info or {},
                                       driver_info=driver_info or {})

    def test_default(self):
        self.assertEqual(('tcp:22', '[kexec]verify'),
                         verify.get_spec(self.node()))
        self.config(verify='banner:2222', group='kexec')
        self.assertEqual(('banner:2222', '[kexec]verify'),
                         verify.get_spec(self.node()))

    def test_driver_info_over_option(self):
        self.config(verify='banner:2222', group='kexec')
        self.assertEqual(
            ('tcp:8022', 'driver_info/kexec_verify'),
            verify.get_spec(self.node(driver_info={'kexec_verify':
                                                   'tcp:8022'})))

    def test_instance_info_over_driver_info(self):
        node = self.node(instance_info={'kexec_verify': 'none'},
                         driver_info={'kexec_verify': 'tcp:8022'})
        self.assertEqual(('none', 'instance_info/kexec_verify'),
                         verify.get_spec(node))

    def test_empty_values_do_not_count(self):
        node = self.node(instance_info={'kexec_verify': ''},
                         driver_info={'kexec_verify': 'tcp:8022'})
        self.assertEqual(('tcp:8022', 'driver_info/kexec_verify'),
                         verify.get_spec(node))
        node = self.node(instance_info={'kexec_verify': None},
                         driver_info={'kexec_verify': ''})
        self.assertEqual(('tcp:22', '[kexec]verify'), verify.get_spec(node))


class FakeNeutron(object):
    """Neutron's API as openstacksdk's network proxy presents it."""

    def __init__(self, ports=None, error=None):
        self.ports = ports or {}
        self.error = error
        self.asked = []

    def get_port(self, vif):
        self.asked.append(vif)
        if self.error is not None:
            raise self.error
        if vif not in self.ports:
            raise sdk_exceptions.ResourceNotFound('No Port found for %s'
                                                  % vif)
        return types.SimpleNamespace(id=vif, fixed_ips=self.ports[vif])


class ResolveTestCase(base.KexecTestCase):

    def setUp(self):
        super().setUp()
        self.neutron = FakeNeutron()
        patcher = mock.patch.object(neutron, 'get_client', autospec=True,
                                    return_value=self.neutron)
        self.get_client = patcher.start()
        self.addCleanup(patcher.stop)

    def node(self, instance_info=None, driver_info=None, **kwargs):
        node = self.create_node(uuid=uuidutils.generate_uuid(), **kwargs)
        if instance_info or driver_info:
            node.instance_info = dict(node.instance_info,
                                      **(instance_info or {}))
            node.driver_info = dict(node.driver_info, **(driver_info or {}))
            node.save()
        return node

    def add_port(self, node, vif=None):
        internal = {'tenant_vif_port_id': vif} if vif else {}
        self.port_count = getattr(self, 'port_count', 0) + 1
        return obj_utils.create_test_port(
            self.context, node_id=node.id, uuid=uuidutils.generate_uuid(),
            address='52:54:00:00:00:%02x' % self.port_count,
            internal_info=internal)

    def resolve(self, node):
        with task_manager.acquire(self.context, node.uuid,
                                  shared=True) as task:
            return verify.resolve(task)

    def test_host_in_spec(self):
        node = self.node(
            driver_info={'kexec_verify': 'banner:[2001:db8::5]:2222'},
            instance_info={'kexec_verify_address': '198.51.100.4'})
        target, source = self.resolve(node)
        self.assertEqual(T('banner', '2001:db8::5', 2222), target)
        self.assertEqual('driver_info/kexec_verify', source)
        self.get_client.assert_not_called()

    def test_instance_info_address(self):
        node = self.node(network_interface='flat',
                         instance_info={'kexec_verify_address':
                                        '198.51.100.4'})
        self.add_port(node, vif='vif-1')
        self.neutron.ports['vif-1'] = [{'ip_address': '192.0.2.7'}]
        target, source = self.resolve(node)
        # The explicit address wins over Neutron's, which is not asked.
        self.assertEqual(T('tcp', '198.51.100.4', 22), target)
        self.assertIn('[kexec]verify', source)
        self.assertIn('instance_info/kexec_verify_address', source)
        self.assertEqual([], self.neutron.asked)

    def test_instance_info_address_with_instance_spec(self):
        node = self.node(instance_info={'kexec_verify': 'banner:8022',
                                        'kexec_verify_address': '::1'})
        target, source = self.resolve(node)
        self.assertEqual(T('banner', '::1', 8022), target)
        self.assertTrue(source.startswith('instance_info/kexec_verify,'),
                        source)
        # Stored as text by the interface and parsed back by the probe.
        self.assertEqual(target,
                         verify.parse(verify.format_target(target)))

    def test_no_address(self):
        node = self.node()
        e = self.assertRaises(verify.NoAddress, self.resolve, node)
        self.assertIn('[kexec]verify is "tcp:22"', str(e))
        self.assertIn('kexec_verify_address', str(e))
        # The noop network interface knows no VIF: Neutron is not asked.
        self.get_client.assert_not_called()

    def test_no_address_names_spec_source(self):
        node = self.node(driver_info={'kexec_verify': 'banner:2222'})
        e = self.assertRaises(verify.NoAddress, self.resolve, node)
        self.assertIn('driver_info/kexec_verify is "banner:2222"', str(e))
        node = self.node(instance_info={'kexec_verify': 'tcp:8022'})
        e = self.assertRaises(verify.NoAddress, self.resolve, node)
        self.assertIn('instance_info/kexec_verify is "tcp:8022"', str(e))

    def test_neutron_vif_address(self):
        node = self.node(network_interface='flat')
        self.add_port(node, vif='vif-1')
        self.neutron.ports['vif-1'] = [{'subnet_id': 'subnet-1',
                                        'ip_address': '192.0.2.7'}]
        target, source = self.resolve(node)
        self.assertEqual(T('tcp', '192.0.2.7', 22), target)
        self.assertIn('[kexec]verify', source)
        self.assertIn('Neutron port vif-1', source)
        self.assertEqual(['vif-1'], self.neutron.asked)
        self.get_client.assert_called_once_with(context=mock.ANY)

    def test_neutron_first_vif_with_an_address(self):
        node = self.node(network_interface='flat')
        self.add_port(node)                    # no VIF at all
        self.add_port(node, vif='vif-gone')    # unknown to Neutron
        self.add_port(node, vif='vif-empty')   # no fixed IP
        self.add_port(node, vif='vif-2')
        self.neutron.ports.update({
            'vif-empty': [],
            'vif-2': [{'subnet_id': 'subnet-6'},
                      {'ip_address': '2001:db8::7'}]})
        target, source = self.resolve(node)
        self.assertEqual(T('tcp', '2001:db8::7', 22), target)
        self.assertIn('Neutron port vif-2', source)
        self.assertEqual({'vif-gone', 'vif-empty', 'vif-2'},
                         set(self.neutron.asked))

    def test_neutron_error(self):
        node = self.node(network_interface='flat')
        self.add_port(node, vif='vif-1')
        self.neutron.error = sdk_exceptions.HttpException('Service '
                                                          'Unavailable')
        e = self.assertRaises(verify.NoAddress, self.resolve, node)
        self.assertIn('[kexec]verify', str(e))
        self.assertEqual(['vif-1'], self.neutron.asked)

    def test_neutron_no_fixed_ip(self):
        node = self.node(network_interface='flat')
        self.add_port(node, vif='vif-1')
        self.neutron.ports['vif-1'] = []
        self.assertRaises(verify.NoAddress, self.resolve, node)

    def test_no_neutron_client(self):
        node = self.node(network_interface='flat')
        self.add_port(node, vif='vif-1')
        self.get_client.side_effect = exception.ConfigInvalid(
            error_msg='no [neutron] auth')
        self.assertRaises(verify.NoAddress, self.resolve, node)

    def test_none(self):
        node = self.node(instance_info={'kexec_verify': ' none '})
        self.assertEqual((None, 'instance_info/kexec_verify'),
                         self.resolve(node))
        self.config(verify='none', group='kexec')
        node = self.node()
        self.assertEqual((None, '[kexec]verify'), self.resolve(node))
        self.get_client.assert_not_called()

    def test_malformed_spec(self):
        # validate() refuses it; the option may still change under a node.
        self.config(verify='tcp:0', group='kexec')
        self.assertRaises(ValueError, self.resolve, self.node())

    def test_address_survives_storage(self):
        # The target is stored as text (format_target) and parsed back by
        # the periodic probe: an address parse() would refuse must be
        # refused here, so that the handoff is recorded as unverifiable
        # rather than a healthy instance power cycled as "not_verified".
        for address in ('my_host.example', ' 192.0.2.7', 'host name'):
            node = self.node(instance_info={'kexec_verify_address': address})
            try:
                target, _source = self.resolve(node)
            except (verify.NoAddress, ValueError):
                continue
            self.assertEqual(target,
                             verify.parse(verify.format_target(target)))
