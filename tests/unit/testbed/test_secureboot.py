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

"""The Secure Boot testbed's Ironic options and TFTP root, checked with
Ironic's own option parsing and the functions its pxe boot interface
runs when the conductor starts."""

import os
import shutil
import tempfile
import unittest

from ironic.common import pxe_utils
from ironic.common import utils as ironic_utils
from ironic.conf import CONF as IRONIC_CONF
from ironic.conf import pxe as ironic_pxe_conf
from oslo_config import cfg
from oslo_config import fixture as cfg_fixture

from testbed import images as tb_images
from testbed import ironic_service
from testbed import node as tb_node
from testbed import scenario
from testbed import secureboot


class SecureBootTestCase(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.loaders = os.path.join(self.dir, 'loaders')
        os.makedirs(self.loaders)
        self.netboot = {}
        for attr, name in secureboot.LOADER_IMAGES.items():
            path = os.path.join(self.loaders, name)
            with open(path, 'wb') as f:
                f.write(name.encode())
            self.netboot[attr] = path
        self.workdir = os.path.join(self.dir, 'ironic')
        self.template = secureboot.write_initial_grub_template(
            os.path.join(self.dir, 'templates'))

    def service(self):
        return ironic_service.IronicService(
            self.workdir, 16385, 18080, 18999, [self.dir],
            extra_options=secureboot.options(self.workdir, self.netboot,
                                             self.template))

    def parsed_pxe_options(self):
        """The written ironic.conf's [pxe], as Ironic's options parse it."""
        svc = self.service()
        svc.write_config()
        conf = cfg.ConfigOpts()
        ironic_pxe_conf.register_opts(conf)
        conf(args=['--config-file', svc.config_file], project='ironic',
             default_config_files=[], default_config_dirs=[])
        return svc, conf.pxe

    def test_options_merge_into_the_service(self):
        svc = self.service()
        opts = svc.options()
        self.assertEqual('ipxe,pxe',
                         opts['DEFAULT']['enabled_boot_interfaces'])
        self.assertEqual('ipxe', opts['DEFAULT']['default_boot_interface'])
        # The service's own [pxe] options stay.
        self.assertEqual(os.path.join(self.workdir, 'tftpboot'),
                         opts['pxe']['tftp_root'])
        self.assertIn('ipa-insecure=1', opts['pxe']['kernel_append_params'])

    def test_ironic_parses_the_options(self):
        svc, pxe = self.parsed_pxe_options()
        self.assertEqual({'shimx64.efi': self.netboot['sb_shim'],
                          'grubx64.efi': self.netboot['sb_grub'],
                          'mmx64.efi': self.netboot['sb_mokmanager']},
                         pxe.loader_file_paths)
        self.assertEqual(self.template, pxe.initial_grub_template)
        self.assertEqual('shimx64.efi', pxe.uefi_pxe_bootfile_name)
        self.assertEqual('10.0.2.2', pxe.tftp_server)
        # Ironic's default would be /tftpboot/master_images, outside the
        # testbed; it must share a file system with tftp_root (links).
        self.assertTrue(pxe.tftp_master_path.startswith(self.workdir + '/'))
        # The per-node grub template stays Ironic's own.
        self.assertNotIn('uefi_pxe_config_template',
                         svc.options()['pxe'])

    def test_node_boot_fields(self):
        self.assertEqual({'tftp_root': os.path.join(self.workdir,
                                                    'tftpboot'),
                          'bootfile': 'shimx64.efi'},
                         secureboot.node_boot_fields(self.service()))

    def test_loader_paths_ironic_cannot_parse(self):
        for bad in ('/a:b/shim', '/a,b/shim'):
            netboot = dict(self.netboot, sb_shim=bad)
            self.assertRaises(ValueError, secureboot.loader_file_paths,
                              netboot)

    def test_conductor_start_lays_out_the_tftp_root(self):
        # What the pxe boot interface's __init__ does, with the options.
        tftp_root = os.path.join(self.dir, 'tftpboot')
        http_root = os.path.join(self.dir, 'httpboot')
        fixture = cfg_fixture.Config(IRONIC_CONF)
        fixture.setUp()
        self.addCleanup(fixture.cleanUp)
        pxe = secureboot.options(self.workdir, self.netboot,
                                 self.template)['pxe']
        fixture.config(group='pxe', tftp_root=tftp_root,
                       initial_grub_template=pxe['initial_grub_template'],
                       loader_file_paths={
                           n: p for n, p in (
                               e.split(':') for e in
                               pxe['loader_file_paths'].split(','))})
        fixture.config(group='deploy', http_root=http_root)
        pxe_utils.place_common_config()
        pxe_utils.place_loaders_for_boot(tftp_root)
        with open(os.path.join(tftp_root, 'grub', 'grub.cfg')) as f:
            self.assertEqual(secureboot.initial_grub_cfg(), f.read())
        for name in secureboot.LOADERS:
            with open(os.path.join(tftp_root, name), 'rb') as f:
                self.assertEqual(name.encode(), f.read())
        # prepare_tftp_root gives the same tree without Ironic.
        manual = os.path.join(self.dir, 'manual')
        secureboot.prepare_tftp_root(manual, self.netboot)
        for rel in secureboot.LOADERS + (secureboot.MASTER_GRUB_CFG,):
            with open(os.path.join(manual, rel), 'rb') as a, \
                    open(os.path.join(tftp_root, rel), 'rb') as b:
                self.assertEqual(b.read(), a.read(), rel)

    def test_initial_grub_cfg_needs_no_host_path(self):
        # QEMU's TFTP serves paths relative to its root only: the master
        # config must not name the conductor's tftp_root (Ironic's default
        # template does).
        rendered = ironic_utils.render_template(
            self.template, {'tftp_root': '/some/host/tftpboot'})
        self.assertEqual(secureboot.initial_grub_cfg(), rendered)
        self.assertNotIn('/some/host', rendered)
        self.assertIn('source /$net_default_mac.conf', rendered)

    def test_mac_link_name_matches_grub_variable(self):
        # Ironic links <mac>.conf; grub's $net_default_mac is lower case
        # with colons: the same name for the testbed's MAC.
        paths = list(pxe_utils._get_pxe_grub_mac_path('52:54:00:12:34:56'))
        self.assertIn(os.path.join(IRONIC_CONF.pxe.tftp_root,
                                   '52:54:00:12:34:56.conf'), paths)

    def test_loaders_are_instance_artifacts(self):
        # Built with the instance images, from the UEFI root's packages:
        # no image set of their own, no host apt.
        for attr in secureboot.LOADER_IMAGES:
            self.assertIn(attr, tb_images.INSTANCE.artifacts)
        self.assertIn('uefi_unsigned_disk', tb_images.INSTANCE.artifacts)
        self.assertFalse(os.path.exists(os.path.join(
            tb_images.SCRIPTS, 'build-sb-netboot.sh')))
        self.assertEqual(
            self.netboot['sb_shim'],
            secureboot.loader_paths(tb_images.Images(self.netboot, {}))[
                secureboot.SHIM])

    def test_uefi_root_has_the_loader_packages(self):
        with open(os.path.join(tb_images.SCRIPTS,
                               'instance-uefi-packages.txt')) as f:
            packages = {line.strip() for line in f
                        if line.strip() and not line.startswith('#')}
        self.assertLessEqual({'shim-signed', 'grub-efi-amd64-signed',
                              'shim-helpers-amd64-signed'}, packages)


class TestbedBootInterfaceTestCase(unittest.TestCase):

    def test_default_is_ipxe(self):
        tb = scenario.Testbed('/tmp/x', images=None)
        self.assertEqual('ipxe', tb.boot_interface)

    def test_pxe_on_secure_boot_node(self):
        tb = scenario.Testbed('/tmp/x', images=None,
                              firmware=tb_node.FIRMWARE_UEFI_SECUREBOOT,
                              boot_interface='pxe')
        self.assertEqual('pxe', tb.boot_interface)
        self.assertEqual('uefi', tb.boot_mode)

    def test_unknown_boot_interface(self):
        self.assertRaises(ValueError, scenario.Testbed, '/tmp/x', None,
                          boot_interface='http')


if __name__ == '__main__':
    unittest.main()
