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

"""Secure Boot nodes: Ironic's ``pxe`` boot interface, shim and grub.

A node with OVMF Secure Boot and Microsoft's keys boots the way a real
Debian server does: OVMF's own PXE (the NIC has no iPXE ROM; iPXE cannot
chain shim, rhboot/shim#760) fetches ``shimx64.efi`` from QEMU's TFTP,
shim fetches ``grubx64.efi`` (Debian's signed *network* grub) next to it,
and grub reads ``/grub/grub.cfg`` of the TFTP root, its built-in prefix
being ``(tftp,<next-server>)/grub``. Only kernels shim trusts (Debian's)
boot, and the agent's kernel is then locked down (``integrity``).

Ironic's ``pxe`` boot interface, for a node whose boot mode is ``uefi``,
writes into ``[pxe]tftp_root``:

* ``grub/grub.cfg`` from ``[pxe]initial_grub_template``, when the
  conductor starts (``pxe_utils.place_common_config``);
* the files of ``[pxe]loader_file_paths``, when the conductor starts
  (``pxe_utils.place_loaders_for_boot``): here shim, grub and the MOK
  manager, artifacts of the instance image set (:data:`LOADER_IMAGES`);
* per node and deploy: ``<node uuid>/config`` from
  ``[pxe]uefi_pxe_config_template``, ``<node uuid>/deploy_kernel`` and
  ``deploy_ramdisk`` (hard links into ``[pxe]tftp_master_path``), and for
  each port links to the config: ``grub.cfg-01-<mac with dashes>``,
  ``<mac>.conf`` and ``pxelinux.cfg/01-<mac with dashes>``.

Ironic's initial grub template sources ``<tftp_root>/$net_default_mac.conf``,
an absolute path of the conductor's host: real TFTP servers map it back
onto their root (tftpd-hpa's map file); QEMU's TFTP does not. The
testbed's template sources the link relative to the TFTP root instead.
The per-node config names the kernel and ramdisk relative to the TFTP
root already.
"""

import os
import shutil

# The files the node's firmware and shim ask for.
SHIM = 'shimx64.efi'
GRUB = 'grubx64.efi'
MOK_MANAGER = 'mmx64.efi'
LOADERS = (SHIM, GRUB, MOK_MANAGER)
# Where they come from: artifacts of the instance image set
# (testbed.images.INSTANCE), taken from the UEFI root's Debian packages
# by build-instance.sh: shim-signed's shimx64.efi.signed,
# grub-efi-amd64-signed's grubnetx64.efi.signed and
# shim-helpers-amd64-signed's mmx64.efi.signed. {image attribute: name}
LOADER_IMAGES = {'sb_shim': SHIM, 'sb_grub': GRUB,
                 'sb_mokmanager': MOK_MANAGER}
# Debian's grubnetx64 reads $prefix/grub.cfg, prefix (tftp,<server>)/grub.
MASTER_GRUB_CFG = os.path.join('grub', 'grub.cfg')
# QEMU's user network: the TFTP server (and next-server) the guest sees.
TFTP_SERVER = '10.0.2.2'
# The boot interface a Secure Boot node is enrolled with.
BOOT_INTERFACE = 'pxe'

# Rendered by Ironic (jinja2; tftp_root is passed, and not used here).
# $net_default_mac is set by grub's network autoconfiguration from the
# PXE reply, lower case with colons: the <mac>.conf link Ironic writes.
# A path without a device is one on $root, (tftp,<next-server>).
INITIAL_GRUB_TEMPLATE = """\
echo Booting from $prefix
source /$net_default_mac.conf
"""
INITIAL_GRUB_TEMPLATE_NAME = 'initial_grub_cfg.template'


def initial_grub_cfg():
    """What grub/grub.cfg holds once Ironic rendered the template."""
    # No jinja2 syntax in it; jinja2 drops the final newline.
    return INITIAL_GRUB_TEMPLATE.rstrip('\n')


def write_initial_grub_template(directory):
    """Write the testbed's [pxe]initial_grub_template; return its path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, INITIAL_GRUB_TEMPLATE_NAME)
    with open(path, 'w') as f:
        f.write(INITIAL_GRUB_TEMPLATE)
    return path


def loader_paths(images):
    """{file name on the TFTP root: path} of the netboot loaders.

    :param images: a testbed.images.Images, or its paths {attribute: path}.
    """
    paths = images if isinstance(images, dict) else images.paths
    return {name: paths[attr] for attr, name in LOADER_IMAGES.items()}


def loader_file_paths(images):
    """The [pxe]loader_file_paths value for the netboot loaders.

    :param images: a testbed.images.Images, or its paths {attribute: path}.
    """
    loaders = loader_paths(images)
    for path in loaders.values():
        if ',' in path or ':' in path:
            # Ironic's Dict option splits on both.
            raise ValueError('unusable loader path for ironic.conf: %s'
                             % path)
    return ','.join('%s:%s' % item for item in sorted(loaders.items()))


def options(workdir, images, template_path):
    """Ironic options for Secure Boot (UEFI, pxe boot) nodes.

    Merged into :class:`testbed.ironic_service.IronicService`'s options as
    ``extra_options``. The ``ipxe`` interface stays the default for the
    testbed's other nodes; a Secure Boot node is enrolled with
    ``boot_interface=pxe`` and the capability ``boot_mode:uefi``.

    :param workdir: the IronicService's workdir.
    :param images: a testbed.images.Images (or its paths).
    :param template_path: from :func:`write_initial_grub_template`.
    """
    state = os.path.join(workdir, 'state')
    return {
        'DEFAULT': {
            'enabled_boot_interfaces': 'ipxe,pxe',
            'default_boot_interface': 'ipxe',
        },
        'pxe': {
            # Only in DHCP options, which the testbed has none of (QEMU's
            # DHCP names the node's bootfile): kept true to what it boots.
            'uefi_pxe_bootfile_name': SHIM,
            'tftp_server': TFTP_SERVER,
            # Default /tftpboot/master_images: outside the testbed. Must
            # be on tftp_root's file system (hard links).
            'tftp_master_path': os.path.join(state, 'tftp_master_images'),
            'loader_file_paths': loader_file_paths(images),
            'initial_grub_template': template_path,
            # uefi_pxe_config_template: Ironic's pxe_grub_config.template
            # as is (linux/initrd, paths relative to the TFTP root).
        },
    }


def node_boot_fields(service):
    """The NodeSpec fields of a Secure Boot node, {field: value}.

    QEMU's TFTP serves Ironic's tftp_root, and its DHCP names shim as the
    boot file (the NIC must have no iPXE ROM: ``romfile=``).

    :param service: the testbed's IronicService.
    """
    return {'tftp_root': service.options()['pxe']['tftp_root'],
            'bootfile': SHIM}


def prepare_tftp_root(tftp_root, images):
    """Lay out a TFTP root's static files without Ironic.

    What Ironic's conductor itself writes with :func:`options`; for
    booting a node by hand (probes, tests of the chain alone). Returns the
    paths written.
    """
    written = []
    os.makedirs(os.path.join(tftp_root, 'grub'), exist_ok=True)
    for name, path in loader_paths(images).items():
        dest = os.path.join(tftp_root, name)
        shutil.copyfile(path, dest)
        os.chmod(dest, 0o644)
        written.append(dest)
    dest = os.path.join(tftp_root, MASTER_GRUB_CFG)
    with open(dest, 'w') as f:
        f.write(initial_grub_cfg())
    written.append(dest)
    return written
