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

"""Whether a deploy may end with kexec, and what to ask the agent.

The one place that answers "may this deploy kexec" for both deploy
interfaces (:func:`check`): the mode, Ironic's own reasons to reboot, the
agent, network isolation, the circuit breaker and the hardware deny list.

Mode precedence, most specific first (:func:`get_mode_and_source`):

1. ``driver_internal_info['kexec_mode_step']``, written by the
   ``set_kexec_mode`` deploy step that a deploy template (matched by one of
   the deploy's ``instance_info['traits']``, from a Nova flavor's or
   image's required traits) or the deploy request's deploy steps named;
2. ``instance_info['kexec_mode']`` (this deploy);
3. ``instance_info['capabilities']['kexec_mode']`` (this deploy: Nova
   writes a flavor's ``capabilities:kexec_mode`` extra spec there);
4. ``driver_info['kexec_mode']`` (the node);
5. ``[kexec]default_mode``.

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
from ironic.conductor import utils as manager_utils
from ironic.conf import CONF
from ironic.drivers.modules import boot_mode_utils
from ironic.drivers.modules import deploy_utils
from oslo_log import log
from oslo_utils import strutils

from ironic_kexec import conf as kexec_conf
from ironic_kexec import deny
from ironic_kexec import errors
from ironic_kexec import protocol
from ironic_kexec import verify

LOG = log.getLogger(__name__)

MODE = 'kexec_mode'
EXTRA_ARGS = 'kexec_extra_args'
# instance_info only: an explicit boot entry, for images whose boot
# configuration the agent cannot read.
KERNEL = 'kexec_kernel'
INITRD = 'kexec_initrd'
CMDLINE = 'kexec_cmdline'
# driver_info, written by the conductor, removed by the operator: how many
# kexec handoffs in a row failed verification on this node.
FAILURES = 'kexec_failures'
# The deploy step that sets the mode of one deploy, named by a deploy
# template (or the deploy request's deploy steps), and the
# driver_internal_info key where it keeps {'mode': ..., 'source': ...}
# until the next deploy starts or the instance is torn down.
STEP = 'set_kexec_mode'
STEP_MODE = 'kexec_mode_step'
# instance_info/capabilities, as Nova writes a flavor's "capabilities:*"
# extra specs: a JSON string (Ironic's API also accepts a dict).
CAPABILITIES = 'capabilities'

# Where a deploy's mode came from, as the record's "mode_source" says.
SOURCE_ENABLED = '[kexec]enabled'
SOURCE_INSTANCE = 'instance_info/%s' % MODE
SOURCE_CAPABILITY = 'instance_info/%s/%s' % (CAPABILITIES, MODE)
SOURCE_NODE = 'driver_info/%s' % MODE
SOURCE_DEFAULT = '[kexec]default_mode'

PROPERTIES = {
    MODE: 'Whether the deploy ends with kexec instead of a power cycle: '
          '"disabled", "auto" (kexec when possible, otherwise power '
          'cycle) or "required" (kexec or fail the deploy). May be '
          'overridden per deploy by instance_info/kexec_mode, by '
          'instance_info/capabilities (a Nova flavor\'s '
          '"capabilities:kexec_mode") or by the set_kexec_mode deploy '
          'step of a deploy template. Defaults to [kexec]default_mode. '
          'Optional.',
    EXTRA_ARGS: 'Kernel parameters appended to the command line of the '
                'deployed kernel when it is started with kexec, after '
                '[kexec]extra_args and before instance_info/'
                'kexec_extra_args. Optional.',
    verify.SPEC: 'How the conductor checks that the instance came up after '
                 'a kexec: "none", "tcp:[HOST:]PORT" or "banner:[HOST:]PORT".'
                 ' May be overridden per deploy by instance_info/'
                 'kexec_verify. Defaults to [kexec]verify. Optional.',
    FAILURES: 'Written by the conductor: kexec handoffs in a row that '
              'failed verification. At [kexec]circuit_breaker_threshold '
              'the node stops using kexec; unset it to reset. Optional.',
}

# Network interfaces that leave the node's ports where they are between
# the agent and the instance. Any other (neutron, out-of-tree) may move
# them, so kexec would boot the instance on the provisioning network.
_STATIC_NETWORK_INTERFACES = frozenset(['flat', 'noop'])


def check_mode(mode, what):
    """Refuse a mode that is not one of ``conf.MODES``.

    :param what: what holds the mode, for the message.
    :raises: InvalidParameterValue
    """
    if mode not in kexec_conf.MODES:
        raise exception.InvalidParameterValue(
            '%(what)s is "%(mode)s", it must be one of %(valid)s' %
            {'what': what, 'mode': mode,
             'valid': ', '.join(kexec_conf.MODES)})


def validate(node):
    """Check the node's and the deploy's kexec parameters.

    :raises: InvalidParameterValue on a malformed value, including
        malformed ``instance_info/capabilities``.
    """
    for field, info in (('driver_info', node.driver_info),
                        ('instance_info', node.instance_info)):
        mode = info.get(MODE)
        if mode is not None:
            check_mode(mode, '%s/%s of node %s' % (field, MODE, node.uuid))
        if info.get(verify.SPEC):
            verify.check_target_spec(info[verify.SPEC], '%s/%s of node %s'
                                     % (field, verify.SPEC, node.uuid))
        keys = (EXTRA_ARGS,) if field == 'driver_info' else (
            EXTRA_ARGS, KERNEL, INITRD, CMDLINE, verify.ADDRESS)
        for key in keys:
            value = info.get(key)
            if value is not None and not isinstance(value, str):
                raise exception.InvalidParameterValue(
                    '%(field)s/%(key)s of node %(node)s must be a string' %
                    {'field': field, 'key': key, 'node': node.uuid})
    # Ironic's own parser: a dict, or a JSON string (what Nova writes).
    capabilities = deploy_utils.parse_instance_info_capabilities(node)
    if MODE in capabilities:
        check_mode(capabilities[MODE], '%s of node %s (a Nova flavor\'s '
                   '"capabilities:%s" extra spec)'
                   % (SOURCE_CAPABILITY, node.uuid, MODE))
    address = node.instance_info.get(verify.ADDRESS)
    if address and not verify.valid_host(address):
        raise exception.InvalidParameterValue(
            'instance_info/%(key)s of node %(node)s is "%(addr)s", not a '
            'host name or address' % {'key': verify.ADDRESS,
                                      'node': node.uuid, 'addr': address})
    if (node.instance_info.get(INITRD)
            and not node.instance_info.get(KERNEL)):
        raise exception.InvalidParameterValue(
            'instance_info/%(initrd)s of node %(node)s needs '
            'instance_info/%(kernel)s' %
            {'initrd': INITRD, 'kernel': KERNEL, 'node': node.uuid})


def _capability_mode(node):
    """``kexec_mode`` of ``instance_info/capabilities``, or None."""
    try:
        capabilities = deploy_utils.parse_instance_info_capabilities(node)
    except exception.InvalidParameterValue as e:
        # validate() refuses them; a deploy that got past it anyway (the
        # field changed since) does without.
        LOG.warning('Node %(node)s: ignoring instance_info/%(key)s for the '
                    'kexec mode: %(err)s',
                    {'node': node.uuid, 'key': CAPABILITIES, 'err': e})
        return None
    return capabilities.get(MODE)


def _step_mode(node):
    """The mode and source the set_kexec_mode step kept, or (None, None)."""
    value = node.driver_internal_info.get(STEP_MODE)
    if not isinstance(value, dict):
        return None, None
    return value.get('mode'), value.get('source') or 'deploy step ' + STEP


def get_mode_and_source(node):
    """The kexec mode of this deploy, and which setting gave it.

    :returns: (mode, source): one of ``conf.MODES`` (once validated) and
        a short text for the operator, e.g. ``driver_info/kexec_mode``.
    """
    if not CONF.kexec.enabled:
        return kexec_conf.MODE_DISABLED, SOURCE_ENABLED
    mode, source = _step_mode(node)
    if mode:
        return mode, source
    for mode, source in ((node.instance_info.get(MODE), SOURCE_INSTANCE),
                         (_capability_mode(node), SOURCE_CAPABILITY),
                         (node.driver_info.get(MODE), SOURCE_NODE)):
        if mode:
            return mode, source
    return CONF.kexec.default_mode, SOURCE_DEFAULT


def get_mode(node):
    """The kexec mode of this deploy: one of ``conf.MODES``."""
    return get_mode_and_source(node)[0]


def set_step_mode(node, mode, origin=None):
    """Keep the mode the set_kexec_mode step chose, for this deploy only.

    Saves the node.

    :param origin: what named the step, e.g. ``deploy template
        CUSTOM_KEXEC_DISABLED``, for the record's ``mode_source``.
    :returns: the source kept with the mode.
    :raises: InvalidParameterValue if ``mode`` is not one of
        ``conf.MODES``.
    """
    check_mode(mode, 'the "mode" argument of the deploy step %s of node %s'
               % (STEP, node.uuid))
    source = 'deploy step %s' % STEP
    if origin:
        source = '%s (%s)' % (source, origin)
    node.set_driver_internal_info(STEP_MODE, {'mode': mode,
                                              'source': source})
    node.save()
    return source


def clear_step_mode(node):
    """Forget the mode an earlier deploy's step chose. Saves the node."""
    if node.del_driver_internal_info(STEP_MODE) is not None:
        node.save()


def check(task, mode, diskless=False):
    """Raise NotKexec unless this deploy may try kexec.

    :param task: a TaskManager instance.
    :param mode: the result of :func:`get_mode`.
    :param diskless: True for a ``ramdisk-kexec`` deploy.
    :raises: NotKexec with the reason code.
    """
    node = task.node

    def no(reason, message):
        raise errors.NotKexec(reason, message)

    if mode == kexec_conf.MODE_DISABLED:
        no(protocol.REASON_DISABLED, 'kexec mode is "disabled"')
    # Cases where Ironic's own tear down does something special: keep it.
    if not task.driver.storage.should_write_image(task):
        no(protocol.REASON_NOT_APPLICABLE,
           'the node boots from a volume, no image was written')
    if node.disable_power_off:
        no(protocol.REASON_NOT_APPLICABLE,
           'the node has disable_power_off set')
    if strutils.bool_from_string(
            node.driver_info.get('deploy_forces_oob_reboot', False)):
        no(protocol.REASON_NOT_APPLICABLE,
           'driver_info/deploy_forces_oob_reboot is set')
    if (states.POWER_ON
            not in task.driver.power.get_supported_power_states(task)):
        no(protocol.REASON_NOT_APPLICABLE,
           'the power interface cannot power the node on')
    # Whatever the mode: in "required" too, a tenant's OS must never start
    # on the provisioning network.
    if (node.network_interface not in _STATIC_NETWORK_INTERFACES
            and not CONF.kexec.allow_network_isolation):
        no(protocol.REASON_NETWORK_ISOLATION,
           'network interface "%s" switches the node to the tenant network '
           'after the agent is gone, so the instance would start on the '
           'provisioning network; [kexec]allow_network_isolation is False'
           % node.network_interface)
    failures = breaker_failures(node)
    threshold = CONF.kexec.circuit_breaker_threshold
    if threshold and failures >= threshold:
        no(protocol.REASON_CIRCUIT_OPEN,
           'the last %(n)d kexec handoffs on this node failed verification '
           '([kexec]circuit_breaker_threshold is %(t)d); reset with '
           '"%(hint)s"' % {'n': failures, 't': threshold,
                           'hint': reset_hint(node)})
    try:
        denied, _undecided = deny.evaluate(task)
    except deny.InvalidDenyList as e:
        # Fail safe: a deny list that cannot be read may name this node.
        no(protocol.REASON_DENIED, str(e))
    if denied:
        no(protocol.REASON_DENIED, denied)
    if not node.driver_internal_info.get('agent_url'):
        no(protocol.REASON_NO_AGENT, 'no agent URL is known')
    if diskless:
        _check_diskless(task)


def _check_diskless(task):
    node = task.node
    if node.instance_info.get('boot_iso'):
        raise errors.NotKexec(
            protocol.REASON_NOT_APPLICABLE,
            'instance_info/boot_iso is set: an ISO is booted by the '
            'firmware, not by a kernel')
    if not served_over_http(task):
        raise errors.NotKexec(
            protocol.REASON_NOT_APPLICABLE,
            'boot interface "%s" does not serve the instance kernel from '
            '[deploy]http_root' % node.get_interface('boot'))
    if not manager_utils.is_fast_track(task):
        raise errors.NotKexec(
            protocol.REASON_NO_AGENT,
            'no live agent: fast track is off or the agent did not '
            'heartbeat within [deploy]fast_track_timeout')


def served_over_http(task):
    """Whether the agent can fetch the instance kernel by URL.

    Only boot interfaces using iPXE put the instance kernel and ramdisk in
    [deploy]http_root and point the boot configuration at
    [deploy]http_url; the others cache them in the TFTP root or build an
    ISO from them, which the agent cannot fetch by URL.
    """
    return bool(getattr(task.driver.boot, 'ipxe_enabled', False)
                and CONF.deploy.http_url and CONF.deploy.http_root)


def breaker_failures(node):
    """Failed verifications in a row on this node."""
    try:
        return max(0, int(node.driver_info.get(FAILURES) or 0))
    except (TypeError, ValueError, OverflowError):
        return 0


def reset_hint(node):
    """The command that closes the node's circuit breaker."""
    return 'baremetal node unset %s --driver-info %s' % (node.uuid, FAILURES)


def note_verification(node, ok):
    """Count a verification for the circuit breaker; the caller saves.

    :returns: True when this failure opened the breaker.
    """
    failures = 0 if ok else breaker_failures(node) + 1
    info = dict(node.driver_info)
    if failures:
        info[FAILURES] = failures
    else:
        info.pop(FAILURES, None)
    node.driver_info = info
    threshold = CONF.kexec.circuit_breaker_threshold
    return bool(threshold) and failures == threshold


def _joined_extra_args(node):
    parts = [CONF.kexec.extra_args,
             node.driver_info.get(EXTRA_ARGS),
             node.instance_info.get(EXTRA_ARGS)]
    return ' '.join(p.strip() for p in parts if p and p.strip())


def common_load_params(task):
    """The parameters of ``kexec.load`` that do not depend on the source.

    Those of every deploy, with a disk or diskless: this conductor's
    protocol version, the system call, the extra kernel parameters, the
    boot mode and the deny rules that the inspection data could not
    decide.
    """
    node = task.node
    # Always sent: an agent that does not serve this version refuses
    # with protocol_mismatch (one of version 1, which knows no versions,
    # refuses the parameter), see ironic_kexec.protocol.
    params = {protocol.PARAM_PROTOCOL_VERSION: protocol.PROTOCOL_VERSION,
              protocol.PARAM_FILE_SYSCALL: CONF.kexec.file_syscall}
    try:
        _denied, undecided = deny.evaluate(task)
    except deny.InvalidDenyList:
        # check() refused this deploy already; nothing to add.
        undecided = []
    if undecided:
        params[protocol.PARAM_DENY] = undecided
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
    params = common_load_params(task)
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
