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

"""Make Ironic's boot interfaces treat ``ramdisk-kexec`` as a ramdisk deploy.

Ironic's boot interfaces choose between booting the instance's own kernel
and ramdisk from the network ("ramdisk") and booting the local disk
("local") with ``deploy_utils.get_boot_option(node)``, which asks
``deploy_utils.is_ramdisk_deploy(node)``, which compares the NAME of the
node's deploy interface with ``'ramdisk'`` (upstream marks this with a
FIXME as an anti-pattern). A deploy interface with any other name is
therefore booted from the local disk, whatever its class.

:func:`install` extends that one function, once: it answers True for
:data:`RAMDISK_KEXEC_NAMES` and delegates every other name to the original,
so nodes of any other deploy interface see no change. It is called when
``ironic_kexec.ramdisk_deploy`` is imported, i.e. when a conductor loads
the interface or the ``*-kexec`` hardware types that list it.

Alternatives considered:

* subclassing every boot interface (pxe, ipxe, http, redfish virtual
  media, ...) to override their boot option: far broader, and it would
  still miss Ironic's helpers (``pxe_utils``, ``image_utils``,
  ``deploy_utils`` itself) that call ``get_boot_option`` directly;
* renaming the node's deploy interface to ``ramdisk`` in memory while the
  boot interface runs: the boot interfaces save the node, so the fake name
  could be written to the database;
* the proper fix, upstream: let the deploy interface declare the boot
  option it needs (the FIXME above ``is_ramdisk_deploy``). Once Ironic
  has that, this module goes away.

Every caller in Ironic 39 looks ``is_ramdisk_deploy`` up on the
``deploy_utils`` module at call time (``get_boot_option`` uses the module
global), so replacing the module attribute reaches all of them.
"""

from ironic.drivers.modules import deploy_utils
from oslo_log import log

LOG = log.getLogger(__name__)

# Entry point names of the deploy interfaces that boot like "ramdisk".
RAMDISK_KEXEC_NAMES = frozenset(['ramdisk-kexec'])

# Marks our wrapper and keeps the function it delegates to.
_ORIGINAL = '_ironic_kexec_original'


def install():
    """Extend ``deploy_utils.is_ramdisk_deploy``; idempotent."""
    current = deploy_utils.is_ramdisk_deploy
    if getattr(current, _ORIGINAL, None) is not None:
        return

    def is_ramdisk_deploy(node):
        if node.get_interface('deploy') in RAMDISK_KEXEC_NAMES:
            return True
        return current(node)

    is_ramdisk_deploy.__doc__ = current.__doc__
    setattr(is_ramdisk_deploy, _ORIGINAL, current)
    deploy_utils.is_ramdisk_deploy = is_ramdisk_deploy
    LOG.debug('deploy_utils.is_ramdisk_deploy extended for %s',
              ', '.join(sorted(RAMDISK_KEXEC_NAMES)))


def installed():
    """Whether :func:`install` has run in this process."""
    return getattr(deploy_utils.is_ramdisk_deploy, _ORIGINAL,
                   None) is not None


def original():
    """Ironic's own ``is_ramdisk_deploy``, installed or not."""
    return getattr(deploy_utils.is_ramdisk_deploy, _ORIGINAL,
                   deploy_utils.is_ramdisk_deploy)
