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
agent's own filesystem is ever reached. Every read is bounded, and
charged to the discovery's :class:`ipa_kexec.budget.Budget`.
"""

import errno
import os
import stat

from ipa_kexec import budget as budget_mod
from ipa_kexec import errors

MAX_CONFIG_SIZE = budget_mod.MAX_FILE_SIZE
MAX_DIR_ENTRIES = budget_mod.MAX_DIR_NAMES
# Linux gives up after 40 symlinks (MAXSYMLINKS) too.
MAX_SYMLINKS = 40
# Linux's PATH_MAX and NAME_MAX: a longer path or name is no real one.
MAX_PATH = 4096
MAX_NAME = 255
# Components walked for one path, symlinks included: keeps a chain of
# links to deep paths linear, far above any real boot path.
MAX_STEPS = 1024
# Errors of lstat/open that mean "not usable here", not "agent broken".
_NOT_FOUND_ERRNOS = (errno.ENOENT, errno.ENOTDIR)
_UNSAFE_ERRNOS = (errno.ENAMETOOLONG, errno.ELOOP, errno.EACCES,
                  errno.EPERM, errno.EIO, errno.EOVERFLOW, errno.EINVAL,
                  errno.ENXIO, errno.EUCLEAN)


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

    :param budget: the discovery's budget; a fresh one if None.
    :ivar subvol: the btrfs subvolume holding the image root, if any.
    """

    def __init__(self, root, mounts=None, budget=None, subvol=None):
        self.root = os.path.abspath(root)
        self.mounts = {}
        for path, host in (mounts or {}).items():
            self.mounts[tuple(split_path(path))] = os.path.abspath(host)
        self.budget = budget_mod.ensure(budget)
        self.subvol = subvol

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

        :raises: UnsafePath if the path or a symlink leaves the image, or
            is no path Linux could have written (NUL, over-long).
        :raises: NotFoundInImage if it does not exist.
        """
        self._check_path(path)
        try:
            return self._resolve(path)
        except OSError as e:
            if e.errno in _NOT_FOUND_ERRNOS:
                raise errors.NotFoundInImage(path)
            if e.errno in _UNSAFE_ERRNOS:
                raise errors.UnsafePath('cannot resolve %r in the image: %s'
                                        % (path[:MAX_NAME], e.strerror))
            raise

    @staticmethod
    def _check_path(path):
        if not isinstance(path, str):
            raise errors.UnsafePath('path %r is not text' % (path,))
        if '\0' in path:
            raise errors.UnsafePath('path %r has a NUL byte'
                                    % path[:MAX_NAME])
        if len(path) > MAX_PATH:
            raise errors.UnsafePath('path %r... is longer than %d'
                                    % (path[:MAX_NAME], MAX_PATH))

    def _resolve(self, path):
        pending = list(reversed(split_path(path)))
        parts = []
        links = 0
        steps = 0
        st = os.lstat(self._host(parts))
        while pending:
            comp = pending.pop()
            steps += 1
            if steps > MAX_STEPS:
                raise errors.UnsafePath('%r takes more than %d steps to '
                                        'resolve' % (path[:MAX_NAME],
                                                     MAX_STEPS))
            if len(comp) > MAX_NAME:
                raise errors.UnsafePath('a name in %r is longer than %d'
                                        % (path[:MAX_NAME], MAX_NAME))
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
            st = os.lstat(host)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_SYMLINKS:
                    raise errors.UnsafePath(
                        'too many symlinks resolving %s' % path)
                target = os.readlink(host)
                self._check_path(target)
                if target.startswith('/'):
                    # Absolute links mean the image's root, never ours.
                    parts = []
                st = os.lstat(self._host(parts))
                pending.extend(reversed(split_path(target)))
                if len(pending) > MAX_PATH:
                    raise errors.UnsafePath('symlinks in %r expand past %d '
                                            'names' % (path[:MAX_NAME],
                                                       MAX_PATH))
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

    def _open(self, path):
        """A regular file of the image, opened; the caller closes it."""
        found = self.resolve(path)
        if not found.is_file():
            raise errors.NotFoundInImage(path)
        self.budget.open_file(found.path)
        # O_NOFOLLOW: the resolved host path has no symlink left; refuse
        # one that appeared since. O_NONBLOCK: a FIFO swapped in since
        # must not block the agent.
        try:
            fd = os.open(found.host_path,
                         os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as e:
            raise errors.UnsafePath('cannot open %s in the image: %s'
                                    % (found.path, e.strerror))
        f = os.fdopen(fd, 'rb')
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            f.close()
            raise errors.NotFoundInImage(path)
        return found, f

    def _read(self, found, f, size):
        try:
            data = f.read(size)
        except OSError as e:
            raise errors.UnsafePath('cannot read %s in the image: %s'
                                    % (found.path, e.strerror))
        self.budget.read(len(data), found.path)
        return data

    def read_bytes(self, path, limit=MAX_CONFIG_SIZE):
        """Read a regular file of the image, at most ``limit`` bytes.

        :raises: TooLarge if the file is bigger than ``limit``.
        :raises: NotFoundInImage if it does not exist or is no file.
        :raises: BudgetExhausted once the discovery has read too much.
        """
        limit = min(limit, MAX_CONFIG_SIZE)
        found, f = self._open(path)
        with f:
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                # Refused before reading: a sparse 1 TiB file costs
                # nothing.
                raise errors.TooLarge('%s in the image is larger than %d '
                                      'bytes' % (found.path, limit))
            data = self._read(found, f, limit + 1)
        if len(data) > limit:
            raise errors.TooLarge('%s in the image is larger than %d bytes'
                                  % (found.path, limit))
        return data

    def read_range(self, path, offset, size):
        """``size`` bytes at ``offset`` of a file (fewer at its end).

        For binary formats read piecewise (a UKI's headers); charged to
        the budget like any read.
        """
        if offset < 0 or size < 0 or size > MAX_CONFIG_SIZE:
            raise errors.TooLarge('a read of %d bytes at %d in %s is out '
                                  'of bounds' % (size, offset, path))
        found, f = self._open(path)
        with f:
            f.seek(offset)
            return self._read(found, f, size)

    def open_file(self, path):
        """A regular file of the image, opened read-only, and its path.

        For copying a kernel, initrd or UKI section out of the image; the
        caller bounds and closes. Returns (Resolved, file object).
        """
        return self._open(path)

    def read_text(self, path, limit=MAX_CONFIG_SIZE):
        return self.read_bytes(path, limit).decode('utf-8', 'replace')

    def read_text_or_none(self, path, limit=MAX_CONFIG_SIZE):
        try:
            return self.read_text(path, limit)
        except errors.NotFoundInImage:
            return None

    def listdir(self, path, limit=MAX_DIR_ENTRIES):
        """Names in a directory of the image, sorted.

        :raises: TooLarge for a directory of more than ``limit`` names:
            refused, never cut, since the name a boot loader would
            choose could be among those left out.
        """
        found = self.find(path)
        if found is None or not found.is_dir():
            return []
        names = []
        try:
            with os.scandir(found.host_path) as it:
                for entry in it:
                    names.append(entry.name)
                    if len(names) > limit:
                        raise errors.TooLarge(
                            '%s in the image has more than %d names'
                            % (found.path, limit))
        except OSError as e:
            raise errors.UnsafePath('cannot list %s in the image: %s'
                                    % (found.path, e.strerror))
        finally:
            self.budget.names(len(names), found.path)
        return sorted(names)
