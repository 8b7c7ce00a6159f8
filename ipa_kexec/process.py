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

"""Running the tools the agent needs, bounded in time.

oslo.concurrency's ``execute`` raises ``subprocess.TimeoutExpired`` at
its timeout and leaves the process running, unreaped; a hung ``kexec
--load`` or ``vgchange`` would outlive the command that started it.
"""

import logging
import os
import signal
import subprocess

from ironic_python_agent import utils

from ipa_kexec import errors

LOG = logging.getLogger(__name__)

# After SIGKILL, how long to wait for the process to be reaped. Longer
# means a process stuck in the kernel (D state, a dying disk): it cannot
# be killed, only reported.
REAP_TIMEOUT = 10


def _kill_group(proc):
    """SIGKILL the process and everything in its process group, reap it.

    The process leads its own group (``os.setsid`` before exec), so its
    children (mount helpers, lvm's forks) go with it. The group is killed
    before the leader is reaped: until then its pid, the group id, cannot
    be reused by another process.
    """
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except ProcessLookupError:
        pass
    # Not communicate(): a grandchild that left the group could hold the
    # pipes open forever.
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:
                pass
    try:
        proc.wait(timeout=REAP_TIMEOUT)
    except subprocess.TimeoutExpired:
        LOG.error('Process %s (%s) did not die within %s seconds of '
                  'SIGKILL; it is stuck in the kernel', proc.pid,
                  proc.args, REAP_TIMEOUT)


def execute_bounded(*cmd, timeout, timeout_reason, **kwargs):
    """``utils.execute`` that ends a timed-out command, and its children.

    oslo.concurrency's ``execute`` raises ``subprocess.TimeoutExpired`` at
    the timeout and leaves the process running (and unreaped). Here the
    process runs in its own process group; at the timeout the group is
    killed and reaped and a KexecError with ``timeout_reason`` raised.

    :raises: KexecError (timeout_reason) on timeout; whatever
        ``utils.execute`` raises otherwise.
    """
    started = []

    def on_execute(proc):
        started.append(proc)

    kwargs.setdefault('use_standard_locale', True)
    try:
        return utils.execute(*cmd, timeout=timeout, on_execute=on_execute,
                             preexec_fn=os.setsid, **kwargs)
    except subprocess.TimeoutExpired:
        if started:
            _kill_group(started[-1])
        raise errors.KexecError(
            timeout_reason, '%s did not finish within %s seconds and was '
            'killed' % (os.path.basename(str(cmd[0])), timeout))
