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

"""Stand-ins for the hardware a unit test cannot have: the agent's HTTP
API (as a ``requests.Session``) and the BMC (as ipmitool's power calls).
"""

import base64
import json
import time

from ironic.common import states
import requests

from ironic_kexec import protocol

KERNEL = '/boot/vmlinuz-6.1.0-28-amd64'
INITRD = '/boot/initrd.img-6.1.0-28-amd64'
CMDLINE = 'root=UUID=0c3e1f4e ro quiet'


def load_result():
    """A successful kexec.load result as the agent reports it."""
    return {protocol.FIELD_KERNEL: KERNEL,
            protocol.FIELD_INITRD: INITRD,
            protocol.FIELD_INITRDS: [INITRD],
            protocol.FIELD_UKI: None,
            protocol.FIELD_SKIPPED: [],
            protocol.FIELD_CMDLINE: CMDLINE,
            protocol.FIELD_SOURCE: protocol.SOURCE_BLS,
            protocol.FIELD_ROOT_DEVICE: '/dev/sda2',
            protocol.FIELD_METHOD: protocol.METHOD_KEXEC_LOAD,
            protocol.FIELD_TIMINGS: {'discover': 0.2, 'load': 0.4},
            protocol.FIELD_PROTOCOL_VERSION: protocol.PROTOCOL_VERSION}


def agent_error(reason, message):
    """A command_error as IPA serializes a RESTError with our details."""
    return {'type': 'KexecError', 'code': 500, 'message': 'kexec failed',
            'details': protocol.error_details(reason, message)}


class FakeResponse(object):

    def __init__(self, status_code, body):
        self.status_code = status_code
        self._body = body
        self.text = json.dumps(body)

    def json(self):
        return self._body


class FakeBMC(object):
    """The node's power, as ipmitool's IPMIPower sees it."""

    def __init__(self, state=states.POWER_ON):
        self.state = state
        self.actions = []

    def get_power_state(self, iface, task):
        return self.state

    def set_power_state(self, iface, task, power_state, timeout=None):
        self.actions.append(power_state)
        self.state = power_state

    def reboot(self, iface, task, timeout=None):
        self.actions.append(states.REBOOT)
        self.state = states.POWER_ON


class FakeAgent(object):
    """The agent's API, as IPA answers it, behind a requests.Session.

    :param bmc: the FakeBMC, powered off by standby.power_off.
    """

    def __init__(self, bmc):
        self.bmc = bmc
        self.headers = {}
        self.extensions = {'standby', 'kexec', 'log', 'system'}
        self.commands = []
        self.posts = []
        self.answering = True
        # kexec.load: final status and result/error, and how many status
        # requests still see it RUNNING.
        self.load_status = 'SUCCEEDED'
        self.load_result = load_result()
        self.load_error = None
        self.load_running_polls = 1
        # kexec.execute: final status, and how many probes still get an
        # answer afterwards (None: the kexec never happens).
        self.execute_status = 'SUCCEEDED'
        self.execute_error = None
        self.execute_drops_reply = False
        self.answers_after_execute = 1
        # When each request came, on the monotonic clock: (method, time).
        self.times = []
        self.busy = False
        # A paused VM or a dead link: requests get no answer until their
        # timeout (the timeout each request was given is kept).
        self.silent = False
        self.silent_after_load = False
        self.timeouts = []
        # Status requests that still lose their answer.
        self.lost_gets = 0
        self._running = None

    def mount(self, prefix, adapter):
        pass

    def _unknown(self, status, message):
        return FakeResponse(status, {'faultcode': 'Client',
                                     'faultstring': message})

    def _no_answer(self, timeout):
        self.timeouts.append(timeout)
        if self.silent:
            time.sleep(timeout)
            raise requests.ReadTimeout('Read timed out. (read timeout=%s)'
                                       % timeout)

    def post(self, url, params=None, data=None, verify=None, timeout=None):
        if not self.answering:
            raise requests.ConnectionError('Connection refused')
        body = json.loads(data)
        name, params_ = body['name'], body['params']
        self.times.append((name, time.monotonic()))
        self.posts.append((name, params_, (params or {}).get('wait')))
        # Sent, and lost on the way or never answered.
        self._no_answer(timeout)
        if self.busy:
            return self._unknown(409, 'Agent is busy: executing command x')
        extension, command = name.split('.', 1)
        if extension not in self.extensions:
            return self._unknown(
                404, 'Not found: Extension with id %s not found.'
                % extension)
        handler = getattr(self, '_%s_%s' % (extension, command), None)
        if handler is None:
            return self._unknown(
                400, 'Invalid command: Unknown command: %s' % command)
        result = {'id': str(len(self.commands)), 'command_name': command,
                  'command_params': params_, 'command_status': 'SUCCEEDED',
                  'command_error': None, 'command_result': None}
        self.commands.append(result)
        handler(result)
        return FakeResponse(200, dict(result))

    def get(self, url, params=None, verify=None, timeout=None):
        self.times.append(('GET', time.monotonic()))
        self._no_answer(timeout)
        if self.lost_gets > 0:
            self.lost_gets -= 1
            raise requests.ConnectionError('Connection reset by peer')
        if self.answers_after_execute is not None and self._executed():
            if self.answers_after_execute <= 0:
                self.answering = False
            self.answers_after_execute -= 1
        if not self.answering:
            raise requests.ConnectionError('Connection refused')
        if self._running is not None:
            if self._running['polls'] <= 0:
                self._running['command'].update(self._running['final'])
                self._running = None
            else:
                self._running['polls'] -= 1
        return FakeResponse(200, {'commands': [dict(c)
                                               for c in self.commands]})

    def _executed(self):
        return any(c['command_name'] == protocol.EXECUTE
                   and c['command_status'] == 'SUCCEEDED'
                   for c in self.commands)

    def _kexec_get_boot_entry(self, result):
        result['command_result'] = {
            field: self.load_result[field]
            for field in protocol.BOOT_ENTRY_FIELDS}

    def _kexec_load(self, result):
        final = {'command_status': self.load_status,
                 'command_result': self.load_result
                 if self.load_status == 'SUCCEEDED' else None,
                 'command_error': self.load_error}
        result['command_status'] = 'RUNNING'
        self._running = {'command': result, 'final': final,
                         'polls': self.load_running_polls}
        self.silent = self.silent or self.silent_after_load

    def _kexec_execute(self, result):
        result['command_status'] = self.execute_status
        result['command_error'] = self.execute_error
        if self.execute_status == 'SUCCEEDED':
            result['command_result'] = {
                protocol.FIELD_DELAY: result['command_params']['delay']}
        if self.execute_drops_reply:
            raise requests.ConnectionError('Connection reset by peer')

    def _standby_power_off(self, result):
        self.bmc.state = states.POWER_OFF
        self.answering = False

    def _standby_sync(self, result):
        pass

    def _system_lockdown(self, result):
        self.answering = False

    def _log_collect_system_logs(self, result):
        result['command_result'] = {
            'system_logs': base64.b64encode(b'agent logs').decode()}

    def command_names(self):
        return [name for name, _params, _wait in self.posts]
