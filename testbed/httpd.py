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

Ironic's conductor checks the image URLs it hands to the agent
(``[deploy]http_url``, an address only the guest can reach) with a HEAD
request. The testbed runs Ironic with this server as its HTTP proxy, so
those checks reach the same files over loopback: a proxy request for the
guest's address of this server is answered like a plain one; any other
proxy request is refused.
"""

import functools
import http.server
import sys
import threading
import urllib.parse

from testbed import node as tb_node


class _Handler(http.server.SimpleHTTPRequestHandler):
    # HTTP/1.1 keeps iPXE's connection open between its small downloads.
    protocol_version = 'HTTP/1.1'
    log_path = None
    # host:port a proxy request may name: the guest's view of this server.
    proxied_netloc = None

    def parse_request(self):
        if not super().parse_request():
            return False
        if self.path.startswith(('http://', 'https://')):
            url = urllib.parse.urlsplit(self.path)
            if url.scheme != 'http' or url.netloc != self.proxied_netloc:
                self.send_error(403, 'not a proxy for %s' % url.netloc)
                return False
            self.path = url.path + ('?' + url.query if url.query else '')
        return True

    def log_message(self, format, *args):
        if self.log_path:
            tb_node.append_line(self.log_path, format % args)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    log_path = None

    def handle_error(self, request, client_address):
        # A node powered off mid-download resets its connections; that is
        # part of a deploy, not a server error worth a traceback.
        if self.log_path:
            tb_node.append_line(self.log_path, 'error serving %s: %r' % (
                client_address, sys.exc_info()[1]))


class HttpServer(object):
    """Serves ``root`` on 127.0.0.1:``port`` until :meth:`stop`.

    Also a proxy for the guest's address of this server (see above).
    """

    def __init__(self, root, port, log_path=None):
        handler = type('Handler', (_Handler,), {
            'log_path': log_path,
            'proxied_netloc': '%s:%d' % (tb_node.HOST_ALIAS, port)})
        self._server = _Server(('127.0.0.1', port),
                               functools.partial(handler, directory=root))
        self._server.log_path = log_path
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={'poll_interval': 0.2},
                                        daemon=True)
        self._thread.start()

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
