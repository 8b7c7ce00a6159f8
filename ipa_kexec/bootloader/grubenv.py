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
live.

Read as grub-core/lib/envblk.c reads it: the block must start with the
signature line; each ``name=value`` line ends at an unescaped newline,
and a backslash escapes the character after it (grub-editenv writes
``\\\\`` and ``\\`` newline); ``#`` lines are padding. A broken block
ends the reading, keeping the values before it.
"""

import re

from ipa_kexec import errors

GRUBENV_PATHS = ('/boot/grub2/grubenv', '/boot/grub/grubenv')
EFI_DIRS = ('/boot/efi/EFI', '/efi/EFI', '/boot/EFI')
SIGNATURE = '# GRUB Environment Block\n'
# grub-editenv writes a 1 KiB block; allow some slack, refuse more.
MAX_GRUBENV_SIZE = 64 * 1024
MAX_VENDORS = 64
_UNESCAPE = re.compile(r'\\(.)', re.DOTALL)


def parse(text):
    """Parse a grubenv block into a dict ({} without the signature)."""
    if not isinstance(text, str) or not text.startswith(SIGNATURE):
        return {}
    text = text.replace('\r', '') if '\r' in text else text
    result = {}
    n = len(text)
    p = len(SIGNATURE)
    while p < n:
        if text[p] != '#':
            eq = text.find('=', p)
            if eq < 0:
                break
            name = text[p:eq]
            end = _value_end(text, eq + 1)
            if end is None:
                break
            value = text[eq + 1:end]
            if '\\' in value:
                value = _UNESCAPE.sub(r'\1', value)
            result[name] = value
            p = end
        nl = text.find('\n', p)
        if nl < 0:
            break
        p = nl + 1
    return result


def _value_end(text, q):
    """The newline that ends a value starting at ``q``, or None."""
    n = len(text)
    nl = text.find('\n', q)
    while nl >= 0:
        bs = text.find('\\', q, nl)
        if bs < 0:
            return nl
        q = bs + 2
        if q > nl:
            if q >= n:
                return None
            nl = text.find('\n', q)
    return None


def read(rootfs, path):
    """The values of the grubenv at ``path`` in the image.

    :raises: NotFoundInImage; KexecError (TooLarge, UnsafePath).
    """
    return parse(rootfs.read_text(path, MAX_GRUBENV_SIZE))


def vendors(rootfs, efi_dir):
    """The vendor directories of an ESP, refused beyond MAX_VENDORS.

    A real ESP holds a handful; more are refused rather than cut, since
    the one that matters could be among those left out.
    """
    names = sorted(rootfs.listdir(efi_dir))
    if len(names) > MAX_VENDORS:
        raise errors.TooLarge('%s in the image has more than %d vendor '
                              'directories' % (efi_dir, MAX_VENDORS))
    return names


def candidate_paths(rootfs):
    paths = list(GRUBENV_PATHS)
    for efi_dir in EFI_DIRS:
        for vendor in vendors(rootfs, efi_dir):
            paths.append('%s/%s/grubenv' % (efi_dir, vendor))
    return paths


def load(rootfs):
    """The first grubenv found in the image, parsed ({} if none).

    :raises: KexecError for a grubenv that cannot be read within the
        bounds: grub would read it, so its values cannot be guessed.
    """
    for path in candidate_paths(rootfs):
        try:
            return read(rootfs, path)
        except errors.NotFoundInImage:
            continue
    return {}
