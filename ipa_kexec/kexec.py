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

"""Running kexec-tools: loading the instance kernel, and the detached
``kexec -e`` that replaces the agent."""

import logging
import subprocess
import sys
import time

from oslo_concurrency import processutils

from ipa_kexec import errors
from ipa_kexec import process
from ironic_kexec import protocol

LOG = logging.getLogger(__name__)

LOAD_TIMEOUT = 300
# Run by the detached process: no shell, the kexec path and the moment
# are arguments. The moment is on the system-wide monotonic clock, so the
# interpreter's start-up (a good part of a second on a slow machine) is
# spent within the delay instead of after it.
_EXEC_LATER = ('import os, sys, time; '
               'time.sleep(max(0.0, float(sys.argv[1]) - time.monotonic())); '
               'os.execv(sys.argv[2], [sys.argv[2], "-e"])')


def load_command(kexec, kernel, initrd, cmdline, method):
    """The kexec --load argument list."""
    cmd = [kexec, '--load', kernel]
    if initrd:
        cmd.append('--initrd=%s' % initrd)
    cmd.append('--command-line=%s' % cmdline)
    if method == protocol.METHOD_KEXEC_FILE_LOAD:
        cmd.append('--kexec-file-syscall')
    else:
        cmd.append('--kexec-syscall')
    return cmd


# How kexec-tools reports (strerror) a kernel that refuses to load an image
# because it demands signed ones. Seen on Debian 12's 6.1 kernel under
# OVMF with Secure Boot: kexec_load "Permission denied" (IMA's
# architecture policy, before lockdown), kexec_file_load of an unsigned
# kernel "No data available" (ENODATA) and of one signed by an untrusted
# key "Required key not available" (ENOKEY). Lockdown itself refuses
# kexec_load with EPERM; a rejected key (EKEYREJECTED) is the other
# signature failure.
_REFUSED_UNSIGNED = ('Operation not permitted', 'Permission denied',
                     'No data available', 'Required key not available',
                     'Key was rejected')


# kexec_load refused as a lockdown refuses it (EPERM; EACCES from IMA's
# architecture policy). An agent whose ramdisk mounts neither securityfs
# nor efivarfs cannot see that it is locked down (seen: the testbed's
# agent ramdisk under OVMF Secure Boot), and gets these.
_REFUSED_KEXEC_LOAD = ('Operation not permitted', 'Permission denied')


def _run_load(kexec, kernel, initrd, cmdline, method):
    """Run kexec --load: (None, None), or its error and stderr."""
    cmd = load_command(kexec, kernel, initrd, cmdline, method)
    try:
        process.execute_bounded(*cmd, timeout=LOAD_TIMEOUT,
                                timeout_reason=protocol.REASON_TIMEOUT)
    except (processutils.ProcessExecutionError, OSError) as e:
        return e, getattr(e, 'stderr', '') or ''
    return None, None


def load(kexec, kernel, initrd, cmdline, method, lockdown_reason=None,
         retry_file_load=False):
    """Load the instance kernel (kernel and initrd are agent paths).

    :param lockdown_reason: why the kernel only loads signed kernels, if
        it does; a refusal is then reported as ``lockdown``.
    :param retry_file_load: if kexec_load is refused as a locked-down
        kernel refuses it, try kexec_file_load (file_syscall ``auto``).
    :returns: the method that loaded the kernel.
    :raises: KexecError (load_failed, lockdown, or timeout: the kexec
        process was then killed).
    """
    if '\0' in ''.join(load_command(kexec, kernel, initrd, cmdline, method)):
        # The kernel ends its command line at the first NUL; and no
        # argument of a process can hold one.
        raise errors.KexecError(protocol.REASON_LOAD_FAILED,
                                'the command line contains a NUL byte')
    error, stderr = _run_load(kexec, kernel, initrd, cmdline, method)
    if error is None:
        return method
    if (retry_file_load and method == protocol.METHOD_KEXEC_LOAD
            and any(text in stderr for text in _REFUSED_KEXEC_LOAD)):
        LOG.warning('kexec_load was refused (%s) although no lockdown '
                    'was seen; trying kexec_file_load',
                    stderr.strip().splitlines()[0])
        lockdown_reason = lockdown_reason or (
            'the agent kernel (it refused kexec_load: %s)'
            % stderr.strip().splitlines()[0])
        method = protocol.METHOD_KEXEC_FILE_LOAD
        error, stderr = _run_load(kexec, kernel, initrd, cmdline, method)
        if error is None:
            return method
    refused = any(text in stderr for text in _REFUSED_UNSIGNED)
    if lockdown_reason and refused:
        raise errors.KexecError(
            protocol.REASON_LOCKDOWN,
            '%s refused the instance kernel %s: %s'
            % (lockdown_reason, kernel, stderr.strip()))
    raise errors.KexecError(protocol.REASON_LOAD_FAILED,
                            'kexec --load %s failed: %s' % (kernel, error))


def spawn_execute(kexec, delay):
    """Start a process that runs ``kexec -e`` after ``delay`` seconds.

    In its own session, so it outlives the agent's request handling and
    is not killed with the agent's process group. ``-I -S``: nothing of
    the agent's environment or site packages is needed to sleep and exec.
    """
    at = time.monotonic() + delay
    return subprocess.Popen(
        [sys.executable, '-I', '-S', '-c', _EXEC_LATER, repr(at), kexec],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, close_fds=True, start_new_session=True)
