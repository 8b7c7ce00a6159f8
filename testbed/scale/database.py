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

"""A private PostgreSQL server from Debian's packages, on 127.0.0.1.

``initdb`` into a private data directory owned by the ``postgres``
user, the server run as that user (never as root), listening on
127.0.0.1 and a private Unix socket directory only, with
``pg_stat_statements`` loaded so that the harness can count the
statements Ironic runs. Debian's ``postgresql`` package (15 on Debian
12) provides the binaries under ``/usr/lib/postgresql/VERSION/bin``.
"""

import glob
import os
import pwd
import shutil
import subprocess
import time

USER = 'postgres'
DB_NAME = 'ironic'
DB_USER = 'ironic'
DB_PASSWORD = 'scale-harness'


def bindir():
    found = sorted(glob.glob('/usr/lib/postgresql/*/bin/postgres'))
    if not found:
        raise RuntimeError('PostgreSQL server not found: apt-get install '
                           'postgresql (bindep: postgresql [platform:dpkg '
                           'scale])')
    return os.path.dirname(found[-1])


class PostgreSQL(object):
    """One PostgreSQL server in ``workdir``/pg.

    :param max_connections: the server's ``max_connections``; Ironic
        opens up to ``[database]max_pool_size + max_overflow`` per
        process.
    """

    def __init__(self, workdir, port, max_connections=400):
        self.workdir = os.path.abspath(workdir)
        self.datadir = os.path.join(self.workdir, 'pg', 'data')
        self.sockdir = os.path.join(self.workdir, 'pg', 'run')
        self.log = os.path.join(self.workdir, 'pg', 'postgres.log')
        self.port = port
        self.max_connections = max_connections
        self.bin = bindir()
        self.process = None

    @property
    def url(self):
        return ('postgresql+psycopg2://%s:%s@127.0.0.1:%d/%s'
                % (DB_USER, DB_PASSWORD, self.port, DB_NAME))

    def _as_postgres(self, argv, **kwargs):
        if os.geteuid() == 0:
            argv = ['runuser', '-u', USER, '--'] + argv
        return subprocess.run(argv, check=True, **kwargs)

    def _chown(self, path):
        if os.geteuid() == 0:
            pw = pwd.getpwnam(USER)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def start(self, timeout=60):
        if os.path.exists(os.path.join(self.workdir, 'pg')):
            shutil.rmtree(os.path.join(self.workdir, 'pg'))
        for path in (os.path.join(self.workdir, 'pg'), self.datadir,
                     self.sockdir):
            os.makedirs(path, exist_ok=True)
            self._chown(path)
        os.chmod(self.datadir, 0o700)
        # The postgres user must be able to reach the directory.
        path = self.workdir
        while path not in ('/', ''):
            mode = os.stat(path).st_mode
            if not mode & 0o001:
                os.chmod(path, mode | 0o001)
            path = os.path.dirname(path)
        self._as_postgres([os.path.join(self.bin, 'initdb'), '-D',
                           self.datadir, '-U', USER, '--auth=trust',
                           '-E', 'UTF8', '--locale=C.UTF-8'],
                          stdout=subprocess.DEVNULL)
        out = open(self.log, 'ab')
        argv = [os.path.join(self.bin, 'postgres'), '-D', self.datadir,
                '-p', str(self.port), '-c', 'listen_addresses=127.0.0.1',
                '-c', 'unix_socket_directories=%s' % self.sockdir,
                '-c', 'max_connections=%d' % self.max_connections,
                '-c', 'shared_buffers=256MB',
                '-c', 'fsync=on',
                '-c', 'shared_preload_libraries=pg_stat_statements',
                '-c', 'pg_stat_statements.track=all']
        if os.geteuid() == 0:
            argv = ['runuser', '-u', USER, '--'] + argv
        self.process = subprocess.Popen(
            ['nice', '-n', '19'] + argv, stdout=out, stderr=out,
            stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError('postgres exited: see %s' % self.log)
            if subprocess.run([os.path.join(self.bin, 'pg_isready'), '-h',
                               '127.0.0.1', '-p', str(self.port)],
                              stdout=subprocess.DEVNULL).returncode == 0:
                break
            time.sleep(0.5)
        else:
            raise TimeoutError('postgres not ready in %ss' % timeout)
        self.psql("CREATE USER %s PASSWORD '%s'" % (DB_USER, DB_PASSWORD))
        self.psql('CREATE DATABASE %s OWNER %s' % (DB_NAME, DB_USER))
        self.psql('CREATE EXTENSION pg_stat_statements', db=DB_NAME)

    def psql(self, sql, db='postgres'):
        result = self._as_postgres(
            [os.path.join(self.bin, 'psql'), '-h', self.sockdir, '-p',
             str(self.port), '-U', USER, '-d', db, '-At', '-F', '\t',
             '-v', 'ON_ERROR_STOP=1', '-c', sql],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return [line.split('\t') for line in result.stdout.splitlines()
                if line]

    def pid(self):
        try:
            with open(os.path.join(self.datadir, 'postmaster.pid')) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def counters(self):
        """Cumulative counters: statements, transactions, rows."""
        rows = self.psql(
            'SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, '
            'tup_inserted, tup_updated, tup_deleted, deadlocks '
            "FROM pg_stat_database WHERE datname = '%s'" % DB_NAME)
        names = ('xact_commit', 'xact_rollback', 'tup_returned',
                 'tup_fetched', 'tup_inserted', 'tup_updated',
                 'tup_deleted', 'deadlocks')
        values = dict(zip(names, (int(v) for v in rows[0])))
        stmt = self.psql('SELECT coalesce(sum(calls), 0), '
                         'coalesce(sum(total_exec_time), 0) '
                         'FROM pg_stat_statements', db=DB_NAME)
        values['statements'] = int(float(stmt[0][0]))
        values['statement_ms'] = float(stmt[0][1])
        conns = self.psql('SELECT count(*) FROM pg_stat_activity '
                          "WHERE datname = '%s'" % DB_NAME)
        values['connections'] = int(conns[0][0])
        return values

    def top_statements(self, limit=10):
        rows = self.psql(
            'SELECT calls, round(total_exec_time::numeric, 1), '
            'left(regexp_replace(query, \'\\s+\', \' \', \'g\'), 160) '
            'FROM pg_stat_statements ORDER BY calls DESC LIMIT %d' % limit,
            db=DB_NAME)
        return [{'calls': int(r[0]), 'ms': float(r[1]), 'query': r[2]}
                for r in rows]

    def reset_statements(self):
        self.psql('SELECT pg_stat_statements_reset()', db=DB_NAME)

    def cpu_seconds(self):
        """CPU seconds of every process of this server (from /proc)."""
        from testbed.scale import report
        pid = self.pid()
        return report.tree_cpu_seconds(pid) if pid else None

    def stop(self):
        if self.process is None:
            return
        try:
            self._as_postgres([os.path.join(self.bin, 'pg_ctl'), '-D',
                               self.datadir, '-m', 'fast', 'stop'],
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=60)
        except (subprocess.CalledProcessError,
                subprocess.TimeoutExpired):
            pass
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            pass
