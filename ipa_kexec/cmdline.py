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

"""The instance's kernel command line when its boot entry has none.

Never the agent's own ``/proc/cmdline``: its ``ipa-*`` and ``BOOTIF``
arguments must not reach the instance.
"""

import shlex

from ipa_kexec.bootloader import entry as entry_mod

KERNEL_CMDLINE = '/etc/kernel/cmdline'
DEFAULT_GRUB = '/etc/default/grub'
FSTAB = '/etc/fstab'
_GRUB_VARS = ('GRUB_CMDLINE_LINUX', 'GRUB_CMDLINE_LINUX_DEFAULT')


def parse_shell_assignments(text):
    """``NAME=value`` lines of a shell file, parsed, never executed.

    Lines that are not plain assignments (conditionals, commands,
    substitutions) are ignored.
    """
    result = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith('#') or '=' not in line:
            continue
        if line.startswith('export '):
            line = line[len('export '):]
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            continue
        if len(tokens) != 1:
            continue
        name, _sep, value = tokens[0].partition('=')
        if name.isidentifier():
            result[name] = value
    return result


def fstab_entries(text):
    """(spec, mount point, fs type, options) of each fstab line."""
    for line in text.splitlines():
        line = line.split('#', 1)[0].strip()
        fields = line.split()
        if len(fields) >= 3:
            options = fields[3] if len(fields) > 3 else 'defaults'
            yield fields[0], fields[1], fields[2], options


def fstab_root_spec(rootfs):
    """The root's ``UUID=...`` (or other spec) from the image's fstab."""
    text = rootfs.read_text_or_none(FSTAB)
    for spec, mountpoint, _fstype, _opts in fstab_entries(text or ''):
        if mountpoint == '/':
            return spec
    return None


def build(rootfs, root_uuid=None):
    """The command line from the image's own configuration.

    ``/etc/kernel/cmdline`` (kernel-install's) if present, else
    ``root=... ro`` with grub's ``GRUB_CMDLINE_LINUX`` and
    ``GRUB_CMDLINE_LINUX_DEFAULT``. Returns None if the root cannot be
    named.
    """
    text = rootfs.read_text_or_none(KERNEL_CMDLINE)
    if text and text.strip():
        return entry_mod.normalize_cmdline(text)
    root = 'UUID=%s' % root_uuid if root_uuid else fstab_root_spec(rootfs)
    if not root:
        return None
    parts = ['root=%s' % root, 'ro']
    defaults = parse_shell_assignments(
        rootfs.read_text_or_none(DEFAULT_GRUB) or '')
    for name in _GRUB_VARS:
        if defaults.get(name):
            parts.append(defaults[name])
    return entry_mod.normalize_cmdline(' '.join(parts))


def append_extra(cmdline, extra_args):
    if not extra_args:
        return cmdline
    return entry_mod.normalize_cmdline('%s %s' % (cmdline, extra_args))
