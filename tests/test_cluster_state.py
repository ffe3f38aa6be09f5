"""What each serve process keeps in memory is right across processes (`server/cluster.py`):
presence, breaks, session counts, the user cache and the policy's rules, and ending sessions.

First the cluster's own bookkeeping, on the in-process bus and trio's clock: what it re-reads
after missing messages, and when it forgets a silent process. Then the features, all real: two `Server`s in the test's trio run (to NATS and PostgreSQL they are two processes:
each has its own bus connection and database connections) on one throwaway PostgreSQL
(tests/pg.py) and one nats-server (tests/nats.py), real clients connecting to one process or the
other, and for a process that dies, a `corridor serve` subprocess killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import trio
import trio.testing

from corridor.client.client import Client
from corridor.client.enrollment import enroll
from corridor.client.profile import Profile
from corridor.client.transport import open_tls, running
from corridor.deploy.init import create_data_dir
from corridor.protocol.messages import (
    DeviceRevoke,
    Login,
    MessageEvent,
    PolicyList,
    PolicySet,
    PresenceInfo,
    QueryPresence,
    QuietHoursSet,
    UserAdd,
    UserDeactivate,
)
from corridor.protocol.ops import ServerStatus
from corridor.server import cluster
from corridor.server.app import Server
from corridor.server.bus import Bus
from corridor.server.config import load_config, with_instance
from corridor.server.features.ops.metrics import render
from corridor.server.features.ops.status import Health

from .helpers import PASSWORD, RawPeer, admin_request
from .nats import NatsServer, nats_server_fixture  # noqa: F401
from .pg import pg_dsn_fixture, postgres_cluster_fixture  # noqa: F401
from .test_accounts import closed_within
from .test_quiet_hours import ZONE, clock_at, next_presence, presence_until
from .test_several_processes import as_uri

QUICK_PERIOD = 0.2


@pytest.fixture
def quick_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """Processes announce themselves every 0.2 s instead of every 5 s, so a silent one is
    forgotten after 0.6 s instead of 15 s. Production's period keeps the announcements (each
    the whole of what a process holds) cheap for NATS and for the processes reading them; the
    tests only need the bound short."""
    monkeypatch.setattr(cluster, "PERIOD", QUICK_PERIOD)


@pytest.fixture
def data(tmp_path: Path, pg_dsn: str, nats_server: NatsServer) -> Path:
    """A data dir for several processes: PostgreSQL and NATS, listening on 127.0.0.1:0."""
    path = tmp_path / "data"
    create_data_dir(path, "Test Org", "127.0.0.1:0", ["127.0.0.1"], "admin", "Administrator", as_uri(pg_dsn), nats_server.url)
    return path


class Processes:
    """Serve processes of one data dir in the test's trio run, by instance name."""

    def __init__(self, data: Path, tmp_path: Path, nursery: trio.Nursery):
        self.data = data
        self.tmp_path = tmp_path
        self.nursery = nursery
        self.servers: dict[str, Server] = {}
        self.profiles: dict[str, Profile] = {}

    async def start(self, name: str) -> Server:
        server = Server(with_instance(load_config(self.data), name), advertise=False)
        await self.nursery.start(server.run)
        self.servers[name] = server
        # Serving, and every process has heard every other.
        await wait_for(
            lambda: all(len(s.services.sessions.cluster.peers) == len(self.servers) - 1 for s in self.servers.values())
        )
        return server

    def address(self, name: str) -> tuple[str, int]:
        return self.servers[name].addresses[0]

    async def person(self, username: str, via: str = "a") -> Profile:
        """An account added through process `via`, enrolled there (the invite names it)."""
        added = await admin_request(self.data, UserAdd(username=username, display_name=username.title()), instance=via)
        profile = self.profiles[username] = Profile(self.tmp_path / f"profile-{username}")
        await enroll(profile, added.invite, PASSWORD, "laptop")
        return profile

    async def second_device(self, profile: Profile, via: str) -> Profile:
        """Another device of the same person, logged in with the password through `via`."""
        credential = profile.credential()
        stream = await open_tls(*self.address(via), profile.ca_pem(), "127.0.0.1", 5)
        async with running(stream) as channel:
            await channel.handshake()
            login = await channel.request(Login(user=credential.user, password=PASSWORD, device_name="phone"))
        phone = Profile(self.tmp_path / f"profile-{credential.user}-phone")
        phone.save_enrollment(replace(credential, device_id=login.device_id, device_token=login.device_token), profile.ca_pem())
        return phone

    def client(self, profile: Profile, name: str, **options):
        return Client.open(profile, address=self.address(name), **options)


@asynccontextmanager
async def processes(data: Path, tmp_path: Path, *names: str) -> AsyncIterator[Processes]:
    async with trio.open_nursery() as nursery:
        started = Processes(data, tmp_path, nursery)
        for name in names:
            await started.start(name)
        yield started
        for server in started.servers.values():
            server.stop()


async def wait_for(condition, step: float = 0.01) -> None:
    while not condition():
        await trio.sleep(step)


async def next_message(client: Client) -> MessageEvent:
    async for event in client.events():
        if isinstance(event, MessageEvent):
            return event
    raise AssertionError("events ended")


def said(node: str, seq: int, kind: str, **fields) -> dict:
    return {"node": node, "seq": seq, "kind": kind, **fields}


async def test_a_process_re_reads_everything_after_missing_what_another_said(nursery: trio.Nursery):
    bus = Bus()
    here = cluster.Cluster(bus)
    reads: list[frozenset[int] | None] = []

    async def reload(ids: frozenset[int] | None) -> None:
        reads.append(ids)

    here.on_change("users", reload)
    nursery.start_soon(here.run)
    for message, read in [
        (said("x", 1, "changed", what="users", ids=[7]), frozenset({7})),
        (said("x", 2, "changed", what="users", ids=[8, 9]), frozenset({8, 9})),
        (said("x", 4, "changed", what="users", ids=[10]), None),  # 3 was lost: read all
        (said("y", 6, "alive", name="c"), None),  # had spoken before this one listened
        (said("y", 7, "changed", what="rules", ids=None), "nothing"),  # not followed here
        (said(here.node, 99, "changed", what="users", ids=[1]), "nothing"),  # its own
    ]:
        bus.publish(cluster.TOPIC, message)
        await trio.testing.wait_all_tasks_blocked()
        assert reads == ([] if read == "nothing" else [read]), message
        reads.clear()
    assert {node: peer.name for node, peer in here.peers.items()} == {"x": "", "y": "c"}


async def test_a_silent_process_is_forgotten_after_silence_periods_and_one_that_says_bye_at_once(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
):
    bus = Bus()
    here = cluster.Cluster(bus)
    gone: list[tuple[str, float]] = []
    here.on_gone(lambda node: gone.append((node, trio.current_time())))
    nursery.start_soon(here.run)
    start = trio.current_time()
    bus.publish(cluster.TOPIC, said("x", 1, "alive"))
    bus.publish(cluster.TOPIC, said("y", 1, "alive"))
    bus.publish(cluster.TOPIC, said("y", 2, "bye"))
    assert gone == [("y", start)]
    await trio.sleep(10 * cluster.PERIOD)
    ((node, when),) = gone[1:]
    assert node == "x" and cluster.SILENCE * cluster.PERIOD < when - start <= (cluster.SILENCE + 1) * cluster.PERIOD
    assert here.peers == {}


async def test_presence_set_through_one_process_is_seen_through_the_other(data: Path, tmp_path: Path):
    with trio.fail_after(10):
        async with processes(data, tmp_path, "a") as cluster_of, trio.open_nursery() as people:
            alice, bob = await cluster_of.person("alice"), await cluster_of.person("bob")
            alice_leaves = trio.Event()

            async def alice_online(task_status: trio.TaskStatus) -> None:
                async with cluster_of.client(alice, "a") as client:
                    task_status.started(client)
                    await alice_leaves.wait()

            alice_a = await people.start(alice_online)
            await alice_a.set_presence("away", "at the dentist")
            with trio.fail_after(cluster.PERIOD - 2):  # b asks when it starts, a answers at once
                await cluster_of.start("b")
            async with cluster_of.client(bob, "b") as bob_b:
                assert (await bob_b.request(QueryPresence(users=("alice",)))).statuses == (
                    PresenceInfo(user="alice", status="away", text="at the dentist"),
                )
                await alice_a.set_presence("online")
                assert await next_presence(bob_b, "alice") == ("online", "")
                await alice_a.set_presence("busy", "release day")
                assert await next_presence(bob_b, "alice") == ("busy", "release day")
                async with cluster_of.client(alice, "b", receive=False):
                    pass  # a second session, through b, comes and goes: she stays busy
                await alice_a.set_presence("away")
                assert await next_presence(bob_b, "alice") == ("away", "")  # nothing in between
                alice_leaves.set()
                assert await next_presence(bob_b, "alice") == ("offline", "")  # her last session anywhere ended


@asynccontextmanager
async def bob_on_both_and_carol_on_b(cluster_of: Processes) -> AsyncIterator[tuple[Client, Client, Client]]:
    """Bob's laptop on a and his phone on b, and carol on b, who watches bob."""
    bob, carol = await cluster_of.person("bob"), await cluster_of.person("carol")
    phone = await cluster_of.second_device(bob, via="b")
    async with (
        cluster_of.client(bob, "a") as bob_a,
        cluster_of.client(phone, "b") as bob_b,
        cluster_of.client(carol, "b") as carol_b,
    ):
        assert await carol_b.query_presence(["bob"]) == {"bob": "online"}
        yield bob_a, bob_b, carol_b


async def nothing_arrives(client: Client, why: str) -> None:
    with trio.move_on_after(0.5):
        early = await next_message(client)
        raise AssertionError(f"{why}: {early}")


async def test_a_break_started_through_one_process_holds_deliveries_in_the_other(data: Path, tmp_path: Path):
    with trio.fail_after(10):
        async with processes(data, tmp_path, "a", "b") as cluster_of:
            async with bob_on_both_and_carol_on_b(cluster_of) as (bob_a, bob_b, carol_b):
                await bob_a.set_presence("break", "lunch")
                assert await presence_until(carol_b, "bob", "break") == "lunch"
                assert (await carol_b.send("bob", "when you have a minute")).held
                await nothing_arrives(bob_b, "held message delivered to bob's phone during the break")
                await bob_a.set_presence("online")  # the end of the break resyncs the phone too
                assert (await next_message(bob_b)).text == "when you have a minute"

                await bob_a.set_presence("break", "", urgent_from=("carol",))
                await presence_until(carol_b, "bob", "break")
                urgent = await carol_b.send("bob", "the build is red", urgent=True)
                assert not urgent.held and (await next_message(bob_b)).text == "the build is red"

            # Bob only on a now: b holds none of his sessions and still tells a sender it held one.
            bob, carol = cluster_of.profiles["bob"], cluster_of.profiles["carol"]
            async with cluster_of.client(bob, "a") as bob_a, cluster_of.client(carol, "b") as carol_b:
                await carol_b.query_presence(["bob"])
                await bob_a.set_presence("break")
                await presence_until(carol_b, "bob", "break")
                assert (await carol_b.send("bob", "see you at 3")).held


async def test_quiet_hours_set_through_one_process_hold_deliveries_in_the_other(data: Path, tmp_path: Path):
    with trio.fail_after(10):
        async with processes(data, tmp_path, "a", "b") as cluster_of:
            for server in cluster_of.servers.values():
                clock_at(server, 23, 0, 0)
            async with bob_on_both_and_carol_on_b(cluster_of) as (bob_a, bob_b, carol_b):
                assert (await bob_a.request(QuietHoursSet(start="22:00", end="08:00", tz=ZONE))).active
                assert await presence_until(carol_b, "bob", "break") == "quiet hours until 08:00"
                assert (await carol_b.send("bob", "still up?")).held
                await nothing_arrives(bob_b, "held message delivered to bob's phone in his quiet hours")
                await bob_a.request(QuietHoursSet(off=True))  # b reads them again: none
                assert (await next_message(bob_b)).text == "still up?"
                assert await next_presence(carol_b, "bob") == ("online", "")


async def test_status_and_metrics_count_every_process(data: Path, tmp_path: Path):
    with trio.fail_after(10):
        async with processes(data, tmp_path, "a", "b") as cluster_of:
            alice, bob = await cluster_of.person("alice"), await cluster_of.person("bob")
            phone = await cluster_of.second_device(bob, via="b")
            async with cluster_of.client(alice, "a"), cluster_of.client(bob, "b"), cluster_of.client(phone, "b"):

                async def counts(name: str) -> tuple[int, int, int]:
                    status = await admin_request(data, ServerStatus(), instance=name)
                    return status.connections, status.sessions, status.users_online

                # Sessions and people online are every process's; connections this one's.
                while (await counts("a"), await counts("b")) != ((1, 3, 2), (2, 3, 2)):
                    await trio.sleep(0.02)
                health = Health(cluster_of.servers["b"].services)
                metrics = render(await health.gather(), health.here(), time.time())
            assert 'corridor_sessions{scope="cluster"} 3\ncorridor_sessions{scope="process",instance="b"} 2' in metrics
            assert 'corridor_users_online{scope="cluster"} 2\ncorridor_users_online{scope="process",instance="b"} 1' in metrics
            assert "corridor_processes 2\n" in metrics


async def test_users_and_rules_changed_through_one_process_apply_in_the_other_at_once(data: Path, tmp_path: Path):
    with trio.fail_after(10):
        async with processes(data, tmp_path, "a", "b") as cluster_of:
            alice = await cluster_of.person("alice", via="a")
            async with cluster_of.client(alice, "b", receive=False) as alice_b:  # added through a, logs in on b
                assert alice_b.login.user == "alice"
            await admin_request(data, PolicySet(kind="group_create", department=None, subjects=("user:alice",)), instance="a")
            while not (await admin_request(data, PolicyList(), instance="b")).rules:
                await trio.sleep(0.02)

            bob = await cluster_of.person("bob", via="b")
            live = RawPeer(await open_tls(*cluster_of.address("b"), alice.ca_pem(), "127.0.0.1", 5))
            await live.log_in(alice)
            while (await admin_request(data, ServerStatus(), instance="a")).sessions != 1:
                await trio.sleep(0.02)  # a has heard of her session on b
            deactivated = await admin_request(data, UserDeactivate(user="alice"), instance="a")
            assert deactivated.sessions_ended == 1  # the one on b, as b last said
            assert (await closed_within(live, 2.0))["code"] == "ACCOUNT_DISABLED"
            async with cluster_of.client(bob, "b", receive=False) as bob_b:
                assert await bob_b.query_presence(["alice"]) == {}  # b knows she left


async def test_a_device_revoked_through_one_process_is_disconnected_in_the_other(data: Path, tmp_path: Path):
    with trio.fail_after(10):
        async with processes(data, tmp_path, "a", "b") as cluster_of:
            dave = await cluster_of.person("dave")
            phone = await cluster_of.second_device(dave, via="a")
            laptop_b = RawPeer(await open_tls(*cluster_of.address("b"), dave.ca_pem(), "127.0.0.1", 5))
            await laptop_b.log_in(dave)
            phone_b = RawPeer(await open_tls(*cluster_of.address("b"), dave.ca_pem(), "127.0.0.1", 5))
            await phone_b.log_in(phone)
            await admin_request(data, DeviceRevoke(user="dave", device_id=phone.credential().device_id), instance="a")
            assert (await closed_within(phone_b, 2.0))["code"] == "ACCOUNT_DISABLED"
            await laptop_b.send({"type": "ping", "id": 3})  # the laptop's session goes on
            assert (await laptop_b.frame())["type"] == "result"


QUICK_SERVE = f"""
import sys
from corridor.server import cli, cluster
cluster.PERIOD = {QUICK_PERIOD}  # as the quick_cluster fixture does in this process
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.usefixtures("quick_cluster")
async def test_the_people_of_a_killed_process_go_offline_elsewhere_within_the_bound(data: Path, tmp_path: Path):
    with trio.fail_after(15):
        async with processes(data, tmp_path, "a") as cluster_of:
            alice, bob = await cluster_of.person("alice"), await cluster_of.person("bob")
            argv = [sys.executable, "-c", QUICK_SERVE, str(data), "--instance", "c", "--listen", "127.0.0.1:0"]
            with (tmp_path / "serve-c.log").open("wb") as log:
                process = await trio.lowlevel.open_process(
                    [*argv, "--no-advertise", "--log-level", "warning"], stdout=subprocess.PIPE, stderr=log
                )
            try:
                line = b""
                while b"\n" not in line:
                    line += await process.stdout.receive_some(4096)
                assert line.startswith(b"corridor: serving"), line
                port = int(line.split(b"\n")[0].rsplit(b":", 1)[1].split()[0])
                a = cluster_of.servers["a"]
                await wait_for(lambda: a.services.sessions.cluster.peers)  # c is on the bus
                async with cluster_of.client(bob, "a") as bob_a:
                    assert await bob_a.query_presence(["alice"]) == {"alice": "offline"}
                    async with Client.open(alice, address=("127.0.0.1", port), backoff=(0.5, 0.5)):
                        await presence_until(bob_a, "alice", "online")  # connected to c only
                        assert (await admin_request(data, ServerStatus(), instance="a")).users_online == 2
                        os.kill(process.pid, signal.SIGKILL)
                        killed = trio.current_time()
                        await presence_until(bob_a, "alice", "offline")
                        waited = trio.current_time() - killed
                        status = await admin_request(data, ServerStatus(), instance="a")
                        assert (status.sessions, status.users_online) == (1, 1)
                        assert a.services.sessions.cluster.peers == {}
            finally:
                process.kill()
                await process.wait()
                await process.stdout.aclose()
    # Forgotten once silent for SILENCE periods, noticed at the next round: within SILENCE + 1
    # periods of its last word (0.3 s more for a loaded test machine), and not before.
    assert (cluster.SILENCE - 1) * QUICK_PERIOD < waited < (cluster.SILENCE + 1) * QUICK_PERIOD + 0.3


async def test_a_device_enrolled_through_one_process_logs_in_on_another_that_has_not_heard(
    data: Path, tmp_path: Path, nats_server: NatsServer
):
    with trio.fail_after(30):
        async with processes(data, tmp_path, "a", "b") as started:
            nats_server.stop()  # b hears nothing from a any more
            alice = await started.person("alice", via="a")
            async with started.client(alice, "b", receive=False) as client:
                assert client.login.user == "alice"
