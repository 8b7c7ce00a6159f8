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

"""The worker: runs one target's inputs under the oracle.

Started by :mod:`tests.fuzz.runner` as ``python -m tests.fuzz.worker
CONFIG_JSON``. Before each input it writes the input and its start time
into a shared status file, so that the runner's watchdog can name the
input of a hang and kill this process; findings are written to stdout as
JSON lines and their inputs saved under the results directory.
"""

import faulthandler
import hashlib
import importlib
import json
import logging
import mmap
import os
import random
import resource
import signal
import struct
import sys
import time
import traceback

HEADER = struct.Struct('<QdQQ')  # inputs done, start time, index, length
STATUS_DATA = 2 * 1024 * 1024 + 64
STATUS_SIZE = HEADER.size + STATUS_DATA
# The index of the seeds' warm-up run, in the status.
WARM_UP = 2 ** 63

# At most this many inputs saved per signature (plus a minimized one).
MAX_SAVED = 3
MINIMIZE_SECONDS = 10.0
MINIMIZE_RUNS = 3000
_AUDITED = ('open', 'os.listdir', 'os.scandir')


class Status(object):
    """The shared status file, seen by the runner's watchdog."""

    def __init__(self, path, create=False):
        if create:
            with open(path, 'wb') as f:
                f.truncate(STATUS_SIZE)
        self._file = open(path, 'r+b')
        self.map = mmap.mmap(self._file.fileno(), STATUS_SIZE)

    def begin(self, done, index, data):
        n = min(len(data), STATUS_DATA)
        self.map[HEADER.size:HEADER.size + n] = data[:n]
        HEADER.pack_into(self.map, 0, done, time.monotonic(), index,
                         len(data))

    def end(self, done):
        HEADER.pack_into(self.map, 0, done, 0.0, 0, 0)

    def read(self):
        """(done, start time or 0, index, input)."""
        done, start, index, length = HEADER.unpack_from(self.map, 0)
        n = min(length, STATUS_DATA)
        return done, start, index, bytes(
            self.map[HEADER.size:HEADER.size + n])

    def close(self):
        self.map.close()
        self._file.close()


def frame_name(frame):
    return '%s:%s:%d' % (os.path.basename(frame.filename), frame.name,
                         frame.lineno)


def signature(exc):
    """Exception type + innermost frame: one line per distinct bug."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = frame_name(frames[-1]) if frames else '?'
    return '%s @ %s' % (type(exc).__name__, where)


def _format(error):
    return ''.join(traceback.format_exception(
        type(error), error, error.__traceback__))


def _project_frame():
    """The innermost frame of the agent's code on the stack."""
    for frame in reversed(traceback.extract_stack()):
        if '%sipa_kexec%s' % (os.sep, os.sep) in frame.filename:
            return frame_name(frame)
    return '?'


def sig_hash(kind, sig):
    return hashlib.sha1(('%s %s' % (kind, sig)).encode()).hexdigest()[:12]


class Oracle(object):
    """Runs one input and says what went wrong, if anything."""

    def __init__(self, target, ctx, kexec_error):
        self.target = target
        self.ctx = ctx
        self.kexec_error = kexec_error
        self.active = False
        self._in_hook = False
        self.escapes = []

    # The audit hook: installed once, effective only while ``run`` runs.
    def hook(self, event, args):
        if not self.active or self._in_hook or event not in _AUDITED:
            return
        path = args[0] if args else None
        flags = args[2] if event == 'open' and len(args) > 2 else 0
        if isinstance(path, int):
            return
        if path is None:
            path = '.'
        self._in_hook = True
        try:
            self._check_path(event, path, flags or 0)
        finally:
            self._in_hook = False

    def _check_path(self, event, path, flags):
        path = os.path.abspath(os.fsdecode(path))
        if flags & os.O_NOFOLLOW:
            real = os.path.join(os.path.realpath(os.path.dirname(path)),
                                os.path.basename(path))
        else:
            real = os.path.realpath(path)
        allowed = self.ctx.allowed
        if allowed is None or not (real == allowed or
                                   real.startswith(allowed + os.sep)):
            self.escapes.append((event, real, _project_frame()))

    def install(self):
        sys.addaudithook(self.hook)

    def run(self, data):
        """[(kind, signature, detail)] for ``data``; [] when all is well."""
        findings = []
        self.escapes = []
        try:
            args = self.target.prepare(data, self.ctx)
        except Exception as e:
            self.ctx.cleanup()
            return [('crash', 'prepare: ' + signature(e),
                     traceback.format_exc())]
        result = error = None
        self.active = True
        try:
            result = self.target.run(args)
        except BaseException as e:
            error = e
        finally:
            # Before anything else: formatting a traceback reads sources.
            self.active = False
            escapes = self.escapes
            self.escapes = []
            self.ctx.cleanup()
        if isinstance(error, KeyboardInterrupt):
            raise error
        if isinstance(error, MemoryError):
            findings.append(('memory', signature(error), _format(error)))
        elif error is not None and not isinstance(error, self.kexec_error):
            findings.append(('crash', signature(error), _format(error)))
        elif error is None and self.target.check and \
                not self.target.check(result):
            findings.append(('crash', 'BadResult @ %s: %s' % (
                self.target.name, type(result).__name__), repr(result)))
        if escapes:
            event, _path, where = escapes[0]
            findings.append(('escape', '%s @ %s' % (event, where),
                             '\n'.join('%s %s (%s)' % e for e in escapes)))
        return findings


def minimize(oracle, data, kind, sig, status, done):
    """A shorter input with the same finding (delta debugging, bounded).

    Each candidate goes through ``status``: one that hangs is killed by the
    watchdog and reported as a hang like any other input.
    """
    deadline = time.monotonic() + MINIMIZE_SECONDS
    runs = 0

    def same(candidate):
        nonlocal runs
        runs += 1
        status.begin(done, 0, candidate)
        try:
            return any(k == kind and s == sig
                       for k, s, _d in oracle.run(candidate))
        finally:
            status.end(done)

    best = data
    for sep in (b'\n', None):
        chunk = len(best) // 2
        while chunk >= 1:
            pos = 0
            while pos < len(best):
                if time.monotonic() > deadline or runs >= MINIMIZE_RUNS:
                    return best
                if sep is None:
                    candidate = best[:pos] + best[pos + chunk:]
                else:
                    # Whole lines first: far fewer runs on a config file.
                    start = best.rfind(sep, 0, pos) + 1
                    end = best.find(sep, pos + chunk)
                    end = len(best) if end < 0 else end + 1
                    candidate = best[:start] + best[end:]
                if candidate != best and same(candidate):
                    best = candidate
                else:
                    pos += chunk
            chunk //= 2
    return best


class Reporter(object):
    """Saves findings' inputs and tells the runner about them."""

    def __init__(self, results, target, out=sys.stdout):
        self.dir = os.path.join(results, target)
        self.out = out

    def sig_dir(self, kind, sig):
        path = os.path.join(self.dir, kind, sig_hash(kind, sig))
        if not os.path.isdir(path):
            os.makedirs(path, exist_ok=True)
            with open(os.path.join(path, 'signature.txt'), 'w') as f:
                f.write('%s: %s\n' % (kind, sig))
        return path

    def save(self, kind, sig, index, data, detail):
        path = self.sig_dir(kind, sig)
        saved = [n for n in os.listdir(path) if n.startswith('input-')]
        name = None
        if len(saved) < MAX_SAVED:
            name = os.path.join(path, 'input-%d.bin' % index)
            with open(name, 'wb') as f:
                f.write(data)
            with open(name[:-4] + '.txt', 'w') as f:
                f.write(detail)
        return name

    def message(self, **fields):
        self.out.write(json.dumps(fields) + '\n')
        self.out.flush()


def _setup_limits(memory_mb):
    if memory_mb:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # A crash of the interpreter leaves no core dump behind.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _table(config):
    module = importlib.import_module(config['table'])
    for target in module.TARGETS:
        if target.name == config['target']:
            return module, target
    raise SystemExit('no target %r in %s' % (config['target'],
                                             config['table']))


def _load(config):
    if config['engine'] == 'atheris':
        import atheris
        with atheris.instrument_imports(include=['ipa_kexec']):
            return _table(config)
    return _table(config)


def _seeds(config, module, target):
    from tests.fuzz import seeds as seeds_mod
    table_seeds = getattr(module, 'SEEDS', seeds_mod.SEEDS)
    return table_seeds[target.seeds]


class Worker(object):

    def __init__(self, config):
        self.config = config
        from ipa_kexec import errors
        module, self.target = _load(config)
        self.seeds = _seeds(config, module, self.target)
        from tests.fuzz import targets
        ctx = targets.Context(config['workdir'])
        self.oracle = Oracle(self.target, ctx, errors.KexecError)
        self.status = Status(config['status'])
        self.reporter = Reporter(config['results'], self.target.name)
        self.done = 0
        self.deadline = time.monotonic() + config['seconds']
        self.minimize = config.get('minimize', True)

    def warm_up(self):
        # Imports and caches a parser does on first use are not the
        # image's reads.
        for data in self.seeds:
            self.status.begin(0, WARM_UP, data)
            self.oracle.run(data)
        self.status.end(0)
        self.oracle.install()

    def one(self, index, data):
        self.status.begin(self.done, index, data)
        findings = self.oracle.run(data)
        self.done += 1
        self.status.end(self.done)
        for kind, sig, detail in findings:
            saved = self.reporter.save(kind, sig, index, data, detail)
            minimized = os.path.join(self.reporter.sig_dir(kind, sig),
                                     'minimized.bin')
            if self.minimize and not os.path.exists(minimized):
                # Once per signature, by whichever worker meets it first.
                small = minimize(self.oracle, data, kind, sig, self.status,
                                 self.done)
                with open(minimized, 'wb') as f:
                    f.write(small)
            self.reporter.message(kind=kind, sig=sig, index=index,
                                  size=len(data), saved=saved,
                                  minimized=minimized)

    def run_mutate(self):
        from tests.fuzz import mutator
        fuzz = mutator.Mutator(self.config['seed'], self.target.name,
                               self.seeds, max_len=self.config['max_len'])
        end = self.config['start'] + self.config['count']
        parent = os.getppid()
        for index in range(self.config['start'], end):
            if not index % 256 and (time.monotonic() > self.deadline or
                                    os.getppid() != parent):
                # Out of time, or the runner is gone.
                break
            self.one(index, fuzz.generate(index))

    def run_atheris(self):
        """libFuzzer's coverage feedback with this fuzzer's mutations.

        Half the mutations are libFuzzer's own, half those of
        :class:`tests.fuzz.mutator.Mutator` (dictionary, huge numbers,
        nesting, amplification), applied to the inputs libFuzzer keeps
        for the coverage they reach.
        """
        import atheris
        from tests.fuzz import mutator
        corpus = os.path.join(self.config['workdir'],
                              'corpus-%s' % self.target.name)
        os.makedirs(corpus, exist_ok=True)
        for i, data in enumerate(self.seeds):
            with open(os.path.join(corpus, 'seed-%d' % i), 'wb') as f:
                f.write(data)
        fuzz = mutator.Mutator(self.config['seed'], self.target.name,
                               self.seeds, max_len=self.config['max_len'])
        counter = [self.config['start']]

        parent = os.getppid()

        def test_one_input(data):
            counter[0] += 1
            if os.getppid() != parent:
                os._exit(0)
            self.one(counter[0] - 1, data)

        def custom_mutator(data, max_size, seed):
            rng = random.Random(seed)
            if rng.random() < 0.5:
                return atheris.Mutate(data, min(max_size, fuzz.max_len))
            return fuzz.mutate(rng, data)[:max_size]

        seconds = max(1, int(self.deadline - time.monotonic()))
        argv = [sys.argv[0], '-runs=%d' % self.config['count'],
                '-seed=%d' % (1 + self.config['seed'] % 2 ** 31),
                '-max_len=%d' % fuzz.big_len, '-len_control=0',
                '-max_total_time=%d' % seconds,
                # The watchdog's timeout, not atheris': it names the input.
                '-timeout=%d' % 10 ** 6,
                '-rss_limit_mb=0', '-malloc_limit_mb=0',
                # SIGUSR1 is the watchdog's: faulthandler's stack dump.
                '-handle_usr1=0', '-handle_usr2=0',
                '-print_final_stats=1', corpus]
        atheris.Setup(argv, test_one_input, custom_mutator=custom_mutator)
        atheris.Fuzz()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    config = json.loads(argv[0])
    _setup_limits(config.get('memory_mb'))
    trace = open(config['trace'], 'w')
    faulthandler.enable(trace)
    faulthandler.register(signal.SIGUSR1, file=trace, all_threads=False)
    logging.disable(logging.CRITICAL)
    # Deep recursion is a finding, not a crash of the interpreter.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    worker = Worker(config)
    worker.warm_up()
    if config['engine'] == 'atheris':
        worker.run_atheris()
    else:
        worker.run_mutate()
    worker.reporter.message(kind='done', inputs=worker.done)
    return 0


if __name__ == '__main__':
    sys.exit(main())
