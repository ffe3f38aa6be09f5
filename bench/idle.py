"""Server memory per idle, logged-in connection, with --connections (default 10,000) of them.

What it does: a real `corridor serve` (pinned to CPU 0 with `--taskset`, this generator to CPU 1)
with the per-address connection limit raised above `--connections` (they all come from
127.0.0.1), `--users` people enrolled like real people (Argon2id, a few at a time). The server
allows several sessions per person, so each person's device token logs in
connections ÷ users times, like someone with many devices. Then:

1. A warm-up: `--warmup-connections` connections log in and close, so that one-time costs
   (imports, caches, the first thread pool) are not counted per connection. Once the server's
   open file descriptors are back to where they were and `--settle` seconds have passed, its
   memory is read: the baseline.
2. Round 1: `--connections` TLS 1.3 connections, `--connect-concurrency` at a time, each doing
   `hello` and `login` with a device token, then staying idle. An idle connection does what the
   client library does: it pings every `--ping-interval` seconds (60, first ping at a random
   point of the interval), which keeps it inside the server's idle timeout (300 s), and reads
   whatever the server pushes. Once all are logged in and `--settle` seconds have passed, the
   server's memory is read again: (idle - baseline) ÷ connections is the cost of one.
3. All connections close; once the server's descriptors are back to the baseline, its memory
   is read (Python rarely gives freed memory back to the system, so this stays high).
4. Round 2 (and more with `--rounds`): the same again. Memory at idle in round 2 minus round 1
   is growth that closing connections did not give back for reuse: ≈ 0 when nothing leaks.

Memory comes from /proc/PID/status (VmRSS, RssAnon) and /proc/PID/smaps_rollup (Pss, Pss_Anon,
Private_Dirty); the kernel's socket buffers are not in them (`tcp_mem_pages` from
/proc/net/sockstat counts both ends of every loopback connection). A connection lost while idle
is counted with the server's reason. The generator's CPU while opening shows whether it set the
opening pace (near 100 %: it did).

One JSON object goes to stdout (and `--out`), progress to stderr. Exit status 0 only if every
connection logged in and stayed up in every round and the server stopped cleanly.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import trio
from harness import (
    CpuSnapshot,
    ServerProcess,
    cpu_model,
    cpu_percentages,
    enroll_all,
    log,
    open_fds,
    open_wire_client,
    pin_generator,
    process_memory_kib,
    run_against_server,
)

from corridor.client.profile import Profile
from corridor.client.tls import client_context
from corridor.protocol.errors import CorridorError
from corridor.protocol.messages import Ping

TARGET_KIB = 40


@dataclass
class Round:
    """What happened to one round's connections."""

    connections: int
    connected: int = 0
    all_connected: trio.Event = field(default_factory=trio.Event)
    connect_failures: int = 0
    last_failure: str = ""
    lost: int = 0
    lost_reasons: dict[str, int] = field(default_factory=dict)
    pings: int = 0
    pushes: int = 0
    login_ms: list[float] = field(default_factory=list)


def _tcp_mem_pages() -> int | None:
    """Pages the kernel holds for TCP socket buffers, machine-wide (/proc/net/sockstat)."""
    try:
        for line in Path("/proc/net/sockstat").read_text().splitlines():
            if line.startswith("TCP:"):
                fields = line.split()
                return int(fields[fields.index("mem") + 1])
    except (OSError, ValueError):
        pass
    return None


def _snapshot(server: ServerProcess) -> dict:
    return {
        "server": process_memory_kib(server.pid),
        "server_fds": open_fds(server.pid),
        "generator_rss_kib": process_memory_kib(os.getpid())["rss"],
        "tcp_mem_pages": _tcp_mem_pages(),
    }


async def _hold(n: int, profile: Profile, context, state: Round, connecting: trio.Semaphore, go_home: trio.Event, args) -> None:
    """One connection: log in (a few tries), then idle — pinging, reading pushes — until told to go."""
    for attempt in range(3):
        await connecting.acquire()
        released = False
        started = time.perf_counter()
        try:
            async with open_wire_client(profile, context) as client:
                connecting.release()
                released = True
                state.login_ms.append((time.perf_counter() - started) * 1000)
                state.connected += 1
                if state.connected == state.connections:
                    state.all_connected.set()
                channel = client.channel
                next_ping = trio.current_time() + random.uniform(0, args.ping_interval)
                while not go_home.is_set():
                    with trio.move_on_at(next_ping):
                        try:
                            await channel.events.receive()
                        except trio.EndOfChannel:
                            break  # the connection ended: counted below
                        state.pushes += 1
                        continue
                    next_ping += args.ping_interval
                    try:
                        await channel.request(Ping())
                        state.pings += 1
                    except CorridorError:
                        break
                if not go_home.is_set():
                    state.lost += 1
                    reason = channel.error.code if channel.error else "unknown"
                    state.lost_reasons[reason] = state.lost_reasons.get(reason, 0) + 1
                    log(f"connection {n} lost while idle: {channel.error}")
                    await go_home.wait()
                return
        except (OSError, CorridorError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            if released:
                raise
            state.connect_failures += 1
            state.last_failure = f"{type(exc).__name__}: {exc}"
        finally:
            if not released:
                connecting.release()
        await trio.sleep(0.1 * (attempt + 1))


async def _back_to(server: ServerProcess, fds: int, timeout: float) -> float:
    """Wait until the server has no more open descriptors than `fds`; returns the seconds taken."""
    started = trio.current_time()
    with trio.move_on_after(timeout):
        while open_fds(server.pid) > fds:
            await trio.sleep(0.1)
    return round(trio.current_time() - started, 2)


async def _round(
    number: int, args: argparse.Namespace, profiles: list[Profile], context, server: ServerProcess, baseline_fds: int
) -> dict:
    n = args.connections
    state = Round(connections=n)
    go_home = trio.Event()
    connecting = trio.Semaphore(args.connect_concurrency)
    result: dict = {"round": number}
    async with trio.open_nursery() as nursery:
        before = CpuSnapshot.take(server)
        for i in range(n):
            nursery.start_soon(_hold, i, profiles[i % len(profiles)], context, state, connecting, go_home, args)
        with trio.move_on_after(args.open_timeout):
            while not state.all_connected.is_set():
                with trio.move_on_after(5):
                    await state.all_connected.wait()
                if not state.all_connected.is_set():
                    log(f"round {number}: {state.connected}/{n} logged in")
        opened = CpuSnapshot.take(server)
        open_s = opened.wall - before.wall
        result.update(
            logged_in=state.connected,
            open_s=round(open_s, 2),
            connections_per_s=round(state.connected / max(open_s, 1e-9), 1),
            connect_failures=state.connect_failures,
            last_connect_failure=state.last_failure,
            opening=cpu_percentages(before, opened),
        )
        log(f"round {number}: {state.connected}/{n} logged in in {open_s:.1f} s ({result['connections_per_s']}/s); settling")
        await trio.sleep(args.settle)
        settled = CpuSnapshot.take(server)
        result["idle"] = _snapshot(server)
        result["idle_cpu"] = cpu_percentages(opened, settled)
        go_home.set()
        nursery.cancel_scope.cancel()
    result.update(lost_while_idle=state.lost, lost_reasons=state.lost_reasons, pings=state.pings, pushes=state.pushes)
    result["close_s"] = await _back_to(server, baseline_fds, args.open_timeout)
    await trio.sleep(args.settle)
    result["closed"] = _snapshot(server)
    rss = result["idle"]["server"]["rss"]
    log(f"round {number}: server RSS {rss / 1024:.1f} MiB idle, {result['closed']['server']['rss'] / 1024:.1f} MiB after closing")
    return result


def _per_connection(after: dict, before: dict, n: int) -> dict[str, float]:
    return {key: round((after[key] - before[key]) / n, 2) for key in after if key in before and key != "rss_peak"}


async def measure(args: argparse.Namespace, work: Path, server: ServerProcess) -> dict:
    opened: list[Profile] = []
    try:
        started = trio.current_time()
        names = [f"u{i:04d}" for i in range(args.users)]
        log(f"creating and enrolling {len(names)} users ({args.enroll_concurrency} at a time)")
        profiles = await enroll_all(work / "data", work / "profiles", names, args.enroll_concurrency, opened)
        enroll_s = round(trio.current_time() - started, 2)
        context = client_context(profiles[0].ca_pem())  # one CA for all: one client context for all
        await trio.sleep(1)
        fds = open_fds(server.pid)
        log(f"warm-up: {args.warmup_connections} logins")
        async with trio.open_nursery() as nursery:
            limiter = trio.CapacityLimiter(args.connect_concurrency)

            async def warm(i: int) -> None:
                async with limiter, open_wire_client(profiles[i % len(profiles)], context):
                    pass

            for i in range(args.warmup_connections):
                nursery.start_soon(warm, i)
        await _back_to(server, fds, 60)
        await trio.sleep(args.settle)
        baseline = _snapshot(server)
        baseline_fds = baseline["server_fds"]
        log(f"baseline: server RSS {baseline['server']['rss'] / 1024:.1f} MiB, {baseline_fds} fds")
        rounds = [await _round(r + 1, args, profiles, context, server, baseline_fds) for r in range(args.rounds)]
    finally:
        for profile in opened:
            profile.close()

    n = args.connections
    first = rounds[0]
    per_connection = _per_connection(first["idle"]["server"], baseline["server"], n)
    growth = {
        f"round_{r['round']}_vs_1": {
            "idle_rss_kib": r["idle"]["server"]["rss"] - first["idle"]["server"]["rss"],
            "idle_rss_kib_per_connection": round((r["idle"]["server"]["rss"] - first["idle"]["server"]["rss"]) / n, 2),
            "closed_rss_kib": r["closed"]["server"]["rss"] - first["closed"]["server"]["rss"],
        }
        for r in rounds[1:]
    }
    tcp_pages = [first["idle"]["tcp_mem_pages"], baseline["tcp_mem_pages"]]
    return {
        "benchmark": "idle_connections",
        "date": time.strftime("%Y-%m-%d"),
        "connections": n,
        "users": args.users,
        "sessions_per_user": round(n / args.users, 1),
        "server_kib_per_connection": per_connection["rss"],
        "target_kib_per_connection": TARGET_KIB,
        "meets_target": per_connection["rss"] <= TARGET_KIB,
        "per_connection_kib": per_connection,
        "generator_kib_per_connection": round((first["idle"]["generator_rss_kib"] - baseline["generator_rss_kib"]) / n, 2),
        "kernel_tcp_buffers_kib_per_connection_both_ends": (
            round((tcp_pages[0] - tcp_pages[1]) * os.sysconf("SC_PAGE_SIZE") / 1024 / n, 2) if None not in tcp_pages else None
        ),
        "server_rss_mib": {
            "baseline": round(baseline["server"]["rss"] / 1024, 1),
            **{f"round_{r['round']}_idle": round(r["idle"]["server"]["rss"] / 1024, 1) for r in rounds},
            **{f"round_{r['round']}_closed": round(r["closed"]["server"]["rss"] / 1024, 1) for r in rounds},
        },
        "growth": growth,
        "connections_per_s": [r["connections_per_s"] for r in rounds],
        "lost_while_idle": sum(r["lost_while_idle"] for r in rounds),
        "enroll_s": enroll_s,
        "baseline": baseline,
        "rounds": rounds,
        "settings": {
            "connect_concurrency": args.connect_concurrency,
            "ping_interval_s": args.ping_interval,
            "settle_s": args.settle,
            "warmup_connections": args.warmup_connections,
        },
        "pinned": {"server_cpu": 0, "generator_cpu": 1} if args.pin else None,
        "cpu_model": cpu_model(),
    }


def _passed(result: dict) -> bool:
    return all(r["logged_in"] == result["connections"] and r["lost_while_idle"] == 0 for r in result["rounds"])


def main(argv: list[str] | None = None) -> int:
    """Run the idle-connection benchmark; prints one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=10_000, help="idle logged-in connections (default 10000)")
    parser.add_argument("--users", type=int, default=200, help="enrolled people; connections share their tokens (default 200)")
    parser.add_argument("--rounds", type=int, default=2, help="times all connections open and close (default 2)")
    parser.add_argument("--connect-concurrency", type=int, default=50, help="logins under way at once (default 50)")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait before each memory reading (default 5)")
    parser.add_argument("--ping-interval", type=float, default=60.0, help="each idle connection pings this often (default 60)")
    parser.add_argument("--warmup-connections", type=int, default=100, help="logins before the baseline (default 100)")
    parser.add_argument("--enroll-concurrency", type=int, default=4, help="enrollments at a time (default 4)")
    parser.add_argument("--open-timeout", type=float, default=300, help="max seconds to open (or close) one round (default 300)")
    parser.add_argument(
        "--taskset", action=argparse.BooleanOptionalAction, default=None, help="pin server to CPU 0, generator to CPU 1"
    )
    parser.add_argument("--timeout", type=float, help="hard limit for the whole run in seconds (default: from the sizes)")
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    if not 1 <= args.users <= 2000 or not 1 <= args.connections <= 18_000 or args.rounds < 1:
        parser.error("--users must be 1-2000, --connections 1-18000 (descriptor limits), --rounds at least 1")
    args.pin = pin_generator(args.taskset)
    timeout = args.timeout or 300 + args.users * 1.0 + args.rounds * (2 * args.open_timeout + 2 * args.settle)
    return run_against_server(
        "corridor-bench-idle-",
        lambda work, server: measure(args, work, server),
        limits=f"max_connections_per_address = {args.connections + args.connect_concurrency + 100}",
        timeout=timeout,
        out=args.out,
        passed=_passed,
        cpu=0 if args.pin else None,
    )


if __name__ == "__main__":
    sys.exit(main())
