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

"""The devstack plugin's phases, run in bash against fake_devstack.sh."""

import configparser
from importlib import metadata
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..', '..'))
FAKE = os.path.join(HERE, 'fake_devstack.sh')
SCRIPTS = [os.path.join(REPO, 'devstack', name)
           for name in ('plugin.sh', 'settings', 'lib/ironic-kexec')]
# Every [kexec] option the plugin can write, by its settings variable.
KEXEC_OPTIONS = {
    'IRONIC_KEXEC_ENABLED': ('enabled', 'False'),
    'IRONIC_KEXEC_DEFAULT_MODE': ('default_mode', 'required'),
    'IRONIC_KEXEC_EXTRA_ARGS': ('extra_args', 'console=ttyS0 quiet'),
    'IRONIC_KEXEC_FILE_SYSCALL': ('file_syscall', 'always'),
    'IRONIC_KEXEC_LOAD_TIMEOUT': ('load_timeout', '300'),
    'IRONIC_KEXEC_EXECUTE_DELAY': ('execute_delay', '2'),
    'IRONIC_KEXEC_AGENT_GONE_TIMEOUT': ('agent_gone_timeout', '90'),
    'IRONIC_KEXEC_AGENT_GONE_INTERVAL': ('agent_gone_interval', '0.5'),
    'IRONIC_KEXEC_ALLOW_NETWORK_ISOLATION': ('allow_network_isolation',
                                             'True'),
    'IRONIC_KEXEC_LOAD_POLL_INTERVAL': ('load_poll_interval', '0.5'),
    'IRONIC_KEXEC_VERIFY': ('verify', 'banner:2222'),
    'IRONIC_KEXEC_VERIFY_TIMEOUT': ('verify_timeout', '900'),
    'IRONIC_KEXEC_VERIFY_INTERVAL': ('verify_interval', '10'),
    'IRONIC_KEXEC_VERIFY_PROBE_TIMEOUT': ('verify_probe_timeout', '1.5'),
    'IRONIC_KEXEC_CIRCUIT_BREAKER_THRESHOLD': ('circuit_breaker_threshold',
                                               '5'),
    'IRONIC_KEXEC_DENY_LIST': ('deny_list', '/etc/ironic/kexec-deny.json'),
}
STOCK_CONF = """[DEFAULT]
enabled_hardware_types = ipmi,fake-hardware
enabled_deploy_interfaces = fake,direct,ramdisk

[conductor]
automated_clean = False
"""


def has_deploy_interface(name):
    return bool(metadata.entry_points(
        group='ironic.hardware.interfaces.deploy', name=name))


class PluginTestCase(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix='ironic-kexec-devstack-')
        self.addCleanup(shutil.rmtree, self.tmp)
        self.dest = os.path.join(self.tmp, 'opt-stack')
        os.makedirs(self.dest)
        # devstack clones enabled plugins into $DEST/<name>.
        os.symlink(REPO, os.path.join(self.dest, 'ironic-kexec'))
        self.conf = os.path.join(self.tmp, 'ironic.conf')
        with open(self.conf, 'w') as f:
            f.write(STOCK_CONF)
        self.tempest_conf = os.path.join(self.tmp, 'tempest.conf')
        self.log = os.path.join(self.tmp, 'calls.log')
        self.builder = os.path.join(self.dest, 'ironic-python-agent-builder')
        # What ironic's plugin has set by the time ours runs.
        self.env = {
            'PATH': os.environ.get('PATH', '/usr/bin:/bin'),
            'FAKE_LOG': self.log,
            'FAKE_PYTHON': sys.executable,
            'FAKE_NODES': '',
            'PYTHON': sys.executable,
            'DEST': self.dest,
            'ENABLED_SERVICES': 'key,mysql,ir-api,ir-cond,tempest',
            'IRONIC_CONF_FILE': self.conf,
            'TEMPEST_CONFIG': self.tempest_conf,
            'IRONIC_CMD': 'openstack --os-cloud devstack-admin baremetal',
            'IRONIC_DEPLOY_DRIVER': 'ipmi',
            'IRONIC_ENABLED_HARDWARE_TYPES': 'ipmi,fake-hardware',
            'IRONIC_BUILD_DEPLOY_RAMDISK': 'True',
            'IRONIC_DIB_RAMDISK_OPTIONS': 'centos',
            'IRONIC_PYTHON_AGENT_BUILDER_REPO':
                'https://opendev.org/openstack/ironic-python-agent-builder',
            'IRONIC_PYTHON_AGENT_BUILDER_DIR': self.builder,
            'IRONIC_PYTHON_AGENT_BUILDER_BRANCH': 'master',
        }

    def run_phases(self, *phases, expect_rc=0, **env):
        """Runs plugin phases in one shell, as stack.sh does.

        :returns: the variables the phases left behind, as a dict.
        """
        script = ['set -o errexit', 'source "$1"',
                  'source "$DEST/ironic-kexec/devstack/settings"']
        for phase in phases:
            script.append('source "$DEST/ironic-kexec/devstack/plugin.sh" '
                          + phase)
        script.append('for v in IRONIC_DIB_RAMDISK_OPTIONS '
                      'DIB_REPOLOCATION_ironic_kexec DIB_REPOREF_ironic_kexec;'
                      ' do echo "@@$v=$(printenv $v)"; done')
        full_env = dict(self.env, **env)
        proc = subprocess.run(
            ['bash', '-c', '\n'.join(script), 'plugin-test', FAKE],
            env=full_env, capture_output=True, text=True, timeout=60)
        self.assertEqual(expect_rc, proc.returncode,
                         'stdout:\n%s\nstderr:\n%s' % (proc.stdout,
                                                       proc.stderr))
        left = {}
        for line in proc.stdout.splitlines():
            if line.startswith('@@'):
                name, _, value = line[2:].partition('=')
                left[name] = value
        return left

    def calls(self, name=None):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            calls = [line.rstrip('\n').split('\x1f') for line in f]
        if name:
            calls = [c[1:] for c in calls if c[0] == name]
        return calls

    def read_conf(self, path=None):
        parser = configparser.RawConfigParser(default_section='\x00none')
        parser.read(path or self.conf)
        return parser

    def conf_list(self, option, section='DEFAULT', path=None):
        return self.read_conf(path).get(section, option).split(',')

    def expected_deploy_interfaces(self):
        expected = ['fake', 'direct', 'ramdisk', 'kexec']
        if has_deploy_interface('ramdisk-kexec'):
            expected.append('ramdisk-kexec')
        return expected

    # stack install

    def test_install_develops_the_conductor_extra(self):
        self.run_phases('stack install')
        self.assertEqual(
            [[os.path.join(self.dest, 'ironic-kexec'), 'conductor']],
            self.calls('setup_develop'))
        self.assertEqual([], self.calls('iniset'))
        with open(self.conf) as f:
            self.assertEqual(STOCK_CONF, f.read())

    # stack post-config

    def test_post_config_enables_types_and_interfaces(self):
        self.run_phases('stack post-config')
        self.assertEqual(['ipmi', 'fake-hardware', 'ipmi-kexec'],
                         self.conf_list('enabled_hardware_types'))
        self.assertEqual(self.expected_deploy_interfaces(),
                         self.conf_list('enabled_deploy_interfaces'))
        # Nothing set, nothing written: the code's defaults apply.
        self.assertFalse(self.read_conf().has_section('kexec'))
        # What ironic wrote elsewhere is kept.
        self.assertEqual('False', self.read_conf().get('conductor',
                                                       'automated_clean'))

    def test_post_config_adds_redfish_kexec_with_redfish(self):
        self.run_phases('stack post-config',
                        IRONIC_ENABLED_HARDWARE_TYPES='ipmi,redfish')
        self.assertEqual(['ipmi', 'fake-hardware', 'ipmi-kexec',
                          'redfish-kexec'],
                         self.conf_list('enabled_hardware_types'))

    def test_post_config_twice_changes_nothing_more(self):
        self.run_phases('stack post-config', 'stack post-config')
        self.assertEqual(['ipmi', 'fake-hardware', 'ipmi-kexec'],
                         self.conf_list('enabled_hardware_types'))
        self.assertEqual(self.expected_deploy_interfaces(),
                         self.conf_list('enabled_deploy_interfaces'))

    def test_post_config_writes_kexec_options(self):
        env = {var: value for var, (_, value) in KEXEC_OPTIONS.items()}
        self.run_phases('stack post-config', **env)
        conf = self.read_conf()
        written = dict(conf.items('kexec'))
        self.assertEqual(dict(KEXEC_OPTIONS.values()), written)

    def test_post_config_writes_only_the_options_set(self):
        self.run_phases('stack post-config',
                        IRONIC_KEXEC_DEFAULT_MODE='required',
                        IRONIC_KEXEC_LOAD_TIMEOUT='600')
        self.assertEqual({'default_mode': 'required',
                          'load_timeout': '600'},
                         dict(self.read_conf().items('kexec')))

    def test_kexec_options_exist_in_the_code(self):
        try:
            from ironic_kexec import conf as kexec_conf
        except ImportError as e:
            self.skipTest('ironic_kexec.conf is not importable: %s' % e)
        names = set()
        for group, opts in kexec_conf.list_opts():
            group_name = getattr(group, 'name', group)
            if group_name == 'kexec':
                names.update(opt.name for opt in opts)
        for variable, (option, _) in KEXEC_OPTIONS.items():
            self.assertIn(option, names,
                          '%s writes [kexec]%s, which the code does not '
                          'define' % (variable, option))

    def test_every_kexec_option_has_a_variable(self):
        try:
            from ironic_kexec import conf as kexec_conf
        except ImportError as e:
            self.skipTest('ironic_kexec.conf is not importable: %s' % e)
        names = {opt.name for _group, opts in kexec_conf.list_opts()
                 for opt in opts}
        self.assertEqual(set(), names - {option for option, _ in
                                         KEXEC_OPTIONS.values()},
                         'options devstack cannot set')

    def test_post_config_adds_the_element_to_the_ramdisk_build(self):
        left = self.run_phases('stack post-config', 'stack post-config')
        self.assertEqual('centos ironic-kexec',
                         left['IRONIC_DIB_RAMDISK_OPTIONS'])
        link = os.path.join(self.builder, 'dib', 'ironic-kexec')
        self.assertTrue(os.path.islink(link))
        self.assertEqual(
            os.path.realpath(os.path.join(REPO, 'elements', 'ironic-kexec')),
            os.path.realpath(link))
        self.assertTrue(os.path.isfile(os.path.join(
            link, 'install.d', '80-ironic-kexec-install')))
        self.assertEqual(os.path.join(self.dest, 'ironic-kexec'),
                         left['DIB_REPOLOCATION_ironic_kexec'])
        self.assertEqual('HEAD', left['DIB_REPOREF_ironic_kexec'])
        self.assertEqual(
            [self.env['IRONIC_PYTHON_AGENT_BUILDER_REPO'], self.builder,
             'master'],
            self.calls('git_clone')[0])

    def test_post_config_with_a_downloaded_ramdisk_warns(self):
        left = self.run_phases('stack post-config',
                               IRONIC_BUILD_DEPLOY_RAMDISK='False')
        self.assertEqual('centos', left['IRONIC_DIB_RAMDISK_OPTIONS'])
        self.assertEqual([], self.calls('git_clone'))
        self.assertFalse(os.path.lexists(
            os.path.join(self.builder, 'dib', 'ironic-kexec')))
        warnings = self.calls('warn')
        self.assertEqual(1, len(warnings))
        self.assertIn('IRONIC_BUILD_DEPLOY_RAMDISK', ' '.join(warnings[0]))

    def test_post_config_element_can_be_turned_off(self):
        left = self.run_phases('stack post-config',
                               IRONIC_KEXEC_RAMDISK_ELEMENT='False')
        self.assertEqual('centos', left['IRONIC_DIB_RAMDISK_OPTIONS'])
        self.assertEqual([], self.calls('git_clone'))
        self.assertEqual([], self.calls('warn'))

    def test_post_config_without_ironic_conf_dies(self):
        os.unlink(self.conf)
        self.run_phases('stack post-config', expect_rc=1)
        self.assertEqual(1, len(self.calls('die')))
        self.assertFalse(os.path.exists(self.conf))

    # stack extra

    def test_extra_moves_the_enrolled_nodes_to_kexec(self):
        self.run_phases('stack extra', FAKE_NODES='node-1 node-2')
        base = ['--os-cloud', 'devstack-admin', 'baremetal']
        self.assertEqual(
            [base + ['node', 'list', '--driver', 'ipmi', '-f', 'value',
                     '-c', 'UUID'],
             base + ['node', 'set', 'node-1', '--driver', 'ipmi-kexec',
                     '--deploy-interface', 'kexec'],
             base + ['node', 'set', 'node-2', '--driver', 'ipmi-kexec',
                     '--deploy-interface', 'kexec']],
            self.calls('openstack'))

    def test_extra_redfish_nodes_and_node_mode(self):
        self.run_phases('stack extra', FAKE_NODES='node-1',
                        IRONIC_DEPLOY_DRIVER='redfish',
                        IRONIC_KEXEC_NODE_MODE='required')
        self.assertEqual(
            ['--os-cloud', 'devstack-admin', 'baremetal', 'node', 'set',
             'node-1', '--driver', 'redfish-kexec', '--deploy-interface',
             'kexec', '--driver-info', 'kexec_mode=required'],
            self.calls('openstack')[1])

    def test_extra_leaves_nodes_alone_when_asked(self):
        self.run_phases('stack extra', FAKE_NODES='node-1',
                        IRONIC_KEXEC_CONFIGURE_NODES='False')
        self.assertEqual([], self.calls('openstack'))

    def test_extra_dies_for_a_driver_without_kexec_twin(self):
        self.run_phases('stack extra', FAKE_NODES='node-1',
                        IRONIC_DEPLOY_DRIVER='idrac', expect_rc=1)
        self.assertEqual([], self.calls('openstack'))
        self.assertIn('IRONIC_KEXEC_HARDWARE_TYPE',
                      ' '.join(self.calls('die')[0]))

    # stack test-config

    def test_test_config_tells_tempest(self):
        with open(self.tempest_conf, 'w') as f:
            f.write('[baremetal]\nenabled_hardware_types = ipmi\n'
                    'enabled_deploy_interfaces = direct\n')
        self.run_phases('stack test-config')
        self.assertEqual(['ipmi', 'ipmi-kexec'], self.conf_list(
            'enabled_hardware_types', 'baremetal', self.tempest_conf))
        self.assertEqual(['direct', 'kexec'], self.conf_list(
            'enabled_deploy_interfaces', 'baremetal', self.tempest_conf))

    # unstack, clean

    def test_unstack_changes_nothing(self):
        self.run_phases('unstack')
        with open(self.conf) as f:
            self.assertEqual(STOCK_CONF, f.read())
        self.assertEqual([], self.calls())

    def test_clean_removes_the_element_link(self):
        link = os.path.join(self.builder, 'dib', 'ironic-kexec')
        self.run_phases('stack post-config')
        self.assertTrue(os.path.islink(link))
        self.run_phases('clean')
        self.assertFalse(os.path.lexists(link))
        # The element itself is untouched.
        self.assertTrue(os.path.isdir(
            os.path.join(REPO, 'elements', 'ironic-kexec')))

    def test_whole_stack_in_order(self):
        left = self.run_phases('stack pre-install', 'stack install',
                               'stack post-config', 'stack extra',
                               'stack test-config', 'unstack', 'clean',
                               FAKE_NODES='node-1')
        self.assertEqual('centos ironic-kexec',
                         left['IRONIC_DIB_RAMDISK_OPTIONS'])
        self.assertIn('ipmi-kexec', self.conf_list('enabled_hardware_types'))
        self.assertIn(['--os-cloud', 'devstack-admin', 'baremetal', 'node',
                       'set', 'node-1', '--driver', 'ipmi-kexec',
                       '--deploy-interface', 'kexec'],
                      self.calls('openstack'))

    def test_nothing_happens_without_ironic(self):
        self.run_phases('stack install', 'stack post-config', 'stack extra',
                        ENABLED_SERVICES='key,mysql,nova')
        self.assertEqual([], self.calls())
        with open(self.conf) as f:
            self.assertEqual(STOCK_CONF, f.read())


class ScriptsTestCase(unittest.TestCase):

    def test_bash_syntax(self):
        for script in SCRIPTS:
            proc = subprocess.run(['bash', '-n', script],
                                  capture_output=True, text=True)
            self.assertEqual(0, proc.returncode, proc.stderr)

    @unittest.skipUnless(shutil.which('shellcheck'), 'shellcheck missing')
    def test_shellcheck(self):
        proc = subprocess.run(['shellcheck', '-x'] + SCRIPTS + [FAKE],
                              cwd=REPO, capture_output=True, text=True)
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
