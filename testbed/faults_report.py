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

"""Put fault matrix runs together, or write a run's table again.

A matrix may run in parts (``--faults`` of each part, e.g. two at once,
one per core). This merges their ``results.json`` files, in the matrix's
order; a fault found in several parts keeps the last one given::

    python -m testbed.faults_report PART_DIR... --out DIR
"""

import argparse
import json
import os
import sys

from testbed import faults


def _order(obs):
    numbers = [f.number for f in faults.FAULTS]
    number = obs.get('fault')
    return numbers.index(number) if number in numbers else len(numbers)


def merge(parts):
    """(results, meta) of several runs' results.json files."""
    by_fault = {}
    metas = []
    for part in parts:
        path = part if part.endswith('.json') else os.path.join(
            part, 'results.json')
        with open(path) as f:
            data = json.load(f)
        metas.append(data.get('meta') or {})
        for obs in data.get('results') or ():
            by_fault[obs['fault']] = obs
    results = sorted(by_fault.values(), key=_order)
    runs = []
    ramdisks = []
    for m in metas:
        sha = m.get('agent_ramdisk_sha256')
        ramdisks.extend(sha if isinstance(sha, list) else [sha] if sha
                        else [])
        # A merged report keeps the parts it was merged from.
        runs.extend(m['parts'] if 'parts' in m else [
            {k: m.get(k) for k in ('started', 'faults', 'minutes',
                                   'commit')}])
    meta = {
        'parts': runs,
        'kexec_options': metas[-1].get('kexec_options') if metas else None,
        'agent_ramdisk_sha256': sorted(set(ramdisks)),
    }
    return results, meta


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m testbed.faults_report',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('parts', nargs='+',
                        help='directories (or results.json files) of runs')
    parser.add_argument('--out', required=True)
    args = parser.parse_args(argv)
    results, meta = merge(args.parts)
    print(faults.write_report(results, args.out, meta))
    return 0 if all(r.get('as_expected') for r in results) else 1


if __name__ == '__main__':
    sys.exit(main())
