"""Durable 1:1 throughput of one organisation served by 1, 2 and 3 `corridor serve` processes on
one PostgreSQL and one NATS on this machine, next to the ordinary single process on SQLite.

What it does, for each configuration (SQLite first, then each count in `--processes`):

1. A fresh data dir on the normal disk. SQLite: the data dir's own database, as `corridor init`
   makes it. PostgreSQL: `corridor init --postgresql DSN --nats URL` on a fresh database of one
   PostgreSQL server (fsync and synchronous_commit on, its files on the normal disk) and one
   nats-server, both started by this benchmark for the whole run (backing.py).
2. Process `a`, the data dir's plain `corridor serve`, creates and enrolls `--clients` users
   (harness.enroll_all). Only then do `b`, `c`, … start (`corridor serve DIR --instance b`):
   a process loads its user cache when it starts.
3. Client i's profile is pointed at process i mod N, so the ring u0000 → u0001 → … sends each
   message from a client of one process to a client of another (with N ≥ 2): the case the NATS
   bus is for. The result counts the ring's pairs that cross processes.
4. `throughput.run_load` runs bench/throughput.py's closed loop (wire clients over TLS, one
   message in flight each, the ack after the durable commit) and checks that every acked message
   arrived once and in order; then every process is stopped with SIGTERM and must exit 0.

Nothing is pinned to a CPU: the serve processes, PostgreSQL, NATS and the load generator (this
process) share the machine's cores, and the result says how many there are. Over run_load's
measured window (accounting.py) the result has the CPU time of each serve process (its event
loop and its worker threads), PostgreSQL's sessions and background processes, nats-server,
the generator and the whole machine (`other` is whatever else ran), and each process's group
commits. On PostgreSQL also its WAL fsyncs, a 50 Hz sample of the writer lock every writing
transaction takes (`postgres.WRITER_LOCK`: how often it was held, by a session doing what, how
many waited) and the NATS messages per message; `--pg-statements` adds pg_stat_statements'
count of statements per message, `--py-spy PREFIX` profiles process a and the generator.

One JSON object goes to stdout (and `--out`), progress to stderr. Everything runs under a hard
deadline, and every process and temp dir is removed even on error. Exit status 0 only if no
configuration lost, duplicated or reordered a message and every process stopped cleanly.
docs/performance.md has the results and what limits them.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from accounting import Accounting, summarise
from backing import Nats, Postgres
from harness import ORG, READY, ServerProcess, cpu_model, enroll_all, interrupt_on_sigterm, log, py_spy_path, watchdog
from throughput import run_load

from corridor.client.profile import Profile
from corridor.deploy.init import create_data_dir
from corridor.protocol.errors import single_exception

MAX_PROCESSES = 8


class ServeInstance(ServerProcess):
    """`corridor serve DIR --instance NAME`: one more process on a data dir that its plain
    `corridor serve` (harness.ServerProcess) already serves."""

    def __init__(self, data_dir: Path, log_path: Path, instance: str):
        super().__init__(data_dir, log_path, cpu=None)
        self.instance = instance

    def start(self, timeout: float) -> int:
        corridor = Path(sys.executable).parent / "corridor"
        command = [str(corridor), "serve", str(self.data_dir), "--instance", self.instance, "--listen", "127.0.0.1:0"]
        with open(self.log_path, "w") as log_file:
            self.proc = subprocess.Popen(
                [*command, "--no-advertise", "--log-level", "info"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
                start_new_session=True,
            )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        match = READY.search(self.proc.stdout.readline() if ready else "")
        if match is None:
            raise RuntimeError(f"instance {self.instance} did not report serving within {timeout:g} s; log:\n{self.log_tail()}")
        return int(match.group(1))


@dataclass
class Fleet:
    """Every process this run started, so that an error or the watchdog can end them all."""

    servers: list[ServerProcess] = field(default_factory=list)
    postgres: Postgres | None = None
    nats: Nats | None = None

    def kill(self) -> None:
        for server in self.servers:
            server.kill()
        for backing in (self.nats, self.postgres):
            if backing is not None:
                backing.kill()


def spread(profiles: list[Profile], ports: list[int]) -> int:
    """Point client i at process i mod N (the host and port a profile saves, as a client keeps
    them); returns how many of the ring's pairs (i → i+1) have their ends on two processes."""
    for i, profile in enumerate(profiles):
        credential = profile.credential()
        profile.save_enrollment(dataclasses.replace(credential, port=ports[i % len(ports)]), profile.ca_pem())
    n = len(profiles)
    return sum(1 for i in range(n) if i % len(ports) != (i + 1) % n % len(ports))


@dataclass
class Configuration:
    """One configuration's data dir, processes and clients while it runs."""

    storage: str
    count: int
    root: Path
    servers: dict[str, ServerProcess] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    opened: list[Profile] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def database(self) -> str:
        return f"bench_{self.storage}_{self.count}"

    @property
    def label(self) -> str:
        return f"{self.storage}, {self.count} process" + ("es" if self.count > 1 else "")

    def start(self, name: str, fleet: Fleet) -> None:
        log_path = self.root / f"serve-{name}.log"
        server = ServerProcess(self.data, log_path, cpu=None) if name == "a" else ServeInstance(self.data, log_path, name)
        fleet.servers.append(server)
        self.servers[name] = server
        self.ports[name] = server.start(timeout=60)
        log(f"process {name}: pid {server.pid} on 127.0.0.1:{self.ports[name]}")


async def load(args: argparse.Namespace, run: Configuration, fleet: Fleet, profiles_root: Path) -> dict[str, Any]:
    """Enroll through process a, start the others, spread the clients, run the closed loop."""
    names = [f"u{i:04d}" for i in range(args.clients)]
    started = trio.current_time()
    log(f"creating and enrolling {len(names)} users through process a ({args.enroll_concurrency} at a time)")
    profiles = await enroll_all(run.data, profiles_root, names, args.enroll_concurrency, run.opened)
    enroll_s = round(trio.current_time() - started, 2)
    for k in range(1, run.count):
        run.start(chr(ord("a") + k), fleet)
    cross = spread(profiles, list(run.ports.values()))
    log(f"clients spread over {run.count} process(es); {cross} of the ring's {len(profiles)} pairs cross processes")
    shared = run.storage == "postgresql"
    accounting = Accounting(run.servers, fleet.postgres if shared else None, fleet.nats if shared else None, run.database)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(accounting.statuses_at_edges, run.data)
            measured = await run_load(args, profiles, accounting)
    finally:
        accounting.close()
    kept = ("throughput_msg_s", "latency_ms", "messages_acked", "deliveries_s", "connect_s")
    checks = ("lost", "duplicates", "gaps", "out_of_order", "unexpected", "send_errors", "duplicate_acks", "drain_timed_out")
    return {
        **{key: measured[key] for key in kept},
        "cross_process_pairs": f"{cross} of {len(profiles)}",
        **summarise(accounting, measured["messages_acked"]),
        **{key: measured[key] for key in checks},
        "enroll_s": enroll_s,
    }


def bounded(measure: Callable[[], Awaitable[dict[str, Any]]], timeout: float) -> dict[str, Any]:
    """Run `measure` under trio with a deadline; SIGTERM and Ctrl-C end it like an error."""

    async def run() -> dict[str, Any]:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(interrupt_on_sigterm)
            with trio.fail_after(timeout):
                result = await measure()
            nursery.cancel_scope.cancel()
        return result

    try:
        return trio.run(run)
    except BaseException as exc:
        inner = single_exception(exc)
        if isinstance(inner, trio.TooSlowError):
            raise SystemExit(f"bench: a configuration did not finish within {timeout:.0f} s") from None
        if isinstance(inner, KeyboardInterrupt):
            raise SystemExit("bench: interrupted; processes stopped and temp dirs removed") from None
        raise


def run_configuration(
    args: argparse.Namespace, storage: str, count: int, work: Path, profiles_parent: Path | None, fleet: Fleet
) -> dict[str, Any]:
    """One configuration from a fresh data dir (and database) to its stopped processes."""
    run = Configuration(storage, count, work / f"{storage}-{count}")
    log(f"--- {run.label}")
    dsn = fleet.postgres.create_database(run.database) if fleet.postgres and storage == "postgresql" else ""
    profiles_root = Path(tempfile.mkdtemp(prefix="corridor-bench-profiles-", dir=profiles_parent))
    try:
        nats = fleet.nats.url if fleet.nats and dsn else ""
        create_data_dir(run.data, ORG, "127.0.0.1:0", ["127.0.0.1", "localhost"], "admin", "Administrator", dsn, nats)
        # Every generator connection comes from 127.0.0.1: lift the per-address limit above them.
        config = run.data / "corridor.toml"
        config.write_text(config.read_text() + f"\n[limits]\nmax_connections_per_address = {args.clients + 50}\n")
        run.start("a", fleet)
        try:
            result = bounded(lambda: load(args, run, fleet, profiles_root), args.configuration_timeout)
        finally:
            for profile in run.opened:
                profile.close()
        exit_codes = {name: server.stop(timeout=60) for name, server in run.servers.items()}
    except Exception:
        for name, server in run.servers.items():
            log(f"failed; process {name}'s log tail:\n{server.log_tail()}")
        raise
    finally:
        for server in run.servers.values():
            server.kill()
        shutil.rmtree(profiles_root, ignore_errors=True)
        if dsn:
            fleet.postgres.drop_database(run.database)
    result.update(server_exit_codes=exit_codes)
    ok = all(result[key] == 0 for key in ("lost", "duplicates", "gaps", "out_of_order", "unexpected"))
    ok = ok and not result["drain_timed_out"] and set(exit_codes.values()) == {0}
    latency = result["latency_ms"]
    log(
        f"{run.label}: {result['throughput_msg_s']:,} msg/s, p50 {latency['p50']} ms, p99 {latency['p99']} ms, "
        f"other CPU {result['cpu_pct']['other']} %" + ("" if ok else "  ** FAILED CHECKS **")
    )
    return {"label": run.label, "storage": storage, "processes": count, "ok": ok, **result}


def _code_state() -> dict[str, Any]:
    """Which code ran: the commit, and the files changed in the working tree beyond it."""
    repo = Path(__file__).resolve().parent.parent

    def git(*words: str) -> str:
        done = subprocess.run(["git", "-C", str(repo), *words], capture_output=True, text=True, timeout=30)
        return done.stdout.rstrip("\n") if done.returncode == 0 else ""

    changed = [line[3:] for line in git("status", "--porcelain").splitlines() if line[3:].split("/")[0] not in ("bench", "docs")]
    return {"commit": git("rev-parse", "HEAD"), "uncommitted_outside_bench_and_docs": changed}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Durable 1:1 throughput of 1, 2, 3 serve processes on one PostgreSQL and one NATS, and of SQLite."
    )
    parser.add_argument("--processes", default="1,2,3", help="serve process counts on PostgreSQL (default 1,2,3; '' for none)")
    parser.add_argument(
        "--sqlite", action=argparse.BooleanOptionalAction, default=True, help="also run one process on SQLite (default on)"
    )
    parser.add_argument("--clients", type=int, default=200, help="connected clients, paired in a ring (default 200)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measured window (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="sending before each window opens (default 2)")
    parser.add_argument("--text-bytes", type=int, default=100, help="message text size (default 100)")
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    parser.add_argument("--enroll-concurrency", type=int, default=4, help="enrollments at a time (default 4)")
    parser.add_argument("--connect-concurrency", type=int, default=20, help="TLS connects at a time (default 20)")
    parser.add_argument("--drain-timeout", type=float, default=30.0, help="max wait for deliveries after sending stops")
    parser.add_argument("--profiles-dir", type=Path, help="where client profiles go (default: /dev/shm if present)")
    parser.add_argument(
        "--pg-statements",
        action="store_true",
        help="load pg_stat_statements and report statements per message and the most frequent ones (adds overhead)",
    )
    parser.add_argument("--timeout", type=float, help="hard limit for the whole run in seconds (default: from the sizes)")
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="PREFIX",
        help="profile process a and the generator during each window (PREFIX-server.txt, PREFIX-generator.txt; "
        "each configuration overwrites the last)",
    )
    parser.set_defaults(client="wire")  # what throughput.run_load reads besides the above
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run every configuration; prints the JSON result, returns 0 if every check passed."""
    args = _parser().parse_args(argv)
    counts = [int(word) for word in args.processes.split(",") if word.strip()]
    if args.py_spy and py_spy_path() is None:
        raise SystemExit("--py-spy needs py-spy: .venv/bin/pip install py-spy")
    if args.clients < 2 or not all(1 <= n <= MAX_PROCESSES for n in counts) or not (counts or args.sqlite):
        raise SystemExit(f"need --clients >= 2 and --processes counts from 1 to {MAX_PROCESSES} (or --sqlite)")
    configurations = [("sqlite", 1)] * args.sqlite + [("postgresql", n) for n in counts]
    args.configuration_timeout = 120 + args.clients * 0.5 + args.warmup + args.seconds + args.drain_timeout
    hard_timeout = args.timeout or 60 + args.configuration_timeout * len(configurations)
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the processes and temp dirs go too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    shm = Path("/dev/shm")
    profiles_parent = args.profiles_dir or (shm if shm.is_dir() and os.access(shm, os.W_OK) else None)
    work = Path(tempfile.mkdtemp(prefix="corridor-bench-scaling-"))
    dirs = [work]
    fleet = Fleet()
    timer = watchdog(hard_timeout, fleet, dirs)
    shared: dict[str, Any] = {}
    try:
        if counts:
            dirs.append(Path(tempfile.mkdtemp(prefix="corridor-bench-pg-")))  # on disk, like the data dirs
            fleet.postgres = Postgres(dirs[-1], statements=args.pg_statements)
            fleet.postgres.start(timeout=60)
            fleet.nats = Nats(work)
            fleet.nats.start(timeout=10)
            shared = {"postgresql": fleet.postgres.settings(), "nats_server": fleet.nats.varz()["version"]}
            log(f"PostgreSQL on 127.0.0.1:{fleet.postgres.port} ({dirs[-1]}), nats-server on {fleet.nats.url}")
        runs = [run_configuration(args, storage, n, work, profiles_parent, fleet) for storage, n in configurations]
        for backing in (fleet.nats, fleet.postgres):
            if backing is not None:
                backing.stop()
    except Exception:
        if fleet.postgres is not None:
            log(f"PostgreSQL log tail:\n{fleet.postgres.log_tail()}")
        raise
    finally:
        timer.cancel()
        fleet.kill()
        for path in dirs:
            shutil.rmtree(path, ignore_errors=True)

    by_key = {(r["storage"], r["processes"]): r["throughput_msg_s"] for r in runs}
    scaling = {}
    if ("postgresql", 1) in by_key:
        one = by_key[("postgresql", 1)]
        scaling = {f"postgresql_{n}_vs_1": round(by_key[("postgresql", n)] / one, 2) for n in counts if n != 1}
        if ("sqlite", 1) in by_key:
            scaling["postgresql_1_vs_sqlite"] = round(one / by_key[("sqlite", 1)], 2)
    result = {
        "benchmark": "durable_1to1_processes",
        "date": dt.date.today().isoformat(),
        "clients": args.clients,
        "seconds": args.seconds,
        "warmup_s": args.warmup,
        "text_bytes": args.text_bytes,
        "table": [
            {
                "run": r["label"],
                "msg_s": r["throughput_msg_s"],
                "p50_ms": r["latency_ms"]["p50"],
                "p99_ms": r["latency_ms"]["p99"],
                "server_side_cpu_ms_per_msg": r["cpu_ms_per_msg"]["server_side"],
                "machine_busy_pct": r["cpu_pct"]["machine_busy"],
                "other_cpu_pct": r["cpu_pct"]["other"],
                "ok": r["ok"],
            }
            for r in runs
        ],
        "scaling": scaling,
        "runs": runs,
        **shared,
        "pinned": None,
        "client_profiles_on": "tmpfs" if profiles_parent == shm else str(profiles_parent or tempfile.gettempdir()),
        "python": platform.python_version(),
        "machine": {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "platform": platform.platform()},
        "code": _code_state(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if all(r["ok"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
