"""Latency of durable 1:1 messages at a fixed offered rate (open loop), with N live TLS clients.

Where `throughput.py` asks "how fast can it go" (closed loop: each client waits for its ack
before sending again, so a slow server slows the senders and hides its own slowness), this
asks "how long does a message take when people send at a given rate": the senders keep to a
fixed schedule whatever the server does. The target is p99 < 10 ms from send to durable ack
at 1,000 msg/s offered by 1,000 connected clients.

What it does, in order:

1. Starts a real `corridor serve` on a throw-away data dir on disk (`harness.run_against_server`:
   fsyncs hit a real disk), with `max_connections_per_address` raised above `--clients` (they
   all come from 127.0.0.1). With `--taskset` (the default when taskset exists and there are
   >= 2 CPUs) the server runs on CPU 0 and this process, the load generator, on CPU 1.
2. Creates `--clients` users over the admin socket and enrolls a profile for each (Argon2id:
   the slow part of the set-up), then opens one wire client per user (TLS 1.3 verified against
   the pinned CA, one shared client context, `hello`, `login` with the device token), all
   logged in and consuming their events.
3. For each rate of `--rates` (default: `--rate`, 1,000 msg/s): a schedule of send times
   t_k = start + k / rate covering `--warmup` seconds and then the `--seconds` long measured
   window. Send k goes to client k mod N (round robin), which sends it to its right neighbour
   in a ring (u0000 → u0001 → … → u0000), so every client sends and receives rate / N msg/s and
   each sender → recipient pair is one conversation. One scheduler task hands each send to its
   client at t_k, whether or not the earlier sends finished (open loop: a client may have
   several in flight); the client writes it at once (`Channel.submit`) and a separate task
   waits for the ack.
4. Latency is measured from the SCHEDULED time t_k, not from when the generator got round to
   writing it, so that a stall (of the server or the generator) counts against every message
   that should have been sent during it — no coordinated omission: (a) to the durable ack (the
   server acks after the group commit's fsync), (b) to the delivery at the recipient. The
   message's `msg_id` (also in its text) names its run and k, from which the recipient, in the
   same process and on the same trio clock, finds t_k. `ack_from_send_ms` is from the actual
   write instead, for comparison; `generator_lateness_ms` is how far behind schedule the
   generator wrote (if it is large, the generator and not the server set the latency, and
   `bottleneck` says so). Every message scheduled in the window counts, however late its ack.
5. After each window: sending stops, and it waits until every send is answered and every acked
   message delivered (`--drain-timeout`), then goes on to the next rate on the same server.
6. Checks, over all runs: every acked message delivered exactly once, to the right recipient,
   in order per sender → recipient pair (seqs and schedule order), no seq gaps, no send errors,
   nothing unanswered. Then closes the clients and stops the server with SIGTERM.

One JSON object goes to stdout (and `--out`), progress to stderr: per rate the offered and
achieved rates, ack and delivery latency (p50, p90, p99, p99.9, max), generator lateness, CPU of
server and generator (% of one core, server CPU ms per message), `meets_target` (ack p99 below
10 ms) and the bottleneck. Everything runs under a hard deadline computed from the sizes
(`--timeout`). Exit status 0 only if nothing was lost, duplicated, reordered or left
unanswered, no send failed, and the server stopped cleanly — missing the latency target is a
result, not a failure.

Reading a tail: `ack_p99_ms_by_second` shows whether slow messages were spread out or came in
one stall, `longest_ack_gap_ms` how long the server answered nothing (acks normally come in
group-commit batches a few ms apart; a long gap is an fsync or a collection in the server), and
`generator_gc` this process's own collector pauses (none: its long-lived objects are frozen with
`gc.freeze()` after connecting and collection is off during the runs, since its pauses of up to
~80 ms were most of the p99 otherwise). `other_cpu_pct` is what
everything else on the machine used meanwhile: a run where it is high was disturbed.

The timer resolution of the event loop (epoll waits in whole milliseconds) makes the generator
up to ~1 ms late on its own; that lateness is inside the reported latencies.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import signal
import sys
import time
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import trio
from harness import (
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
    run_against_server,
)

from corridor.client.profile import Profile
from corridor.client.tls import client_context
from corridor.protocol.errors import CorridorError
from corridor.protocol.messages import MessageEvent, Send

TARGET_P99_MS = 10.0
# The generator is the bottleneck when it wrote this late (p99) or ran its core this hot.
LATE_P99_MS = 2.0
SATURATED_PCT = 80.0


@dataclass(slots=True)
class Message:
    """One scheduled send and what became of it (times on the trio clock)."""

    run: int
    k: int
    sender: int  # client index; the recipient is sender + 1 (mod N)
    scheduled: float
    sent: float = math.nan
    acked: float = math.nan
    delivered: float = math.nan  # first delivery
    deliveries: int = 0
    conversation: int = 0
    seq: int = 0
    error: str | None = None

    @property
    def msg_id(self) -> str:
        return f"r{self.run}.{self.k}"


@dataclass
class Peer:
    """One connected client: who it sends to, its queue of due sends, what it received."""

    index: int
    name: str
    peer: str
    queue_send: trio.MemorySendChannel[Message]
    queue_receive: trio.MemoryReceiveChannel[Message]
    in_flight: int = 0
    max_in_flight: int = 0
    last_seq: dict[int, int] = field(default_factory=dict)  # conversation -> last seq received
    last_id: tuple[int, int] = (-1, -1)  # (run, k) of the last message received


class GcWatch:
    """The generator's garbage-collection pauses (gc.callbacks), to tell them apart from the
    server's: a full collection of a big heap stops the event loop for a while."""

    def __init__(self) -> None:
        self.pauses_ms: list[float] = []
        self.by_generation = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses_ms.append((time.perf_counter() - self._started) * 1000)
            self.by_generation[info["generation"]] += 1

    def reset(self) -> None:
        self.pauses_ms, self.by_generation = [], [0, 0, 0]

    def report(self) -> dict[str, Any]:
        return {
            "collections_by_generation": list(self.by_generation),
            "max_pause_ms": round(max(self.pauses_ms, default=0.0), 2),
            "total_pause_ms": round(sum(self.pauses_ms), 1),
        }

    def close(self) -> None:
        gc.callbacks.remove(self._callback)


@dataclass
class State:
    """Everything the tasks share."""

    peers: list[Peer]
    text_bytes: int
    runs: list[list[Message]] = field(default_factory=list)  # run -> messages by k
    connected: int = 0
    connected_all: trio.Event = field(default_factory=trio.Event)
    finish: trio.Event = field(default_factory=trio.Event)
    unanswered: int = 0  # sends written (or due) whose ack or error has not come back
    undelivered: int = 0  # acked messages not delivered yet
    send_errors: dict[str, int] = field(default_factory=dict)
    duplicate_acks: int = 0
    out_of_order: int = 0
    unexpected: int = 0  # deliveries of unknown messages, to the wrong person, or of failed sends
    connections_lost: dict[str, str] = field(default_factory=dict)
    gc_watch: GcWatch = field(default_factory=GcWatch)

    def lookup(self, msg_id: str) -> Message | None:
        try:
            run, k = (int(part) for part in msg_id[1:].split("."))
            return self.runs[run][k]
        except (ValueError, IndexError):
            return None


def _text(message: Message, size: int) -> str:
    head = f"{message.msg_id} at {message.scheduled:.6f} "
    return head + "x" * max(0, size - len(head))


async def _await_ack(answer, message: Message, peer: Peer, state: State) -> None:
    try:
        result = await answer
    except CorridorError as exc:
        message.error = exc.code
        state.send_errors[exc.code] = state.send_errors.get(exc.code, 0) + 1
    else:
        message.acked = trio.current_time()
        message.conversation, message.seq = result.conversation, result.seq
        state.duplicate_acks += result.duplicate
        if message.deliveries == 0:
            state.undelivered += 1
    finally:
        state.unanswered -= 1
        peer.in_flight -= 1


async def _receive(client, peer: Peer, state: State) -> None:
    # Consume every event, or the bounded queues fill and the server drops the link.
    async for event in client.events():
        if not isinstance(event, MessageEvent) or event.sender == peer.name:
            continue
        now = trio.current_time()
        message = state.lookup(event.msg_id)
        if message is None or event.recipient != peer.name or state.peers[message.sender].peer != peer.name:
            state.unexpected += 1
            continue
        message.deliveries += 1
        if message.deliveries == 1:
            message.delivered = now
            if message.error is not None:
                state.unexpected += 1  # stored although its send failed
            elif not math.isnan(message.acked):
                state.undelivered -= 1
        # In a ring each client hears from one sender only: seqs and schedule order must rise.
        last_seq = peer.last_seq.get(event.conversation, 0)
        ident = (message.run, message.k)
        if event.seq < last_seq or ident < peer.last_id:
            state.out_of_order += 1
        peer.last_seq[event.conversation] = max(last_seq, event.seq)
        peer.last_id = max(peer.last_id, ident)


async def _client(profile: Profile, context, peer: Peer, state: State, connecting: trio.Semaphore) -> None:
    await connecting.acquire()
    released = False
    try:
        async with open_wire_client(profile, context) as client:
            connecting.release()
            released = True
            state.connected += 1
            if state.connected == len(state.peers):
                state.connected_all.set()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_receive, client, peer, state)
                async for message in peer.queue_receive:  # ends when the last run is over
                    message.sent = trio.current_time()
                    peer.in_flight += 1
                    peer.max_in_flight = max(peer.max_in_flight, peer.in_flight)
                    request = Send(to=peer.peer, msg_id=message.msg_id, text=_text(message, state.text_bytes))
                    answer = await client.channel.submit(request)  # writes it; the ack comes later
                    nursery.start_soon(_await_ack, answer, message, peer, state)
                await state.finish.wait()  # keep receiving until everything is checked
                if client.channel.error is not None:
                    state.connections_lost[peer.name] = client.channel.error.message
                nursery.cancel_scope.cancel()
    finally:
        if not released:
            connecting.release()


def _bottleneck(run: dict[str, Any]) -> str:
    """Who set the latency: the generator (behind schedule, or its core saturated), the server
    (CPU saturated, or not keeping up), or neither. Notes a run disturbed by other processes."""
    late = run["generator_lateness_ms"]["p99"] or 0.0
    service = run["ack_from_send_ms"]["p99"] or 0.0
    generator, server, other = run["generator_cpu_pct"], run["server_cpu_pct"], run["other_cpu_pct"]
    if generator >= SATURATED_PCT or (late > LATE_P99_MS and late >= service):
        verdict = (
            f"generator: p99 {late} ms behind schedule at {generator} % CPU (send to ack p99 {service} ms); "
            "the latencies include its lateness, the server's share is lower"
        )
    elif server >= SATURATED_PCT:
        verdict = f"server CPU ({server} %)"
    elif run["achieved_rate_msg_s"] < 0.95 * run["offered_rate_msg_s"]:
        verdict = "server: did not keep up with the offered rate without saturating its CPU (waits, e.g. fsync)"
    else:
        verdict = (
            f"neither CPU saturated and the server kept up: send to ack p99 {service} ms is the server's "
            f"(round trips, group-commit fsync waits, stalls: see ack_p99_ms_by_second and longest_ack_gap_ms), "
            f"the generator's lateness (p99 {late} ms) adds to it"
        )
    if other >= 20:
        verdict += f" [disturbed run: other processes used {other} % of a core meanwhile]"
    return verdict


def _by_second(acked: list[Message], t0: float, seconds: float) -> list[float | None]:
    """Ack latency p99 of the messages scheduled in each second of the window."""
    buckets: list[list[float]] = [[] for _ in range(math.ceil(seconds))]
    for m in acked:
        buckets[min(int(m.scheduled - t0), len(buckets) - 1)].append((m.acked - m.scheduled) * 1000)
    return [latency_summary(bucket)["p99"] for bucket in buckets]


async def _run_rate(number: int, rate: float, args: argparse.Namespace, state: State, server: ServerProcess) -> dict[str, Any]:
    """One open-loop run at `rate`: warm-up, measured window, drain; returns its figures."""
    n = len(state.peers)
    total = math.ceil((args.warmup + args.seconds) * rate)
    first_measured = math.ceil(args.warmup * rate)
    messages: list[Message] = []
    state.runs.append(messages)
    start = trio.current_time() + 0.2
    t0, t1 = start + args.warmup, start + args.warmup + args.seconds
    snapshots: dict[str, CpuSnapshot] = {}
    generator_gc: dict[str, Any] = {}

    async def snapshot_at(when: float, key: str) -> None:
        await trio.sleep_until(when)
        snapshots[key] = CpuSnapshot.take(server)
        if key == "before":
            state.gc_watch.reset()
        else:
            generator_gc.update(state.gc_watch.report())

    log(f"run {number}: {rate:g} msg/s offered by {n} clients, warm-up {args.warmup:g} s, window {args.seconds:g} s")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(snapshot_at, t0, "before")
        nursery.start_soon(snapshot_at, t1, "after")
        for k in range(total):
            due = start + k / rate
            if due > trio.current_time():
                await trio.sleep_until(due)
            # Behind schedule, no checkpoint: every due send is handed out before anything else runs.
            message = Message(run=number, k=k, sender=k % n, scheduled=due)
            messages.append(message)
            state.unanswered += 1
            state.peers[message.sender].queue_send.send_nowait(message)
    log(f"run {number}: schedule done; waiting for every ack and delivery")
    drain_started = trio.current_time()
    with trio.move_on_after(args.drain_timeout) as drain:
        while state.unanswered or state.undelivered:
            await trio.sleep(0.01)
    drain_s = trio.current_time() - drain_started

    measured = messages[first_measured:]
    acked = [m for m in measured if not math.isnan(m.acked)]
    delivered = [m for m in acked if m.deliveries]
    acks_in_window = sum(1 for m in messages if t0 <= m.acked < t1)
    ack_times = sorted(m.acked for m in messages if t0 <= m.acked < t1)
    sent_in_window = sum(1 for m in messages if t0 <= m.sent < t1)
    before, after = snapshots["before"], snapshots["after"]
    run: dict[str, Any] = {
        "run": number,
        "offered_rate_msg_s": rate,
        "per_client_rate_msg_s": round(rate / n, 3),
        "scheduled_in_window": len(measured),
        "sent_rate_msg_s": round(sent_in_window / args.seconds, 1),
        "achieved_rate_msg_s": round(acks_in_window / args.seconds, 1),
        "ack_latency_ms": latency_summary([(m.acked - m.scheduled) * 1000 for m in acked]),
        "delivery_latency_ms": latency_summary([(m.delivered - m.scheduled) * 1000 for m in delivered]),
        "ack_from_send_ms": latency_summary([(m.acked - m.sent) * 1000 for m in acked]),
        "generator_lateness_ms": latency_summary([(m.sent - m.scheduled) * 1000 for m in measured if not math.isnan(m.sent)]),
        # Where in the window the slow ones were: a start-up transient, or stalls now and then.
        "ack_p99_ms_by_second": _by_second(acked, t0, args.seconds),
        # Acks come in group-commit batches a few ms apart; a long silence is a stall (fsync, GC).
        "longest_ack_gap_ms": round(max((b - a for a, b in pairwise(ack_times)), default=0.0) * 1000, 1),
        "max_in_flight_per_client": max(p.max_in_flight for p in state.peers),
        "failed_in_window": sum(1 for m in measured if m.error is not None),
        "unanswered_after_drain": sum(1 for m in messages if m.error is None and math.isnan(m.acked)),
        "drain_s": round(drain_s, 2),
        "drain_timed_out": drain.cancelled_caught,
        **cpu_usage(before, after, server.pid, acks_in_window),
        "generator_gc": generator_gc,
    }
    ack_p99, delivery_p99 = run["ack_latency_ms"]["p99"], run["delivery_latency_ms"]["p99"]
    run["ack_p99_ms"], run["delivery_p99_ms"] = ack_p99, delivery_p99
    run["meets_target"] = ack_p99 is not None and ack_p99 < TARGET_P99_MS and run["failed_in_window"] == 0
    run["bottleneck"] = _bottleneck(run)
    log(
        f"run {number}: achieved {run['achieved_rate_msg_s']} msg/s; ack p50 {run['ack_latency_ms']['p50']} ms "
        f"p99 {ack_p99} ms; delivery p50 {run['delivery_latency_ms']['p50']} ms p99 {delivery_p99} ms; "
        f"generator {run['generator_cpu_pct']} %, server {run['server_cpu_pct']} % CPU"
    )
    return run


def verify(state: State) -> dict[str, Any]:
    """Over every run: lost, duplicated, reordered, gaps, failures."""
    everything = [m for messages in state.runs for m in messages]
    acked = [m for m in everything if not math.isnan(m.acked)]
    per_conversation: dict[int, set[int]] = {}
    for m in acked:
        per_conversation.setdefault(m.conversation, set()).add(m.seq)
    return {
        "messages_scheduled": len(everything),
        "messages_acked": len(acked),
        "lost": sum(1 for m in acked if m.deliveries == 0),
        "duplicates": sum(m.deliveries - 1 for m in everything if m.deliveries > 1),
        "out_of_order": state.out_of_order,
        "unexpected": state.unexpected,
        # Each ring conversation holds only this benchmark's messages, numbered 1, 2, 3, …
        "gaps": sum(max(seqs) - len(seqs) for seqs in per_conversation.values()),
        "send_errors": dict(state.send_errors),
        "unanswered": sum(1 for m in everything if m.error is None and math.isnan(m.acked)),
        "duplicate_acks": state.duplicate_acks,
        "connections_lost": dict(list(state.connections_lost.items())[:5]),
    }


async def measure(args: argparse.Namespace, work: Path, server: ServerProcess) -> dict[str, Any]:
    async with trio.open_nursery() as outer:
        outer.start_soon(interrupt_on_sigterm)
        with trio.fail_after(args.hard_timeout):
            result = await _measure(args, work, server)
        outer.cancel_scope.cancel()
    return result


async def _measure(args: argparse.Namespace, work: Path, server: ServerProcess) -> dict[str, Any]:
    opened: list[Profile] = []
    n = args.clients
    state: State | None = None
    try:
        names = [f"u{i:04d}" for i in range(n)]
        started = trio.current_time()
        log(f"creating and enrolling {n} users ({args.enroll_concurrency} at a time)")
        profiles = await enroll_all(work / "data", work / "profiles", names, args.enroll_concurrency, opened)
        enroll_s = round(trio.current_time() - started, 2)
        context = client_context(profiles[0].ca_pem())  # one CA for all: one client context for all
        peers = []
        for i, name in enumerate(names):
            queue_send, queue_receive = trio.open_memory_channel[Message](math.inf)
            peers.append(Peer(index=i, name=name, peer=names[(i + 1) % n], queue_send=queue_send, queue_receive=queue_receive))
        state = State(peers=peers, text_bytes=args.text_bytes)
        connecting = trio.Semaphore(args.connect_concurrency)
        async with trio.open_nursery() as nursery:
            started = trio.current_time()
            for profile, peer in zip(profiles, peers, strict=True):
                nursery.start_soon(_client, profile, context, peer, state, connecting)
            with trio.fail_after(60 + n * 0.5):
                await state.connected_all.wait()
            connect_s = round(trio.current_time() - started, 2)
            log(f"{n} clients connected and logged in in {connect_s} s")
            await trio.sleep(1.0)  # let the logins' after-effects (presence, sync) settle
            # The long-lived objects (connections, profiles) leave the collector's view, and
            # collection is off while the rates run: a collection stopped this loop for up to
            # ~80 ms, and every ack and delivery arriving meanwhile counted late (with it on,
            # the generator's own pauses made most of the measured p99). A bounded run's
            # garbage fits in memory; `generator_gc` shows that no collection ran.
            gc.collect()
            gc.freeze()
            gc.disable()
            try:
                runs = [await _run_rate(i, rate, args, state, server) for i, rate in enumerate(args.rates)]
            finally:
                gc.enable()
            for peer in peers:
                peer.queue_send.close()
            state.finish.set()
    finally:
        for profile in opened:
            profile.close()
        if state is not None:
            state.gc_watch.close()

    checks = verify(state)
    keys = ("offered_rate_msg_s", "achieved_rate_msg_s", "ack_p99_ms", "delivery_p99_ms", "meets_target")
    return {
        "benchmark": "durable_1to1_open_loop_latency",
        "date": time.strftime("%Y-%m-%d"),
        "clients": n,
        "pairing": "ring: u(i) sends to u(i+1 mod N); send k goes to client k mod N (round robin)",
        "offered_rates_msg_s": args.rates,
        "seconds": args.seconds,
        "warmup_s": args.warmup,
        "text_bytes": args.text_bytes,
        "target": f"ack latency p99 < {TARGET_P99_MS:g} ms (from the scheduled send time)",
        "meets_target": all(r["meets_target"] for r in runs),
        "summary": [{k: r[k] for k in keys} for r in runs],
        **checks,
        "runs": runs,
        "enroll_s": enroll_s,
        "connect_s": connect_s,
        "pinned": {"server_cpu": 0, "generator_cpu": 1} if args.pin else None,
        "python": platform.python_version(),
        "machine": {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "platform": platform.platform()},
    }


def _passed(result: dict[str, Any]) -> bool:
    return (
        all(result[key] == 0 for key in ("lost", "duplicates", "out_of_order", "unexpected", "gaps", "unanswered"))
        and not result["send_errors"]
        and not any(r["drain_timed_out"] for r in result["runs"])
    )


def _rates(text: str) -> list[float]:
    rates = [float(part) for part in text.split(",") if part.strip()]
    if not rates or any(rate <= 0 for rate in rates):
        raise argparse.ArgumentTypeError("rates must be positive numbers, comma-separated")
    return rates


def main(argv: list[str] | None = None) -> int:
    """Run the open-loop latency benchmark; prints one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1000, help="connected clients, paired in a ring (default 1000)")
    parser.add_argument("--rate", type=float, default=1000.0, help="offered rate in msg/s, all clients together (default 1000)")
    parser.add_argument(
        "--rates", type=_rates, help="several offered rates, comma-separated (e.g. 200,500,1000), run one after another"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each measured window (default 20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="sending at the rate before each window (default 3)")
    parser.add_argument("--text-bytes", type=int, default=100, help="message text size (default 100)")
    parser.add_argument("--drain-timeout", type=float, default=30.0, help="max wait for acks and deliveries after each run")
    parser.add_argument("--enroll-concurrency", type=int, default=4, help="enrollments at a time (default 4)")
    parser.add_argument("--connect-concurrency", type=int, default=50, help="TLS connects at a time (default 50)")
    parser.add_argument(
        "--taskset",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pin the server to CPU 0 and this generator to CPU 1 (default: on if taskset exists and there are >= 2 CPUs)",
    )
    parser.add_argument("--timeout", type=float, help="hard limit for the whole run in seconds (default: from the sizes)")
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    if not 2 <= args.clients <= 10_000:
        parser.error("--clients must be 2-10000")
    if args.seconds <= 0 or args.warmup < 0 or args.rate <= 0:
        parser.error("--seconds and --rate must be positive, --warmup not negative")
    args.rates = args.rates or [args.rate]
    args.pin = pin_generator(args.taskset)
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the server and the temp dir go too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    per_run = args.warmup + args.seconds + args.drain_timeout + 15
    args.hard_timeout = args.timeout or (120 + args.clients * 1.0 + len(args.rates) * per_run)
    return run_against_server(
        "corridor-bench-latency-",
        lambda work, server: measure(args, work, server),
        limits=f"max_connections_per_address = {args.clients + args.connect_concurrency + 50}",
        timeout=args.hard_timeout + 60,  # the last-resort watchdog, after trio's own deadline
        out=args.out,
        passed=_passed,
        cpu=0 if args.pin else None,
    )


if __name__ == "__main__":
    sys.exit(main())
