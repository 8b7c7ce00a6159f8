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

"""One testbed (HTTP server, virtual BMC + QEMU node, Ironic) and deploys.

The node is enrolled and deployed with the real ``baremetal`` client, as
an operator would; only the polling of the provision state goes to the
REST API directly, because it runs every second.

Usage::

    with Testbed(workdir, images) as tb:
        result = tb.deploy('whole_disk', deploy_interface='kexec')
        print(timeline.format_side_by_side([result]))
        tb.undeploy()
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import testbed
from testbed import bmc as tb_bmc
from testbed import httpd
from testbed import ironic_service
from testbed import node as tb_node
from testbed import secureboot
from testbed import statsd_sink
from testbed import timeline

NODE_NAME = 'testbed-node'
NODE_MAC = '52:54:00:6b:78:01'
DISK_SIZE = 4 * 1024 ** 3
IPMI_USER = 'admin'
IPMI_PASSWORD = 'password'
DEPLOY_TIMEOUT = 1200
UNDEPLOY_TIMEOUT = 300
# How long an active instance may take to answer on its port.
USABLE_TIMEOUT = 300

# Images of a whole disk versus a root filesystem (partition deploy).
WHOLE_DISK_IMAGES = ('whole_disk', 'no_kernel_disk', 'uefi_whole_disk',
                     'uefi_unsigned_disk')
PARTITION_IMAGES = ('partition',)
# A diskless instance: its kernel and initramfs, booted by the ramdisk
# deploy interfaces.
DISKLESS_IMAGES = ('diskless',)
# How long ``provide`` may take: with automated cleaning it boots the
# agent, about a minute under TCG, more on a busy machine.
PROVIDE_TIMEOUT = 120

# Ironic options that leave a live agent on the node, for the diskless
# kexec path: cleaning boots the agent and runs nothing (the only agent
# clean steps with a non-zero priority by default are the erase ones of
# IPA's GenericHardwareManager; the RAID ones are pinned to 0 too), and
# fast track keeps the agent running for the next deploy.
FAST_TRACK_CLEANING = {
    'conductor': {'automated_clean': 'True'},
    'deploy': {
        'fast_track': 'True',
        # Ironic's maximum, and its [api]ramdisk_heartbeat_timeout
        # default: the agent heartbeats well within it.
        'fast_track_timeout': '300',
        'erase_devices_priority': '0',
        'erase_devices_metadata_priority': '0',
        'delete_configuration_priority': '0',
        'create_configuration_priority': '0',
    },
}
# The handoff's verification on the testbed: a kexec'd instance answers
# about 40 s after the kexec under TCG, a power-cycled one about 50 s
# after the power on (more on a busy machine); the periodic check runs
# often, so that "active" follows the answer closely. A booting guest
# under TCG on a busy machine may take seconds to answer a connection:
# one probe waits longer than on a real network.
VERIFY_OPTIONS = {'verify_timeout': '180', 'verify_interval': '2',
                  'verify_probe_timeout': '5'}

# ``provide`` with cleaning boots the agent (and so does every undeploy):
# about a minute under TCG, more on a busy machine.
CLEANING_PROVIDE_TIMEOUT = 900


class DeployFailed(Exception):
    pass


def file_url(path):
    return 'file://' + os.path.abspath(path)


class Testbed(object):
    """All services of one testbed, started in order, stopped in reverse.

    :param workdir: logs, configuration and the node's disk go here; the
        logs are the artifacts of a run.
    :param images: what :func:`testbed.images.ensure_images` returns.
    :param post_delay: seconds the virtual BMC holds a powered-on node
        before it runs (emulated power-on self-test).
    :param kexec_options: the plugin's ``[kexec]`` options for Ironic.
    :param ironic_options: more ironic.conf options, {section: {name:
        value}}, over the testbed's own (e.g. fast track, cleaning).
    :param provide_timeout: seconds ``provide`` may take at enrolment.
    :param extra_image_dirs: more directories whose files Ironic may be
        given as file:// URLs (e.g. the fault harness's image variants).
    :param firmware: the node's firmware, one of testbed.node.FIRMWARES.
    :param boot_mode: the node's boot_mode capability in Ironic; default
        ``uefi`` for a UEFI node, ``bios`` otherwise. Ironic's ipxe boot
        interface and ipmitool management follow it (the EFI boot flag).
    :param boot_interface: Ironic's boot interface for the node: ``ipxe``
        (default; iPXE over HTTP) or ``pxe``, the Secure Boot chain of a
        UEFI node (testbed.secureboot): OVMF's own PXE loads shim, then
        Debian's signed network GRUB, from QEMU's TFTP serving Ironic's
        ``[pxe]tftp_root``; the NIC has no iPXE ROM.
    """

    def __init__(self, workdir, images, post_delay=0.0, kexec_options=None,
                 ironic_options=None, provide_timeout=PROVIDE_TIMEOUT,
                 extra_image_dirs=(), firmware=tb_node.FIRMWARE_BIOS,
                 boot_mode=None, boot_interface='ipxe'):
        if firmware not in tb_node.FIRMWARES:
            raise ValueError('unknown firmware %r' % firmware)
        if boot_interface not in ('ipxe', secureboot.BOOT_INTERFACE):
            raise ValueError('unknown boot interface %r' % boot_interface)
        self.boot_interface = boot_interface
        self.firmware = firmware
        self.boot_mode = boot_mode or (
            'bios' if firmware == tb_node.FIRMWARE_BIOS else 'uefi')
        self.workdir = os.path.abspath(workdir)
        self.images = images
        self.extra_image_dirs = [os.path.abspath(d) for d in extra_image_dirs]
        self.post_delay = post_delay
        self.kexec_options = kexec_options or {}
        self.ironic_options = ironic_options or {}
        self.provide_timeout = provide_timeout
        self.http = None
        self.bmc_process = None
        self.statsd = None
        self.ironic = None
        self.node_uuid = None
        self._stack = []

    # Lifecycle.
    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        self.api_port = tb_node.free_port()
        self.http_port = tb_node.free_port()
        self.agent_port = tb_node.free_port()
        self.instance_port = tb_node.free_port()
        self.bmc_port = tb_node.free_port()
        self.bmc_log = os.path.join(self.workdir, 'bmc.log')
        self.power_log = os.path.join(self.workdir, 'bmc-power.jsonl')
        self.http_log = os.path.join(self.workdir, 'http.log')
        self.statsd_log = os.path.join(self.workdir, 'statsd.log')

        # Ironic's metrics go to a statsd sink of the testbed's own: the
        # plugin's counters, as an operator's statsd would see them.
        self.statsd = statsd_sink.StatsdSink(self.statsd_log)
        self._stack.append(self.statsd.stop)

        node_dir = os.path.join(self.workdir, 'node')
        os.makedirs(node_dir, exist_ok=True)
        # The node's disk is no artifact (a GiB once deployed): it lives in
        # the cache and goes with the testbed.
        disks = os.path.join(testbed.cache_dir(), 'nodes')
        os.makedirs(disks, exist_ok=True)
        disk_dir = tempfile.mkdtemp(prefix='disk-', dir=disks)
        self._stack.append(lambda: shutil.rmtree(disk_dir, True))
        disk = os.path.join(disk_dir, 'disk.img')
        with open(disk, 'wb') as f:
            f.truncate(DISK_SIZE)
        ironic_workdir = os.path.join(self.workdir, 'ironic')
        ironic_options = self.statsd.ironic_options()
        boot_fields = {}
        if self.boot_interface == secureboot.BOOT_INTERFACE:
            template = secureboot.write_initial_grub_template(
                os.path.join(self.workdir, 'secureboot'))
            for section, values in secureboot.options(
                    ironic_workdir, self.images, template).items():
                ironic_options.setdefault(section, {}).update(values)
        self.spec = tb_node.NodeSpec(
            workdir=node_dir, disk=disk, mac=NODE_MAC,
            api_port=self.api_port, http_port=self.http_port,
            agent_port=self.agent_port, instance_port=self.instance_port,
            firmware=self.firmware)

        kexec_options = dict(VERIFY_OPTIONS, **self.kexec_options)
        # The instance's port as the conductor reaches it. QEMU's user
        # network accepts a connection there whatever the guest does, so
        # only the instance's first byte tells that it is up (banner:).
        kexec_options.setdefault('verify',
                                 'banner:127.0.0.1:%d' % self.instance_port)
        for section, values in self.ironic_options.items():
            ironic_options.setdefault(section, {}).update(values)
        self.ironic = ironic_service.IronicService(
            ironic_workdir, self.api_port,
            self.http_port, self.agent_port,
            allowed_paths=self._image_dirs(),
            kexec_options=kexec_options,
            extra_options=ironic_options)
        self.ironic.write_config()
        if self.boot_interface == secureboot.BOOT_INTERFACE:
            # QEMU's TFTP serves Ironic's tftp_root; its DHCP names shim.
            boot_fields = secureboot.node_boot_fields(self.ironic)
        for field, value in boot_fields.items():
            setattr(self.spec, field, value)
        spec_file = os.path.join(node_dir, 'node.json')
        self.spec.save(spec_file)

        self.http = httpd.HttpServer(self.ironic.http_root, self.http_port,
                                     log_path=self.http_log)
        self._stack.append(self.http.stop)

        env = dict(os.environ)
        top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env['PYTHONPATH'] = os.pathsep.join(
            [top] + [p for p in [env.get('PYTHONPATH')] if p])
        cmd = [sys.executable, '-m', 'testbed.bmc', '--spec', spec_file,
               '--port', str(self.bmc_port), '--log', self.bmc_log,
               '--username', IPMI_USER, '--password', IPMI_PASSWORD,
               '--power-log', self.power_log]
        if self.post_delay:
            cmd += ['--post-delay', str(self.post_delay)]
        with open(os.path.join(self.workdir, 'bmc.out'), 'a') as out:
            self.bmc_process = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self._stack.append(self._stop_bmc)
        tb_node.wait_for_line(self.bmc_log, 'listening', 30)

        self._stack.append(self.ironic.stop)
        self.ironic.start()

    def stop(self):
        while self._stack:
            action = self._stack.pop()
            try:
                action()
            except Exception as exc:
                print('testbed: cleanup %s failed: %s' % (action, exc),
                      file=sys.stderr)

    def _stop_bmc(self):
        if self.bmc_process.poll() is None:
            self.bmc_process.terminate()
            try:
                self.bmc_process.wait(30)
            except subprocess.TimeoutExpired:
                self.bmc_process.kill()
                self.bmc_process.wait(30)
        # The BMC kills QEMU on its way out; make sure of it.
        tb_node.kill_recorded_qemu(self.spec)

    def _image_dirs(self):
        paths = {os.path.dirname(os.path.abspath(getattr(self.images, a)))
                 for a in ('agent_kernel', 'agent_ramdisk', 'whole_disk',
                           'uefi_whole_disk', 'partition', 'no_kernel_disk',
                           'instance_kernel', 'instance_ramdisk')
                 if getattr(self.images, a, None)}
        return sorted(paths | set(self.extra_image_dirs))

    # Faults of the testbed's own processes (see testbed.faults).
    def set_bmc_reachable(self, reachable):
        """Make the virtual BMC drop IPMI unanswered, or answer again.

        The node runs on either way: only its BMC's network is "gone".
        """
        self.bmc_process.send_signal(signal.SIGUSR2 if reachable
                                     else signal.SIGUSR1)

    def power_events(self, since=None):
        """What the virtual BMC was asked and did (testbed.bmc's log)."""
        return tb_bmc.read_power_log(self.power_log, since)

    def kill_ironic(self, sig=signal.SIGKILL):
        """Signal every Ironic process (API and conductor) at once.

        Ironic is a master process and its workers, in a process group of
        their own (the testbed starts it in a new session): SIGSTOP
        freezes them all where they stand, SIGKILL kills them all.
        """
        proc = self.ironic.process
        if proc is None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        if sig != signal.SIGKILL:
            return
        proc.wait(60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
        raise RuntimeError('Ironic workers of process group %d survived '
                           'SIGKILL' % proc.pid)

    def restart_ironic(self):
        """Start Ironic again, on the same configuration and database."""
        self.kill_ironic()
        self.ironic.start()

    # Talking to Ironic.
    def baremetal(self, *args, parse=True, timeout=600):
        """Run the real ``baremetal`` client against the testbed's Ironic."""
        env = dict(os.environ, OS_AUTH_TYPE='none',
                   OS_ENDPOINT=self.ironic.url,
                   OS_BAREMETAL_API_VERSION='latest')
        for var in ('OS_CLOUD', 'OS_AUTH_URL', 'OS_TOKEN'):
            env.pop(var, None)
        cmd = [ironic_service._bin('baremetal')] + list(args)
        if parse:
            cmd += ['-f', 'json']
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError('%s failed (%d): %s%s' % (
                ' '.join(cmd), proc.returncode, proc.stdout, proc.stderr))
        if parse and proc.stdout.strip():
            return json.loads(proc.stdout)
        return proc.stdout

    def metrics_counters(self):
        """{name: total} of the counters Ironic sent to the statsd sink.

        Full names, as they reach statsd, e.g.
        ``ironic_kexec.record.path.kexec``; totals since the testbed
        started.
        """
        return self.statsd.counters() if self.statsd else {}

    def api_node(self):
        """The node as the REST API returns it (cheap, for polling)."""
        req = urllib.request.Request(
            '%s/v1/nodes/%s' % (self.ironic.url, self.node_uuid),
            headers={'X-OpenStack-Ironic-API-Version': 'latest'})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)

    def enrol(self, deploy_interface='kexec'):
        """Enrol the node, its port, and make it available."""
        node = self.baremetal(
            'node', 'create', '--name', NODE_NAME,
            '--driver', ironic_service.hardware_type(),
            '--deploy-interface', deploy_interface,
            '--boot-interface', self.boot_interface,
            '--network-interface', 'noop',
            '--resource-class', 'testbed',
            '--driver-info', 'ipmi_address=127.0.0.1',
            '--driver-info', 'ipmi_port=%d' % self.bmc_port,
            '--driver-info', 'ipmi_username=%s' % IPMI_USER,
            '--driver-info', 'ipmi_password=%s' % IPMI_PASSWORD,
            '--driver-info', 'deploy_kernel=%s' % file_url(
                self.images.agent_kernel),
            '--driver-info', 'deploy_ramdisk=%s' % file_url(
                self.images.agent_ramdisk),
            '--property', 'capabilities=boot_mode:%s' % self.boot_mode,
            '--property', 'cpu_arch=x86_64')
        self.node_uuid = node['uuid']
        self.baremetal('port', 'create', NODE_MAC, '--node', self.node_uuid)
        self.baremetal('node', 'manage', self.node_uuid, '--wait', '120',
                       parse=False)
        self.baremetal('node', 'provide', self.node_uuid, '--wait',
                       str(self.provide_timeout), parse=False,
                       timeout=self.provide_timeout + 60)
        return self.node_uuid

    def instance_info_args(self, image):
        if image in DISKLESS_IMAGES:
            # What the ramdisk deploy boots; the console argument is what
            # makes the instance's markers reach the serial log. The
            # instance's own kernel_append_params keep the agent's
            # ([pxe]kernel_append_params) off its command line.
            return [
                '--instance-info', 'kernel_append_params=nofb',
                '--instance-info', 'kernel=%s' % file_url(
                    self.images.instance_kernel),
                '--instance-info', 'ramdisk=%s' % file_url(
                    self.images.instance_ramdisk),
                '--instance-info',
                'ramdisk_kernel_arguments=console=ttyS0,115200',
            ]
        path = getattr(self.images, image)
        # Raw images are streamed to the disk by the agent only when it is
        # told they are raw; otherwise it stages them in its RAM disk.
        args = ['--instance-info', 'image_source=%s' % file_url(path),
                '--instance-info', 'image_disk_format=raw',
                '--instance-info', 'image_checksum=%s' % (
                    self.images.checksums[image])]
        # Ironic 39 cannot tell the type of a file:// image by itself
        # (images.is_source_a_path fails on the path the file image
        # service returns), so the image type is always given.
        if image in PARTITION_IMAGES:
            args += [
                '--instance-info', 'image_type=partition',
                '--instance-info', 'kernel=%s' % file_url(
                    self.images.partition_kernel),
                '--instance-info', 'ramdisk=%s' % file_url(
                    self.images.partition_ramdisk),
                '--instance-info', 'root_gb=2',
            ]
        else:
            args += ['--instance-info', 'image_type=whole-disk']
        return args

    # Deploying.
    def deploy(self, image='whole_disk', deploy_interface='kexec',
               timeout=DEPLOY_TIMEOUT, usable_timeout=USABLE_TIMEOUT,
               instance_info=None):
        """Deploy ``image``; a :class:`timeline.DeployResult`.

        Waits for ``active`` or ``deploy failed`` and for the instance to
        answer on its port (when active). Does not raise on a failed
        deploy: the result says what happened.

        :param instance_info: more instance_info for this deploy, {key:
            value}; Ironic forgets it at undeploy.
        """
        if self.node_uuid is None:
            self.enrol(deploy_interface)
        extra = []
        for key, value in (instance_info or {}).items():
            extra += ['--instance-info', '%s=%s' % (key, value)]
        self.baremetal('node', 'set', self.node_uuid,
                       '--deploy-interface', deploy_interface,
                       *self.instance_info_args(image), *extra, parse=False)
        probe = _PortProbe(self.instance_port)
        result = timeline.DeployResult(
            label='%s/%s' % (deploy_interface, image),
            deploy_interface=deploy_interface, image=image,
            started=time.monotonic(), workdir=self.workdir)
        probe.start()
        try:
            self.baremetal('node', 'deploy', self.node_uuid, parse=False)
            try:
                state = self._wait_for_state(('active', 'deploy failed'),
                                             timeout)
            except TimeoutError as exc:
                result.error = str(exc)
                state = None
            result.active = time.monotonic() if state == 'active' else None
            if state == 'active':
                # The instance may come up after Ironic says active (with
                # the stock power-on, it does).
                probe.wait(usable_timeout)
        finally:
            probe.stop()
        result.usable, answer = probe.first
        result.instance_answer, result.instance_firmware = (
            timeline.parse_instance_reply(answer))
        return self._finish(result)

    def _finish(self, result):
        """Add the node, its history and the logs' timeline to a result."""
        result.node = self.baremetal('node', 'show', self.node_uuid)
        result.history = self.baremetal('node', 'history', 'list',
                                        self.node_uuid, '--long')
        result.collect(self.spec, self.bmc_log, self.ironic.log_file,
                       self.node_uuid)
        return result

    def _wait_for_state(self, targets, timeout):
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            try:
                state = self.api_node()['provision_state']
            except OSError:
                # The API is down while a fault restarts Ironic.
                time.sleep(1)
                continue
            if state in targets:
                return state
            time.sleep(1)
        raise TimeoutError('node not in %s after %ss (still %s)' % (
            ', '.join(targets), timeout, state))

    def undeploy(self, timeout=UNDEPLOY_TIMEOUT):
        self.baremetal('node', 'undeploy', self.node_uuid, '--wait',
                       str(timeout), parse=False, timeout=timeout + 60)

    def recover(self, timeout=UNDEPLOY_TIMEOUT):
        """Back to ``available`` after any deploy, for the next one."""
        state = self.api_node()['provision_state']
        if state == 'deploying':
            state = self._wait_for_state(('wait call-back', 'active',
                                          'deploy failed'), timeout)
        if state == 'wait call-back':
            self.baremetal('node', 'abort', self.node_uuid, parse=False)
            state = self._wait_for_state(('deploy failed',), timeout)
        if state in ('active', 'deploy failed'):
            self.undeploy(timeout)

    def agent_alive(self):
        """Whether Ironic sees a live agent on the node (fast track)."""
        node = self.api_node()
        info = node.get('driver_internal_info') or {}
        return (node.get('power_state') == 'power on'
                and bool(info.get('agent_url'))
                and bool(info.get('agent_last_heartbeat')))

    def reboot(self, timeout=USABLE_TIMEOUT):
        """``baremetal node reboot`` of the instance; a DeployResult.

        The reboot request is the result's handoff: what follows it
        (power actions, firmware runs, the instance's kernel) is counted
        as after a deploy's handoff.
        """
        node = self.api_node()
        result = timeline.DeployResult(
            label='reboot', deploy_interface=node['deploy_interface'],
            image='reboot', started=time.monotonic(),
            workdir=self.workdir)
        result.events['handoff'] = result.started
        self.baremetal('node', 'reboot', self.node_uuid, parse=False)
        try:
            # The instance answers until its power goes: probe only once
            # the firmware runs again.
            tb_node.wait_for_line(self.spec.firmware_log,
                                  tb_node.FIRMWARE_MARKERS, timeout,
                                  since=result.started)
            result.usable, result.instance_answer = tb_node.wait_for_port(
                self.instance_port, timeout)
        except TimeoutError as exc:
            result.error = str(exc)
        return self._finish(result)

    def ipxe_ramdisk_cmdline(self):
        """The kernel command line of the node's iPXE ramdisk entry.

        What iPXE passes to the instance's kernel when the node network
        boots it: the words after the kernel's URL on the ``kernel`` line
        of ``:boot_ramdisk`` in the configuration Ironic wrote.
        """
        path = os.path.join(self.ironic.http_root, self.node_uuid, 'config')
        with open(path) as f:
            lines = f.read().splitlines()
        entry = lines.index(':boot_ramdisk')
        for line in lines[entry + 1:]:
            words = line.split()
            if words[:1] == ['kernel']:
                words = words[1:]
                if words[:1] == ['--timeout']:
                    words = words[2:]
                if '||' in words:
                    words = words[:words.index('||')]
                # words[0] is the kernel's URL.
                return ' '.join(words[1:])
        raise ValueError('no kernel line in :boot_ramdisk of %s' % path)

    def logs_tail(self):
        """The ends of every log, for a failure message."""
        parts = []
        for name, path in (('serial', self.spec.serial_log),
                           ('bmc', self.bmc_log),
                           ('qemu', self.spec.qemu_log),
                           ('ironic', self.ironic.log_file)):
            parts.append('--- %s (%s)\n%s' % (name, path, tb_node.tail(
                path, 80 if name == 'ironic' else 30)))
        return '\n'.join(parts)


class _PortProbe(object):
    """Polls the instance's port in the background; keeps the first answer.

    The first connection that gets the instance's line is the moment the
    instance became usable.
    """

    MARK = 'IRONIC-KEXEC-TESTBED'
    # Long enough for a busy TCG guest to send its answer's second line.
    ANSWER_TIMEOUT = 5.0

    def __init__(self, port, interval=0.5):
        self.port = port
        self.interval = interval
        self.first = (None, None)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()

    def _run(self):
        while not self._done.is_set():
            answer = tb_node.probe_port(self.port, self.ANSWER_TIMEOUT,
                                        whole=True)
            if answer and answer.startswith(self.MARK):
                self.first = (time.monotonic(), answer)
                return
            self._done.wait(self.interval)

    def wait(self, timeout):
        self._thread.join(timeout)

    def stop(self):
        self._done.set()
        self._thread.join(10)
