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

"""Discovery on hostile images: one test per case of the corpus.

Every case must end in its expected boot entry or refusal, with no read
outside the image, no hang, bounded memory and no exception but a
KexecError (see :mod:`tests.unit.agent.hostile_corpus`).
"""

import os
import time

from ironic_python_agent.tests.unit import base

from ipa_kexec import errors
from ironic_kexec import protocol
from tests.unit.agent import hostile_corpus as corpus


class TestHostileImages(base.IronicAgentTest):

    def check(self, case):
        result = corpus.run_case(case)
        if result.skipped:
            self.skipTest(result.skipped)
        # One assertion over everything, so that a failure tells all that
        # went wrong with the case, not only the first.
        self.assertEqual([], result.problems(),
                         '%s (%s): %s; outcome: %s'
                         % (case.name, case.klass, case.description,
                            result.describe()))


def _make_test(case):
    def test(self):
        self.check(case)
    test.__name__ = 'test_' + case.name
    test.__doc__ = case.description
    return test


for _case in corpus.CASES:
    setattr(TestHostileImages, 'test_' + _case.name, _make_test(_case))
del _case


class TestCorpus(base.IronicAgentTest):
    """The corpus itself, and that its harness can fail."""

    def test_size_and_classes(self):
        self.assertGreaterEqual(len(corpus.CASES), 40)
        empty = [k for k, n in corpus.by_class() if not n]
        self.assertEqual([], empty)

    def test_expected_reasons_are_protocol_reasons(self):
        for case in corpus.CASES:
            if isinstance(case.expect, corpus.Refused):
                self.assertIn(case.expect.reason, protocol.REASONS,
                              case.name)
            else:
                self.assertIn(case.expect.source, protocol.SOURCES,
                              case.name)

    def _fake(self, discover, expect=None, seconds=corpus.HANG_SECONDS):
        case = corpus.Case('fake', 'symlink', 'fake', corpus.symlink_self_loop,
                           expect or corpus.NEWEST, 5.0, corpus.MAX_PEAK)
        return corpus.run_case(case, discover=discover, seconds=seconds)

    def test_detects_read_outside(self):
        def discover(ctx, tree):
            with open(ctx.secret) as f:
                f.read()
            os.listdir(os.path.dirname(ctx.root))
            raise errors.UnsafePath('x')

        result = self._fake(discover,
                            corpus.Refused(protocol.REASON_UNSAFE_PATH))
        self.assertTrue(result.secret_opened)
        # Two events in each of the two runs.
        self.assertEqual(4, len(result.outside), result.outside)
        self.assertEqual(2, len(result.problems()), result.problems())

    def test_reads_inside_pass(self):
        def discover(ctx, tree):
            os.listdir(ctx.root)
            with open(os.path.join(ctx.root, 'etc', 'fstab')) as f:
                f.read()
            raise errors.UnsafePath('x')

        result = self._fake(discover,
                            corpus.Refused(protocol.REASON_UNSAFE_PATH))
        self.assertEqual([], result.problems())
        self.assertEqual(4, len(result.events))    # two runs, two events

    def test_detects_hang(self):
        def discover(ctx, tree):
            time.sleep(5)

        started = time.monotonic()
        result = self._fake(discover, seconds=0.2)
        self.assertLess(time.monotonic() - started, 4)
        self.assertTrue(result.timed_out)
        self.assertIn('hang', result.problems()[0])

    def test_detects_hang_on_fifo(self):
        def discover(ctx, tree):
            fifo = os.path.join(ctx.root, 'fifo')
            os.mkfifo(fifo)
            with open(fifo):
                pass

        result = self._fake(discover, seconds=0.2)
        self.assertTrue(result.timed_out)

    def test_detects_crash(self):
        def discover(ctx, tree):
            return int('\u00b2')

        result = self._fake(discover)
        self.assertIsInstance(result.error, ValueError)
        self.assertIn('crash: ValueError', result.problems()[0])

    def test_detects_memory(self):
        def discover(ctx, tree):
            blob = [bytes(1024) for _i in range(80 * 1024)]
            del blob
            raise errors.TooLarge('x')

        result = self._fake(discover,
                            corpus.Refused(protocol.REASON_TOO_LARGE))
        self.assertGreater(result.peak, corpus.MAX_PEAK)
        self.assertEqual(1, len(result.problems()), result.problems())

    def test_detects_wrong_outcome(self):
        def discover(ctx, tree):
            raise errors.TooLarge('x')

        result = self._fake(discover)
        self.assertEqual(['expected a newest entry, got too_large: x'],
                         result.problems())
