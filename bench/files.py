"""File transfer throughput on loopback: upload, then download, through a real `corridor serve`.

What it measures (one JSON object on stdout, progress on stderr): `--parallel` senders each
upload a file of `--size-mib` random bytes with the client library (`client/transfers.py`:
hash, chunked upload, the server's SHA-256 check and durable store, then a `file` message), and
their recipients then download them (each download checked against its SHA-256). Reported: MiB/s
for each direction over all transfers, seconds per transfer, the server's CPU per MiB, and that
every download was bit-identical. The sender's own hashing before the upload is timed apart
(`hash_s`), since it is client work. All on 127.0.0.1 with `--no-advertise`, under a hard
deadline; the data dir is removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import trio
from harness import CpuSnapshot, ServerProcess, enroll_all, log, run_against_server

from corridor.client.client import Client
from corridor.client.transfers import download, hash_file, send_file

MIB = 1024 * 1024


def _window(before: CpuSnapshot, after: CpuSnapshot, mib: float) -> dict:
    wall = after.wall - before.wall
    server = after.server - before.server
    return {
        "seconds": round(wall, 2),
        "mib_per_s": round(mib / wall, 1),
        "server_cpu_pct": round(100 * server / wall, 1),
        "server_cpu_ms_per_mib": round(1000 * server / mib, 2),
        "generator_cpu_pct": round(100 * (after.generator - before.generator) / wall, 1),
    }


async def measure(args: argparse.Namespace, work: Path, server: ServerProcess) -> dict:
    pairs = [(f"s{i}", f"r{i}") for i in range(args.parallel)]
    opened = []
    result: dict = {
        "benchmark": "file_transfer",
        "date": time.strftime("%Y-%m-%d"),
        "size_mib": args.size_mib,
        "parallel": args.parallel,
    }
    try:
        profiles = await enroll_all(work / "data", work / "profiles", [n for pair in pairs for n in pair], 4, opened)
        senders, receivers = profiles[0::2], profiles[1::2]
        sources = []
        for i in range(args.parallel):
            path = work / f"upload-{i}.bin"
            with open(path, "wb") as f:
                for _ in range(args.size_mib):
                    f.write(os.urandom(MIB))
            sources.append(path)
        started = time.perf_counter()
        digests = [hash_file(path)[0] for path in sources]
        result["hash_s"] = round((time.perf_counter() - started) / args.parallel, 2)
        total = args.size_mib * args.parallel

        async def up(i: int) -> None:
            async with Client.open(senders[i], receive=False) as client:
                await send_file(client, pairs[i][1], sources[i])

        before = CpuSnapshot.take(server)
        async with trio.open_nursery() as nursery:
            for i in range(args.parallel):
                nursery.start_soon(up, i)
        after = CpuSnapshot.take(server)
        result["upload"] = _window(before, after, total)
        log(f"uploaded {total} MiB at {result['upload']['mib_per_s']} MiB/s")

        targets = []

        async def down(i: int) -> None:
            target = work / f"download-{i}.bin"
            targets.append(target)
            async with Client.open(receivers[i], receive=False) as client:
                await download(client, digests[i], target)

        before = CpuSnapshot.take(server)
        async with trio.open_nursery() as nursery:
            for i in range(args.parallel):
                nursery.start_soon(down, i)
        after = CpuSnapshot.take(server)
        result["download"] = _window(before, after, total)
        log(f"downloaded {total} MiB at {result['download']['mib_per_s']} MiB/s")
        result["bit_identical"] = all(hash_file(work / f"download-{i}.bin")[0] == digests[i] for i in range(args.parallel))
    finally:
        for profile in opened:
            profile.close()
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the file transfer benchmark; prints one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=256, help="size of each file in MiB (default 256)")
    parser.add_argument("--parallel", type=int, default=1, help="transfers at once, each its own pair of people (default 1)")
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    parser.add_argument("--timeout", type=float, default=600, help="hard limit for the whole run in seconds")
    args = parser.parse_args(argv)
    if not 1 <= args.size_mib <= 4096 or not 1 <= args.parallel <= 32:
        parser.error("--size-mib must be 1-4096 and --parallel 1-32")
    return run_against_server(
        "corridor-bench-files-",
        lambda work, server: measure(args, work, server),
        limits=f"max_file_bytes = {args.size_mib * MIB}",
        timeout=args.timeout,
        out=args.out,
        passed=lambda result: result["bit_identical"],
    )


if __name__ == "__main__":
    sys.exit(main())
