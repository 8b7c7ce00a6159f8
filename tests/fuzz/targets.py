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

"""The fuzz targets: one line of :data:`TARGETS` per parser.

A target is ``run(prepare(data, ctx))``: ``prepare`` turns the input bytes
into the parser's arguments (text as the agent decodes it, an image tree
on disk) and ``run`` calls the parser; only ``run`` is watched for reads
outside ``ctx.allowed``. ``run`` returns a result or raises
:class:`ipa_kexec.errors.KexecError`; anything else is a finding, and so
is a result that ``check`` refuses.
"""

import collections
import functools
import os
import shutil
import tempfile

from ipa_kexec.bootloader import bls
from ipa_kexec.bootloader import entry
from ipa_kexec.bootloader import extlinux
from ipa_kexec.bootloader import grub
from ipa_kexec.bootloader import grubenv
from ipa_kexec.bootloader import grubscript
from ipa_kexec.bootloader import sdboot
from ipa_kexec.bootloader import uki
from ipa_kexec import budget as budget_mod
from ipa_kexec import cmdline
from ipa_kexec import discovery
from ipa_kexec import rootfs as rootfs_mod
from tests.fuzz import imagetree
from tests.fuzz import mutator

UKI_PATH = '/boot/efi/EFI/Linux/fuzz.efi'


class Context(object):
    """What a target may use besides its input.

    :ivar workdir: where ``prepare`` may write (a tmpfs when there is one).
    :ivar allowed: the directory ``run`` may read under; None: nothing.
    """

    def __init__(self, workdir):
        self.workdir = workdir
        self.allowed = None
        self._dirs = []

    def tempdir(self):
        path = os.path.realpath(tempfile.mkdtemp(dir=self.workdir))
        self._dirs.append(path)
        return path

    def cleanup(self):
        self.allowed = None
        while self._dirs:
            shutil.rmtree(self._dirs.pop(), ignore_errors=True)


# -- prepare: input bytes -> the parser's arguments ------------------------

def text(data, ctx=None):
    # As RootFS.read_text decodes a file of the image.
    return data.decode('utf-8', 'replace')


def parts(data, ctx=None):
    return [text(p) for p in data.split(mutator.SEP)]


def raw(data, ctx=None):
    return data


def _tree(data, ctx):
    base = ctx.tempdir()
    tree = imagetree.build(base, data)
    ctx.allowed = base
    return tree


def _uki_image(data, ctx):
    """An image whose only file is the input, as a UKI on the ESP."""
    return _tree(imagetree.encode([('F ' + UKI_PATH, data)]), ctx)


def _rootfs(tree):
    return rootfs_mod.RootFS(tree.root, tree.mounts)


# -- run: the parsers -------------------------------------------------------

def _env(texts, i):
    return grubenv.parse(texts[i]) if len(texts) > i else {}


def _lex(value):
    lexer = grubscript.Lexer(grubscript.prepare(value))
    while lexer.next()[0] != grubscript.EOF:
        pass


def _bls(texts):
    env = _env(texts, 0)
    entries = []
    for item in texts[1:]:
        entry_id, _sep, content = item.partition('\n')
        entries.append(bls.parse_entry(entry_id, content))
    entries.sort(key=functools.cmp_to_key(
        lambda a, b: bls.bls_cmp(a.id, b.id)))
    if not entries:
        return None
    chosen = bls.choose(entries, env)
    if isinstance(chosen.options, str):
        budget = budget_mod.ensure(None)
        bls.split_args(bls.expand_val(chosen.options, env, budget), env,
                       budget)
    return chosen


def _sdboot(texts):
    entries = []
    for item in texts[1:]:
        name, _sep, content = item.partition('\n')
        found = sdboot.parse_type1('/boot/efi', name, content)
        if found is not None:
            entries.append(found)
    entries.sort(key=functools.cmp_to_key(sdboot.compare))
    default = None
    for key, value in sdboot.key_values(texts[0], ' \t'):
        if key == 'default':
            default = value.lower()
    return sdboot.choose(entries, default) if entries else None


def _uki_text(value):
    uki.pick_name_version_sort_key(uki.parse_os_release(value))
    return uki.cmdline(value)


def _versions(value):
    # No discovery sorts more than its budget's entries: 64,000 lines
    # sorted three times would measure the harness, not the comparators.
    lines = value.splitlines()[:budget_mod.MAX_ENTRIES]
    lines.sort(key=entry.version_key)
    lines.sort(key=functools.cmp_to_key(bls.vercmp))
    lines.sort(key=functools.cmp_to_key(sdboot.strverscmp_improved))
    for line in lines:
        entry.parse_index(line)
    return entry.loader_cmdline(lines)


def _source(find):
    """A source of discovery on an image: BootEntry or None."""
    def run(tree):
        rootfs = _rootfs(tree)
        return find(rootfs, grubenv.load(rootfs))
    return run


def _uki(tree):
    rootfs = _rootfs(tree)
    uki.sections(rootfs, UKI_PATH)
    return uki.inspect(rootfs, UKI_PATH)


def _discover(tree):
    return discovery.discover(_rootfs(tree))


def _entry_or_none(result):
    return result is None or isinstance(result, entry.BootEntry)


def _is_boot_entry(result):
    return isinstance(result, entry.BootEntry)


Target = collections.namedtuple(
    'Target', 'name seeds prepare run check covers')

_B = 'ipa_kexec.bootloader.'
# name, seeds (a key of seeds.SEEDS), prepare, run, check of the result
# (None: any), modules covered.
TARGETS = (
    # Text in, result out.
    Target('grubscript', 'grub', text, _lex, None, (_B + 'grubscript',)),
    Target('grubenv', 'grubenv', text, grubenv.parse, None,
           (_B + 'grubenv',)),
    Target('bls', 'bls', parts, _bls, None, (_B + 'bls',)),
    Target('sdboot', 'loader', parts, _sdboot, None, (_B + 'sdboot',)),
    Target('uki_text', 'osrel', raw, _uki_text, None, (_B + 'uki',)),
    Target('shell', 'shell', text, cmdline.parse_shell_assignments, None,
           ('ipa_kexec.cmdline',)),
    Target('fstab', 'fstab', text,
           lambda value: list(cmdline.fstab_entries(value)), None,
           ('ipa_kexec.cmdline',)),
    Target('expand_vars', 'expand', parts,
           lambda texts: entry.expand_vars(texts[0], _env(texts, 1)), None,
           (_B + 'entry',)),
    Target('versions', 'versions', text, _versions, None, (_B + 'entry',)),
    # An image tree in, a source's entry out.
    Target('grub', 'tree-grub', _tree, _source(grub.find), _entry_or_none,
           (_B + 'grub',)),
    Target('bls_image', 'tree-bls', _tree, _source(bls.find),
           _entry_or_none, (_B + 'bls',)),
    Target('sdboot_image', 'tree-sdboot', _tree, _source(sdboot.find),
           _entry_or_none, (_B + 'sdboot',)),
    Target('extlinux', 'tree-extlinux', _tree, _source(extlinux.find),
           _entry_or_none, (_B + 'extlinux',)),
    Target('uki', 'uki', _uki_image, _uki, None, (_B + 'uki',)),
    # The whole discovery: a BootEntry or a KexecError.
    Target('discovery', 'tree', _tree, _discover, _is_boot_entry,
           ('ipa_kexec.discovery', 'ipa_kexec.rootfs', _B + 'files')),
)


def by_name(table=None):
    return collections.OrderedDict((t.name, t) for t in (table or TARGETS))
