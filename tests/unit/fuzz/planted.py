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

"""A target table with planted faults, to test the fuzzer's oracles.

Each target is well behaved on its seed (the workers' warm-up runs it)
and faulty on any other input.
"""

import os

from ipa_kexec import errors
from ironic_kexec import protocol
from tests.fuzz import imagetree
from tests.fuzz import targets

SEED = b'seed'


def _faulty(fault):
    def run(data):
        if data not in (SEED, SEED.decode()):
            return fault(data)
        return None
    return run


def _crash(data):
    return {}['missing']


def _hang(data):
    while True:
        pass


def _memory(data):
    return bytearray(8 * 1024 ** 3)


def _escape(data):
    return os.listdir('/')


def _refuse(data):
    raise errors.KexecError(protocol.REASON_TOO_LARGE, 'refused')


def _abort(data):
    os.abort()


def _read_tree(tree):
    # Inside the image: allowed. Through the image's symlink: an escape.
    try:
        with open(os.path.join(tree.root, 'etc/fstab'), 'rb') as f:
            f.read()
    except OSError:
        pass
    if os.path.lexists(os.path.join(tree.root, 'etc/out')):
        return os.listdir(os.path.join(tree.root, 'etc/out'))
    return None


SEEDS = {
    'seed': [SEED],
    'tree': [imagetree.encode([('F etc/fstab', b'/ ext4')])],
    'tree-escape': [imagetree.encode([('F etc/fstab', b'/ ext4'),
                                      ('L etc/out /', b'')])],
}

T = targets.Target
TARGETS = (
    T('crash', 'seed', targets.text, _faulty(_crash), None, ()),
    T('hang', 'seed', targets.text, _faulty(_hang), None, ()),
    T('memory', 'seed', targets.text, _faulty(_memory), None, ()),
    T('escape', 'seed', targets.text, _faulty(_escape), None, ()),
    T('refuse', 'seed', targets.text, _refuse, None, ()),
    T('abort', 'seed', lambda data, ctx: data, _faulty(_abort), None, ()),
    T('bad_result', 'seed', targets.text,
      _faulty(lambda data: 'not an entry'), lambda r: r is None, ()),
    T('tree', 'tree', targets._tree, _read_tree, None, ()),
    T('tree_escape', 'tree-escape', targets._tree, _read_tree, None, ()),
)
