"""Group fan-out: one sender, a 1,000-member group, every member connected.

What it measures (one JSON object on stdout, progress on stderr): the owner sends `--messages`
messages to the group, each awaited until stored durably, while every member counts what the
server pushes to it. Reported: deliveries per second (one per member per message) from the first send to
the last delivery, the latency from a send's start to each member's receipt (p50/p90/p99), and
whether every member got every message exactly once, in order. All on 127.0.0.1 with
`--no-advertise`, under a hard deadline; the data dir is removed afterwards.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import trio
from harness import CpuSnapshot, ServerProcess, cpu_usage, enroll_all, latency_summary, log, open_wire_client, run_against_server

from corridor.protocol.messages import GroupCreate, GroupSend, MessageEvent


async def measure(args: argparse.Namespace, work: Path, server: ServerProcess) -> dict:
    names = [f"g{i:04d}" for i in range(args.members)]
    opened = []
    result: dict = {
        "benchmark": "group_fanout",
        "date": time.strftime("%Y-%m-%d"),
        "members": args.members,
        "messages": args.messages,
    }
    try:
        started = time.perf_counter()
        profiles = await enroll_all(work / "data", work / "profiles", names, args.enroll_concurrency, opened)
        result["enroll_s"] = round(time.perf_counter() - started, 1)
        received: dict[str, list[int]] = {name: [] for name in names[1:]}
        latencies: list[float] = []
        sent_at: dict[str, float] = {}
        last_delivery = [0.0]
        connected = [0]
        lost: dict[str, str] = {}  # members whose connection ended early, and why
        connecting = trio.Semaphore(args.connect_concurrency)
        expected = args.messages + 1  # the "created the group" message first

        async def member(name: str, profile, task_status=trio.TASK_STATUS_IGNORED) -> None:
            await connecting.acquire()  # bounds the TLS handshakes in flight, not the connections
            async with open_wire_client(profile) as client:
                connecting.release()
                connected[0] += 1
                task_status.started()
                with trio.move_on_after(args.deadline):
                    async for event in client.events():
                        if isinstance(event, MessageEvent):
                            now = time.perf_counter()
                            received[name].append(event.seq)
                            if event.msg_id in sent_at:
                                latencies.append((now - sent_at[event.msg_id]) * 1000)
                            last_delivery[0] = now
                            if len(received[name]) == expected:
                                break
                with trio.move_on_after(1.0):  # anything more would be a duplicate
                    async for event in client.events():
                        if isinstance(event, MessageEvent):
                            received[name].append(event.seq)
                if client.channel.error is not None:
                    lost[name] = client.channel.error.message

        async with trio.open_nursery() as nursery:
            started = time.perf_counter()
            for name, profile in zip(names[1:], profiles[1:], strict=True):
                await nursery.start(member, name, profile)
            result["connect_s"] = round(time.perf_counter() - started, 1)
            log(f"{connected[0]} members connected")
            async with open_wire_client(profiles[0]) as owner:
                group = (await owner.channel.request(GroupCreate(name="Everyone", members=tuple(names[1:])))).id
                await trio.sleep(1.0)  # let the "created" message reach everyone before timing
                before = CpuSnapshot.take(server)
                first = time.perf_counter()
                for n in range(args.messages):
                    msg_id = f"fan-{n}"
                    sent_at[msg_id] = time.perf_counter()
                    await owner.channel.request(GroupSend(group=group, msg_id=msg_id, text=f"notice {n} " + "x" * 80))
                sent_s = time.perf_counter() - first
        after = CpuSnapshot.take(server)
        deliveries = sum(len(seqs) for seqs in received.values()) - len(received)  # minus the "created" ones
        # Per delivery, not per message: "msg" in these keys counts member deliveries here.
        result["cpu"] = cpu_usage(before, after, server.pid, deliveries)
        elapsed = last_delivery[0] - first
        exact = all(seqs == list(range(1, expected + 1)) for seqs in received.values())
        result.update(
            {
                "send_s": round(sent_s, 2),
                "deliveries": deliveries,
                "fanout_s": round(elapsed, 2),
                "deliveries_per_s": round(deliveries / elapsed) if elapsed > 0 else None,
                "messages_per_s_sent": round(args.messages / sent_s, 1),
                "latency_ms": latency_summary(latencies),
                "every_member_exactly_once_in_order": exact,
                "members_short": sum(len(seqs) < expected for seqs in received.values()),
                "connections_lost": dict(list(lost.items())[:5]),
            }
        )
        log(f"{deliveries} deliveries in {elapsed:.2f} s; exactly once: {exact}")
    finally:
        for profile in opened:
            profile.close()
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the fan-out benchmark; prints one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=1000, help="group members, all connected (default 1,000)")
    parser.add_argument("--messages", type=int, default=100, help="messages the owner sends (default 100)")
    parser.add_argument("--enroll-concurrency", type=int, default=4, help="enrollments at a time (default 4)")
    parser.add_argument("--connect-concurrency", type=int, default=20, help="TLS connects at a time (default 20)")
    parser.add_argument("--deadline", type=float, default=300, help="seconds members wait for all messages")
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    parser.add_argument("--timeout", type=float, default=900, help="hard limit for the whole run in seconds")
    args = parser.parse_args(argv)
    limit = args.members + 100
    return run_against_server(
        "corridor-bench-groups-",
        lambda work, server: measure(args, work, server),
        limits=f"max_connections_per_address = {limit}\nmax_group_members = {limit}",
        timeout=args.timeout,
        out=args.out,
        passed=lambda result: result["every_member_exactly_once_in_order"],
    )


if __name__ == "__main__":
    sys.exit(main())
