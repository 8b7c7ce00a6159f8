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

"""tools/kexec_fleet_report.py, and the recipe of the troubleshooting
guide that feeds it: the real ``baremetal`` client against a fake Ironic
API on the loopback, piped into the tool.
"""

import http.server
import importlib.util
import io
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..', '..'))
TOOL = os.path.join(REPO, 'tools', 'kexec_fleet_report.py')
DOC = os.path.join(REPO, 'doc', 'source', 'troubleshooting.rst')
_SPEC = importlib.util.spec_from_file_location('kexec_fleet_report', TOOL)
tool = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(tool)

U = ['%d1e26c0b-03f2-4d2e-ae87-c02d7f33c12%d' % (i, i) for i in range(7)]


def kexec_record(path, reason=None, message='started /boot/vmlinuz'):
    """A record as ironic_kexec.record writes it (the fields used)."""
    return {'path': path, 'reason': reason, 'message': message,
            'mode': 'auto', 'timings': {'load': 2.1}}


# What the API returns for ?fields=uuid,name,driver_internal_info.
API_NODES = [
    {'uuid': U[0], 'name': 'rack1-node1',
     'driver_internal_info': {'agent_url': 'http://192.0.2.5:9999',
                              'kexec': kexec_record('kexec')}},
    {'uuid': U[1], 'name': 'rack1-node2',
     'driver_internal_info': {'kexec': kexec_record(
         'power-cycle', 'no_kernel',
         'no kernel in /boot of /dev/sda2')}},
    {'uuid': U[2], 'name': None,
     'driver_internal_info': {'kexec': kexec_record(
         'power-cycle', 'not_verified',
         'kexec executed, but the instance did not answer '
         'banner:192.0.2.7:22 within 600 s')}},
    {'uuid': U[3], 'name': 'rack2-node1',
     'driver_internal_info': {'kexec': kexec_record(
         'failed', 'lockdown', 'kernel lockdown: unsigned kernel')}},
    {'uuid': U[4], 'name': 'rack2-node2',
     'driver_internal_info': {'kexec': kexec_record('kexec')}},
    {'uuid': U[5], 'name': 'rack2-node3',
     'driver_internal_info': {'kexec': kexec_record(
         'power-cycle', 'no_kernel', 'no kernel in /boot of /dev/sda1')}},
    {'uuid': U[6], 'name': 'spare', 'driver_internal_info': {}},
]

EXPECTED = [
    'PATH         REASON        NODES',
    'kexec        -                 2',
    'power-cycle  no_kernel         2',
    'power-cycle  not_verified      1',
    'failed       lockdown          1',
    '(no record)  -                 1',
    'total                          7',
    '',
    'power-cycle no_kernel (2):',
    '  %s  rack1-node2  no kernel in /boot of /dev/sda2' % U[1],
    '  %s  rack2-node3  no kernel in /boot of /dev/sda1' % U[5],
    '',
    'power-cycle not_verified (1):',
    '  %s  -  kexec executed, but the instance did not answer '
    'banner:192.0.2.7:22 within 600 s' % U[2],
    '',
    'failed lockdown (1):',
    '  %s  rack2-node1  kernel lockdown: unsigned kernel' % U[3],
]


def labelled(nodes):
    """The nodes as python-ironicclient < 6.0 printed them: labels."""
    labels = {'uuid': 'UUID', 'name': 'Name',
              'driver_internal_info': 'Driver Internal Info'}
    return [{labels[k]: v for k, v in node.items()} for node in nodes]


def run_tool(text, *args):
    out = io.StringIO()
    rc = tool.main(list(args), stdin=io.StringIO(text), stdout=out)
    return rc, out.getvalue().splitlines()


class ReportTestCase(unittest.TestCase):

    def test_report_field_names(self):
        # python-ironicclient 6.0 and later print the field names.
        rc, lines = run_tool(json.dumps(API_NODES, indent=2))
        self.assertEqual(0, rc)
        self.assertEqual(EXPECTED, lines)

    def test_report_labels(self):
        rc, lines = run_tool(json.dumps(labelled(API_NODES), indent=2))
        self.assertEqual(0, rc)
        self.assertEqual(EXPECTED, lines)

    def test_long_output(self):
        nodes = [dict(n, provision_state='active', driver='ipmi-kexec')
                 for n in API_NODES]
        self.assertEqual(EXPECTED, run_tool(json.dumps(nodes))[1])

    def test_all_lists_every_node(self):
        rc, lines = run_tool(json.dumps(API_NODES), '--all')
        self.assertEqual(0, rc)
        self.assertEqual(EXPECTED[:8] + [
            'kexec - (2):',
            '  %s  rack1-node1  started /boot/vmlinuz' % U[0],
            '  %s  rack2-node2  started /boot/vmlinuz' % U[4],
            ''] + EXPECTED[8:] + [
            '',
            '(no record) - (1):',
            '  %s  spare  -' % U[6]], lines)

    def test_nodes_without_records(self):
        nodes = [{'uuid': U[0], 'name': 'a', 'driver_internal_info': None},
                 {'uuid': U[1], 'name': 'b'},
                 {'uuid': U[2], 'name': 'c',
                  'driver_internal_info': {'kexec': None}}]
        self.assertEqual(['PATH         REASON  NODES',
                          '(no record)  -           3',
                          'total                    3'],
                         run_tool(json.dumps(nodes))[1])

    def test_empty_fleet(self):
        self.assertEqual(['PATH         REASON  NODES',
                          'total                    0'],
                         run_tool('[]')[1])

    def test_driver_internal_info_as_text(self):
        nodes = [{'UUID': U[0], 'Name': 'a',
                  'Driver Internal Info': json.dumps(
                      {'kexec': kexec_record('failed', 'denied', 'rule x')})}]
        self.assertIn('failed       denied      1',
                      run_tool(json.dumps(nodes))[1])

    def test_bad_input(self):
        for text in ('', 'not json', '{"nodes": []}', '[1, 2]'):
            self.assertEqual(2, run_tool(text)[0], text)


class FakeIronic(object):
    """Ironic's node list API on 127.0.0.1, two nodes per page."""

    PAGE = 2

    def __init__(self, test, nodes):
        self.nodes = nodes
        self.requests = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                fake.requests.append(self.path)
                body = json.dumps(fake.answer(self.path)).encode()
                self.send_response(200)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body)))
                for name, value in (('Minimum', '1.1'),
                                    ('Maximum', '1.99'), ('', '1.99')):
                    self.send_header('X-OpenStack-Ironic-API-%sVersion'
                                     % (name + '-' if name else ''), value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      Handler)
        self.url = 'http://127.0.0.1:%d' % self.server.server_address[1]
        thread = threading.Thread(target=self.server.serve_forever,
                                  daemon=True)
        thread.start()
        test.addCleanup(thread.join, 10)
        test.addCleanup(self.server.server_close)
        test.addCleanup(self.server.shutdown)

    def answer(self, path):
        url = urllib.parse.urlsplit(path)
        if not url.path.rstrip('/').endswith('/nodes'):
            return {'id': 'v1'}
        query = urllib.parse.parse_qs(url.query)
        fields = query['fields'][0].split(',')
        uuids = [n['uuid'] for n in self.nodes]
        start = (uuids.index(query['marker'][0]) + 1
                 if 'marker' in query else 0)
        page = self.nodes[start:start + self.PAGE]
        answer = {'nodes': [{f: n.get(f) for f in fields} for n in page]}
        if start + self.PAGE < len(self.nodes):
            # As Ironic links the next page.
            query = urllib.parse.urlencode({'fields': ','.join(fields),
                                            'limit': self.PAGE,
                                            'marker': page[-1]['uuid']})
            answer['next'] = '%s/v1/nodes?%s' % (self.url, query)
        return answer

    def node_requests(self):
        """The query of each node list request, parsed."""
        return [urllib.parse.parse_qs(urllib.parse.urlsplit(p).query)
                for p in self.requests
                if urllib.parse.urlsplit(p).path.rstrip('/').endswith(
                    '/nodes')]


def doc_recipe():
    """The recipe's pipeline in the troubleshooting guide: argv lists."""
    with open(DOC) as f:
        text = f.read()
    section = text.split('Across a fleet\n--------------\n', 1)[1]
    match = re.search(r'^ *\$ (baremetal node list .*?)(?<!\\)\n', section,
                      re.M | re.S)
    command = match.group(1).replace('\\\n', ' ')
    return [shlex.split(part) for part in command.split('|')]


class RecipeTestCase(unittest.TestCase):
    """The guide's command line, run as is but for the programs' paths."""

    def setUp(self):
        self.baremetal = os.path.join(os.path.dirname(sys.executable),
                                      'baremetal')
        if not os.path.exists(self.baremetal):
            self.skipTest('no baremetal client next to %s' % sys.executable)
        self.api = FakeIronic(self, API_NODES)

    def run_recipe(self):
        listing, reporting = doc_recipe()
        self.assertEqual('baremetal', listing[0])
        self.assertEqual(['python3', 'tools/kexec_fleet_report.py'],
                         reporting[:2])
        env = dict(os.environ, OS_AUTH_TYPE='none', OS_ENDPOINT=self.api.url)
        for var in ('OS_CLOUD', 'OS_AUTH_URL', 'OS_TOKEN',
                    'OS_BAREMETAL_API_VERSION'):
            env.pop(var, None)
        listed = subprocess.run([self.baremetal] + listing[1:], env=env,
                                capture_output=True, text=True, timeout=120)
        self.assertEqual(0, listed.returncode, listed.stderr)
        reported = subprocess.run([sys.executable, TOOL] + reporting[2:],
                                  input=listed.stdout, capture_output=True,
                                  text=True, timeout=60)
        self.assertEqual(0, reported.returncode, reported.stderr)
        return json.loads(listed.stdout), reported.stdout.splitlines()

    def test_recipe(self):
        listed, lines = self.run_recipe()
        self.assertEqual(EXPECTED, lines)
        # Every node, across the API's pages, and only the fields asked.
        self.assertEqual(len(API_NODES), len(listed))
        queries = self.api.node_requests()
        self.assertEqual(4, len(queries))
        for query in queries:
            self.assertEqual(['uuid,name,driver_internal_info'],
                             query['fields'])
        # Whichever column style this client prints, the tool reads it.
        self.assertIn(set(listed[0]),
                      ({'uuid', 'name', 'driver_internal_info'},
                       {'UUID', 'Name', 'Driver Internal Info'}))
