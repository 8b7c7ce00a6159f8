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

"""The ramdisk element's install script, run for real into a fresh venv.

The project's wheel is built from this checkout; the wheels of its agent
side requirements come from a cache under $IRONIC_KEXEC_CACHE, filled from
the package index on the first run only, so later runs work offline.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..', '..'))
ELEMENT = os.path.join(REPO, 'elements', 'ironic-kexec')
INSTALL = os.path.join(ELEMENT, 'install.d', '80-ironic-kexec-install')
CACHE = os.path.join(
    os.environ.get('IRONIC_KEXEC_CACHE')
    or os.path.join(os.path.expanduser('~'), '.cache', 'ironic-kexec'),
    'wheels', 'element-test')

PROBE = """
import importlib.util, json, sys
from importlib import metadata

def dist(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None

eps = metadata.entry_points(group='ironic_python_agent.extensions',
                            name='kexec')
print(json.dumps({
    'ipa_kexec': importlib.util.find_spec('ipa_kexec') is not None,
    'ironic': importlib.util.find_spec('ironic') is not None,
    'ironic_dist': dist('ironic'),
    'ipa_dist': dist('ironic-python-agent'),
    'version': dist('ironic-kexec'),
    'entry_points': [ep.value for ep in eps],
    'prefix': sys.prefix,
}))
"""


def _run(cmd, **kwargs):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode:
        raise AssertionError('%s failed (%d):\n%s\n%s' % (
            ' '.join(cmd), proc.returncode, proc.stdout[-3000:],
            proc.stderr[-3000:]))
    return proc


class ElementInstallTestCase(unittest.TestCase):
    # One test: the install is the expensive part, and stestr would run
    # the setup of a class split over its workers once per worker.

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix='ironic-kexec-element-')
        self.addCleanup(shutil.rmtree, self.tmp)
        self.pip = [sys.executable, '-m', 'pip',
                    '--disable-pip-version-check']

    def build_wheel(self):
        dist = os.path.join(self.tmp, 'dist')
        cmd = self.pip + ['wheel', '-q', '--no-deps', '-w', dist, REPO]
        # Without build isolation when this environment can build wheels
        # (offline); else pip fetches pbr and setuptools from the index.
        if subprocess.run(cmd[:-1] + ['--no-build-isolation', REPO],
                          capture_output=True).returncode:
            _run(cmd, timeout=600)
        return glob.glob(os.path.join(dist, 'ironic_kexec-*.whl'))[0]

    def make_wheelhouse(self, wheel):
        # The agent extra's requirements: from the cache alone if it has
        # them all, else from the index once.
        os.makedirs(CACHE, exist_ok=True)
        want = wheel + '[agent]'
        offline = subprocess.run(
            self.pip + ['wheel', '-q', '--no-index', '--find-links', CACHE,
                        '-w', CACHE, want], capture_output=True)
        if offline.returncode:
            _run(self.pip + ['wheel', '-q', '--find-links', CACHE,
                             '-w', CACHE, want], timeout=600)
        wheelhouse = os.path.join(self.tmp, 'wheelhouse')
        os.makedirs(wheelhouse)
        for path in glob.glob(os.path.join(CACHE, '*.whl')):
            name = os.path.basename(path)
            if not name.startswith('ironic_kexec-'):
                os.symlink(path, os.path.join(wheelhouse, name))
        shutil.copy(wheel, wheelhouse)
        return wheelhouse

    def run_install(self, venv, wheel, wheelhouse, path=None, **settings):
        env = {
            'PATH': path or os.environ.get('PATH', '/usr/bin:/bin'),
            'HOME': self.tmp,
            # Bytecode is of no use to a venv deleted in a minute.
            'PIP_NO_COMPILE': '1',
            'IPA_KEXEC_VENV': venv,
            'IPA_KEXEC_SOURCE': wheel,
            'IPA_KEXEC_WHEELHOUSE': wheelhouse,
            # Not whatever this host may have at the default path.
            'IPA_KEXEC_UPPER_CONSTRAINTS': '',
        }
        env.update(settings)
        return subprocess.run(['bash', INSTALL], env=env, cwd=self.tmp,
                              capture_output=True, text=True, timeout=300)

    def constraints(self, text):
        path = os.path.join(self.tmp, 'upper-constraints-%d.txt'
                            % len(os.listdir(self.tmp)))
        with open(path, 'w') as f:
            f.write(text)
        return path

    def check_pin_and_constraints(self, venv, wheel, wheelhouse, version):
        # Unpinned: installed, with a warning naming the version.
        proc = self.run_install(venv, wheel, wheelhouse)
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn('WARNING: installed ironic-kexec %s' % version,
                      proc.stderr)
        self.assertIn('IPA_KEXEC_VERSION is not set', proc.stderr)

        # Pinned to the version the wheel has: installed, no warning.
        proc = self.run_install(venv, wheel, wheelhouse,
                                IPA_KEXEC_VERSION=version)
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.assertNotIn('WARNING', proc.stderr)
        self.assertIn('installed ironic-kexec %s' % version, proc.stdout)

        # Pinned to another release (the conductors'): the build fails.
        proc = self.run_install(venv, wheel, wheelhouse,
                                IPA_KEXEC_VERSION='0.0.0')
        self.assertEqual(1, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn('installed ironic-kexec %s, but IPA_KEXEC_VERSION '
                      '(the conductors\' release) is 0.0.0' % version,
                      proc.stderr)

        # The name as the source: pip takes the pinned version from the
        # index (here the wheelhouse), and finds no other.
        proc = self.run_install(venv, 'ironic-kexec', wheelhouse,
                                IPA_KEXEC_VERSION=version)
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        proc = self.run_install(venv, 'ironic-kexec', wheelhouse,
                                IPA_KEXEC_VERSION='0.0.0')
        self.assertNotEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn('ironic-kexec[agent]==0.0.0',
                      proc.stdout + proc.stderr)

        # The agent's constraints apply: one the installed agent breaks
        # makes pip fail, one it meets changes nothing, and a missing
        # file (a build without the requirements repository) is skipped.
        proc = self.run_install(
            venv, wheel, wheelhouse, IPA_KEXEC_UPPER_CONSTRAINTS=(
                self.constraints('ironic-python-agent===0.0.1\n')))
        self.assertNotEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn('ironic-python-agent', proc.stdout + proc.stderr)
        probe = json.loads(_run([os.path.join(venv, 'bin', 'python'), '-c',
                                 PROBE], cwd=self.tmp).stdout)
        proc = self.run_install(
            venv, wheel, wheelhouse, IPA_KEXEC_UPPER_CONSTRAINTS=(
                self.constraints('ironic-python-agent===%s\n'
                                 % probe['ipa_dist'])))
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        proc = self.run_install(
            venv, wheel, wheelhouse,
            IPA_KEXEC_UPPER_CONSTRAINTS=os.path.join(self.tmp, 'missing'))
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)

    def test_install_into_an_agent_venv(self):
        wheel = self.build_wheel()
        wheelhouse = self.make_wheelhouse(wheel)
        venv = os.path.join(self.tmp, 'venv')
        python = os.path.join(venv, 'bin', 'python')

        # No venv yet: the script says so and installs nothing.
        proc = self.run_install(venv, wheel, wheelhouse)
        self.assertEqual(1, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn('no agent virtual environment', proc.stderr)

        _run([sys.executable, '-m', 'venv', venv])
        proc = self.run_install(venv, wheel, wheelhouse)
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)

        probe = json.loads(_run([python, '-c', PROBE], cwd=self.tmp).stdout)
        self.assertEqual(os.path.realpath(venv),
                         os.path.realpath(probe['prefix']))
        self.assertTrue(probe['ipa_kexec'])
        self.assertEqual(['ipa_kexec.extension:KexecExtension'],
                         probe['entry_points'])
        # The agent extra brought the agent, and Ironic stayed out.
        self.assertIsNotNone(probe['ipa_dist'])
        self.assertIsNone(probe['ironic_dist'])
        self.assertFalse(probe['ironic'])

        self.check_pin_and_constraints(venv, wheel, wheelhouse,
                                       probe['version'])

        if os.path.exists(os.path.join(REPO, 'ipa_kexec', 'extension.py')):
            # As the agent's command does, options first.
            code = ('from importlib import metadata\n'
                    'from ironic_python_agent import config\n'
                    'config.populate_config()\n'
                    'from ironic_python_agent.extensions import base\n'
                    'ep, = metadata.entry_points(\n'
                    '    group="ironic_python_agent.extensions",\n'
                    '    name="kexec")\n'
                    'assert issubclass(ep.load(), base.BaseAgentExtension)\n')
            _run([python, '-c', code], cwd=self.tmp)

        # An image without kexec-tools: no sbin directory on the PATH.
        path = ':'.join(d for d in os.environ.get('PATH', '').split(':')
                        if d and not d.endswith('sbin')
                        and not os.path.exists(os.path.join(d, 'kexec')))
        proc = self.run_install(venv, wheel, wheelhouse,
                                path=path or '/usr/bin:/bin')
        self.assertEqual(1, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn('kexec-tools is missing', proc.stderr)


class ElementLayoutTestCase(unittest.TestCase):

    def read(self, name):
        with open(os.path.join(ELEMENT, name)) as f:
            return f.read()

    def test_element_deps(self):
        deps = self.read('element-deps').split()
        self.assertIn('ironic-python-agent-ramdisk', deps)
        self.assertIn('package-installs', deps)
        self.assertIn('source-repositories', deps)

    def test_kexec_tools_is_installed(self):
        packages = yaml.safe_load(self.read('package-installs.yaml'))
        self.assertIn('kexec-tools', packages)

    def test_source_repository_matches_the_install_default(self):
        name, kind, dest, _url = self.read(
            'source-repository-ironic-kexec').split()[:4]
        self.assertEqual(('ironic-kexec', 'git'), (name, kind))
        env = self.read('environment.d/10-ironic-kexec.bash')
        self.assertIn('IPA_KEXEC_SOURCE:-%s}' % dest, env)

    def test_install_script_is_executable(self):
        self.assertTrue(os.access(INSTALL, os.X_OK))

    def source_ref(self, **env):
        # As diskimage-builder's source-repositories reads the file: each
        # line is expanded by "eval echo".
        line = self.read('source-repository-ironic-kexec').strip()
        proc = subprocess.run(
            ['bash', '-c', 'set -eu; set -f; eval echo "$1"', 'bash', line],
            env=dict({'PATH': os.environ.get('PATH', '/usr/bin:/bin')},
                     **env),
            capture_output=True, text=True, check=True)
        return proc.stdout.split()[4]

    def test_source_repository_ref_is_the_pin(self):
        # Not DIB's implicit default: the conductors' release, or master
        # when none is given.
        self.assertEqual('1.2.3', self.source_ref(IPA_KEXEC_VERSION='1.2.3'))
        self.assertEqual('master', self.source_ref())
        self.assertEqual('master', self.source_ref(IPA_KEXEC_VERSION=''))

    def test_readme_documents_every_setting(self):
        with open(INSTALL) as f:
            script = f.read()
        settings = set(re.findall(r'\bIPA_KEXEC_[A-Z_]+', script))
        self.assertIn('IPA_KEXEC_VERSION', settings)
        self.assertIn('IPA_KEXEC_UPPER_CONSTRAINTS', settings)
        readme = self.read('README.rst')
        missing = sorted(name for name in settings if name not in readme)
        self.assertEqual([], missing, 'README.rst does not document these')
