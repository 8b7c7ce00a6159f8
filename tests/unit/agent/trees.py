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

"""Builds directory trees laid out as real distributions ship them."""

import os


class Link(object):
    """A symlink to ``target`` (written as is, absolute or relative)."""

    def __init__(self, target):
        self.target = target


def build(base, files):
    """Create ``files`` under ``base``.

    :param files: image path -> bytes, str, Link, or None for a directory.
    """
    for path, content in files.items():
        host = os.path.join(base, path.lstrip('/'))
        if content is None:
            os.makedirs(host, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(host), exist_ok=True)
        if isinstance(content, Link):
            os.symlink(content.target, host)
        else:
            if isinstance(content, str):
                content = content.encode()
            with open(host, 'wb') as f:
                f.write(content)
    return base


def grubenv(**values):
    """A grubenv block as grub-editenv writes it: 1024 bytes, # padded."""
    text = '# GRUB Environment Block\n'
    text += ''.join('%s=%s\n' % kv for kv in values.items())
    return text + '#' * (1024 - len(text))


OS_RELEASE_DEBIAN = ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
                     'NAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
                     'ID=debian\n')
KERNEL = b'MZ\x00fake bzImage'
INITRD = b'070701fake cpio'
