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

"""The demo: one deploy with ``kexec``, one with ``direct``, side by side.

Both deploy the same whole-disk image to the same QEMU node through the
same standalone Ironic; only the deploy interface differs. Run as root
(``tools/demo.sh`` sets everything up)::

    python -m testbed.demo [--workdir DIR]

All times are QEMU TCG (software emulation) times, far slower than real
hardware, and the emulated node has no real power-on self-test; see
``--post-delay`` to emulate one.
"""

import argparse
import os
import sys
import time

import testbed
from testbed import images as tb_images
from testbed import scenario
from testbed import timeline


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--workdir', default=os.path.join(
        testbed.repo_dir(), 'artifacts', 'demo-%s' % time.strftime(
            '%Y%m%d-%H%M%S')),
        help='logs and timelines go here (default: artifacts/demo-*)')
    parser.add_argument('--post-delay', type=float, default=0.0,
                        help='seconds of emulated power-on self-test')
    parser.add_argument('--image', default='whole_disk',
                        choices=('whole_disk', 'partition'))
    args = parser.parse_args(argv)

    print('demo: building or finding the images (cached by content)...')
    images = tb_images.ensure_images()
    results = []
    print('demo: starting the testbed in %s' % args.workdir)
    with scenario.Testbed(args.workdir, images,
                          post_delay=args.post_delay) as tb:
        tb.enrol('kexec')
        for interface in ('kexec', 'direct'):
            print('demo: deploying %s with deploy_interface=%s...'
                  % (args.image, interface))
            result = tb.deploy(args.image, deploy_interface=interface)
            timeline.save(result, os.path.join(
                args.workdir, '%s.timeline.txt' % interface))
            print(result.summary())
            results.append(result)
            if result.provision_state != 'active' or not result.usable:
                print(tb.logs_tail(), file=sys.stderr)
            tb.recover()
    print()
    print('Timelines (seconds since the deploy request; QEMU TCG, not '
          'hardware times):')
    print(timeline.format_side_by_side(results))
    print('\nLogs: %s' % args.workdir)
    ok = all(r.provision_state == 'active' and r.usable for r in results)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
