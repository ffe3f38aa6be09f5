"""Acceptance: several `corridor serve` processes of one organisation, on one PostgreSQL and one
NATS, behind HAProxy — all real: a throwaway PostgreSQL cluster (tests/pg.py), a nats-server
(tests/nats.py), Debian's haproxy running the shipped `deploy/haproxy.cfg` (its ports moved to
free ones on 127.0.0.1), and three `corridor serve --instance` processes on one data dir.

Six people connect through HAProxy, so they are spread over the three processes, and send
without pause: 1:1 to the next person and to a group of all six. Mid-stream one process is
killed with SIGKILL, restarted, and then another one is killed. The clients reconnect through
HAProxy to the processes left and carry on. At the end every receiver holds every acknowledged
message of its conversations once, in gap-free order, nothing unacknowledged, and `corridor
audit verify` passes on the PostgreSQL archive.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import trio

from corridor.client.client import Client
from corridor.client.enrollment import enroll
from corridor.client.profile import Profile
from corridor.deploy.init import create_data_dir
from corridor.protocol.messages import GroupCreate, UserAdd
from corridor.protocol.ops import ServerStatus
from corridor.server.config import ConfigError, load_config, parse_config, with_instance
from corridor.server.features.archive.store import entries
from corridor.server.storage.postgres import Connection

from .cli_helpers import free_port, run
from .helpers import PASSWORD, admin_request
from .nats import NatsServer, nats_server_fixture  # noqa: F401
from .pg import pg_dsn_fixture, postgres_cluster_fixture  # noqa: F401
from .test_crash import Person, ServerProcess, all_delivered, assert_received_once_in_order, wait_for_progress

REPO = Path(__file__).resolve().parent.parent
INSTANCES = ("a", "b", "c")
PEOPLE = tuple(f"u{i}" for i in range(6))


def as_uri(conninfo: str) -> str:
    """tests/pg.py's key=value conninfo as the postgresql:// URI the config takes."""
    parts = dict(item.split("=", 1) for item in conninfo.split())
    return f"postgresql://{parts['user']}@{parts['host']}:{parts['port']}/{parts['dbname']}"


@pytest.mark.parametrize(
    ("storage", "says"),
    [
        ({"backend": "mysql"}, "'storage.backend' must be one of sqlite, postgresql"),
        ({"backend": "postgresql"}, "'storage.dsn' must be postgresql://"),
        ({"backend": "postgresql", "dsn": "host=db1"}, "'storage.dsn' must be postgresql://"),
        ({"dsn": "postgresql://db1/corridor"}, "'storage.dsn' is set but 'storage.backend' is sqlite"),
    ],
)
def test_a_bad_storage_section_names_its_key(storage, says):
    with pytest.raises(ConfigError, match=says):
        parse_config({"organisation": {"name": "Org"}, "storage": storage}, Path("/data"))


def test_several_processes_need_postgresql_and_nats():
    sqlite = parse_config({"organisation": {"name": "Org"}}, Path("/data"))
    with pytest.raises(ConfigError, match='need \\[storage\\] backend = "postgresql" and \\[bus\\] backend = "nats"'):
        with_instance(sqlite, "b")
    shared = parse_config(
        {
            "organisation": {"name": "Org"},
            "storage": {"backend": "postgresql", "dsn": "postgresql://db1/corridor"},
            "bus": {"backend": "nats"},
        },
        Path("/data"),
    )
    with pytest.raises(ConfigError, match="instance name 'b/c'"):
        with_instance(shared, "b/c")
    b = with_instance(shared, "b")
    assert (b.lock_path.name, b.control_socket.name) == ("serve-b.lock", "control-b.sock")


def test_an_unreachable_database_is_one_clear_line(tmp_path: Path):
    data = tmp_path / "data"
    assert run("init", str(data), "--org", "Org", "--listen", f"127.0.0.1:{free_port()}").returncode == 0
    config = data / "corridor.toml"
    dead = f"postgresql://corridor@127.0.0.1:{free_port()}/corridor"
    config.write_text(config.read_text() + f'\n[storage]\nbackend = "postgresql"\ndsn = "{dead}"\n')
    served = run("serve", str(data), "--no-advertise")
    assert served.returncode == 1
    assert served.stderr.startswith(f"corridor serve: cannot use the PostgreSQL database {dead.replace('corridor@', '')}")
    assert "Connection refused" in served.stderr and len(served.stderr.splitlines()) == 1
    refused = run("init", str(tmp_path / "other"), "--org", "Org", "--postgresql", dead)
    assert refused.returncode == 1 and "cannot use the PostgreSQL database" in refused.stderr
    assert not (tmp_path / "other").exists()  # nothing made for a database it cannot use


class Haproxy:
    """haproxy in the foreground with the shipped config, its ports moved to the test's."""

    def __init__(self, workdir: Path, port: int, backends: list[int]):
        text = (REPO / "deploy" / "haproxy.cfg").read_text()
        text = text.replace("bind :7740", f"bind 127.0.0.1:{port}").replace("maxconn 50000", "maxconn 1000")
        for shipped, backend in zip((7741, 7742, 7743), backends, strict=True):
            text = text.replace(f"127.0.0.1:{shipped}", f"127.0.0.1:{backend}")
        self.config = workdir / "haproxy.cfg"
        self.config.write_text(text)
        self.log = workdir / "haproxy.log"
        self.port = port
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(["haproxy", "-db", "-f", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"haproxy exited {self.process.returncode}: {self.log.read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        raise AssertionError(f"haproxy did not listen: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def read_postgres_archive(dsn: str) -> tuple[list, list[tuple]]:
    """Archive entries and the messages table, from PostgreSQL."""
    conn = Connection(dsn)
    try:
        archived, after = [], 0
        while page := entries(conn, after=after, limit=1000):
            archived += page
            after = page[-1].seq
        rows = conn.execute("SELECT msg_id, conversation_id, seq, text FROM messages ORDER BY conversation_id, seq").fetchall()
    finally:
        conn.close()
    return archived, [tuple(r) for r in rows]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed (.ci/run installs it)")
async def test_three_processes_behind_haproxy_survive_kill_9(tmp_path: Path, pg_dsn: str, nats_server: NatsServer):
    seed = int(os.environ.get("CORRIDOR_CRASH_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    dsn = as_uri(pg_dsn)
    data = tmp_path / "data"
    lb_port, ports = free_port(), [free_port() for _ in INSTANCES]
    create_data_dir(
        data,
        "Cluster Org",
        f"127.0.0.1:{ports[0]}",
        ["127.0.0.1"],
        "admin",
        "Administrator",
        postgresql=dsn,
        nats=nats_server.url,
    )
    config = data / "corridor.toml"
    shared = f'advertise = false\npublic_port = {lb_port}\nproxy_protocol_from = ["127.0.0.1"]'
    config.write_text(config.read_text().replace("advertise = true", shared))
    servers = {
        name: ServerProcess(data, port, tmp_path / f"serve-{name}.log", ("--instance", name))
        for name, port in zip(INSTANCES, ports, strict=True)
    }
    haproxy = Haproxy(tmp_path, lb_port, ports)
    profiles: list[Profile] = []
    kills: list[str] = []
    try:
        with trio.fail_after(180):
            # All three at once on an empty database: their migrations take turns.
            async with trio.open_nursery() as starting:
                for server in servers.values():
                    starting.start_soon(server.start)
            haproxy.start()
            for name in PEOPLE:
                # Added through a; b and c know them at once (enrollment may reach any of them).
                added = await admin_request(data, UserAdd(username=name, display_name=name.title()), instance="a")
                assert f":{lb_port}" in added.invite  # invites name HAProxy, not the process that made them
                profile = Profile(tmp_path / f"profile-{name}")
                await enroll(profile, added.invite, PASSWORD, "cluster test device")
                profiles.append(profile)

            async with contextlib.AsyncExitStack() as stack:
                clients = [await stack.enter_async_context(Client.open(p, backoff=(0.05, 0.5))) for p in profiles]
                spread = {name: (await admin_request(data, ServerStatus(), instance=name)).connections for name in INSTANCES}
                assert all(n >= 1 for n in spread.values()), f"HAProxy did not spread the six people: {spread}"
                info = await clients[0].request(GroupCreate(name="Cluster room", members=PEOPLE[1:]))
                people = [
                    Person(name, client, PEOPLE[(i + 1) % len(PEOPLE)], info.id)
                    for i, (name, client) in enumerate(zip(PEOPLE, clients, strict=True))
                ]
                victims = rng.sample(INSTANCES, 2)
                async with trio.open_nursery() as receivers:
                    for person in people:
                        receivers.start_soon(person.receive_loop)
                    async with trio.open_nursery() as senders:
                        for person in people:
                            senders.start_soon(person.send_loop)
                        for round_no, victim in enumerate(victims, 1):
                            server = servers[victim]
                            before = [len(p.acked) for p in people]
                            await wait_for_progress(people, before, f"round {round_no} (seed {seed})", server)
                            await trio.sleep(rng.uniform(0.3, 0.8))
                            await server.kill9()
                            kills.append(victim)
                            # Everyone goes on through the processes left.
                            await wait_for_progress(
                                people, [len(p.acked) for p in people], f"after killing {victim} (seed {seed})", server
                            )
                            if round_no < len(victims):
                                await server.start()
                        for person in people:
                            person.stop.set()
                    top, members = await all_delivered(people, info.id)
                    receivers.cancel_scope.cancel()
                connects = {p.name: p.client.connects for p in people}
                outboxes = {p.name: p.client.profile.outbox() for p in people}

            acked = {m: a for p in people for m, a in p.acked.items()}
            texts = {m: t for p in people for m, t in p.texts.items()}
            summary = (
                f"seed {seed}: {len(acked)} messages acked by {len(people)} senders on 3 processes, killed {kills}, "
                f"spread {spread}, connects {connects}"
            )
            print(summary)
            assert all(box == [] for box in outboxes.values()), f"{summary}; outboxes not empty: {outboxes}"
            assert sum(connects.values()) > len(people), f"{summary}; nobody had to reconnect"
            assert_received_once_in_order(people, top, members, acked, summary)

            for name, server in servers.items():
                if name != kills[-1]:
                    assert await server.terminate() == 0, f"{summary}; {name} did not stop cleanly\n{server.log_tail()}"

        verified = run("audit", "verify", str(data), "--json")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        verdict = json.loads(verified.stdout)
        assert verdict["ok"] and verdict["entries"] >= len(acked), verdict
        archived, rows = read_postgres_archive(dsn)
        in_archive = Counter(e.payload["msg_id"] for e in archived if e.kind == "message" and e.payload.get("msg_id") in texts)
        assert sorted(in_archive) == sorted(acked) and set(in_archive.values()) == {1}, (
            f"{summary}; archive differs from the acks"
        )
        stored = sorted(r for r in rows if r[0] in texts)
        assert stored == sorted((m, a.conversation, a.seq, texts[m]) for m, a in acked.items()), summary
        assert load_config(data).storage.dsn == dsn
    finally:
        haproxy.stop()
        for server in servers.values():
            await server.cleanup()
        for profile in profiles:
            profile.close()
