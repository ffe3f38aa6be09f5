"""Acceptance: `kill -9` of the server under load loses and duplicates nothing.

The server runs as a real `corridor serve` subprocess on a fixed 127.0.0.1 port. Four people
stay connected across every crash and reconnect by themselves; each sends without pause, in
turn to the next person (1:1) and to a group of all four, and receives everything sent to
them. Each round lets them run for a random while, then SIGKILLs the server and restarts it on
the same data dir and port. At the end every receiver must hold every acknowledged message of
its conversations exactly once, in gap-free seq order, and the archive must hold each exactly
once with the hash chain intact.

CORRIDOR_CRASH_ROUNDS sets the number of kills (default 8 in the test suite; the full soak is
20, see docs/development.md). Set CORRIDOR_CRASH_SEED to replay a run's kill timings (the seed
is in every failure message).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

from corridor.client.client import Client
from corridor.client.enrollment import enroll
from corridor.client.profile import Profile
from corridor.deploy.init import create_data_dir
from corridor.protocol.messages import GroupCreate, MessageEvent, SendResult, UserAdd
from corridor.server.config import load_config
from corridor.server.features.archive.store import entries
from corridor.server.features.archive.verify import verify_chain

from .helpers import PASSWORD, admin_request

ROUNDS = int(os.environ.get("CORRIDOR_CRASH_ROUNDS") or 8)
PEOPLE = ("u0", "u1", "u2", "u3")
CORRIDOR = Path(sys.executable).parent / "corridor"


def free_port() -> int:
    """A port that was free a moment ago; the test keeps it for every restart."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`corridor serve` as a child process; every start appends its stderr to one log file."""

    def __init__(self, data_dir: Path, port: int, log_path: Path, extra: tuple[str, ...] = ()):
        self.data_dir = data_dir
        self.port = port
        self.log_path = log_path
        self.extra = extra  # more `corridor serve` arguments
        self.proc: trio.Process | None = None
        self.starts = 0

    def log_tail(self, chars: int = 4000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-chars:] or "(server log is empty)"

    async def start(self) -> None:
        """Start and wait for "corridor: serving ..."; retries a few times if the port is still taken."""
        for attempt in range(10):
            self.starts += 1
            with self.log_path.open("a") as log:
                log.write(f"--- start {self.starts} (attempt {attempt + 1}) ---\n")
                log.flush()
                self.proc = await trio.lowlevel.open_process(
                    [
                        str(CORRIDOR),
                        "serve",
                        str(self.data_dir),
                        "--listen",
                        f"127.0.0.1:{self.port}",
                        "--no-advertise",
                        "--log-level",
                        "warning",
                        *self.extra,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=log,
                )
            line = await self._first_line()
            if line.startswith("corridor: serving"):
                return
            with trio.move_on_after(10):
                await self.proc.wait()
            if "already in use" in self.log_tail(1000) and attempt < 9:
                await trio.sleep(0.2)
                continue
            raise AssertionError(f"server did not start (exit {self.proc.returncode}, stdout {line!r}):\n{self.log_tail()}")
        raise AssertionError("unreachable")

    async def _first_line(self) -> str:
        buffer = b""
        with trio.move_on_after(30):
            while b"\n" not in buffer:
                data = await self.proc.stdout.receive_some(4096)
                if not data:
                    break
                buffer += data
        return buffer.decode(errors="replace").partition("\n")[0]

    async def kill9(self) -> None:
        """SIGKILL, then reap the process (its lock, sockets and WAL are left as a crash leaves them)."""
        os.kill(self.proc.pid, signal.SIGKILL)
        with trio.fail_after(10):
            returncode = await self.proc.wait()
        assert returncode == -signal.SIGKILL, f"server exited {returncode} instead of dying by SIGKILL"
        await self.proc.stdout.aclose()

    async def terminate(self) -> int:
        """SIGTERM (graceful stop) and return the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            returncode = await self.proc.wait()
        await self.proc.stdout.aclose()
        return returncode

    async def cleanup(self) -> None:
        """Never leave a server behind, whatever happened."""
        if self.proc is None:
            return
        with trio.CancelScope(shield=True):
            if self.proc.returncode is None:
                self.proc.kill()
                with trio.move_on_after(10):
                    await self.proc.wait()
            await self.proc.stdout.aclose()


async def enrolled(server: ServerProcess, profile_dir: Path, username: str) -> Profile:
    """Create the account over the admin socket and enroll a fresh profile with its invite."""
    result = await admin_request(server.data_dir, UserAdd(username=username, display_name=username.title()))
    profile = Profile(profile_dir)
    await enroll(profile, result.invite, PASSWORD, "crash test device")
    return profile


@dataclass
class Person:
    """One connected person: sends msg-0, msg-1, ... (even numbers 1:1 to the next person, odd
    ones to the group) until told to stop, recording every acknowledgement, and keeps every
    message event the client hands over."""

    name: str
    client: Client
    peer: str
    group: int
    acked: dict[str, SendResult] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    received: list[MessageEvent] = field(default_factory=list)
    in_flight: str | None = None
    stop: trio.Event = field(default_factory=trio.Event)

    async def send_loop(self) -> None:
        i = 0
        while not self.stop.is_set():
            msg_id, text = f"{self.name}-{i}", f"{self.name} says {i}"
            self.texts[msg_id] = text
            self.in_flight = msg_id
            if i % 2 == 0:
                self.acked[msg_id] = await self.client.send(self.peer, text, msg_id=msg_id)
            else:
                self.acked[msg_id] = await self.client.send_group(self.group, text, msg_id=msg_id)
            self.in_flight = None
            i += 1

    async def receive_loop(self) -> None:
        async for event in self.client.events():
            if isinstance(event, MessageEvent):
                self.received.append(event)


async def wait_for_progress(people: list[Person], than: list[int], what: str, server: ServerProcess) -> None:
    """Wait until everyone has more acks than `than`: each client got back on its own."""
    with trio.move_on_after(30) as scope:
        while any(len(p.acked) <= n for p, n in zip(people, than, strict=True)):
            await trio.sleep(0.005)
    if scope.cancelled_caught:
        stuck = [
            f"{p.name} (acked {len(p.acked)}, in flight {p.in_flight}, connects {p.client.connects}, "
            f"outbox {p.client.profile.outbox()})"
            for p, n in zip(people, than, strict=True)
            if len(p.acked) <= n
        ]
        raise AssertionError(f"{what}: no send acknowledged for 30 s by {stuck}\n{server.log_tail()}")


def top_seqs(people: list[Person]) -> dict[int, int]:
    """The highest acknowledged seq of every conversation."""
    top: dict[int, int] = {}
    for person in people:
        for ack in person.acked.values():
            top[ack.conversation] = max(top.get(ack.conversation, 0), ack.seq)
    return top


async def wait_for_delivery(people: list[Person], top: dict[int, int], members: dict[int, set[str]]) -> None:
    """Wait until each person has received every conversation of theirs up to its top seq, then
    a little longer: anything more would be a duplicate or a message nobody sent."""
    with trio.move_on_after(60):
        while True:
            done = all(
                max((m.seq for m in p.received if m.conversation == c), default=0) >= top[c]
                for p in people
                for c in top
                if p.name in members[c]
            )
            if done:
                break
            await trio.sleep(0.02)
    await trio.sleep(0.5)


async def all_delivered(people: list[Person], group: int) -> tuple[dict[int, int], dict[int, set[str]]]:
    """Once sending stopped: each conversation's top acknowledged seq and its members, after
    waiting until everyone received up to it."""
    members = {group: {p.name for p in people}}
    for person in people:
        for ack in person.acked.values():
            members.setdefault(ack.conversation, {person.name, person.peer})
    top = top_seqs(people)
    await wait_for_delivery(people, top, members)
    return top, members


def assert_received_once_in_order(
    people: list[Person], top: dict[int, int], members: dict[int, set[str]], acked: dict[str, SendResult], summary: str
) -> None:
    """Every person holds each message of their conversations once, in gap-free seq order:
    every acknowledged one, and none that was never acknowledged."""
    for person in people:
        for conversation, last in top.items():
            if person.name not in members[conversation]:
                continue
            got = [m for m in person.received if m.conversation == conversation]
            assert [m.seq for m in got] == list(range(1, last + 1)), (
                f"{summary}; {person.name} received conversation {conversation} with gaps or repeats "
                f"(missing {sorted(set(range(1, last + 1)) - {m.seq for m in got})[:20]}, "
                f"repeated {[s for s, n in Counter(m.seq for m in got).items() if n > 1][:20]})"
            )
            sent_here = {m for m, a in acked.items() if a.conversation == conversation}
            by_id = Counter(m.msg_id for m in got if m.kind == "text")
            lost, twice = sorted(sent_here - set(by_id)), sorted(m for m, n in by_id.items() if n > 1)
            unsent = sorted(set(by_id) - sent_here)
            assert (lost, twice, unsent) == ([], [], []), (
                f"{summary}; {person.name} in conversation {conversation}: {len(lost)} acked lost {lost[:20]}, "
                f"{len(twice)} duplicated {twice[:20]}, {len(unsent)} never acked {unsent[:20]}"
            )


def read_archive(db_path: Path) -> tuple[list, int | None, list[tuple]]:
    """Archive entries, the first broken link, and the messages table, from the stopped server's file."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        archived, after = [], 0
        while page := entries(conn, after=after, limit=1000):
            archived += page
            after = page[-1].seq
        broken = verify_chain(conn).broken
        rows = conn.execute("SELECT msg_id, conversation_id, seq, text FROM messages ORDER BY conversation_id, seq").fetchall()
    finally:
        conn.close()
    return archived, broken, rows


@pytest.mark.slow
async def test_kill_9_under_load_loses_and_duplicates_nothing(tmp_path: Path):
    seed = int(os.environ.get("CORRIDOR_CRASH_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    port = free_port()
    data = tmp_path / "data"
    create_data_dir(data, "Crash Org", f"127.0.0.1:{port}", ["127.0.0.1"], "admin", "Administrator")
    server = ServerProcess(data, port, tmp_path / "server.log")
    profiles: list[Profile] = []
    per_round: list[int] = []
    killed_in_flight: list[tuple[str, float]] = []  # (msg_id in flight, wall-clock time of the kill)
    try:
        with trio.fail_after(120 + 15 * ROUNDS):
            await server.start()
            for name in PEOPLE:
                profiles.append(await enrolled(server, tmp_path / f"profile-{name}", name))

            async with contextlib.AsyncExitStack() as stack:
                clients = [await stack.enter_async_context(Client.open(p, backoff=(0.05, 0.5))) for p in profiles]
                info = await clients[0].request(GroupCreate(name="Crash room", members=PEOPLE[1:]))
                people = [
                    Person(name, client, PEOPLE[(i + 1) % len(PEOPLE)], info.id)
                    for i, (name, client) in enumerate(zip(PEOPLE, clients, strict=True))
                ]
                async with trio.open_nursery() as receivers:
                    for person in people:
                        receivers.start_soon(person.receive_loop)
                    async with trio.open_nursery() as senders:
                        for person in people:
                            senders.start_soon(person.send_loop)
                        for round_no in range(1, ROUNDS + 1):
                            before = [len(p.acked) for p in people]
                            await wait_for_progress(people, before, f"round {round_no} (seed {seed})", server)
                            await trio.sleep(rng.uniform(0.2, 0.8))
                            flying, killed_at = [p.in_flight for p in people if p.in_flight], time.time()
                            await server.kill9()
                            killed_in_flight += [(msg_id, killed_at) for msg_id in flying]
                            per_round.append(sum(len(p.acked) for p in people) - sum(before))
                            await server.start()
                        # The sends in flight at the last kill must complete after the restart.
                        await wait_for_progress(
                            people, [len(p.acked) for p in people], f"after the last restart (seed {seed})", server
                        )
                        for person in people:
                            person.stop.set()
                    top, members = await all_delivered(people, info.id)
                    receivers.cancel_scope.cancel()
                connects = [p.client.connects for p in people]
                outboxes = {p.name: p.client.profile.outbox() for p in people}

            acked = {m: a for p in people for m, a in p.acked.items()}
            texts = {m: t for p in people for m, t in p.texts.items()}
            # The server stamps a message when it stores it: a stamp before the kill means that
            # message was durable but its ack died with the server, and the retry got the original.
            committed_before_kill = sum(acked[m].ts < t for m, t in killed_in_flight if m in acked)
            summary = (
                f"seed {seed}: {len(acked)} messages acked by {len(people)} senders over {ROUNDS} kill -9 rounds "
                f"(per round {per_round}), {len(killed_in_flight)} sends in flight at a kill ({committed_before_kill} of "
                f"them committed before it, ack lost), {sum(a.duplicate for a in acked.values())} acks answered as "
                f"duplicates, connects per person {connects}"
            )
            print(summary)
            assert all(box == [] for box in outboxes.values()), f"{summary}; outboxes not empty: {outboxes}"
            assert min(connects) >= ROUNDS + 1, f"{summary}; expected at least {ROUNDS + 1} connects each"
            for conversation in top:
                seqs = sorted(a.seq for a in acked.values() if a.conversation == conversation)
                assert len(seqs) == len(set(seqs)), f"{summary}; conversation {conversation} acked a seq twice"

            # Every receiver: each message of its conversations once, gap-free, as it was sent.
            assert_received_once_in_order(people, top, members, acked, summary)
            wrong = [
                (p.name, m.msg_id)
                for p in people
                for m in p.received
                if m.kind == "text"
                and (m.seq, m.text, m.sender) != (acked[m.msg_id].seq, texts[m.msg_id], m.msg_id.partition("-")[0])
            ]
            assert wrong == [], f"{summary}; received messages that differ from the acks: {wrong[:20]}"

            returncode = await server.terminate()
            assert returncode == 0, f"{summary}; SIGTERM stop exited {returncode}\n{server.log_tail()}"

        # The archive, read straight from the stopped server's database file.
        archived, broken, rows = read_archive(load_config(data).database_path)
        messages = [e for e in archived if e.kind == "message" and e.payload.get("msg_id") in texts]
        in_archive = Counter(e.payload["msg_id"] for e in messages)
        missing = sorted(set(acked) - set(in_archive))
        twice = sorted(m for m, n in in_archive.items() if n > 1)
        unsent = sorted(set(in_archive) - set(acked))
        assert (missing, twice, unsent) == ([], [], []), (
            f"{summary}; archive holds {len(messages)} of these message entries: {len(missing)} acked missing "
            f"{missing[:20]}, {len(twice)} duplicated {twice[:20]}, {len(unsent)} never acked {unsent[:20]}"
        )
        mismatched = [
            e.payload["msg_id"]
            for e in messages
            if (e.conversation, e.payload["seq"], e.payload["text"])
            != (acked[e.payload["msg_id"]].conversation, acked[e.payload["msg_id"]].seq, texts[e.payload["msg_id"]])
        ]
        assert mismatched == [], f"{summary}; archive entries differ from the acks: {mismatched[:20]}"
        assert broken is None, f"{summary}; archive hash chain broken at entry {broken} of {len(archived)}"
        expected_rows = sorted((m, a.conversation, a.seq, texts[m]) for m, a in acked.items())
        stored = sorted(r for r in rows if r[0] in texts)
        assert stored == expected_rows, f"{summary}; the messages table has {len(stored)} such rows, not the {len(acked)} acked"
    finally:
        await server.cleanup()
        for profile in profiles:
            profile.close()
