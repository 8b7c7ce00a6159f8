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

"""What one boot entry discovery may cost, whatever the image holds.

A tenant writes the image; bounding each file is not enough, since an
image can hold thousands of files, each under the bound, or a small file
whose variables expand a million times over. One :class:`Budget` is
shared by every source a discovery tries, so the whole discovery is
bounded: bytes read, files opened, directory names listed, boot entries
parsed, characters produced by variable expansion, nesting, and time.
"""

import time

from ipa_kexec import errors

# Enough for any boot loader configuration a real system ships; a bigger
# file is refused rather than parsed.
MAX_FILE_SIZE = 1024 * 1024
MAX_TOTAL_BYTES = 16 * 1024 * 1024
MAX_FILES = 1024
# Per directory; a bigger directory is refused, never silently cut, or
# the entry a loader would choose could be among the names left out.
MAX_DIR_NAMES = 4096
MAX_TOTAL_NAMES = 32768
MAX_ENTRIES = 1024
# One expanded value, and all expansions together.
MAX_VALUE = 64 * 1024
MAX_EXPANDED = 1024 * 1024
MAX_DEPTH = 64
MAX_SECONDS = 30.0
# The kernel's own limit is 2048 bytes on x86 (COMMAND_LINE_SIZE); other
# architectures allow more. Anything longer is no real command line.
MAX_CMDLINE = 4096
# The kernel, initrds and UKI sections copied into memory for one load.
MAX_PAYLOAD = 1024 * 1024 * 1024


class Budget(object):
    """The remaining allowance of one discovery.

    Every charge raises :class:`ipa_kexec.errors.BudgetExhausted` once an
    allowance is spent; discovery then stops, whichever source it was in.
    """

    def __init__(self, max_seconds=MAX_SECONDS, clock=time.monotonic):
        self._clock = clock
        self.deadline = clock() + max_seconds
        self.max_seconds = max_seconds
        self.bytes_read = 0
        self.files = 0
        self.dir_names = 0
        self.entries_seen = 0
        self.expanded_chars = 0

    def _exhausted(self, reason, what, limit, unit):
        raise errors.BudgetExhausted(
            reason, 'discovery gave up at %s: more than %s %s in one '
            'discovery' % (what, limit, unit))

    def read(self, nbytes, what):
        self.bytes_read += nbytes
        if self.bytes_read > MAX_TOTAL_BYTES:
            self._exhausted(errors.TOO_LARGE, what, MAX_TOTAL_BYTES,
                            'bytes read')
        self.tick()

    def open_file(self, what):
        self.files += 1
        if self.files > MAX_FILES:
            self._exhausted(errors.TOO_LARGE, what, MAX_FILES,
                            'files opened')

    def names(self, count, what):
        self.dir_names += count
        if self.dir_names > MAX_TOTAL_NAMES:
            self._exhausted(errors.TOO_LARGE, what, MAX_TOTAL_NAMES,
                            'directory names')
        self.tick()

    def entries(self, count, what):
        self.entries_seen += count
        if self.entries_seen > MAX_ENTRIES:
            self._exhausted(errors.TOO_LARGE, what, MAX_ENTRIES,
                            'boot entries')

    def expanded(self, count, what):
        """Charge ``count`` characters produced by a variable expansion."""
        if count > MAX_VALUE:
            raise errors.TooComplex(
                '%s expands to more than %d characters' % (what, MAX_VALUE))
        self.expanded_chars += count
        if self.expanded_chars > MAX_EXPANDED:
            self._exhausted(errors.TOO_COMPLEX, what, MAX_EXPANDED,
                            'characters of variable expansion')

    def depth(self, level, what):
        """Refuse nesting deeper than MAX_DEPTH (the source, not all)."""
        if level > MAX_DEPTH:
            raise errors.TooComplex('%s nests deeper than %d levels'
                                    % (what, MAX_DEPTH))

    def tick(self):
        """Fail once the discovery has run out of time."""
        if self._clock() > self.deadline:
            raise errors.BudgetExhausted(
                errors.TOO_COMPLEX, 'discovery took longer than %g seconds'
                % self.max_seconds)

    def summary(self):
        return {'bytes_read': self.bytes_read, 'files': self.files,
                'dir_names': self.dir_names, 'entries': self.entries_seen,
                'expanded': self.expanded_chars}


def ensure(budget):
    """The budget to charge: the caller's, or a fresh one."""
    return budget if budget is not None else Budget()
