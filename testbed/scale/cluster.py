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

"""Ironic as operators run it past one machine: one API, N conductors.

``ironic-api`` and ``ironic-conductor`` processes (the Ironic installed
next to the running Python, with the plugin), a shared PostgreSQL
database (:mod:`testbed.scale.database`), JSON-RPC between them
(``[DEFAULT]rpc_transport = json-rpc``). Each conductor's ``host`` is
``127.0.0.1`` and its ``[json_rpc]port`` its own: Ironic then names it
``127.0.0.1:PORT`` in the hash ring, a distinct name that is also the
address of its JSON-RPC server, which Ironic's JSON-RPC client parses
into host and port. Everything listens on 127.0.0.1.
"""

import configparser
import os
import signal
import subprocess
import sys
import time
import urllib.request

from testbed.ironic_service import interface_options

DEFAULT_RPC_PORT = 8089


def _bin(name):
    return os.path.join(os.path.dirname(sys.executable), name)


class Cluster(object):
    """Configures, starts and stops the API and the conductors.

    :param workdir: where configurations, logs and state go.
    :param db_url: the SQLAlchemy URL of the shared database.
    :param api_ports: the port of each ironic-api process (a list; an
        int for one).
    :param rpc_ports: one JSON-RPC port per conductor.
    :param http_port: the port of the harness's HTTP server (images).
    :param options: {section: {option: value}} on top of the defaults,
        for every process (what the operator sets).
    """

    def __init__(self, workdir, db_url, api_ports, rpc_ports, http_port,
                 options=None):
        self.workdir = os.path.abspath(workdir)
        self.db_url = db_url
        self.api_ports = ([api_ports] if isinstance(api_ports, int)
                          else list(api_ports))
        self.api_port = self.api_ports[0]
        self.rpc_ports = list(rpc_ports)
        self.http_port = http_port
        self.options = options or {}
        self.api = None
        # The other ironic-api processes, {name: Popen}.
        self.more_apis = {}
        self.conductors = {}

    @property
    def url(self):
        return 'http://127.0.0.1:%d' % self.api_port

    # Names of the conductors: each is the conductor's [DEFAULT]host,
    # hence its node reservations, and must resolve to 127.0.0.1 for the
    # JSON-RPC client: inet_aton's short forms of 127.0.0.1 do.
    HOSTS = ('127.0.0.1', '127.1', '127.0.1')

    def conductor_host(self, index):
        return self.HOSTS[index]

    def host(self, rpc_port):
        """The conductor's name in the hash ring, given its port.

        Ironic 39 registers a conductor as ``host:port`` when its
        ``[json_rpc]port`` is not the default 8089, but reserves nodes
        as plain ``[DEFAULT]host``: the survivor's
        ``_check_orphan_nodes`` then never matches a dead conductor's
        reservations to its name, and its locks are never released.
        The first conductor (the one the failover run kills) therefore
        uses the default port, where the names agree.
        """
        index = self.rpc_ports.index(rpc_port)
        if rpc_port == DEFAULT_RPC_PORT:
            return self.HOSTS[index]
        return '%s:%d' % (self.HOSTS[index], rpc_port)

    def config(self, name, rpc_port=None):
        """The ironic.conf of one process, as {section: {option: value}}."""
        state = os.path.join(self.workdir, name, 'state')
        opts = {
            'DEFAULT': {
                'auth_strategy': 'noauth',
                'rpc_transport': 'json-rpc',
                # Ironic appends a non-default [json_rpc]port to the
                # conductor's host: 127.0.0.1:PORT in the hash ring.
                'host': (self.HOSTS[self.rpc_ports.index(rpc_port)]
                         if rpc_port else 'api'),
                'debug': 'False',
                'log_file': os.path.join(self.workdir, name + '.log'),
                'use_stderr': 'False',
                'state_path': state,
                'enabled_hardware_types': 'ipmi-kexec',
                **interface_options(),
            },
            'api': {
                'host_ip': '127.0.0.1', 'port': str(self._api_port_of(name)),
                # ironic-api's own server (cheroot) binds its socket in
                # each worker: with more than one, every other worker
                # fails with "Address already in use" and is respawned
                # until the launcher gives up and the API exits (seen
                # with Ironic 39 here). One worker per ironic-api
                # process; more processes need a WSGI server.
                'api_workers': '1',
            },
            'json_rpc': {
                'auth_strategy': 'noauth',
                'host_ip': '127.0.0.1',
                # The API's port is where it calls conductors named
                # without one.
                'port': str(rpc_port or DEFAULT_RPC_PORT),
            },
            'database': {'connection': self.db_url},
            'dhcp': {'dhcp_provider': 'none'},
            'service_catalog': {
                'auth_type': 'none',
                'endpoint_override': 'http://127.0.0.1:%d' % self.api_port,
            },
            'oslo_concurrency': {
                'lock_path': os.path.join(self.workdir, name, 'locks'),
            },
            'conductor': {
                'automated_clean': 'False',
            },
            'deploy': {
                'http_url': 'http://127.0.0.1:%d' % self.http_port,
                'http_root': os.path.join(self.workdir, name, 'httpboot'),
                'default_boot_mode': 'bios',
                'fast_track': 'False',
                'erase_devices_priority': '0',
                'erase_devices_metadata_priority': '0',
            },
            'agent': {
                'image_download_source': 'http',
                'deploy_logs_collect': 'never',
            },
            'pxe': {
                'tftp_root': os.path.join(self.workdir, name, 'tftpboot'),
                'images_path': os.path.join(state, 'images'),
                'instance_master_path': os.path.join(state,
                                                     'master_images'),
            },
            'ipmi': {
                # Virtual BMCs answer at once; Ironic's default of 5 s
                # between two commands to one BMC models slow real ones.
                'min_command_interval': '1',
            },
            'kexec': {},
        }
        for section, values in self.options.items():
            opts.setdefault(section, {}).update(values)
        return opts

    def _write(self, name, rpc_port=None):
        base = os.path.join(self.workdir, name)
        for sub in ('locks', 'httpboot', 'tftpboot', 'state'):
            os.makedirs(os.path.join(base, sub), exist_ok=True)
        parser = configparser.RawConfigParser()
        parser.optionxform = str
        for section, values in self.config(name, rpc_port).items():
            if section != 'DEFAULT':
                parser.add_section(section)
            for key, value in values.items():
                parser.set(section, key, str(value))
        path = os.path.join(self.workdir, name + '.conf')
        with open(path, 'w') as f:
            parser.write(f)
        return path

    def _env(self):
        env = dict(os.environ)
        for var in ('http_proxy', 'HTTP_PROXY', 'https_proxy',
                    'HTTPS_PROXY'):
            env.pop(var, None)
        env['no_proxy'] = env['NO_PROXY'] = '127.0.0.1,localhost'
        env.pop('OS_AUTH_TYPE', None)
        return env

    def _spawn(self, name, command, config):
        out = open(os.path.join(self.workdir, name + '.out'), 'a')
        process = subprocess.Popen(
            ['nice', '-n', '19', _bin(command), '--config-file', config],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=self._env(), start_new_session=True)
        out.close()
        return process

    def dbsync(self):
        config = self._write('api')
        with open(os.path.join(self.workdir, 'dbsync.log'), 'w') as out:
            subprocess.run(['nice', '-n', '19', _bin('ironic-dbsync'),
                            '--config-file', config, 'upgrade'],
                           stdout=out, stderr=subprocess.STDOUT, check=True,
                           timeout=600, env=self._env())

    def start(self, timeout=180):
        os.makedirs(self.workdir, exist_ok=True)
        self.dbsync()
        for i, port in enumerate(self.rpc_ports):
            self.start_conductor(i)
        self.api = self._spawn('api', 'ironic-api', self._write('api'))
        for index in range(1, len(self.api_ports)):
            name = self.api_name(index)
            self.more_apis[name] = self._spawn(name, 'ironic-api',
                                               self._write(name))
        self.wait_for_api(timeout)
        self.wait_for_conductors(timeout)

    def api_name(self, index):
        return 'api' if index == 0 else 'api%d' % index

    def _api_port_of(self, name):
        for index, port in enumerate(self.api_ports):
            if self.api_name(index) == name:
                return port
        return self.api_port

    def conductor_name(self, index):
        return 'conductor%d' % index

    def start_conductor(self, index):
        name = self.conductor_name(index)
        port = self.rpc_ports[index]
        self.conductors[index] = self._spawn(
            name, 'ironic-conductor', self._write(name, port))
        return self.conductors[index]

    def wait_for_api(self, timeout):
        """Until every ironic-api process answers."""
        deadline = time.monotonic() + timeout
        procs = dict(self.more_apis, api=self.api)
        waiting = {self.api_name(i): port
                   for i, port in enumerate(self.api_ports)}
        while time.monotonic() < deadline:
            for name in list(waiting):
                if procs[name].poll() is not None:
                    raise RuntimeError('ironic-api exited, see %s/%s.log'
                                       % (self.workdir, name))
                try:
                    with urllib.request.urlopen(
                            'http://127.0.0.1:%d/v1/drivers'
                            % waiting[name], timeout=5) as resp:
                        if resp.status == 200:
                            del waiting[name]
                except OSError:
                    pass
            if not waiting:
                return
            time.sleep(1)
        raise TimeoutError('Ironic API %s not up in %ss'
                           % (sorted(waiting), timeout))

    def wait_for_conductors(self, timeout):
        """Until the API lists every conductor as alive."""
        import json
        deadline = time.monotonic() + timeout
        want = {self.host(p) for p in self.rpc_ports}
        alive = set()
        while time.monotonic() < deadline:
            for index, proc in self.conductors.items():
                if proc.poll() is not None:
                    raise RuntimeError('%s exited, see its log'
                                       % self.conductor_name(index))
            req = urllib.request.Request(
                self.url + '/v1/conductors?detail=True',
                headers={'X-OpenStack-Ironic-API-Version': 'latest'})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    items = json.load(resp)['conductors']
                alive = {c['hostname'] for c in items if c['alive']
                         and 'ipmi-kexec' in c.get('drivers', [])}
            except (OSError, ValueError, KeyError):
                pass
            if want <= alive:
                return
            time.sleep(1)
        raise TimeoutError('conductors alive: %s, wanted %s'
                           % (sorted(alive), sorted(want)))

    def pids(self):
        """{name: pid} of the running processes."""
        out = {}
        if self.api is not None and self.api.poll() is None:
            out['api'] = self.api.pid
        for name, proc in self.more_apis.items():
            if proc.poll() is None:
                out[name] = proc.pid
        for index, proc in self.conductors.items():
            if proc.poll() is None:
                out[self.conductor_name(index)] = proc.pid
        return out

    def kill_conductor(self, index):
        """SIGKILL, as a crashed machine: no clean up of any kind."""
        proc = self.conductors[index]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)

    def stop(self):
        procs = ([self.api] + list(self.more_apis.values())
                 + list(self.conductors.values()))
        for proc in procs:
            if proc is not None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in procs:
            if proc is None:
                continue
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
