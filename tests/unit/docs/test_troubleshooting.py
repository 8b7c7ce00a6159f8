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

"""The troubleshooting guide explains every reason code of the protocol."""

import os
import re
import unittest

from ironic_kexec import protocol

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                   '..', 'doc', 'source', 'troubleshooting.rst')


def documented_codes():
    """The terms of the definition list under "Reason codes"."""
    with open(DOC) as f:
        text = f.read()
    section = text.split('Reason codes\n------------\n', 1)[1]
    section = section.split('\n-----', 1)[0]
    # A term is a line holding only ``code``, its definition indented
    # below it.
    return re.findall(r'^``([a-z_]+)``\n   \S', section, re.M)


class TroubleshootingTestCase(unittest.TestCase):

    def test_every_reason_code_is_explained(self):
        missing = set(protocol.REASONS) - set(documented_codes())
        self.assertEqual(set(), missing,
                         'doc/source/troubleshooting.rst does not explain '
                         'these reason codes')

    def test_no_unknown_codes(self):
        unknown = set(documented_codes()) - set(protocol.REASONS)
        self.assertEqual(set(), unknown)

    def test_each_code_once(self):
        codes = documented_codes()
        self.assertEqual(len(codes), len(set(codes)))
