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

"""Hardware types that accept the kexec deploy interfaces.

Ironic accepts a deploy interface for a node only if its exact class is in
the hardware type's ``supported_deploy_interfaces``, so the stock ``ipmi``
and ``redfish`` types cannot take an out-of-tree interface: these are the
same types with the kexec interfaces added.
"""
from ironic.drivers import ipmi
from ironic.drivers import redfish

from ironic_kexec import deploy
from ironic_kexec import ramdisk_deploy

# The disk deploy with kexec comes before the stock interfaces, so that a
# node of these types without an explicit deploy_interface (and no
# [DEFAULT]default_deploy_interface) gets it when it is enabled: choosing
# the type is choosing kexec, and its "auto" mode falls back to the stock
# power cycle, so this default cannot make a deploy fail that "direct"
# would have completed. The diskless one comes last: it needs a ramdisk
# instance, so it must never become the default of a node that did not
# ask for it.
PREFERRED_DEPLOY_INTERFACES = [deploy.KexecDeploy]
EXTRA_DEPLOY_INTERFACES = [ramdisk_deploy.RamdiskKexecDeploy]
KEXEC_DEPLOY_INTERFACES = PREFERRED_DEPLOY_INTERFACES + EXTRA_DEPLOY_INTERFACES


class KexecDeployMixin(object):
    """Adds the kexec deploy interfaces to a stock hardware type."""

    @property
    def supported_deploy_interfaces(self):
        """List of supported deploy interfaces."""
        stock = [iface for iface in super().supported_deploy_interfaces
                 if iface not in KEXEC_DEPLOY_INTERFACES]
        return (PREFERRED_DEPLOY_INTERFACES + stock
                + EXTRA_DEPLOY_INTERFACES)


class IPMIKexecHardware(KexecDeployMixin, ipmi.IPMIHardware):
    """IPMI hardware type with the kexec deploy interfaces."""


class RedfishKexecHardware(KexecDeployMixin, redfish.RedfishHardware):
    """Redfish hardware type with the kexec deploy interfaces."""
