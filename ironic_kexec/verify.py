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


"""Whether the instance answers after a kexec: targets and probes.

A target is where the instance should answer: ``tcp:[HOST:]PORT`` (the
instance accepts a TCP connection) or ``banner:[HOST:]PORT`` (it also
sends a first byte). The second exists for networks where a connection is
accepted on the instance's behalf whatever the instance does: NAT
proxies, load balancers, QEMU's user networking; there only the instance
itself can send data.

Probes of all pending nodes run at once in one thread, with non-blocking
sockets, so that one conductor's periodic check costs one probe timeout
whatever the number of nodes.
"""

import collections
import errno
import ipaddress
import selectors
import socket
import time

from ironic.common import exception
from ironic.common import neutron
from ironic.conf import CONF
from oslo_log import log

LOG = log.getLogger(__name__)

SPEC = 'kexec_verify'
# instance_info: the instance's address, for specs without a host.
ADDRESS = 'kexec_verify_address'

NONE = 'none'
KIND_TCP = 'tcp'
KIND_BANNER = 'banner'
KINDS = (KIND_TCP, KIND_BANNER)

Target = collections.namedtuple('Target', ['kind', 'host', 'port'])


def parse(spec):
    """A verification spec as (kind, host or None, port), or None.

    :raises: ValueError on a malformed spec.
    """
    if not isinstance(spec, str):
        raise ValueError('a verification must be a string, not %r' % (spec,))
    spec = spec.strip()
    if spec == NONE:
        return None
    kind, sep, rest = spec.partition(':')
    if not sep or kind not in KINDS:
        raise ValueError('"%s" is not "none", "tcp:[HOST:]PORT" or '
                         '"banner:[HOST:]PORT"' % spec)
    host = None
    if rest.startswith('['):
        # An IPv6 address in brackets, as in URLs.
        end = rest.find(']:')
        if end < 0:
            raise ValueError('"%s": an IPv6 host needs "[ADDR]:PORT"' % spec)
        host, port = rest[1:end], rest[end + 2:]
    elif ':' in rest:
        host, port = rest.rsplit(':', 1)
    else:
        port = rest
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError('"%s": the port must be a number from 1 to 65535'
                         % spec)
    if host is not None and not valid_host(host):
        raise ValueError('"%s": "%s" is not a host name or address'
                         % (spec, host))
    return Target(kind, host, int(port))


def valid_host(host):
    """Whether ``host`` is an IP address or a DNS host name."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.split('.')
    return (0 < len(host) <= 253 and host.isascii()
            and all(0 < len(label) <= 63
                    and label.replace('-', '').isalnum()
                    for label in labels))


def format_target(target):
    host = target.host
    if host and ':' in host:
        host = '[%s]' % host
    return ('%s:%s:%d' % (target.kind, host, target.port) if host
            else '%s:%d' % (target.kind, target.port))


def get_spec(node):
    """The verification spec of this deploy and where it came from."""
    for field, info in (('instance_info', node.instance_info),
                        ('driver_info', node.driver_info)):
        if info.get(SPEC):
            return info[SPEC], '%s/%s' % (field, SPEC)
    return CONF.kexec.verify, '[kexec]verify'


class NoAddress(Exception):
    """No address of the instance is known; the handoff is unverifiable."""


def resolve(task):
    """Where to check this deploy's instance.

    :returns: a Target with a host, and a description of where the spec
        and the address came from; or (None, description) when the
        verification is "none".
    :raises: NoAddress when the spec has no host and none is known.
    """
    node = task.node
    spec, spec_source = get_spec(node)
    target = parse(spec)
    if target is None:
        return None, spec_source
    if target.host:
        return target, spec_source
    address = node.instance_info.get(ADDRESS)
    if address:
        if not valid_host(address):
            raise NoAddress('instance_info/%s "%s" is not a host name or '
                            'address' % (ADDRESS, address))
        return (target._replace(host=address),
                '%s, address from instance_info/%s' % (spec_source, ADDRESS))
    address, source = _vif_address(task)
    if address:
        return target._replace(host=address), '%s, address from %s' % (
            spec_source, source)
    raise NoAddress('%s is "%s" and no address of the instance is known '
                    '(no instance_info/%s, no tenant VIF with a fixed IP)'
                    % (spec_source, spec, ADDRESS))


def _vif_address(task):
    """The first fixed IP of the node's tenant VIFs in Neutron."""
    network = task.driver.network
    vifs = []
    for obj in list(task.portgroups) + list(task.ports):
        vif = network.get_current_vif(task, obj)
        if vif:
            vifs.append(vif)
    if not vifs:
        return None, None
    try:
        client = neutron.get_client(context=task.context)
    except Exception as e:
        LOG.warning('No Neutron client to find the address of node '
                    '%(node)s: %(err)s', {'node': task.node.uuid, 'err': e})
        return None, None
    for vif in vifs:
        try:
            port = client.get_port(vif)
        except Exception as e:
            LOG.warning('Cannot read Neutron port %(vif)s of node %(node)s: '
                        '%(err)s', {'vif': vif, 'node': task.node.uuid,
                                    'err': e})
            continue
        for fixed in getattr(port, 'fixed_ips', None) or ():
            address = fixed.get('ip_address')
            if address and valid_host(address):
                return address, 'Neutron port %s' % vif
    return None, None


def probe_all(targets, timeout):
    """Probe many targets at once.

    :param targets: a mapping of keys to Targets with hosts (addresses;
        a name is resolved here, blocking, so prefer addresses).
    :param timeout: seconds the whole round may take.
    :returns: a mapping of the same keys to True (the instance answered)
        or False.
    """
    answered = {key: False for key in targets}
    sel = selectors.DefaultSelector()
    socks = {}
    try:
        for key, target in targets.items():
            sock = _connect(key, target)
            if sock is not None:
                socks[key] = sock
                sel.register(sock, selectors.EVENT_WRITE, key)
        deadline = time.monotonic() + timeout
        while socks:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for sel_key, _events in sel.select(left):
                key = sel_key.data
                sock = socks[key]
                done = _advance(sel, sock, key, targets[key], answered)
                if done:
                    sel.unregister(sock)
                    sock.close()
                    del socks[key]
    finally:
        for sock in socks.values():
            sel.unregister(sock)
            sock.close()
        sel.close()
    return answered


def _connect(key, target):
    try:
        infos = socket.getaddrinfo(target.host, target.port,
                                   type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        LOG.debug('Cannot resolve %(host)s for %(key)s: %(err)s',
                  {'host': target.host, 'key': key, 'err': e})
        return None
    family, socktype, proto, _name, address = infos[0]
    sock = socket.socket(family, socktype, proto)
    sock.setblocking(False)
    try:
        err = sock.connect_ex(address)
    except OSError as e:
        err = e.errno
    if err not in (0, errno.EINPROGRESS):
        sock.close()
        return None
    return sock


def _advance(sel, sock, key, target, answered):
    """One readiness event of a probe; True when the probe is over."""
    events = sel.get_key(sock).events
    if events == selectors.EVENT_WRITE:
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            return True
        if target.kind == KIND_TCP:
            answered[key] = True
            return True
        sel.modify(sock, selectors.EVENT_READ, key)
        return False
    try:
        data = sock.recv(1)
    except OSError:
        return True
    answered[key] = bool(data)
    return True


def check_target_spec(spec, where):
    """Raise InvalidParameterValue unless ``spec`` is a valid spec."""
    try:
        parse(spec)
    except ValueError as e:
        raise exception.InvalidParameterValue(
            '%(where)s: %(err)s' % {'where': where, 'err': e})
