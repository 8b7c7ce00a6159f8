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

"""Grub's environment block (grubenv), where saved_entry and kernelopts
live."""

from ipa_kexec import errors

GRUBENV_PATHS = ('/boot/grub2/grubenv', '/boot/grub/grubenv')
EFI_DIR = '/boot/efi/EFI'
# grub-editenv writes a 1 KiB block; allow some slack, refuse more.
MAX_GRUBENV_SIZE = 64 * 1024


def parse(text):
    """Parse a grubenv block into a dict."""
    result = {}
    for line in text.splitlines():
        if not line or line.startswith('#') or '=' not in line:
            continue
        key, value = line.split('=', 1)
        result[key.strip()] = value
    return result


def candidate_paths(rootfs):
    paths = list(GRUBENV_PATHS)
    for vendor in rootfs.listdir(EFI_DIR):
        paths.append('%s/%s/grubenv' % (EFI_DIR, vendor))
    return paths


def load(rootfs):
    """The first grubenv found in the image, parsed ({} if none)."""
    for path in candidate_paths(rootfs):
        try:
            text = rootfs.read_text(path, MAX_GRUBENV_SIZE)
        except errors.NotFoundInImage:
            continue
        return parse(text)
    return {}
