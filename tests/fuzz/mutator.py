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

"""A deterministic mutation fuzzer on the standard library.

Input ``i`` of a target depends only on (seed, target, i): a finding is
reproduced from those three numbers, and a worker restarted after a hang
goes on at ``i + 1`` with the same inputs it would have produced.
"""

import random

# Separates the parts of a multi-part input (a grub.cfg and its grubenv,
# the files of an image tree); also a dictionary token, so that mutations
# add and remove parts.
SEP = b'\n--8<--\n'

TOKENS = (
    b'menuentry', b'submenu', b'{', b'}', b'$', b'${', b'}', b'"', b"'",
    b'\\', b'set default=', b'set saved_entry=', b'set next_entry=',
    b'linux', b'linuxefi', b'linux16', b'initrd', b'initrdefi', b'options',
    b'title', b'version', b'machine-id', b'LABEL', b'DEFAULT', b'KERNEL',
    b'APPEND', b'INITRD', b'FDT', b'MENU LABEL', b'TIMEOUT', b'default',
    b'timeout', b'include', b'source', b'configfile', b'load_env',
    b'save_env', b'if', b'then', b'else', b'fi', b'function', b'$root',
    b'${root}', b'($root)', b'(hd0,gpt2)', b'--id', b'--class',
    b'--unrestricted',
    b'$menuentry_id_option', b'saved_entry=', b'next_entry=', b'kernelopts=',
    b'$kernelopts', b'$tuned_initrd', b'GRUB_CMDLINE_LINUX=',
    b'GRUB_CMDLINE_LINUX_DEFAULT=', b'export ', b'UUID=', b'/boot', b'/',
    b'..', b'../../..', b'/etc/passwd', b'vmlinuz-', b'initrd.img-',
    b'initramfs-', b'.conf', b'.efi', b'>', b'@saved', b'*', b'?', b'[',
    b'\x00', b'\n', b'\r\n', b'\t', b' ', b'#', b';', b'=', b'\xff\xfe',
    '\u0663'.encode(), '\u00b2'.encode(), '\uff11'.encode(),
    '\u07c0'.encode(), b'-1', b'999999999', b'1000000000',
    b'0' * 64, b'9' * 5000, b'# GRUB Environment Block\n', SEP,
    b'@linux', b'@initrd', b'@cmdline', b'.linux', b'.initrd', b'.cmdline',
    b'MZ', b'PE\x00\x00',
)

_NON_ASCII_DIGITS = ('\u0663', '\u00b2', '\uff11', '\u07c0', '\u0e53',
                     '\U0001d7d9')


def _chunk(rng, data):
    """A random (start, end) slice of ``data``, shorter ones likelier."""
    if not data:
        return 0, 0
    start = rng.randrange(len(data))
    size = min(len(data) - start, 1 + int(rng.expovariate(1 / 16.0)))
    return start, start + size


def _flip(rng, data, seeds, tokens):
    if not data:
        return bytes([rng.randrange(256)])
    data = bytearray(data)
    pos = rng.randrange(len(data))
    if rng.random() < 0.5:
        data[pos] ^= 1 << rng.randrange(8)
    else:
        data[pos] = rng.choice(b'\x00\x01\x7f\x80\xff {}$"\'\\\n=#')
    return bytes(data)


def _insert_random(rng, data, seeds, tokens):
    pos = rng.randint(0, len(data))
    blob = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return data[:pos] + blob + data[pos:]


def _delete(rng, data, seeds, tokens):
    start, end = _chunk(rng, data)
    return data[:start] + data[end:]


def _duplicate(rng, data, seeds, tokens):
    start, end = _chunk(rng, data)
    pos = rng.randint(0, len(data))
    times = rng.choice((1, 1, 2, 3, 8))
    return data[:pos] + data[start:end] * times + data[pos:]


def _splice(rng, data, seeds, tokens):
    other = rng.choice(seeds)
    start, end = _chunk(rng, other)
    pos = rng.randint(0, len(data))
    if rng.random() < 0.5:
        # Replace the rest: crossover of two seeds.
        return data[:pos] + other[start:]
    return data[:pos] + other[start:end] + data[pos:]


def _token(rng, data, seeds, tokens):
    tok = rng.choice(tokens)
    pos = rng.randint(0, len(data))
    if rng.random() < 0.3:
        # Replace a word rather than insert: keeps lines well-formed.
        end = data.find(b' ', pos)
        end = len(data) if end < 0 else end
        return data[:pos] + tok + data[end:]
    return data[:pos] + tok + data[pos:]


def _special(rng, data, seeds, tokens):
    """Inputs known to break parsers: huge numbers, odd digits, nesting."""
    kind = rng.randrange(8)
    if kind == 0:
        blob = b'9' * rng.choice((10, 19, 20, 300, 4301, 6000))
    elif kind == 1:
        blob = ''.join(rng.choice(_NON_ASCII_DIGITS)
                       for _ in range(rng.randint(1, 3))).encode()
    elif kind == 2:
        depth = rng.choice((8, 70, 500, 3000))
        blob = b'submenu x {\n' * depth + b'menuentry y {\nlinux /v\n'
    elif kind == 3:
        blob = b'{' * rng.choice((70, 1000, 20000))
    elif kind == 4:
        # Variables that double at each expansion.
        blob = b'set a=xx\n' + b'set a="$a$a"\n' * rng.choice((8, 40))
    elif kind == 5:
        blob = b'${' * rng.choice((10, 1000))
    elif kind == 6:
        blob = b'\x00'
    else:
        blob = b'$a' * rng.choice((10, 1000))
    pos = rng.randint(0, len(data))
    return data[:pos] + blob + data[pos:]


def _lines(rng, data, seeds, tokens):
    lines = data.split(b'\n')
    if len(lines) < 2:
        return data
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    op = rng.randrange(3)
    if op == 0:
        lines[i], lines[j] = lines[j], lines[i]
    elif op == 1:
        lines.insert(j, lines[i])
    else:
        del lines[i]
    return b'\n'.join(lines)


_MUTATIONS = (
    (_flip, 4), (_insert_random, 2), (_delete, 3), (_duplicate, 2),
    (_splice, 2), (_token, 5), (_special, 1), (_lines, 2),
)
_FUNCS = [f for f, _w in _MUTATIONS]
_WEIGHTS = [w for _f, w in _MUTATIONS]


def _amplify(rng, data, big_len):
    """One line or chunk repeated up to ``big_len``: quadratic parsing."""
    start, end = _chunk(rng, data)
    piece = data[start:end] or b'x'
    if rng.random() < 0.5:
        piece = piece.replace(b'\n', b' ')
    times = max(1, big_len // len(piece))
    pos = rng.randint(0, len(data))
    return (data[:pos] + piece * times + data[pos:])[:big_len]


class Mutator(object):
    """Input ``index`` of ``target`` is ``generate(index)``.

    :param seeds: non-empty list of seed inputs (bytes).
    :param tokens: the dictionary.
    :param max_len: inputs are cut to this length...
    :param big_len: ...except one in ``1 / amplify`` inputs, grown to up
        to this length by repetition.
    """

    def __init__(self, seed, target, seeds, tokens=TOKENS, max_len=65536,
                 big_len=1024 * 1024, amplify=100):
        if not seeds:
            raise ValueError('a target needs at least one seed')
        self.seed = seed
        self.target = target
        self.seeds = list(seeds)
        self.tokens = tuple(tokens)
        self.max_len = max_len
        self.big_len = big_len
        self.amplify = amplify

    def rng(self, index):
        # Seeding with a str hashes it with SHA-512: the same on every
        # run and Python, whatever PYTHONHASHSEED is.
        return random.Random('%s:%s:%d' % (self.seed, self.target, index))

    def generate(self, index):
        if index < len(self.seeds):
            # Each seed runs once as is.
            return self.seeds[index]
        rng = self.rng(index)
        return self.mutate(rng, rng.choice(self.seeds))

    def mutate(self, rng, data):
        """``data`` after a few stacked mutations drawn from ``rng``."""
        count = 1 + min(15, int(rng.expovariate(1 / 2.5)))
        for func in rng.choices(_FUNCS, _WEIGHTS, k=count):
            data = func(rng, data, self.seeds, self.tokens)
            if len(data) > self.max_len:
                data = data[:self.max_len]
        if self.amplify and rng.randrange(self.amplify) == 0:
            data = _amplify(rng, data, rng.choice((self.max_len,
                                                   self.big_len)))
        return data
