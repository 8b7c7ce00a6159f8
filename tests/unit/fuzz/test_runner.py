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

import contextlib
import io
import json
import os
import pkgutil
import shutil
import tempfile
import unittest

from ipa_kexec import bootloader
from ipa_kexec import errors
from tests.fuzz import imagetree
from tests.fuzz import mutator
from tests.fuzz import runner
from tests.fuzz import seeds
from tests.fuzz import targets
from tests.fuzz import worker
from tests.unit.fuzz import planted


class TestMutator(unittest.TestCase):

    def make(self, seed=0, target='t'):
        return mutator.Mutator(seed, target, [b'set default=0\n{ a }\n',
                                              b'title x\n'])

    def test_same_seed_same_inputs(self):
        a, b = self.make(), self.make()
        self.assertEqual([a.generate(i) for i in range(300)],
                         [b.generate(i) for i in range(300)])

    def test_input_depends_on_index_only(self):
        # A worker restarted after a hang at i goes on at i + 1.
        fuzz = self.make()
        late = fuzz.generate(250)
        [fuzz.generate(i) for i in range(250)]
        self.assertEqual(late, self.make().generate(250))

    def test_seed_and_target_change_inputs(self):
        base = [self.make().generate(i) for i in range(2, 50)]
        self.assertNotEqual(base, [self.make(seed=1).generate(i)
                                   for i in range(2, 50)])
        self.assertNotEqual(base, [self.make(target='u').generate(i)
                                   for i in range(2, 50)])

    def test_seeds_first_then_bounded_mutations(self):
        fuzz = self.make()
        self.assertEqual(fuzz.seeds, [fuzz.generate(0), fuzz.generate(1)])
        inputs = [fuzz.generate(i) for i in range(2, 3000)]
        self.assertGreater(len(set(inputs)), 2500)
        self.assertLessEqual(max(map(len, inputs)), fuzz.big_len)
        # Some inputs are amplified beyond max_len, for quadratic parsers.
        self.assertTrue(any(len(i) > fuzz.max_len for i in inputs))


class TestImageTree(unittest.TestCase):

    def setUp(self):
        self.base = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.base)

    def test_records(self):
        data = imagetree.encode([
            ('M boot', b''), ('F boot/grub/grub.cfg', b'cfg'),
            ('F ../../../x/./y', b'in'), ('L vmlinuz /etc/passwd', b''),
            ('N boot/many 3 f', b''), ('F bad\x00name', b'')])
        tree = imagetree.build(self.base, data)
        boot = tree.mounts['/boot']
        with open(os.path.join(boot, 'grub/grub.cfg'), 'rb') as f:
            self.assertEqual(b'cfg', f.read())
        with open(os.path.join(tree.root, 'x/y'), 'rb') as f:
            self.assertEqual(b'in', f.read())
        self.assertEqual('/etc/passwd',
                         os.readlink(os.path.join(tree.root, 'vmlinuz')))
        self.assertEqual(['f0', 'f1', 'f2'],
                         sorted(os.listdir(os.path.join(boot, 'many'))))
        self.assertEqual({'boot', 'vmlinuz', 'x'},
                         set(os.listdir(tree.root)))
        self.assertEqual({'mnt0', 'root'}, set(os.listdir(self.base)))


class TestTable(unittest.TestCase):

    def test_seeds_pass_the_oracle(self):
        # The table is wired: each target runs its seeds, and valid
        # configurations are no finding.
        workdir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, workdir)
        for target in targets.TARGETS:
            oracle = worker.Oracle(target, targets.Context(workdir),
                                   errors.KexecError)
            for data in seeds.SEEDS[target.seeds]:
                self.assertEqual([], oracle.run(data), target.name)

    def test_every_parser_module_has_a_target(self):
        covered = set()
        for target in targets.TARGETS:
            covered.update(target.covers)
        modules = {'ipa_kexec.bootloader.%s' % m.name
                   for m in pkgutil.iter_modules(bootloader.__path__)}
        self.assertEqual(set(), modules - covered)
        self.assertEqual(len(targets.TARGETS),
                         len(targets.by_name()))


class TestHangSignature(unittest.TestCase):

    def test_innermost_agent_frame(self):
        trace = ('Current thread 0x00007f (most recent call first):\n'
                 '  File "/usr/lib/python3.11/shlex.py", line 136 in '
                 'read_token\n'
                 '  File "/x/ipa_kexec/bootloader/grub.py", line 97 in '
                 'parse\n'
                 '  File "/x/tests/fuzz/worker.py", line 165 in run\n')
        self.assertEqual('Hang @ grub.py:parse in shlex.py:read_token',
                         runner.hang_signature(trace))
        self.assertEqual('Hang @ ?', runner.hang_signature(''))


class TestRunner(unittest.TestCase):
    """The oracles, on targets with planted faults."""

    @classmethod
    def setUpClass(cls):
        cls.results = tempfile.mkdtemp()
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            cls.rc = runner.main([
                '--table', 'tests.unit.fuzz.planted', '--inputs', '3',
                '--timeout', '1', '--memory-mb', '512', '--jobs', '2',
                '--results', cls.results])
        cls.out = out.getvalue()
        with open(os.path.join(cls.results, 'summary.json')) as f:
            cls.report = json.load(f)
        cls.by_target = {t['target']: t for t in cls.report['targets']}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.results)

    def counts(self, name):
        t = self.by_target[name]
        return (t['inputs'], t['crashes'], t['hangs'], t['memory_errors'],
                t['escapes'])

    def test_exit_status_and_tables(self):
        self.assertEqual(1, self.rc, self.out)
        self.assertIn('TOTAL', self.out)
        with open(os.path.join(self.results, 'summary.txt')) as f:
            self.assertIn('tree_escape', f.read())
        self.assertEqual(27, self.report['total']['inputs'])

    def test_clean_targets(self):
        self.assertEqual((3, 0, 0, 0, 0), self.counts('refuse'))
        self.assertEqual((3, 0, 0, 0, 0), self.counts('tree'))

    def test_crash(self):
        # Index 0 is the seed; 1 and 2 are mutations.
        self.assertEqual((3, 2, 0, 0, 0), self.counts('crash'))
        sig, = self.by_target['crash']['signatures']
        line = planted._crash.__code__.co_firstlineno + 1
        self.assertEqual('KeyError @ planted.py:_crash:%d' % line,
                         sig['signature'])
        self.assertEqual(2, sig['count'])
        with open(sig['minimized'], 'rb') as f:
            # Any input but the seed crashes: the minimizer gets to b''.
            self.assertEqual(b'', f.read())
        self.assertEqual(2, len(sig['inputs']))

    def test_hang_is_killed_and_the_run_goes_on(self):
        self.assertEqual((3, 0, 2, 0, 0), self.counts('hang'))
        sig, = self.by_target['hang']['signatures']
        self.assertEqual('Hang @ planted.py:_hang', sig['signature'])
        self.assertTrue(os.path.exists(sig['minimized']))

    def test_memory(self):
        self.assertEqual((3, 0, 0, 2, 0), self.counts('memory'))

    def test_escape(self):
        self.assertEqual((3, 0, 0, 0, 2), self.counts('escape'))
        # Through a symlink of the image, out of its directory: the seed
        # (index 0) has one.
        sig, = self.by_target['tree_escape']['signatures']
        self.assertEqual('os.listdir @ ?', sig['signature'])
        self.assertEqual(0, sig['first_index'])

    def test_interpreter_death(self):
        self.assertEqual((3, 2, 0, 0, 0), self.counts('abort'))
        sig, = self.by_target['abort']['signatures']
        self.assertTrue(sig['signature'].startswith('WorkerDied(-6)'),
                        sig['signature'])

    def test_bad_result(self):
        self.assertEqual((3, 2, 0, 0, 0), self.counts('bad_result'))
