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

"""The end-to-end testbed: a real standalone Ironic deploying a QEMU node.

Not part of the distributed packages. Pieces:

* :mod:`testbed.images` builds the agent ramdisk and the instance images.
* :mod:`testbed.node` builds the QEMU command line of the node and
  captures its consoles, each line timestamped on arrival.
* :mod:`testbed.bmc` is the node's virtual BMC: IPMI on 127.0.0.1 driving
  QEMU through QMP. It runs in its own process and owns the QEMU process.
* :mod:`testbed.httpd` serves Ironic's http_root to the node.
* :mod:`testbed.ironic_service` configures and runs a standalone Ironic.
* :mod:`testbed.statsd_sink` receives Ironic's metrics (statsd).
* :mod:`testbed.scenario` enrols the node and deploys it with the real
  ``baremetal`` client, :mod:`testbed.timeline` turns the logs into a
  timeline per deploy.
"""

import os


def cache_dir():
    """Where built images and other slow things are kept between runs."""
    return os.environ.get('IRONIC_KEXEC_CACHE') or os.path.join(
        os.path.expanduser('~'), '.cache', 'ironic-kexec')


def repo_dir():
    """The top of the source tree this package lives in."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
