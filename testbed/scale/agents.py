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

"""Simulated machines and their agents, many in one process (asyncio).

Each machine follows the power events of its virtual BMC
(:mod:`testbed.scale.bmcs`): powered on with the boot device
``network`` it starts an agent after ``agent_boot`` seconds; with
``hd`` it starts the instance after ``boot_time`` seconds; powered off
or reset, whatever ran stops.

The agent speaks IPA's real protocols, as ironic-python-agent 13 does:

* to Ironic: ``GET /`` (API version discovery), ``GET /v1/lookup`` with
  the MAC and node UUID until the node is found (random exponential
  back-off, as IPA's tenacity retry), then ``POST /v1/heartbeat/{uuid}``
  with ``callback_url``, ``agent_token`` and ``agent_version``, at IPA's
  intervals: 0.3 to 0.6 times the ``heartbeat_timeout`` the lookup
  returned, and a forced heartbeat after each asynchronous command, at
  most one per 5 seconds (IPA's ``IronicPythonAgentHeartbeater``);
* to the conductor, on its own port: ``POST /v1/commands/?wait=`` and
  ``GET /v1/commands/`` with the ``agent_token``; results serialized as
  IPA's (``id``, ``command_name``, ``command_status``,
  ``command_error``, ``command_result``), "agent is busy" as a 409,
  unknown extensions as 404 and unknown commands as 400.

Commands: ``deploy.get_deploy_steps`` (the steps of IPA's generic
hardware manager), ``deploy.execute_deploy_step`` (``write_image``
takes ``write_time`` seconds), ``standby.get_partition_uuids``,
``standby.sync``, ``standby.power_off`` (the machine powers off; the
BMC is told), ``system.lockdown``, and the ``kexec`` extension:
``kexec.get_version``, ``kexec.load`` (answers as
:mod:`ipa_kexec.extension` does, refusing a conductor version it does
not serve) and ``kexec.execute``, after which the agent falls silent
(its listening socket and connections closed) and the instance opens
its port ``boot_time`` seconds later.

Why asyncio: 500 agents each with a listening socket, a heartbeat loop
and commands in flight are 1,500 and more concurrent waits; as
coroutines they cost a few KiB each and one thread, so the process's
own CPU use stays small and measurable next to the conductor's.

Every request an agent makes or answers is counted per node; the
counts go to the ``--stats`` JSON file.
"""

import argparse
import asyncio
import collections
import datetime
import ipaddress
import json
import os
import random
import signal
import sys
import time
import urllib.parse
import uuid as uuidlib

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography import x509

from ironic_kexec import protocol

AGENT_VERSION = '13.0.0'
# IPA's API versions (ironic_python_agent.ironic_api_client).
LOOKUP_API_VERSION = '1.62'
HEARTBEAT_API_VERSION = '1.68'
MIN_HEARTBEAT_INTERVAL = 5

# What IPA's GenericHardwareManager offers as deploy steps (IPA 13.0.0).
GENERIC_DEPLOY_STEPS = [
    {'step': 'erase_devices_metadata', 'priority': 0, 'interface': 'deploy',
     'reboot_requested': False},
    {'step': 'apply_configuration', 'priority': 0, 'interface': 'raid',
     'reboot_requested': False,
     'argsinfo': {'raid_config': {'description': 'The RAID configuration '
                                  'to apply.', 'required': True},
                  'delete_existing': {'description': 'Delete existing RAID '
                                      'configuration first.',
                                      'required': False}}},
    {'step': 'clean_uefi_nvram', 'priority': 0, 'interface': 'deploy',
     'reboot_requested': False},
    {'step': 'write_image', 'priority': 0, 'interface': 'deploy',
     'reboot_requested': False},
    {'step': 'inject_files', 'priority': 0, 'interface': 'deploy',
     'reboot_requested': False},
    {'step': 'execute_bootc_install', 'priority': 0, 'interface': 'deploy',
     'reboot_requested': False},
]
HARDWARE_MANAGER_VERSION = {'generic_hardware_manager': '1.2'}

RUNNING = 'RUNNING'
SUCCEEDED = 'SUCCEEDED'
FAILED = 'FAILED'

# Sync commands answer at once; async ones run in the background.
SYNC, ASYNC = 'sync', 'async'


class RestError(Exception):
    """An IPA RESTError: its HTTP status and faultstring."""

    def __init__(self, status, message, details):
        super().__init__('%s: %s' % (message, details))
        self.status = status
        self.type = 'CommandExecutionError'
        self.message = message
        self.details = details

    def serialize(self):
        return {'type': self.type, 'code': self.status,
                'message': self.message, 'details': self.details}


def fault(status, faultstring):
    """IPA's error body (api/app.py format_exception)."""
    return status, {'faultcode': 'Server' if status >= 500 else 'Client',
                    'faultstring': faultstring}


class Command(object):
    """One command result, serialized as IPA's BaseCommandResult."""

    def __init__(self, name, params):
        self.id = str(uuidlib.uuid4())
        self.command_name = name
        self.command_params = params
        self.command_status = RUNNING
        self.command_error = None
        self.command_result = None
        self.done = asyncio.Event()

    def finish(self, result=None, error=None):
        if error is not None:
            self.command_status = FAILED
            self.command_error = error
        else:
            self.command_status = SUCCEEDED
            self.command_result = result
        self.done.set()

    def serialize(self):
        return {'id': self.id, 'command_name': self.command_name,
                'command_status': self.command_status,
                'command_error': self.command_error,
                'command_result': self.command_result}


def boot_entry():
    """What ``kexec.load`` found in the (simulated) image."""
    return {
        protocol.FIELD_KERNEL: '/boot/vmlinuz-6.1.0-scale',
        protocol.FIELD_INITRD: '/boot/initrd.img-6.1.0-scale',
        protocol.FIELD_INITRDS: ['/boot/initrd.img-6.1.0-scale'],
        protocol.FIELD_UKI: None,
        protocol.FIELD_CMDLINE: 'root=UUID=0b1c2d3e-0000-4000-8000-'
                                '000000000001 ro console=ttyS0',
        protocol.FIELD_SOURCE: protocol.SOURCE_GRUB,
        protocol.FIELD_ROOT_DEVICE: '/dev/sda1',
        protocol.FIELD_SKIPPED: [],
    }


def make_certificate(directory, name):
    """A self-signed certificate for 127.0.0.1, as IPA's auto-TLS makes.

    ironic_python_agent.tls_utils: an EC key (P-384, IPA's default
    curve), the IP address as a critical subjectAltName, SHA-512.

    :returns: (PEM text, certificate path, key path)
    """
    key = ec.generate_private_key(ec.SECP384R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME,
                                            name)])
    now = datetime.datetime.now(tz=datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(seconds=60))
            .not_valid_after(now + datetime.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]),
                critical=True)
            .sign(key, hashes.SHA512()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path = os.path.join(directory, name + '.crt')
    key_path = os.path.join(directory, name + '.key')
    with open(cert_path, 'wb') as f:
        f.write(pem)
    with open(key_path, 'wb') as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return pem.decode(), cert_path, key_path


class Agent(object):
    """One simulated ironic-python-agent (auto-TLS, as IPA by default)."""

    def __init__(self, machine):
        self.machine = machine
        self.sim = machine.sim
        self.token = None
        self.heartbeat_timeout = None
        self.commands = collections.OrderedDict()
        self.loaded = False
        self.server = None
        self.writers = set()
        self.tasks = set()
        self.alive = True
        self.heartbeat_forced = False
        self.previous_heartbeat = 0.0
        self.interval = 0.0

    def count(self, key):
        self.machine.counts[key] += 1

    # Life cycle.

    async def start(self):
        import ssl
        self.certificate, cert_path, key_path = make_certificate(
            self.sim.cert_dir, self.machine.uuid)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        self.server = await asyncio.start_server(
            self._serve, '127.0.0.1', self.machine.agent_port,
            reuse_address=True, ssl=context)
        self._spawn(self._run())

    def _spawn(self, coro):
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def stop(self):
        """The agent's OS is gone: nothing answers any more."""
        if not self.alive:
            return
        self.alive = False
        if self.server is not None:
            self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()
        for task in list(self.tasks):
            if task is not asyncio.current_task():
                task.cancel()

    # Talking to Ironic.

    async def _run(self):
        await self.sim.api('GET', '/', self.machine, 'api_version')
        await self._lookup()
        while self.alive:
            elapsed = time.monotonic() - self.previous_heartbeat
            wait = min(MIN_HEARTBEAT_INTERVAL,
                       max(0.0, self.interval - elapsed))
            await asyncio.sleep(wait)
            elapsed = time.monotonic() - self.previous_heartbeat
            if (elapsed >= self.interval
                    or (self.heartbeat_forced
                        and elapsed > MIN_HEARTBEAT_INTERVAL)):
                await self._heartbeat()
            await asyncio.sleep(0.1)

    async def _lookup(self):
        query = urllib.parse.urlencode({'addresses': self.machine.mac,
                                        'node_uuid': self.machine.uuid})
        attempt = 0
        while self.alive:
            status, body = await self.sim.api(
                'GET', '/v1/lookup?' + query, self.machine, 'lookup',
                version=LOOKUP_API_VERSION)
            if status == 200 and isinstance(body, dict) and 'node' in body:
                config = body.get('config') or {}
                self.token = config.get('agent_token')
                self.heartbeat_timeout = config.get('heartbeat_timeout', 300)
                return
            # tenacity.wait_random_exponential(min=1, max=60)
            attempt += 1
            await asyncio.sleep(random.uniform(
                0, min(60, max(1, 2 ** attempt))))

    async def _heartbeat(self):
        body = {'callback_url': 'https://127.0.0.1:%d'
                % self.machine.agent_port,
                'agent_token': self.token,
                'agent_version': AGENT_VERSION,
                'agent_verify_ca': self.certificate}
        status, _ = await self.sim.api(
            'POST', '/v1/heartbeat/%s' % self.machine.uuid, self.machine,
            'heartbeat', body=body, version=HEARTBEAT_API_VERSION)
        if status == 202:
            self.heartbeat_forced = False
            self.interval = self.heartbeat_timeout * random.uniform(0.3, 0.6)
        else:
            if status == 409:
                self.count('heartbeat_conflict')
            else:
                self.count('heartbeat_error')
            self.interval = MIN_HEARTBEAT_INTERVAL * random.uniform(1.0, 2.0)
        self.previous_heartbeat = time.monotonic()

    def force_heartbeat(self):
        self.heartbeat_forced = True

    # The agent's REST API.

    async def _serve(self, reader, writer):
        self.writers.add(writer)
        try:
            while self.alive:
                request = await read_request(reader)
                if request is None:
                    break
                status, body = await self.handle(*request)
                if not self.alive:
                    break
                write_response(writer, status, body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError,
                asyncio.CancelledError, OSError):
            pass
        finally:
            self.writers.discard(writer)
            writer.transport.abort()

    async def handle(self, method, target, body):
        url = urllib.parse.urlsplit(target)
        query = dict(urllib.parse.parse_qsl(url.query))
        path = url.path.rstrip('/')
        if path in ('/v1/commands', '/commands'):
            if query.get('agent_token') != self.token:
                self.count('agent_401')
                return fault(401, '401 Unauthorized: Token invalid.')
            if method == 'GET':
                self.count('agent_GET_commands')
                return 200, {'commands': [c.serialize() for c in
                                          self.commands.values()]}
            if method == 'POST':
                return await self.run_command(
                    body, query.get('wait', '').lower() == 'true')
        if path in ('', '/v1/status', '/status') and method == 'GET':
            self.count('agent_GET_status')
            return 200, {'started_at': 0, 'version': AGENT_VERSION}
        self.count('agent_404')
        return fault(404, '404 Not Found')

    async def run_command(self, body, wait):
        if (not isinstance(body, dict) or 'name' not in body
                or not isinstance(body.get('params'), dict)):
            return fault(400, '400 Bad Request: Missing or invalid name or '
                              'params')
        name = body['name']
        self.count('agent_POST_' + name)
        if self.commands:
            last = next(reversed(self.commands.values()))
            if last.command_status == RUNNING:
                self.count('agent_busy')
                return fault(409, 'Agent is busy: executing command %s'
                             % last.command_name)
        extension, _, command_name = name.partition('.')
        handlers = self.sim.handlers.get(extension)
        if handlers is None:
            return fault(404, 'Extension %s not found' % extension)
        entry = handlers.get(command_name)
        if entry is None:
            return fault(400, 'Invalid command: Unknown command: %s'
                         % command_name)
        kind, func = entry
        command = Command(command_name, body['params'])
        self.commands[command.id] = command
        if kind == SYNC:
            await self._execute(command, func)
        else:
            self._spawn(self._execute(command, func, forced=True))
            if wait:
                await command.done.wait()
        return 200, command.serialize()

    async def _execute(self, command, func, forced=False):
        try:
            result = await func(self, **command.command_params)
            command.finish(result=result)
        except RestError as e:
            command.finish(error=e.serialize())
        except asyncio.CancelledError:
            raise
        except Exception as e:  # as IPA: CommandExecutionError
            command.finish(error=RestError(500, 'Command execution failed',
                                           str(e)).serialize())
        if forced:
            self.force_heartbeat()


# The commands. Each is a coroutine (agent, **params) -> result.

async def get_deploy_steps(agent, node=None, ports=None):
    return {'deploy_steps': {'GenericHardwareManager':
                             GENERIC_DEPLOY_STEPS},
            'hardware_manager_version': HARDWARE_MANAGER_VERSION}


async def execute_deploy_step(agent, step, node=None, ports=None,
                              deploy_version=None, **kwargs):
    if step.get('step') == 'write_image':
        await asyncio.sleep(agent.sim.write_time_of(agent.machine))
        agent.machine.written = True
    return {'deploy_result': None, 'deploy_step': step}


async def get_partition_uuids(agent):
    return {'root uuid': '0x%08x' % (agent.machine.index + 1)}


async def sync(agent):
    return 'standby.sync: done'


async def power_off(agent):
    await asyncio.sleep(agent.sim.power_off_time)
    agent.sim.loop.call_soon(agent.machine.powered_off_by_os)
    return None


async def lockdown(agent):
    agent.sim.loop.call_later(0.5, agent.machine.powered_off_by_os)
    return None


async def kexec_get_version(agent):
    return {protocol.FIELD_PROTOCOL_VERSION: protocol.PROTOCOL_VERSION,
            protocol.FIELD_MIN_PROTOCOL_VERSION:
                protocol.MIN_PROTOCOL_VERSION}


def _kexec_error(reason, message, **kwargs):
    return RestError(500, 'kexec failed', protocol.error_details(
        reason, message, **kwargs))


async def kexec_load(agent, **params):
    version = params.get(protocol.PARAM_PROTOCOL_VERSION)
    if not protocol.agent_serves(version):
        raise _kexec_error(protocol.REASON_PROTOCOL_MISMATCH,
                           'conductor version %r not served' % (version,),
                           protocol_version=protocol.PROTOCOL_VERSION)
    start = time.monotonic()
    await asyncio.sleep(agent.sim.load_time)
    agent.loaded = True
    result = boot_entry()
    result[protocol.FIELD_METHOD] = protocol.METHOD_KEXEC_LOAD
    result[protocol.FIELD_TIMINGS] = {'discover': 0.0,
                                      'load': time.monotonic() - start}
    result[protocol.FIELD_PROTOCOL_VERSION] = protocol.PROTOCOL_VERSION
    return result


async def kexec_execute(agent, delay=0.2):
    if not agent.loaded:
        raise _kexec_error(protocol.REASON_NOT_LOADED,
                           'no instance kernel is loaded')
    agent.sim.loop.call_later(float(delay) + agent.sim.execute_time,
                              agent.machine.kexec)
    return {protocol.FIELD_DELAY: delay}


HANDLERS = {
    'deploy': {'get_deploy_steps': (SYNC, get_deploy_steps),
               'execute_deploy_step': (ASYNC, execute_deploy_step)},
    'standby': {'get_partition_uuids': (SYNC, get_partition_uuids),
                'sync': (SYNC, sync),
                'power_off': (ASYNC, power_off)},
    'system': {'lockdown': (ASYNC, lockdown)},
    'kexec': {protocol.GET_VERSION: (SYNC, kexec_get_version),
              protocol.LOAD: (ASYNC, kexec_load),
              protocol.EXECUTE: (ASYNC, kexec_execute)},
}


# HTTP/1.1, the little of it needed here.

async def read_request(reader):
    line = await reader.readline()
    if not line:
        return None
    try:
        method, target, _version = line.decode('latin-1').split(' ', 2)
    except ValueError:
        return None
    length = 0
    while True:
        header = await reader.readline()
        if header in (b'\r\n', b'\n', b''):
            break
        name, _, value = header.decode('latin-1').partition(':')
        if name.strip().lower() == 'content-length':
            length = int(value.strip())
    body = None
    if length:
        raw = await reader.readexactly(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
    return method, target, body


REASONS = {200: 'OK', 202: 'Accepted', 400: 'Bad Request',
           401: 'Unauthorized', 404: 'Not Found', 409: 'Conflict',
           500: 'Internal Server Error'}


def write_response(writer, status, body):
    data = json.dumps(body).encode()
    writer.write(('HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n'
                  'Content-Length: %d\r\n\r\n'
                  % (status, REASONS.get(status, 'Status'), len(data))
                  ).encode() + data)


async def http_call(port, method, path, body=None, headers=None,
                    timeout=60):
    """One request to 127.0.0.1:port; returns (status, parsed JSON)."""
    data = json.dumps(body).encode() if body is not None else b''
    lines = ['%s %s HTTP/1.1' % (method, path), 'Host: 127.0.0.1:%d' % port,
             'Connection: close', 'Accept: application/json',
             'Content-Length: %d' % len(data)]
    if body is not None:
        lines.append('Content-Type: application/json')
    for name, value in (headers or {}).items():
        lines.append('%s: %s' % (name, value))
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection('127.0.0.1', port), timeout)
    try:
        writer.write(('\r\n'.join(lines) + '\r\n\r\n').encode() + data)
        raw = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, payload = raw.partition(b'\r\n\r\n')
    status = int(head.split(b' ', 2)[1])
    if b'transfer-encoding: chunked' in head.lower():
        payload = _dechunk(payload)
    try:
        return status, json.loads(payload) if payload else None
    except ValueError:
        return status, None


def _dechunk(payload):
    out = b''
    while payload:
        size_line, _, rest = payload.partition(b'\r\n')
        size = int(size_line.split(b';')[0] or b'0', 16)
        if not size:
            break
        out += rest[:size]
        payload = rest[size + 2:]
    return out


class Machine(object):
    """One simulated machine: its power, its agent, its instance."""

    def __init__(self, sim, spec):
        self.sim = sim
        self.index = spec['index']
        self.uuid = spec['uuid']
        self.mac = spec['mac']
        self.bmc_port = spec['bmc_port']
        self.agent_port = spec['agent_port']
        self.instance_port = spec['instance_port']
        # Which ironic-api process and which BMC process serve it.
        self.api_port = spec.get('api_port') or sim.api_port
        self.bmc_control_port = (spec.get('bmc_control_port')
                                 or sim.bmc_control_port)
        self.counts = collections.Counter()
        self.events = []
        self.agent = None
        self.instance = None
        self.generation = 0
        self.written = False

    def event(self, what):
        self.events.append((round(time.time(), 3), what))

    def _halt(self):
        self.generation += 1
        if self.agent is not None:
            self.agent.stop()
            self.agent = None
        if self.instance is not None:
            self.instance.close()
            self.instance = None

    def power(self, event, bootdev):
        self.event('bmc %s %s' % (event, bootdev or ''))
        self._halt()
        if event in ('on', 'reset'):
            gen = self.generation
            if bootdev == 'network':
                self.sim.loop.call_later(self.sim.agent_boot,
                                         self._start_agent, gen)
            else:
                self.sim.loop.call_later(self.sim.boot_time,
                                         self._start_instance, gen,
                                         'disk')

    def powered_off_by_os(self):
        self.event('os power off')
        self._halt()
        self.sim.tell_bmc(self.bmc_port, 'off')

    def kexec(self):
        self.event('kexec')
        self.counts['kexec'] += 1
        self._halt()
        self.sim.loop.call_later(self.sim.boot_time, self._start_instance,
                                 self.generation, 'kexec')

    def _start_agent(self, gen):
        if gen != self.generation:
            return
        self.event('agent up')
        self.counts['agent_boots'] += 1
        self.agent = Agent(self)
        self.sim.loop.create_task(self.agent.start())

    def _start_instance(self, gen, how):
        if gen != self.generation:
            return
        self.event('instance up (%s)' % how)
        self.counts['instance_boots_' + how] += 1
        self.sim.loop.create_task(self._open_instance())

    async def _open_instance(self):
        async def answer(reader, writer):
            self.counts['instance_probes'] += 1
            try:
                writer.write(b'SSH-2.0-OpenSSH_9.2 scale-harness\r\n')
                await writer.drain()
            except ConnectionError:
                pass
            finally:
                writer.close()
        self.instance = await asyncio.start_server(
            answer, '127.0.0.1', self.instance_port, reuse_address=True)


class Simulation(object):

    def __init__(self, specs, api_port, bmc_control_port, agent_boot=3.0,
                 boot_time=5.0, write_time=5.0, load_time=0.5,
                 power_off_time=1.0, execute_time=0.05, write_spread=0.0):
        self.loop = asyncio.get_event_loop()
        self.api_port = api_port
        self.bmc_control_port = bmc_control_port
        self.agent_boot = agent_boot
        self.boot_time = boot_time
        self.write_time = write_time
        self.load_time = load_time
        # From the end of kexec.execute's delay to the kexec: the agent
        # still answers meanwhile, as during a slow purgatory.
        self.execute_time = execute_time
        # Image writes end spread over this many seconds, node by node, so
        # that the nodes are not all in the same step at once.
        self.write_spread = write_spread
        self.power_off_time = power_off_time
        self.handlers = HANDLERS
        self.machines = [Machine(self, spec) for spec in specs]
        self.by_bmc = {m.bmc_port: m for m in self.machines}
        self.api_latency = []
        self._bmc_out = None
        self.cert_dir = None

    def write_time_of(self, machine):
        """Seconds ``machine``'s agent takes to write the image."""
        count = max(1, len(self.machines))
        return self.write_time + self.write_spread * machine.index / count

    async def api(self, method, path, machine, what, body=None,
                  version=None):
        headers = {}
        if version:
            headers['X-OpenStack-Ironic-API-Version'] = version
        machine.counts['ironic_' + what] += 1
        start = time.monotonic()
        try:
            status, result = await http_call(machine.api_port, method,
                                             path,
                                             body, headers)
        except (OSError, asyncio.TimeoutError, ValueError, IndexError):
            machine.counts['ironic_%s_failed' % what] += 1
            return None, None
        self.api_latency.append(time.monotonic() - start)
        return status, result

    def tell_bmc(self, port, event):
        machine = self.by_bmc[port]
        self._bmc_out.sendto(json.dumps({'port': port,
                                         'event': event}).encode(),
                             ('127.0.0.1', machine.bmc_control_port))

    def datagram(self, data):
        try:
            msg = json.loads(data)
            machine = self.by_bmc[msg['port']]
        except (ValueError, KeyError):
            return
        machine.power(msg['event'], msg.get('bootdev'))

    def stats(self):
        totals = collections.Counter()
        for m in self.machines:
            totals.update(m.counts)
        lat = sorted(self.api_latency)
        return {
            'nodes': {m.uuid: {'counts': dict(m.counts),
                               'events': m.events}
                      for m in self.machines},
            'totals': dict(totals),
            'ironic_api_latency': {
                'count': len(lat),
                'p50': lat[len(lat) // 2] if lat else None,
                'p95': lat[int(len(lat) * 0.95)] if lat else None,
                'max': lat[-1] if lat else None,
            },
        }


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, sim):
        self.sim = sim

    def datagram_received(self, data, addr):
        self.sim.datagram(data)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--nodes', required=True, help='JSON list of specs')
    parser.add_argument('--api-port', type=int, required=True)
    parser.add_argument('--events-port', type=int, required=True)
    parser.add_argument('--bmc-control-port', type=int, required=True)
    parser.add_argument('--stats', required=True)
    parser.add_argument('--agent-boot', type=float, default=3.0)
    parser.add_argument('--boot-time', type=float, default=5.0)
    parser.add_argument('--write-time', type=float, default=5.0)
    parser.add_argument('--load-time', type=float, default=0.5)
    parser.add_argument('--execute-time', type=float, default=0.05)
    parser.add_argument('--write-spread', type=float, default=0.0)
    args = parser.parse_args(argv)
    with open(args.nodes) as f:
        specs = json.load(f)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    sim = Simulation(specs, args.api_port, args.bmc_control_port,
                     agent_boot=args.agent_boot, boot_time=args.boot_time,
                     write_time=args.write_time, load_time=args.load_time,
                     execute_time=args.execute_time,
                     write_spread=args.write_spread)
    import socket
    sim.cert_dir = os.path.join(os.path.dirname(os.path.abspath(
        args.stats)), 'certs')
    os.makedirs(sim.cert_dir, exist_ok=True)
    sim._bmc_out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    loop.run_until_complete(loop.create_datagram_endpoint(
        lambda: _Datagrams(sim), local_addr=('127.0.0.1', args.events_port)))

    def dump():
        with open(args.stats + '.tmp', 'w') as f:
            json.dump(sim.stats(), f)
        os.replace(args.stats + '.tmp', args.stats)

    def periodic():
        dump()
        loop.call_later(5, periodic)

    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    loop.call_later(5, periodic)
    print('%d simulated machines ready' % len(sim.machines), flush=True)
    loop.run_forever()
    dump()


if __name__ == '__main__':
    sys.exit(main())
