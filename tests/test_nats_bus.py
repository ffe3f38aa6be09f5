"""The NATS bus against a real nats-server on 127.0.0.1: deliveries cross between two buses
(two processes, as NATS sees them: each bus has its own connection and thread), exactly once and
in order; only subscribed users' subjects travel; an outage neither blocks nor raises, and
delivery resumes after it; and a real server configured with `[bus] backend = "nats"`.

Both buses run in the test's trio run: to NATS they are two clients like two `serve` processes,
and a test can then watch both with one deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from corridor.client.client import Client
from corridor.protocol.messages import MessageEvent, TypingEvent
from corridor.server.config import ConfigError, parse_config
from corridor.server.nats_bus import NatsBus, decode, encode
from corridor.server.sessions import Delivery

from .conftest import serve_with
from .nats import NatsServer, nats_server_fixture  # noqa: F401
from .test_messaging import next_messages

# Production waits 2 s between reconnection attempts (not hammering a NATS that is restarting);
# the outage test would wait that long for nothing.
QUICK_RECONNECT = 0.1


@asynccontextmanager
async def running_bus(url: str) -> AsyncIterator[NatsBus]:
    """A started NatsBus, stopped (and its thread joined) on exit."""
    bus = NatsBus(url, "test", stop_grace=2.0, reconnect_wait=QUICK_RECONNECT)
    async with trio.open_nursery() as nursery:
        await nursery.start(bus.run)
        yield bus
        nursery.cancel_scope.cancel()


def message(i: int) -> MessageEvent:
    return MessageEvent(conversation=3, seq=i, sender="alice", recipient="bob", msg_id=f"m{i}", text=f"hello {i}", ts=1.5)


async def wait_for(condition, step: float = 0.01) -> None:
    while not condition():
        await trio.sleep(step)


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("backend", "kafka", "'bus.backend' must be one of local, nats"),
        ("nats_url", "127.0.0.1:4222", "'bus.nats_url' must be nats://HOST:PORT"),
        ("cluster", "head office", "'bus.cluster' must be 1-64 of"),
    ],
)
def test_a_bad_bus_section_names_its_key(key, value, says):
    with pytest.raises(ConfigError, match=says):
        parse_config({"organisation": {"name": "Org"}, "bus": {key: value}}, Path("/data"))


def test_the_bus_is_local_unless_configured():
    assert parse_config({"organisation": {"name": "Org"}}, Path("/data")).bus.backend == "local"


def test_a_delivery_survives_the_trip_except_its_origin():
    delivery = Delivery(message(1), origin=42, urgent=True)
    assert decode(encode(delivery)) == Delivery(message(1), origin=None, urgent=True)
    assert decode(encode(Delivery(TypingEvent(user="bob")))) == Delivery(TypingEvent(user="bob"))


async def test_a_burst_reaches_the_other_process_once_and_in_order(nats_server: NatsServer):
    with trio.fail_after(10):
        async with running_bus(nats_server.url) as a, running_bus(nats_server.url) as b:
            got_a, got_b = [], []
            a.subscribe("user:7", got_a.append)
            b.subscribe("user:7", got_b.append)
            await a.flush()
            await b.flush()  # both subscriptions are live on the NATS server
            sent = [Delivery(message(i), origin=5) for i in range(200)]
            for delivery in sent:
                assert a.publish("user:7", delivery) == 1  # the local subscriber, inline
            assert got_a == sent
            await wait_for(lambda: len(got_b) == 200)
            assert [d.event for d in got_b] == [d.event for d in sent]
            assert {d.origin for d in got_b} == {None}  # A's session id means nothing in B
            # A marker from B arrives after anything still on its way to A: A got no echo of its
            # own 200, and B nothing twice.
            b.publish("user:7", Delivery(TypingEvent(user="marker")))
            await wait_for(lambda: len(got_a) == 201)
            await b.flush()
            await a.flush()
            assert got_a[-1].event == TypingEvent(user="marker")
            assert len(got_b) == 201
            assert (a.sent, a.received, b.received) == (200, 1, 200)


async def test_only_subscribed_users_travel(nats_server: NatsServer):
    with trio.fail_after(10):
        async with running_bus(nats_server.url) as a, running_bus(nats_server.url) as b:
            seven, eight = [], []
            stop_seven = b.subscribe("user:7", seven.append)
            b.subscribe("user:8", eight.append)
            stop_seven()
            await b.flush()
            a.publish("user:7", Delivery(message(1)))
            a.publish("user:8", Delivery(message(2)))
            a.publish("session.started", object())  # local topics never reach NATS
            await wait_for(lambda: len(eight) == 1)
            await a.flush()
            await b.flush()
            assert (seven, a.sent, b.received) == ([], 2, 1)


async def test_cluster_topics_reach_every_other_process_as_plain_data(nats_server: NatsServer):
    with trio.fail_after(10):
        async with running_bus(nats_server.url) as a, running_bus(nats_server.url) as b, running_bus(nats_server.url) as c:
            heard = {name: [] for name in "abc"}
            for name, bus in zip("abc", (a, b, c), strict=True):
                bus.subscribe("cluster.presence", heard[name].append)
            for bus in (a, b, c):
                await bus.flush()  # the wildcard subscriptions made at connect are live
            change = {"user": 7, "status": "away", "sessions": [1, 2]}
            assert a.publish("cluster.presence", change) == 1
            await wait_for(lambda: heard["b"] and heard["c"])
            await a.flush()
            assert heard == {"a": [change], "b": [change], "c": [change]}  # no echo back to a


async def test_a_group_message_crosses_once_per_process_to_the_members_it_serves(nats_server: NatsServer):
    with trio.fail_after(10):
        async with running_bus(nats_server.url) as a, running_bus(nats_server.url) as b, running_bus(nats_server.url) as c:
            got: dict[str, list] = {"a1": [], "b1": [], "b2": [], "c3": []}
            a.subscribe("user:1", got["a1"].append)  # a member with sessions on two processes
            b.subscribe("user:1", got["b1"].append)
            b.subscribe("user:2", got["b2"].append)
            c.subscribe("user:3", got["c3"].append)
            for bus in (a, b, c):
                await bus.flush()
            members = list(range(1, 2001))
            a.publish_to_users(members, Delivery(message(1)), "conversation.3")
            await wait_for(lambda: got["b1"] and got["b2"] and got["c3"])
            await a.flush()
            await b.flush()
            await c.flush()
            assert {k: [d.event for d in v] for k, v in got.items()} == {k: [message(1)] for k in got}
            assert (a.sent, b.received, c.received) == (1, 1, 1)  # not 2,000 NATS messages
            # A 1:1 conversation's two people go on their own subjects: only their processes hear.
            a.publish_to_users([2, 3], Delivery(message(2)), "conversation.4")
            await wait_for(lambda: len(got["b2"]) == 2 and len(got["c3"]) == 2)
            assert a.sent == 3


async def test_an_outage_neither_blocks_nor_raises_and_delivery_resumes(nats_server: NatsServer):
    with trio.fail_after(15):
        async with running_bus(nats_server.url) as a, running_bus(nats_server.url) as b:
            got = []
            b.subscribe("user:7", got.append)
            await b.flush()
            nats_server.stop()
            with trio.fail_after(1):
                for i in range(500):
                    a.publish("user:7", Delivery(message(i)))
            nats_server.start()
            # Both buses reconnect on their own; B resubscribes. Publish until it shows.
            while not any(d.event == TypingEvent(user="again") for d in got):
                a.publish("user:7", Delivery(TypingEvent(user="again")))
                await trio.sleep(0.05)


async def test_what_is_published_before_nats_is_first_reached_waits_for_it(nats_server: NatsServer):
    nats_server.stop()
    with trio.fail_after(15):
        async with running_bus(nats_server.url) as a:
            a.publish("cluster.presence", {"user": 7, "status": "online"})  # a server starting up
            await trio.sleep(0.3)  # several connection attempts
            assert (a.sent, a.failed, a.dropped) == (0, 0, 0)
            nats_server.start()
            await a.flush()
            assert (a.sent, a.failed) == (1, 0)


async def test_without_nats_the_bus_starts_delivers_locally_and_stops(tmp_path: Path):
    with trio.fail_after(5):
        async with running_bus(NatsServer(tmp_path).url) as bus:  # a free port: nothing listens
            got = []
            bus.subscribe("user:7", got.append)
            assert bus.publish("user:7", Delivery(message(1))) == 1
            assert len(got) == 1
    stopped = NatsBus("nats://127.0.0.1:1", "test", stop_grace=1.0)
    assert stopped.publish("user:7", Delivery(message(1))) == 0
    assert stopped.dropped == 1


async def test_a_server_on_the_nats_bus(data_dir: Path, tmp_path: Path, nats_server: NatsServer):
    config = data_dir / "corridor.toml"
    config.write_text(config.read_text() + f'\n[bus]\nbackend = "nats"\nnats_url = "{nats_server.url}"\ncluster = "test"\n')
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            org = await serve_with(nursery, data_dir, tmp_path)
            bus = org.server.services.bus
            assert isinstance(bus, NatsBus)
            alice, bob = await org.user("alice"), await org.user("bob")
            bob_id = org.server.services.users.by_name("bob").id
            async with running_bus(nats_server.url) as elsewhere:  # another process's view
                seen = []
                elsewhere.subscribe(f"user:{bob_id}", seen.append)
                await elsewhere.flush()
                async with Client.open(alice) as a, Client.open(bob) as b:
                    await a.send("bob", "over NATS")
                    (received,) = await next_messages(b, 1)
                    assert received.text == "over NATS"
                    await wait_for(lambda: any(isinstance(d.event, MessageEvent) for d in seen))
                assert [d.event.text for d in seen if isinstance(d.event, MessageEvent)] == ["over NATS"]
                assert bus.sent >= 1
            org.server.stop()
