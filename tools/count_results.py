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

"""Sums up a run of tools/run-tests.sh.

Every tox environment with a subunit stream counts its tests; every other
environment (pep8, docs, ...) counts as one check. An environment that
failed without recording a failed test counts as one failure more, so a
crash after the tests cannot pass unnoticed. Exits 1 if anything failed.
"""

import os
import sys

import subunit
import testtools


def count_stream(path):
    summary = testtools.StreamSummary()
    with open(path, 'rb') as stream:
        case = subunit.ByteStreamToStreamResult(stream)
        summary.startTestRun()
        case.run(summary)
        summary.stopTestRun()
    failed = (len(summary.errors) + len(summary.failures)
              + len(summary.unexpectedSuccesses))
    skipped = len(summary.skipped)
    passed = summary.testsRun - failed - skipped
    return passed, failed, skipped


def main(results):
    total_passed = total_failed = total_skipped = 0
    with open(os.path.join(results, 'envs')) as envs:
        rows = [line.split() for line in envs if line.strip()]
    for env, rc, seconds in rows:
        rc = int(rc)
        stream = os.path.join(results, env + '.subunit')
        if os.path.exists(stream):
            passed, failed, skipped = count_stream(stream)
            if rc and not failed:
                failed = 1
        else:
            passed, failed, skipped = (0, 1, 0) if rc else (1, 0, 0)
        print('%-12s rc=%d %5ss  %d passed, %d failed, %d skipped'
              % (env, rc, seconds, passed, failed, skipped))
        total_passed += passed
        total_failed += failed
        total_skipped += skipped
    print('%d passed, %d failed, %d skipped'
          % (total_passed, total_failed, total_skipped))
    return 1 if total_failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
