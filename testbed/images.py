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

"""The testbed's images: agent ramdisk and instance (deployed OS) images.

:func:`ensure_images` builds what is missing from Debian's packages and
ironic-python-agent's wheels, with the scripts in ``testbed/images/``, and
returns the absolute paths of the artifacts. Builds are cached by content:
each image set lives in a directory named by a hash of everything that
goes into it (build scripts, package lists, the files installed into the
images and, for the agent ramdisk, the agent side of this project), under
``${IRONIC_KEXEC_CACHE:-$HOME/.cache/ironic-kexec}/images``. A changed input
gives a new directory, so a cached run is a few hashes and a lock.

Run ``python -m testbed.images`` (as root) to build and print the paths.
"""

import argparse
import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

TESTBED = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTBED)
SCRIPTS = os.path.join(TESTBED, 'images')

IPA_VERSION = '13.0.0'
SUITE = 'bookworm'
DEFAULT_MIRROR = 'http://deb.debian.org/debian'
CHECKSUM_ALGO = 'sha256'
LOG_TAIL_LINES = 60
# Image sets kept per kind (the one in use and the newest others): every
# change to the agent's sources gives a new ramdisk, old ones go.
KEEP_PER_SET = 3

# The project files the agent ramdisk's ironic-kexec wheel is built from:
# the agent extension and the wire protocol it shares with the conductor.
# The conductor side is left out, so that changing it does not rebuild
# the ramdisk.
PROJECT_FILES = (
    'setup.py',
    'setup.cfg',
    'requirements.txt',
    'README.md',
    'ironic_kexec/__init__.py',
    'ironic_kexec/protocol.py',
)
PROJECT_TREES = ('ipa_kexec',)
ELEMENT_SCRIPT = 'elements/ironic-kexec/install.d/80-ironic-kexec-install'


class ImageSet(object):
    """One build script and what it produces, cached as a unit."""

    def __init__(self, name, script, inputs, artifacts):
        self.name = name
        self.script = script
        # Paths relative to the repository; directories count with all
        # their files.
        self.inputs = inputs
        # attribute name -> file name in the image set's directory
        self.artifacts = artifacts


AGENT = ImageSet(
    'agent', 'build-agent-ramdisk.sh',
    ['testbed/images/common.sh', 'testbed/images/build-agent-ramdisk.sh',
     'testbed/images/agent-packages.txt', 'testbed/ramdisk', ELEMENT_SCRIPT]
    + list(PROJECT_FILES) + list(PROJECT_TREES),
    {'agent_kernel': 'agent.kernel',
     'agent_ramdisk': 'agent.initramfs'})

INSTANCE = ImageSet(
    'instance', 'build-instance.sh',
    ['testbed/images/common.sh', 'testbed/images/build-instance.sh',
     'testbed/images/instance-packages.txt',
     'testbed/images/instance-boot-packages.txt',
     'testbed/images/instance-uefi-packages.txt', 'testbed/instance',
     'testbed/ramdisk/udhcpc.script'],
    {'whole_disk': 'whole-disk.img',
     'uefi_whole_disk': 'uefi-whole-disk.img',
     'uefi_unsigned_disk': 'uefi-unsigned-disk.img',
     'sb_shim': 'sb-shimx64.efi',
     'sb_grub': 'sb-grubx64.efi',
     'sb_mokmanager': 'sb-mmx64.efi',
     'partition': 'partition.img',
     'partition_kernel': 'partition.kernel',
     'partition_ramdisk': 'partition.initramfs',
     'no_kernel_disk': 'no-kernel-disk.img',
     'instance_kernel': 'instance.kernel',
     'instance_ramdisk': 'instance.initramfs'})

# The instance build starts first: the agent's waits for wheels first.
IMAGE_SETS = (INSTANCE, AGENT)

# The fault matrix's variants of the images above (testbed.faults), built
# from them in seconds by build-fault-images.sh: see there.
FAULTS = ImageSet(
    'faults', 'build-fault-images.sh',
    ['testbed/images/common.sh', 'testbed/images/build-fault-images.sh'],
    {'agent_no_extension': 'agent-no-extension.initramfs',
     'agent_load_disabled': 'agent-load-disabled.initramfs',
     'agent_load_hang': 'agent-load-hang.initramfs',
     'agent_execute_noop': 'agent-execute-noop.initramfs',
     'agent_busy': 'agent-busy.initramfs',
     'agent_busy_early': 'agent-busy-early.initramfs',
     'corrupt_grub_disk': 'corrupt-grub-disk.img'})


class BuildError(Exception):
    pass


class Images(object):
    """Absolute paths of the testbed's artifacts, and their checksums.

    Attributes: agent_kernel, agent_ramdisk, whole_disk, uefi_whole_disk,
    uefi_unsigned_disk, sb_shim, sb_grub, sb_mokmanager, partition,
    partition_kernel, partition_ramdisk, no_kernel_disk, instance_kernel,
    instance_ramdisk (paths), checksums (attribute name -> sha256 hex) and
    checksum_algo ('sha256').
    """

    checksum_algo = CHECKSUM_ALGO

    def __init__(self, paths, checksums):
        self.paths = dict(paths)
        self.checksums = dict(checksums)
        for name, path in paths.items():
            setattr(self, name, path)

    def as_dict(self):
        return {'paths': self.paths, 'checksums': self.checksums,
                'checksum_algo': self.checksum_algo}

    def __repr__(self):
        return 'Images(%r)' % self.paths


def cache_root(cache_dir=None):
    if cache_dir:
        return os.path.abspath(cache_dir)
    return os.path.abspath(os.environ.get(
        'IRONIC_KEXEC_CACHE',
        os.path.join(os.path.expanduser('~'), '.cache', 'ironic-kexec')))


def _sources_entries():
    """(uri, suites) of the host's apt sources, one-line and deb822."""
    entries = []
    for path in ['/etc/apt/sources.list'] + sorted(
            glob.glob('/etc/apt/sources.list.d/*.list')):
        try:
            with open(path) as f:
                for line in f:
                    words = line.split('#', 1)[0].split()
                    if len(words) >= 3 and words[0] == 'deb':
                        # Skip "[arch=...]" options.
                        words = [w for w in words[1:]
                                 if not (w.startswith('[')
                                         or w.endswith(']'))]
                        if len(words) >= 2:
                            entries.append((words[0], [words[1]]))
        except OSError:
            pass
    for path in sorted(glob.glob('/etc/apt/sources.list.d/*.sources')):
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        for stanza in text.split('\n\n'):
            fields = {}
            for line in stanza.splitlines():
                if ':' in line and not line.startswith(('#', ' ')):
                    key, value = line.split(':', 1)
                    fields[key.strip().lower()] = value.split()
            if 'deb' in fields.get('types', []):
                for uri in fields.get('uris', []):
                    entries.append((uri, fields.get('suites', [])))
    return entries


def debian_mirror():
    """The Debian mirror this machine's apt uses for the suite."""
    for uri, suites in _sources_entries():
        if SUITE in suites and uri.rstrip('/').endswith('/debian'):
            return uri.rstrip('/')
    return DEFAULT_MIRROR


def _input_files(image_set):
    files = []
    for rel in image_set.inputs:
        path = os.path.join(REPO, rel)
        if os.path.isdir(path):
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(d for d in dirnames
                                     if d != '__pycache__')
                for name in sorted(filenames):
                    if not name.endswith(('.pyc', '.pyo')):
                        files.append(os.path.join(dirpath, name))
        elif os.path.exists(path):
            files.append(path)
        else:
            raise BuildError('missing build input %s' % rel)
    return files


def cache_key(image_set, mirror):
    """A hash of everything that goes into an image set."""
    digest = hashlib.sha256()
    digest.update(('%s\0%s\0%s\0%s\0' % (image_set.name, mirror, SUITE,
                                         IPA_VERSION)).encode())
    for path in _input_files(image_set):
        digest.update(os.path.relpath(path, REPO).encode() + b'\0')
        # Executable bits are part of what the images get.
        digest.update(b'x' if os.access(path, os.X_OK) else b'-')
        with open(path, 'rb') as f:
            digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()[:20]


def file_checksum(path):
    digest = hashlib.new(CHECKSUM_ALGO)
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _mounts_under(path):
    prefix = os.path.realpath(path) + '/'
    found = []
    with open('/proc/self/mountinfo') as f:
        for line in f:
            # Field 5 is the mount point, with octal escapes for spaces.
            point = line.split()[4].encode().decode('unicode_escape')
            if point.startswith(prefix):
                found.append(point)
    return sorted(found, reverse=True)


def _remove_tree(path):
    """Removes a build directory, never what is mounted inside it.

    A build killed before its cleanup leaves the host's /dev, /proc and
    /sys bind-mounted in its chroot; a plain recursive removal would go
    through them.
    """
    if not os.path.lexists(path):
        return
    for point in _mounts_under(path):
        subprocess.call(['umount', '-l', point])
    left = _mounts_under(path)
    if left:
        raise BuildError('cannot remove %s: still mounted: %s'
                         % (path, ', '.join(left)))
    subprocess.check_call(['rm', '-rf', '--one-file-system', path])


def _tail(path, lines=LOG_TAIL_LINES):
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:])
    except OSError as e:
        return '(no build log: %s)\n' % e


def _run_logged(cmd, log_path, **kwargs):
    with open(log_path, 'a') as log:
        log.write('$ %s\n' % ' '.join(cmd))
        log.flush()
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, **kwargs)


def _check(proc, what, log_path):
    if proc.wait() != 0:
        raise BuildError('%s failed (exit status %s); last lines of %s:\n%s'
                         % (what, proc.returncode, log_path, _tail(log_path)))


def _ipa_wheels(root, log_path):
    """ironic-python-agent and its requirements as wheels, built once."""
    wheels = os.path.join(root, 'wheels', 'ironic-python-agent-%s-py%d%d'
                          % (IPA_VERSION, sys.version_info.major,
                             sys.version_info.minor))
    done = os.path.join(wheels, '.complete')
    if not os.path.exists(done):
        shutil.rmtree(wheels, ignore_errors=True)
        os.makedirs(wheels)
        # "pip wheel" rather than "pip download": a requirement published
        # only as an sdist is built here, where there is a compiler.
        _check(_run_logged([sys.executable, '-m', 'pip', 'wheel', '-q',
                            '--wheel-dir', wheels,
                            'ironic-python-agent==%s' % IPA_VERSION],
                           log_path),
               'downloading ironic-python-agent wheels', log_path)
        open(done, 'w').close()
    return wheels


def _project_wheel(dest, log_path):
    """ironic-kexec's wheel, from exactly the files the cache key hashes.

    Built from a copy so that the shared work tree gets no build
    products; PBR_VERSION stands in for the git metadata the copy lacks.
    """
    with tempfile.TemporaryDirectory(prefix='ironic-kexec-src-') as src:
        for rel in PROJECT_FILES:
            os.makedirs(os.path.join(src, os.path.dirname(rel)),
                        exist_ok=True)
            shutil.copy2(os.path.join(REPO, rel), os.path.join(src, rel))
        for rel in PROJECT_TREES:
            shutil.copytree(os.path.join(REPO, rel), os.path.join(src, rel),
                            ignore=shutil.ignore_patterns('__pycache__',
                                                          '*.pyc'))
        env = dict(os.environ, PBR_VERSION='0.0.0')
        _check(_run_logged([sys.executable, '-m', 'pip', 'wheel', '-q',
                            '--no-deps', '--wheel-dir', dest, src],
                           log_path, env=env),
               'building the ironic-kexec wheel', log_path)
    found = glob.glob(os.path.join(dest, 'ironic_kexec-*.whl'))
    if len(found) != 1:
        raise BuildError('expected one ironic-kexec wheel in %s, found %s'
                         % (dest, found))
    return found[0]


def _start_build(image_set, root, mirror, build_dir):
    log_path = os.path.join(build_dir, 'build.log')
    env = dict(os.environ, MIRROR=mirror, SUITE=SUITE,
               IPA_VERSION=IPA_VERSION,
               DEB_CACHE=os.path.join(root, 'debs', image_set.name))
    os.makedirs(env['DEB_CACHE'], exist_ok=True)
    cmd = ['bash', os.path.join(SCRIPTS, image_set.script), build_dir]
    if image_set is AGENT:
        wheelhouse = os.path.join(build_dir, 'wheelhouse')
        os.makedirs(wheelhouse)
        ipa = _ipa_wheels(root, log_path)
        for name in os.listdir(ipa):
            if name.endswith('.whl'):
                shutil.copy2(os.path.join(ipa, name), wheelhouse)
        cmd += [wheelhouse, _project_wheel(wheelhouse, log_path)]
    return _run_logged(cmd, log_path, env=env), log_path


def _finish_build(image_set, build_dir, final_dir):
    checksums = {}
    for attr, name in image_set.artifacts.items():
        path = os.path.join(build_dir, name)
        if not os.path.isfile(path):
            raise BuildError('%s build produced no %s' % (image_set.name,
                                                          name))
        checksums[attr] = file_checksum(path)
    shutil.rmtree(os.path.join(build_dir, 'wheelhouse'), ignore_errors=True)
    # Written last: its presence marks a complete image set.
    with open(os.path.join(build_dir, 'checksums.json'), 'w') as f:
        json.dump(checksums, f, indent=1, sort_keys=True)
    os.rename(build_dir, final_dir)


def _load(image_set, directory):
    with open(os.path.join(directory, 'checksums.json')) as f:
        checksums = json.load(f)
    paths = {attr: os.path.join(directory, name)
             for attr, name in image_set.artifacts.items()}
    return paths, checksums


def _prune(images_dir, wanted):
    """Removes all but the newest complete image sets of each kind."""
    for image_set, keep in wanted.items():
        done = glob.glob(os.path.join(images_dir, '%s-*' % image_set.name,
                                      'checksums.json'))
        others = sorted((os.path.dirname(p) for p in done
                         if os.path.dirname(p) != keep),
                        key=os.path.getmtime, reverse=True)
        for old in others[KEEP_PER_SET - 1:]:
            _remove_tree(old)


def ensure_images(cache_dir=None):
    """Builds the missing images and returns an :class:`Images`.

    Needs root when something has to be built (debootstrap, chroot, loop
    devices). A lock file serialises concurrent callers.
    """
    root = cache_root(cache_dir)
    images_dir = os.path.join(root, 'images')
    os.makedirs(images_dir, exist_ok=True)
    mirror = debian_mirror()
    with open(os.path.join(images_dir, '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        wanted = {s: os.path.join(images_dir, '%s-%s'
                                  % (s.name, cache_key(s, mirror)))
                  for s in IMAGE_SETS}
        missing = [s for s, d in wanted.items()
                   if not os.path.exists(os.path.join(d, 'checksums.json'))]
        # Left by interrupted builds (none runs: the lock is ours).
        for stale in glob.glob(os.path.join(images_dir, '*.build')):
            _remove_tree(stale)
        if missing and os.geteuid() != 0:
            raise BuildError('building the %s images needs root'
                             % ', '.join(s.name for s in missing))
        builds = []
        try:
            for image_set in missing:
                build_dir = wanted[image_set] + '.build'
                _remove_tree(build_dir)
                os.makedirs(build_dir)
                started = time.monotonic()
                proc, log_path = _start_build(image_set, root, mirror,
                                              build_dir)
                builds.append((image_set, proc, log_path, build_dir,
                               started))
                print('building %s images in %s (log: %s)'
                      % (image_set.name, build_dir, log_path),
                      file=sys.stderr)
            # The image sets build in parallel: debootstrap mostly waits
            # for dpkg and the disk, not for the CPU. One failing does not
            # waste the other's build.
            errors = []
            for image_set, proc, log_path, build_dir, started in builds:
                try:
                    _check(proc, 'building the %s images' % image_set.name,
                           log_path)
                    _finish_build(image_set, build_dir, wanted[image_set])
                except BuildError as e:
                    errors.append(str(e))
                    continue
                print('built %s images in %.0f s'
                      % (image_set.name, time.monotonic() - started),
                      file=sys.stderr)
            if errors:
                raise BuildError('\n'.join(errors))
        finally:
            for _set, proc, _log, _dir, _started in builds:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait()
        _prune(images_dir, wanted)
        paths = {}
        checksums = {}
        for image_set, directory in wanted.items():
            p, c = _load(image_set, directory)
            paths.update(p)
            checksums.update(c)
    return Images(paths, checksums)


def ensure_fault_images(images, cache_dir=None):
    """The fault matrix's image variants, built when missing.

    :param images: what :func:`ensure_images` returned; the variants are
        made from its agent ramdisk and whole-disk image.
    :returns: an :class:`Images` with the variants' paths and checksums
        added (attributes named as in ``FAULTS.artifacts``), and
        ``fault_dir``, the directory they are in.
    """
    root = cache_root(cache_dir)
    images_dir = os.path.join(root, 'images')
    os.makedirs(images_dir, exist_ok=True)
    digest = hashlib.sha256()
    digest.update(cache_key(FAULTS, '').encode())
    for attr in ('agent_ramdisk', 'whole_disk'):
        digest.update(images.checksums[attr].encode())
    final = os.path.join(images_dir, 'faults-%s' % digest.hexdigest()[:20])
    with open(os.path.join(images_dir, '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(final, 'checksums.json')):
            build_dir = final + '.build'
            _remove_tree(build_dir)
            os.makedirs(build_dir)
            log_path = os.path.join(build_dir, 'build.log')
            started = time.monotonic()
            _check(_run_logged(['bash', os.path.join(SCRIPTS, FAULTS.script),
                                build_dir, images.agent_ramdisk,
                                images.whole_disk], log_path),
                   'building the fault images', log_path)
            _finish_build(FAULTS, build_dir, final)
            print('built fault images in %.0f s'
                  % (time.monotonic() - started), file=sys.stderr)
        _prune(images_dir, {FAULTS: final})
        paths, checksums = _load(FAULTS, final)
    result = Images(dict(images.paths, **paths),
                    dict(images.checksums, **checksums))
    result.fault_dir = final
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m testbed.images',
        description='Build (if needed) and print the testbed images.')
    parser.add_argument('--cache-dir', help='default: $IRONIC_KEXEC_CACHE '
                        'or ~/.cache/ironic-kexec')
    parser.add_argument('--json', action='store_true',
                        help='print paths and checksums as JSON')
    args = parser.parse_args(argv)
    try:
        images = ensure_images(args.cache_dir)
    except BuildError as e:
        print(str(e), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(images.as_dict(), indent=1, sort_keys=True))
    else:
        for name in sorted(images.paths):
            print('%s %s' % (name, images.paths[name]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
