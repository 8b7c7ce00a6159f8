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

"""Finding the deployed image's root (and /boot) and mounting it.

Everything is mounted read-only, ``nodev,nosuid,noexec``, ext4 without
journal replay, and unmounted when the context ends: the disk must be
exactly as the deploy wrote it when the instance boots.
"""

import contextlib
import logging
import shutil
import tempfile

from ironic_python_agent import utils
from oslo_concurrency import processutils

from ipa_kexec import cmdline as cmdline_mod
from ipa_kexec import errors
from ipa_kexec import rootfs as rootfs_mod
from ironic_kexec import protocol

LOG = logging.getLogger(__name__)

COMMAND_TIMEOUT = 60
# Filesystems that never hold a root or /boot.
SKIP_FSTYPES = ('swap', 'LVM2_member', 'linux_raid_member', 'crypto_LUKS',
                'iso9660', 'squashfs', 'zfs_member', 'BitLocker')
BASE_OPTS = ('ro', 'nodev', 'nosuid', 'noexec')
# Do not replay a dirty journal: that would write to the tenant's disk.
EXTRA_OPTS = {'ext3': ('noload',), 'ext4': ('noload',),
              'xfs': ('norecovery',)}
# Separate filesystems of the image boot loaders read from.
BOOT_MOUNTPOINTS = ('/boot', '/boot/efi')
LSBLK_FIELDS = 'KNAME,TYPE,FSTYPE,UUID,PARTUUID,LABEL'


def _execute(*cmd, **kwargs):
    kwargs.setdefault('timeout', COMMAND_TIMEOUT)
    return utils.execute(*cmd, use_standard_locale=True, **kwargs)


def activate_volumes():
    """Bring up LVM volume groups and software RAID, best effort."""
    for cmd in (('vgchange', '-ay'), ('mdadm', '--assemble', '--scan')):
        try:
            _execute(*cmd)
        except (processutils.ProcessExecutionError, OSError) as e:
            LOG.debug('%s failed (nothing to activate?): %s', cmd[0], e)


def list_devices(device):
    """The device and everything on it (partitions, LVs, md), as dicts."""
    out, _err = _execute('lsblk', '-Pbn', '-o', LSBLK_FIELDS, device)
    devices = []
    for info in utils.parse_device_tags(out):
        if info.get('KNAME'):
            info['path'] = '/dev/' + info['KNAME']
            devices.append(info)
    return devices


def mount_options(fstype):
    return ','.join(BASE_OPTS + EXTRA_OPTS.get(fstype, ()))


def _mount(info, target):
    fstype = info.get('FSTYPE') or None
    cmd = ['mount', '-o', mount_options(fstype)]
    if fstype:
        cmd += ['-t', fstype]
    _execute(*(cmd + [info['path'], target]))


def _umount(target):
    try:
        _execute('umount', target, attempts=3, delay_on_retry=True)
    except (processutils.ProcessExecutionError, OSError) as e:
        LOG.error('Could not unmount %s: %s', target, e)
        return
    shutil.rmtree(target, ignore_errors=True)


def looks_like_root(rootfs):
    """An OS root: os-release plus /boot or /etc/fstab."""
    has_release = (rootfs.find_file('/etc/os-release') is not None
                   or rootfs.find_file('/usr/lib/os-release') is not None)
    return has_release and (rootfs.is_dir('/boot')
                            or rootfs.find_file('/etc/fstab') is not None)


def match_spec(spec, devices):
    """The device an fstab spec (UUID=, LABEL=, PARTUUID=, /dev/...) names.

    Only devices of the install disk qualify: the tenant's fstab must not
    make the agent mount anything else.
    """
    key, sep, value = spec.partition('=')
    for info in devices:
        if sep and key in ('UUID', 'LABEL', 'PARTUUID'):
            if info.get(key) == value:
                return info
        elif spec in (info['path'], '/dev/mapper/' + info['KNAME']):
            return info
    return None


class Mounter(object):
    """Mounts and, on close, unmounts in reverse order."""

    def __init__(self):
        self._targets = []

    def mount(self, info):
        target = tempfile.mkdtemp(prefix='ipa-kexec-')
        try:
            _mount(info, target)
        except Exception:
            shutil.rmtree(target, ignore_errors=True)
            raise
        self._targets.append(target)
        return target

    def unmount_last(self):
        _umount(self._targets.pop())

    def close(self):
        while self._targets:
            self.unmount_last()


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
        rootfs = rootfs_mod.RootFS(target)
        if root_uuid or looks_like_root(rootfs):
            return info, rootfs
        mounter.unmount_last()
    raise errors.KexecError(protocol.REASON_NO_ROOT,
                            'no root filesystem found on %s'
                            % ', '.join(d['path'] for d in devices))


def _mount_boot(mounter, rootfs, devices, root_info):
    text = rootfs.read_text_or_none(cmdline_mod.FSTAB) or ''
    wanted = {}
    for spec, mountpoint, _fstype, _opts in cmdline_mod.fstab_entries(text):
        if mountpoint in BOOT_MOUNTPOINTS:
            wanted[mountpoint] = spec
    for mountpoint in BOOT_MOUNTPOINTS:
        spec = wanted.get(mountpoint)
        if spec is None:
            continue
        info = match_spec(spec, devices)
        if info is None or info is root_info:
            LOG.warning('%s (%s) of the image is not on the install '
                        'device, not mounting it', mountpoint, spec)
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
    :yields: (RootFS, root device path, root filesystem UUID or None)
    :raises: KexecError with reason no_root.
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
