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

"""The scale harness: many simulated nodes against a real Ironic.

Real: the Ironic API and conductor(s) (``ironic-api``,
``ironic-conductor``) with JSON-RPC between them, a PostgreSQL server
from Debian's packages, ``ipmitool`` talking IPMI 2.0 (lanplus) to
pyghmi virtual BMCs, the plugin's conductor code. Simulated: the
machines behind the BMCs and the agents on them (:mod:`.agents`), which
speak IPA's REST API and its lookup/heartbeat protocol, and the
instances, which open a TCP port some seconds after they "boot".

Run with ``python -m testbed.scale`` (see :mod:`.run`); everything binds
127.0.0.1 only.
"""
