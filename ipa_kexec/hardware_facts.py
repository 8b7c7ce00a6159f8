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

"""The running hardware, as the hardware deny rules see it.

The conductor sends the agent the deny rules it could not decide from the
node's inspection data (see :func:`ironic_kexec.protocol.deny_rule_matches`);
the agent decides them here from sysfs, under a configurable root so that
tests lay out real files.

Reading is bounded and never fails: at most :data:`MAX_READ` bytes per
file, at most :data:`MAX_PCI_DEVICES` devices, nothing opened through a
path that leaves the root, and any error makes a fact unknown. An unknown
fact cannot make a rule match, so a broken sysfs never stops a deploy;
the rules it leaves undecided are logged.
"""

import logging
import os
import re
import stat

from ipa_kexec import errors
from ironic_kexec import protocol

LOG = logging.getLogger(__name__)

DMI_SYS_VENDOR = 'sys/class/dmi/id/sys_vendor'
DMI_PRODUCT_NAME = 'sys/class/dmi/id/product_name'
PCI_DEVICES = 'sys/bus/pci/devices'
MAX_READ = 64
MAX_PCI_DEVICES = 4096
# How many matching devices a refusal names, so that a rule matching every
# GPU of a large node still gives a one-line message.
MAX_NAMED_MATCHES = 3
# sysfs prints PCI IDs as "0x%04x".
_PCI_ID = re.compile(r'^(?:0x)?([0-9a-f]{4})$')
_OPEN_FLAGS = (os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
               | getattr(os, 'O_CLOEXEC', 0))


class PciDevice(object):
    """One PCI device: its address, ``vvvv:dddd`` and bound driver.

    ``pci_id`` is None when it could not be read, ``driver`` when no
    driver is bound or the link could not be read (see
    :attr:`Facts.incomplete`).
    """

    def __init__(self, address, pci_id=None, driver=None):
        self.address = address
        self.pci_id = pci_id
        self.driver = driver

    def __repr__(self):
        return 'PciDevice(%r, %r, %r)' % (self.address, self.pci_id,
                                          self.driver)


class Facts(object):
    """What is known of the running hardware.

    :param system_vendor: DMI system manufacturer, or None if unknown.
    :param system_product: DMI product name, or None if unknown.
    :param devices: a list of :class:`PciDevice`, or None if unknown.
    :param incomplete: the names of list conditions (``pci_ids``,
        ``drivers``) for which some device could not be read: a rule that
        does not match the values read may still match the ones missing.
    """

    def __init__(self, system_vendor=None, system_product=None,
                 devices=None, incomplete=()):
        self.system_vendor = system_vendor
        self.system_product = system_product
        self.devices = devices
        self.incomplete = frozenset(incomplete)

    def _device_values(self, attribute):
        """(value, device address) pairs of the devices that have one."""
        if self.devices is None:
            return None
        return [(getattr(d, attribute), d.address) for d in self.devices
                if getattr(d, attribute) is not None]

    def _located(self):
        """Condition name -> a string, or a list of (value, address)."""
        return {
            protocol.DENY_SYSTEM_VENDOR: self.system_vendor,
            protocol.DENY_SYSTEM_PRODUCT: self.system_product,
            protocol.DENY_PCI_IDS: self._device_values('pci_id'),
            protocol.DENY_DRIVERS: self._device_values('driver'),
        }

    def as_dict(self):
        """The facts as :func:`protocol.deny_rule_matches` takes them."""
        facts = {}
        for name, value in self._located().items():
            if isinstance(value, list):
                value = [v for v, _address in value]
            facts[name] = value
        return facts

    def matches(self, rule):
        """Whether ``rule`` matches: True, False, or None if undecided."""
        facts = self.as_dict()
        matched = protocol.deny_rule_matches(rule, facts)
        if matched is False and self.incomplete:
            # A list condition matches when any value does: it failed on
            # the values read, but a device not read may have matched.
            # Any other failing condition still makes the rule False.
            facts.update((name, None) for name in self.incomplete)
            matched = protocol.deny_rule_matches(rule, facts)
        return matched

    def unknown(self, rule):
        """The conditions of ``rule`` this agent could not fully read."""
        facts = self.as_dict()
        return [name for name in protocol.DENY_CONDITIONS
                if name in rule
                and (facts[name] is None or name in self.incomplete)]

    def describe(self, rule):
        """What made a matching ``rule`` match, for the refusal."""
        parts = []
        for name, value in self._located().items():
            if name not in rule or value is None:
                continue
            if not isinstance(value, list):
                parts.append('%s "%s"' % (name, value))
                continue
            # The same test as the match itself, one value at a time.
            single = {protocol.DENY_ID: rule[protocol.DENY_ID],
                      name: rule[name]}
            hits = ['%s (%s)' % (v, address) for v, address in value
                    if protocol.deny_rule_matches(single, {name: [v]})]
            text = ', '.join(hits[:MAX_NAMED_MATCHES])
            if len(hits) > MAX_NAMED_MATCHES:
                text += ' and %d more' % (len(hits) - MAX_NAMED_MATCHES)
            parts.append('%s %s' % (name, text))
        return '; '.join(parts)


class Collector(object):
    """Reads :class:`Facts` from sysfs under ``system_root``."""

    def __init__(self, system_root='/'):
        self.system_root = system_root
        self._real_root = os.path.realpath(system_root)

    def _inside(self, path):
        """The real path of ``path`` if it stays under the root, or None.

        sysfs reaches devices through symlinks (``sys/class/dmi/id``, the
        entries of ``sys/bus/pci/devices``): they are followed, but only
        while they stay under the root.
        """
        try:
            real = os.path.realpath(os.path.join(self.system_root, path))
        except (OSError, ValueError):
            return None
        prefix = self._real_root.rstrip(os.sep) + os.sep
        if real == self._real_root or real.startswith(prefix):
            return real
        LOG.debug('/%s leads outside %s, not read', path, self.system_root)
        return None

    def _read(self, path):
        """At most MAX_READ bytes of a sysfs attribute, stripped, or None.

        The directory is resolved under the root, the file itself opened
        without following a link and read only if it is a regular file
        (sysfs attributes are; anything else, such as a FIFO, would not
        be sysfs).
        """
        directory = self._inside(os.path.dirname(path))
        if directory is None:
            return None
        try:
            fd = os.open(os.path.join(directory, os.path.basename(path)),
                         _OPEN_FLAGS)
        except OSError as e:
            LOG.debug('Cannot open /%s: %s', path, e)
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            data = os.read(fd, MAX_READ)
        except OSError as e:
            LOG.debug('Cannot read /%s: %s', path, e)
            return None
        finally:
            os.close(fd)
        return data.decode('utf-8', 'replace').strip()

    def _pci_id(self, device_path):
        ids = []
        for name in ('vendor', 'device'):
            value = self._read(os.path.join(device_path, name))
            match = _PCI_ID.match((value or '').lower())
            if not match:
                return None
            ids.append(match.group(1))
        return ':'.join(ids)

    def _driver(self, device_path):
        """(driver name or None, whether it is known)."""
        directory = self._inside(device_path)
        if directory is None:
            return None, False
        try:
            # Only the link's name is used: nothing it points to is read.
            target = os.readlink(os.path.join(directory, 'driver'))
        except FileNotFoundError:
            return None, True       # no driver bound to the device
        except OSError as e:
            LOG.debug('Cannot read the driver of /%s: %s', device_path,
                      e)
            return None, False
        name = os.path.basename(target.rstrip('/'))
        return (name, True) if name else (None, False)

    def _device_names(self):
        """The entries of sys/bus/pci/devices, sorted, or None."""
        directory = self._inside(PCI_DEVICES)
        if directory is None:
            return None
        names = []
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    names.append(entry.name)
                    if len(names) > MAX_PCI_DEVICES:
                        LOG.warning('More than %d PCI devices in /%s: the '
                                    'PCI IDs and drivers are not read, '
                                    'deny rules using them are not '
                                    'decided', MAX_PCI_DEVICES,
                                    PCI_DEVICES)
                        return None
        except OSError as e:
            LOG.debug('Cannot list /%s: %s', PCI_DEVICES, e)
            return None
        return sorted(names)

    def devices(self):
        """(list of PciDevice or None, set of incomplete conditions)."""
        names = self._device_names()
        if names is None:
            return None, set()
        devices, incomplete = [], set()
        for name in names:
            path = os.path.join(PCI_DEVICES, name)
            pci_id = self._pci_id(path)
            if pci_id is None:
                incomplete.add(protocol.DENY_PCI_IDS)
            driver, known = self._driver(path)
            if not known:
                incomplete.add(protocol.DENY_DRIVERS)
            devices.append(PciDevice(name, pci_id, driver))
        return devices, incomplete

    def collect(self):
        devices, incomplete = self.devices()
        return Facts(system_vendor=self._read(DMI_SYS_VENDOR),
                     system_product=self._read(DMI_PRODUCT_NAME),
                     devices=devices, incomplete=incomplete)


def check_deny(rules, facts):
    """Raise a KexecError (reason ``denied``) if a rule matches.

    :param rules: well-formed deny rules (see
        :func:`ironic_kexec.protocol.check_deny_rule`).
    :param facts: the running hardware, a :class:`Facts`.
    """
    for rule in rules:
        matched = facts.matches(rule)
        if matched:
            raise errors.KexecError(
                protocol.REASON_DENIED,
                'hardware deny rule "%s" matches: %s'
                % (rule[protocol.DENY_ID], facts.describe(rule)))
        if matched is None:
            # Refusing on a fact nobody could read would turn a sysfs
            # quirk into a fleet-wide fallback; the operator sees it here.
            LOG.warning('Hardware deny rule "%s" cannot be decided on '
                        'this node (%s not readable): it does not deny '
                        'kexec', rule[protocol.DENY_ID],
                        ', '.join(facts.unknown(rule)))
