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

"""The command line built from the image's files; /etc/default/grub is
parsed as the shell would, and bash itself is the judge where it can be
run safely (no command substitution in the inputs)."""

import os
import shutil
import subprocess
import tempfile
import time
import unittest

from ironic_python_agent.tests.unit import base

from ipa_kexec import budget
from ipa_kexec import cmdline
from ipa_kexec import errors
from ipa_kexec import rootfs as rootfs_mod
from tests.unit.agent import trees

BASH = shutil.which('bash')
UUID = '1b2c3d4e-0000-4000-8000-000000000001'
NAMES = ('A', 'B', 'C', 'GRUB_CMDLINE_LINUX', 'GRUB_CMDLINE_LINUX_DEFAULT')

# Inputs bash can source harmlessly: assignments, quoting, expansions.
SHELL_CASES = [
    'GRUB_CMDLINE_LINUX="quiet splash"\n',
    "GRUB_CMDLINE_LINUX='acpi_osi=\"Windows 2015\"' # comment\n",
    'A=1\nB="$A two" C=${B}three\n',
    'A=\'x y\' B="$A z"\n',
    'A="a \\"b\\" \\$c \\\\ \\d"\n',
    'A=a\\ b\\"c\n',
    'A="one\ntwo"\n',
    'A=x; B=y;C=z\n',
    'export A=exported\nB=$A\n',
    'A=1 true\nB=$A\n',
    'A=$\nB="$"\nC=a$\n',
    'A=$UNSET_NAME_HERE\n',
    'A="mult\\\niline"\n',
    '  # only a comment\n\tA=tab\n',
    'A=one=two\n',
    'A=x\nA="$A$A" B="$A"\n',
    'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT quiet"\n',
    'A=\'it\'"\'"\'s\'\n',
]


def bash_values(text, names):
    """What bash assigns, sourcing ``text`` in an empty environment."""
    tmp = tempfile.mkdtemp()
    try:
        path = os.path.join(tmp, 'grub')
        with open(path, 'w') as f:
            f.write(text)
        script = '. "$1"; for n in %s; do if [ "${!n+set}" ]; then ' \
                 'printf "%%s=%%s\\0" "$n" "${!n}"; fi; done' % ' '.join(names)
        out = subprocess.run([BASH, '--norc', '--noprofile', '-c', script,
                              'bash', path], env={}, check=True,
                             stdout=subprocess.PIPE, timeout=10).stdout
    finally:
        shutil.rmtree(tmp)
    return dict(item.split('=', 1)
                for item in out.decode().split('\0') if item)


class TestShellAssignments(base.IronicAgentTest):

    block_execute = False

    @unittest.skipIf(BASH is None, 'bash is needed as the judge')
    def test_same_as_bash(self):
        for text in SHELL_CASES:
            with self.subTest(text=text):
                parsed = cmdline.parse_shell_assignments(text)
                self.assertEqual(bash_values(text, NAMES),
                                 {k: v for k, v in parsed.items()
                                  if k in NAMES})

    def test_commands_are_never_run_nor_guessed(self):
        parsed = cmdline.parse_shell_assignments(
            'A=$(touch /tmp/pwned)\nB=`id`\nC=${A:-x}\nD=$1\n'
            'E=$((1+1))\nF=ok\n')
        self.assertEqual({'F': 'ok'}, parsed)

    def test_unterminated_quote_assigns_nothing(self):
        self.assertEqual({'A': '1'}, cmdline.parse_shell_assignments(
            'A=1\nB="never closed\nC=2\n'))

    def test_nul_bytes_dropped_as_bash_does(self):
        self.assertEqual({'A': 'ab'},
                         cmdline.parse_shell_assignments('A=a\0b\n'))

    def test_doubling_is_bounded(self):
        text = 'A=xxxxxxxx\n' + 'A="$A$A"\n' * 64
        self.assertRaises(errors.TooComplex,
                          cmdline.parse_shell_assignments, text)

    def test_many_expansions_exhaust_the_budget(self):
        text = 'A=%s\n' % ('x' * 60000) + 'B=$A\n' * 100
        exc = self.assertRaises(errors.BudgetExhausted,
                                cmdline.parse_shell_assignments, text)
        self.assertEqual(errors.TOO_COMPLEX, exc.reason)

    def test_linear_on_large_inputs(self):
        size = budget.MAX_FILE_SIZE
        for text in ('A="' + 'x' * size + '"',
                     'A=' + '=' * size,
                     '$' * size,
                     '"' * size,
                     "'" * size,
                     '\\' * size,
                     '${' * (size // 2),
                     '$(' * (size // 2),
                     'A=1;' * (size // 4),
                     '#' * size,
                     ('A' * 100 + '=1\n') * (size // 103)):
            start = time.monotonic()
            try:
                cmdline.parse_shell_assignments(text)
            except errors.KexecError:
                pass
            self.assertLess(time.monotonic() - start, 5.0, text[:20])


class TestFstab(base.IronicAgentTest):

    def test_entries(self):
        text = ('# comment\n'
                'UUID=abc / ext4 errors=remount-ro 0 1\n'
                'LABEL=My\\040Disk /mnt/with\\040space vfat\n'
                'short line\n'
                '/dev/sda3 /boot/efi vfat umask=0077 0 1 # trailing\n')
        self.assertEqual(
            [('UUID=abc', '/', 'ext4', 'errors=remount-ro'),
             ('LABEL=My Disk', '/mnt/with space', 'vfat', 'defaults'),
             ('/dev/sda3', '/boot/efi', 'vfat', 'umask=0077')],
            list(cmdline.fstab_entries(text)))


class TestBuild(base.IronicAgentTest):

    def image(self, files, subvol=None):
        root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, root, True)
        trees.build(root, files)
        fs = rootfs_mod.RootFS(root)
        fs.subvol = subvol
        return fs

    def test_kernel_cmdline_file_wins(self):
        fs = self.image({'/etc/kernel/cmdline': 'root=UUID=x\n  rw quiet\n',
                         '/etc/default/grub': 'GRUB_CMDLINE_LINUX=nope\n'})
        self.assertEqual('root=UUID=x rw quiet', cmdline.build(fs))

    def test_from_default_grub(self):
        fs = self.image({'/etc/fstab': 'UUID=%s / ext4 defaults 0 1\n' % UUID,
                         '/etc/default/grub':
                             'GRUB_CMDLINE_LINUX="console=ttyS0"\n'
                             'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n'})
        self.assertEqual('root=UUID=%s ro console=ttyS0 quiet' % UUID,
                         cmdline.build(fs))

    def test_grub_d_drop_ins_after_default_grub(self):
        # Found by the fault matrix: the testbed image sets its console
        # and clears "quiet" in a drop-in, as cloud images do.
        fs = self.image({
            '/etc/fstab': 'UUID=%s / ext4 defaults 0 1\n' % UUID,
            '/etc/default/grub': 'GRUB_CMDLINE_LINUX=""\n'
                                 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n',
            '/etc/default/grub.d/50-cloud.cfg':
                'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX console=ttyS0"\n',
            '/etc/default/grub.d/90-debug.cfg':
                'GRUB_CMDLINE_LINUX_DEFAULT=""\n',
            '/etc/default/grub.d/README': 'GRUB_CMDLINE_LINUX=ignored\n'})
        self.assertEqual('root=UUID=%s ro console=ttyS0' % UUID,
                         cmdline.build(fs))

    def test_subvolume_gets_rootflags(self):
        fs = self.image({'/etc/default/grub':
                         'GRUB_CMDLINE_LINUX="rhgb"\n'}, subvol='root')
        # Where grub's 10_linux puts it: before GRUB_CMDLINE_LINUX.
        self.assertEqual('root=UUID=%s ro rootflags=subvol=root rhgb' % UUID,
                         cmdline.build(fs, UUID))

    def test_image_rootflags_kept(self):
        fs = self.image({'/etc/default/grub':
                         'GRUB_CMDLINE_LINUX="rootflags=subvol=@"\n'},
                        subvol='root')
        self.assertEqual('root=UUID=%s ro rootflags=subvol=@' % UUID,
                         cmdline.build(fs, UUID))

    def test_no_subvolume_no_rootflags(self):
        self.assertEqual('root=UUID=%s ro' % UUID,
                         cmdline.build(self.image({}), UUID))

    def test_no_root(self):
        self.assertIsNone(cmdline.build(self.image({})))

    def test_too_long(self):
        fs = self.image({'/etc/default/grub': 'GRUB_CMDLINE_LINUX="%s"\n'
                         % ('x ' * budget.MAX_CMDLINE)})
        exc = self.assertRaises(errors.KexecError, cmdline.build, fs, UUID)
        self.assertEqual(errors.TOO_LARGE, exc.reason)

    def test_nul_in_kernel_cmdline(self):
        fs = self.image({'/etc/kernel/cmdline': b'root=UUID=x\0init=/x\n'})
        self.assertEqual('root=UUID=x init=/x', cmdline.build(fs))

    def test_append_extra_bounded(self):
        self.assertEqual('a b c', cmdline.append_extra('a', ' b  c'))
        self.assertRaises(errors.TooLarge, cmdline.append_extra, 'a',
                          'x' * budget.MAX_CMDLINE)
