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

"""The ``ramdisk-kexec`` deploy interface: diskless deploys.

The ``ramdisk`` deploy, except that when an agent is already running on
the node (fast track), it downloads the instance's kernel and ramdisk from
the conductor's HTTP root and kexecs into them, instead of the node being
power cycled into a network boot of the same files. The boot interface is
prepared exactly as for the ``ramdisk`` deploy, so that any later reboot
network-boots the instance as usual. Whenever kexec is not possible the
stock step runs unchanged, unless the mode is ``required``.
"""

import os
import time

from ironic.common import checksum_utils
from ironic.common import metrics_utils
from ironic.common import pxe_utils
from ironic.common import states
from ironic.conductor import task_manager
from ironic.conductor import utils as manager_utils
from ironic.drivers import base
from ironic.drivers.modules import deploy_utils
from ironic.drivers.modules import ramdisk
from oslo_log import log

from ironic_kexec import conf as kexec_conf
from ironic_kexec import errors
from ironic_kexec import interface
from ironic_kexec import policy
from ironic_kexec import protocol
from ironic_kexec import ramdisk_boot_option

LOG = log.getLogger(__name__)

METRICS = metrics_utils.get_metrics_logger(__name__)

# Stevedore imports this module only when the interface (or a hardware
# type listing it) is loaded: only then do the boot interfaces need to
# see ramdisk-kexec nodes as ramdisk deploys.
ramdisk_boot_option.install()

CHECKSUM_ALGO = 'sha256'

# The words the boot_ramdisk entry of Ironic's PXE, iPXE and GRUB
# templates puts before pxe_append_params and ramdisk_opts. The
# template's initrd= is left out: it names an iPXE image, kexec passes
# the initrd itself.
_RAMDISK_CMDLINE_PREFIX = ('root=/dev/ram0', 'text')

_KERNEL = 'kernel'
_RAMDISK = 'ramdisk'


def _not_applicable(message):
    return errors.NotKexec(protocol.REASON_NOT_APPLICABLE, message)


def instance_cmdline(pxe_options):
    """The kernel command line of the instance in Ironic's boot config.

    :param pxe_options: the result of ``pxe_utils.build_pxe_config_options``
        for the instance (``service=True``), as the boot interface renders
        its template with.
    """
    parts = list(_RAMDISK_CMDLINE_PREFIX)
    for key in ('pxe_append_params', 'ramdisk_opts'):
        value = (pxe_options.get(key) or '').strip()
        if value:
            parts.append(value)
    return ' '.join(parts)


def load_params(task, attempt):
    """The parameters of ``kexec.load`` for a diskless deploy.

    The URLs, command line and files are those the boot interface's
    ``prepare_instance`` just used for the node's network boot, computed
    with the same Ironic helpers; the checksums are computed here from the
    cached files.

    :param task: a TaskManager instance, the boot interface prepared.
    :param attempt: a ``record.Attempt``, gets the seconds spent under
        'checksum'.
    :raises: NotKexec (not_applicable) if the files are not where the
        agent can fetch them.
    """
    node = task.node
    image_info = pxe_utils.get_instance_image_info(task, ipxe_enabled=True)
    if not (image_info.get(_KERNEL) and image_info.get(_RAMDISK)):
        raise _not_applicable('the boot interface has no instance kernel '
                              'and ramdisk to boot for this deploy')
    pxe_options = pxe_utils.build_pxe_config_options(
        task, image_info, service=True, ipxe_enabled=True)

    start = time.monotonic()
    sums = {}
    sizes = []
    try:
        for label in (_KERNEL, _RAMDISK):
            path = image_info[label][1]
            sums[label] = checksum_utils.compute_image_checksum(
                path, algorithm=CHECKSUM_ALGO)
            sizes.append(os.path.getsize(path))
    except OSError as e:
        raise _not_applicable('the cached instance %s of node %s cannot be '
                              'read: %s' % (label, node.uuid, e))
    finally:
        attempt.timings['checksum'] = time.monotonic() - start

    params = policy.common_load_params(task)
    params.update({
        # The URLs the boot configuration points at.
        protocol.PARAM_KERNEL_URL: pxe_options['aki_path'],
        protocol.PARAM_INITRD_URL: pxe_options['ari_path'],
        protocol.PARAM_KERNEL_CHECKSUM: sums[_KERNEL],
        protocol.PARAM_INITRD_CHECKSUM: sums[_RAMDISK],
        protocol.PARAM_CHECKSUM_ALGO: CHECKSUM_ALGO,
        # The exact sizes are known: the agent needs room for no more.
        protocol.PARAM_MAX_SIZE: max(sizes),
        protocol.PARAM_CMDLINE: instance_cmdline(pxe_options),
    })
    return params


class RamdiskKexecDeploy(interface.KexecInterfaceMixin,
                         ramdisk.RamdiskDeploy):
    """The ramdisk deploy, booted by kexec from a running agent."""

    diskless = True
    decision_step = ('deploy', 100)
    interface_name = 'ramdisk-kexec'

    @METRICS.timer('RamdiskKexecDeploy.prepare')
    @task_manager.require_exclusive_lock
    def prepare(self, task):
        node = task.node
        if node.provision_state == states.DEPLOYING:
            # A new deploy: the mode an earlier deploy's template chose
            # does not apply to it.
            policy.clear_step_mode(node)
        # Deploy steps run after prepare: a deploy template's
        # set_kexec_mode step is counted here already. Deploy steps given
        # with the deploy request are not known yet: one that disables
        # kexec finds the agent kept running (harmless, the fall back
        # powers the node off), one that enables it after another setting
        # disabled it finds no agent (reason no_agent).
        if (node.provision_state != states.DEPLOYING
                or self._mode_before_steps(task) == kexec_conf.MODE_DISABLED
                or not manager_utils.is_fast_track(task)):
            return super().prepare(task)

        # RamdiskDeploy.prepare without its power off: the running agent
        # is what deploy will kexec from.
        LOG.debug('The agent of node %s is alive, keeping it running for '
                  'kexec', node.uuid)
        deploy_utils.populate_storage_driver_internal_info(task)
        task.driver.network.validate(task)
        task.driver.storage.attach_volumes(task)
        self._resolve_image_info_from_glance(task)

    def _kexec_load_params(self, task, attempt):
        # As the stock deploy: caches the instance kernel and ramdisk in
        # the HTTP root, writes the boot configuration and makes the
        # network boot persistent, so that any later reboot (the recovery
        # after a failed verification included) boots the instance
        # again. It also tells what to kexec.
        task.driver.boot.prepare_instance(task)
        return load_params(task, attempt)

    @METRICS.timer('RamdiskKexecDeploy.deploy')
    @base.deploy_step(priority=100)
    @task_manager.require_exclusive_lock
    def deploy(self, task):
        """Boot the instance kernel and ramdisk by kexec from the agent.

        Falls back to the stock deploy (power off, network boot) when
        kexec is not possible, or fails the deploy in ``required`` mode.

        :param task: a TaskManager object containing the node
        """
        node = task.node
        if ('configdrive' in node.instance_info
                and 'ramdisk_boot_configdrive' not in
                task.driver.boot.capabilities):
            LOG.warning('A configuration drive is present in the ramdisk '
                        'deployment request of node %(node)s with boot '
                        'interface %(drv)s. The configuration drive will be '
                        'ignored for this deployment.',
                        {'node': node.uuid,
                         'drv': node.get_interface('boot')})
        if self._kexec(task) is not None:
            # The stock deploy powers the node off through the BMC, never
            # through the agent: this also stops an agent that was told
            # to kexec and did not (execute_failed), with no race.
            # Preparing the boot interface again is harmless: its files
            # and configuration are kept when they exist.
            return super().deploy(task)

        # As the stock deploy, after the agent is gone (it needed the
        # provisioning network to download).
        with manager_utils.power_state_for_network_configuration(task):
            task.driver.network.configure_tenant_networks(task)
        LOG.info('Deployment setup for node %s done', node.uuid)
        return None
