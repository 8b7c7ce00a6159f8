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

"""Finding the deployed image's root (and /boot, the ESP) and mounting it.

Everything is mounted read-only, ``nodev,nosuid,noexec``, without
journal or log replay, and unmounted when the context ends: the disk must
be exactly as the deploy wrote it when the instance boots. Only
filesystems of the install device are mounted, whatever the image's
fstab names.
"""

import contextlib
import logging
import os
import shutil
import stat
import tempfile

from ironic_python_agent import utils
from oslo_concurrency import processutils

from ipa_kexec import budget
from ipa_kexec import cmdline as cmdline_mod
from ipa_kexec import errors
from ipa_kexec import process
from ipa_kexec import rootfs as rootfs_mod
from ironic_kexec import protocol

LOG = logging.getLogger(__name__)

COMMAND_TIMEOUT = 60
# Filesystems that never hold a root or /boot.
SKIP_FSTYPES = ('swap', 'LVM2_member', 'linux_raid_member', 'crypto_LUKS',
                'iso9660', 'squashfs', 'zfs_member', 'BitLocker')
BASE_OPTS = ('ro', 'nodev', 'nosuid', 'noexec')
# Never replay a dirty journal or log: that would write to the tenant's
# disk. vfat has none, and sets its dirty bit only when mounted rw.
EXTRA_OPTS = {'ext3': ('noload',), 'ext4': ('noload',),
              'xfs': ('norecovery',)}
# btrfs: rescue=nologreplay (Linux 5.9 and later; it requires ro), else
# its older spelling nologreplay (4.6 and later). A plain ro mount would
# replay the log tree.
BTRFS_NO_REPLAY = (('rescue=nologreplay',), ('nologreplay',))
# The top-level subvolume, whatever the default subvolume is.
BTRFS_TOP = 'subvolid=5'
# Tried first when the top level is no root: Ubuntu's and Fedora's names.
BTRFS_ROOT_NAMES = ('@', 'root')
# How many top-level directories are tried as the root subvolume.
MAX_SUBVOL_CANDIDATES = 32
# Separate filesystems of the image boot loaders read from, parents
# first: systemd-boot layouts put the ESP at /boot, /efi or /boot/efi
# and an XBOOTLDR partition at /boot.
BOOT_MOUNTPOINTS = ('/boot', '/efi', '/boot/efi')
# GPT partition types (the Discoverable Partitions Specification), and
# the MBR ones.
ESP_TYPES = ('c12a7328-f81f-11d2-ba4b-00a0c93ec93b', '0xef')
XBOOTLDR_TYPES = ('bc13c2ff-59e6-4262-a352-b275fd6f7172', '0xea')
LSBLK_FIELDS = 'KNAME,TYPE,FSTYPE,UUID,PARTUUID,LABEL,PARTLABEL,PARTTYPE'
# blkid's names for what lsblk reports.
BLKID_FIELDS = {'TYPE': 'FSTYPE', 'UUID': 'UUID', 'LABEL': 'LABEL',
                'PART_ENTRY_UUID': 'PARTUUID', 'PART_ENTRY_NAME': 'PARTLABEL',
                'PART_ENTRY_TYPE': 'PARTTYPE'}
SPEC_KEYS = ('UUID', 'LABEL', 'PARTUUID', 'PARTLABEL')
SPEC_LINKS = {'/dev/disk/by-uuid/': 'UUID', '/dev/disk/by-label/': 'LABEL',
              '/dev/disk/by-partuuid/': 'PARTUUID',
              '/dev/disk/by-partlabel/': 'PARTLABEL'}
MOUNTINFO = '/proc/self/mountinfo'


def _execute(*cmd, **kwargs):
    """Run a disk tool; one that hangs is killed and ends discovery."""
    kwargs.setdefault('timeout', COMMAND_TIMEOUT)
    return process.execute_bounded(
        *cmd, timeout_reason=protocol.REASON_NO_ROOT, **kwargs)


def activate_volumes():
    """Bring up LVM volume groups and software RAID, best effort.

    :raises: KexecError (no_root) if one of them hangs.
    """
    for cmd in (('vgchange', '-ay'), ('mdadm', '--assemble', '--scan')):
        try:
            _execute(*cmd)
        except (processutils.ProcessExecutionError, OSError) as e:
            LOG.debug('%s failed (nothing to activate?): %s', cmd[0], e)


def _blkid(path):
    """What blkid finds on a device by reading it (no udev database)."""
    try:
        out, _err = _execute('blkid', '-p', '-o', 'export', path)
    except (processutils.ProcessExecutionError, OSError) as e:
        LOG.debug('blkid found nothing on %s: %s', path, e)
        return {}
    found = {}
    for line in out.splitlines():
        key, sep, value = line.partition('=')
        if sep and key in BLKID_FIELDS:
            # -o export escapes with backslashes.
            found[BLKID_FIELDS[key]] = value.replace('\\', '')
    return found


def list_devices(device):
    """The device and everything on it (partitions, LVs, md), as dicts.

    lsblk takes filesystem types and partition types from udev. Without
    udev's database (or before udev has seen a volume just activated)
    they are empty: each device is then probed with blkid.
    """
    out, _err = _execute('lsblk', '-Pbn', '-o', LSBLK_FIELDS, device)
    devices = []
    for info in utils.parse_device_tags(out):
        if info.get('KNAME'):
            info['path'] = '/dev/' + info['KNAME']
            devices.append(info)
    if devices and not any(d.get('FSTYPE') for d in devices):
        for info in devices:
            for key, value in _blkid(info['path']).items():
                if not info.get(key):
                    info[key] = value
    return devices


def mount_options(fstype, extra=()):
    return ','.join(BASE_OPTS + EXTRA_OPTS.get(fstype, ()) + tuple(extra))


def _mount(info, target, extra=()):
    fstype = info.get('FSTYPE') or None
    attempts = [()]
    if fstype == 'btrfs':
        attempts = BTRFS_NO_REPLAY
    for n, replay_opts in enumerate(attempts):
        cmd = ['mount', '-o', mount_options(fstype, replay_opts + extra)]
        if fstype:
            cmd += ['-t', fstype]
        try:
            _execute(*(cmd + [info['path'], target]))
            return
        except processutils.ProcessExecutionError:
            if n == len(attempts) - 1:
                raise
            LOG.debug('Mounting %s with %s failed, trying the older '
                      'option', info['path'], ','.join(replay_opts))


def _umount(target):
    try:
        _execute('umount', target, attempts=3, delay_on_retry=True)
    except (processutils.ProcessExecutionError, OSError,
            errors.KexecError) as e:
        LOG.error('Could not unmount %s: %s', target, e)
        return
    shutil.rmtree(target, ignore_errors=True)


def looks_like_root(rootfs):
    """An OS root: os-release plus /boot or /etc/fstab.

    A candidate whose paths leave it, or are over their bounds, is none.
    """
    try:
        return _looks_like_root(rootfs)
    except errors.KexecError as e:
        LOG.warning('%s is no usable root: %s', rootfs.root, e)
        return False


def _looks_like_root(rootfs):
    has_release = (rootfs.find_file('/etc/os-release') is not None
                   or rootfs.find_file('/usr/lib/os-release') is not None)
    return has_release and (rootfs.is_dir('/boot')
                            or rootfs.find_file('/etc/fstab') is not None)


def _spec_key(spec):
    """(lsblk field, value) for an fstab spec, or (None, device path)."""
    for prefix, key in SPEC_LINKS.items():
        if spec.startswith(prefix):
            return key, spec[len(prefix):]
    key, sep, value = spec.partition('=')
    if sep and key in SPEC_KEYS:
        return key, value.strip('"')
    return None, spec


def match_spec(spec, devices):
    """The device an fstab spec (UUID=, LABEL=, PARTUUID=, /dev/...) names.

    Only devices of the install disk qualify: the tenant's fstab must not
    make the agent mount anything else.
    """
    key, value = _spec_key(spec)
    for info in devices:
        if key is not None:
            if value and info.get(key) == value:
                return info
        elif value in (info['path'], '/dev/mapper/' + info['KNAME']):
            return info
    return None


def mounted_subvol(target):
    """The btrfs subvolume mounted at ``target``, or None if unknown.

    A path from the top level without a leading '/' ('' for the top
    level), as the kernel gives it in mountinfo's root field.
    """
    try:
        with open(MOUNTINFO, 'rb') as f:
            lines = f.read().decode('utf-8', 'surrogateescape').splitlines()
    except OSError:
        return None
    target = os.path.realpath(target)
    found = None
    for line in lines:
        fields = line.split(' ')
        # The last mount on a path is the visible one.
        if len(fields) > 4 and _unescape_mountinfo(fields[4]) == target:
            found = _unescape_mountinfo(fields[3]).strip('/')
    return found


def _unescape_mountinfo(field):
    # The kernel writes space, tab, newline and backslash as \ooo.
    for octal, char in (('\\040', ' '), ('\\011', '\t'), ('\\012', '\n'),
                        ('\\134', '\\')):
        field = field.replace(octal, char)
    return field


class Mounter(object):
    """Mounts and, on close, unmounts in reverse order."""

    def __init__(self):
        self._targets = []

    @property
    def last_target(self):
        return self._targets[-1]

    def mount(self, info, extra=()):
        target = tempfile.mkdtemp(prefix='ipa-kexec-')
        try:
            _mount(info, target, extra)
        except BaseException:
            # A mount killed at its timeout may still have completed.
            if os.path.ismount(target):
                _umount(target)
            else:
                shutil.rmtree(target, ignore_errors=True)
            raise
        self._targets.append(target)
        return target

    def unmount_last(self):
        _umount(self._targets.pop())

    def close(self):
        while self._targets:
            self.unmount_last()


def _subvol_candidates(top):
    """Top-level directories that may be the root subvolume, in order.

    The known names first, then the others sorted; at most
    MAX_SUBVOL_CANDIDATES, and a top level with more names than a
    directory may have is refused rather than cut.
    """
    names = []
    with os.scandir(top) as it:
        for entry in it:
            names.append(entry.name)
            if len(names) > budget.MAX_DIR_NAMES:
                raise errors.KexecError(
                    protocol.REASON_NO_ROOT,
                    'the btrfs top level has more than %d names'
                    % budget.MAX_DIR_NAMES)
    known = [n for n in BTRFS_ROOT_NAMES if n in names]
    others = sorted(n for n in names if n not in BTRFS_ROOT_NAMES)
    return (known + others)[:MAX_SUBVOL_CANDIDATES]


def _subvol_root(top):
    """RootFS of the OS root among the top level's directories, or None."""
    for name in _subvol_candidates(top):
        path = os.path.join(top, name)
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                continue
        except OSError:
            continue
        rootfs = rootfs_mod.RootFS(path)
        if looks_like_root(rootfs):
            rootfs.subvol = name
            return rootfs
    return None


def _btrfs_root(mounter, info, target):
    """The OS root of a btrfs filesystem mounted at ``target``, or None.

    ``target`` has the default subvolume, which is what the kernel
    mounts without ``rootflags`` (openSUSE makes a snapshot the
    default). If it is not a root, the root is searched among the
    directories of the top level (Fedora's ``root``, Ubuntu's ``@``).
    """
    default = mounted_subvol(target)
    if default:
        # Not the top level: mount that instead, to search it.
        mounter.unmount_last()
        target = mounter.mount(info, (BTRFS_TOP,))
    rootfs = _subvol_root(target)
    if rootfs is not None:
        LOG.info('Image root is the btrfs subvolume %s', rootfs.subvol)
    return rootfs


def _root_in(mounter, info, target):
    """RootFS for the image's root in a mounted candidate, or None."""
    rootfs = rootfs_mod.RootFS(target)
    if looks_like_root(rootfs):
        if info.get('FSTYPE') == 'btrfs':
            rootfs.subvol = mounted_subvol(target) or None
        return rootfs
    if info.get('FSTYPE') == 'btrfs':
        return _btrfs_root(mounter, info, target)
    return None


def _find_root(mounter, devices, root_uuid):
    if root_uuid:
        candidates = [d for d in devices
                      if root_uuid in (d.get('UUID'), d.get('PARTUUID'))]
        if not candidates:
            raise errors.KexecError(
                protocol.REASON_NO_ROOT,
                'no filesystem with UUID %s on the install device'
                % root_uuid)
    else:
        candidates = [d for d in devices
                      if d.get('FSTYPE') and d['FSTYPE'] not in SKIP_FSTYPES]
    for info in candidates:
        try:
            target = mounter.mount(info)
        except (processutils.ProcessExecutionError, OSError) as e:
            LOG.debug('Cannot mount %s: %s', info['path'], e)
            continue
        rootfs = _root_in(mounter, info, target)
        if rootfs is None and root_uuid:
            # The conductor named it: trust it even without os-release.
            rootfs = rootfs_mod.RootFS(mounter.last_target)
        if rootfs is not None:
            return info, rootfs
        mounter.unmount_last()
    raise errors.KexecError(protocol.REASON_NO_ROOT,
                            'no root filesystem found on %s'
                            % ', '.join(d['path'] for d in devices))


def _by_type(devices, types, exclude):
    """The first device of one of the partition ``types`` not excluded."""
    for info in devices:
        if ((info.get('PARTTYPE') or '').lower() in types
                and info['path'] not in exclude):
            return info
    return None


def _wanted_boot_mounts(rootfs, devices, root_info):
    """{mount point in the image: device} of its boot filesystems.

    What the image's fstab says. Else, as systemd-gpt-auto-generator
    does: an XBOOTLDR partition at /boot, and an ESP the fstab does not
    name at /efi if there is an XBOOTLDR partition or the image has /efi,
    else at /boot if that is an empty directory with no fstab entry.
    """
    text = rootfs.read_text_or_none(cmdline_mod.FSTAB) or ''
    wanted = {}
    in_fstab = set()
    for spec, mountpoint, _fstype, _opts in cmdline_mod.fstab_entries(text):
        mountpoint = mountpoint.rstrip('/') or '/'
        info = match_spec(spec, devices)
        if info is not None:
            in_fstab.add(info['path'])
        if mountpoint not in BOOT_MOUNTPOINTS or mountpoint in wanted:
            continue
        if info is None or info is root_info:
            LOG.warning('%s (%s) of the image is not a separate filesystem '
                        'of the install device, not mounting it',
                        mountpoint, spec)
            continue
        wanted[mountpoint] = info
    used = in_fstab | {root_info['path']}
    xbootldr = _by_type(devices, XBOOTLDR_TYPES, ())
    if '/boot' not in wanted and xbootldr is not None:
        if xbootldr['path'] not in used:
            wanted['/boot'] = xbootldr
            used.add(xbootldr['path'])
    esp = _by_type(devices, ESP_TYPES, used)
    if esp is not None:
        if xbootldr is not None or rootfs.is_dir('/efi'):
            mountpoint = '/efi'
        elif rootfs.is_dir('/boot') and not rootfs.listdir('/boot'):
            mountpoint = '/boot'
        else:
            mountpoint = None
        if mountpoint is not None and mountpoint not in wanted:
            wanted[mountpoint] = esp
    return wanted


def _mount_boot(mounter, rootfs, devices, root_info):
    wanted = _wanted_boot_mounts(rootfs, devices, root_info)
    for mountpoint in BOOT_MOUNTPOINTS:
        info = wanted.get(mountpoint)
        if info is None:
            continue
        try:
            rootfs.add_mount(mountpoint, mounter.mount(info))
        except (processutils.ProcessExecutionError, OSError) as e:
            LOG.warning('Cannot mount the image %s from %s: %s',
                        mountpoint, info['path'], e)


@contextlib.contextmanager
def mounted_image(device, root_uuid=None):
    """Mount the image on ``device`` read-only.

    :param device: the install device, e.g. ``/dev/sda``.
    :param root_uuid: the root filesystem's (or partition's) UUID if the
        conductor knows it (partition images).
    :yields: (RootFS, root device path, root filesystem UUID or None);
        ``RootFS.subvol`` is the btrfs subvolume of the root, or None.
    :raises: KexecError with reason no_root (also when a disk tool
        hangs: it is killed).
    """
    activate_volumes()
    devices = list_devices(device)
    mounter = Mounter()
    try:
        root_info, rootfs = _find_root(mounter, devices, root_uuid)
        _mount_boot(mounter, rootfs, devices, root_info)
        LOG.info('Image root %s mounted at %s', root_info['path'], rootfs)
        yield rootfs, root_info['path'], root_info.get('UUID') or None
    finally:
        mounter.close()
