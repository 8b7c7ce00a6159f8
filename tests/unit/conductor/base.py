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

"""A real Ironic database, real nodes of the kexec hardware types, and a
fake agent and BMC in place of the hardware.
"""

import json
from unittest import mock

from ironic.common import driver_factory
from ironic.common import states
from ironic.drivers.modules import ipmitool
from ironic.tests.unit.db import base as db_base
from ironic.tests.unit.objects import utils as obj_utils
import requests

# Imported here, not at the first stevedore load inside a test, where
# the import would run a subprocess (ifaddr's find_library) that Ironic's
# test base forbids.
from ironic_kexec import hardware  # noqa: F401
from tests.unit.conductor import fakes

AGENT_URL = 'http://127.0.0.1:9999'
ROOT_UUID = 'e0a9f9a4-8d8b-4b8e-9d0a-6b4f1e2c3d4e'
GLANCE_IMAGE = '9c1f7d2e-3b4a-4c5d-8e6f-7a8b9c0d1e2f'


def nova_instance_info(capabilities=None, traits=None):
    """instance_info exactly as Nova's Ironic driver writes it.

    The JSON patch of ``GenericDriverFields.get_deploy_patch`` in
    ``nova/virt/ironic/patcher.py`` (openstack/nova master, commit
    93b90d2b6a58df26f6fbf0ff0fe20cf37fcbf8af), applied by Ironic's API:
    numbers as strings; the flavor's ``capabilities:KEY=VALUE`` extra specs
    as ONE JSON string (``jsonutils.dumps(capabilities)``, "to maintain
    the backward compatibility with Juno", says Ironic's parser); the
    flavor's ``trait:NAME=required`` extra specs and the image's required
    traits as a list ("Don't JSON encode the traits list - ironic expects
    instance_info.traits to be a list"). Either key is only there when the
    flavor has some.

    :param capabilities: the flavor's capabilities, {key: value}.
    :param traits: the flavor's (and image's) required traits, a list.
    """
    info = {'image_source': GLANCE_IMAGE,
            'root_gb': '10',
            'swap_mb': '0',
            'display_name': 'server-1',
            'vcpus': '8',
            'nova_host_id': 'nova-compute-1',
            'memory_mb': '16384',
            'local_gb': '100',
            'project_id': 'c6d2e1b0a9f84e7d8c6b5a4f3e2d1c0b',
            'project_name': 'demo',
            'user_id': '0f1e2d3c4b5a69788796a5b4c3d2e1f0',
            'user_name': 'demo',
            'flavor_name': 'baremetal.kexec',
            'fixed_ips': "[{'address': '192.0.2.10', 'version': 4}]",
            'floating_ips': '[]'}
    if capabilities:
        info['capabilities'] = json.dumps(capabilities)
    if traits:
        info['traits'] = list(traits)
    return info


class KexecTestCase(db_base.DbTestCase):

    def setUp(self):
        super().setUp()
        self.config(enabled_hardware_types=['ipmi-kexec', 'redfish-kexec',
                                            'ipmi', 'fake-hardware'])
        self.config(enabled_deploy_interfaces=['direct', 'kexec'])
        self.config(enabled_power_interfaces=['ipmitool', 'redfish',
                                              'fake'])
        self.config(enabled_management_interfaces=['ipmitool', 'redfish',
                                                   'fake'])
        self.config(dhcp_provider='none', group='dhcp')
        self.config(post_deploy_get_power_state_retry_interval=0,
                    group='agent')
        self.config(deploy_logs_collect='never', group='agent')
        self.config(load_poll_interval=0, agent_gone_interval=0,
                    execute_delay=0.05, group='kexec')

        self.bmc = fakes.FakeBMC()
        for name in ('get_power_state', 'set_power_state', 'reboot'):
            patcher = mock.patch.object(ipmitool.IPMIPower, name,
                                        autospec=True,
                                        side_effect=getattr(self.bmc, name))
            patcher.start()
            self.addCleanup(patcher.stop)
        self.agent = fakes.FakeAgent(self.bmc)
        patcher = mock.patch.object(requests, 'Session',
                                    return_value=self.agent)
        patcher.start()
        self.addCleanup(patcher.stop)

    def create_node(self, **kwargs):
        internal = {'agent_url': AGENT_URL,
                    'agent_secret_token': 'magic-token',
                    'agent_cached_deploy_steps': {'deploy': []},
                    'is_whole_disk_image': False,
                    'root_uuid_or_disk_id': ROOT_UUID}
        internal.update(kwargs.pop('driver_internal_info', {}))
        values = {'driver': 'ipmi-kexec',
                  'deploy_interface': 'kexec',
                  'network_interface': 'noop',
                  'storage_interface': 'noop',
                  'provision_state': states.DEPLOYING,
                  'target_provision_state': states.ACTIVE,
                  'power_state': states.POWER_ON,
                  'instance_info': {'image_source': 'http://127.0.0.1/img',
                                    'image_checksum': 'a' * 32,
                                    'root_gb': 10},
                  'driver_info': {'ipmi_address': '127.0.0.1',
                                  'deploy_kernel': 'http://127.0.0.1/k',
                                  'deploy_ramdisk': 'http://127.0.0.1/r'},
                  'driver_internal_info': internal}
        values.update(kwargs)
        node = obj_utils.get_test_node(self.context, **values)
        # Fill the interfaces the node did not name as the API would.
        driver_factory.check_and_update_node_interfaces(node)
        node.create()
        return node
