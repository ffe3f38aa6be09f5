"""PostgreSQL and NATS for benchmarks of several `corridor serve` processes: a throwaway
PostgreSQL server that keeps its durability defaults, a nats-server with its monitoring port,
the CPU time each of them uses, and a sampler of who holds the server's writer lock.

The PostgreSQL cluster is made with the installed binaries (Debian keeps them in
/usr/lib/postgresql/N/bin): `initdb` into a temp dir on the normal disk, then `postgres` as a
child of this process, listening on 127.0.0.1 only; as root both run as the `postgres` user
(initdb refuses root). Unlike the tests' cluster (tests/pg.py) it keeps `fsync` and
`synchronous_commit` on, since a benchmark of durable acks must pay for the commit's fsync.
`track_wal_io_timing` is on so that `pg_stat_wal` says how long those fsyncs took: it reads a
clock and changes nothing about durability. With `statements` the server also loads
pg_stat_statements, which counts and times every statement (a little overhead per statement).
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

from corridor.server.storage.postgres import WRITER_LOCK

SUPERUSER = "corridor"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# PostgreSQL shows a bigint advisory lock key in pg_locks as its high and low 32 bits.
WRITER_LOCK_KEY = (WRITER_LOCK >> 32, WRITER_LOCK & 0xFFFF_FFFF)
SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "wal_sync_method",
    "full_page_writes",
    "commit_delay",
    "shared_buffers",
    "max_wal_size",
    "track_wal_io_timing",
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on just now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds of a process (all its threads), plus with `children` those of its children
    that have exited and been waited for."""
    # After the parenthesised command name: utime, stime, cutime, cstime are fields 12-15.
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return ticks / CLK_TCK


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            if int(stat.rpartition(")")[2].split()[1]) == parent:
                found.append(int(entry.name))
    return found


def _stop(proc: subprocess.Popen | None, sig: int, timeout: float) -> int | None:
    """Send `sig`, wait; SIGKILL after `timeout`. Returns the exit code (None if killed)."""
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        return None


class Postgres:
    """One throwaway PostgreSQL server in a temp dir of its own; `stop()` or `kill()` ends it
    (the caller removes the dir)."""

    def __init__(self, workdir: Path, statements: bool = False):
        self.statements = statements
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
        initdb = found[-1] if found else shutil.which("initdb")
        if initdb is None:
            raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin = Path(initdb).parent
        self.workdir = workdir
        self.data = workdir / "data"
        self.log_path = workdir / "postgres.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(workdir, owner.pw_uid, owner.pw_gid)
            self._as = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}

    def start(self, timeout: float) -> None:
        """initdb, start, and return once it takes connections."""
        initdb = [str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", SUPERUSER, "-E", "UTF8", "--locale=C"]
        subprocess.run(initdb, check=True, capture_output=True, timeout=120, **self._as)
        options = ["-c", "listen_addresses=127.0.0.1", "-p", str(self.port), "-k", str(self.workdir)]
        options += ["-c", "track_wal_io_timing=on"]
        if self.statements:
            options += ["-c", "shared_preload_libraries=pg_stat_statements", "-c", "pg_stat_statements.track_utility=on"]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(self.bin / "postgres"), "-D", str(self.data), *options],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C on the bench must not bypass the orderly stop
                **self._as,
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.dsn(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not start:\n{self.log_tail()}") from None
                time.sleep(0.1)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.dsn(database), autocommit=True)

    def create_database(self, name: str) -> str:
        """A new empty database; returns its DSN."""
        with self.connect() as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def settings(self) -> dict[str, str]:
        """The settings that decide what a durable commit costs."""
        with self.connect() as conn:
            return {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in SETTINGS}

    def cpu_seconds(self, exclude: set[int]) -> dict[str, float]:
        """CPU seconds so far: `backends` (the sessions of serve processes), `background`
        (the postmaster, WAL writer, checkpointer, autovacuum, and children that have exited).
        Sessions whose pid is in `exclude` (the benchmark's own) are left out."""
        assert self.proc is not None
        totals = {"backends": 0.0, "background": process_cpu(self.proc.pid, children=True)}
        for pid in _children(self.proc.pid):
            if pid in exclude:
                continue
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                cpu = process_cpu(pid)
            except OSError:
                continue
            # A session's title is "postgres: USER DB HOST(PORT) STATE".
            totals["backends" if "127.0.0.1(" in title else "background"] += cpu
        return totals

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> int | None:
        """Fast shutdown (SIGINT): sessions end, then a checkpoint."""
        return _stop(self.proc, signal.SIGINT, 60)

    def kill(self) -> None:
        """Immediate shutdown (SIGQUIT), for error paths."""
        _stop(self.proc, signal.SIGQUIT, 10)


class WalCounters:
    """The cluster-wide counters a durable commit moves, read on one connection of our own."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn
        self.pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]

    def read(self) -> dict[str, float]:
        # The sessions that move them publish these counters about once a second.
        wal = self.conn.execute("SELECT wal_bytes, wal_write, wal_sync, wal_sync_time FROM pg_stat_wal").fetchone()
        return {"wal_bytes": float(wal[0]), "wal_write": wal[1], "wal_sync": wal[2], "wal_sync_ms": wal[3]}


class Statements:
    """What pg_stat_statements counted in one database since `reset()`: statements per message,
    and the most frequent ones with their mean execution time in the server."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn
        self.pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def reset(self) -> None:
        self.conn.execute("SELECT pg_stat_statements_reset()")

    def rows(self, database: str) -> list[tuple[str, int, float]]:
        """(query, calls, total execution ms) of every statement counted, most frequent first."""
        return self.conn.execute(
            "SELECT query, calls, total_exec_time FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
            " WHERE d.datname = %s ORDER BY calls DESC",
            (database,),
        ).fetchall()


def statements_summary(rows: list[tuple[str, int, float]], messages: int, top: int = 10) -> dict[str, Any]:
    """Statements and their execution time per message, and the most frequent statements."""
    per = max(messages, 1)
    return {
        "per_message": round(sum(calls for _, calls, _ in rows) / per, 2),
        "exec_ms_per_message": round(sum(ms for _, _, ms in rows) / per, 3),
        "top": [
            {"calls_per_message": round(calls / per, 2), "mean_ms": round(ms / calls, 3), "query": " ".join(query.split())[:160]}
            for query, calls, ms in rows[:top]
        ],
    }


class WriterLockSampler:
    """Samples, on a thread and a connection of its own, who holds the writer lock every
    PostgreSQL write transaction of Corridor takes first (`postgres.WRITER_LOCK`), what that
    session is doing, and how many wait for it.

    The holder's state says where a transaction's time under the lock goes: `active` with no
    wait event is running SQL (or waiting for a CPU), `active / WALSync` is the commit's fsync,
    `idle in transaction / ClientRead` is waiting for the serve process to send its next
    statement (a round trip, the serve process's worker thread waiting for the GIL)."""

    QUERY = """
        SELECT l.granted, a.state, a.wait_event
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s AND l.objsubid = 1
    """

    def __init__(self, conn: psycopg.Connection, interval: float):
        self.conn = conn
        self.pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        self.interval = interval
        self.samples = 0
        self.held = 0
        self.waiting = 0
        self.holder: Counter[str] = Counter()
        self.thread_cpu = 0.0  # this sampler's own CPU in the generator process
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="writer-lock-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        started = time.thread_time()
        next_at = time.monotonic()
        while not self._stop.is_set():
            rows = self.conn.execute(self.QUERY, WRITER_LOCK_KEY).fetchall()
            self.samples += 1
            for granted, state, wait_event in rows:
                if granted:
                    self.held += 1
                    self.holder[f"{state} / {wait_event}" if wait_event else str(state)] += 1
                else:
                    self.waiting += 1
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        self.thread_cpu = time.thread_time() - started

    def summary(self) -> dict[str, Any]:
        held = max(self.held, 1)
        return {
            "samples": self.samples,
            "held_pct": round(100 * self.held / max(self.samples, 1), 1),
            "waiting_mean": round(self.waiting / max(self.samples, 1), 2),
            "holder_pct": {state: round(100 * n / held, 1) for state, n in self.holder.most_common()},
        }


class Nats:
    """One nats-server on 127.0.0.1 with its HTTP monitoring port (for /varz)."""

    def __init__(self, workdir: Path):
        binary = shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin:/usr/local/sbin")
        if binary is None:
            raise SystemExit("nats-server is not installed (apt-get install nats-server)")
        self.binary = binary
        self.log_path = workdir / "nats-server.log"
        self.port, self.monitor_port = free_port(), free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float) -> None:
        command = [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor_port)]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.varz()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"nats-server did not start: {self.log_path.read_text(errors='replace')[-2000:]}"
                    ) from None
                time.sleep(0.05)

    def varz(self) -> dict[str, Any]:
        """The server's counters (in_msgs, out_msgs, …) from its monitoring port."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/varz", timeout=2) as answer:
            return json.load(answer)

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return process_cpu(self.proc.pid)

    def stop(self) -> int | None:
        return _stop(self.proc, signal.SIGTERM, 10)

    def kill(self) -> None:
        _stop(self.proc, signal.SIGKILL, 10)
