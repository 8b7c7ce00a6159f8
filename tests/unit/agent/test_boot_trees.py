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

"""Discovery on boot trees the distributions' own tools wrote.

Each directory of fixtures/boot_trees is a case that
tools/boot-trees/build.sh made in a Debian 12 chroot with the boot
loader's own tools (update-grub, grub-set-default, grub-reboot, bootctl
and kernel-install, u-boot-update, objcopy), kernels and initrds being
stubs. Its case.json holds what the real boot loader (or its own tool)
said the tree boots: grub-emu running the tree's grub.cfg, bootctl list,
U-Boot in QEMU. Discovery must name the same kernel, initrds, command
line and source. ``tox -e boottrees`` rebuilds the trees and reruns the
judges.
"""

import json
import os

from ironic_python_agent.tests.unit import base

from ipa_kexec import discovery
from ipa_kexec import rootfs

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        'fixtures', 'boot_trees')
# What a case states about the chosen entry, compared with
# BootEntry.to_result(); a UKI case also names the UKI.
FIELDS = ('kernel', 'initrds', 'cmdline', 'source')
OPTIONAL_FIELDS = ('uki',)
# The fixture set stays small enough to keep in the repository.
MAX_FIXTURE_BYTES = 200 * 1024


def case_names():
    return sorted(name for name in os.listdir(FIXTURES)
                  if os.path.isfile(os.path.join(FIXTURES, name,
                                                 'case.json')))


def load_case(name):
    with open(os.path.join(FIXTURES, name, 'case.json')) as f:
        return json.load(f)


class TestBootTrees(base.IronicAgentTest):

    def check_case(self, name):
        case = load_case(name)
        case_dir = os.path.join(FIXTURES, name)
        mounts = {path: os.path.join(case_dir, sub)
                  for path, sub in case['mounts'].items()}
        image = rootfs.RootFS(os.path.join(case_dir, 'tree'),
                              mounts=mounts, subvol=case.get('subvol'))
        result = discovery.discover(image).to_result()
        expected = case['expected']
        got = {field: result.get(field) for field in FIELDS}
        want = {field: expected[field] for field in FIELDS}
        for field in OPTIONAL_FIELDS:
            if field in expected:
                got[field] = result.get(field)
                want[field] = expected[field]
        self.assertEqual(want, got, '%s: %s' % (name, case['description']))


def _add_case_tests():
    for name in case_names():
        def test(self, name=name):
            self.check_case(name)
        test.__name__ = 'test_%s' % name.replace('-', '_')
        test.__doc__ = load_case(name)['description']
        setattr(TestBootTrees, test.__name__, test)


_add_case_tests()


class TestFixtureSet(base.IronicAgentTest):
    """The fixture set itself: whole, small, and of no machine."""

    def test_cases_present(self):
        names = case_names()
        self.assertGreaterEqual(len(names), 10, names)
        for name in names:
            case = load_case(name)
            for key in ('description', 'built_by', 'judge', 'mounts',
                        'expected'):
                self.assertIn(key, case, name)
            for field in FIELDS:
                self.assertIn(field, case['expected'], name)
            self.assertTrue(os.path.isdir(os.path.join(FIXTURES, name,
                                                       'tree')), name)
            for sub in case['mounts'].values():
                self.assertTrue(os.path.isdir(os.path.join(
                    FIXTURES, name, sub)), (name, sub))

    def test_small(self):
        total = 0
        for dirpath, _dirs, files in os.walk(FIXTURES):
            for f in files:
                total += os.lstat(os.path.join(dirpath, f)).st_size
        self.assertLess(total, MAX_FIXTURE_BYTES)

    def test_no_build_host_paths(self):
        # The trees were written on loop devices in a chroot under the
        # build user's cache: none of that may leak into them.
        leaks = ('/dev/loop', '.cache/ironic-kexec', '/tmp/', '/root/')
        for dirpath, _dirs, files in os.walk(FIXTURES):
            for f in files:
                path = os.path.join(dirpath, f)
                if os.path.islink(path):
                    text = os.readlink(path)
                else:
                    with open(path, 'rb') as fp:
                        text = fp.read().decode('latin-1')
                for leak in leaks:
                    self.assertNotIn(leak, text, path)
