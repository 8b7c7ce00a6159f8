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

"""Runs the hostile-image corpus and prints it as a Markdown table.

For the documentation and the issue note: one row per case of
``tests/unit/agent/hostile_corpus.py`` with its class, what discovery
must end in, what it did, its time, memory peak, reads outside the image
and log records, then a count by class. ``--list`` prints the cases
without running them. Discovery logs at DEBUG level, as an agent with
``debug = True`` does, into a handler that only counts. Exits 1 if any
case failed.
"""

import argparse
import collections
import logging
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tests.unit.agent import hostile_corpus as corpus  # noqa: E402


def _cell(text):
    return str(text).replace('|', '\\|').replace('\n', ' ')


def list_cases(cases, out):
    out.write('| case | class | description | expected |\n')
    out.write('|---|---|---|---|\n')
    for case in cases:
        out.write('| %s | %s | %s | %s |\n'
                  % (case.name, case.klass, _cell(case.description),
                     _cell(case.expect.describe())))


def row(result):
    case = result.case
    if result.skipped:
        outcome, reason = 'skipped', ''
    elif result.timed_out:
        outcome, reason = 'hang', ''
    elif result.error is None:
        outcome, reason = 'entry (%s)' % result.entry.source, ''
    elif result.reason is not None:
        outcome, reason = 'refused', result.reason
    else:
        outcome, reason = 'crash', type(result.error).__name__
    problems = result.problems()
    return ('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n'
            % (case.name, case.klass, _cell(case.expect.describe()),
               outcome, reason,
               '%.2f' % result.seconds if result.seconds is not None
               else '',
               '%.1f' % (result.peak / corpus.MIB)
               if result.peak is not None else '',
               len(result.outside),
               result.log_records if result.log_records is not None
               else '',
               'ok' if not problems else _cell('; '.join(problems))))


def run(cases, out):
    out.write('| case | class | expected | outcome | reason | seconds | '
              'peak MiB | outside reads | log records | verdict |\n')
    out.write('|---|---|---|---|---|---|---|---|---|---|\n')
    failed = collections.Counter()
    for case in cases:
        result = corpus.run_case(case)
        out.write(row(result))
        out.flush()
        if result.problems():
            failed[case.klass] += 1
    total = collections.Counter(c.klass for c in cases)
    out.write('\n| class | cases | failed |\n|---|---|---|\n')
    for klass in corpus.CLASSES:
        if total[klass]:
            out.write('| %s | %d | %d |\n' % (klass, total[klass],
                                              failed[klass]))
    out.write('| all | %d | %d |\n' % (len(cases), sum(failed.values())))
    return sum(failed.values())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--list', action='store_true',
                        help='print the cases, do not run them')
    parser.add_argument('--case', action='append', default=[],
                        help='run only cases whose name contains this '
                        '(repeatable)')
    args = parser.parse_args(argv)
    cases = [c for c in corpus.CASES
             if not args.case or any(s in c.name for s in args.case)]
    if args.list:
        list_cases(cases, sys.stdout)
        return 0
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    # Records reach the corpus' counting handler; nothing is printed.
    root.addHandler(logging.NullHandler())
    return 1 if run(cases, sys.stdout) else 0


if __name__ == '__main__':
    sys.exit(main())
