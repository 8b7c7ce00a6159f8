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

"""Confined, bounded access to an image, and the discovery budget."""

import os
import shutil
import tempfile

from ironic_python_agent.tests.unit import base

from ipa_kexec import budget
from ipa_kexec import errors
from ipa_kexec import rootfs
from ironic_kexec import protocol
from tests.unit.agent import trees


class RootFSTestCase(base.IronicAgentTest):

    def make(self, files):
        path = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, path, True)
        return trees.build(path, files)

    def image(self, files, **kwargs):
        return rootfs.RootFS(self.make(files), **kwargs)


class TestPaths(RootFSTestCase):

    def test_nul_byte_is_unsafe(self):
        image = self.image({'/boot': None})
        self.assertRaises(errors.UnsafePath, image.resolve, '/boot/a\0b')
        self.assertRaises(errors.UnsafePath, image.find_file, '/a\0')

    def test_over_long_name_and_path_are_unsafe(self):
        image = self.image({'/boot': None})
        self.assertRaises(errors.UnsafePath, image.find,
                          '/boot/' + 'a' * 300)
        self.assertRaises(errors.UnsafePath, image.find,
                          '/a' * (rootfs.MAX_PATH // 2 + 1))

    def test_symlink_chain_bounded(self):
        # Each link adds a long path: the walk stops, it does not grow.
        files = {'/d': None}
        for i in range(39):
            files['/l%d' % i] = trees.Link('/d/' + '../d/' * 100 +
                                           '../l%d' % (i + 1))
        files['/l39'] = trees.Link('/d')
        image = self.image(files)
        exc = self.assertRaises(errors.UnsafePath, image.resolve, '/l0')
        self.assertEqual(protocol.REASON_UNSAFE_PATH, exc.reason)

    def test_fifo_is_not_read(self):
        root = self.make({'/boot/grub': None})
        os.mkfifo(os.path.join(root, 'boot/grub/grub.cfg'))
        image = rootfs.RootFS(root)
        # Neither blocks nor counts as a file.
        self.assertIsNone(image.find_file('/boot/grub/grub.cfg'))
        self.assertRaises(errors.NotFoundInImage, image.read_text,
                          '/boot/grub/grub.cfg')


class TestReads(RootFSTestCase):

    def test_sparse_huge_file_refused_unread(self):
        root = self.make({'/boot': None})
        with open(os.path.join(root, 'boot/big.cfg'), 'wb') as f:
            f.truncate(1 << 40)
        image = rootfs.RootFS(root)
        self.assertRaises(errors.TooLarge, image.read_text,
                          '/boot/big.cfg')
        self.assertEqual(0, image.budget.bytes_read)

    def test_bytes_bounded_per_discovery_not_only_per_file(self):
        chunk = b'#' * budget.MAX_FILE_SIZE
        count = budget.MAX_TOTAL_BYTES // budget.MAX_FILE_SIZE + 1
        image = self.image({'/f%d' % i: chunk for i in range(count)})
        for i in range(count - 1):
            image.read_bytes('/f%d' % i)
        exc = self.assertRaises(errors.BudgetExhausted, image.read_bytes,
                                '/f%d' % (count - 1))
        self.assertEqual(protocol.REASON_TOO_LARGE, exc.reason)

    def test_read_range(self):
        image = self.image({'/uki.efi': b'0123456789'})
        self.assertEqual(b'345', image.read_range('/uki.efi', 3, 3))
        self.assertEqual(b'89', image.read_range('/uki.efi', 8, 100))
        self.assertRaises(errors.TooLarge, image.read_range, '/uki.efi',
                          0, budget.MAX_FILE_SIZE + 1)
        self.assertEqual(5, image.budget.bytes_read)


class TestListdir(RootFSTestCase):

    def test_more_names_than_the_bound_is_refused(self):
        files = {'/boot/loader/entries/%05d.conf' % i: ''
                 for i in range(rootfs.MAX_DIR_ENTRIES + 1)}
        image = self.image(files)
        exc = self.assertRaises(errors.TooLarge, image.listdir,
                                '/boot/loader/entries')
        self.assertEqual(protocol.REASON_TOO_LARGE, exc.reason)

    def test_at_the_bound_all_names_sorted(self):
        files = {'/d/%05d' % i: '' for i in range(rootfs.MAX_DIR_ENTRIES)}
        names = self.image(files).listdir('/d')
        self.assertEqual(rootfs.MAX_DIR_ENTRIES, len(names))
        self.assertEqual(sorted(names), names)

    def test_missing_or_file_is_empty(self):
        image = self.image({'/f': 'x'})
        self.assertEqual([], image.listdir('/f'))
        self.assertEqual([], image.listdir('/nope'))


class TestBudget(base.IronicAgentTest):

    def test_deadline(self):
        now = [100.0]
        b = budget.Budget(max_seconds=5, clock=lambda: now[0])
        b.tick()
        now[0] = 106.0
        exc = self.assertRaises(errors.BudgetExhausted, b.tick)
        self.assertEqual(protocol.REASON_TOO_COMPLEX, exc.reason)

    def test_one_value_too_long_is_a_source_refusal(self):
        b = budget.Budget()
        exc = self.assertRaises(errors.TooComplex, b.expanded,
                                budget.MAX_VALUE + 1, 'x')
        self.assertNotIsInstance(exc, errors.BudgetExhausted)

    def test_expansion_total(self):
        b = budget.Budget()
        for _ in range(budget.MAX_EXPANDED // budget.MAX_VALUE):
            b.expanded(budget.MAX_VALUE, 'x')
        self.assertRaises(errors.BudgetExhausted, b.expanded, 1, 'x')

    def test_entries_files_names_depth(self):
        b = budget.Budget()
        b.entries(budget.MAX_ENTRIES, 'x')
        self.assertRaises(errors.BudgetExhausted, b.entries, 1, 'x')
        for _ in range(budget.MAX_FILES):
            b.open_file('x')
        self.assertRaises(errors.BudgetExhausted, b.open_file, 'x')
        b.names(budget.MAX_TOTAL_NAMES, 'x')
        self.assertRaises(errors.BudgetExhausted, b.names, 1, 'x')
        b.depth(budget.MAX_DEPTH, 'x')
        self.assertRaises(errors.TooComplex, b.depth,
                          budget.MAX_DEPTH + 1, 'x')
