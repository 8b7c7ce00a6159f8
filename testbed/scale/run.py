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

"""The scale harness: N concurrent deploys against a real Ironic.

For each size given with ``--nodes``, on a fresh database and cluster:
create the nodes (``ipmi-kexec``, deploy interfaces alternated
``kexec``/``direct`` by default, ``ipxe`` boot, ``noop`` network,
``ipmitool`` power to the virtual BMCs), make them ``available``, then
request every deploy at once through the API and poll until all are
``active`` or ``deploy failed``. Measured: time to active per node and
for all, CPU seconds per process tree (``/proc``), the conductor's
threads and the nodes in ``deploying`` vs ``wait call-back``, SQL
statements and transactions (``pg_stat_statements``,
``pg_stat_database``), every request each simulated agent made or
answered.

``--failover`` runs two conductors, SIGKILLs the first while nodes it
manages are in ``kexec.load``/``execute`` (``deploying``, step
``tear_down_agent``) and in verification (``wait call-back``, step
``verify_kexec``), and reports each node's end state and kexec record.

Examples::

    python -m testbed.scale --nodes 10,100 --out artifacts/scale
    python -m testbed.scale --nodes 20 --failover --out /tmp/failover
"""

import argparse
import concurrent.futures
import functools
import hashlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid as uuidlib

from testbed.scale import cluster as scale_cluster
from testbed.scale import database
from testbed.scale import report

API_HEADERS = {'X-OpenStack-Ironic-API-Version': 'latest',
               'Content-Type': 'application/json'}
FINAL = ('active', 'deploy failed')
# The plugin's default [kexec]verify_interval, which the harness keeps.
VERIFY_INTERVAL = 5


class Api(object):
    """Plain HTTP to the Ironic API, as any client would."""

    def __init__(self, url):
        self.url = url
        self.requests = 0

    def call(self, method, path, body=None, timeout=120):
        self.requests += 1
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data,
                                     method=method, headers=API_HEADERS)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw) if raw else None
            except ValueError:
                return e.code, raw.decode(errors='replace')
        except (OSError, ValueError) as e:
            # No answer at all (refused, reset, timed out).
            return 599, '%s: %s' % (e.__class__.__name__, e)

    def ok(self, method, path, body=None, retries=30):
        """A call that must succeed; 409/503 (locked, busy) are retried."""
        for _ in range(retries):
            status, result = self.call(method, path, body)
            if status < 300:
                return result
            if status not in (409, 503, 599):
                break
            time.sleep(2)
        raise RuntimeError('%s %s: %s %s' % (method, path, status, result))


def _free(port, kind):
    s = socket.socket(socket.AF_INET, kind)
    if kind == socket.SOCK_STREAM:
        # As the servers bind: a port in TIME_WAIT is free for them.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(('127.0.0.1', port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class Ports(object):
    """Every port of one run, from a base, checked free on 127.0.0.1."""

    def __init__(self, base, nodes, conductors, apis=1, bmc_processes=1):
        # One port per ironic-api process and per BMC process.
        self.apis = [base] + [base + 30 + i for i in range(1, apis)]
        self.api = self.apis[0]
        self.http = base + 1
        self.db = base + 2
        self.events = base + 3
        self.bmc_controls = [base + 4] + [base + 60 + i
                                          for i in range(1, bmc_processes)]
        self.bmc_control = self.bmc_controls[0]
        # The first conductor on JSON-RPC's default port: see
        # Cluster.host.
        self.rpc = [8089] + [base + 10 + i for i in range(1, conductors)]
        first = base + 100
        self.bmc = [first + i for i in range(nodes)]
        self.agent = [first + nodes + i for i in range(nodes)]
        self.instance = [first + 2 * nodes + i for i in range(nodes)]
        busy = [p for p in self.apis + [self.http, self.db] + self.rpc
                + self.agent + self.instance
                if not _free(p, socket.SOCK_STREAM)]
        busy += [p for p in [self.events] + self.bmc_controls + self.bmc
                 if not _free(p, socket.SOCK_DGRAM)]
        if busy:
            raise RuntimeError('ports in use on 127.0.0.1: %s; choose '
                               'another --port-base' % busy[:10])


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _FileServer(http.server.ThreadingHTTPServer):
    # The default listen backlog (5) drops connections when a hundred
    # deploys validate their image at once: Ironic then fails them
    # ("Validation of image href ... failed"), a harness failure.
    request_queue_size = 1024


def serve_files(root, port):
    """The image server: deploy kernel/ramdisk and the instance image."""
    handler = functools.partial(_Quiet, directory=root)
    server = _FileServer(('127.0.0.1', port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def make_files(root):
    os.makedirs(root, exist_ok=True)
    sums = {}
    for name, size in (('deploy.kernel', 4096), ('deploy.initrd', 4096),
                       ('disk.img', 1024 * 1024)):
        path = os.path.join(root, name)
        if not os.path.exists(path):
            with open(path, 'wb') as f:
                # Deterministic content: a whole-disk "image".
                block = hashlib.sha256(name.encode()).digest() * 128
                while f.tell() < size:
                    f.write(block[:size - f.tell()])
        with open(path, 'rb') as f:
            sums[name] = hashlib.sha256(f.read()).hexdigest()
    return sums


def _spawn(argv, log):
    out = open(log, 'a')
    proc = subprocess.Popen(['nice', '-n', '19', sys.executable] + argv,
                            stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    out.close()
    return proc


def _stop(proc, timeout=30):
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def interface_for(index, interfaces):
    return interfaces[index % len(interfaces)]


def bmc_ranges(count, processes):
    """[(first index, count)] of the nodes each BMC process serves."""
    chunk = -(-count // processes)
    return [(first, min(chunk, count - first))
            for first in range(0, count, chunk)]


def node_specs(count, ports, interfaces):
    specs = []
    ranges = bmc_ranges(count, len(ports.bmc_controls))
    for i in range(count):
        specs.append({
            'index': i,
            'uuid': str(uuidlib.uuid5(uuidlib.NAMESPACE_URL,
                                      'scale-node-%d' % i)),
            'name': 'scale-%04d' % i,
            'mac': '52:54:00:%02x:%02x:%02x' % (
                (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff),
            'bmc_port': ports.bmc[i],
            'agent_port': ports.agent[i],
            'instance_port': ports.instance[i],
            'deploy_interface': interface_for(i, interfaces),
            # The agents of each node talk to one of the API processes,
            # as behind a load balancer; its BMC is in one of the BMC
            # processes.
            'api_port': ports.apis[i % len(ports.apis)],
            'bmc_control_port': ports.bmc_controls[
                [k for k, (first, n) in enumerate(ranges)
                 if first <= i < first + n][0]],
        })
    return specs


def enroll(api, spec, http_url, sums):
    body = {
        'uuid': spec['uuid'], 'name': spec['name'], 'driver': 'ipmi-kexec',
        'deploy_interface': spec['deploy_interface'],
        'boot_interface': 'ipxe', 'network_interface': 'noop',
        'driver_info': {
            'ipmi_address': '127.0.0.1',
            'ipmi_port': spec['bmc_port'],
            'ipmi_username': 'admin', 'ipmi_password': 'password',
            'deploy_kernel': http_url + '/deploy.kernel',
            'deploy_ramdisk': http_url + '/deploy.initrd',
            'kexec_verify': 'tcp:127.0.0.1:%d' % spec['instance_port'],
        },
        'properties': {'cpu_arch': 'x86_64', 'memory_mb': 4096,
                       'local_gb': 10, 'cpus': 2},
    }
    api.ok('POST', '/v1/nodes', body)
    api.ok('POST', '/v1/ports', {'node_uuid': spec['uuid'],
                                 'address': spec['mac']})
    api.ok('PATCH', '/v1/nodes/%s' % spec['uuid'], [
        {'op': 'add', 'path': '/instance_info/image_source',
         'value': http_url + '/disk.img'},
        {'op': 'add', 'path': '/instance_info/image_os_hash_algo',
         'value': 'sha256'},
        {'op': 'add', 'path': '/instance_info/image_os_hash_value',
         'value': sums['disk.img']},
        {'op': 'add', 'path': '/instance_info/image_disk_format',
         'value': 'raw'},
    ])
    for target, state in (('manage', 'manageable'),
                          ('provide', 'available')):
        api.ok('PUT', '/v1/nodes/%s/states/provision' % spec['uuid'],
               {'target': target})
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            node = api.ok('GET', '/v1/nodes/%s?fields=provision_state,'
                          'last_error' % spec['uuid'])
            if node['provision_state'] == state:
                break
            if node['provision_state'].endswith('failed'):
                raise RuntimeError('%s: %s' % (spec['name'], node))
            time.sleep(1)
        else:
            raise TimeoutError('%s never became %s' % (spec['name'], state))


def deploy(api, spec, rejections):
    """Request the deploy as a client would.

    A 409/503 (Ironic's limits) is retried and counted; so is a request
    that got no answer, unless the node shows that it was taken.
    """
    while True:
        status, result = api.call(
            'PUT', '/v1/nodes/%s/states/provision' % spec['uuid'],
            {'target': 'active'})
        if status < 300:
            return time.monotonic()
        rejections.append({'node': spec['name'], 'status': status,
                           'error': str(result)[:300]})
        if status == 599:
            time.sleep(1)
            state, node = api.call('GET', '/v1/nodes/%s?fields='
                                   'provision_state' % spec['uuid'])
            if state == 200 and node['provision_state'] != 'available':
                return time.monotonic()
            continue
        if status in (409, 503):
            time.sleep(5)
            continue
        raise RuntimeError('deploy %s: %s %s' % (spec['name'], status,
                                                 result))


class Sampler(threading.Thread):
    """CPU, threads, node states every ``interval`` seconds."""

    def __init__(self, api, cluster, interval=2.0, records=False):
        super().__init__(daemon=True)
        self.api = api
        # The kexec records too (failover: where each handoff is).
        self.fields = ('uuid,name,provision_state,deploy_interface,'
                       'deploy_step,reservation'
                       + (',driver_internal_info' if records else ''))
        self.cluster = cluster
        self.interval = interval
        self.samples = []
        self.errors = []
        self.nodes = {}
        self.stopped = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        start = time.monotonic()
        while not self.stopped.is_set():
            status, result = self.api.call(
                'GET', '/v1/nodes?fields=%s&limit=1000' % self.fields)
            states = {}
            if status == 200:
                now = time.monotonic()
                with self.lock:
                    for node in result['nodes']:
                        self.nodes[node['uuid']] = dict(node, seen=now)
                        key = node['provision_state']
                        states[key] = states.get(key, 0) + 1
            else:
                self.errors.append('%s %s' % (status, str(result)[:200]))
            sample = {'t': round(time.monotonic() - start, 1),
                      'states': states, 'threads': {}, 'cpu': {}}
            for name, pid in self.cluster.pids().items():
                sample['threads'][name] = report.threads(pid)
                sample['cpu'][name] = report.tree_cpu_seconds(pid)
            self.samples.append(sample)
            self.stopped.wait(self.interval)


def cpu_snapshot(cluster, db, extra):
    out = {name: report.tree_cpu_seconds(pid)
           for name, pid in cluster.pids().items()}
    out['postgres'] = db.cpu_seconds()
    for name, proc in extra.items():
        out[name] = report.tree_cpu_seconds(proc.pid)
    return out


def run_once(args, count, conductors, interfaces, name, failover=False):
    workdir = os.path.join(os.path.abspath(args.workdir), name)
    if os.path.exists(workdir):
        subprocess.run(['rm', '-rf', workdir], check=True)
    os.makedirs(workdir)
    ports = Ports(args.port_base, count, conductors, args.api_processes,
                  args.bmc_processes)
    files = os.path.join(workdir, 'files')
    sums = make_files(files)
    http_url = 'http://127.0.0.1:%d' % ports.http
    httpd = serve_files(files, ports.http)
    db = database.PostgreSQL(workdir, ports.db,
                             max_connections=args.db_max_connections)
    options = {
        'conductor': {
            'max_concurrent_deploy': str(max(250, count)),
            'heartbeat_interval': str(args.heartbeat_interval),
            'heartbeat_timeout': str(args.heartbeat_timeout),
            'check_provision_state_interval': '10',
        },
        'api': {'ramdisk_heartbeat_timeout': str(args.ramdisk_heartbeat)},
    }
    for item in args.set or ():
        key, _, value = item.partition('=')
        section, _, option = key.partition('.')
        options.setdefault(section, {})[option] = value
    cluster = scale_cluster.Cluster(os.path.join(workdir, 'ironic'),
                                    db.url, ports.apis, ports.rpc,
                                    ports.http, options)
    procs = {}
    result = {'name': name, 'conductors': conductors,
              'interfaces': interfaces, 'options': options,
              'simulation': {'agent_boot': args.agent_boot,
                             'boot_time': args.boot_time,
                             'write_time': args.write_time,
                             'load_time': args.load_time,
                             'execute_time': args.execute_time,
                             'write_spread': args.write_spread},
              'processes': {'api': args.api_processes,
                            'bmcs': args.bmc_processes}}
    try:
        db.start()
        cluster.start()
        specs = node_specs(count, ports, interfaces)
        with open(os.path.join(workdir, 'nodes.json'), 'w') as f:
            json.dump(specs, f)
        bmc_names = []
        for k, (first, n) in enumerate(bmc_ranges(count,
                                                  args.bmc_processes)):
            name_k = 'bmcs' if k == 0 else 'bmcs%d' % k
            bmc_names.append(name_k)
            procs[name_k] = _spawn(
                ['-m', 'testbed.scale.bmcs',
                 '--first-port', str(ports.bmc[first]),
                 '--count', str(n), '--events-port', str(ports.events),
                 '--control-port', str(ports.bmc_controls[k]),
                 '--stats', os.path.join(workdir, name_k + '.json')],
                os.path.join(workdir, name_k + '.log'))
        procs['agents'] = _spawn(
            ['-m', 'testbed.scale.agents',
             '--nodes', os.path.join(workdir, 'nodes.json'),
             '--api-port', str(ports.api),
             '--events-port', str(ports.events),
             '--bmc-control-port', str(ports.bmc_control),
             '--stats', os.path.join(workdir, 'agents.json'),
             '--agent-boot', str(args.agent_boot),
             '--boot-time', str(args.boot_time),
             '--write-time', str(args.write_time),
             '--load-time', str(args.load_time),
             '--execute-time', str(args.execute_time),
             '--write-spread', str(args.write_spread)],
            os.path.join(workdir, 'agents.log'))
        time.sleep(2)
        api = Api(cluster.url)
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda s: enroll(api, s, http_url, sums), specs))
        result['enroll_seconds'] = round(time.monotonic() - t0, 1)
        print('%s: %d nodes available in %.0f s' % (
            name, count, result['enroll_seconds']), flush=True)

        # The measured part starts here.
        db.reset_statements()
        db_before = db.counters()
        cpu_before = cpu_snapshot(cluster, db, procs)
        sampler = Sampler(api, cluster, records=failover)
        rejections = []
        start = time.monotonic()
        sampler.start()
        requested = {}
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            futures = {pool.submit(deploy, api, s, rejections): s
                       for s in specs}
            for future in concurrent.futures.as_completed(futures):
                requested[futures[future]['uuid']] = future.result() - start
        result['request_seconds'] = round(time.monotonic() - start, 1)
        killed = None
        done_at = {}
        deadline = start + args.timeout
        while time.monotonic() < deadline:
            with sampler.lock:
                nodes = dict(sampler.nodes)
            for uuid, node in nodes.items():
                if (node['provision_state'] in FINAL
                        and uuid not in done_at):
                    done_at[uuid] = node['seen'] - start
            if failover and killed is None:
                seen = _phases(nodes, cluster.conductor_host(0))
                result.setdefault('phases_seen', []).append(
                    {k: len(v) for k, v in seen.items()})
            if failover and killed is None and _kill_moment(
                    nodes, cluster.conductor_host(0)):
                killed = _kill(cluster, nodes, start)
                result['failover'] = killed
                print('%s: killed conductor0 at %.0f s: %s' % (
                    name, killed['at'], killed['phases']), flush=True)
            if failover and killed is None and (
                    time.monotonic() - start > args.kill_after):
                killed = _kill(cluster, nodes, start)
                killed['fallback'] = True
                result['failover'] = killed
            if len(done_at) == count:
                break
            if cluster.api.poll() is not None:
                result['error'] = 'ironic-api exited with %s' % (
                    cluster.api.returncode)
                print(result['error'], flush=True)
                break
            if int(time.monotonic() - start) % 30 == 0:
                states = {}
                for node in nodes.values():
                    key = node['provision_state']
                    states[key] = states.get(key, 0) + 1
                print('%s: %.0f s: %s' % (name, time.monotonic() - start,
                                          states), flush=True)
            time.sleep(1)
        elapsed = time.monotonic() - start
        sampler.stopped.set()
        sampler.join(10)
        cpu_after = cpu_snapshot(cluster, db, procs)
        db_after = db.counters()
        result['cpu'] = {k: (cpu_after.get(k) - v
                             if v is not None and cpu_after.get(k)
                             is not None else None)
                         for k, v in cpu_before.items()}
        if killed:
            # The killed conductor's CPU until its death.
            result['cpu']['conductor0'] = killed['cpu_at_kill'] - \
                cpu_before.get('conductor0', 0)
        result['db'] = {k: db_after[k] - db_before[k]
                        for k in db_after if k != 'connections'}
        result['db']['connections_end'] = db_after['connections']
        result['db']['top_statements'] = db.top_statements()
        result['time_to_all_active'] = (
            round(max(done_at.values()), 1)
            if len(done_at) == count else None)
        result['elapsed'] = round(elapsed, 1)
        result['rejections'] = rejections
        result['samples'] = sampler.samples
        result['sampler_errors'] = sampler.errors[:20]
        result['max_threads'] = max(
            [s['threads'].get('conductor0', 0) for s in sampler.samples]
            or [None])
        result['max_deploying'] = max(
            [s['states'].get('deploying', 0) for s in sampler.samples]
            or [None])

        if killed:
            # A failed deploy's unfinished step is closed by the periodic
            # task of the conductor that took the node over.
            time.sleep(3 * VERIFY_INTERVAL)
        # Per node: its end state and record.
        _stop(procs.pop('agents'), 30)
        with open(os.path.join(workdir, 'agents.json')) as f:
            agent_stats = json.load(f)
        for name_k in bmc_names:
            os.kill(procs[name_k].pid, signal.SIGUSR1)
        time.sleep(1)
        result['bmcs'] = _bmc_stats(workdir, bmc_names)
        result['nodes'] = []
        for spec in specs:
            node = api.ok('GET', '/v1/nodes/%s?fields=provision_state,'
                          'last_error,driver_internal_info,conductor'
                          % spec['uuid'])
            counts = agent_stats['nodes'][spec['uuid']]['counts']
            rec = (node['driver_internal_info'] or {}).get('kexec')
            done = done_at.get(spec['uuid'])
            result['nodes'].append({
                'name': spec['name'],
                'deploy_interface': spec['deploy_interface'],
                'provision_state': node['provision_state'],
                'conductor': node.get('conductor'),
                'last_error': node['last_error'],
                'time_to_active': (round(done, 1) if done is not None
                                   and node['provision_state'] == 'active'
                                   else None),
                'kexec': _short_record(rec),
                'agent_requests': counts,
            })
        result['agent_requests'] = report.requests_per_interface(
            result['nodes'])
        result['agent_totals'] = agent_stats['totals']
        result['ironic_api_latency'] = agent_stats['ironic_api_latency']
    finally:
        for proc in procs.values():
            _stop(proc)
        cluster.stop()
        db.stop()
        httpd.shutdown()
    with open(os.path.join(workdir, 'result.json'), 'w') as f:
        json.dump(result, f, indent=1, sort_keys=True)
    return result


def _bmc_stats(workdir, names):
    """The BMC processes' statistics, added up; None if one is missing."""
    total = {}
    for name in names:
        try:
            with open(os.path.join(workdir, name + '.json')) as f:
                stats = json.load(f)
        except (OSError, ValueError):
            return None
        for key, value in stats.items():
            total[key] = total.get(key, 0) + value
    total['processes'] = len(names)
    return total


def _short_record(rec):
    if not rec:
        return None
    out = {k: rec.get(k) for k in ('path', 'reason', 'message')}
    out['verify'] = (rec.get('verify') or {}).get('status')
    if rec.get('path') == 'handoff':
        out['step'] = rec.get('step')
        out['step_status'] = (rec.get(rec.get('step')) or {}).get('status')
    out['timings'] = rec.get('timings')
    return out


def _phases(nodes, host):
    phases = {'load': [], 'execute': [], 'verification': [],
              'waiting_agent': []}
    # 'conductor' cannot be listed (Ironic 39 answers 500 for
    # fields=conductor on /v1/nodes): the reservation (the conductor's
    # [DEFAULT]host) tells who holds a node in load/execute, the
    # record's handoff step which of the two; verification is counted
    # for both conductors.
    for uuid, node in nodes.items():
        if node['deploy_interface'] != 'kexec':
            continue
        step = (node.get('deploy_step') or {}).get('step')
        rec = (node.get('driver_internal_info') or {}).get('kexec') or {}
        if (node['provision_state'] == 'deploying'
                and step == 'tear_down_agent'
                and node.get('reservation') == host
                and rec.get('path') == 'handoff'
                and rec.get('step') in ('load', 'execute')):
            phases[rec['step']].append(node['name'])
        elif node['provision_state'] == 'wait call-back':
            if step == 'verify_kexec':
                phases['verification'].append(node['name'])
            else:
                phases['waiting_agent'].append(node['name'])
    return phases


def _kill_moment(nodes, host):
    phases = _phases(nodes, host)
    return all(phases[p] for p in ('load', 'execute', 'verification'))


def _kill(cluster, nodes, start):
    pid = cluster.pids().get('conductor0')
    cpu = report.tree_cpu_seconds(pid) if pid else None
    phases = _phases(nodes, cluster.conductor_host(0))
    cluster.kill_conductor(0)
    return {'at': round(time.monotonic() - start, 1), 'phases': phases,
            'cpu_at_kill': cpu}


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('--nodes', default='10,100',
                        help='comma-separated sizes, one run each')
    parser.add_argument('--interfaces', default='kexec,direct',
                        help='deploy interfaces, alternated node by node')
    parser.add_argument('--conductors', type=int, default=1)
    parser.add_argument('--failover', action='store_true',
                        help='two conductors; kill one mid-handoff')
    parser.add_argument('--kill-after', type=float, default=300,
                        help='failover: kill at this time at the latest')
    parser.add_argument('--out', default='artifacts/scale')
    parser.add_argument('--workdir', default=None,
                        help='logs and state (default: OUT/work)')
    parser.add_argument('--port-base', type=int, default=23000)
    parser.add_argument('--timeout', type=float, default=1800)
    parser.add_argument('--agent-boot', type=float, default=3.0,
                        help='seconds from power on to the agent')
    parser.add_argument('--boot-time', type=float, default=5.0,
                        help='seconds from power on or kexec to the '
                             'instance\'s open port')
    parser.add_argument('--write-time', type=float, default=5.0,
                        help='seconds the agent takes to write the image')
    parser.add_argument('--load-time', type=float, default=0.5,
                        help='seconds the agent takes for kexec.load')
    parser.add_argument('--execute-time', type=float, default=0.05,
                        help='seconds the agent still answers after '
                             'kexec.execute\'s delay, before it kexecs')
    parser.add_argument('--api-processes', type=int, default=1,
                        help='ironic-api processes; each node\'s agent '
                             'uses one, round robin')
    parser.add_argument('--bmc-processes', type=int, default=1,
                        help='processes the virtual BMCs are shared '
                             'between')
    parser.add_argument('--write-spread', type=float, default=0.0,
                        help='node i writes its image in write-time + '
                             'write-spread * i / nodes seconds')
    parser.add_argument('--heartbeat-interval', type=int, default=10,
                        help='[conductor]heartbeat_interval')
    parser.add_argument('--heartbeat-timeout', type=int, default=60,
                        help='[conductor]heartbeat_timeout')
    parser.add_argument('--ramdisk-heartbeat', type=int, default=300,
                        help='[api]ramdisk_heartbeat_timeout')
    parser.add_argument('--db-max-connections', type=int, default=400)
    parser.add_argument('--set', action='append', metavar='SECTION.OPT=V',
                        help='an ironic.conf option for every process')
    parser.add_argument('--append', action='store_true',
                        help='add to OUT/results.json instead of replacing')
    parser.add_argument('--report-only', action='store_true',
                        help='rewrite OUT/results.{md,png,json} from the '
                             'runs in OUT/results.json, run nothing')
    args = parser.parse_args(argv)
    if args.report_only:
        with open(os.path.join(args.out, 'results.json')) as f:
            runs = json.load(f)['runs']
        print(report.markdown(report.write(runs, args.out)), flush=True)
        return 0
    args.workdir = args.workdir or os.path.join(args.out, 'work')
    interfaces = args.interfaces.split(',')
    previous = []
    if args.append and os.path.exists(os.path.join(args.out,
                                                   'results.json')):
        with open(os.path.join(args.out, 'results.json')) as f:
            previous = json.load(f)['runs']
    results = list(previous)
    for count in [int(n) for n in args.nodes.split(',')]:
        conductors = 2 if args.failover else args.conductors
        name = '%s%d-%dc-%s' % ('failover-' if args.failover else '',
                                count, conductors, '+'.join(interfaces))
        result = run_once(args, count, conductors, interfaces, name,
                          failover=args.failover)
        results = [r for r in results if r['name'] != name] + [result]
        summaries = report.write(results, args.out)
        print(report.markdown(summaries), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
