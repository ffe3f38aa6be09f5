"""What every Corridor benchmark needs: a real server process, enrolled users, the wire client,
CPU accounting from /proc, latency percentiles, profilers and a hard deadline.

Benchmarks import this as `harness` (they run as scripts from bench/, so bench/ is on the
path). Nothing here talks to anything but 127.0.0.1, and the server never advertises.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import select
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from corridor.client.enrollment import enroll
from corridor.client.profile import Profile
from corridor.client.tls import client_context
from corridor.client.transport import Channel, open_unix, running
from corridor.deploy.init import create_data_dir
from corridor.protocol.messages import Login, Send, SendResult, UserAdd
from corridor.server.net.tls_stream import TLSSocketStream

ORG = "Bench Org"
PASSWORD = "bench-password-not-secret"
READY = re.compile(r"corridor: serving .* on 127\.0\.0\.1:(\d+) \(TLS 1\.3\)")
COMMITS = re.compile(r"stopped; (\d+) writes in (\d+) group commits")
CLK_TCK = os.sysconf("SC_CLK_TCK")


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
async def open_wire_client(profile: Profile, context: ssl.SSLContext | None = None) -> AsyncIterator[WireClient]:
    """Connect, say hello and log in with the profile's device token.

    TLS (1.3, verified against the pinned CA) runs on the server's `TLSSocketStream`, whose
    records cost less CPU than trio's SSLStream, so that one generator core can load the server.
    `context` (from `client_context(profile.ca_pem())`) lets thousands of connections share one
    client context instead of building one each; without it each connection builds its own.
    """
    cred = profile.credential()
    tcp = await trio.open_tcp_stream(cred.host, cred.port)
    stream = TLSSocketStream.wrap(tcp, context or client_context(profile.ca_pem()), server_hostname=cred.tls_host)
    await stream.do_handshake()
    async with running(stream) as channel:
        await channel.handshake()
        await channel.request(Login(user=cred.user, device_token=cred.device_token))
        yield WireClient(channel)


def pin_generator(taskset: bool | None) -> bool:
    """Decide `--taskset` (by default: on where taskset exists and there are two CPUs or more)
    and, if on, move this process, the load generator, to CPU 1 now; the server is then started
    on CPU 0 (`cpu=0`). Returns the decision."""
    pin = taskset if taskset is not None else bool(shutil.which("taskset")) and (os.cpu_count() or 1) >= 2
    if pin:
        os.sched_setaffinity(0, {1})
    return pin


def py_spy_path() -> str | None:
    """The py-spy executable: on PATH or next to this Python (`pip install py-spy`)."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def start_profilers(prefix: Path, server_pid: int, seconds: float) -> list[subprocess.Popen[bytes]]:
    """Sample the server and this generator with py-spy during the measured window.

    Writes PREFIX-server.txt and PREFIX-generator.txt (collapsed stacks: one line per stack,
    frames separated by ';', then the sample count). Sampling pauses the processes briefly,
    so the numbers of a profiled run are a little lower than those of a plain run."""
    py_spy = py_spy_path()
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


def cpu_percentages(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """Server, generator and everything else on the machine over a window, in % of one core
    (for benchmarks whose unit is not a message; `cpu_usage` adds the per-message figures)."""
    wall = max(after.wall - before.wall, 1e-9)
    server = after.server - before.server
    generator = after.generator - before.generator
    return {
        "server_cpu_pct": round(100 * server / wall, 1),
        "generator_cpu_pct": round(100 * generator / wall, 1),
        "other_cpu_pct": max(0.0, round(100 * (after.machine - before.machine - server - generator) / wall, 1)),
    }


def process_memory_kib(pid: int) -> dict[str, int]:
    """Memory of a process in KiB: VmRSS, RssAnon and VmHWM from /proc/PID/status, and Pss,
    Pss_Anon and Private_Dirty from /proc/PID/smaps_rollup (when the kernel has it)."""
    memory: dict[str, int] = {}
    wanted = {"VmRSS": "rss", "RssAnon": "rss_anon", "VmHWM": "rss_peak"}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in wanted:
            memory[wanted[key]] = int(value.split()[0])
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return memory
    wanted = {"Pss": "pss", "Pss_Anon": "pss_anon", "Private_Dirty": "private_dirty"}
    for line in rollup:
        key, _, value = line.partition(":")
        if key in wanted:
            memory[wanted[key]] = int(value.split()[0])
    return memory


def open_fds(pid: int) -> int:
    """How many file descriptors the process has open (sockets included)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of a non-empty ascending list."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_summary(latencies: list[float]) -> dict[str, float | int | None]:
    """p50/p90/p99/p99.9/max/mean in ms (None when there are no samples: JSON has no NaN)."""
    latencies = sorted(latencies)
    quantiles = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p99_9", 0.999))
    if not latencies:
        return {**{name: None for name, _ in quantiles}, "max": None, "mean": None, "samples": 0}
    summary: dict[str, float | int | None] = {name: round(_percentile(latencies, q), 2) for name, q in quantiles}
    summary.update(max=round(latencies[-1], 2), mean=round(sum(latencies) / len(latencies), 2), samples=len(latencies))
    return summary


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor()


async def interrupt_on_sigterm() -> None:
    # Inside trio a signal is turned into an exception in a task, so the clients unwind cleanly.
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async for _ in signals:
            raise KeyboardInterrupt


def watchdog(seconds: float, server: ServerProcess, dirs: list[Path]) -> threading.Timer:
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


def run_against_server(
    prefix: str,
    measure: Callable[[Path, ServerProcess], Awaitable[dict]],
    *,
    limits: str = "",
    timeout: float,
    out: Path | None,
    passed: Callable[[dict], bool],
    cpu: int | None = None,
    config: str = "",
) -> int:
    """The life of a one-server benchmark: a fresh data dir with `limits` (TOML lines of the
    `[limits]` section) and `config` (more TOML sections), `corridor serve` started,
    `measure(work, server)` run under trio and a hard deadline, the server stopped (its exit
    code goes into the result), everything removed. Prints the result as one JSON object (and
    writes it to `out`); exit status 0 if `passed`. `cpu` pins the server to that CPU."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    server = ServerProcess(work / "data", work / "server.log", cpu)
    timer = watchdog(timeout, server, [work])
    try:
        create_data_dir(work / "data", ORG, "127.0.0.1:0", ["127.0.0.1", "localhost"], "admin", "Administrator")
        toml = work / "data" / "corridor.toml"
        toml.write_text(toml.read_text() + f"\n[limits]\n{limits}\n{config}\n")
        server.start(timeout=60)
        result = trio.run(measure, work, server)
        result["server_exit_code"] = server.stop(timeout=60)
    finally:
        timer.cancel()
        server.kill()
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result)
    print(text)
    if out:
        out.write_text(text + "\n")
    return 0 if passed(result) and result["server_exit_code"] == 0 else 1
