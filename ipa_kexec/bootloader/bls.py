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

"""Boot Loader Specification entries (Fedora, RHEL 8+, CentOS Stream).

The default is chosen as grub's ``blscfg`` module does: the grubenv's
``next_entry`` or ``saved_entry`` matched by entry id (the file name
without ``.conf``), by index or by title; otherwise the newest entry.
"""

import logging

from ipa_kexec.bootloader import entry as entry_mod
from ironic_kexec import protocol

LOG = logging.getLogger(__name__)

ENTRIES_DIR = '/boot/loader/entries'
MAX_ENTRY_SIZE = 64 * 1024


class BLSEntry(object):
    def __init__(self, entry_id, fields):
        self.id = entry_id
        self.title = fields.get('title', [''])[0]
        self.version = fields.get('version', [''])[0]
        self.linux = fields.get('linux', [None])[0]
        self.initrds = fields.get('initrd', [])
        self.options = fields.get('options', [])


def parse_entry(entry_id, text):
    fields = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        key, _sep, value = line.partition(' ')
        fields.setdefault(key, []).append(value.strip())
    return BLSEntry(entry_id, fields)


def load_entries(rootfs):
    """All entries, newest first (grub's blscfg order)."""
    entries = []
    for name in rootfs.listdir(ENTRIES_DIR):
        if not name.endswith('.conf'):
            continue
        text = rootfs.read_text_or_none('%s/%s' % (ENTRIES_DIR, name),
                                        MAX_ENTRY_SIZE)
        if text is None:
            continue
        entry = parse_entry(name[:-len('.conf')], text)
        if entry.linux:
            entries.append(entry)
    entries.sort(key=lambda e: (entry_mod.version_key(e.version or e.id),
                                entry_mod.version_key(e.id)),
                 reverse=True)
    return entries


def choose(entries, env):
    """The default entry given the grubenv variables."""
    for var in ('next_entry', 'saved_entry', 'default'):
        wanted = env.get(var)
        if not wanted:
            continue
        for entry in entries:
            if wanted in (entry.id, entry.title):
                return entry
        if wanted.isdigit() and int(wanted) < len(entries):
            return entries[int(wanted)]
        LOG.debug('grubenv %s=%s matches no BLS entry', var, wanted)
    return entries[0]


def find(rootfs, env):
    """The default BLS entry as a BootEntry, or None if there is none."""
    entries = load_entries(rootfs)
    if not entries:
        return None
    chosen = choose(entries, env)
    # RHEL's tuned adds "$tuned_initrd", usually empty.
    return entry_mod.from_loader(rootfs, chosen.id, chosen.linux,
                                 chosen.initrds, chosen.options, env,
                                 protocol.SOURCE_BLS)
