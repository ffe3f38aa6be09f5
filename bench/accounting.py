"""What several serve processes, PostgreSQL and NATS did during `throughput.run_load`'s measured
window: CPU time of each (from /proc), each process's group commits (its own counters, over
its admin socket), PostgreSQL's WAL fsyncs, the writer lock (sampled) and what NATS carried,
summed up per message. bench/scaling.py runs the configurations; this is its accounting.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from backing import Nats, Postgres, Statements, WalCounters, WriterLockSampler, process_cpu, statements_summary
from harness import ServerProcess, _machine_busy_seconds

from corridor.client.transport import open_unix, running
from corridor.protocol.ops import ServerStatus, ServerStatusResult

LOCK_SAMPLE_S = 0.02  # the writer-lock sampler's period


@dataclass(frozen=True)
class Reading:
    """Counters at one edge of the measured window."""

    wall: float
    machine: float  # CPU seconds the whole machine was busy since boot
    generator: float
    serve: dict[str, tuple[float, float]]  # instance -> (process, event-loop thread) CPU seconds
    postgres: dict[str, float] = field(default_factory=dict)
    nats: float = 0.0
    wal: dict[str, float] = field(default_factory=dict)
    nats_msgs: tuple[int, int] = (0, 0)  # in, out


class Accounting:
    """What `throughput.run_load` takes as its server: here every serve process of the run.

    run_load reads `cpu_seconds()` at the two edges of its measured window (through
    `harness.CpuSnapshot.take`), so each call also records a `Reading` of everything this
    benchmark accounts, starts or stops the writer-lock sampler and wakes `statuses_at_edges`,
    which asks each process for its commit counters: every figure covers the harness's own
    window (the counters a few milliseconds later)."""

    def __init__(self, servers: dict[str, ServerProcess], postgres: Postgres | None, nats: Nats | None, database: str):
        self.servers = servers
        self.database = database
        self.postgres = postgres
        self.nats = nats
        self.readings: list[Reading] = []
        self.edges = (trio.Event(), trio.Event())
        self.statuses: list[dict[str, ServerStatusResult]] = []
        self.wal: WalCounters | None = None
        self.sampler: WriterLockSampler | None = None
        self.statements: Statements | None = None
        self.statement_rows: list[tuple[str, int, float]] = []
        if postgres is not None:
            self.wal = WalCounters(postgres.connect())
            self.sampler = WriterLockSampler(postgres.connect(), LOCK_SAMPLE_S)
            if postgres.statements:
                self.statements = Statements(postgres.connect())

    @property
    def pid(self) -> int:
        return self.servers["a"].pid  # the process --py-spy samples

    def thread_cpu_seconds(self) -> dict[int, float]:
        return {}  # each process's event loop and worker threads are in `readings`

    def cpu_seconds(self) -> float:
        reading = self._read()
        self.readings.append(reading)
        assert len(self.readings) <= 2, "run_load read the server's CPU more than twice"
        if self.sampler is not None:
            (self.sampler.start if len(self.readings) == 1 else self.sampler.stop)()
        if self.statements is not None:
            if len(self.readings) == 1:
                self.statements.reset()
            else:
                self.statement_rows = self.statements.rows(self.database)
        self.edges[len(self.readings) - 1].set()
        return sum(process for process, _ in reading.serve.values())

    def _read(self) -> Reading:
        # The event loop is the process's main thread, whose thread id is the process id.
        serve = {name: (s.cpu_seconds(), s.thread_cpu_seconds().get(s.pid, 0.0)) for name, s in self.servers.items()}
        reading = Reading(wall=time.monotonic(), machine=_machine_busy_seconds(), generator=time.process_time(), serve=serve)
        postgres, nats = self.postgres, self.nats
        if postgres is None or nats is None or self.wal is None or self.sampler is None:
            return reading
        ours = {self.wal.pid, self.sampler.pid} | ({self.statements.pid} if self.statements else set())
        cpu = postgres.cpu_seconds(exclude=ours)
        cpu["bench_sessions"] = sum(process_cpu(pid) for pid in ours)
        varz = nats.varz()
        return dataclasses.replace(
            reading, postgres=cpu, nats=nats.cpu_seconds(), wal=self.wal.read(), nats_msgs=(varz["in_msgs"], varz["out_msgs"])
        )

    async def statuses_at_edges(self, data_dir: Path) -> None:
        """Each process's status (commits, writes) right after each edge of the window."""
        for edge in self.edges:
            await edge.wait()
            self.statuses.append({name: await server_status(data_dir, name) for name in self.servers})

    def close(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()  # a run that failed inside the window left it running
        for part in (self.sampler, self.wal, self.statements):
            if part is not None:
                part.conn.close()


async def server_status(data_dir: Path, instance: str) -> ServerStatusResult:
    """One process's status over its admin socket (process a's is the data dir's plain one)."""
    socket_name = "control.sock" if instance == "a" else f"control-{instance}.sock"
    stream = await open_unix(str(data_dir / socket_name))
    async with running(stream) as channel:
        await channel.handshake()
        return await channel.request(ServerStatus())


def summarise(accounting: Accounting, acked: int) -> dict[str, Any]:
    """CPU per process and per message, PostgreSQL's commits and writer lock, NATS traffic."""
    first, last = accounting.readings
    wall = last.wall - first.wall

    def pct(seconds: float) -> float:
        return round(100 * seconds / wall, 1)

    def per_msg(seconds: float) -> float:
        return round(1000 * seconds / max(acked, 1), 3)

    serve = {name: tuple(b - a for a, b in zip(first.serve[name], last.serve[name], strict=True)) for name in last.serve}
    serve_all = sum(total for total, _ in serve.values())
    postgres = {role: last.postgres[role] - first.postgres[role] for role in last.postgres}
    sampler = accounting.sampler
    bench = postgres.pop("bench_sessions", 0.0) + (sampler.thread_cpu if sampler else 0.0)
    generator = last.generator - first.generator - (sampler.thread_cpu if sampler else 0.0)
    nats = last.nats - first.nats
    shared = sum(postgres.values()) + nats
    machine = last.machine - first.machine
    result: dict[str, Any] = {
        "cpu_pct": {
            "serve": {
                name: {"total": pct(total), "event_loop": pct(loop), "worker_threads": pct(total - loop)}
                for name, (total, loop) in serve.items()
            },
            "serve_all": pct(serve_all),
            "postgresql": {role: pct(seconds) for role, seconds in postgres.items()} if postgres else None,
            "nats": pct(nats) if postgres else None,
            "generator": pct(generator),
            "bench_sampling": pct(bench),
            # /proc/stat counts in ticks, so an idle remainder can come out a little below zero.
            "other": max(0.0, pct(machine - serve_all - shared - generator - bench)),
            "machine_busy": pct(machine),
        },
        "cpu_ms_per_msg": {
            "serve": per_msg(serve_all),
            "postgresql": per_msg(sum(postgres.values())) if postgres else None,
            "nats": per_msg(nats) if postgres else None,
            "server_side": per_msg(serve_all + shared),
            "generator": per_msg(generator),
        },
    }
    before, after = accounting.statuses
    commits = {name: (after[name].writes - before[name].writes, after[name].commits - before[name].commits) for name in after}
    result["group_commits"] = {
        name: {
            "writes": writes,
            "commits": count,
            "commits_s": round(count / wall, 1),
            "writes_per_commit": round(writes / max(count, 1), 1),
        }
        for name, (writes, count) in commits.items()
    }
    all_commits = sum(count for _, count in commits.values())
    result["group_commits"]["all"] = {
        "commits_s": round(all_commits / wall, 1),
        "messages_per_commit": round(acked / max(all_commits, 1), 1),
    }
    if sampler is None:
        return result
    syncs = last.wal["wal_sync"] - first.wal["wal_sync"]
    result["postgresql"] = {
        # pg_stat_wal's counters reach the view up to a second late: the rate is approximate,
        # the mean fsync time (two counters moving together) is not.
        "wal_fsyncs_s": round(syncs / wall, 1),
        "wal_fsync_ms_mean": round((last.wal["wal_sync_ms"] - first.wal["wal_sync_ms"]) / max(syncs, 1), 2),
        "wal_mib_s": round((last.wal["wal_bytes"] - first.wal["wal_bytes"]) / wall / 2**20, 2),
        "writer_lock": sampler.summary(),
    }
    # How long the lock was held per message: with it held all the time, its inverse is the
    # most that one lock lets through at this batch size, however many processes queue for it.
    held = result["postgresql"]["writer_lock"]["held_pct"] / 100 * wall
    result["postgresql"]["writer_lock"]["held_ms_per_message"] = round(1000 * held / max(acked, 1), 2)
    if accounting.statements is not None:
        result["postgresql"]["statements"] = statements_summary(accounting.statement_rows, acked)
    nats_in, nats_out = (b - a for a, b in zip(first.nats_msgs, last.nats_msgs, strict=True))
    result["nats"] = {
        "msgs_in_per_message": round(nats_in / max(acked, 1), 2),
        "msgs_out_per_message": round(nats_out / max(acked, 1), 2),
    }
    return result
