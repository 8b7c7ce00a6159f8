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

"""Runs ironic-python-agent in standalone mode, for functional tests.

IPA 13's ``ironic-python-agent`` command always builds its agent with
``standalone=False`` (``IronicPythonAgent.from_config``), which waits for
network interfaces, runs inspection and looks the node up in Ironic
before serving its API. This is that command with ``standalone=True``
and nothing else changed: same configuration options, same extension
and hardware manager loading, same API server.

    python -m tests.functional.agent_standalone --listen_host 127.0.0.1 \
        --listen_port 9999 --disk_wait_attempts 0
"""

import sys

from ironic_python_agent import agent
from ironic_python_agent import config  # noqa: F401 (registers options)
from oslo_config import cfg
from oslo_log import log

CONF = cfg.CONF


def main(argv):
    log.register_options(CONF)
    CONF(args=argv)
    log.setup(CONF, 'ironic-python-agent')
    agent.IronicPythonAgent(
        CONF.api_url,
        agent.Host(hostname=CONF.advertise_host, port=CONF.advertise_port),
        agent.Host(hostname=CONF.listen_host, port=CONF.listen_port),
        CONF.ip_lookup_attempts,
        CONF.ip_lookup_sleep,
        CONF.network_interface,
        CONF.lookup_timeout,
        CONF.lookup_interval,
        True,  # standalone: no lookup, no heartbeat
        CONF.agent_token,
        CONF.hardware_initialization_delay,
        CONF.advertise_protocol).run()


if __name__ == '__main__':
    main(sys.argv[1:])
