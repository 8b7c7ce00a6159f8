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

"""The documentation names everything an operator can set.

Every ``[kexec]`` option, every devstack variable and every
``driver_info``/``instance_info`` key the plugin reads. (The reason codes
are checked by test_troubleshooting.)
"""

import glob
import os
import re
import unittest

from ironic_kexec import conf
from ironic_kexec import policy
from ironic_kexec import verify

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..',
                                   '..'))
DOC = os.path.join(TOP, 'doc', 'source')
# The page with the devstack plugin's section.
DEVSTACK_DOC = 'install.rst'
# The pages that document the node and deploy keys.
KEY_DOCS = ('usage.rst', 'configuration.rst')


def read(*path):
    with open(os.path.join(*path)) as f:
        return f.read()


def literal(name):
    """A regex for ``name`` inside an inline literal of the docs."""
    return re.compile(r'``[^`\n]*(?<![\w-])%s(?![\w-])[^`\n]*``'
                      % re.escape(name))


def node_keys():
    """The driver_info/instance_info keys the conductor side reads.

    ``policy.PROPERTIES`` (what Ironic shows as the driver's properties),
    the key constants of the modules that read node fields, and any
    ``kexec_*`` key read by a literal anywhere in ``ironic_kexec``.
    """
    keys = set(policy.PROPERTIES)
    for module in (policy, verify):
        keys.update(value for name, value in vars(module).items()
                    if name.isupper() and isinstance(value, str)
                    and value.startswith('kexec_'))
    for path in glob.glob(os.path.join(TOP, 'ironic_kexec', '*.py')):
        keys.update(re.findall(
            r"(?:instance_info|driver_info)(?:\.get\(|\[)\s*"
            r"['\"](kexec_\w+)['\"]", read(path)))
    return keys


class ConsistencyTestCase(unittest.TestCase):

    def test_every_option_in_the_configuration_page(self):
        text = read(DOC, 'configuration.rst')
        names = [opt.name for group, opts in conf.list_opts()
                 for opt in opts]
        self.assertTrue(names)
        missing = sorted(
            name for name in names
            if not re.search(r'``(\[kexec\])?%s``' % re.escape(name), text))
        self.assertEqual([], missing,
                         'doc/source/configuration.rst does not name these '
                         '[kexec] options')

    def devstack_variables(self):
        return re.findall(r'^(IRONIC_KEXEC_[A-Z0-9_]+)=',
                          read(TOP, 'devstack', 'settings'), re.M)

    def test_every_devstack_variable_documented(self):
        text = read(DOC, DEVSTACK_DOC)
        self.assertIn('enable_plugin ironic-kexec', text)
        variables = self.devstack_variables()
        self.assertIn('IRONIC_KEXEC_DIR', variables)
        missing = sorted(name for name in variables
                         if not literal(name).search(text))
        self.assertEqual([], missing,
                         'doc/source/%s does not document these devstack '
                         'variables' % DEVSTACK_DOC)

    def test_no_stale_devstack_variable(self):
        documented = set(re.findall(r'``(IRONIC_KEXEC_[A-Z][A-Z0-9_]*)',
                                    read(DOC, DEVSTACK_DOC)))
        stale = documented - set(self.devstack_variables())
        self.assertEqual(set(), stale,
                         'documented, but not in devstack/settings')

    def test_every_node_key_documented(self):
        keys = node_keys()
        # What the code reads today, at least.
        self.assertLessEqual(
            {policy.MODE, policy.EXTRA_ARGS, policy.KERNEL, policy.INITRD,
             policy.CMDLINE, policy.FAILURES, verify.SPEC, verify.ADDRESS},
            keys)
        text = '\n'.join(read(DOC, name) for name in KEY_DOCS)
        missing = sorted(key for key in keys if not literal(key).search(text))
        self.assertEqual([], missing,
                         'neither %s documents these driver_info or '
                         'instance_info keys' % ' nor '.join(KEY_DOCS))

    def test_literal_matches_whole_names(self):
        self.assertTrue(literal('kexec_mode').search('``kexec_mode``'))
        self.assertTrue(literal('kexec_mode').search(
            '``instance_info/kexec_mode``'))
        self.assertFalse(literal('kexec_mode').search('``kexec_mode_step``'))
        self.assertFalse(literal('kexec_mode').search('kexec_mode'))
