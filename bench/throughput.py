"""Durable 1:1 message throughput and latency of a real Corridor server with N live TLS clients.

What it does, in order:

1. Creates a throw-away data dir (`corridor.deploy.init.create_data_dir`) on the normal temp
   file system, so the server's fsyncs hit a real disk, and starts the real server as a separate
   process (`corridor serve DIR --listen 127.0.0.1:0 --no-advertise`), reading the bound port
   from its first stdout line. With `--taskset` the server runs on CPU 0 and this process (the
   load generator) on CPU 1, so the two do not compete for a core.
2. Creates N users through the admin control socket and enrolls a client profile for each
   (Argon2id makes this the slow part of the set-up; it runs a few at a time).
3. Opens one client per user (N TLS connections, all logged in and receiving: `--client wire`
   speaks the protocol directly, `--client library` runs the full `Client`), pairs them in a
   ring (u0000 → u0001 → … → u0000) and runs a closed loop: each client sends, waits for the
   durable ack, sends again. After a warm-up, acks and deliveries are counted for `--seconds`.
4. Stops sending, waits until every recipient has received every message acked to it, and
   checks for losses, duplicates, gaps and reordering.
5. Closes the clients, stops the server with SIGTERM and checks that it exited 0.

One JSON object goes to stdout (and `--out`); progress goes to stderr. Everything runs under a
hard deadline and the server process and temp dirs are removed even on error.

Client profiles (outbox and sync cursors, SQLite) go on tmpfs when /dev/shm exists: in real
use each of the N clients fsyncs its own disk in parallel, whereas here all N share one
process and one disk, and their per-message fsyncs would make the generator, not the server,
the thing being measured. The server's data dir always stays on disk.

Reading the result: `generator_cpu_pct` near 100 means this process, not the server, set the
pace (the JSON's `bottleneck` says so); `server_cpu_ms_per_msg` and
`server_capacity_estimate_msg_s` then tell what the server itself costs. `other_cpu_pct` is
everything else that ran on the machine during the window: a run where it is high was
disturbed. `--py-spy PREFIX` samples both processes during the window (`pip install py-spy`).
docs/performance.md has the results and what they mean. The server process, enrollment, the
wire client and CPU accounting live in `harness.py`, for the other benchmarks to reuse.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import trio
from harness import (
    COMMITS,
    ORG,
    CpuSnapshot,
    ServerProcess,
    cpu_model,
    cpu_usage,
    enroll_all,
    interrupt_on_sigterm,
    latency_summary,
    log,
    open_wire_client,
    pin_generator,
    py_spy_path,
    start_profilers,
    watchdog,
)

from corridor.client.client import Client
from corridor.client.profile import Profile
from corridor.deploy.init import create_data_dir
from corridor.protocol.errors import CorridorError, single_exception
from corridor.protocol.messages import MessageEvent

# A single-threaded event loop above this share of its core is saturated: the rest is the idle
# time between bursts (acks arrive in group-commit batches), not spare capacity.
SATURATED_PCT = 80.0


@dataclass
class Plan:
    """Shared phase markers (trio clock) and events of one run."""

    clients: int
    text_bytes: int
    library: bool = False  # generate with the full Client library instead of WireClient
    go: trio.Event = field(default_factory=trio.Event)
    connected_all: trio.Event = field(default_factory=trio.Event)
    senders_done: trio.Event = field(default_factory=trio.Event)
    finish: trio.Event = field(default_factory=trio.Event)
    connected: int = 0
    finished_senders: int = 0
    t0: float = math.inf  # start of the measured window
    t1: float = math.inf  # end of the measured window; no new send starts after it

    def in_window(self, t: float) -> bool:
        return self.t0 <= t <= self.t1


@dataclass
class UserStats:
    """What one client saw: its sends (acks, latencies) and what it received."""

    name: str
    peer: str
    latencies_ms: list[float] = field(default_factory=list)  # sends started and acked in the window
    acked_in_window: int = 0
    acked: dict[int, list[int]] = field(default_factory=dict)  # conversation -> acked seqs
    received: dict[int, list[int]] = field(default_factory=dict)  # conversation -> seqs, arrival order
    received_in_window: int = 0
    send_errors: int = 0
    duplicate_acks: int = 0


def _text(sender: str, number: int, size: int) -> str:
    head = f"{sender} #{number} "
    return head + "x" * max(0, size - len(head))


async def _receive(client: Client, stats: UserStats, plan: Plan) -> None:
    # Consume every event, or the client's bounded queues fill and the server drops the link
    # as a slow consumer. With --client library the stream also holds the client's own sent
    # messages (the library adds them after each ack); those are not deliveries.
    async for event in client.events():
        if isinstance(event, MessageEvent) and event.sender != stats.name:
            stats.received.setdefault(event.conversation, []).append(event.seq)
            if plan.in_window(trio.current_time()):
                stats.received_in_window += 1


async def _send_loop(client: Client, stats: UserStats, plan: Plan) -> None:
    number = 0
    while trio.current_time() < plan.t1:
        text = _text(stats.name, number, plan.text_bytes)
        number += 1
        started = trio.current_time()
        try:
            result = await client.send(stats.peer, text)
        except CorridorError as exc:
            stats.send_errors += 1
            if stats.send_errors > 100:
                raise RuntimeError(f"{stats.name}: too many send errors, last: {exc.code} {exc.message}") from exc
            continue
        acked = trio.current_time()
        stats.acked.setdefault(result.conversation, []).append(result.seq)
        stats.duplicate_acks += result.duplicate
        if plan.in_window(acked):
            stats.acked_in_window += 1
            if started >= plan.t0:
                stats.latencies_ms.append((acked - started) * 1000)


async def _user(profile: Profile, stats: UserStats, plan: Plan, connecting: trio.Semaphore) -> None:
    await connecting.acquire()
    released = False
    try:
        opened = Client.open(profile, receive=True) if plan.library else open_wire_client(profile)
        async with opened as client:
            connecting.release()
            released = True
            plan.connected += 1
            if plan.connected == plan.clients:
                plan.connected_all.set()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_receive, client, stats, plan)
                await plan.go.wait()
                await _send_loop(client, stats, plan)
                plan.finished_senders += 1
                if plan.finished_senders == plan.clients:
                    plan.senders_done.set()
                await plan.finish.wait()  # keep receiving until everyone's deliveries are checked
                nursery.cancel_scope.cancel()
    finally:
        if not released:
            connecting.release()


def _all_delivered(stats: list[UserStats]) -> bool:
    by_name = {s.name: s for s in stats}
    for sender in stats:
        receiver = by_name[sender.peer]
        for conversation, seqs in sender.acked.items():
            got = receiver.received.get(conversation, [])
            # Arrival order is seq order, so "everything arrived" is "the last acked arrived".
            if seqs and (not got or got[-1] < seqs[-1]):
                return False
    return True


def verify(stats: list[UserStats]) -> dict[str, int]:
    """Compare what was acknowledged with what was received: lost, duplicated, reordered, gaps."""
    by_name = {s.name: s for s in stats}
    expected: dict[tuple[str, int], set[int]] = {}  # (recipient, conversation) -> acked seqs
    per_conversation: dict[int, set[int]] = {}  # every seq seen acked or received
    for sender in stats:
        for conversation, seqs in sender.acked.items():
            expected.setdefault((sender.peer, conversation), set()).update(seqs)
            per_conversation.setdefault(conversation, set()).update(seqs)
    lost = duplicates = out_of_order = unexpected = 0
    for receiver in by_name.values():
        for conversation, got in receiver.received.items():
            per_conversation.setdefault(conversation, set()).update(got)
            want = expected.get((receiver.name, conversation), set())
            duplicates += len(got) - len(set(got))
            out_of_order += sum(1 for a, b in pairwise(got) if b <= a)
            unexpected += len(set(got) - want)
    for (recipient, conversation), want in expected.items():
        lost += len(want - set(by_name[recipient].received.get(conversation, [])))
    # The server numbers each conversation 1, 2, 3, …: any hole in what was acked or received is
    # a message that vanished (or a seq the server skipped).
    gaps = sum(max(seqs) - len(seqs) for seqs in per_conversation.values() if seqs)
    return {"lost": lost, "duplicates": duplicates, "gaps": gaps, "out_of_order": out_of_order, "unexpected": unexpected}


async def run_load(args: argparse.Namespace, profiles: list[Profile], server: ServerProcess) -> dict[str, Any]:
    """Connect every client, run the closed loop, check deliveries; returns the measured numbers."""
    n = len(profiles)
    names = [p.credential().user for p in profiles]
    plan = Plan(clients=n, text_bytes=args.text_bytes, library=args.client == "library")
    stats = [UserStats(name=names[i], peer=names[(i + 1) % n]) for i in range(n)]
    connecting = trio.Semaphore(args.connect_concurrency)
    result: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        started = trio.current_time()
        for profile, user_stats in zip(profiles, stats, strict=True):
            nursery.start_soon(_user, profile, user_stats, plan, connecting)
        with trio.fail_after(60 + n * 0.5):
            await plan.connected_all.wait()
        result["connect_s"] = round(trio.current_time() - started, 2)
        log(f"{n} clients connected and logged in in {result['connect_s']} s; warm-up {args.warmup:g} s")

        plan.t0 = trio.current_time() + args.warmup
        plan.t1 = plan.t0 + args.seconds
        plan.go.set()
        await trio.sleep_until(plan.t0)
        before = CpuSnapshot.take(server)
        log(f"measuring for {args.seconds:g} s")
        profilers = start_profilers(args.py_spy, server.pid, args.seconds) if args.py_spy else []
        await trio.sleep_until(plan.t1)
        after = CpuSnapshot.take(server)

        with trio.fail_after(60):
            await plan.senders_done.wait()
        for profiler in profilers:
            with trio.fail_after(30):
                await trio.to_thread.run_sync(profiler.wait)
        log("senders stopped; waiting for every acked message to be delivered")
        with trio.move_on_after(args.drain_timeout) as drain:
            while not _all_delivered(stats):
                await trio.sleep(0.05)
        result["drain_timed_out"] = drain.cancelled_caught
        plan.finish.set()

    latencies = sorted(latency for s in stats for latency in s.latencies_ms)
    acked = sum(s.acked_in_window for s in stats)
    delivered = sum(s.received_in_window for s in stats)
    result.update(
        messages_acked=acked,
        messages_acked_total=sum(len(seqs) for s in stats for seqs in s.acked.values()),
        throughput_msg_s=round(acked / args.seconds, 1),
        latency_ms=latency_summary(latencies),
        messages_delivered=delivered,
        deliveries_s=round(delivered / args.seconds, 1),
        **cpu_usage(before, after, server.pid, acked),
        send_errors=sum(s.send_errors for s in stats),
        duplicate_acks=sum(s.duplicate_acks for s in stats),
        **verify(stats),
    )
    return result


# -- the whole run -----------------------------------------------------------------------------


def _bottleneck(result: dict[str, Any]) -> str:
    generator, server = result["generator_cpu_pct"], result["server_cpu_pct"]
    if generator >= SATURATED_PCT and generator >= server:
        return "generator CPU (load generator saturated its core: the server figures are a lower bound)"
    if server >= SATURATED_PCT:
        return "server CPU"
    return "neither CPU saturated (latency-bound: round trips and group-commit fsync waits)"


async def _benchmark(args: argparse.Namespace, data_dir: Path, profiles_root: Path, server: ServerProcess) -> dict[str, Any]:
    opened: list[Profile] = []
    try:
        names = [f"u{i:04d}" for i in range(args.clients)]
        started = trio.current_time()
        log(f"creating and enrolling {len(names)} users ({args.enroll_concurrency} at a time)")
        profiles = await enroll_all(data_dir, profiles_root, names, args.enroll_concurrency, opened)
        enroll_s = round(trio.current_time() - started, 2)
        result = await run_load(args, profiles, server)
        result["enroll_s"] = enroll_s
        return result
    finally:
        for profile in opened:
            profile.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Durable 1:1 message throughput and latency of a real Corridor server.")
    parser.add_argument("--clients", type=int, default=200, help="connected clients, paired in a ring (default 200)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the measured window (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="sending before the window opens (default 2)")
    parser.add_argument(
        "--client",
        choices=["wire", "library"],
        default="wire",
        help="generator clients: 'wire' speaks the protocol over the library's TLS transport (measures the server); "
        "'library' uses the full Client with its profile outbox and cursors (measures both ends) (default wire)",
    )
    parser.add_argument("--text-bytes", type=int, default=100, help="message text size (default 100)")
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    parser.add_argument(
        "--taskset",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pin the server to CPU 0 and this generator to CPU 1 (default: on if taskset exists and there are >= 2 CPUs)",
    )
    parser.add_argument("--enroll-concurrency", type=int, default=4, help="enrollments at a time (default 4)")
    parser.add_argument("--connect-concurrency", type=int, default=20, help="TLS connects at a time (default 20)")
    parser.add_argument("--drain-timeout", type=float, default=30.0, help="max wait for deliveries after sending stops")
    parser.add_argument(
        "--profiles-dir",
        type=Path,
        help="where client profiles go (default: /dev/shm if present, see the module docstring)",
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="PREFIX",
        help="profile the server and the generator with py-spy during the window (PREFIX-server.txt, PREFIX-generator.txt)",
    )
    parser.add_argument("--timeout", type=float, help="hard limit for the whole run in seconds (default: from the sizes)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; prints the JSON result and returns 0 if nothing was lost or duplicated."""
    args = _parser().parse_args(argv)
    if args.clients < 2:
        raise SystemExit("--clients must be at least 2")
    if args.py_spy and py_spy_path() is None:
        raise SystemExit("--py-spy needs py-spy: .venv/bin/pip install py-spy")
    cpus = os.cpu_count() or 1
    pin = pin_generator(args.taskset)
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the server and the temp dirs go too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    hard_timeout = args.timeout or (120 + args.clients * 0.5 + args.warmup + args.seconds + args.drain_timeout)

    shm = Path("/dev/shm")
    profiles_parent = args.profiles_dir or (shm if shm.is_dir() and os.access(shm, os.W_OK) else None)
    work = Path(tempfile.mkdtemp(prefix="corridor-bench-"))
    profiles_root = Path(tempfile.mkdtemp(prefix="corridor-bench-profiles-", dir=profiles_parent))
    data_dir = work / "data"
    server = ServerProcess(data_dir, work / "server.log", 0 if pin else None)
    timer = watchdog(hard_timeout + 60, server, [work, profiles_root])
    try:
        create_data_dir(data_dir, ORG, "127.0.0.1:0", ["127.0.0.1", "localhost"], "admin", "Administrator")
        # Every generator connection comes from 127.0.0.1: lift the per-address limit above them.
        config = data_dir / "corridor.toml"
        config.write_text(config.read_text() + f"\n[limits]\nmax_connections_per_address = {args.clients + 50}\n")
        port = server.start(timeout=30)
        log(f"server pid {server.pid} on 127.0.0.1:{port}" + (" (server on CPU 0, generator on CPU 1)" if pin else ""))

        async def bounded() -> dict[str, Any]:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(interrupt_on_sigterm)
                with trio.fail_after(hard_timeout):
                    result = await _benchmark(args, data_dir, profiles_root, server)
                nursery.cancel_scope.cancel()
            return result

        try:
            measured = trio.run(bounded)
        except BaseException as exc:
            inner = single_exception(exc)
            if isinstance(inner, trio.TooSlowError):
                raise SystemExit(
                    f"bench: the run did not finish within its hard limit of {hard_timeout:.0f} s (--timeout)"
                ) from None
            if isinstance(inner, KeyboardInterrupt):
                raise SystemExit("bench: interrupted; server stopped and temp dirs removed") from None
            raise
        log("clients closed; stopping the server with SIGTERM")
        exit_code = server.stop(timeout=30)
        commits = COMMITS.search(server.log_text())
    except Exception:
        log(f"failed; server log tail:\n{server.log_tail()}")
        raise
    finally:
        timer.cancel()
        server.kill()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(profiles_root, ignore_errors=True)

    result: dict[str, Any] = {
        "benchmark": "durable_1to1",
        "date": dt.date.today().isoformat(),
        "clients": args.clients,
        "client_kind": args.client,
        "seconds": args.seconds,
        "warmup_s": args.warmup,
        "text_bytes": args.text_bytes,
        **{k: measured[k] for k in ("messages_acked", "throughput_msg_s", "latency_ms", "deliveries_s")},
        "bottleneck": _bottleneck(measured),
        **{k: v for k, v in measured.items() if k not in ("messages_acked", "throughput_msg_s", "latency_ms", "deliveries_s")},
    }
    if commits:
        writes, count = int(commits.group(1)), int(commits.group(2))
        # The server reports totals for its whole life only, so these include the set-up: two
        # writes per user (add, enroll), mostly one commit each, which lowers the average.
        result["group_commits"] = {
            "commits": count,
            "writes": writes,
            "writes_per_commit": round(writes / max(count, 1), 1),
            "scope": "whole server run, including 2 set-up writes per user",
        }
    result.update(
        server_exit_code=exit_code,
        pinned={"server_cpu": 0, "generator_cpu": 1} if pin else None,
        client_profiles_on="tmpfs" if profiles_parent == shm else str(profiles_parent or tempfile.gettempdir()),
        python=platform.python_version(),
        machine={"cpus": cpus, "cpu_model": cpu_model(), "platform": platform.platform()},
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    ok = result["lost"] == 0 and result["duplicates"] == 0 and result["gaps"] == 0 and exit_code == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
