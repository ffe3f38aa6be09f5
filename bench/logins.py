"""Logins per second: TLS 1.3 handshake, `hello` and `login` with a device token, as a client
reconnecting after a network blip or a server restart does.

What it does: a real `corridor serve` (pinned to CPU 0 with `--taskset`, this generator to CPU 1),
`--users` people enrolled like real people (Argon2id, a few at a time), then `--in-flight`
workers that each connect, log in with a device token and close, over and over, for `--seconds`
after a warm-up. Counted: logins completed, their latency (connect to login answer), the CPU of
both processes. The client side does the same TLS work as the server, so watch
`generator_cpu_pct`: near 100 the generator set the pace.

One JSON object goes to stdout (and `--out`), progress to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import trio
from harness import (
    CpuSnapshot,
    ServerProcess,
    enroll_all,
    latency_summary,
    open_wire_client,
    pin_generator,
    run_against_server,
    start_profilers,
)

from corridor.client.tls import client_context


async def measure(args: argparse.Namespace, work: Path, server: ServerProcess) -> dict:
    opened = []
    try:
        profiles = await enroll_all(work / "data", work / "profiles", [f"u{i:04d}" for i in range(args.users)], 4, opened)
        # One client context for all workers, as a real client builds one per process: a context
        # per login (loading the CA each time) cost the generator more than the handshake.
        context = client_context(profiles[0].ca_pem())
        latencies: list[float] = []
        counting = False
        failures = 0

        async def worker(n: int) -> None:
            nonlocal failures
            profile = profiles[n % len(profiles)]
            while True:
                started = time.perf_counter()
                try:
                    async with open_wire_client(profile, context):
                        pass
                except Exception:  # any failure is counted in the window, never hidden
                    failures += counting
                    await trio.sleep(0.01)
                    continue
                if counting:
                    latencies.append((time.perf_counter() - started) * 1000)

        async with trio.open_nursery() as nursery:
            for n in range(args.in_flight):
                nursery.start_soon(worker, n)
            await trio.sleep(args.warmup)
            before = CpuSnapshot.take(server)
            counting = True
            profilers = start_profilers(args.py_spy, server.pid, args.seconds) if args.py_spy else []
            await trio.sleep(args.seconds)
            counting = False
            after = CpuSnapshot.take(server)
            nursery.cancel_scope.cancel()
        for profiler in profilers:
            profiler.wait(timeout=60)
        wall = after.wall - before.wall
        logins = len(latencies)
        return {
            "benchmark": "logins",
            "date": time.strftime("%Y-%m-%d"),
            "users": args.users,
            "in_flight": args.in_flight,
            "seconds": args.seconds,
            "logins": logins,
            "logins_per_s": round(logins / wall, 1),
            "failures": failures,
            "latency_ms": latency_summary(latencies),
            "server_cpu_pct": round(100 * (after.server - before.server) / wall, 1),
            "generator_cpu_pct": round(100 * (after.generator - before.generator) / wall, 1),
            "server_cpu_ms_per_login": round(1000 * (after.server - before.server) / max(logins, 1), 3),
            "other_cpu_pct": max(
                0.0,
                round(
                    100
                    * (after.machine - before.machine - (after.server - before.server) - (after.generator - before.generator))
                    / wall,
                    1,
                ),
            ),
        }
    finally:
        for profile in opened:
            profile.close()


def main(argv: list[str] | None = None) -> int:
    """Run the login benchmark; prints one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=50, help="enrolled people whose tokens are used (default 50)")
    parser.add_argument("--in-flight", type=int, default=50, help="logins under way at once (default 50)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the measured window (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="logging in before the window opens (default 2)")
    parser.add_argument(
        "--taskset", action=argparse.BooleanOptionalAction, default=None, help="pin server to CPU 0, generator to CPU 1"
    )
    parser.add_argument("--timeout", type=float, default=600, help="hard limit for the whole run in seconds")
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    parser.add_argument("--py-spy", type=Path, metavar="PREFIX", help="sample both processes in the window (PREFIX-server.txt …)")
    args = parser.parse_args(argv)
    if not 1 <= args.users <= 1000 or not 1 <= args.in_flight <= 1000:
        parser.error("--users and --in-flight must be 1-1000")
    pin = pin_generator(args.taskset)
    return run_against_server(
        "corridor-bench-logins-",
        lambda work, server: measure(args, work, server),
        timeout=args.timeout,
        out=args.out,
        passed=lambda result: result["logins"] > 0,
        cpu=0 if pin else None,
    )


if __name__ == "__main__":
    sys.exit(main())
