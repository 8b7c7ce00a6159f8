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

"""Runs the fuzz targets in worker subprocesses, under a watchdog.

Each target runs in its own worker (:mod:`tests.fuzz.worker`), at most
``--jobs`` at a time. An input that runs longer than ``--timeout`` is a
hang: the watchdog dumps the worker's stack, kills it, saves the input and
starts a new worker at the next input. A worker limited to
``--memory-mb`` of address space turns a blow-up into a MemoryError.

Exit status: 0 when no input found anything, 1 on any crash, hang, memory
error or escape, 2 when the fuzzer itself failed.
"""

import argparse
import importlib
import importlib.util
import json
import math
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from tests.fuzz import worker as worker_mod

# A blocked input (a read that never returns) uses no CPU: it is a hang
# after this many times --timeout on the wall clock.
WALL_FACTOR = 10
_CLK_TCK = os.sysconf('SC_CLK_TCK')


def cpu_seconds(pid):
    """User plus system CPU seconds of a process so far (0.0 if gone)."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            stat = f.read()
    except OSError:
        return 0.0
    # The command name (field 2) may hold spaces: fields after its ')'.
    fields = stat.rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


KINDS = ('crash', 'hang', 'memory', 'escape')
TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
# A worker that dies this often is broken, not fuzzing.
MAX_RESTARTS = 500
_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+) in (\S+)')


def _parse_args(argv):
    p = argparse.ArgumentParser(
        prog='python -m tests.fuzz',
        description='Fuzz the boot loader parsers and discovery.')
    p.add_argument('--targets', default='',
                   help='comma-separated target names (default: all)')
    p.add_argument('--inputs', type=int, default=None,
                   help='inputs per target (default 10000)')
    p.add_argument('--total', type=int, default=None,
                   help='inputs in total, shared out evenly between the '
                   'targets (instead of --inputs)')
    p.add_argument('--seconds', type=float, default=None,
                   help='stop each target after this many seconds')
    p.add_argument('--seed', type=int, default=0,
                   help='input i of a target depends only on seed, target '
                   'and i (mutate engine)')
    p.add_argument('--engine', default='mutate',
                   help='mutate: the deterministic stdlib fuzzer; atheris: '
                   'coverage-guided (needs the atheris package); '
                   'mutate,atheris: half the inputs each; auto: '
                   'mutate,atheris when atheris is installed, else mutate')
    p.add_argument('--jobs', type=int, default=os.cpu_count() or 1)
    p.add_argument('--timeout', type=float, default=2.0,
                   help='CPU seconds one input may use before it is a hang '
                   '(an input blocked without using the CPU is one after '
                   'WALL_FACTOR times as long on the wall clock)')
    p.add_argument('--memory-mb', type=int, default=1024,
                   help='address space of a worker (RLIMIT_AS)')
    p.add_argument('--max-len', type=int, default=65536)
    p.add_argument('--results', default=None,
                   help='directory for findings and the summary')
    p.add_argument('--workdir', default=None,
                   help='scratch directory for image trees (default: '
                   '/dev/shm when there is one)')
    p.add_argument('--no-minimize', action='store_true')
    p.add_argument('--table', default='tests.fuzz.targets',
                   help=argparse.SUPPRESS)
    p.add_argument('--list', action='store_true', help='list the targets')
    p.add_argument('--write-seeds', metavar='DIR',
                   help='write the seed inputs, one directory per target')
    p.add_argument('--reproduce', metavar='FILE',
                   help='run FILE once through --targets (one target), '
                   'in this process, and print what it finds')
    return p.parse_args(argv)


def _engines(name):
    if name == 'auto':
        return (['mutate', 'atheris'] if importlib.util.find_spec('atheris')
                else ['mutate'])
    engines = [e for e in name.split(',') if e]
    if not engines or set(engines) - {'mutate', 'atheris'}:
        raise SystemExit('--engine: mutate, atheris, both or auto')
    return engines


def _workdir(base):
    if base is None:
        base = '/dev/shm' if os.access('/dev/shm', os.W_OK) else None
    return tempfile.mkdtemp(prefix='ipa-kexec-fuzz-', dir=base)


def hang_signature(trace):
    """The innermost frame of the agent's code in a faulthandler dump."""
    block = trace.rsplit('most recent call first', 1)[-1]
    frames = [m.groups() for m in map(_FRAME.match, block.splitlines())
              if m]
    if not frames:
        return 'Hang @ ?'
    mine = [f for f in frames if '%sipa_kexec%s' % (os.sep, os.sep) in f[0]]
    path, _line, func = (mine or frames)[0]
    where = '%s:%s' % (os.path.basename(path), func)
    if mine and frames[0] != mine[0]:
        where += ' in %s:%s' % (os.path.basename(frames[0][0]),
                                frames[0][2])
    return 'Hang @ ' + where


class Job(object):
    """One target's campaign, over as many workers as hangs need."""

    def __init__(self, target, args, count, engine, rundir):
        self.target = target
        self.args = args
        self.count = count
        self.engine = engine
        self.rundir = os.path.join(rundir, '%s-%s' % (target, engine))
        os.makedirs(self.rundir)
        self.status_path = os.path.join(self.rundir, 'status')
        self.trace_path = os.path.join(self.rundir, 'trace')
        self.log_path = os.path.join(args.results, target,
                                     'worker-%s.log' % engine)
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        worker_mod.Status(self.status_path, create=True).close()
        self.status = worker_mod.Status(self.status_path)
        self.next_index = 0
        self.inputs = 0
        self.seconds = 0.0
        self.restarts = 0
        self.counts = dict.fromkeys(KINDS, 0)
        self.signatures = {}
        self.errors = []
        self.proc = None
        self.finished = False
        # The input being watched: its start stamp and the worker's CPU
        # time then.
        self._watched = (None, 0.0)
        self.messages = queue.Queue()

    # -- the worker --------------------------------------------------------

    def start(self):
        remaining = self.count - self.inputs
        left = (self.args.seconds - self.seconds
                if self.args.seconds else 1e9)
        if remaining <= 0 or left <= 0:
            self.finished = True
            return
        config = {
            'table': self.args.table, 'target': self.target,
            'engine': self.engine,
            'seed': self.args.seed + (self.restarts
                                      if self.engine == 'atheris' else 0),
            'start': self.next_index, 'count': remaining, 'seconds': left,
            'max_len': self.args.max_len, 'memory_mb': self.args.memory_mb,
            'status': self.status_path, 'trace': self.trace_path,
            'results': self.args.results, 'workdir': self.rundir,
            'minimize': not self.args.no_minimize,
        }
        env = dict(os.environ)
        env['PYTHONPATH'] = os.pathsep.join(
            [TOP] + [p for p in [env.get('PYTHONPATH')] if p])
        self.status.end(0)
        self.log = open(self.log_path, 'ab')
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'tests.fuzz.worker', json.dumps(config)],
            stdout=subprocess.PIPE, stderr=self.log, cwd=self.rundir,
            env=env)
        self.started = time.monotonic()
        self.reader = threading.Thread(target=self._read,
                                       args=(self.proc.stdout,),
                                       daemon=True)
        self.reader.start()

    def _read(self, stream):
        for line in stream:
            try:
                self.messages.put(json.loads(line))
            except ValueError:
                # Not ours: a parser or libFuzzer printing to stdout.
                continue

    def _drain(self):
        while True:
            try:
                msg = self.messages.get_nowait()
            except queue.Empty:
                return
            if msg.get('kind') in KINDS:
                self.record(msg['kind'], msg['sig'], msg['index'],
                            msg.get('saved'), msg.get('minimized'))

    def record(self, kind, sig, index, saved=None, minimized=None):
        self.counts[kind] += 1
        entry = self.signatures.setdefault((kind, sig), {
            'kind': kind, 'signature': sig, 'count': 0,
            'first_index': index, 'inputs': [], 'minimized': None})
        entry['count'] += 1
        if saved:
            entry['inputs'].append(saved)
        if minimized:
            entry['minimized'] = minimized

    def _end_worker(self, extra_inputs=0):
        self.reader.join(timeout=5)
        self._drain()
        done, _start, _index, _data = self.status.read()
        self.inputs += done + extra_inputs
        self.seconds += time.monotonic() - self.started
        self.log.close()
        self.proc = None

    def poll(self):
        """Watch the worker; False once the campaign is over."""
        if self.proc is None:
            if self.finished:
                return False
            self.start()
            return not self.finished
        self._drain()
        done, start, index, data = self.status.read()
        rc = self.proc.poll()
        if rc is None:
            if start and self._over_time(start):
                self._hang(index, data)
            return True
        if rc == 0 or not start:
            self._end_worker()
            if rc != 0:
                self.errors.append('worker exited with %d outside an input '
                                   '(see %s)' % (rc, self.log_path))
            self.finished = True
            return False
        # Died in an input: the interpreter crashed (or libFuzzer stopped).
        trace = self._trace()
        sig = 'WorkerDied(%d) %s' % (rc, hang_signature(trace)[len(
            'Hang '):])
        self._save(index, data, 'crash', sig, trace)
        self._restart(index, extra_inputs=1)
        return True

    def _over_time(self, start):
        """Whether the input that started at ``start`` is a hang.

        CPU time, not the wall clock: the machine may be busy with other
        work, and a linear parser on a 1 MiB input must not be called a
        hang because it waited for a CPU.
        """
        cpu = cpu_seconds(self.proc.pid)
        if self._watched[0] != start:
            self._watched = (start, cpu)
        used = cpu - self._watched[1]
        return (used > self.args.timeout
                or time.monotonic() - start > WALL_FACTOR * self.args.timeout)

    def _hang(self, index, data):
        try:
            # faulthandler dumps the stack from its C signal handler, even
            # in a loop that never returns to Python.
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(0.3)
        except OSError:
            pass
        self.proc.kill()
        self.proc.wait()
        trace = self._trace()
        self._save(index, data, 'hang', hang_signature(trace), trace)
        self._restart(index, extra_inputs=1)

    def _restart(self, index, extra_inputs):
        if index == worker_mod.WARM_UP:
            # A seed: the next worker would meet it again.
            self._end_worker()
            self.errors.append('a seed fails in the warm-up (see above)')
            self.finished = True
            return
        self._end_worker(extra_inputs)
        self.next_index = index + 1
        self.restarts += 1
        if self.restarts > MAX_RESTARTS:
            self.errors.append('more than %d workers died' % MAX_RESTARTS)
            self.finished = True

    def _trace(self):
        try:
            with open(self.trace_path, errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def _save(self, index, data, kind, sig, detail):
        reporter = worker_mod.Reporter(self.args.results, self.target)
        saved = reporter.save(kind, sig, index, data, detail)
        path = os.path.join(reporter.sig_dir(kind, sig), 'minimized.bin')
        if not os.path.exists(path):
            # Hangs are not minimized (each try could take the timeout);
            # the first input stands for its signature.
            shutil.copyfile(saved, path) if saved else None
        self.record(kind, sig, index, saved, path)

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self._end_worker()

    def summary(self):
        rate = self.inputs / self.seconds if self.seconds else 0.0
        return {
            'target': self.label, 'engine': self.engine,
            'inputs': self.inputs, 'seconds': round(self.seconds, 2),
            'inputs_per_second': round(rate, 1),
            'crashes': self.counts['crash'], 'hangs': self.counts['hang'],
            'memory_errors': self.counts['memory'],
            'escapes': self.counts['escape'],
            'unique_signatures': len(self.signatures),
            'signatures': sorted(self.signatures.values(),
                                 key=lambda s: (s['kind'], s['signature'])),
            'errors': self.errors,
        }


COLUMNS = (('target', 'target'), ('inputs', 'inputs'),
           ('seconds', 'seconds'), ('inputs/s', 'inputs_per_second'),
           ('crashes', 'crashes'), ('hangs', 'hangs'),
           ('memory', 'memory_errors'), ('escapes', 'escapes'),
           ('unique', 'unique_signatures'))


def text_table(report):
    rows = [[h for h, _k in COLUMNS]]
    for s in report['targets'] + [report['total']]:
        rows.append([str(s[k]) for _h, k in COLUMNS])
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ['  '.join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, '-' * len(lines[0]))
    lines.insert(len(lines) - 1, '-' * len(lines[0]))
    out = ['engine %s, seed %s, timeout %ss, memory %d MiB' % (
        ','.join(report['engines']), report['seed'], report['timeout'],
        report['memory_mb'])] + lines
    for s in report['targets']:
        for sig in s['signatures']:
            out.append('%s %s: %d x %s  (%s)' % (
                s['target'], sig['kind'], sig['count'], sig['signature'],
                sig['minimized'] or (sig['inputs'] or ['not saved'])[0]))
        for error in s['errors']:
            out.append('%s ERROR: %s' % (s['target'], error))
    return '\n'.join(out) + '\n'


def _report(jobs, args, engines, seconds):
    targets = [j.summary() for j in jobs]
    total = {'target': 'TOTAL', 'seconds': round(seconds, 2)}
    for key in ('inputs', 'crashes', 'hangs', 'memory_errors', 'escapes',
                'unique_signatures'):
        total[key] = sum(t[key] for t in targets)
    total['inputs_per_second'] = round(total['inputs'] / seconds, 1) \
        if seconds else 0.0
    return {'engines': engines, 'seed': args.seed, 'timeout': args.timeout,
            'memory_mb': args.memory_mb, 'jobs': args.jobs,
            'targets': targets, 'total': total}


def _counts(args, names):
    if args.total is not None:
        return int(math.ceil(args.total / float(len(names))))
    if args.inputs is not None:
        return args.inputs
    return 10**12 if args.seconds else 10000


def _reproduce(args, table):
    from ipa_kexec import errors
    from tests.fuzz import targets as targets_mod
    names = [n for n in args.targets.split(',') if n]
    if len(names) != 1 or names[0] not in table:
        print('--reproduce needs --targets with one of: %s'
              % ', '.join(table))
        return 2
    with open(args.reproduce, 'rb') as f:
        data = f.read()
    ctx = targets_mod.Context(_workdir(args.workdir))
    oracle = worker_mod.Oracle(table[names[0]], ctx, errors.KexecError)
    oracle.install()
    try:
        findings = oracle.run(data)
    finally:
        shutil.rmtree(ctx.workdir, ignore_errors=True)
    for kind, sig, detail in findings:
        print('%s: %s\n%s' % (kind, sig, detail))
    print('%d finding(s)' % len(findings))
    return 1 if findings else 0


def _write_seeds(args, table):
    from tests.fuzz import seeds
    module = importlib.import_module(args.table)
    table_seeds = getattr(module, 'SEEDS', seeds.SEEDS)
    for name, target in table.items():
        path = os.path.join(args.write_seeds, name)
        os.makedirs(path, exist_ok=True)
        for i, data in enumerate(table_seeds[target.seeds]):
            with open(os.path.join(path, 'seed-%d' % i), 'wb') as f:
                f.write(data)
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt()


def main(argv=None):
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    module = importlib.import_module(args.table)
    table = {t.name: t for t in module.TARGETS}
    if args.list:
        print('\n'.join(table))
        return 0
    if args.write_seeds:
        return _write_seeds(args, table)
    if args.reproduce:
        return _reproduce(args, table)
    names = [n for n in args.targets.split(',') if n] or list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        print('unknown target(s) %s; targets: %s'
              % (', '.join(unknown), ', '.join(table)))
        return 2
    engines = _engines(args.engine)
    if args.results is None:
        args.results = tempfile.mkdtemp(prefix='ipa-kexec-fuzz-results-')
    args.results = os.path.abspath(args.results)
    os.makedirs(args.results, exist_ok=True)
    rundir = _workdir(args.workdir)
    count = _counts(args, names)
    jobs = []
    for name in names:
        for engine in engines:
            job = Job(name, args, count // len(engines) + (
                engine == engines[0]) * (count % len(engines)), engine,
                rundir)
            job.label = name if len(engines) == 1 else '%s/%s' % (
                name, engine)
            jobs.append(job)
    pending = list(jobs)
    running = []
    began = time.monotonic()
    interrupted = False
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while pending or running:
            while pending and len(running) < max(1, args.jobs):
                running.append(pending.pop(0))
            running = [j for j in running if j.poll()]
            time.sleep(0.05)
    except KeyboardInterrupt:
        # Report what ran so far.
        interrupted = True
    finally:
        for job in jobs:
            job.stop()
            job.status.close()
        shutil.rmtree(rundir, ignore_errors=True)
    report = _report(jobs, args, engines, time.monotonic() - began)
    report['interrupted'] = interrupted
    with open(os.path.join(args.results, 'summary.json'), 'w') as f:
        json.dump(report, f, indent=2, sort_keys=True)
    table_text = text_table(report)
    with open(os.path.join(args.results, 'summary.txt'), 'w') as f:
        f.write(table_text)
    sys.stdout.write(table_text)
    print('results in %s' % args.results)
    if interrupted or any(j.errors for j in jobs):
        return 2
    total = report['total']
    findings = (total['crashes'] + total['hangs'] + total['memory_errors'] +
                total['escapes'])
    return 1 if findings else 0
