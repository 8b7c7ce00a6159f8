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

"""Downloading the instance kernel and initrd of a diskless deploy.

The files go to a tmpfs the extension mounts for the purpose (never the
agent's own ``/tmp`` or ``/run``): its ``size=`` caps what a misbehaving
server can make the agent hold in memory, it is ``nodev,nosuid,noexec``,
and unmounting it gives the memory back even if a file was left behind.
kexec reads the files at load time, so the tmpfs only lives as long as
:func:`downloaded` does; the files are deleted before it is unmounted,
on success and on every failure.

The transfer itself is ironic-python-agent's own
:class:`~ironic_python_agent.extensions.standby.ImageDownload`: proxies,
TLS options (``ipa-insecure``, the CA file), HTTP basic authentication,
connection retries and checksums (a value, or the URL of a checksum
file, with an explicit or a detected algorithm) behave as for an image.
A failure after the transfer started is not retried: falling back to a
power cycle is cheaper than a second download.
"""

import collections
import contextlib
import errno
import logging
import os
import shutil
import tempfile

from ironic_python_agent import errors as ipa_errors
from ironic_python_agent.extensions import standby
from oslo_concurrency import processutils
import requests

from ipa_kexec import errors
from ipa_kexec import process
from ironic_kexec import protocol

LOG = logging.getLogger(__name__)

DEFAULT_MAX_SIZE = protocol.DEFAULT_MAX_SIZE
# With kexec_load(2) a file is in memory three times while kexec runs:
# in the tmpfs, in kexec-tools' buffers and in the kernel's segments.
# What is left must still run the agent.
MEMORY_SHARE = 3
# tmpfs allocates whole pages (or huge pages): room for rounding, so that
# the byte count enforced while streaming is the bound that bites.
TMPFS_SLACK = 2 * 1024 * 1024
TMPFS_OPTIONS = ('nodev', 'nosuid', 'noexec', 'mode=0700')
COMMAND_TIMEOUT = 60

Artifact = collections.namedtuple('Artifact', 'name url checksum')


def _execute(*cmd):
    return process.execute_bounded(*cmd, timeout=COMMAND_TIMEOUT,
                                   timeout_reason=protocol.REASON_AGENT_ERROR)


def artifacts(params):
    """What to download, in order: the kernel, then the initrd if any."""
    wanted = [Artifact('kernel', params[protocol.PARAM_KERNEL_URL],
                       params[protocol.PARAM_KERNEL_CHECKSUM])]
    if params.get(protocol.PARAM_INITRD_URL):
        wanted.append(Artifact('initrd', params[protocol.PARAM_INITRD_URL],
                               params[protocol.PARAM_INITRD_CHECKSUM]))
    return wanted


def memory_budget(mem_available):
    """Bytes all downloads together may use, None if memory is unknown."""
    if mem_available is None:
        return None
    return mem_available // MEMORY_SHARE


class Budget(object):
    """The byte bound of each file: max_size, and what memory allows.

    :param max_size: bytes per file.
    :param total: bytes for all files together, or None for no bound.
    """

    def __init__(self, max_size, total=None):
        self.max_size = max_size
        self.total = total
        self.used = 0

    def limit(self):
        """The bound of the next file and what imposes it."""
        if self.total is not None and self.total - self.used < self.max_size:
            return (max(self.total - self.used, 0),
                    'the memory the agent can spare')
        return self.max_size, 'max_size'

    def tmpfs_size(self, count):
        size = count * self.max_size
        if self.total is not None:
            size = min(size, self.total)
        return size + TMPFS_SLACK


def _clear(directory):
    for name in os.listdir(directory):
        try:
            os.unlink(os.path.join(directory, name))
        except OSError as e:
            LOG.warning('Could not remove %s from %s: %s', name, directory, e)


@contextlib.contextmanager
def memory_dir(size):
    """A private tmpfs of ``size`` bytes, emptied and unmounted at exit.

    :raises: KexecError (agent_error) if the tmpfs cannot be mounted.
    """
    target = tempfile.mkdtemp(prefix='ipa-kexec-download-')
    options = ','.join(('size=%d' % size,) + TMPFS_OPTIONS)
    try:
        _execute('mount', '-t', 'tmpfs', '-o', options, 'tmpfs', target)
    except (processutils.ProcessExecutionError, OSError) as e:
        shutil.rmtree(target, ignore_errors=True)
        raise errors.KexecError(
            protocol.REASON_AGENT_ERROR,
            'cannot mount a tmpfs for the downloads: %s' % e)
    try:
        yield target
    finally:
        # Deleted first: if the unmount fails, the memory is still freed.
        _clear(target)
        try:
            _execute('umount', target)
        except (processutils.ProcessExecutionError, OSError,
                errors.KexecError) as e:
            LOG.error('Could not unmount the download tmpfs %s: %s',
                      target, e)
        else:
            shutil.rmtree(target, ignore_errors=True)


def _image_info(artifact, checksum_algo):
    # The fields ironic sends for an image, so that standby's code
    # resolves and verifies the checksum exactly as it does for images.
    info = {'id': artifact.name, 'urls': [artifact.url]}
    if checksum_algo:
        info['os_hash_algo'] = checksum_algo
        info['os_hash_value'] = artifact.checksum
    else:
        info['checksum'] = artifact.checksum
    return info


def _close(download):
    # ImageDownload has no close(): drop the connection now rather than
    # when the response is collected, so that an oversized or failed
    # transfer stops at once.
    response = getattr(download, '_request', None)
    if response is not None:
        response.close()


def _failed(artifact, error):
    return errors.KexecError(
        protocol.REASON_DOWNLOAD_FAILED,
        'downloading the %s from %s failed: %s'
        % (artifact.name, artifact.url, error))


def _check_declared_size(artifact, download, limit, why):
    try:
        declared = int(download.content_length)
    except (TypeError, ValueError):
        return
    if declared > limit:
        raise errors.TooLarge(
            'the %s at %s is %d bytes, over its limit of %d bytes (%s)'
            % (artifact.name, artifact.url, declared, limit, why))


def _stream(artifact, download, path, limit, why):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, 'wb') as f:
        for chunk in download:
            # Counted before writing: nothing past the bound is stored.
            if download.bytes_transferred > limit:
                raise errors.TooLarge(
                    'the %s at %s is over its limit of %d bytes (%s)'
                    % (artifact.name, artifact.url, limit, why))
            try:
                f.write(chunk)
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    raise errors.TooLarge(
                        'the %s at %s does not fit in the download tmpfs'
                        % (artifact.name, artifact.url))
                raise


def fetch(artifact, checksum_algo, path, limit, why='max_size'):
    """Download one file to ``path``, bounded and verified.

    :param limit: the largest size accepted, in bytes; the transfer stops
        as soon as it is exceeded.
    :param why: what imposes ``limit``, for the message.
    :returns: the number of bytes written.
    :raises: KexecError with reason download_failed, too_large or
        checksum_mismatch.
    """
    download = None
    try:
        download = standby.ImageDownload(_image_info(artifact,
                                                     checksum_algo))
        _check_declared_size(artifact, download, limit, why)
        _stream(artifact, download, path, limit, why)
        download.verify_image(path)
    except errors.KexecError:
        raise
    except ipa_errors.ImageChecksumError as e:
        raise errors.KexecError(
            protocol.REASON_CHECKSUM_MISMATCH,
            'the %s from %s does not match its checksum: %s'
            % (artifact.name, artifact.url, e.details))
    except ipa_errors.RESTError as e:
        # Download, timeout and checksum-resolution errors of standby.
        raise _failed(artifact, e.details)
    except (requests.RequestException, OSError, ValueError) as e:
        # Connection errors once standby's retries are spent, a broken
        # stream, a checksum of no known length.
        raise _failed(artifact, e)
    finally:
        if download is not None:
            _close(download)
    LOG.info('Downloaded the %s from %s: %d bytes', artifact.name,
             artifact.url, download.bytes_transferred)
    return download.bytes_transferred


@contextlib.contextmanager
def downloaded(params, mem_available=None):
    """Download a diskless deploy's kernel and initrd into memory.

    :param params: the ``load`` parameters, validated.
    :param mem_available: the agent's available memory in bytes, if
        known; the downloads together get a share of it.
    :yields: the agent paths of the kernel and of the initrd (or None),
        valid inside the context only.
    """
    max_size = params.get(protocol.PARAM_MAX_SIZE) or DEFAULT_MAX_SIZE
    budget = Budget(max_size, memory_budget(mem_available))
    wanted = artifacts(params)
    algo = params.get(protocol.PARAM_CHECKSUM_ALGO)
    with memory_dir(budget.tmpfs_size(len(wanted))) as directory:
        paths = []
        for artifact in wanted:
            path = os.path.join(directory, artifact.name)
            limit, why = budget.limit()
            budget.used += fetch(artifact, algo, path, limit, why)
            paths.append(path)
        yield paths[0], paths[1] if len(paths) > 1 else None
