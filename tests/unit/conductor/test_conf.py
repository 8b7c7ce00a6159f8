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

import importlib.metadata

from ironic.conf import CONF
from ironic.tests import base as ironic_base

from ironic_kexec import conf
from ironic_kexec import protocol


class ConfTestCase(ironic_base.TestCase):

    def test_registered_on_ironic_conf(self):
        self.assertTrue(CONF.kexec.enabled)
        self.assertEqual('auto', CONF.kexec.default_mode)
        self.assertEqual(protocol.FILE_SYSCALL_AUTO, CONF.kexec.file_syscall)

    def test_every_option_has_help(self):
        [(group, opts)] = conf.list_opts()
        self.assertEqual('kexec', group)
        names = {opt.name for opt in opts}
        self.assertLessEqual(
            {'enabled', 'default_mode', 'extra_args', 'file_syscall',
             'load_timeout', 'execute_delay', 'agent_gone_timeout',
             'agent_gone_interval', 'allow_network_isolation'}, names)
        for opt in opts:
            self.assertGreater(len(opt.help), 40, opt.name)

    def test_choices_match_protocol(self):
        self.assertRaises(ValueError, self.config, default_mode='sometimes',
                          group='kexec')
        self.assertRaises(ValueError, self.config, file_syscall='maybe',
                          group='kexec')
        for mode in protocol.FILE_SYSCALL_MODES:
            self.config(file_syscall=mode, group='kexec')

    def test_entry_point(self):
        eps = importlib.metadata.entry_points(group='oslo.config.opts')
        [ep] = [e for e in eps if e.name == 'ironic_kexec']
        self.assertIs(conf.list_opts, ep.load())
