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

"""A standalone Ironic for the testbed: one ``ironic`` process, sqlite.

No keystone, no RPC bus, no DHCP server: the node gets its boot file from
QEMU's own DHCP (see :func:`testbed.node.netdev`), and Ironic's ``ipxe``
boot interface writes ``boot.ipxe`` into the http_root the testbed serves.
The Ironic run is the one installed next to the running Python, so the
plugin under test must be installed in that same environment.
"""

import configparser
import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.request

from testbed import node as tb_node


def _bin(name):
    return os.path.join(os.path.dirname(sys.executable), name)


def has_module(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def hardware_type():
    """ipmi-kexec, or the stock ipmi while the plugin lacks its types."""
    return 'ipmi-kexec' if has_module('ironic_kexec.hardware') else 'ipmi'


def deploy_interfaces():
    """The deploy interfaces to enable: what the plugin installed offers."""
    names = ['direct']
    if has_module('ironic_kexec.deploy'):
        names.append('kexec')
    if has_module('ironic_kexec.ramdisk_deploy'):
        names += ['ramdisk', 'ramdisk-kexec']
    return names


def interface_options():
    """[DEFAULT]'s interface options of every Ironic the testbeds run.

    What the ipmi-kexec nodes use (ipmitool, ipxe, noop network) and
    nothing else: no inspection, console, vendor, RAID, BIOS, rescue or
    firmware interface.
    """
    return {
        'enabled_deploy_interfaces': ','.join(deploy_interfaces()),
        'default_deploy_interface': 'direct',
        'enabled_boot_interfaces': 'ipxe',
        'enabled_network_interfaces': 'noop',
        'enabled_power_interfaces': 'ipmitool',
        'enabled_management_interfaces': 'ipmitool',
        'enabled_inspect_interfaces': 'no-inspect',
        'enabled_console_interfaces': 'no-console',
        'enabled_vendor_interfaces': 'no-vendor',
        'enabled_raid_interfaces': 'no-raid',
        'enabled_bios_interfaces': 'no-bios',
        'enabled_rescue_interfaces': 'no-rescue',
        'enabled_firmware_interfaces': 'no-firmware',
        'enabled_storage_interfaces': 'noop',
    }


class IronicService(object):
    """Configures, starts and stops one standalone Ironic.

    :param workdir: where the configuration, database, state and log go.
    :param api_port: the API's port on 127.0.0.1.
    :param http_port: the testbed HTTP server's port (serves http_root).
    :param agent_port: 127.0.0.1 port forwarded to the agent's 9999.
    :param allowed_paths: directories file:// image URLs may point into.
    :param kexec_options: the ``[kexec]`` options of the plugin.
    """

    def __init__(self, workdir, api_port, http_port, agent_port,
                 allowed_paths, kexec_options=None, extra_options=None):
        self.workdir = os.path.abspath(workdir)
        self.api_port = api_port
        self.http_port = http_port
        self.agent_port = agent_port
        self.allowed_paths = [os.path.abspath(p) for p in allowed_paths]
        self.kexec_options = dict(kexec_options or {})
        self.extra_options = extra_options or {}
        self.config_file = os.path.join(self.workdir, 'ironic.conf')
        self.log_file = os.path.join(self.workdir, 'ironic.log')
        self.http_root = os.path.join(self.workdir, 'httpboot')
        self.process = None

    @property
    def url(self):
        return 'http://127.0.0.1:%d' % self.api_port

    def options(self):
        """The ironic.conf contents, as {section: {option: value}}."""
        guest_api = 'http://%s:%d' % (tb_node.HOST_ALIAS,
                                      tb_node.API_GUEST_PORT)
        guest_http = 'http://%s:%d' % (tb_node.HOST_ALIAS, self.http_port)
        state = os.path.join(self.workdir, 'state')
        append = ' '.join([
            'nofb', 'console=ttyS0,115200',
            'ipa-advertise-host=127.0.0.1',
            'ipa-advertise-port=%d' % self.agent_port,
            'ipa-insecure=1',
        ])
        opts = {
            'DEFAULT': {
                'auth_strategy': 'noauth',
                'rpc_transport': 'none',
                'host': 'testbed',
                'debug': 'True',
                'log_file': self.log_file,
                'use_stderr': 'False',
                'state_path': state,
                'enabled_hardware_types': hardware_type(),
                **interface_options(),
            },
            'api': {
                'host_ip': '127.0.0.1',
                'port': str(self.api_port),
            },
            'database': {
                'connection': 'sqlite:///%s' % os.path.join(
                    self.workdir, 'ironic.sqlite'),
            },
            'dhcp': {'dhcp_provider': 'none'},
            'service_catalog': {
                'auth_type': 'none',
                'endpoint_override': guest_api,
            },
            'oslo_concurrency': {
                'lock_path': os.path.join(self.workdir, 'locks'),
            },
            'conductor': {
                'automated_clean': 'False',
                'file_url_allowed_paths': ','.join(self.allowed_paths),
                # Under TCG the agent needs about a minute to come up.
                'deploy_callback_timeout': '900',
                'check_provision_state_interval': '10',
                'heartbeat_interval': '5',
                'sync_power_state_interval': '60',
            },
            'deploy': {
                'http_url': guest_http,
                'http_root': self.http_root,
                # SeaBIOS: the node boots in legacy BIOS mode.
                'default_boot_mode': 'bios',
                'fast_track': 'False',
                'erase_devices_priority': '0',
                'erase_devices_metadata_priority': '0',
            },
            'agent': {
                'image_download_source': 'http',
                'deploy_logs_collect': 'never',
                'command_timeout': '120',
                # The node boots in legacy BIOS mode, so a partition image
                # needs grub-install, which the agent refuses unless the
                # conductor allows it (CVE-2026-43003 mitigation).
                'enable_bios_bootloader_install': 'True',
            },
            'pxe': {
                'tftp_root': os.path.join(self.workdir, 'tftpboot'),
                'kernel_append_params': append,
                'images_path': os.path.join(state, 'images'),
                'instance_master_path': os.path.join(state,
                                                     'master_images'),
            },
            'ipmi': {
                # The virtual BMC answers at once; Ironic's default of 5 s
                # between commands only models slow real BMCs.
                'min_command_interval': '1',
            },
            'kexec': self.kexec_options,
        }
        for section, values in self.extra_options.items():
            opts.setdefault(section, {}).update(values)
        return opts

    def write_config(self):
        for sub in ('locks', 'httpboot', 'tftpboot', 'state'):
            os.makedirs(os.path.join(self.workdir, sub), exist_ok=True)
        parser = configparser.RawConfigParser()
        parser.optionxform = str
        for section, values in self.options().items():
            if section != 'DEFAULT':
                parser.add_section(section)
            for key, value in values.items():
                parser.set(section, key, str(value))
        with open(self.config_file, 'w') as f:
            parser.write(f)

    def start(self, timeout=120):
        """Create the schema, start Ironic and wait for its API."""
        self.write_config()
        db = os.path.join(self.workdir, 'ironic.sqlite')
        if not os.path.exists(db):
            with open(os.path.join(self.workdir, 'dbsync.log'), 'w') as out:
                subprocess.run([_bin('ironic-dbsync'), '--config-file',
                                self.config_file, 'create_schema'],
                               stdout=out, stderr=subprocess.STDOUT,
                               check=True, timeout=300)
        out = open(os.path.join(self.workdir, 'ironic.out'), 'a')
        env = dict(os.environ)
        # The conductor checks the image URLs it gives the agent; they name
        # the guest's address of the HTTP server, which only the guest can
        # reach. The testbed's HTTP server doubles as a proxy for exactly
        # that address (see testbed.httpd), on loopback.
        proxy = 'http://127.0.0.1:%d' % self.http_port
        for var in ('http_proxy', 'HTTP_PROXY'):
            env[var] = proxy
        for var in ('https_proxy', 'HTTPS_PROXY'):
            env.pop(var, None)
        env['no_proxy'] = env['NO_PROXY'] = '127.0.0.1,localhost'
        env.pop('OS_AUTH_TYPE', None)
        self.process = subprocess.Popen(
            [_bin('ironic'), '--config-file', self.config_file],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=env, start_new_session=True)
        out.close()
        self.wait_for_api(timeout)

    def wait_for_api(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError('ironic exited with %s:\n%s' % (
                    self.process.returncode, self.log_tail()))
            try:
                with urllib.request.urlopen(self.url + '/v1/drivers',
                                            timeout=5) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(1)
        raise TimeoutError('Ironic API not up in %ss:\n%s' % (
            timeout, self.log_tail()))

    def stop(self, timeout=60):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    def log_tail(self, lines=60):
        return (tb_node.tail(os.path.join(self.workdir, 'ironic.out'), 20)
                + tb_node.tail(self.log_file, lines))
