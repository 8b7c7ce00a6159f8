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

"""grub.cfg: what grub 2.06 boots, and hostile scripts."""

import random
import shutil
import tempfile
import time

from ironic_python_agent.tests.unit import base

from ipa_kexec.bootloader import grub
from ipa_kexec.bootloader import grubenv
from ipa_kexec.bootloader import grubscript as gs
from ipa_kexec import budget as budget_mod
from ipa_kexec import errors
from ipa_kexec import rootfs as rootfs_mod
from ironic_kexec import protocol
from tests.unit.agent import test_discovery as td
from tests.unit.agent import trees

V1 = '6.1.0-13-amd64'
V2 = '6.1.0-12-amd64'


def entry(title, version, args='ro quiet', ident=None, initrd=None):
    ident = ident or 'id-' + title
    initrd = initrd if initrd is not None else '/boot/initrd.img-' + version
    return ("menuentry '%s' $menuentry_id_option '%s' {\n"
            "\tlinux /boot/vmlinuz-%s root=/dev/sda1 %s\n"
            "\tinitrd %s\n}\n" % (title, ident, version, args, initrd))


def files(cfg, env=None, extra=None):
    result = {}
    for version in (V1, V2):
        result['/boot/vmlinuz-' + version] = trees.KERNEL
        result['/boot/initrd.img-' + version] = trees.INITRD
    result['/boot/grub/grub.cfg'] = cfg
    if env is not None:
        result['/boot/grub/grubenv'] = env
    result.update(extra or {})
    return result


HEADER = ("if [ -s $prefix/grubenv ]; then\n  load_env\nfi\n"
          'menuentry_id_option="--id"\nexport menuentry_id_option\n')


class GrubTestCase(base.IronicAgentTest):

    def make(self, tree):
        path = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, path, True)
        return trees.build(path, tree)

    def find(self, tree, env=None):
        root = rootfs_mod.RootFS(self.make(tree))
        return grub.find(root, env if env is not None else {}, 'pc')

    def reason(self, tree):
        exc = self.assertRaises(errors.KexecError, self.find, tree)
        return exc.reason

    def args(self, result):
        """The command line after grub's ``BOOT_IMAGE=<kernel>``."""
        boot_image, _sep, rest = result.cmdline.partition(' ')
        self.assertEqual('BOOT_IMAGE=' + result.kernel, boot_image)
        return rest


class TestLexer(base.IronicAgentTest):

    def args(self, line, variables=None):
        interp = grub.Interpreter(None, '', '/boot/grub/grub.cfg', {},
                                  budget_mod.Budget(), 'pc')
        ctx = grub.Context(variables)
        [command] = list(gs.commands(line))
        return interp.expand(ctx, command)

    def test_quotes(self):
        self.assertEqual(
            ['linux', '/vmlinuz', 'acpi_osi=Windows 2015', 'a b', 'c d',
             'e"f', "g'h", 'i\\j', ''],
            self.args('linux /vmlinuz "acpi_osi=Windows 2015" \'a b\' '
                      'c\\ d "e\\"f" "g\'h" \'i\\j\' ""'))

    def test_double_quote_escapes(self):
        # Only $, " and \ are escaped in double quotes; \n continues.
        self.assertEqual(['$x\\y a\\nb', 'cd'],
                         self.args('"\\$x\\\\y a\\nb" c\\\nd'))

    def test_hex_escape_kept(self):
        self.assertEqual(['\\x41B'], self.args('\\x41\\B'))

    def test_variables_split_unquoted_only(self):
        variables = {'a': ' one  two ', 'e': ''}
        self.assertEqual(['xone', 'two', ' one  two ', 'y', '', 'z'],
                         self.args('x$a "$a" y${e} "$e" $e z', variables))

    def test_comment_only_at_word_start(self):
        self.assertEqual(['a#b', 'c'], self.args('a#b c # d e'))

    def test_separators_and_braces(self):
        words = [[w.plain for w in cmd] for cmd in gs.commands(
            'a b;c {d\n}e')]
        self.assertEqual([['a', 'b'], ['c', '{', 'd'], ['}', 'e']], words)

    def test_bad_tokens(self):
        for text in ('a | b', 'a > b', "'open", '"open', '$-x', 'a;;'):
            self.assertRaises(ValueError, list, gs.commands(text))

    def test_prepare_crlf_nul_comment_lines(self):
        self.assertEqual('a b\nc\n  #x\nd',
                         gs.prepare('a b\r\nc\0junk\n#skip\n  #x\nd'))


class TestMenu(GrubTestCase):

    def cfg(self, default, env=None):
        text = HEADER
        if default is not None:
            text += 'set default="%s"\n' % default
        text += entry('Debian', V1)
        text += "submenu 'Advanced' $menuentry_id_option 'adv' {\n"
        text += entry('Debian 13', V1, ident='adv-13')
        text += entry('Debian 12', V2, ident='adv-12')
        text += entry('Debian 12 rescue', V2, 'single', ident='adv-12-r')
        text += '}\n'
        return files(text, env)

    def kernel_args(self, default, env=None):
        result = self.find(self.cfg(default, env))
        return result.kernel.rsplit('-', 2)[-2], self.args(result)

    def test_paths(self):
        for default, want in (
                ('0', '13'), ('1>1', '12'), ('1>2', '12'), ('adv>adv-12',
                                                            '12'),
                ('Advanced>Debian 12', '12'), ('adv>2', '12'),
                ('1', '13'), ('7', '13'), ('adv>9', '13'), ('nothing', '13'),
                ('0x1>0x1', '12'), ('01>01', '12')):
            self.assertEqual(want, self.kernel_args(default)[0], default)
        self.assertIn('single', self.kernel_args('1>2')[1])

    def test_saved_and_next_entry(self):
        # 00_header: next_entry wins over saved_entry.
        header = ('if [ "${next_entry}" ] ; then\n'
                  '   set default="${next_entry}"\n   set next_entry=\n'
                  '   save_env next_entry\nelse\n'
                  '   set default="${saved_entry}"\nfi\n')
        tree = self.cfg(None, trees.grubenv(saved_entry='adv>adv-12'))
        cfg = tree['/boot/grub/grub.cfg'].replace(
            'export menuentry_id_option\n',
            'export menuentry_id_option\n' + header)
        tree['/boot/grub/grub.cfg'] = cfg
        self.assertIn(V2, self.find(tree).kernel)
        tree['/boot/grub/grubenv'] = trees.grubenv(saved_entry='adv>adv-12',
                                                   next_entry='0')
        self.assertIn(V1, self.find(tree).kernel)

    def test_non_ascii_and_huge_numbers(self):
        for default in ('\u0661>\u0661', '\uff11', '9' * 5000,
                        '1' + '0' * 30, '-1', '4294967295'):
            self.assertEqual('13', self.kernel_args(default)[0],
                             default[:20])
        # grub's (int) cast of a 64-bit unsigned long.
        self.assertEqual('12', self.kernel_args('4294967297>1')[0])

    def test_submenu_sees_exported_variables_only(self):
        cfg = ('set kept=yes\nexport kept\nset lost=yes\n'
               "submenu s {\n  menuentry e {\n"
               "    linux /boot/vmlinuz-%s k=$kept l=$lost\n  }\n}\n" % V1)
        self.assertEqual('k=yes l=', self.args(self.find(files(cfg))))

    def test_if_else_and_tests(self):
        cfg = ('set a=1\n'
               'if [ "$a" = 2 -o -z "$b" ]; then set default=1; '
               'else set default=0; fi\n'
               'if [ $a -gt 5 ]; then set default=0\n'
               'elif ! [ -e /boot/missing ]; then true\nfi\n'
               + entry('one', V1) + entry('two', V2))
        self.assertIn(V2, self.find(files(cfg)).kernel)

    def test_function_and_loop_not_run(self):
        cfg = ('function f {\n  set default=1\n}\nf\n'
               'for x in 1 2; do set default=1; done\n'
               'while false; do set default=1; done\n'
               + entry('one', V1) + entry('two', V2))
        self.assertIn(V1, self.find(files(cfg)).kernel)

    def test_syntax_error_drops_statement(self):
        cfg = ('if true; then set default=1; fi junk\n'
               "menuentry 'broken' { linux /x > y\n}\n"
               + entry('one', V1) + entry('two', V2))
        self.assertIn(V1, self.find(files(cfg)).kernel)

    def test_fallback(self):
        cfg = ('set default=0\nset fallback="2 1"\n'
               "menuentry gone { linux /boot/vmlinuz-9 }\n"
               + entry('one', V1) + entry('two', V2))
        self.assertIn(V2, self.find(files(cfg)).kernel)

    def test_entry_options(self):
        cfg = ("menuentry --class a --unrestricted 'T' --id=x --hotkey=t {"
               "\n linux /boot/vmlinuz-%s\n}\n"
               "menuentry 'U' --bogus --id y { linux /boot/vmlinuz-%s; }\n"
               "menuentry --id { linux /boot/vmlinuz-%s; }\n"
               'set default=y\n' % (V1, V2, V1))
        self.assertIn(V2, self.find(files(cfg)).kernel)

    def test_blscfg_left_to_bls(self):
        cfg = ('set default="${saved_entry}"\ninsmod blscfg\nblscfg\n'
               + entry('one', V1))
        self.assertIsNone(self.find(files(cfg)))

    def test_no_menu(self):
        self.assertIsNone(self.find(files('set timeout=5\n')))


class TestLoad(GrubTestCase):

    def test_quoted_argument_reaches_cmdline(self):
        cfg = entry('one', V1, args='"acpi_osi=Windows 2015" quiet')
        result = self.find(files(cfg))
        # grub_create_loader_cmdline: quoted again, one parameter.
        self.assertEqual('root=/dev/sda1 "acpi_osi=Windows 2015" quiet',
                         self.args(result))

    def test_early_microcode_initrds(self):
        cfg = entry('one', V1, initrd='/boot/intel-ucode.img '
                    '/boot/initrd.img-' + V1)
        result = self.find(files(cfg, extra={
            '/boot/intel-ucode.img': b'070701ucode'}))
        self.assertEqual(['/boot/intel-ucode.img', '/boot/initrd.img-' + V1],
                         result.initrds)
        self.assertEqual('/boot/initrd.img-' + V1, result.initrd)

    def test_variables_in_linux_line(self):
        cfg = ('set opts="quiet splash"\nset root=hd0,gpt2\n'
               "menuentry x { linux ($root)/boot/vmlinuz-%s $opts "
               "\"$opts\" }\n" % V1)
        # BOOT_IMAGE is the kernel as grub.cfg names it, device included.
        self.assertEqual('BOOT_IMAGE=(hd0,gpt2)/boot/vmlinuz-%s quiet splash '
                         '"quiet splash"' % V1,
                         self.find(files(cfg)).cmdline)

    def test_crlf(self):
        cfg = (HEADER + 'set default=1\n' + entry('one', V1)
               + entry('two', V2)).replace('\n', '\r\n')
        result = self.find(files(cfg))
        self.assertIn(V2, result.kernel)
        self.assertEqual('root=/dev/sda1 ro quiet', self.args(result))

    def test_nul_and_invalid_utf8(self):
        cfg = (b'set default=1\x00 junk\n' + b'# \xff\xfe\n'
               + b"menuentry '\xff' { linux /boot/vmlinuz-" + V1.encode()
               + b' a=\xc3\x28 }\n' + entry('two', V2).encode())
        self.assertIn(V2, self.find(files(cfg)).kernel)
        result = self.find(files(cfg.replace(b'default=1', b'default=0')))
        self.assertEqual('a=\ufffd(', self.args(result))


class TestHostile(GrubTestCase):

    def test_doubling_variables(self):
        cfg = 'set a=xxxxxxxx\n' + 'set a=$a$a\n' * 40 + entry('one', V1)
        self.assertEqual(protocol.REASON_TOO_COMPLEX,
                         self.reason(files(cfg)))

    def test_one_line_mib(self):
        cfg = ('set a=b; ' * (1024 * 1024 // 9))[:1024 * 1024 - 200]
        cfg += '; ' + entry('one', V1).replace('\n', ' ; ')
        self.assertLessEqual(len(cfg), 1024 * 1024)
        start = time.process_time()
        result = self.find(files(cfg))
        self.assertLess(time.process_time() - start, 1.0)
        self.assertIn(V1, result.kernel)

    def test_one_word_mib(self):
        cfg = 'linux ' + 'x' * (1024 * 1024 - 300) + '\n' + entry('one', V1)
        start = time.process_time()
        self.assertIn(V1, self.find(files(cfg)).kernel)
        self.assertLess(time.process_time() - start, 1.0)

    def test_deep_braces(self):
        cfg = 'submenu a {\n' * 10000 + '}\n' * 10000
        start = time.process_time()
        self.assertEqual(protocol.REASON_TOO_COMPLEX,
                         self.reason(files(cfg)))
        self.assertLess(time.process_time() - start, 1.0)

    def test_deep_ifs(self):
        cfg = 'if true; then\n' * 10000 + entry('one', V1)
        self.assertEqual(protocol.REASON_TOO_COMPLEX,
                         self.reason(files(cfg)))

    def test_nested_submenus_rerun_bounded(self):
        cfg = "set default='%s'\n" % '>'.join(['0'] * 60)
        cfg += 'submenu a {\n' * 60 + ('set x=%s\n' % ('y' * 8000)) * 100
        cfg += '}\n' * 60
        self.assertEqual(protocol.REASON_TOO_COMPLEX,
                         self.reason(files(cfg)))

    def test_too_many_entries(self):
        cfg = 'menuentry x { true; }\n' * 2000
        self.assertEqual(protocol.REASON_TOO_LARGE, self.reason(files(cfg)))

    def test_random_scripts_only_kexec_errors(self):
        rng = random.Random(13)
        alphabet = ['menuentry', 'submenu', 'if', 'then', 'fi', 'else',
                    '{', '}', ';', '\n', '"', "'", '\\', '$', '${a}',
                    'set', 'a=$a$a', 'linux', 'initrd', '/boot/vmlinuz-'
                    + V1, ' ', '>', '#', 'function', 'do', 'done', '[',
                    ']', '\0', '\r', 'default=1>0']
        for _ in range(300):
            cfg = ''.join(rng.choice(alphabet) for _ in range(80))
            try:
                self.find(files(cfg))
            except errors.KexecError:
                pass


class TestGrubenv(base.IronicAgentTest):

    def test_escapes(self):
        block = (grubenv.SIGNATURE + 'a=x\\\\y\\\nz\nb=c=d\n'
                 + '#' * 900)
        self.assertEqual({'a': 'x\\y\nz', 'b': 'c=d'}, grubenv.parse(block))

    def test_signature_required(self):
        self.assertEqual({}, grubenv.parse('saved_entry=1\n'))

    def test_broken_block_keeps_earlier_values(self):
        self.assertEqual({'a': '1'},
                         grubenv.parse(grubenv.SIGNATURE + 'a=1\nb=2'))
        self.assertEqual({'a': '1'},
                         grubenv.parse(grubenv.SIGNATURE + 'a=1\nnoequals'))

    def test_many_backslashes_linear(self):
        block = grubenv.SIGNATURE + 'a=' + '\\x' * 200000 + '\n'
        start = time.process_time()
        self.assertEqual('x' * 200000, grubenv.parse(block)['a'])
        self.assertLess(time.process_time() - start, 1.0)


class TestDebianTree(GrubTestCase):

    def test_generated_config(self):
        cfg = td.debian_grub_cfg(default='${saved_entry}')
        tree = td.debian_tree(cfg, trees.grubenv(
            saved_entry='gnulinux-advanced-%s>gnulinux-%s-recovery-%s'
            % (td.UUID, V2, td.UUID)))
        result = self.find(tree)
        self.assertEqual('/boot/vmlinuz-' + V2, result.kernel)
        self.assertEqual('root=UUID=%s ro single' % td.UUID,
                         self.args(result))


class TestCandidates(GrubTestCase):

    def test_vendor_grub_cfg(self):
        tree = files(entry('one', V1))
        del tree['/boot/grub/grub.cfg']
        tree['/boot/efi/EFI/debian/grub.cfg'] = entry('one', V2)
        self.assertIn(V2, self.find(tree).kernel)

    def test_too_many_vendors_refused(self):
        tree = files(entry('one', V1))
        for i in range(grubenv.MAX_VENDORS + 1):
            tree['/boot/efi/EFI/v%03d/grub.cfg' % i] = 'true\n'
        self.assertEqual(protocol.REASON_TOO_LARGE, self.reason(tree))

    def test_grubenv_over_bound_refused(self):
        tree = files(HEADER + 'set default="${saved_entry}"\n'
                     + entry('one', V1) + entry('two', V2),
                     trees.grubenv(saved_entry='1') + '#' * (128 * 1024))
        self.assertEqual(protocol.REASON_TOO_LARGE, self.reason(tree))
