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


"""The hardware deny list: hardware known not to survive a kexec.

The rules (``[kexec]deny_list``, a JSON list; their form and matching are
defined once, in :mod:`ironic_kexec.protocol`) are matched here against
the node's inspection data. A rule that this data cannot decide (no
inspection, a condition the inventory has no field for) goes to the agent
with ``kexec.load``, which matches it against the running hardware.
"""

import json
import os

from ironic.common import exception
from ironic.conf import CONF
from ironic.drivers.modules import inspect_utils
from oslo_log import log

from ironic_kexec import protocol

LOG = log.getLogger(__name__)

# A deny list is an operator's file, but it is read on every deploy:
# bound it like any input.
MAX_FILE_SIZE = 1024 * 1024
MAX_RULES = 1000

_cache = {}


class InvalidDenyList(Exception):
    pass


def load_rules(path=None):
    """The rules of the deny list file, re-read when it changes.

    :raises: InvalidDenyList when the file cannot be read or is malformed.
    """
    path = CONF.kexec.deny_list if path is None else path
    if not path:
        return []
    try:
        st = os.stat(path)
    except OSError as e:
        raise InvalidDenyList('cannot read [kexec]deny_list %s: %s'
                              % (path, e))
    key = (path, st.st_mtime_ns, st.st_size)
    if _cache.get('key') == key:
        return _cache['rules']
    if st.st_size > MAX_FILE_SIZE:
        raise InvalidDenyList('[kexec]deny_list %s is larger than %d bytes'
                              % (path, MAX_FILE_SIZE))
    try:
        with open(path, 'rb') as f:
            rules = json.loads(f.read(MAX_FILE_SIZE + 1))
    except (OSError, ValueError) as e:
        raise InvalidDenyList('cannot read [kexec]deny_list %s: %s'
                              % (path, e))
    if not isinstance(rules, list) or len(rules) > MAX_RULES:
        raise InvalidDenyList('[kexec]deny_list %s must be a JSON list of '
                              'at most %d rules' % (path, MAX_RULES))
    for rule in rules:
        try:
            protocol.check_deny_rule(rule)
        except ValueError as e:
            raise InvalidDenyList('[kexec]deny_list %s: %s' % (path, e))
    _cache.update(key=key, rules=rules)
    return rules


def inventory_facts(inventory, plugin_data):
    """What the inspection data tells of the deny rules' conditions.

    :param inventory: the agent's inventory as Ironic stores it, or None.
    :param plugin_data: the inspection's plugin data, or None.
    :returns: a facts mapping for :func:`protocol.deny_rule_matches`;
        what the data does not tell is left out (unknown).
    """
    facts = {}
    if isinstance(inventory, dict):
        system = inventory.get('system_vendor')
        if isinstance(system, dict):
            for name, field in ((protocol.DENY_SYSTEM_VENDOR,
                                 'manufacturer'),
                                (protocol.DENY_SYSTEM_PRODUCT,
                                 'product_name')):
                if isinstance(system.get(field), str):
                    facts[name] = system[field]
        # The inventory names the drivers of the NICs only: a rule on
        # any other device's driver is decided by the agent.
    # The agent's pci-devices collector puts them in the plugin data,
    # Redfish inspection in the inventory.
    for source in (plugin_data, inventory):
        if isinstance(source, dict) and isinstance(
                source.get('pci_devices'), list):
            facts[protocol.DENY_PCI_IDS] = [
                '%s:%s' % (dev.get('vendor_id'), dev.get('product_id'))
                for dev in source['pci_devices']
                if isinstance(dev, dict)]
            break
    return facts


# The task attribute keeping the facts: policy.check() and the load
# parameters both match the rules within one deploy step.
_TASK_FACTS = 'kexec_deny_facts'


def _node_facts(task):
    facts = getattr(task, _TASK_FACTS, None)
    if facts is None:
        facts = _read_facts(task)
        setattr(task, _TASK_FACTS, facts)
    return facts


def _read_facts(task):
    # Wherever [inventory]data_backend keeps it (database or Swift).
    try:
        data = inspect_utils.get_inspection_data(task.node, task.context)
    except exception.NodeInventoryNotFound:
        return {}
    except Exception as e:
        # The rules then go to the agent, which decides them itself.
        LOG.warning('Cannot read the inspection data of node %(node)s for '
                    'the kexec deny list: %(err)s',
                    {'node': task.node.uuid, 'err': e})
        return {}
    return inventory_facts(data.get('inventory'), data.get('plugin_data'))


def _describe(rule, facts):
    parts = []
    for name in protocol.DENY_CONDITIONS:
        if name in rule:
            known = facts.get(name)
            if isinstance(known, list):
                known = ', '.join(v for v in known
                                  if any(protocol.deny_rule_matches(
                                      {protocol.DENY_ID: 'x', name: [p]},
                                      {name: [v]}) for p in rule[name]))
            parts.append('%s %s' % (name, known))
    return '; '.join(parts)


def evaluate(task):
    """Match the deny list against the node's inspection data.

    :returns: (a message naming the matching rule or None, the rules the
        agent must decide).
    :raises: InvalidDenyList
    """
    rules = load_rules()
    if not rules:
        return None, []
    facts = _node_facts(task)
    undecided = []
    for rule in rules:
        match = protocol.deny_rule_matches(rule, facts)
        if match:
            return ('hardware deny rule "%s" matches the inspection data: '
                    '%s' % (rule[protocol.DENY_ID], _describe(rule, facts)),
                    [])
        if match is None:
            undecided.append(rule)
    return None, undecided
