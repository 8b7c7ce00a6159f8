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

"""Whether a deploy should end with kexec, and what to ask the agent.

Mode precedence, most specific first: ``instance_info['kexec_mode']`` (this
deploy), ``driver_info['kexec_mode']`` (the node), ``[kexec]default_mode``.
``[kexec]enabled = False`` overrides all of them, ``required`` included.

Kernel parameters are appended, never replaced, in the order
``[kexec]extra_args``, ``driver_info['kexec_extra_args']``,
``instance_info['kexec_extra_args']``: the kernel honours the last
occurrence of most parameters, so the more specific value wins. The
``kernel_append_params`` of driver_info and instance_info are not used:
they are the agent ramdisk's (or a ramdisk deploy's) parameters, not
those of a kernel installed in the image. (A ``ramdisk-kexec`` deploy gets
them through the command line Ironic builds for its network boot, see
``ironic_kexec.ramdisk_deploy``.)
"""

from ironic.common import exception
from ironic.common import states
from ironic.conf import CONF
from ironic.drivers.modules import boot_mode_utils
from oslo_log import log
from oslo_utils import strutils

from ironic_kexec import conf as kexec_conf
from ironic_kexec import protocol

LOG = log.getLogger(__name__)

MODE = 'kexec_mode'
EXTRA_ARGS = 'kexec_extra_args'
# instance_info only: an explicit boot entry, for images whose boot
# configuration the agent cannot read.
KERNEL = 'kexec_kernel'
INITRD = 'kexec_initrd'
CMDLINE = 'kexec_cmdline'

PROPERTIES = {
    MODE: 'Whether the deploy ends with kexec instead of a power cycle: '
          '"disabled", "auto" (kexec when possible, otherwise power '
          'cycle) or "required" (kexec or fail the deploy). May be '
          'overridden per deploy by instance_info/kexec_mode. Defaults to '
          '[kexec]default_mode. Optional.',
    EXTRA_ARGS: 'Kernel parameters appended to the command line of the '
                'deployed kernel when it is started with kexec, after '
                '[kexec]extra_args and before instance_info/'
                'kexec_extra_args. Optional.',
}

# Network interfaces that leave the node's ports where they are between
# the agent and the instance. Any other (neutron, out-of-tree) may move
# them, so kexec would boot the instance on the provisioning network.
_STATIC_NETWORK_INTERFACES = frozenset(['flat', 'noop'])


def validate(node):
    """Check the node's and the deploy's kexec parameters.

    :raises: InvalidParameterValue on a malformed value.
    """
    for field, info in (('driver_info', node.driver_info),
                        ('instance_info', node.instance_info)):
        mode = info.get(MODE)
        if mode is not None and mode not in kexec_conf.MODES:
            raise exception.InvalidParameterValue(
                '%(field)s/%(key)s of node %(node)s is "%(mode)s", it must '
                'be one of %(valid)s' %
                {'field': field, 'key': MODE, 'node': node.uuid,
                 'mode': mode, 'valid': ', '.join(kexec_conf.MODES)})
        keys = (EXTRA_ARGS,) if field == 'driver_info' else (
            EXTRA_ARGS, KERNEL, INITRD, CMDLINE)
        for key in keys:
            value = info.get(key)
            if value is not None and not isinstance(value, str):
                raise exception.InvalidParameterValue(
                    '%(field)s/%(key)s of node %(node)s must be a string' %
                    {'field': field, 'key': key, 'node': node.uuid})
    if (node.instance_info.get(INITRD)
            and not node.instance_info.get(KERNEL)):
        raise exception.InvalidParameterValue(
            'instance_info/%(initrd)s of node %(node)s needs '
            'instance_info/%(kernel)s' %
            {'initrd': INITRD, 'kernel': KERNEL, 'node': node.uuid})


def get_mode(node):
    """The kexec mode of this deploy: one of ``conf.MODES``."""
    if not CONF.kexec.enabled:
        return kexec_conf.MODE_DISABLED
    return (node.instance_info.get(MODE)
            or node.driver_info.get(MODE)
            or CONF.kexec.default_mode)


def reason_to_skip(task, mode):
    """Why this deploy must not even try kexec, or None.

    :param task: a TaskManager instance.
    :param mode: the result of :func:`get_mode`.
    :returns: None, or a tuple (reason code, message).
    """
    node = task.node
    if mode == kexec_conf.MODE_DISABLED:
        return protocol.REASON_DISABLED, 'kexec mode is "disabled"'
    # Cases where Ironic's own tear down does something special: keep it.
    if not task.driver.storage.should_write_image(task):
        return (protocol.REASON_NOT_APPLICABLE,
                'the node boots from a volume, no image was written')
    if node.disable_power_off:
        return (protocol.REASON_NOT_APPLICABLE,
                'the node has disable_power_off set')
    if strutils.bool_from_string(
            node.driver_info.get('deploy_forces_oob_reboot', False)):
        return (protocol.REASON_NOT_APPLICABLE,
                'driver_info/deploy_forces_oob_reboot is set')
    if (states.POWER_ON
            not in task.driver.power.get_supported_power_states(task)):
        return (protocol.REASON_NOT_APPLICABLE,
                'the power interface cannot power the node on')
    if not node.driver_internal_info.get('agent_url'):
        return protocol.REASON_NO_AGENT, 'no agent URL is known'
    if (mode == kexec_conf.MODE_AUTO
            and node.network_interface not in _STATIC_NETWORK_INTERFACES
            and not CONF.kexec.allow_network_isolation):
        return (protocol.REASON_NETWORK_ISOLATION,
                'network interface "%s" switches the node to the tenant '
                'network after the agent is gone and '
                '[kexec]allow_network_isolation is False'
                % node.network_interface)
    return None


def _joined_extra_args(node):
    parts = [CONF.kexec.extra_args,
             node.driver_info.get(EXTRA_ARGS),
             node.instance_info.get(EXTRA_ARGS)]
    return ' '.join(p.strip() for p in parts if p and p.strip())


def common_load_params(node):
    """The parameters of ``kexec.load`` that do not depend on the source.

    Those of every deploy, with a disk or diskless: the system call,
    the extra kernel parameters and the boot mode.
    """
    params = {protocol.PARAM_FILE_SYSCALL: CONF.kexec.file_syscall}
    extra_args = _joined_extra_args(node)
    if extra_args:
        params[protocol.PARAM_EXTRA_ARGS] = extra_args
    try:
        params[protocol.PARAM_BOOT_MODE] = boot_mode_utils.get_boot_mode(
            node)
    except exception.InvalidParameterValue as e:
        # Informational only for the agent; not worth failing over.
        LOG.debug('No boot mode for kexec on node %(node)s: %(err)s',
                  {'node': node.uuid, 'err': e})
    return params


def load_params(task):
    """The parameters of ``kexec.load`` for this deploy."""
    node = task.node
    params = common_load_params(node)
    if not node.driver_internal_info.get('is_whole_disk_image'):
        root_uuid = node.driver_internal_info.get('root_uuid_or_disk_id')
        if root_uuid:
            params[protocol.PARAM_ROOT_UUID] = root_uuid
    for key, param in ((KERNEL, protocol.PARAM_KERNEL),
                       (INITRD, protocol.PARAM_INITRD),
                       (CMDLINE, protocol.PARAM_CMDLINE)):
        value = node.instance_info.get(key)
        if value:
            params[param] = value
    return params
