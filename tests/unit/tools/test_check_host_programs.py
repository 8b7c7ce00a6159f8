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

"""tools/check_host_programs.py: its shell and Python extractors, and its
package logic on a fake dpkg database."""

import importlib.util
import os
import shutil
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..', '..'))
_SPEC = importlib.util.spec_from_file_location(
    'check_host_programs', os.path.join(REPO, 'tools',
                                        'check_host_programs.py'))
chp = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(chp)


def found(text, kinds=('program',)):
    """(name, side) of what a script runs, in order.

    Programs only, unless kinds says otherwise.
    """
    script = chp.parse_shell(textwrap.dedent(text))
    out = []
    for command in script.commands:
        if command.word.value in script.known:
            continue
        for kind, name in chp.classify_shell(command, script.assignments):
            if kind in kinds:
                out.append((name, command.side))
    return out


def host(text):
    return [name for name, side in found(text) if side == 'host']


def image(text):
    return [name for name, side in found(text) if side == 'image']


class ShellTestCase(unittest.TestCase):

    def test_lists_and_pipelines(self):
        self.assertEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g'],
                         host('a | b && c || d; e & f |& g\n'))

    def test_arguments_are_not_programs(self):
        self.assertEqual(['sed', 'sort'],
                         host("sed -e 's/a/b/' file | sort -u -o out\n"))

    def test_command_substitutions(self):
        # In the order they run: a substitution before its command.
        self.assertEqual(
            ['bar', 'foo', 'baz', 'qux', 'inner', 'quux'],
            host('x=$(foo "$(bar)")\necho "in $(baz) quotes"\n'
                 'echo `qux`\ny=${z:-$(inner)} cmd=$(quux)\n'))

    def test_substitution_with_its_own_pipes_and_parens(self):
        self.assertEqual(['dirname', 'wc'],
                         host('top=$(cd "$(dirname "$0")/.." && pwd)\n'
                              'n=$(wc -l < "$f")\n'))

    def test_arithmetic_is_no_substitution(self):
        self.assertEqual([], host('echo $((1 + 2)) "$((x * (y + 1)))"\n'
                                  '(( i++ ))\n'))

    def test_here_documents(self):
        text = '''
            cat <<EOF > out
            rm -rf /
            $(date)
            EOF
            cat <<'EOF'
            $(hidden)
            EOF
            cat <<-EOF
            \t\tnot a command; $(uname)
            \tEOF
            ls
            '''.replace('\\t', '\t')
        self.assertEqual(['date', 'cat', 'cat', 'uname', 'cat', 'ls'],
                         host(text))

    def test_here_document_line_numbers(self):
        script = chp.parse_shell('cat <<EOF\none\ntwo\nEOF\nls\n')
        self.assertEqual([('cat', 1), ('ls', 5)],
                         [(c.word.value, c.line) for c in script.commands])

    def test_case(self):
        text = '''
            case "$(uname -m)" in
                a|b) foo ;;
                (c) bar; baz ;;
                *) case $y in d) inner ;; esac ;;
            esac
            after
            '''
        self.assertEqual(['uname', 'foo', 'bar', 'baz', 'inner', 'after'],
                         host(text))

    def test_for_lists_and_keywords(self):
        text = '''
            for f in a b $(seq 3); do
                if ! grep -q x "$f"; then :; elif test -e y; then
                    yes
                else no; fi
            done
            while read -r line; do until z; do w; done; done < input
            for ((i = 0; i < 3; i++)); do arith; done
            { grouped; }
            [[ -n $x && $y == z || ( a < b ) ]] && ok
            '''
        self.assertEqual(['seq', 'grep', 'yes', 'no', 'z', 'w', 'arith',
                          'grouped', 'ok'], host(text))

    def test_functions_are_not_programs(self):
        text = '''
            early() { late; }
            late() {
                depmod -a
            }
            function other {
                modprobe x
            }
            early; late; other
            '''
        script = chp.parse_shell(textwrap.dedent(text))
        self.assertEqual({'early', 'late', 'other'}, set(script.functions))
        self.assertEqual(['depmod', 'modprobe'], host(text))
        funcs = {c.word.value: c.func for c in script.commands}
        self.assertEqual('late', funcs['depmod'])
        self.assertEqual('other', funcs['modprobe'])
        self.assertIsNone(funcs['early'])

    def test_assignments(self):
        text = '''
            A=1 B="two words" cmd arg
            C=$(sub)
            D=("$x" "${y[@]}" $(arr) word)
            local e=$(loc) f
            export G=1
            IFS=: read -r a b < file
            '''
        self.assertEqual(['cmd', 'sub', 'arr', 'loc'], host(text))

    def test_prefix_commands(self):
        text = '''
            xargs -0 -n 1 rm -f
            env -u X A=b "C=$d" prog
            timeout -s KILL 10 slow --flag
            sudo -u root -E first
            nice -n 5 second
            exec third "$@"
            command fourth
            command -v notrun
            find . -name '*.o' -exec rm {} + -o -execdir touch {} \\;
            nohup fifth &
            '''
        self.assertEqual(['xargs', 'rm', 'env', 'prog', 'timeout', 'slow',
                          'sudo', 'first', 'nice', 'second', 'third',
                          'fourth', 'find', 'rm', 'touch', 'nohup',
                          'fifth'], host(text))

    def test_comments_and_quotes(self):
        text = '''
            # rm -rf /
            echo 'foo; bar' "baz | qux" a#b # ; rm x
            printf '%s\\n' "$(: 'quoted $(not)')"
            '''
        self.assertEqual([], host(text))

    def test_redirections(self):
        self.assertEqual(['foo', 'bar'],
                         host('2>/dev/null foo >&2 < in >> out\n'
                              'bar 2>&1 &> all\n'))

    def test_line_continuation(self):
        script = chp.parse_shell('foo \\\n    --bar \\\n    baz\nqux\n')
        self.assertEqual([('foo', 1, ['--bar', 'baz']), ('qux', 4, [])],
                         [(c.word.value, c.line, [a.value for a in c.args])
                          for c in script.commands])

    def test_process_substitution(self):
        self.assertEqual(['a', 'b', 'diff', 'c', 'tee'],
                         host('diff <(a) <(b)\ntee >(c)\n'))

    def test_parameter_expansions(self):
        self.assertEqual(['basename'], host(
            'ko=${ko#"$root"}\nabi=${k[0]##*/vmlinuz-}\nn=${#a[@]}\n'
            'x="${LOOP}p1" y=$(basename "${ko}")\n'))

    def test_shell_code_strings(self):
        self.assertEqual(['sh', 'foo', 'bar', 'bash', 'baz', 'bash'],
                         host("sh -c 'foo && bar'\n"
                              "bash -e -o pipefail -c \"baz $x\"\n"
                              "bash script.sh\n"))

    def test_trap_code(self):
        self.assertEqual(['rm'], host('cleanup() { :; }\n'
                                      'trap cleanup EXIT\n'
                                      'trap \'rm -f "$tmp"\' INT\n'
                                      'trap - EXIT\n'))

    def test_chroot(self):
        text = '''
            chroot "$root" grub-install --target=i386-pc "$dev" | sed s/a/b/
            chroot --userspec=0:0 "$root" env PATH=/bin sh -c 'a && b'
            x=$(chroot "$root" apt-cache depends foo | head -n1)
            '''
        self.assertEqual(['chroot', 'sed', 'chroot', 'chroot', 'head'],
                         host(text))
        self.assertEqual(['grub-install', 'env', 'sh', 'a', 'b',
                          'apt-cache'], image(text))

    def test_chroot_wrappers_are_found(self):
        text = '''
            in_root apt-get update -qq
            in_root() {
                chroot "$root" env PATH=/usr/sbin:/usr/bin "$@"
            }
            in_root2() { in_root "$@"; }
            in_root2 systemctl enable x
            in_root apt-get install $(package_list | tr , ' ')
            package_list() { sed 's/#.*//' list; }
            '''
        script = chp.parse_shell(textwrap.dedent(text))
        self.assertEqual({'in_root', 'in_root2'}, script.wrapper_hits)
        # The substitution runs on the host, before the chroot.
        self.assertEqual(['chroot', 'tr', 'sed'], host(text))
        self.assertEqual(['apt-get', 'env', 'systemctl', 'apt-get'],
                         image(text))

    def test_command_words(self):
        text = '''
            /usr/sbin/depmod -a
            /sbin/modprobe x
            /usr/lib/foo/helper
            "$small/bin/busybox" --list
            tox=$cache/venv/bin/tox
            "$tox" -e pep8
            py=python3
            "$py" -c pass
            "$unknown" arg
            f() { "$@"; }
            '''
        self.assertEqual(
            [('depmod', 'host'), ('modprobe', 'host'),
             ('/usr/lib/foo/helper', 'host'),
             ('"$small/bin/busybox"', 'host'),
             ('"$tox" (tox=$cache/venv/bin/tox)', 'host'),
             ('python3', 'host'), ('"$unknown"', 'host'),
             ('"$@"', 'host')],
            found(text, kinds=('program', 'path', 'unresolved',
                               'argument')))
        self.assertEqual(['depmod', 'modprobe', 'python3'], host(text))

    def test_syntax_errors_are_reported(self):
        for text in ('echo "open\n', "echo 'open\n", 'x=$(foo\n',
                     'cat <<EOF\nno end\n'):
            self.assertRaises(chp.ShellSyntaxError, chp.parse_shell, text)


class ShellAnalysisTestCase(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.root = tempfile.mkdtemp(prefix='check-host-programs-')
        self.addCleanup(shutil.rmtree, self.root)

    def write(self, path, text):
        full = os.path.join(self.root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, 'w') as f:
            f.write(textwrap.dedent(text))

    def test_sourced_functions_and_reachability(self):
        self.write('images/common.sh', '''
            helper() { depmod -a; }
            unused() { parted x; }
            require_tools() { :; }
            in_root() { chroot "$root" "$@"; }
            ''')
        self.write('images/build-x.sh', '''
            # shellcheck source=images/common.sh
            source "$(dirname "$0")/common.sh"
            require_tools depmod:kmod
            helper
            in_root grub-install
            ''')
        shell = chp.ShellAnalysis(self.root, ['images/build-x.sh'])
        self.assertEqual([], shell.problems)
        programs = sorted((f.program, f.path, f.side, f.func)
                          for f in shell.findings if f.kind == 'program')
        self.assertEqual([
            ('chroot', 'images/common.sh', 'host', 'in_root'),
            ('depmod', 'images/common.sh', 'host', 'helper'),
            ('dirname', 'images/build-x.sh', 'host', None),
            ('grub-install', 'images/build-x.sh', 'image', None),
            ('parted', 'images/common.sh', 'host', 'unused')], programs)
        reachable = shell.reachable('images/build-x.sh')
        self.assertIn(('images/common.sh', 'helper'), reachable)
        self.assertNotIn(('images/common.sh', 'unused'), reachable)

    def test_sourced_file_calls_what_its_parent_sourced(self):
        # A library of cases, sourced after the helpers it calls.
        self.write('lib.sh', 'helper() { depmod -a; }\n')
        self.write('cases.sh', 'case_one() { helper; }\n')
        self.write('build.sh', '''
            # shellcheck source=lib.sh
            source lib.sh
            # shellcheck source=cases.sh
            source cases.sh
            case_one
            ''')
        shell = chp.ShellAnalysis(self.root, ['build.sh'])
        self.assertEqual([], shell.problems)
        self.assertEqual([('depmod', 'lib.sh')],
                         sorted((f.program, f.path) for f in shell.findings
                                if f.kind == 'program'))

    def test_source_without_directive_is_a_problem(self):
        # (A function makes the analysis parse twice: once said.)
        self.write('a.sh', 'f() { :; }\nsource "$lib"\n')
        shell = chp.ShellAnalysis(self.root, ['a.sh'])
        self.assertEqual(1, len(shell.problems))
        self.assertIn('a.sh:2: cannot tell which file', shell.problems[0])

    def test_parse_errors_are_problems(self):
        self.write('a.sh', 'echo "open\n')
        shell = chp.ShellAnalysis(self.root, ['a.sh'])
        self.assertEqual(['cannot parse a.sh: line 2: unterminated "'],
                         shell.problems)


class PythonTestCase(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.root = tempfile.mkdtemp(prefix='check-host-programs-')
        self.addCleanup(shutil.rmtree, self.root)

    def analyse(self, **modules):
        for name, text in modules.items():
            with open(os.path.join(self.root, name + '.py'), 'w') as f:
                f.write(textwrap.dedent(text))
        analysis = chp.PythonAnalysis(self.root,
                                      [n + '.py' for n in sorted(modules)])
        self.assertEqual([], analysis.problems)
        return [(f.kind, f.program, f.line) for f in analysis.findings]

    def test_literal_lists_and_strings(self):
        self.assertEqual(
            [('program', 'ls', 3), ('program', 'git', 4),
             ('program', 'echo', 5), ('program', 'depmod', 6),
             ('path', '/opt/x/tool', 7)],
            self.analyse(m='''
                import subprocess
                subprocess.run(['ls', '-l'])
                subprocess.check_output(('git', 'log'), text=True)
                subprocess.call('echo hi | grep h', shell=True)
                subprocess.Popen(args=['/sbin/depmod'])
                subprocess.run(['/opt/x/tool'])
                '''))

    def test_names_bound_in_function_and_module(self):
        self.assertEqual(
            [('program', 'foo', 7), ('program', 'bar', 9),
             ('program', 'baz', 12)],
            self.analyse(m='''
                import subprocess
                CMD = ('bar', 'x')
                def f(extra):
                    cmd = ['foo']
                    cmd += ['not-a-program']
                    subprocess.Popen(cmd + extra)
                def g():
                    subprocess.check_call(CMD)
                def h(args):
                    cmd = ['baz'] + list(args)
                    subprocess.run(cmd)
                '''))

    def test_parameters(self):
        self.assertEqual(
            [('program', 'qemu-system-x86_64', 4),
             ('program', 'qemu-other', 4),
             ('program', 'bash', 6), ('venv', 'python', 6)],
            self.analyse(m='''
                import subprocess
                def info(qemu='qemu-system-x86_64'):
                    subprocess.run([qemu, '--version'])
                def logged(cmd, log):
                    return subprocess.Popen(cmd, stdout=log)
                def build():
                    cmd = ['bash', 'script.sh']
                    logged(cmd, None)
                    logged([sys.executable, '-m', 'pip'], None)
                    info(qemu='qemu-other')
                '''))

    def test_venv_programs(self):
        self.assertEqual(
            [('venv', 'baremetal', 4), ('venv', 'ironic', 8),
             ('venv', 'python', 9)],
            self.analyse(a='''
                import subprocess
                from b import _bin
                subprocess.run([_bin('baremetal'), 'node', 'list'])
                ''', b='''
                import os
                import subprocess
                import sys
                def _bin(name):
                    """The venv's."""
                    return os.path.join(os.path.dirname(sys.executable), name)
                subprocess.Popen([_bin('ironic')])
                subprocess.Popen([sys.executable, '-m', 'x'])
                '''))

    def test_aliases_and_other_runners(self):
        self.assertEqual(
            [('program', 'git', 7), ('program', 'ls', 8),
             ('program', 'prog', 9), ('program', 'spawned', 10),
             ('program', 'found', 11)],
            self.analyse(m='''
                from subprocess import check_output as co
                import os
                import shutil
                import subprocess as sp
                import sys
                co(['git', 'status'])
                sp.run(['ls'])
                os.execvp('prog', ['prog', '-x'])
                os.spawnlp(os.P_WAIT, 'spawned', 'spawned')
                shutil.which('found')
                '''))

    def test_unresolved(self):
        self.assertEqual(
            [('unresolved', 'make_cmd()', 3),
             ('unresolved', 'parameter cmd of run()', 5),
             ('unresolved', 'self.cmd', 8)],
            self.analyse(m='''
                import subprocess
                subprocess.Popen(make_cmd())
                def run(cmd):
                    subprocess.run(cmd)
                class C(object):
                    def start(self):
                        subprocess.run(self.cmd)
                '''))

    def test_declarations(self):
        with open(os.path.join(self.root, 'node.py'), 'w') as f:
            f.write('class Spec:\n    qemu: str = "qemu-system-x86_64"\n')
        found = [chp.Finding('qemu_command(spec)', 'bmc.py', 9, 'host',
                             'unresolved', None, 'Bmc._start'),
                 chp.Finding('other()', 'bmc.py', 12, 'host',
                             'unresolved', None, 'Bmc.other')]
        out, problems = chp.apply_declarations(
            self.root, found, {('bmc.py', 'Bmc._start'): ('node.py',
                                                          'Spec.qemu'),
                               ('bmc.py', 'gone'): ('node.py',
                                                    'Spec.qemu')})
        self.assertEqual([('program', 'qemu-system-x86_64'),
                          ('unresolved', 'other()')],
                         [(f.kind, f.program) for f in out])
        self.assertEqual(1, len(problems))
        self.assertIn('bmc.py, function gone,', problems[0])
        self.assertIn('has no unresolved call any more', problems[0])

    def test_indirect(self):
        with open(os.path.join(self.root, 'node.py'), 'w') as f:
            f.write("X = 'a'\nFWD = 'guestfwd=tcp:%s-cmd:nc 127.0.0.1 %d'\n")
        found, problems = chp.indirect_findings(
            self.root, (('node.py', r'-cmd:(\S+)', 'why'),
                        ('node.py', r'^(ipmitool)$', 'why')))
        self.assertEqual([('nc', 2)], [(f.program, f.line) for f in found])
        self.assertEqual(1, len(problems))
        self.assertIn("'^(ipmitool)$' matches nothing", problems[0])


STATUS = """\
Package: coreutils
Status: install ok installed
Essential: yes
Priority: required
Pre-Depends: libc6 (>= 2.34), libacl1

Package: libc6
Status: install ok installed
Priority: optional
Depends: libgcc-s1

Package: libgcc-s1
Status: install ok installed
Priority: optional

Package: libacl1
Status: install ok installed
Priority: optional

Package: mount
Status: install ok installed
Priority: required

Package: kmod
Status: install ok installed
Priority: important
Depends: libkmod2 (= 30), lsb-base | sysvinit-utils (>= 3.05-4~)

Package: libkmod2
Status: install ok installed
Priority: optional

Package: sysvinit-utils
Status: install ok installed
Priority: optional

Package: netcat-openbsd
Status: install ok installed
Priority: important
Depends: libbsd0:any
Provides: netcat

Package: libbsd0
Status: install ok installed
Architecture: amd64

Package: libbsd0
Status: install ok installed
Architecture: i386
Depends: libmd0

Package: libmd0
Status: install ok installed

Package: qemu-system-x86
Status: install ok installed
Priority: optional
Depends: qemu-system-common,
 ipxe-qemu | netcat-traditional,
 x-terminal-emulator
Recommends: ovmf

Package: qemu-system-common
Status: install ok installed

Package: xterm
Status: install ok installed
Provides: x-terminal-emulator

Package: ovmf
Status: install ok installed

Package: netcat-traditional
Status: deinstall ok config-files
Priority: optional

Package: debootstrap
Status: install ok installed
Priority: optional
Depends: wget

Package: chooser
Status: install ok installed
Pre-Depends: libacl1 | libmd0
"""


class DpkgTestCase(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.packages = chp.parse_dpkg_status(STATUS)

    def test_status(self):
        self.assertNotIn('netcat-traditional', self.packages)
        self.assertEqual([['libc6'], ['libacl1']],
                         self.packages['coreutils'].depends)
        self.assertEqual([['libkmod2'], ['lsb-base', 'sysvinit-utils']],
                         self.packages['kmod'].depends)
        self.assertEqual([['qemu-system-common'],
                          ['ipxe-qemu', 'netcat-traditional'],
                          ['x-terminal-emulator']],
                         self.packages['qemu-system-x86'].depends)
        self.assertTrue(self.packages['coreutils'].essential)
        self.assertEqual('required', self.packages['mount'].priority)
        # Two architectures of one package: their dependencies merge.
        self.assertEqual([['libmd0']], self.packages['libbsd0'].depends)

    def test_closure(self):
        self.assertEqual(
            {'kmod': None, 'libkmod2': 'kmod', 'sysvinit-utils': 'kmod'},
            chp.closure(['kmod'], self.packages))
        # No installed alternative of the second: nothing; a virtual
        # package: its installed provider; Recommends: not followed.
        self.assertEqual(
            {'qemu-system-x86': None,
             'qemu-system-common': 'qemu-system-x86',
             'xterm': 'qemu-system-x86'},
            chp.closure(['qemu-system-x86'], self.packages))
        # Two installed alternatives: the first only.
        self.assertEqual({'chooser': None, 'libacl1': 'chooser'},
                         chp.closure(['chooser'], self.packages))
        self.assertEqual(
            {'netcat-openbsd': None, 'libbsd0': 'netcat-openbsd',
             'libmd0': 'libbsd0'},
            chp.closure(['netcat-openbsd', 'not-installed'], self.packages))

    def test_allowed(self):
        allowed = chp.Allowed(['netcat-openbsd', 'debootstrap', 'absent'],
                              self.packages)
        for name in ('coreutils', 'libc6', 'libgcc-s1', 'libacl1', 'mount',
                     'netcat-openbsd', 'libmd0', 'debootstrap'):
            self.assertIn(name, allowed)
        self.assertNotIn('kmod', allowed)
        self.assertNotIn('wget', allowed)
        self.assertEqual(['absent'], allowed.missing)
        self.assertEqual('Essential', allowed.reason('coreutils'))
        self.assertEqual('Essential: coreutils -> libc6 -> libgcc-s1',
                         allowed.reason('libgcc-s1'))
        self.assertEqual('Priority: required', allowed.reason('mount'))
        self.assertEqual('bindep.txt: netcat-openbsd -> libbsd0 -> libmd0',
                         allowed.reason('libmd0'))
        self.assertIsNone(allowed.reason('kmod'))

    def test_program_index(self):
        nc = chp.parse_alternatives('nc', textwrap.dedent('''\
            auto
            /bin/nc
            nc.1.gz
            /usr/share/man/man1/nc.1.gz
            netcat
            /bin/netcat

            /bin/nc.openbsd
            50
            /usr/share/man/man1/nc_openbsd.1.gz
            /bin/nc.openbsd

            '''))
        self.assertEqual(
            ([('nc', '/bin/nc'), ('nc.1.gz', '/usr/share/man/man1/nc.1.gz'),
              ('netcat', '/bin/netcat')],
             [('/bin/nc.openbsd', ['/usr/share/man/man1/nc_openbsd.1.gz',
                                   '/bin/nc.openbsd'])]), nc)
        index = chp.program_index({
            'kmod': ['/bin', '/bin/kmod', '/sbin/depmod', '/usr/sbin/lsmod',
                     '/usr/lib/modprobe.d/x.conf'],
            'netcat-openbsd': ['/bin/nc.openbsd'],
            'jdk': ['/usr/lib/jvm/bin/java']}, [nc])
        self.assertEqual({'kmod': '/sbin/depmod'}, index['depmod'])
        self.assertIn('lsmod', index)
        self.assertNotIn('x.conf', index)
        self.assertNotIn('java', index)
        self.assertNotIn('bin', index)
        self.assertEqual(
            {'netcat-openbsd': 'alternative /bin/nc -> /bin/nc.openbsd'},
            index['nc'])
        self.assertIn('netcat-openbsd', index['netcat'])

    def test_check_programs(self):
        index = {'depmod': {'kmod': '/sbin/depmod'},
                 'nc': {'netcat-openbsd': 'alternative'},
                 'ls': {'coreutils': '/bin/ls'}}
        findings = [
            chp.Finding('depmod', 'common.sh', 94, 'host', 'program', None,
                        None),
            chp.Finding('depmod', 'common.sh', 107, 'host', 'program', None,
                        None),
            chp.Finding('depmod', 'build.sh', 3, 'image', 'program', None,
                        None),
            chp.Finding('nc', 'node.py', 1, 'host', 'program', None, None),
            chp.Finding('ls', 'a.sh', 1, 'host', 'program', None, None),
            chp.Finding('missing', 'a.sh', 2, 'host', 'program', None,
                        None),
            chp.Finding('ironic', 'b.py', 2, 'host', 'venv', None, None)]
        allowed = chp.Allowed(['netcat-openbsd'], self.packages,
                              '/tmp/old-bindep.txt')
        self.assertEqual(
            ['depmod (common.sh:94,107) comes from kmod, which '
             '/tmp/old-bindep.txt does not name',
             'missing (a.sh:2): no installed package provides it'],
            chp.check_programs(findings, allowed, index))
        allowed = chp.Allowed(['netcat-openbsd', 'kmod', 'absent'],
                              self.packages)
        self.assertEqual(
            ['missing (a.sh:2): no installed package provides it (run '
             'tools/install-deps.sh first)'],
            chp.check_programs(findings, allowed, index))


class RequireToolsTestCase(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.root = tempfile.mkdtemp(prefix='check-host-programs-')
        self.addCleanup(shutil.rmtree, self.root)
        with open(os.path.join(self.root, 'common.sh'), 'w') as f:
            f.write('modules() { depmod -a; mount x; }\n'
                    'require_tools() { :; }\n')
        self.packages = chp.parse_dpkg_status(STATUS)
        self.index = {'depmod': {'kmod': '/sbin/depmod'},
                      'mount': {'mount': '/bin/mount'},
                      'debootstrap': {'debootstrap': '/usr/sbin/x'}}

    def problems(self, script):
        with open(os.path.join(self.root, 'build.sh'), 'w') as f:
            f.write('# shellcheck source=common.sh\nsource common.sh\n'
                    + script)
        shell = chp.ShellAnalysis(self.root, ['build.sh'])
        allowed = chp.Allowed(['kmod', 'debootstrap'], self.packages)
        return chp.check_require_tools(shell, ['build.sh'], allowed,
                                       self.index)

    def test_complete(self):
        self.assertEqual([], self.problems('require_tools depmod:kmod\n'
                                           'modules\n'))

    def test_missing_entry(self):
        self.assertEqual(
            ['build.sh runs depmod (common.sh:1), which a minimal Debian '
             'lacks: add depmod:kmod to its require_tools call'],
            self.problems('require_tools\nmodules\n'))

    def test_stale_wrong_and_malformed_entries(self):
        self.assertEqual(
            ['build.sh: line 3: require_tools wants PROGRAM:PACKAGE, not '
             'mount',
             'build.sh:3: require_tools says depmod comes from kmod2; dpkg '
             'says kmod',
             'build.sh:3: require_tools names debootstrap, which the script '
             'does not run'],
            self.problems('require_tools depmod:kmod2 debootstrap:debootstrap'
                          ' mount\nmodules\n'))


class BindepTestCase(unittest.TestCase):

    def test_profiles(self):
        text = textwrap.dedent('''\
            # comment
            plain
            kmod [platform:dpkg test]
            rpmonly [platform:rpm test]
            notdpkg [!platform:dpkg]
            testonly [test]
            doconly [doc]
            notdoc [!doc]
            both [(platform:dpkg test)]
            versioned [platform:dpkg] >=1.2
            ''')
        self.assertEqual(
            [('plain', 2), ('kmod', 3), ('testonly', 6), ('notdoc', 8),
             ('both', 9), ('versioned', 10)],
            chp.bindep_packages(text, {'platform:dpkg', 'platform:debian',
                                       'test'}))

    def test_repository_bindep_names_kmod(self):
        with open(os.path.join(REPO, 'bindep.txt')) as f:
            names = [n for n, _ in chp.bindep_packages(
                f.read(), {'platform:dpkg', 'test'})]
        self.assertIn('kmod', names)
        self.assertIn('debootstrap', names)


class RepositoryTestCase(unittest.TestCase):
    """The extractors on this tree (no dpkg needed)."""

    def test_scripts(self):
        shell = chp.ShellAnalysis(REPO, chp._expand(REPO, chp.SHELL_GLOBS))
        self.assertEqual([], shell.problems)
        host = {(f.program, f.path) for f in shell.findings
                if f.side == 'host' and f.kind == 'program'}
        image = {f.program for f in shell.findings if f.side == 'image'}
        self.assertIn(('depmod', 'testbed/images/common.sh'), host)
        self.assertIn(('debootstrap', 'testbed/images/common.sh'), host)
        self.assertIn('apt-get', image)
        self.assertNotIn('apt-get', {p for p, _ in host
                                     if _.startswith('testbed/images')})
        self.assertNotIn('log', {p for p, _ in host})

    def test_python_declarations_and_indirect_programs(self):
        python = chp.PythonAnalysis(REPO,
                                    chp._expand(REPO, chp.PYTHON_GLOBS))
        findings, problems = chp.apply_declarations(REPO, python.findings)
        indirect, indirect_problems = chp.indirect_findings(REPO)
        self.assertEqual([], python.problems + problems + indirect_problems)
        programs = {f.program for f in findings + indirect
                    if f.kind == 'program'}
        self.assertLessEqual({'qemu-system-x86_64', 'nc', 'ipmitool'},
                             programs)
        self.assertIn('ironic-dbsync', {f.program for f in findings
                                        if f.kind == 'venv'})


if __name__ == '__main__':
    unittest.main()
