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

"""Fuzz input bytes -> a small image tree on disk.

The input is a list of records separated by :data:`mutator.SEP`; the first
line of a record says what it is, the rest is a file's content:

- ``F path``: a regular file (the rest of the record is its content);
- ``L path target``: a symlink, its target written as is (absolute,
  ``../..``: whatever the image says);
- ``D path``: a directory;
- ``M path``: ``path`` of the image is a separate filesystem (a
  ``/boot`` or an ESP), held in its own directory next to the root;
- ``N dir count prefix``: ``count`` empty files ``prefix0``... in ``dir``
  (at most :data:`MAX_MANY`), for directory bounds.

The paths the harness writes never leave the input's directory (``..``
and empty components are dropped); symlink targets are not checked, that
is the image's part. A record that cannot be written is skipped.
"""

import os

from tests.fuzz import mutator

MAX_RECORDS = 64
MAX_MANY = 5000
MAX_COMPONENTS = 32


def _parts(path):
    return [c for c in path.split('/') if c not in ('', '.', '..')][
        :MAX_COMPONENTS]


class Tree(object):
    """The image tree of one input, under ``base``.

    :ivar root: the image root's directory.
    :ivar mounts: image path -> directory, for RootFS.
    """

    def __init__(self, base):
        self.base = base
        self.root = os.path.join(base, 'root')
        self.mounts = {}
        os.mkdir(self.root)

    def host(self, parts):
        """Where image path ``parts`` is written: in a mount, else root."""
        for n in range(len(parts), 0, -1):
            key = '/' + '/'.join(parts[:n])
            if key in self.mounts:
                return os.path.join(self.mounts[key], *parts[n:])
        return os.path.join(self.root, *parts)

    def _parent(self, parts):
        parent = os.path.dirname(self.host(parts))
        os.makedirs(parent, exist_ok=True)
        return self.host(parts)

    def add(self, header, content):
        words = header.split(' ')
        kind, args = words[0], words[1:]
        if kind == 'F' and args:
            parts = _parts(args[0])
            if parts:
                with open(self._parent(parts), 'wb') as f:
                    f.write(content)
        elif kind == 'L' and len(args) >= 2:
            parts = _parts(args[0])
            if parts:
                os.symlink(' '.join(args[1:]), self._parent(parts))
        elif kind == 'D' and args:
            os.makedirs(self.host(_parts(args[0])), exist_ok=True)
        elif kind == 'M' and args:
            parts = _parts(args[0])
            if parts and len(self.mounts) < 4:
                host = os.path.join(self.base, 'mnt%d' % len(self.mounts))
                os.mkdir(host)
                # The mount point exists in the root, as on a real image.
                os.makedirs(self.host(parts), exist_ok=True)
                self.mounts['/' + '/'.join(parts)] = host
        elif kind == 'N' and len(args) >= 2 and args[1].isdigit():
            directory = self.host(_parts(args[0]))
            os.makedirs(directory, exist_ok=True)
            prefix = args[2] if len(args) > 2 else 'f'
            for i in range(min(int(args[1][:5]), MAX_MANY)):
                with open(os.path.join(directory, '%s%d' % (prefix, i)),
                          'wb'):
                    pass


def build(base, data):
    """Write the tree ``data`` describes under ``base`` (which exists)."""
    tree = Tree(base)
    for record in data.split(mutator.SEP)[:MAX_RECORDS]:
        header, _sep, content = record.partition(b'\n')
        # Names are bytes on Linux: keep any byte of the input.
        header = header.decode('utf-8', 'surrogateescape')
        try:
            tree.add(header, content)
        except (OSError, ValueError, UnicodeError):
            # e.g. a NUL in a name, a name too long: not an image a
            # filesystem can hold.
            continue
    return tree


def encode(records):
    """The input bytes for ``records``, a list of (header, content)."""
    return mutator.SEP.join(
        header.encode('utf-8', 'surrogateescape') + b'\n' + content
        for header, content in records)
