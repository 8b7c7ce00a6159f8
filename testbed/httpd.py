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

"""The HTTP server of the testbed: Ironic's http_root, on 127.0.0.1.

iPXE fetches ``boot.ipxe``, the agent kernel and ramdisk from it, and the
agent downloads the instance image from it; the node reaches it through
QEMU's guestfwd. One thread per request, so a slow image download does
not hold up anything else. Requests are logged with the testbed's
timestamps (see :mod:`testbed.node`).
"""

import functools
import http.server
import threading

from testbed import node as tb_node


class _Handler(http.server.SimpleHTTPRequestHandler):
    # HTTP/1.1 keeps iPXE's connection open between its small downloads.
    protocol_version = 'HTTP/1.1'
    log_path = None

    def log_message(self, format, *args):
        if self.log_path:
            tb_node.append_line(self.log_path, format % args)


class HttpServer(object):
    """Serves ``root`` on 127.0.0.1:``port`` until :meth:`stop`."""

    def __init__(self, root, port, log_path=None):
        handler = type('Handler', (_Handler,), {'log_path': log_path})
        self._server = http.server.ThreadingHTTPServer(
            ('127.0.0.1', port), functools.partial(handler, directory=root))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={'poll_interval': 0.2},
                                        daemon=True)
        self._thread.start()

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
