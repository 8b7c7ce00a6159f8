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

"""The ``[kexec]`` options of the conductor side."""

from ironic.conf import CONF
from oslo_config import cfg

from ironic_kexec import protocol

GROUP = 'kexec'

MODE_DISABLED = 'disabled'
MODE_AUTO = 'auto'
MODE_REQUIRED = 'required'
MODES = (MODE_DISABLED, MODE_AUTO, MODE_REQUIRED)

opts = [
    cfg.BoolOpt('enabled',
                default=True,
                mutable=True,
                help='Global switch. When False, no node is ever booted '
                     'with kexec, whatever its driver_info or instance_info '
                     'say (even "required"); every deploy ends with the '
                     'usual power cycle. Meant as an emergency stop.'),
    cfg.StrOpt('default_mode',
               default=MODE_AUTO,
               choices=[
                   (MODE_DISABLED, 'Never kexec; always power cycle.'),
                   (MODE_AUTO, 'Kexec when possible, otherwise fall back '
                               'to the power cycle and record why.'),
                   (MODE_REQUIRED, 'Kexec or fail the deploy with the '
                                   'reason in last_error.'),
               ],
               mutable=True,
               help='Mode of the deploys that get none from elsewhere. '
                    'Most specific first, these override it: the '
                    'set_kexec_mode deploy step of a deploy template, '
                    'instance_info "kexec_mode", "kexec_mode" in '
                    'instance_info "capabilities" (a Nova flavor\'s '
                    '"capabilities:kexec_mode"), the node\'s driver_info '
                    '"kexec_mode".'),
    cfg.StrOpt('extra_args',
               default='',
               mutable=True,
               help='Kernel parameters appended to the command line the '
                    'agent found for the deployed kernel, for every node. '
                    'The node\'s driver_info "kexec_extra_args" and then '
                    'the deploy\'s instance_info "kexec_extra_args" are '
                    'appended after these, so that the more specific value '
                    'wins for parameters where the kernel honours the last '
                    'occurrence.'),
    cfg.StrOpt('file_syscall',
               default=protocol.FILE_SYSCALL_AUTO,
               choices=[
                   (protocol.FILE_SYSCALL_AUTO,
                    'Use kexec_file_load(2) when the agent kernel demands '
                    'signed kernels (lockdown, Secure Boot), kexec_load(2) '
                    'otherwise.'),
                   (protocol.FILE_SYSCALL_ALWAYS,
                    'Always use kexec_file_load(2).'),
                   (protocol.FILE_SYSCALL_NEVER,
                    'Always use kexec_load(2).'),
               ],
               mutable=True,
               help='Which system call the agent uses to load the instance '
                    'kernel.'),
    cfg.IntOpt('load_timeout',
               default=180,
               min=1,
               mutable=True,
               help='Seconds the agent may take to find and load the '
                    'instance kernel (kexec.load) before the conductor '
                    'gives up and falls back to a power cycle (reason '
                    '"timeout", or "agent_unreachable" when the agent '
                    'stopped answering). It bounds the whole command: '
                    'the request, Ironic\'s retries and the polling.'),
    cfg.FloatOpt('load_poll_interval',
                 default=0.2,
                 min=0,
                 mutable=True,
                 help='Seconds between two status requests while waiting '
                      'for kexec.load to finish. It is on the critical '
                      'path of every deploy, keep it small.'),
    cfg.FloatOpt('execute_delay',
                 default=0.2,
                 min=0,
                 max=300,
                 mutable=True,
                 help='Seconds the agent waits after answering '
                      'kexec.execute before it kexecs, so that its answer '
                      'reaches the conductor. It is on the critical path '
                      'of every deploy. An answer lost to a too short '
                      'delay costs nothing but a warning: the conductor '
                      'then only trusts the agent\'s silence.'),
    cfg.IntOpt('agent_gone_timeout',
               default=30,
               min=1,
               mutable=True,
               help='Seconds to wait for the agent to stop answering, '
                    'counted from the end of its execute_delay. If it '
                    'still answers after that, kexec did not happen: the '
                    'node is powered off through its BMC and the deploy '
                    'continues with the usual power on (reason '
                    '"execute_failed").'),
    cfg.FloatOpt('agent_gone_interval',
                 default=0.5,
                 min=0,
                 mutable=True,
                 help='Seconds between two probes of the agent while waiting '
                      'for it to stop answering. It is on the critical path '
                      'of every deploy, keep it small.'),
    cfg.BoolOpt('allow_network_isolation',
                default=False,
                mutable=True,
                help='Kexec is refused (reason "network_isolation") for '
                     'nodes whose network interface moves them from the '
                     'provisioning network to the tenant network after the '
                     'agent is torn down (any network interface but "flat" '
                     'and "noop"): with kexec the tenant\'s OS would start '
                     'on the provisioning network. In "auto" mode the node '
                     'is power cycled instead, in "required" mode the '
                     'deploy fails. Set to True only when the switch '
                     'happens before the instance uses its network and the '
                     'instance copes with the change, e.g. it waits for '
                     'its link or retries DHCP.'),
    cfg.StrOpt('verify',
               default='tcp:22',
               mutable=True,
               help='How the conductor checks that the instance came up '
                    'after a kexec: "none", "tcp:PORT" or "tcp:HOST:PORT" '
                    '(the instance accepts a TCP connection), or '
                    '"banner:PORT" / "banner:HOST:PORT" (it also sends '
                    'at least one byte, as SSH does; for networks where '
                    'something accepts connections on the instance\'s '
                    'behalf, such as NAT proxies). Without a HOST the '
                    'address comes from instance_info/kexec_verify_address, '
                    'then from the fixed IPs of the node\'s tenant VIFs in '
                    'Neutron; with none known the handoff is recorded as '
                    '"unknown", never failed. driver_info/kexec_verify and '
                    'then instance_info/kexec_verify override this.'),
    cfg.IntOpt('verify_timeout',
               default=600,
               min=1,
               mutable=True,
               help='Seconds from the kexec until the instance must answer '
                    'the verification. After that the node is power cycled '
                    'through its BMC (reason "not_verified") and its boot '
                    'is checked again for as long. Both waits together '
                    'must stay below [conductor]deploy_callback_timeout.'),
    cfg.IntOpt('verify_interval',
               default=5,
               min=1,
               help='Seconds between two checks of the nodes whose kexec '
                    'handoff is being verified (a periodic task of each '
                    'conductor; no worker waits in between). Read at '
                    'start.'),
    cfg.FloatOpt('verify_probe_timeout',
                 default=2.0,
                 min=0.1,
                 max=30,
                 mutable=True,
                 help='Seconds one verification probe waits for a '
                      'connection (and for "banner:", its first byte). All '
                      'pending nodes are probed at once.'),
    cfg.IntOpt('circuit_breaker_threshold',
               default=3,
               min=0,
               mutable=True,
               help='After this many kexec handoffs in a row that failed '
                    'verification on a node, the node stops using kexec '
                    '(reason "circuit_open") until an operator resets its '
                    'count: baremetal node unset NODE --driver-info '
                    'kexec_failures. 0 never stops.'),
    cfg.StrOpt('deny_list',
               default='',
               mutable=True,
               help='Path of a JSON file with a list of hardware deny '
                    'rules: hardware known not to survive kexec. A node '
                    'matching one is power cycled instead (reason '
                    '"denied"). Rules are matched against the node\'s '
                    'inspection data on the conductor and against the '
                    'running hardware in the agent. Empty: no rules.'),
]


def register_opts(conf):
    conf.register_opts(opts, group=GROUP)


def list_opts():
    """Options for the ``oslo.config.opts`` entry point."""
    return [(GROUP, opts)]


register_opts(CONF)
