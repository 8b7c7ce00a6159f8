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

import os
import subprocess
import sys

from oslotest import base as test_base

from ironic_kexec import protocol

_TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

_IMPORT_ALONE = """
import sys
sys.modules['ironic'] = None
sys.modules['ironic_python_agent'] = None
import ironic_kexec.protocol as p
assert p.REASONS
print('ok')
"""


class ProtocolTestCase(test_base.BaseTestCase):

    def test_imports_without_ironic_or_agent(self):
        out = subprocess.run([sys.executable, '-c', _IMPORT_ALONE],
                             cwd=_TOP, capture_output=True, text=True,
                             check=False)
        self.assertEqual(0, out.returncode, out.stderr)
        self.assertEqual('ok', out.stdout.strip())

    def test_every_reason_explained(self):
        codes = {value for name, value in vars(protocol).items()
                 if name.startswith('REASON_')}
        self.assertEqual(codes, set(protocol.REASONS))
        for code, text in protocol.REASONS.items():
            self.assertTrue(text.strip(), code)

    def test_reason_from_error(self):
        error = {'type': 'KexecError', 'code': 500,
                 'details': protocol.error_details(
                     protocol.REASON_NOT_APPLICABLE, 'x')}
        self.assertEqual(protocol.REASON_NOT_APPLICABLE,
                         protocol.reason_from_error(error))
        self.assertIsNone(protocol.reason_from_error(
            {'details': {'reason': 'made_up'}}))
        self.assertIsNone(protocol.reason_from_error('text error'))

    def test_versions(self):
        self.assertTrue(protocol.is_version(protocol.PROTOCOL_VERSION))
        self.assertLessEqual(1, protocol.MIN_PROTOCOL_VERSION)
        self.assertLessEqual(protocol.MIN_PROTOCOL_VERSION,
                             protocol.PROTOCOL_VERSION)
        # Every version, up to this one, says what it added.
        self.assertEqual(set(range(1, protocol.PROTOCOL_VERSION + 1)),
                         set(protocol.PROTOCOL_VERSIONS))
        for version in protocol.PROTOCOL_VERSIONS:
            self.assertIn('\n%d. ' % version, protocol.__doc__)
        for junk in (None, 0, -1, True, '2', 2.0):
            self.assertFalse(protocol.is_version(junk), junk)

    def test_agent_serves(self):
        # A conductor that sends no version is of version 1.
        self.assertEqual(protocol.MIN_PROTOCOL_VERSION <= 1,
                         protocol.agent_serves(None))
        for version in range(protocol.MIN_PROTOCOL_VERSION,
                             protocol.PROTOCOL_VERSION + 1):
            self.assertTrue(protocol.agent_serves(version))
        self.assertFalse(protocol.agent_serves(protocol.PROTOCOL_VERSION + 1))
        self.assertFalse(protocol.agent_serves(0))
        self.assertFalse(protocol.agent_serves('2'))

    def test_version_needed(self):
        self.assertEqual(1, protocol.version_needed({}))
        self.assertEqual(1, protocol.version_needed(
            {protocol.PARAM_KERNEL_URL: 'http://x/k',
             protocol.PARAM_PROTOCOL_VERSION: protocol.PROTOCOL_VERSION}))
        self.assertEqual(2, protocol.version_needed(
            {protocol.PARAM_DENY: []}))
        # Every parameter at once: never more than this release speaks.
        params = {value: None for name, value in vars(protocol).items()
                  if name.startswith('PARAM_')}
        self.assertLessEqual(protocol.version_needed(params),
                             protocol.PROTOCOL_VERSION)

    def test_error_details_with_version(self):
        self.assertEqual(
            {'reason': protocol.REASON_PROTOCOL_MISMATCH, 'message': 'x',
             'protocol_version': 2},
            protocol.error_details(protocol.REASON_PROTOCOL_MISMATCH, 'x',
                                   protocol_version=2))
        self.assertNotIn(protocol.DETAIL_PROTOCOL_VERSION,
                         protocol.error_details(protocol.REASON_DENIED, 'x'))
