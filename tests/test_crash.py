"""Acceptance: `kill -9` of the server under a stream of sends loses and duplicates nothing.

The server runs as a real `corridor serve` subprocess on a fixed 127.0.0.1 port. One sending
client stays open across every crash and reconnects by itself; each round lets it send for a
random while, then SIGKILLs the server and restarts it on the same data dir and port. At the
end every acknowledged message must reach the receiver exactly once, in gap-free seq order,
and be in the archive exactly once with the hash chain intact.

Set CORRIDOR_CRASH_SEED to replay a run's kill timings (the seed is in every failure message).
"""

from __future__ import annotations

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
from corridor.protocol.messages import MessageEvent, SendResult, UserAdd
from corridor.server.config import load_config
from corridor.server.features.archive.store import entries
from corridor.server.features.archive.verify import verify_chain

from .helpers import PASSWORD, admin_request

ROUNDS = 10
CORRIDOR = Path(sys.executable).parent / "corridor"


def free_port() -> int:
    """A port that was free a moment ago; the test keeps it for every restart."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`corridor serve` as a child process; every start appends its stderr to one log file."""

    def __init__(self, data_dir: Path, port: int, log_path: Path):
        self.data_dir = data_dir
        self.port = port
        self.log_path = log_path
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
class Sender:
    """Sends msg-0, msg-1, ... to bob until told to stop, recording every acknowledgement."""

    client: Client
    acked: dict[str, SendResult] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    in_flight: str | None = None
    stop: trio.Event = field(default_factory=trio.Event)

    async def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            msg_id, text = f"m{i}", f"msg-{i}"
            self.texts[msg_id] = text
            self.in_flight = msg_id
            self.acked[msg_id] = await self.client.send("bob", text, msg_id=msg_id)
            self.in_flight = None
            i += 1

    async def wait_for_progress(self, than: int, what: str, server: ServerProcess) -> None:
        """Wait until more than `than` messages are acked: the client got back on its own."""
        with trio.move_on_after(20) as scope:
            while len(self.acked) <= than:
                await trio.sleep(0.005)
        if scope.cancelled_caught:
            raise AssertionError(
                f"{what}: no send acknowledged for 20 s (acked {len(self.acked)}, in flight {self.in_flight}, "
                f"client connects {self.client.connects}, outbox {self.client.profile.outbox()})\n{server.log_tail()}"
            )


async def receive_all(client: Client, conversation: int, last_seq: int) -> list[MessageEvent]:
    """bob's messages in that conversation up to `last_seq`, then anything else that shows up soon after."""
    received: list[MessageEvent] = []
    events = client.events()
    with trio.move_on_after(60):
        async for event in events:
            if isinstance(event, MessageEvent):
                received.append(event)
                if event.conversation == conversation and event.seq >= last_seq:
                    break
    with trio.move_on_after(0.5):  # nothing more may come: it would be a duplicate or unsent
        async for event in events:
            if isinstance(event, MessageEvent):
                received.append(event)
    await events.aclose()
    return received


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
async def test_kill_9_under_a_stream_of_sends_loses_and_duplicates_nothing(tmp_path: Path):
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
        with trio.fail_after(240):
            await server.start()
            alice = await enrolled(server, tmp_path / "profile-alice", "alice")
            profiles.append(alice)
            bob = await enrolled(server, tmp_path / "profile-bob", "bob")
            profiles.append(bob)

            async with Client.open(alice, receive=False, backoff=(0.05, 0.5)) as client:
                sender = Sender(client)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(sender.run)
                    for round_no in range(1, ROUNDS + 1):
                        before = len(sender.acked)
                        await sender.wait_for_progress(before, f"round {round_no} (seed {seed})", server)
                        await trio.sleep(rng.uniform(0.2, 0.8))
                        in_flight, killed_at = sender.in_flight, time.time()
                        await server.kill9()
                        if in_flight is not None:
                            killed_in_flight.append((in_flight, killed_at))
                        per_round.append(len(sender.acked) - before)
                        await server.start()
                    # The send in flight at the last kill must complete after the restart.
                    await sender.wait_for_progress(len(sender.acked), f"after the last restart (seed {seed})", server)
                    sender.stop.set()
                assert sender.in_flight is None
                connects = client.connects
            outbox = alice.outbox()

            acked = sender.acked
            # The server stamps a message when it stores it: a stamp before the kill means that
            # message was durable but its ack died with the server, and the retry got the original.
            committed_before_kill = sum(acked[m].ts < t for m, t in killed_in_flight)
            summary = (
                f"seed {seed}: {len(acked)} messages acked over {ROUNDS} kill -9 rounds (per round {per_round}), "
                f"{len(killed_in_flight)} kills with a send in flight ({committed_before_kill} of them committed "
                f"before the kill, ack lost), "
                f"{sum(a.duplicate for a in acked.values())} acks answered as duplicates, {connects} sender connects"
            )
            print(summary)
            assert outbox == [], f"{summary}; the sender's outbox still holds {outbox}"
            assert connects >= ROUNDS + 1, f"{summary}; expected at least {ROUNDS + 1} connects"
            conversations = {a.conversation for a in acked.values()}
            assert len(conversations) == 1, f"{summary}; acks name several conversations {conversations}"
            (conversation,) = conversations
            acked_seqs = sorted(a.seq for a in acked.values())
            assert acked_seqs == list(range(1, len(acked) + 1)), (
                f"{summary}; acked seqs are not 1..{len(acked)}: repeated {[s for s, n in Counter(acked_seqs).items() if n > 1]}, "
                f"missing {sorted(set(range(1, len(acked) + 1)) - set(acked_seqs))}"
            )

            # The receiver: every acknowledged message exactly once, gap-free, with its text.
            async with Client.open(bob, receive=True, backoff=(0.05, 0.5)) as receiver:
                received = await receive_all(receiver, conversation, acked_seqs[-1])
            by_id = Counter(m.msg_id for m in received)
            lost = sorted(set(acked) - set(by_id), key=lambda m: int(m[1:]))
            twice = sorted(m for m, n in by_id.items() if n > 1)
            unsent = sorted(set(by_id) - set(acked))
            assert (lost, twice, unsent) == ([], [], []), (
                f"{summary}; bob received {len(received)} messages: {len(lost)} acked lost {lost[:20]}, "
                f"{len(twice)} duplicated {twice[:20]}, {len(unsent)} never acked {unsent[:20]}"
            )
            assert [m.seq for m in received] == list(range(1, len(acked) + 1)), f"{summary}; received seqs have gaps or repeats"
            wrong = [
                m.msg_id
                for m in received
                if (m.conversation, m.seq, m.text, m.sender, m.recipient)
                != (conversation, acked[m.msg_id].seq, sender.texts[m.msg_id], "alice", "bob")
            ]
            assert wrong == [], f"{summary}; received messages differ from what was acked: {wrong[:20]}"

            returncode = await server.terminate()
            assert returncode == 0, f"{summary}; SIGTERM stop exited {returncode}\n{server.log_tail()}"

        # The archive, read straight from the stopped server's database file.
        archived, broken, rows = read_archive(load_config(data).database_path)
        messages = [e for e in archived if e.kind == "message" and "msg_id" in e.payload]
        in_archive = Counter(e.payload["msg_id"] for e in messages)
        missing = sorted(set(acked) - set(in_archive), key=lambda m: int(m[1:]))
        twice = sorted(m for m, n in in_archive.items() if n > 1)
        unsent = sorted(set(in_archive) - set(acked))
        assert (missing, twice, unsent) == ([], [], []), (
            f"{summary}; archive holds {len(messages)} message entries: {len(missing)} acked missing {missing[:20]}, "
            f"{len(twice)} duplicated {twice[:20]}, {len(unsent)} never acked {unsent[:20]}"
        )
        mismatched = [
            e.payload["msg_id"]
            for e in messages
            if (e.conversation, e.payload["seq"], e.payload["text"])
            != (conversation, acked[e.payload["msg_id"]].seq, sender.texts[e.payload["msg_id"]])
        ]
        assert mismatched == [], f"{summary}; archive entries differ from the acks: {mismatched[:20]}"
        assert broken is None, f"{summary}; archive hash chain broken at entry {broken} of {len(archived)}"
        expected_rows = sorted((m, conversation, a.seq, sender.texts[m]) for m, a in acked.items())
        assert sorted(rows) == expected_rows, f"{summary}; the messages table has {len(rows)} rows, not the {len(acked)} acked"
    finally:
        await server.cleanup()
        for profile in profiles:
            profile.close()
