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

"""Confined access to a tenant's image mounted on the agent.

Every path read from the image (symlinks, boot loader configuration) is
written by the tenant. It is resolved here component by component, with
symlinks followed relative to the image root, so that nothing on the
agent's own filesystem is ever reached. Reads are bounded.
"""

import errno
import os
import stat

from ipa_kexec import errors

# Enough for any boot loader configuration a real system ships; a bigger
# file is refused rather than parsed.
MAX_CONFIG_SIZE = 1024 * 1024
MAX_DIR_ENTRIES = 4096
# Linux gives up after 40 symlinks (MAXSYMLINKS) too.
MAX_SYMLINKS = 40


def split_path(path):
    return [c for c in path.split('/') if c not in ('', '.')]


class Resolved(object):
    """A path resolved inside the image.

    :ivar path: the path as seen inside the image, without symlinks.
    :ivar host_path: where that file is on the agent, for reading it.
    """

    def __init__(self, path, host_path, st):
        self.path = path
        self.host_path = host_path
        self.stat = st

    def is_file(self):
        return stat.S_ISREG(self.stat.st_mode)

    def is_dir(self):
        return stat.S_ISDIR(self.stat.st_mode)


class RootFS(object):
    """An image's root filesystem, plus filesystems mounted inside it.

    :param root: the agent path where the image's root is mounted.
    :param mounts: maps paths inside the image (e.g. ``/boot``) to agent
        paths where a separate filesystem of the image is mounted.
    """

    def __init__(self, root, mounts=None):
        self.root = os.path.abspath(root)
        self.mounts = {}
        for path, host in (mounts or {}).items():
            self.mounts[tuple(split_path(path))] = os.path.abspath(host)

    def add_mount(self, path, host):
        self.mounts[tuple(split_path(path))] = os.path.abspath(host)

    def __repr__(self):
        return 'RootFS(%r, %r)' % (self.root, self.mounts)

    def _host(self, parts):
        for n in range(len(parts), 0, -1):
            base = self.mounts.get(tuple(parts[:n]))
            if base is not None:
                return os.path.join(base, *parts[n:])
        return os.path.join(self.root, *parts)

    def resolve(self, path):
        """Resolve a path inside the image.

        :raises: UnsafePath if the path or a symlink leaves the image.
        :raises: NotFoundInImage if it does not exist.
        """
        pending = split_path(path)
        parts = []
        links = 0
        st = os.lstat(self._host(parts))
        while pending:
            comp = pending.pop(0)
            if comp == '..':
                if not parts:
                    raise errors.UnsafePath(
                        'path %s goes above the root of the image' % path)
                parts.pop()
                st = os.lstat(self._host(parts))
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise errors.NotFoundInImage(path)
            candidate = parts + [comp]
            host = self._host(candidate)
            try:
                st = os.lstat(host)
            except OSError as e:
                if e.errno in (errno.ENOENT, errno.ENOTDIR):
                    raise errors.NotFoundInImage(path)
                raise
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_SYMLINKS:
                    raise errors.UnsafePath(
                        'too many symlinks resolving %s' % path)
                target = os.readlink(host)
                if target.startswith('/'):
                    # Absolute links mean the image's root, never ours.
                    parts = []
                    st = os.lstat(self._host(parts))
                else:
                    st = os.lstat(self._host(parts))
                pending = split_path(target) + pending
                continue
            parts = candidate
        return Resolved('/' + '/'.join(parts), self._host(parts), st)

    def find(self, path):
        """Resolve a path, or None if it does not exist in the image."""
        try:
            return self.resolve(path)
        except errors.NotFoundInImage:
            return None

    def find_file(self, path):
        """Resolve a regular file, or None."""
        found = self.find(path)
        return found if found is not None and found.is_file() else None

    def exists(self, path):
        return self.find(path) is not None

    def is_dir(self, path):
        found = self.find(path)
        return found is not None and found.is_dir()

    def is_mountpoint(self, path):
        """Whether a directory of the image is a separate filesystem."""
        parts = tuple(split_path(path))
        if parts in self.mounts:
            return True
        found = self.find(path)
        if found is None or not found.is_dir() or found.path == '/':
            return False
        parent = self.resolve(os.path.dirname(found.path))
        return found.stat.st_dev != parent.stat.st_dev

    def read_bytes(self, path, limit=MAX_CONFIG_SIZE):
        """Read a regular file of the image, at most ``limit`` bytes.

        :raises: TooLarge if the file is bigger than ``limit``.
        :raises: NotFoundInImage if it does not exist or is no file.
        """
        found = self.resolve(path)
        if not found.is_file():
            raise errors.NotFoundInImage(path)
        # O_NOFOLLOW: the resolved host path has no symlink left; refuse
        # one that appeared since.
        fd = os.open(found.host_path,
                     os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, 'rb') as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise errors.NotFoundInImage(path)
            data = f.read(limit + 1)
        if len(data) > limit:
            raise errors.TooLarge('%s in the image is larger than %d bytes'
                                  % (found.path, limit))
        return data

    def read_text(self, path, limit=MAX_CONFIG_SIZE):
        return self.read_bytes(path, limit).decode('utf-8', 'replace')

    def read_text_or_none(self, path, limit=MAX_CONFIG_SIZE):
        try:
            return self.read_text(path, limit)
        except errors.NotFoundInImage:
            return None

    def listdir(self, path, limit=MAX_DIR_ENTRIES):
        """Names in a directory of the image (at most ``limit``), sorted."""
        found = self.find(path)
        if found is None or not found.is_dir():
            return []
        names = []
        with os.scandir(found.host_path) as it:
            for entry in it:
                names.append(entry.name)
                if len(names) >= limit:
                    break
        return sorted(names)
