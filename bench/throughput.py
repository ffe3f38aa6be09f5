"""Durable 1:1 message throughput and latency of a real Corridor server with N live TLS clients.

What it does, in order:

1. Creates a throw-away data dir (`corridor.deploy.init.create_data_dir`) on the normal temp
   file system, so the server's fsyncs hit a real disk, and starts the real server as a separate
   process (`corridor serve DIR --listen 127.0.0.1:0 --no-advertise`), reading the bound port
   from its first stdout line. With `--taskset` the server runs on CPU 0 and this process (the
   load generator) on CPU 1, so the two do not compete for a core.
2. Creates N users through the admin control socket and enrolls a client profile for each
   (Argon2id makes this the slow part of the set-up; it runs a few at a time).
3. Opens one `Client` per user (N TLS connections, all logged in and receiving), pairs them in a
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
docs/performance.md has the results and what they mean.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import trio

from corridor.client.client import Client
from corridor.client.enrollment import enroll
from corridor.client.profile import Profile
from corridor.client.tls import client_context
from corridor.client.transport import Channel, open_unix, running
from corridor.deploy.init import create_data_dir
from corridor.protocol.errors import CorridorError
from corridor.protocol.messages import Login, MessageEvent, Send, SendResult, UserAdd
from corridor.server.net.tls_stream import TLSSocketStream

ORG = "Bench Org"
PASSWORD = "bench-password-not-secret"
READY = re.compile(r"corridor: serving .* on 127\.0\.0\.1:(\d+) \(TLS 1\.3\)")
COMMITS = re.compile(r"stopped; (\d+) writes in (\d+) group commits")
CLK_TCK = os.sysconf("SC_CLK_TCK")
# A single-threaded event loop above this share of its core is saturated: the rest is the idle
# time between bursts (acks arrive in group-commit batches), not spare capacity.
SATURATED_PCT = 80.0


def log(text: str) -> None:
    """A progress line on stderr (stdout is reserved for the JSON result)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# -- the server process ----------------------------------------------------------------------


class ServerProcess:
    """`corridor serve` in a child process, optionally pinned to one CPU."""

    def __init__(self, data_dir: Path, log_path: Path, cpu: int | None):
        self.data_dir = data_dir
        self.log_path = log_path
        self.cpu = cpu
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float) -> int:
        """Start the server and return its TLS port once it reports that it is serving."""
        corridor = Path(sys.executable).parent / "corridor"
        # Info level only adds set-up lines and the final "N writes in M group commits" line:
        # nothing is logged per message, so it costs nothing in the measured phase.
        command = [str(corridor), "serve", str(self.data_dir), "--listen", "127.0.0.1:0", "--no-advertise", "--log-level", "info"]
        if self.cpu is not None:
            command = ["taskset", "-c", str(self.cpu), *command]  # taskset execs: same pid
        with open(self.log_path, "w") as log_file:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
                start_new_session=True,  # a Ctrl-C on the bench must not bypass our orderly stop
            )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        match = READY.search(line)
        if match is None:
            raise RuntimeError(f"server did not report serving within {timeout:g} s (got {line!r}); log:\n{self.log_tail()}")
        return int(match.group(1))

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time of the whole server process so far (all threads)."""
        return _stat_cpu(Path(f"/proc/{self.pid}/stat"))

    def thread_cpu_seconds(self) -> dict[int, float]:
        """CPU time per thread id (ids, not names: trio renames a worker thread after each
        function it runs)."""
        totals: dict[int, float] = {}
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                totals[int(task.name)] = _stat_cpu(task / "stat")
            except OSError:
                continue  # the thread ended meanwhile
        return totals

    def stop(self, timeout: float) -> int | None:
        """SIGTERM, then wait; returns the exit code, or None if it had to be killed."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """Kill the server if it is still running (error paths)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def _stat_cpu(path: Path) -> float:
    # Fields after the parenthesised command name (which may hold spaces): utime and stime are
    # the 14th and 15th fields of the whole line, i.e. the 12th and 13th after ")".
    fields = path.read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# -- set-up: users and profiles ----------------------------------------------------------------


async def enroll_all(
    data_dir: Path, profiles_root: Path, names: list[str], concurrency: int, opened: list[Profile]
) -> list[Profile]:
    """Create every user over the control socket and enroll a profile for each, a few at a time.

    `opened` collects every Profile created, so the caller can close them even after a failure."""
    profiles: dict[str, Profile] = {}
    limiter = trio.CapacityLimiter(concurrency)
    stream = await open_unix(str(data_dir / "control.sock"))
    async with running(stream) as admin:
        await admin.handshake()

        async def one(name: str) -> None:
            async with limiter:
                added = await admin.request(UserAdd(username=name, display_name=f"Bench {name}"))
                profile = Profile(profiles_root / name)
                opened.append(profile)
                await enroll(profile, added.invite, PASSWORD, "bench")
                profiles[name] = profile
                if len(profiles) % 50 == 0 or len(profiles) == len(names):
                    log(f"enrolled {len(profiles)}/{len(names)}")

        async with trio.open_nursery() as nursery:
            for name in names:
                nursery.start_soon(one, name)
    return [profiles[name] for name in names]


# -- the load ----------------------------------------------------------------------------------


class WireClient:
    """A generator client that speaks the real protocol over the library's real TLS transport,
    without the profile database (outbox, cursors) that `Client` keeps for durability on the
    user's side: with it, the generator's own SQLite work — not the server — limits the run."""

    def __init__(self, channel: Channel):
        self.channel = channel
        self._sent = 0

    async def send(self, to: str, text: str) -> SendResult:
        self._sent += 1
        return await self.channel.request(Send(to=to, msg_id=f"w{self._sent}", text=text))

    async def events(self) -> AsyncIterator:
        async for event in self.channel.events:
            yield event


@asynccontextmanager
async def open_wire_client(profile: Profile) -> AsyncIterator[WireClient]:
    """Connect, say hello and log in with the profile's device token.

    TLS (1.3, verified against the pinned CA) runs on the server's `TLSSocketStream`, whose
    records cost less CPU than trio's SSLStream, so that one generator core can load the server.
    """
    cred = profile.credential()
    tcp = await trio.open_tcp_stream(cred.host, cred.port)
    stream = TLSSocketStream.wrap(tcp, client_context(profile.ca_pem()), server_hostname=cred.tls_host)
    await stream.do_handshake()
    async with running(stream) as channel:
        await channel.handshake()
        await channel.request(Login(user=cred.user, device_token=cred.device_token))
        yield WireClient(channel)


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


def _py_spy() -> str | None:
    """The py-spy executable: on PATH or next to this Python (`pip install py-spy`)."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def _start_profilers(prefix: Path, server_pid: int, seconds: float) -> list[subprocess.Popen[bytes]]:
    """Sample the server and this generator with py-spy during the measured window.

    Writes PREFIX-server.txt and PREFIX-generator.txt (collapsed stacks: one line per stack,
    frames separated by ';', then the sample count). Sampling pauses the processes briefly,
    so the numbers of a profiled run are a little lower than those of a plain run."""
    py_spy = _py_spy()
    profilers = []
    for role, pid in (("server", server_pid), ("generator", os.getpid())):
        output = Path(f"{prefix}-{role}.txt")
        command = [py_spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--rate", "200"]
        command += ["--format", "raw", "--threads", "--output", str(output)]
        profilers.append(
            subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
    return profilers


def _machine_busy_seconds() -> float:
    """CPU time all cores spent running something since boot (/proc/stat: user, nice, system,
    irq, softirq; not idle, I/O wait, or time stolen by the hypervisor)."""
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in Path("/proc/stat").read_text().split()[1:8])
    return (user + nice + system + irq + softirq) / CLK_TCK


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU time counters (seconds) at one instant of the trio clock."""

    wall: float
    generator: float
    server: float
    server_threads: dict[int, float]
    machine: float

    @classmethod
    def take(cls, server: ServerProcess) -> CpuSnapshot:
        """Read every counter now."""
        return cls(
            wall=trio.current_time(),
            generator=time.process_time(),
            server=server.cpu_seconds(),
            server_threads=server.thread_cpu_seconds(),
            machine=_machine_busy_seconds(),
        )


def cpu_usage(before: CpuSnapshot, after: CpuSnapshot, server_pid: int, acked: int) -> dict[str, Any]:
    """CPU use over the window, in % of one core and in ms per acked message."""
    wall = after.wall - before.wall
    server = after.server - before.server
    generator = after.generator - before.generator
    # The main thread is the trio event loop; the others are trio's worker threads (group
    # commits, reads). One that exits inside the window takes its CPU time with it, so the
    # worker figure can be a little low; threads that appear inside the window start from zero.
    loop = after.server_threads.get(server_pid, 0.0) - before.server_threads.get(server_pid, 0.0)
    workers = sum(cpu - before.server_threads.get(tid, 0.0) for tid, cpu in after.server_threads.items() if tid != server_pid)
    return {
        "generator_cpu_pct": round(100 * generator / wall, 1),
        "server_cpu_pct": round(100 * server / wall, 1),
        "server_threads_cpu_pct": {"event_loop": round(100 * loop / wall, 1), "worker_threads": round(100 * workers / wall, 1)},
        "server_cpu_ms_per_msg": round(1000 * server / max(acked, 1), 3),
        "generator_cpu_ms_per_msg": round(1000 * generator / max(acked, 1), 3),
        # What one fully busy server core would carry at this cost per message: a linear
        # extrapolation (bigger group commits and coalesced writes would do a bit better).
        "server_capacity_estimate_msg_s": round(acked / max(server, 1e-9)),
        # Everything else that ran on the machine meanwhile (other jobs, py-spy), in % of one
        # core: a run with a high figure here was disturbed and is not comparable. /proc/stat
        # counts in ticks, so an idle machine can come out a little below zero: clamp.
        "other_cpu_pct": max(0.0, round(100 * (after.machine - before.machine - server - generator) / wall, 1)),
    }


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of a non-empty ascending list."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def _latency_summary(latencies: list[float]) -> dict[str, float | int | None]:
    """p50/p90/p99/max/mean in ms of an ascending list (None when there are no samples: JSON has no NaN)."""
    if not latencies:
        return {"p50": None, "p90": None, "p99": None, "max": None, "mean": None, "samples": 0}
    summary: dict[str, float | int | None] = {
        name: round(_percentile(latencies, q), 2) for name, q in (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))
    }
    summary.update(max=round(latencies[-1], 2), mean=round(sum(latencies) / len(latencies), 2), samples=len(latencies))
    return summary


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
        profilers = _start_profilers(args.py_spy, server.pid, args.seconds) if args.py_spy else []
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
        latency_ms=_latency_summary(latencies),
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


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor()


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


def _single(exc: BaseException) -> BaseException:
    """The one exception inside nested single-member exception groups (nurseries wrap them)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


async def _interrupt_on_sigterm() -> None:
    # Inside trio a signal is turned into an exception in a task, so the clients unwind cleanly.
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async for _ in signals:
            raise KeyboardInterrupt


def _watchdog(seconds: float, server: ServerProcess, dirs: list[Path]) -> threading.Timer:
    """Last resort if the event loop itself hangs: kill the server, remove the dirs, exit 3."""

    def fire() -> None:
        print(f"bench: hard timeout of {seconds:.0f} s reached; killing the server and exiting", file=sys.stderr, flush=True)
        try:
            server.kill()
        finally:
            for path in dirs:
                shutil.rmtree(path, ignore_errors=True)
            os._exit(3)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer


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
    if args.py_spy and _py_spy() is None:
        raise SystemExit("--py-spy needs py-spy: .venv/bin/pip install py-spy")
    cpus = os.cpu_count() or 1
    pin = args.taskset if args.taskset is not None else bool(shutil.which("taskset")) and cpus >= 2
    if pin:
        os.sched_setaffinity(0, {1})
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the server and the temp dirs go too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    hard_timeout = args.timeout or (120 + args.clients * 0.5 + args.warmup + args.seconds + args.drain_timeout)

    shm = Path("/dev/shm")
    profiles_parent = args.profiles_dir or (shm if shm.is_dir() and os.access(shm, os.W_OK) else None)
    work = Path(tempfile.mkdtemp(prefix="corridor-bench-"))
    profiles_root = Path(tempfile.mkdtemp(prefix="corridor-bench-profiles-", dir=profiles_parent))
    data_dir = work / "data"
    server = ServerProcess(data_dir, work / "server.log", 0 if pin else None)
    watchdog = _watchdog(hard_timeout + 60, server, [work, profiles_root])
    try:
        create_data_dir(data_dir, ORG, "127.0.0.1:0", ["127.0.0.1", "localhost"], "admin", "Administrator")
        port = server.start(timeout=30)
        log(f"server pid {server.pid} on 127.0.0.1:{port}" + (" (server on CPU 0, generator on CPU 1)" if pin else ""))

        async def bounded() -> dict[str, Any]:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_interrupt_on_sigterm)
                with trio.fail_after(hard_timeout):
                    result = await _benchmark(args, data_dir, profiles_root, server)
                nursery.cancel_scope.cancel()
            return result

        try:
            measured = trio.run(bounded)
        except BaseException as exc:
            inner = _single(exc)
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
        watchdog.cancel()
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
        machine={"cpus": cpus, "cpu_model": _cpu_model(), "platform": platform.platform()},
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    ok = result["lost"] == 0 and result["duplicates"] == 0 and result["gaps"] == 0 and exit_code == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
