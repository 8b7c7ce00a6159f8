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

"""The ``kexec`` extension of ironic-python-agent: its commands only."""

import contextlib
import hashlib
import logging
import time
from urllib import parse as urlparse

from ironic_python_agent import errors as ipa_errors
from ironic_python_agent.extensions import base
from ironic_python_agent import hardware

from ipa_kexec import bootfiles
from ipa_kexec.bootloader import entry as entry_mod
from ipa_kexec import cmdline as cmdline_mod
from ipa_kexec import discovery
from ipa_kexec import download
from ipa_kexec import errors
from ipa_kexec import kexec
from ipa_kexec import mounts
from ipa_kexec import preflight
from ipa_kexec import rootfs as rootfs_mod
from ironic_kexec import protocol

LOG = logging.getLogger(__name__)

DEFAULT_DELAY = 3
MAX_DELAY = 300

_DISCOVERY_PARAMS = (protocol.PARAM_ROOT_UUID, protocol.PARAM_KERNEL,
                     protocol.PARAM_INITRD, protocol.PARAM_CMDLINE,
                     protocol.PARAM_EXTRA_ARGS, protocol.PARAM_BOOT_MODE)
_URL_PARAMS = (protocol.PARAM_KERNEL_URL, protocol.PARAM_INITRD_URL,
               protocol.PARAM_KERNEL_CHECKSUM,
               protocol.PARAM_INITRD_CHECKSUM,
               protocol.PARAM_CHECKSUM_ALGO, protocol.PARAM_MAX_SIZE)
GET_BOOT_ENTRY_PARAMS = (_DISCOVERY_PARAMS + (protocol.PARAM_ROOT_PATH,
                                              protocol.PARAM_FILE_SYSCALL))
LOAD_PARAMS = (_DISCOVERY_PARAMS + (protocol.PARAM_FILE_SYSCALL,)
               + _URL_PARAMS + (protocol.PARAM_DENY,
                                protocol.PARAM_PROTOCOL_VERSION))
# Parameters whose values are not strings; each is validated on its own.
_NON_STRING_PARAMS = (protocol.PARAM_MAX_SIZE, protocol.PARAM_DENY,
                      protocol.PARAM_PROTOCOL_VERSION)
# The conductor sends only the rules it could not decide itself, a few;
# the bound keeps a bad request from costing the agent unbounded matching.
MAX_DENY_RULES = 1000
# Parameters that name files on the disk, meaningless with kernel_url.
_DISK_SOURCE_PARAMS = (protocol.PARAM_ROOT_UUID, protocol.PARAM_KERNEL,
                       protocol.PARAM_INITRD)
_URL_CHECKSUMS = ((protocol.PARAM_KERNEL_URL, protocol.PARAM_KERNEL_CHECKSUM),
                  (protocol.PARAM_INITRD_URL, protocol.PARAM_INITRD_CHECKSUM))
URL_SCHEMES = ('http', 'https')


def _check_params(params, allowed):
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ipa_errors.InvalidCommandParamsError(
            'unknown parameters: %s' % ', '.join(unknown))
    for name, value in params.items():
        if (value is not None and name not in _NON_STRING_PARAMS
                and not isinstance(value, str)):
            raise ipa_errors.InvalidCommandParamsError(
                '%s must be a string' % name)
    if params.get(protocol.PARAM_INITRD) and not params.get(
            protocol.PARAM_KERNEL):
        raise ipa_errors.InvalidCommandParamsError(
            'initrd is only accepted together with kernel')
    mode = params.get(protocol.PARAM_FILE_SYSCALL)
    if mode is not None and mode not in protocol.FILE_SYSCALL_MODES:
        raise ipa_errors.InvalidCommandParamsError(
            'file_syscall must be one of %s'
            % ', '.join(protocol.FILE_SYSCALL_MODES))


def _validate_get_boot_entry(ext, **params):
    _check_params(params, GET_BOOT_ENTRY_PARAMS)


def _invalid(message):
    return ipa_errors.InvalidCommandParamsError(message)


def _validate_url_params(params):
    """A diskless deploy: URLs, checksums, a command line, no disk."""
    given = [name for name in _URL_PARAMS if params.get(name) is not None]
    if not given:
        return
    if not params.get(protocol.PARAM_KERNEL_URL):
        raise _invalid('%s need kernel_url' % ', '.join(given))
    disk = [name for name in _DISK_SOURCE_PARAMS if params.get(name)]
    if disk:
        raise _invalid('kernel_url excludes %s: a downloaded kernel is not '
                       'looked up on the disk' % ', '.join(disk))
    for url_name, checksum_name in _URL_CHECKSUMS:
        url = params.get(url_name)
        if url is None:
            if params.get(checksum_name) is not None:
                raise _invalid('%s needs %s' % (checksum_name, url_name))
            continue
        if urlparse.urlparse(url).scheme not in URL_SCHEMES:
            raise _invalid('%s must be a %s URL'
                           % (url_name, ' or '.join(URL_SCHEMES)))
        if not params.get(checksum_name):
            raise _invalid('%s needs %s' % (url_name, checksum_name))
    if params.get(protocol.PARAM_CMDLINE) is None:
        raise _invalid('kernel_url needs cmdline, the full kernel command '
                       'line: there is no image to find one in')
    algo = params.get(protocol.PARAM_CHECKSUM_ALGO)
    if algo is not None and algo not in hashlib.algorithms_available:
        raise _invalid('checksum_algo %s is not supported by this agent'
                       % algo)
    max_size = params.get(protocol.PARAM_MAX_SIZE)
    if max_size is not None and (isinstance(max_size, bool)
                                 or not isinstance(max_size, int)
                                 or max_size <= 0):
        raise _invalid('max_size must be a positive number of bytes')


def _validate_deny(params):
    rules = params.get(protocol.PARAM_DENY)
    if rules is None:
        return
    if not isinstance(rules, list):
        raise _invalid('deny must be a list of deny rules')
    if len(rules) > MAX_DENY_RULES:
        raise _invalid('deny has %d rules, at most %d are accepted'
                       % (len(rules), MAX_DENY_RULES))
    for index, rule in enumerate(rules):
        try:
            protocol.check_deny_rule(rule)
        except ValueError as e:
            raise _invalid('deny rule %d: %s' % (index, e))


def _validate_load(ext, **params):
    version = params.get(protocol.PARAM_PROTOCOL_VERSION)
    if version is not None and not protocol.is_version(version):
        raise _invalid('protocol_version must be a positive integer')
    if not protocol.agent_serves(version):
        # Refused by the command itself, with reason protocol_mismatch
        # in its result: a newer conductor's parameters are unknown here,
        # and must not turn the answer into "unknown parameters".
        return
    _check_params(params, LOAD_PARAMS)
    _validate_url_params(params)
    _validate_deny(params)


def _validate_get_version(ext, **params):
    if params:
        raise _invalid('unknown parameters: %s'
                       % ', '.join(sorted(params)))


def _validate_execute(ext, **params):
    unknown = set(params) - {protocol.PARAM_DELAY}
    if unknown:
        raise ipa_errors.InvalidCommandParamsError(
            'unknown parameters: %s' % ', '.join(sorted(unknown)))
    delay = params.get(protocol.PARAM_DELAY, DEFAULT_DELAY)
    if (isinstance(delay, bool) or not isinstance(delay, (int, float))
            or not 0 <= delay <= MAX_DELAY):
        raise ipa_errors.InvalidCommandParamsError(
            'delay must be a number of seconds between 0 and %d'
            % MAX_DELAY)


class KexecExtension(base.BaseAgentExtension):
    """Boot the deployed instance with kexec instead of a power cycle."""

    def __init__(self, agent=None):
        super(KexecExtension, self).__init__(agent=agent)
        self.preflight = preflight.Preflight()

    def _standby_root_uuid(self):
        """The root UUID the standby extension wrote (partition images)."""
        try:
            standby = base.get_extension('standby')
        except (ipa_errors.ExtensionError, KeyError):
            return None
        uuids = getattr(standby, 'partition_uuids', None) or {}
        return uuids.get('root uuid')

    @contextlib.contextmanager
    def _image(self, root_uuid=None, root_path=None):
        """The image as a RootFS, mounted only while the context lasts.

        :yields: (RootFS, root device or None, root UUID or None)
        """
        if root_path:
            yield rootfs_mod.RootFS(root_path), None, root_uuid
            return
        root_uuid = root_uuid or self._standby_root_uuid()
        device = hardware.dispatch_to_managers('get_os_install_device')
        with mounts.mounted_image(device, root_uuid) as (rootfs, dev, uuid):
            yield rootfs, dev, uuid or root_uuid

    def _discover(self, rootfs, root_device, root_uuid, params):
        return discovery.discover(
            rootfs,
            kernel=params.get(protocol.PARAM_KERNEL),
            initrd=params.get(protocol.PARAM_INITRD),
            cmdline=params.get(protocol.PARAM_CMDLINE),
            extra_args=params.get(protocol.PARAM_EXTRA_ARGS),
            root_uuid=root_uuid, root_device=root_device)

    @base.sync_command(protocol.GET_BOOT_ENTRY, _validate_get_boot_entry)
    def get_boot_entry(self, **params):
        """Discovery only: what ``load`` would boot, nothing is loaded."""
        with self._image(params.get(protocol.PARAM_ROOT_UUID),
                         params.get(protocol.PARAM_ROOT_PATH)) as image:
            rootfs, device, uuid = image
            return self._discover(rootfs, device, uuid, params).to_result()

    @contextlib.contextmanager
    def _image_files(self, params):
        """The boot entry and the agent paths of its kernel and initrd.

        The paths are valid only inside the context (the image is then
        unmounted, copies of several initrds or of a UKI's sections are
        removed).
        """
        with self._image(params.get(protocol.PARAM_ROOT_UUID)) as image:
            rootfs, device, uuid = image
            entry = self._discover(rootfs, device, uuid, params)
            with bootfiles.boot_files(
                    rootfs, entry,
                    self.preflight.mem_available()) as (kernel, initrd):
                yield entry, kernel, initrd

    @contextlib.contextmanager
    def _downloaded_files(self, params):
        """A diskless deploy's entry, its files downloaded into memory."""
        cmdline = cmdline_mod.append_extra(
            entry_mod.normalize_cmdline(params[protocol.PARAM_CMDLINE]),
            params.get(protocol.PARAM_EXTRA_ARGS))
        entry = entry_mod.BootEntry(
            params[protocol.PARAM_KERNEL_URL],
            params.get(protocol.PARAM_INITRD_URL), cmdline,
            protocol.SOURCE_URL)
        with download.downloaded(
                params, self.preflight.mem_available()) as files:
            yield (entry,) + files

    def _boot_files(self, params):
        if params.get(protocol.PARAM_KERNEL_URL):
            return 'download', self._downloaded_files(params)
        return 'discover', self._image_files(params)

    @base.sync_command(protocol.GET_VERSION, _validate_get_version)
    def get_version(self, **params):
        """The protocol versions this agent speaks and serves."""
        return {protocol.FIELD_PROTOCOL_VERSION: protocol.PROTOCOL_VERSION,
                protocol.FIELD_MIN_PROTOCOL_VERSION:
                    protocol.MIN_PROTOCOL_VERSION}

    @base.async_command(protocol.LOAD, _validate_load)
    def load(self, **params):
        """Find (or download) the instance kernel, ``kexec --load`` it."""
        conductor_version = params.get(protocol.PARAM_PROTOCOL_VERSION)
        if not protocol.agent_serves(conductor_version):
            raise errors.ProtocolMismatch(conductor_version)
        timings = {}
        start = time.monotonic()
        mode = params.get(protocol.PARAM_FILE_SYSCALL,
                          protocol.FILE_SYSCALL_AUTO)
        # Before touching the disk: a node that cannot kexec at all
        # should fall back to a power cycle at once.
        method = self.preflight.check(mode)
        # Hardware known not to survive a kexec: also before the disk or
        # a download, the node is power cycled instead.
        self.preflight.check_deny(params.get(protocol.PARAM_DENY))
        kexec_path = self.preflight.kexec_path()
        timings['preflight'] = time.monotonic() - start
        phase, boot_files = self._boot_files(params)
        with boot_files as (entry, kernel, initrd):
            timings[phase] = time.monotonic() - start
            loaded_at = time.monotonic()
            # kexec reads both files now, while the image is mounted
            # (or the downloads are still in their tmpfs).
            method = kexec.load(
                kexec_path, kernel, initrd, entry.cmdline, method,
                lockdown_reason=self.preflight.needs_file_syscall(),
                retry_file_load=mode == protocol.FILE_SYSCALL_AUTO)
            timings['load'] = time.monotonic() - loaded_at
        if self.preflight.kexec_loaded() is False:
            raise errors.KexecError(
                protocol.REASON_LOAD_FAILED,
                'kexec --load succeeded but no kernel is loaded')
        timings['total'] = time.monotonic() - start
        result = entry.to_result()
        result[protocol.FIELD_METHOD] = method
        result[protocol.FIELD_TIMINGS] = {
            k: round(v, 3) for k, v in timings.items()}
        result[protocol.FIELD_PROTOCOL_VERSION] = protocol.PROTOCOL_VERSION
        return result

    @base.async_command(protocol.EXECUTE, _validate_execute)
    def execute_kexec(self, **params):
        """Flush, answer, then kexec into the loaded kernel.

        (Not named ``execute``: that is the extension's dispatcher.)
        """
        delay = params.get(protocol.PARAM_DELAY, DEFAULT_DELAY)
        if not self.preflight.kexec_loaded():
            raise errors.KexecError(protocol.REASON_NOT_LOADED,
                                    'no kernel is loaded, run load first')
        kexec_path = self.preflight.kexec_path()
        if kexec_path is None:
            raise errors.KexecError(protocol.REASON_KEXEC_UNSUPPORTED,
                                    'the kexec command disappeared')
        try:
            hardware.dispatch_to_all_managers('full_sync')
        except Exception as e:
            raise errors.KexecError(
                protocol.REASON_AGENT_ERROR,
                'flushing the disks before kexec failed: %s' % e)
        LOG.info('Flushed; kexec into the instance in %s seconds', delay)
        kexec.spawn_execute(kexec_path, delay)
        return {protocol.FIELD_DELAY: delay}
