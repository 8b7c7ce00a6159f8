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

"""A corpus of hostile images, and the harness that runs discovery on them.

Each :class:`Case` builds a small image tree (a tenant wrote it: nothing in
it can be trusted) and says what discovery must end in: the boot entry a
later source still yields, or a refusal with a protocol reason code.
:func:`run_case` runs :func:`ipa_kexec.discovery.discover` on it and
watches what must never happen, whatever the image holds:

* a read outside the image: an audit hook records every ``open``,
  ``os.listdir``, ``os.scandir`` and ``os.chdir`` while discovery runs; a
  ``secret`` file next to the image root is what hostile symlinks and
  ``..`` paths aim at;
* a hang: a wall-clock timer interrupts discovery (with a CPU limit as a
  backstop for a loop that never returns to Python);
* unbounded memory: the peak traced by tracemalloc, under an address space
  limit so that a blow-up fails the case instead of the machine;
* any exception but a :class:`ipa_kexec.errors.KexecError`.

The table (:data:`CASES`) is data, so that ``tools/hostile_corpus_table.py``
can print it for the documentation.
"""

import collections
import logging
import os
import random
import resource
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import tracemalloc

from ipa_kexec import budget
from ipa_kexec import discovery
from ipa_kexec import errors
from ipa_kexec import rootfs
from ironic_kexec import protocol
from tests.unit.agent import trees

MIB = 1024 * 1024
GIB = 1024 * MIB
# A case that takes longer than this hangs.
HANG_SECONDS = 10.0
# Inputs that a quadratic parser would choke on must stay fast.
PARSE_SECONDS = 2.0
# The bound of the run under tracemalloc, as a multiple of the other's.
TRACED_FACTOR = 4
MAX_PEAK = 64 * MIB
# Address space a case may add before it fails with MemoryError.
AS_HEADROOM = 2 * GIB

TOO_LARGE = protocol.REASON_TOO_LARGE
TOO_COMPLEX = protocol.REASON_TOO_COMPLEX
UNSAFE_PATH = protocol.REASON_UNSAFE_PATH

# The classes of the issue; every one has at least one case.
CLASSES = (
    'nesting',          # deeply nested blocks or includes
    'amplification',    # many files, each within its bound
    'quadratic',        # shapes a quadratic parser chokes on
    'expansion',        # variables that expand to huge values
    'byte-budget',      # the discovery's bound, not the file's
    'dir-names',        # more than MAX_DIR_NAMES names
    'nul',              # NUL bytes in paths and command lines
    'long-name',        # over-long names and paths
    'digits',           # non-ASCII digits where a number is read
    'int-limit',        # numbers over Python's int string limit
    'symlink',          # loops, escapes, links across mounts
    'special-file',     # FIFOs, sockets, devices for config files
    'sparse',           # huge sparse files
    'garbage',          # binary garbage, invalid UTF-8
    'crlf',             # DOS line ends
    'grubenv',          # an environment block over its bound
    'fstab',            # an fstab naming devices outside the image
    'systemd-boot',     # loader.conf and Type #1 entries on the ESP
    'extlinux',         # extlinux.conf
    'uki',              # Unified Kernel Images
)

UUID = '3b4c1f0e-5a7d-4f0b-9c1e-2d6a8b9e0f11'
MACHINE_ID = 'a1b2c3d4e5f6478899aabbccddeeff00'
FSTAB = 'UUID=%s / ext4 errors=remount-ro 0 1\n' % UUID
# What discovery builds from FSTAB when the source has no command line.
FSTAB_CMDLINE = 'root=UUID=%s ro' % UUID
CMDLINE = 'root=UUID=%s ro quiet' % UUID

DEB = '6.1.0-%d-amd64'
FED = '6.5.%d-300.fc39.x86_64'
# A kernel no fallback source (symlinks, newest) can find.
TENANT_KERNEL = '/boot/tenant-kernel'
TENANT_INITRD = '/boot/tenant-initrd'


# Files that trees.build cannot make.

class Fifo(object):
    def make(self, host):
        os.mkfifo(host)


class Socket(object):
    def make(self, host):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(host)
        finally:
            sock.close()


class CharDevice(object):
    def __init__(self, major, minor):
        self.major = major
        self.minor = minor

    def make(self, host):
        try:
            os.mknod(host, 0o600 | 0o020000,
                     os.makedev(self.major, self.minor))
        except (PermissionError, OSError) as e:
            raise Unsupported('cannot create a device node here: %s' % e)


class Sparse(object):
    """A file of ``size`` bytes, only ``head`` of them written."""

    def __init__(self, size, head=b''):
        self.size = size
        self.head = head

    def make(self, host):
        with open(host, 'wb') as f:
            f.write(self.head)
            f.truncate(self.size)


_SPECIAL = (Fifo, Socket, CharDevice, Sparse)


class Unsupported(Exception):
    """The case cannot be built on this machine (e.g. no mknod)."""


class Tree(object):
    """The files of an image root, and of filesystems mounted in it."""

    def __init__(self, files, mounts=None):
        self.files = files
        self.mounts = mounts or {}


class Context(object):
    """Where a case is built: ``secret`` sits next to the image root."""

    def __init__(self, base):
        self.base = base
        self.root = os.path.join(base, 'root')
        self.secret = os.path.join(base, 'secret')

    def mount_dir(self, path):
        return os.path.join(self.base,
                            'mnt' + path.replace('/', '-'))


def make_tree(host_base, files):
    os.makedirs(host_base, exist_ok=True)
    plain = {p: c for p, c in files.items()
             if not isinstance(c, _SPECIAL)}
    trees.build(host_base, plain)
    for path, content in files.items():
        if isinstance(content, _SPECIAL):
            host = os.path.join(host_base, path.lstrip('/'))
            os.makedirs(os.path.dirname(host), exist_ok=True)
            content.make(host)
    return host_base


# Expected outcomes.

ANY = object()


class Entry(object):
    """A boot entry discovery must return (ANY: the contract leaves it)."""

    def __init__(self, kernel, initrds, cmdline, source, uki=None):
        self.kernel = kernel
        self.initrds = initrds
        self.cmdline = cmdline
        self.source = source
        self.uki = uki

    def fields(self):
        initrd = ANY
        if self.initrds is not ANY:
            initrd = self.initrds[-1] if self.initrds else None
        cmdline = self.cmdline
        if (self.source == protocol.SOURCE_GRUB and cmdline is not ANY
                and self.kernel is not ANY):
            # grub's linux command starts the line with the kernel's name.
            cmdline = ' '.join(c for c in ('BOOT_IMAGE=' + self.kernel,
                                           cmdline) if c)
        return {protocol.FIELD_KERNEL: self.kernel,
                protocol.FIELD_INITRD: initrd,
                protocol.FIELD_INITRDS: self.initrds,
                protocol.FIELD_UKI: self.uki,
                protocol.FIELD_CMDLINE: cmdline,
                protocol.FIELD_SOURCE: self.source}

    def mismatch(self, result):
        if result.error is not None:
            return 'expected a %s entry, got %s' % (self.source,
                                                    result.describe())
        got = result.entry.to_result()
        diffs = []
        for name, want in self.fields().items():
            if want is ANY or name not in got:
                continue
            if got[name] != want:
                diffs.append('%s: expected %s, got %s'
                             % (name, _short(want), _short(got[name])))
        return '; '.join(diffs) or None

    def describe(self):
        return 'entry from %s' % self.source


class Refused(object):
    """A KexecError with this protocol reason."""

    def __init__(self, reason):
        self.reason = reason

    def mismatch(self, result):
        if result.error is None:
            return 'expected refusal %s, got %s' % (
                self.reason, _short(result.entry.to_result(), 400))
        if (not isinstance(result.error, errors.KexecError)
                or result.error.reason != self.reason):
            return 'expected refusal %s, got %s' % (self.reason,
                                                    result.describe())
        return None

    def describe(self):
        return 'refused: %s' % self.reason


def _short(value, size=200):
    """repr() of ``value``, cut to ``size`` characters."""
    return _clip(repr(value), size)


def _clip(text, size=200):
    return text if len(text) <= size else text[:size] + '...'


Case = collections.namedtuple(
    'Case', 'name klass description build expect max_seconds max_peak')


CASES = []


def case(klass, expect, max_seconds=HANG_SECONDS, max_peak=MAX_PEAK):
    """Register the decorated builder as a case (its docstring says what)."""
    assert klass in CLASSES, klass

    def register(build):
        name = build.__name__
        assert not any(c.name == name for c in CASES), name
        CASES.append(Case(name, klass, ' '.join(build.__doc__.split()),
                          build, expect, max_seconds, max_peak))
        return build
    return register


# The audit hook: installed once per process, recording only while a case
# runs.

_AUDITED = frozenset(('open', 'os.listdir', 'os.scandir', 'os.chdir'))
_audit = {'installed': False, 'active': False, 'busy': False,
          'events': []}


def _hook(event, args):
    if not _audit['active'] or _audit['busy'] or event not in _AUDITED:
        return
    path = args[0] if args else None
    if isinstance(path, int):
        return      # an already open descriptor
    _audit['busy'] = True
    try:
        if path is None:
            path = '.'
        try:
            path = os.fsdecode(path)
            real = os.path.realpath(path)
        except (TypeError, ValueError, OSError):
            # e.g. a NUL byte: never reaches the filesystem, but still a
            # path discovery tried.
            real = os.path.abspath(str(path).split('\0')[0])
        _audit['events'].append((event, real))
    finally:
        _audit['busy'] = False


def _install_hook():
    if not _audit['installed']:
        sys.addaudithook(_hook)
        _audit['installed'] = True


_CODE_SUFFIXES = ('.py', '.pyc', '.so', '.pth')


def _inside(path, dirs):
    return any(path == d or path.startswith(d + os.sep) for d in dirs)


def _python_dirs(base):
    """Where the agent's own code is (imports, tracebacks read there)."""
    dirs = set()
    for entry in sys.path + [sys.prefix, sys.base_prefix, sys.exec_prefix]:
        entry = os.path.realpath(entry or os.getcwd())
        # Never excuse a directory that holds the case itself.
        if os.path.isdir(entry) and not _inside(base, [entry]):
            dirs.add(entry)
    return sorted(dirs)


def outside_reads(events, allowed, base):
    """The recorded events that reached outside ``allowed`` dirs."""
    code = _python_dirs(base)
    found = []
    for event, path in events:
        if _inside(path, allowed):
            continue
        if _inside(path, code) and not _inside(path, [base]) and (
                event != 'open' or path.endswith(_CODE_SUFFIXES)
                or '__pycache__' in path):
            continue    # an import or a traceback of the agent's code
        found.append((event, path))
    return found


class CaseTimeout(BaseException):
    """Raised by the timer.

    A BaseException, so that no ``except Exception`` of the code under test
    swallows it.
    """


def _on_alarm(signum, frame):
    raise CaseTimeout()


def _vm_size():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmSize:'):
                return int(line.split()[1]) * 1024
    return None


class _Guard(object):
    """Timer, CPU and address-space limits around one discovery."""

    def __init__(self, seconds):
        self.seconds = seconds

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError('hostile cases run in the main thread')
        self.old_handler = signal.signal(signal.SIGALRM, _on_alarm)
        # The test runner's own timeout (fixtures.Timeout) uses the same
        # timer: keep what is left of it and set it back after.
        self.old_timer = signal.setitimer(signal.ITIMER_REAL, self.seconds)
        self.started = time.monotonic()
        self.old_cpu = resource.getrlimit(resource.RLIMIT_CPU)
        used = resource.getrusage(resource.RUSAGE_SELF)
        cpu = int(used.ru_utime + used.ru_stime + 1 + 3 * self.seconds)
        if self.old_cpu[1] == resource.RLIM_INFINITY or \
                cpu < self.old_cpu[1]:
            # A loop in C never returns to Python to see the timer: the
            # kernel kills the worker instead of letting it hang.
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, self.old_cpu[1]))
        self.old_as = resource.getrlimit(resource.RLIMIT_AS)
        size = _vm_size()
        if size is not None and (self.old_as[1] == resource.RLIM_INFINITY
                                 or size + AS_HEADROOM < self.old_as[1]):
            resource.setrlimit(resource.RLIMIT_AS,
                               (size + AS_HEADROOM, self.old_as[1]))
        return self

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_REAL, 0)
        resource.setrlimit(resource.RLIMIT_AS, self.old_as)
        resource.setrlimit(resource.RLIMIT_CPU, self.old_cpu)
        signal.signal(signal.SIGALRM, self.old_handler)
        left, interval = self.old_timer
        if left:
            elapsed = time.monotonic() - self.started
            signal.setitimer(signal.ITIMER_REAL,
                             max(left - elapsed, 0.001), interval)
        return False


class _LogCounter(logging.Handler):
    """Counts (and formats, as a real handler would) the log records."""

    def __init__(self):
        super(_LogCounter, self).__init__(logging.DEBUG)
        self.records = 0
        self.size = 0

    def emit(self, record):
        self.records += 1
        self.size += len(self.format(record))


class Result(object):
    def __init__(self, case):
        self.case = case
        self.entry = None
        self.error = None
        self.timed_out = False
        self.traced_timed_out = False
        self.seconds = None
        self.peak = None
        self.events = []
        self.outside = []
        self.secret_opened = False
        self.skipped = None
        # Log records one discovery wrote (not bounded by the contract:
        # reported so that a flood shows).
        self.log_records = None
        self.log_bytes = None

    def describe(self):
        if self.skipped:
            return 'skipped (%s)' % self.skipped
        if self.timed_out:
            return 'hang (over %gs)' % HANG_SECONDS
        if self.error is None:
            return 'entry from %s' % self.entry.source
        if isinstance(self.error, errors.KexecError):
            return '%s: %s' % (self.error.reason,
                               _clip(str(getattr(self.error,
                                                 'reason_message', '')), 160))
        return '%s: %s' % (type(self.error).__name__,
                           _clip(str(self.error), 160))

    @property
    def reason(self):
        if isinstance(self.error, errors.KexecError):
            return self.error.reason
        return None

    def problems(self):
        """Everything wrong with this run, as sentences ([] if none)."""
        found = []
        if self.skipped:
            return found
        if self.timed_out:
            found.append('hang: discovery ran over %gs' % HANG_SECONDS)
        if self.traced_timed_out:
            found.append('under tracemalloc, discovery ran over %gs: no '
                         'memory peak' % (TRACED_FACTOR * HANG_SECONDS))
        elif self.error is not None and not isinstance(
                self.error, errors.KexecError):
            found.append('crash: %s' % self.describe())
        if self.outside:
            found.append('read outside the image: %s'
                         % _short(self.outside, 400))
        if self.secret_opened:
            found.append('the secret next to the image was opened')
        if self.seconds is not None and \
                self.seconds >= self.case.max_seconds:
            found.append('took %.2fs, bound %gs' % (self.seconds,
                                                    self.case.max_seconds))
        if self.peak is not None and self.peak >= self.case.max_peak:
            found.append('peak memory %.1f MiB, bound %.0f MiB'
                         % (self.peak / MIB, self.case.max_peak / MIB))
        if self.entry is not None and self.entry.cmdline is not None and \
                len(self.entry.cmdline) > budget.MAX_CMDLINE:
            found.append('command line of %d characters, bound %d'
                         % (len(self.entry.cmdline), budget.MAX_CMDLINE))
        if not self.timed_out:
            mismatch = self.case.expect.mismatch(self)
            if mismatch:
                found.append(mismatch)
        return found


def _discover(ctx, tree):
    mounts = {path: ctx.mount_dir(path) for path in tree.mounts}
    return discovery.discover(rootfs.RootFS(ctx.root, mounts=mounts))


def _run_once(ctx, tree, seconds, discover, trace):
    entry = error = None
    timed_out = False
    _audit['events'] = []
    counter = _LogCounter()
    logging.getLogger().addHandler(counter)
    if trace:
        tracemalloc.start()
    # The bound is on the CPU time the discovery used: the wall clock
    # also counts whatever else runs on the machine (the guard's wall
    # clock alarm still ends a real hang).
    started = time.process_time()
    try:
        with _Guard(seconds):
            _audit['active'] = True
            try:
                entry = discover(ctx, tree)
            finally:
                _audit['active'] = False
    except CaseTimeout:
        timed_out = True
    except BaseException as e:     # anything else is the case's verdict
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        error = e
    elapsed = time.process_time() - started
    peak = None
    if trace:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    logging.getLogger().removeHandler(counter)
    return (entry, error, timed_out, elapsed, peak, list(_audit['events']),
            counter)


def run_case(case, discover=_discover, seconds=HANG_SECONDS):
    """Build ``case`` in a temporary directory and run discovery on it.

    Discovery runs twice on the same tree: once timed, once under
    tracemalloc (which slows allocation-heavy code several times over) for
    the memory peak. Both runs are audited.
    """
    _install_hook()
    result = Result(case)
    base = os.path.realpath(tempfile.mkdtemp(prefix='hostile-'))
    try:
        ctx = Context(base)
        with open(ctx.secret, 'w') as f:
            f.write('the agent must never read this\n')
        try:
            tree = case.build(ctx)
            make_tree(ctx.root, tree.files)
            for path, files in tree.mounts.items():
                make_tree(ctx.mount_dir(path), files)
        except Unsupported as e:
            result.skipped = str(e)
            return result
        allowed = [os.path.realpath(ctx.root)] + [
            os.path.realpath(ctx.mount_dir(p)) for p in tree.mounts]
        (result.entry, result.error, result.timed_out, result.seconds,
         _peak, events, logs) = _run_once(ctx, tree, seconds, discover,
                                          False)
        result.log_records, result.log_bytes = logs.records, logs.size
        if not result.timed_out:
            # tracemalloc slows allocation-heavy code several times over.
            (_entry, _error, result.traced_timed_out, _seconds,
             result.peak, more, _logs) = _run_once(
                 ctx, tree, TRACED_FACTOR * seconds, discover, True)
            events += more
        result.events = events
        result.outside = outside_reads(events, allowed, base)
        result.secret_opened = any(path == ctx.secret
                                   for _event, path in events)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return result


# Building blocks of the trees.

def kernel_files(version, prefix='/boot', initrd='initrd.img-%s'):
    return {'%s/vmlinuz-%s' % (prefix, version): trees.KERNEL,
            '%s/%s' % (prefix, initrd % version): trees.INITRD}


def debian(**more):
    """Debian with /boot on the root: kernels, their symlinks, fstab."""
    files = {'/etc/os-release': trees.OS_RELEASE_DEBIAN,
             '/etc/fstab': FSTAB,
             '/vmlinuz': trees.Link('boot/vmlinuz-' + DEB % 13),
             '/initrd.img': trees.Link('boot/initrd.img-' + DEB % 13)}
    files.update(kernel_files(DEB % 13))
    files.update(kernel_files(DEB % 12))
    files.update(more)
    return files


def debian_unlinked(**more):
    """Debian without the /vmlinuz symlinks."""
    files = debian()
    del files['/vmlinuz'], files['/initrd.img']
    files.update(more)
    return files


def bare(**more):
    """An image whose only kernel is named by its boot configuration."""
    files = {'/etc/fstab': FSTAB, TENANT_KERNEL: trees.KERNEL,
             TENANT_INITRD: trees.INITRD}
    files.update(more)
    return files


def deb_entry(version, source, cmdline=FSTAB_CMDLINE):
    return Entry('/boot/vmlinuz-' + version,
                 ['/boot/initrd.img-' + version], cmdline, source)


# The /vmlinuz symlinks: the source after every boot loader's.
SYMLINK = deb_entry(DEB % 13, protocol.SOURCE_SYMLINK)
# The newest /boot/vmlinuz-*: when the symlinks fail too.
NEWEST = deb_entry(DEB % 13, protocol.SOURCE_NEWEST)


# grub.cfg

GRUB_CFG = '/boot/grub/grub.cfg'


def menuentry(i, version=None, args=None, title=None):
    version = version or DEB % (10 + i)
    return ("menuentry '%s' --class debian --id e%d {\n"
            "\tlinux\t/boot/vmlinuz-%s root=UUID=%s ro %s\n"
            "\tinitrd\t/boot/initrd.img-%s\n}\n"
            % (title or 'e%d' % i, i, version, UUID,
               args if args is not None else 'e%d' % i, version))


def grub_menu(default='0', head='', count=4):
    return ('%sset default="%s"\n' % (head, default)
            + ''.join(menuentry(i) for i in range(count)))


def grub_tree(cfg, **more):
    files = debian(**more)
    for i in range(4):
        files.update(kernel_files(DEB % (10 + i)))
    files[GRUB_CFG] = cfg
    return Tree(files)


def grub_entry(i):
    version = DEB % (10 + i)
    return deb_entry(version, protocol.SOURCE_GRUB,
                     'root=UUID=%s ro e%d' % (UUID, i))


def tenant_grub(args='', kernel=TENANT_KERNEL, head=''):
    """A grub.cfg whose one entry boots the tenant kernel."""
    return ("%sset default=0\nmenuentry 'tenant' {\n"
            "\tlinux %s root=UUID=%s ro%s\n\tinitrd %s\n}\n"
            % (head, kernel, UUID, args, TENANT_INITRD))


# BLS: Fedora, with a separate /boot.

def bls_conf(version, options=None, linux=None, initrd=None, title=None):
    return ('title %s\nversion %s\nlinux %s\ninitrd %s\noptions %s\n'
            'grub_users $grub_users\ngrub_arg --unrestricted\n'
            'grub_class fedora\n'
            % (title or 'Fedora Linux (%s) 39' % version, version,
               linux or '/vmlinuz-' + version,
               initrd or '/initramfs-%s.img' % version,
               options if options is not None
               else 'root=UUID=%s ro rhgb quiet' % UUID))


def bls_name(version):
    return '/loader/entries/%s-%s.conf' % (MACHINE_ID, version)


def fedora(boot=None, kernels=(1, 2, 3), bls=True, root=None):
    """A Fedora tree: root and a /boot filesystem with BLS entries.

    :param bls: whether each kernel has its BLS entry.
    """
    boot_files = {}
    for n in kernels:
        version = FED % n
        boot_files['/vmlinuz-' + version] = trees.KERNEL
        boot_files['/initramfs-%s.img' % version] = trees.INITRD
        if bls:
            boot_files[bls_name(version)] = bls_conf(version)
    boot_files.update(boot or {})
    root_files = {'/etc/fstab': FSTAB, '/boot': None}
    root_files.update(root or {})
    return Tree(root_files, {'/boot': boot_files})


def fedora_entry(n, source=protocol.SOURCE_BLS,
                 cmdline='root=UUID=%s ro rhgb quiet' % UUID):
    version = FED % n
    return Entry('/boot/vmlinuz-' + version,
                 ['/boot/initramfs-%s.img' % version], cmdline, source)


# The newest kernel of a Fedora tree, when no BLS entry is usable.
FEDORA_NEWEST = fedora_entry(3, protocol.SOURCE_NEWEST, FSTAB_CMDLINE)


def fedora_bare(boot=None):
    """Fedora with only the tenant kernel: nothing to fall back on."""
    boot_files = {'/tenant-kernel': trees.KERNEL,
                  '/tenant-initrd': trees.INITRD}
    boot_files.update(boot or {})
    return Tree({'/etc/fstab': FSTAB, '/boot': None},
                {'/boot': boot_files})


def grubenv_bytes(**values):
    return trees.grubenv(**values).encode('utf-8')


# systemd-boot: the ESP mounted at /efi, kernel-install's layout.

ESP = '/efi'


def sd_conf(version, options=CMDLINE, linux=None, initrd=None):
    return ('title Debian GNU/Linux 12 (bookworm)\nversion %s\n'
            'machine-id %s\nsort-key debian\noptions %s\nlinux %s\n'
            'initrd %s\n'
            % (version, MACHINE_ID, options,
               linux or '/%s/%s/linux' % (MACHINE_ID, version),
               initrd or '/%s/%s/initrd.img-%s' % (MACHINE_ID, version,
                                                   version)))


def sd_boot(loader_conf=None, entries=None, esp=None, root=None):
    """Debian with systemd-boot; the /vmlinuz symlinks are there too."""
    version = DEB % 13
    esp_files = {
        '/%s/%s/linux' % (MACHINE_ID, version): trees.KERNEL,
        '/%s/%s/initrd.img-%s' % (MACHINE_ID, version, version):
            trees.INITRD,
        '/EFI/systemd/systemd-bootx64.efi': b'MZ',
    }
    if entries is None:
        entries = {'%s-%s.conf' % (MACHINE_ID, version): sd_conf(version)}
    for name, text in entries.items():
        esp_files['/loader/entries/' + name] = text
    if loader_conf is not None:
        esp_files['/loader/loader.conf'] = loader_conf
    esp_files.update(esp or {})
    files = debian(**{ESP: None})
    files.update(root or {})
    return Tree(files, {ESP: esp_files})


def sd_entry(cmdline=CMDLINE):
    version = DEB % 13
    base = '%s/%s/%s/' % (ESP, MACHINE_ID, version)
    return Entry(base + 'linux', [base + 'initrd.img-' + version], cmdline,
                 protocol.SOURCE_SYSTEMD_BOOT)


# extlinux.conf as u-boot-menu writes it.

EXTLINUX = '/boot/extlinux/extlinux.conf'


def extlinux_label(name, version, append):
    return ('label %s\n\tmenu label Debian GNU/Linux %s\n'
            '\tlinux /boot/vmlinuz-%s\n\tinitrd /boot/initrd.img-%s\n'
            '\tappend %s\n\n' % (name, version, version, version, append))


def extlinux_conf(default='l0', head='', timeout='50'):
    return ('## %s\n## u-boot-menu\n\ndefault %s\nmenu title U-Boot menu\n'
            'prompt 0\ntimeout %s\n%s\n'
            % (EXTLINUX, default, timeout, head)
            + extlinux_label('l0', DEB % 13, CMDLINE)
            + extlinux_label('l1', DEB % 12, 'root=UUID=%s ro l1' % UUID))


def extlinux_entry(label):
    if label == 'l0':
        return deb_entry(DEB % 13, protocol.SOURCE_EXTLINUX, CMDLINE)
    return deb_entry(DEB % 12, protocol.SOURCE_EXTLINUX,
                     'root=UUID=%s ro l1' % UUID)


# Unified Kernel Images.

UKI_PATH = '/EFI/Linux/debian-%s.efi' % (DEB % 13)
_PE_OFFSET = 0x40
_OPT_HEADER = 240
_SECTION = struct.Struct('<8sIIIIIIHHI')


def pe_image(payloads, fix=None, count=None, lfanew=_PE_OFFSET,
             size=None):
    """A PE32+ image with ``payloads`` [(name, bytes)] as sections.

    ``fix(headers)`` may change the section headers (dicts) before they
    are written; ``count`` overrides NumberOfSections, ``lfanew`` the PE
    header offset, ``size`` pads (or cuts) the file.
    """
    headers = []
    data = b''
    start = 0x400
    for name, payload in payloads:
        ptr = start + len(data)
        headers.append({'name': name, 'vsize': len(payload),
                        'vaddr': 0x1000 * (len(headers) + 1) + ptr,
                        'raw_size': len(payload), 'raw_ptr': ptr})
        data += payload + b'\0' * (-len(payload) % 0x200)
    if fix:
        fix(headers)
    dos = bytearray(_PE_OFFSET)
    dos[0:2] = b'MZ'
    dos[0x3c:0x40] = struct.pack('<I', lfanew)
    coff = struct.pack('<4sHHIIIHH', b'PE\0\0', 0x8664,
                       len(headers) if count is None else count,
                       0, 0, 0, _OPT_HEADER, 0x22)
    opt = bytearray(_OPT_HEADER)
    opt[0:2] = struct.pack('<H', 0x20b)
    opt[68:70] = struct.pack('<H', 10)      # EFI application
    table = b''.join(
        _SECTION.pack(h['name'].encode(), h['vsize'], h['vaddr'],
                      h['raw_size'], h['raw_ptr'], 0, 0, 0, 0, 0x40000040)
        for h in headers)
    image = bytes(dos) + coff + bytes(opt) + table
    image += b'\0' * (start - len(image)) + data
    if size is not None:
        image = image[:size] + b'\0' * (size - len(image))
    return image


def uki_payloads(cmdline=CMDLINE):
    return [('.osrel', trees.OS_RELEASE_DEBIAN.encode()),
            ('.cmdline', cmdline.encode()),
            ('.linux', trees.KERNEL + b'\0' * 64),
            ('.initrd', trees.INITRD)]


def uki_tree(image, name=UKI_PATH, esp=None):
    """Debian with a UKI on the ESP (at /efi), symlinks as fallback."""
    esp_files = {name: image}
    esp_files.update(esp or {})
    return Tree(debian(**{ESP: None}), {ESP: esp_files})


def _set_section(name, **values):
    def fix(headers):
        for h in headers:
            if h['name'] == name:
                h.update(values)
    return fix


def _rand(size, seed):
    return random.Random(seed).randbytes(size)


# The corpus. Each builder's docstring is the case's description.

# -- nesting

@case('nesting', SYMLINK)
def grub_nested_submenus(ctx):
    """grub.cfg with 10,000 nested submenus (next source: the symlinks)."""
    depth = 10000
    return grub_tree("submenu 's' {\n" * depth + menuentry(0)
                     + '}\n' * depth)


@case('nesting', SYMLINK)
def grub_nested_if(ctx):
    """grub.cfg with 10,000 nested if blocks around the menu entries."""
    depth = 10000
    return grub_tree('if [ x = x ]; then\n' * depth + grub_menu()
                     + 'fi\n' * depth)


@case('nesting', Refused(TOO_COMPLEX))
def grub_nested_alone(ctx):
    """10,000 nested submenus around the only kernel's entry."""
    depth = 10000
    cfg = ("submenu 's' {\n" * depth + tenant_grub() + '}\n' * depth)
    return Tree(bare(**{GRUB_CFG: cfg}))


@case('nesting', SYMLINK, max_seconds=PARSE_SECONDS)
def grub_nested_braces_one_line(ctx):
    """One 900 KB line of nested submenu braces."""
    depth = 60000
    return grub_tree("submenu s { " * depth + "} " * depth + '\n'
                     + grub_menu())


@case('nesting', SYMLINK)
def extlinux_include_self(ctx):
    """extlinux.conf that includes itself."""
    return Tree(debian(**{EXTLINUX: 'include %s\n' % EXTLINUX}))


@case('nesting', SYMLINK)
def extlinux_include_fanout(ctx):
    """extlinux.conf that includes itself twice: 2^n includes."""
    return Tree(debian(**{EXTLINUX: ('include %s\n' % EXTLINUX) * 2}))


# -- amplification

@case('amplification', Refused(TOO_LARGE))
def efi_vendor_big_grub_cfgs(ctx):
    """40 /boot/efi/EFI/* dirs each with a 1,000,000 byte grub.cfg."""
    big = '# padding\n' * 100000
    efi = {'/EFI/v%02d/grub.cfg' % i: big for i in range(40)}
    return Tree(debian(**{'/boot/efi': None}), {'/boot/efi': efi})


# Refused by grub's source (too many vendors to know which one the
# firmware starts): the next source gives the entry.
@case('amplification', SYMLINK)
def efi_vendor_many_small_grub_cfgs(ctx):
    """2,000 /boot/efi/EFI/* dirs each with a small grub.cfg."""
    efi = {'/EFI/v%04d/grub.cfg' % i: 'configfile $prefix/grub.cfg\n'
           for i in range(2000)}
    return Tree(debian(**{'/boot/efi': None}), {'/boot/efi': efi})


@case('amplification', Refused(TOO_COMPLEX))
def grub_set_fanout(ctx):
    """40 grub variables of 32,000 characters each (1.28 MB expanded)."""
    head = 'set a0="%s"\n' % ('x' * 1000)
    head += ''.join('set a%d="$a%d$a%d"\n' % (i, i - 1, i - 1)
                    for i in range(1, 6))
    head += ''.join('set b%d="$a5"\n' % i for i in range(40))
    return Tree(bare(**{GRUB_CFG: tenant_grub(' $b0', head=head)}))


@case('amplification', Refused(TOO_LARGE))
def grub_many_menuentries(ctx):
    """grub.cfg with 5,000 menu entries."""
    cfg = ''.join(menuentry(0, title='m%d' % i) for i in range(5000))
    return grub_tree('set default=4999\n' + cfg)


# -- quadratic

@case('quadratic', SYMLINK, max_seconds=PARSE_SECONDS)
def grub_one_line_1mib(ctx):
    """A 1 MiB one-line grub.cfg (under the file bound)."""
    return grub_tree('echo ' + 'a' * (MIB - 4096) + '\n')


@case('quadratic', SYMLINK, max_seconds=PARSE_SECONDS)
def grub_one_line_quoted_words(ctx):
    """A one-line grub.cfg of 170,000 quoted words."""
    return grub_tree('echo ' + '"a" \'b\' ' * 85000 + '\n')


@case('quadratic', SYMLINK, max_seconds=PARSE_SECONDS)
def grub_backslash_continuations(ctx):
    """250,000 lines each continued with a backslash."""
    return grub_tree('echo \\\n' + 'a \\\n' * 250000 + '\n')


@case('quadratic', SYMLINK, max_seconds=PARSE_SECONDS)
def grub_unterminated_quote(ctx):
    """A quote opened on line 1 and never closed, 450,000 lines on."""
    return grub_tree("echo '\n" + 'a\n' * 450000)


@case('quadratic', SYMLINK, max_seconds=PARSE_SECONDS)
def grub_closing_braces(ctx):
    """500,000 unmatched closing braces."""
    return grub_tree('}\n' * 500000)


@case('quadratic', SYMLINK, max_seconds=PARSE_SECONDS)
def grub_dollar_braces(ctx):
    """An entry's linux line with 300,000 unterminated ${."""
    return grub_tree("menuentry 'x' {\n\tlinux /vmlinuz " + '${' * 300000
                     + '\n}\n')


@case('quadratic', fedora_entry(3), max_seconds=PARSE_SECONDS)
def bls_one_line_64k(ctx):
    """The newest BLS entry has an unknown key of 64,000 characters."""
    return fedora(boot={bls_name(FED % 3): bls_conf(FED % 3)
                        + 'foo ' + 'a' * 64000 + '\n'})


# -- expansion

@case('expansion', Refused(TOO_COMPLEX))
def grub_set_doubling(ctx):
    """A grub variable that doubles 64 times, used by the entry."""
    head = 'set a=x\n' + 'set a="$a$a"\n' * 64
    return Tree(bare(**{GRUB_CFG: tenant_grub(' $a', head=head)}))


@case('expansion', Refused(TOO_COMPLEX))
def bls_var_huge_cmdline(ctx):
    """BLS options with 20,000 references to a 900 character variable."""
    entry = bls_conf('1', options='$k ' * 20000,
                     linux='/tenant-kernel', initrd='/tenant-initrd')
    return fedora_bare({
        '/loader/entries/t.conf': entry,
        '/grub2/grubenv': grubenv_bytes(k='k' * 900)})


@case('expansion', Refused(TOO_LARGE))
def bls_var_long_cmdline(ctx):
    """BLS options expanding to 9,000 characters (over MAX_CMDLINE)."""
    entry = bls_conf('1', options='$kernelopts ' * 10,
                     linux='/tenant-kernel', initrd='/tenant-initrd')
    return fedora_bare({
        '/loader/entries/t.conf': entry,
        '/grub2/grubenv': grubenv_bytes(kernelopts='k' * 899)})


@case('expansion', SYMLINK)
def grub_literal_long_cmdline(ctx):
    """A grub entry with a 10,000 character command line."""
    return grub_tree(grub_menu('0', count=1).replace(
        ' e0\n', ' e0 ' + 'x' * 10000 + '\n'))


# -- byte budget

@case('byte-budget', Refused(TOO_LARGE))
def bls_600_entries_64k(ctx):
    """600 BLS entries of 64,000 bytes each: 38 MB, every file in bounds."""
    pad = '#' * 99 + '\n'
    boot = {}
    for i in range(600):
        boot['/loader/entries/e%03d.conf' % i] = (
            bls_conf(FED % 3) + pad * 635)
    return fedora(boot=boot)


@case('byte-budget', Refused(TOO_LARGE))
def bls_3000_entries(ctx):
    """3,000 small BLS entries (fewer names than MAX_DIR_NAMES)."""
    boot = {'/loader/entries/e%04d.conf' % i: bls_conf(FED % 3)
            for i in range(3000)}
    return fedora(boot=boot)


# -- dir-names

@case('dir-names', Refused(TOO_LARGE))
def bls_5000_entries_newest_last(ctx):
    """5,000 BLS entries; the newest sorts last, past 4,096 names."""
    boot = {}
    for i in range(5000):
        boot['/loader/entries/e%04d.conf' % i] = bls_conf(
            '1.%d' % i, linux='/tenant-kernel', initrd='/tenant-initrd',
            options='root=UUID=%s ro n%d' % (UUID, i))
    return fedora_bare(boot)


@case('dir-names', Refused(TOO_LARGE))
def boot_5000_kernels(ctx):
    """/boot with 5,000 vmlinuz-* and no other source."""
    files = {'/etc/fstab': FSTAB}
    for i in range(5000):
        files['/boot/vmlinuz-6.1.%d' % i] = trees.KERNEL
    return Tree(files)


# -- nul

@case('nul', FEDORA_NEWEST)
def bls_nul_in_linux_path(ctx):
    """The only BLS entry names /vmlinuz-x<NUL>../../secret."""
    entry = bls_conf('x', linux='/vmlinuz-x\0../../secret')
    return fedora(boot={'/loader/entries/x.conf': entry}, kernels=(3,),
                  bls=False)


# grub reads grub.cfg and BLS entries a line at a time
# (grub_file_getline) and parses each line as a C string: a NUL ends the
# line, what follows it on that line is never seen.

@case('nul', SYMLINK)
def grub_nul_in_linux_path(ctx):
    """The grub entry names /boot/vmlinuz-missing<NUL>/../vmlinuz-X."""
    return grub_tree(
        "set default=0\nmenuentry 'x' {\n\tlinux /boot/vmlinuz-missing"
        "\0/../vmlinuz-%s root=UUID=%s ro\n}\n" % (DEB % 10, UUID))


@case('nul', Entry(TENANT_KERNEL, [TENANT_INITRD],
                   'root=UUID=%s ro quiet' % UUID, protocol.SOURCE_GRUB))
def grub_nul_in_cmdline(ctx):
    """The grub entry's linux line is "... quiet<NUL>init=/bin/sh"."""
    return Tree(bare(**{GRUB_CFG: tenant_grub(' quiet\0init=/bin/sh')}))


@case('nul', fedora_entry(3, cmdline='root=UUID=%s ro' % UUID))
def bls_nul_in_options(ctx):
    """The newest BLS entry's options are "root=... ro<NUL>init=/bin/sh"."""
    entry = bls_conf(FED % 3,
                     options='root=UUID=%s ro\0init=/bin/sh' % UUID)
    return fedora(boot={bls_name(FED % 3): entry})


# U-Boot parses extlinux.conf as one C string: the file ends at a NUL.
@case('nul', Entry(TENANT_KERNEL, [TENANT_INITRD], 'root=UUID=%s ro' % UUID,
                   protocol.SOURCE_EXTLINUX))
def extlinux_nul_in_append(ctx):
    """The only label's append is "root=... ro<NUL>init=/bin/sh"."""
    conf = ('default t\nlabel t\n\tlinux %s\n\tinitrd %s\n'
            '\tappend root=UUID=%s ro\0init=/bin/sh\n'
            % (TENANT_KERNEL, TENANT_INITRD, UUID))
    return Tree(bare(**{EXTLINUX: conf}))


@case('nul', SYMLINK)
def sd_boot_nul_in_linux(ctx):
    """The only entry names /MID/V/missing<NUL>/../linux."""
    version = DEB % 13
    return sd_boot(entries={'a.conf': sd_conf(
        version, linux='/%s/%s/missing\0/../linux' % (MACHINE_ID,
                                                      version))})


# -- long-name

@case('long-name', FEDORA_NEWEST)
def bls_long_file_name(ctx):
    """The only BLS entry names a 300 character file name."""
    entry = bls_conf('x', linux='/' + 'v' * 300)
    return fedora(boot={'/loader/entries/x.conf': entry}, kernels=(3,),
                  bls=False)


@case('long-name', Refused(UNSAFE_PATH))
def grub_long_path(ctx):
    """The only grub entry names a 6,000 character path."""
    return Tree(bare(**{GRUB_CFG: tenant_grub(
        kernel='/boot' + '/d' * 3000 + '/vmlinuz')}))


@case('long-name', Refused(UNSAFE_PATH))
def grub_long_name(ctx):
    """The only grub entry names a 256 character file name."""
    return Tree(bare(**{GRUB_CFG: tenant_grub(
        kernel='/boot/' + 'v' * 256)}))


@case('long-name', NEWEST)
def symlink_long_target(ctx):
    """/vmlinuz links to a 4,000 character path that does not exist."""
    return Tree(debian_unlinked(**{
        '/vmlinuz': trees.Link(('x' * 249 + '/') * 16)}))


@case('long-name', grub_entry(0), max_seconds=PARSE_SECONDS)
def grub_default_huge_title(ctx):
    """grub's default is a 900,000 character title matching nothing."""
    return grub_tree(grub_menu('t' * 900000))


# -- digits

@case('digits', grub_entry(0))
def grub_default_arabic_indic(ctx):
    """grub default="\\u0663" (ARABIC-INDIC THREE): no index, no entry."""
    return grub_tree(grub_menu('\u0663'))


@case('digits', grub_entry(0))
def grub_default_superscript(ctx):
    """grub default="\\u00b2" (SUPERSCRIPT TWO)."""
    return grub_tree(grub_menu('\u00b2'))


@case('digits', grub_entry(0))
def grub_default_fullwidth(ctx):
    """grub default="\\uff13" (FULLWIDTH DIGIT THREE)."""
    return grub_tree(grub_menu('\uff13'))


@case('digits', grub_entry(0))
def grubenv_saved_entry_arabic_indic(ctx):
    """grub default=${saved_entry}, grubenv saved_entry="\\u0663"."""
    return grub_tree(grub_menu('${saved_entry}'), **{
        '/boot/grub/grubenv': grubenv_bytes(saved_entry='\u0663')})


@case('digits', fedora_entry(3))
def bls_saved_entry_superscript(ctx):
    """BLS with grubenv saved_entry="\\u00b2"."""
    return fedora(boot={'/grub2/grubenv':
                        grubenv_bytes(saved_entry='\u00b2')})


@case('digits', sd_entry())
def sd_boot_timeout_superscript(ctx):
    """loader.conf timeout "\\u00b2" and default "\\u0663"."""
    return sd_boot('timeout \u00b2\ndefault \u0663\n')


# -- int-limit

@case('int-limit', grub_entry(0))
def grub_default_5000_digits(ctx):
    """grub default is a 5,000 digit number (Python's limit: 4,300)."""
    return grub_tree(grub_menu('1' * 5000))


@case('int-limit', grub_entry(0))
def grub_default_20_digits(ctx):
    """grub default is 20 nines: over grub's unsigned long, no index."""
    return grub_tree(grub_menu('9' * 20))


@case('int-limit', Entry('/boot/vmlinuz-big', ['/boot/initramfs-big.img'],
                         'root=UUID=%s ro rhgb quiet' % UUID,
                         protocol.SOURCE_BLS))
def bls_version_5000_digits(ctx):
    """A BLS entry whose version has a 5,000 digit part (newest for rpm)."""
    entry = bls_conf('6.5.' + '9' * 5000, linux='/vmlinuz-big',
                     initrd='/initramfs-big.img')
    return fedora(boot={'/loader/entries/big.conf': entry,
                        '/vmlinuz-big': trees.KERNEL,
                        '/initramfs-big.img': trees.INITRD})


@case('int-limit', sd_entry())
def sd_boot_timeout_5000_digits(ctx):
    """loader.conf timeout is a 5,000 digit number."""
    return sd_boot('timeout %s\n' % ('7' * 5000))


@case('int-limit', extlinux_entry('l1'))
def extlinux_timeout_5000_digits(ctx):
    """extlinux.conf timeout is a 5,000 digit number."""
    return Tree(debian(**{EXTLINUX: extlinux_conf('l1',
                                                  timeout='5' * 5000)}))


# -- symlink

@case('symlink', NEWEST)
def symlink_self_loop(ctx):
    """/vmlinuz links to itself."""
    return Tree(debian_unlinked(**{'/vmlinuz': trees.Link('vmlinuz')}))


@case('symlink', FEDORA_NEWEST)
def symlink_dir_loop(ctx):
    """/boot/loader and /boot/loader2 link to each other."""
    tree = fedora(kernels=(3,), bls=False)
    boot = tree.mounts['/boot']
    boot['/loader'] = trees.Link('loader2')
    boot['/loader2'] = trees.Link('loader')
    return tree


@case('symlink', NEWEST)
def symlink_chain_41(ctx):
    """/vmlinuz reaches the kernel through 42 links (Linux allows 40)."""
    files = debian_unlinked()
    files['/vmlinuz'] = trees.Link('l0')
    for i in range(41):
        files['/l%d' % i] = trees.Link('l%d' % (i + 1))
    files['/l41'] = trees.Link('boot/vmlinuz-' + DEB % 13)
    return Tree(files)


@case('symlink', FEDORA_NEWEST, max_seconds=PARSE_SECONDS)
def symlink_exponential(ctx):
    """/boot/loader links to x30, where xN links to xN-1/xN-1."""
    tree = fedora(kernels=(3,), bls=False)
    boot = tree.mounts['/boot']
    boot['/x0'] = trees.Link('.')
    for i in range(1, 31):
        boot['/x%d' % i] = trees.Link('x%d/x%d' % (i - 1, i - 1))
    boot['/loader'] = trees.Link('x30')
    return tree


@case('symlink', SYMLINK)
def symlink_absolute_host_files(ctx):
    """Absolute links to /etc/passwd, /proc/cmdline, the secret's path."""
    return Tree(debian(**{
        GRUB_CFG: trees.Link('/etc/passwd'),
        '/etc/kernel/cmdline': trees.Link('/proc/cmdline'),
        '/etc/default/grub': trees.Link('/etc/shadow'),
        '/boot/vmlinuz': trees.Link(ctx.secret),
        '/boot/initrd.img': trees.Link(ctx.secret)}))


@case('symlink', NEWEST)
def symlink_dotdot_escape(ctx):
    """/vmlinuz links to ../secret (on the host: the secret)."""
    return Tree(debian_unlinked(**{
        '/vmlinuz': trees.Link('../secret'),
        '/initrd.img': trees.Link('../../../../../secret')}))


@case('symlink', FEDORA_NEWEST)
def bls_dotdot_in_linux_path(ctx):
    """The only BLS entry names /../secret (on the host: the secret)."""
    entry = bls_conf('x', linux='/../secret', initrd='/../../secret')
    return fedora(boot={'/loader/entries/x.conf': entry}, kernels=(3,),
                  bls=False)


@case('symlink', deb_entry(DEB % 13, protocol.SOURCE_SYMLINK))
def symlink_escape_from_boot_mount(ctx):
    """/boot/vmlinuz on a separate /boot links to ../secret."""
    boot = kernel_files(DEB % 13, prefix='')
    boot['/vmlinuz'] = trees.Link('../secret')
    boot['/initrd.img'] = trees.Link('../secret')
    files = {'/etc/fstab': FSTAB, '/boot': None,
             '/vmlinuz': trees.Link('boot/vmlinuz-' + DEB % 13),
             '/initrd.img': trees.Link('boot/initrd.img-' + DEB % 13)}
    return Tree(files, {'/boot': boot})


@case('symlink', FEDORA_NEWEST)
def bls_entry_links_out_of_boot_mount(ctx):
    """The only BLS entry file links to ../../../secret."""
    tree = fedora(kernels=(3,), bls=False)
    boot = tree.mounts['/boot']
    boot[bls_name(FED % 3)] = trees.Link('../../../secret')
    return tree


# -- special-file

@case('special-file', SYMLINK)
def fifo_grub_cfg(ctx):
    """grub.cfg is a FIFO nobody writes to."""
    return grub_tree(Fifo())


@case('special-file', FEDORA_NEWEST)
def fifo_bls_entry(ctx):
    """The only BLS entry is a FIFO."""
    return fedora(boot={bls_name(FED % 3): Fifo()}, kernels=(3,), bls=False)


@case('special-file', fedora_entry(3))
def fifo_grubenv(ctx):
    """grubenv is a FIFO."""
    return fedora(boot={'/grub2/grubenv': Fifo()})


@case('special-file', SYMLINK)
def fifo_kernel_cmdline(ctx):
    """/etc/kernel/cmdline is a FIFO."""
    return Tree(debian(**{'/etc/kernel/cmdline': Fifo()}))


@case('special-file', SYMLINK)
def socket_grub_cfg(ctx):
    """grub.cfg is a Unix socket."""
    return grub_tree(Socket())


@case('special-file', SYMLINK)
def chardev_grub_cfg(ctx):
    """grub.cfg is a character device (1,5: an endless zero)."""
    return grub_tree(CharDevice(1, 5))


@case('special-file', sd_entry())
def chardev_loader_conf(ctx):
    """loader.conf is a character device (1,5: an endless zero)."""
    return sd_boot(CharDevice(1, 5))


@case('special-file', SYMLINK)
def fifo_extlinux_conf(ctx):
    """extlinux.conf is a FIFO."""
    return Tree(debian(**{EXTLINUX: Fifo()}))


@case('special-file', NEWEST)
def fifo_newest_kernel(ctx):
    """The newest /boot/vmlinuz-* is a FIFO."""
    return Tree(debian_unlinked(**{
        '/boot/vmlinuz-' + DEB % 14: Fifo(),
        '/boot/initrd.img-' + DEB % 14: Fifo()}))


# -- sparse

@case('sparse', SYMLINK)
def sparse_grub_cfg_8g(ctx):
    """grub.cfg is an 8 GiB sparse file with a valid menu at its start."""
    return grub_tree(Sparse(8 * GIB, grub_menu().encode()))


@case('sparse', FEDORA_NEWEST)
def sparse_bls_entry_2g(ctx):
    """The only BLS entry is a 2 GiB sparse file."""
    return fedora(boot={bls_name(FED % 3): Sparse(
        2 * GIB, bls_conf(FED % 3).encode())}, kernels=(3,), bls=False)


@case('sparse', SYMLINK)
def sparse_loader_conf_4g(ctx):
    """loader.conf is a 4 GiB sparse file."""
    return sd_boot(Sparse(4 * GIB, b'default a.conf\n'))


# -- garbage

@case('garbage', SYMLINK)
def garbage_grub_cfg(ctx):
    """grub.cfg is 512 KiB of random bytes."""
    return grub_tree(_rand(512 * 1024, 1))


@case('garbage', FEDORA_NEWEST)
def garbage_bls_entry(ctx):
    """The only BLS entry is 64,000 random bytes."""
    return fedora(boot={bls_name(FED % 3): _rand(64000, 2)},
                  kernels=(3,), bls=False)


@case('garbage', fedora_entry(3))
def garbage_grubenv(ctx):
    """grubenv is 1,024 random bytes."""
    return fedora(boot={'/grub2/grubenv': _rand(1024, 3)})


@case('garbage', fedora_entry(3))
def invalid_utf8_bls_title(ctx):
    """The newest BLS entry has invalid UTF-8 in its title and a comment."""
    entry = (b'# \xc3\x28 \xff\n'
             + bls_conf(FED % 3).replace('title ', 'title \xff', 1)
             .encode('latin-1'))
    return fedora(boot={bls_name(FED % 3): entry})


@case('garbage', grub_entry(1))
def invalid_utf8_grub_title(ctx):
    """grub.cfg with invalid UTF-8 in the titles of entries not chosen."""
    cfg = grub_menu('e1').encode().replace(b"'e0'", b"'\xff\xfe'")
    cfg = cfg.replace(b"'e2'", b"'\xc3\x28'")
    return grub_tree(cfg)


@case('garbage', SYMLINK)
def garbage_extlinux_conf(ctx):
    """extlinux.conf is 64 KiB of random bytes."""
    return Tree(debian(**{EXTLINUX: _rand(64 * 1024, 4)}))


@case('garbage', sd_entry())
def garbage_loader_conf(ctx):
    """loader.conf is 4 KiB of random bytes."""
    return sd_boot(_rand(4096, 5))


# -- crlf

@case('crlf', grub_entry(1))
def crlf_grub_cfg(ctx):
    """grub.cfg with CRLF line ends, default=1."""
    return grub_tree(grub_menu('1').replace('\n', '\r\n'))


@case('crlf', fedora_entry(3))
def crlf_bls_entries(ctx):
    """BLS entries with CRLF line ends."""
    tree = fedora()
    boot = tree.mounts['/boot']
    for path in list(boot):
        if path.endswith('.conf'):
            boot[path] = boot[path].replace('\n', '\r\n')
    return tree


@case('crlf', extlinux_entry('l1'))
def crlf_extlinux_conf(ctx):
    """extlinux.conf with CRLF line ends, default l1."""
    return Tree(debian(**{EXTLINUX: extlinux_conf('l1')
                          .replace('\n', '\r\n')}))


@case('crlf', sd_entry('root=UUID=%s ro b' % UUID))
def crlf_loader_conf(ctx):
    """loader.conf and entries with CRLF line ends, default b.conf."""
    version = DEB % 13
    entries = {'a.conf': sd_conf(version).replace('\n', '\r\n'),
               'b.conf': sd_conf(version, 'root=UUID=%s ro b' % UUID)
               .replace('\n', '\r\n')}
    return sd_boot('timeout 3\r\ndefault b.conf\r\n', entries)


# -- grubenv

def saved_entry_grub():
    """Two tenant entries; grub boots the grubenv's saved_entry."""
    return ''.join(
        "menuentry 't%d' {\n\tlinux %s root=UUID=%s ro t%d\n"
        "\tinitrd %s\n}\n" % (i, TENANT_KERNEL, UUID, i, TENANT_INITRD)
        for i in range(2))


# grub reads a grubenv of any size: without it, discovery cannot know
# that grub boots t1, and must not guess t0.
@case('grubenv', Refused(TOO_LARGE))
def grubenv_over_bound(ctx):
    """A 1.5 MiB grubenv whose saved_entry=1 selects grub's entry."""
    env = trees.grubenv(saved_entry='1') + '#' * (3 * MIB // 2)
    return Tree(bare(**{
        GRUB_CFG: 'set default="${saved_entry}"\n' + saved_entry_grub(),
        '/boot/grub/grubenv': env}))


@case('grubenv', Refused(TOO_LARGE))
def grubenv_sparse_4g(ctx):
    """A 4 GiB sparse grubenv whose saved_entry=1 selects grub's entry."""
    return Tree(bare(**{
        GRUB_CFG: 'set default="${saved_entry}"\n' + saved_entry_grub(),
        '/boot/grub/grubenv': Sparse(4 * GIB, grubenv_bytes(
            saved_entry='1'))}))


# -- fstab

@case('fstab', deb_entry(DEB % 13, protocol.SOURCE_SYMLINK,
                         'root=/dev/disk/by-uuid/%s ro' % UUID))
def fstab_root_host_device(ctx):
    """fstab names the root by a /dev path (the agent's, not the image's)."""
    return Tree(debian(**{'/etc/fstab': '/dev/disk/by-uuid/%s / ext4 '
                                        'defaults 0 1\n' % UUID}))


@case('fstab', SYMLINK)
def fstab_mounts_outside(ctx):
    """fstab mounts the secret's host path, /etc/shadow, / elsewhere."""
    return Tree(debian(**{'/etc/fstab': FSTAB + (
        '%s /boot ext4 defaults 0 2\n/etc/shadow /etc none bind 0 0\n'
        '/ /srv none rbind 0 0\n' % ctx.secret)}))


# -- systemd-boot

@case('systemd-boot', sd_entry())
def sd_boot_valid_control(ctx):
    """A well-formed systemd-boot tree (control: the parser is reached)."""
    return sd_boot('timeout 3\ndefault @saved\n')


@case('systemd-boot', sd_entry('root=UUID=%s ro a' % UUID),
      max_seconds=PARSE_SECONDS)
def sd_boot_glob_backtracking(ctx):
    """loader.conf default "*a*a...*b" (25 stars), a 200 character id."""
    version = DEB % 13
    return sd_boot('default %sb\n' % ('*a' * 25), {
        'a' * 200 + '.conf': sd_conf(version, 'root=UUID=%s ro a' % UUID)})


@case('systemd-boot', Refused(TOO_LARGE))
def sd_boot_2000_entries(ctx):
    """2,000 entries on the ESP."""
    version = DEB % 13
    entries = {'e%04d.conf' % i: sd_conf(version) for i in range(2000)}
    return sd_boot('timeout 3\n', entries)


@case('systemd-boot', SYMLINK)
def sd_boot_esp_link_escape(ctx):
    """The entry's kernel on the ESP links to ../secret."""
    version = DEB % 13
    return sd_boot(entries={'a.conf': sd_conf(version, linux='/vmlinuz',
                                              initrd='/initrd')},
                   esp={'/vmlinuz': trees.Link('../secret'),
                        '/initrd': trees.Link('../../secret')})


@case('systemd-boot', SYMLINK)
def sd_boot_dotdot_paths(ctx):
    """The entry names /../secret and /../../root/etc/fstab."""
    version = DEB % 13
    return sd_boot(entries={'a.conf': sd_conf(
        version, linux='/../secret', initrd='/../../root/etc/fstab')})


# -- extlinux

@case('extlinux', extlinux_entry('l1'))
def extlinux_valid_control(ctx):
    """A well-formed extlinux.conf, default l1 (control)."""
    return Tree(debian(**{EXTLINUX: extlinux_conf('l1')}))


@case('extlinux', Refused(TOO_LARGE))
def extlinux_3000_labels(ctx):
    """extlinux.conf with 3,000 labels."""
    labels = ''.join(extlinux_label('x%d' % i, DEB % 13, CMDLINE)
                     for i in range(3000))
    return Tree(debian(**{EXTLINUX: 'default x2999\n' + labels}))


@case('extlinux', SYMLINK)
def extlinux_dotdot_kernel(ctx):
    """The default label's kernel is ../../../secret."""
    conf = ('default x\nlabel x\n\tlinux ../../../secret\n'
            '\tappend %s\n' % CMDLINE)
    return Tree(debian(**{EXTLINUX: conf}))


# -- uki

@case('uki', Entry(ANY, ANY, CMDLINE, protocol.SOURCE_UKI,
                   uki=ESP + UKI_PATH))
def uki_valid_control(ctx):
    """A well-formed UKI on the ESP (control: the parser is reached)."""
    return uki_tree(pe_image(uki_payloads()))


@case('uki', SYMLINK)
def uki_section_beyond_file(ctx):
    """.linux starts 1 GiB past the end of the 8 KiB file."""
    return uki_tree(pe_image(uki_payloads(),
                             _set_section('.linux', raw_ptr=GIB)))


@case('uki', SYMLINK)
def uki_huge_section(ctx):
    """.linux and .cmdline claim 4 GiB - 1 bytes each."""
    def fix(headers):
        for h in headers:
            if h['name'] in ('.linux', '.cmdline'):
                h['raw_size'] = h['vsize'] = 0xffffffff
    return uki_tree(pe_image(uki_payloads(), fix))


@case('uki', SYMLINK)
def uki_overlapping_sections(ctx):
    """.linux, .initrd and .cmdline cover the same bytes, headers too."""
    def fix(headers):
        for h in headers:
            if h['name'] in ('.linux', '.initrd', '.cmdline'):
                h.update(raw_ptr=0, raw_size=0x2000, vsize=0x2000)
    return uki_tree(pe_image(uki_payloads(), fix))


@case('uki', SYMLINK)
def uki_65535_sections(ctx):
    """NumberOfSections is 65,535 in a 4 KiB file."""
    return uki_tree(pe_image(uki_payloads(), count=0xffff, size=4096))


@case('uki', SYMLINK)
def uki_pe_header_beyond_file(ctx):
    """e_lfanew points 4 GiB - 16 bytes into a 4 KiB file."""
    return uki_tree(pe_image(uki_payloads(), lfanew=0xfffffff0))


@case('uki', SYMLINK)
def uki_sparse_4g_linux(ctx):
    """An 8 GiB sparse UKI whose .linux is 4 GiB, at 1 GiB."""
    image = pe_image(uki_payloads(),
                     _set_section('.linux', raw_ptr=GIB, raw_size=0xffffffff,
                                  vsize=0xffffffff))
    return uki_tree(Sparse(8 * GIB, image))


@case('uki', SYMLINK)
def uki_5000_images(ctx):
    """5,000 files in EFI/Linux (more than MAX_DIR_NAMES)."""
    image = pe_image(uki_payloads())
    esp = {'/EFI/Linux/u%04d.efi' % i: image for i in range(5000)}
    return uki_tree(image, esp=esp)


@case('uki', SYMLINK)
def uki_garbage(ctx):
    """A .efi of random bytes, starting with MZ."""
    return uki_tree(b'MZ' + _rand(64 * 1024, 6))


def by_class():
    """Number of cases in each class, in CLASSES order."""
    counts = collections.Counter(c.klass for c in CASES)
    return [(klass, counts[klass]) for klass in CLASSES]
