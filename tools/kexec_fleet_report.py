#!/usr/bin/env python3
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

"""How the last deploy of each node started its instance, across a fleet.

Reads the JSON of ``baremetal node list`` on its standard input and
prints the nodes per path and reason of their kexec record
(``driver_internal_info['kexec']``, see doc/source/troubleshooting.rst),
then the nodes of each reason::

    baremetal node list --limit 0 --fields uuid name driver_internal_info \\
        -f json | python3 tools/kexec_fleet_report.py

Python 3 standard library only: copy it anywhere. Both column styles of
the client are read: python-ironicclient 6 and later print the field
names ("uuid", "driver_internal_info"), earlier ones the labels ("UUID",
"Driver Internal Info"); ``--long`` output works too.
"""

import argparse
import collections
import json
import sys

# The record's paths, in the order of the report; others after them.
PATHS = ('kexec', 'power-cycle', 'failed')
NO_RECORD = '(no record)'
NONE = '-'


class BadInput(Exception):
    pass


def _field(node, name):
    """A node's field, whatever the client's column style."""
    for key, value in node.items():
        if str(key).strip().lower().replace(' ', '_') == name:
            return value
    return None


def _record(node):
    info = _field(node, 'driver_internal_info')
    if isinstance(info, str):
        try:
            info = json.loads(info)
        except ValueError:
            info = None
    record = info.get('kexec') if isinstance(info, dict) else None
    return record if isinstance(record, dict) else None


def _text(value):
    return NONE if value in (None, '') else ' '.join(str(value).split())


def group(nodes):
    """{(path, reason): [(uuid, name, message)]} of a node list."""
    if not isinstance(nodes, list):
        raise BadInput('expected a JSON list of nodes (baremetal node list '
                       '-f json), got %s' % type(nodes).__name__)
    groups = collections.defaultdict(list)
    for node in nodes:
        if not isinstance(node, dict):
            raise BadInput('expected a JSON object per node, got %r'
                           % (node,))
        record = _record(node)
        if record is None:
            key = (NO_RECORD, NONE)
            message = NONE
        else:
            key = (_text(record.get('path')), _text(record.get('reason')))
            message = _text(record.get('message'))
        groups[key].append((_text(_field(node, 'uuid')),
                            _text(_field(node, 'name')), message))
    return groups


def _order(item):
    (path, reason), members = item
    rank = PATHS.index(path) if path in PATHS else (
        len(PATHS) + 1 if path == NO_RECORD else len(PATHS))
    return rank, path, -len(members), reason


def report(nodes, all_nodes=False):
    """The report's lines: a table by path and reason, then the nodes."""
    groups = sorted(group(nodes).items(), key=_order)
    width = max([len('power-cycle'), len(NO_RECORD)]
                + [len(path) for (path, _r), _m in groups])
    rwidth = max([len('REASON')] + [len(r) for (_p, r), _m in groups])
    row = '%%-%ds  %%-%ds  %%5s' % (width, rwidth)
    lines = [row % ('PATH', 'REASON', 'NODES')]
    for (path, reason), members in groups:
        lines.append(row % (path, reason, len(members)))
    lines.append(row % ('total', '', sum(len(m) for _k, m in groups)))
    for (path, reason), members in groups:
        if reason == NONE and not all_nodes:
            continue
        lines.append('')
        lines.append('%s %s (%d):' % (path, reason, len(members)))
        for uuid, name, message in sorted(members,
                                          key=lambda m: (m[1], m[0])):
            lines.append('  %s  %s  %s' % (uuid, name, message))
    return lines


def main(argv=None, stdin=None, stdout=None):
    parser = argparse.ArgumentParser(
        description='Nodes by kexec path and reason, from the JSON of '
                    '"baremetal node list --limit 0 --fields uuid name '
                    'driver_internal_info -f json" on standard input.')
    parser.add_argument('--all', action='store_true',
                        help='also list the nodes without a reason: those '
                             'kexec\'d and those without a record')
    args = parser.parse_args(argv)
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    try:
        nodes = json.load(stdin)
        lines = report(nodes, all_nodes=args.all)
    except (ValueError, BadInput) as e:
        print('kexec_fleet_report: %s' % e, file=sys.stderr)
        return 2
    stdout.write('\n'.join(lines) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
