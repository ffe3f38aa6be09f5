"""Two colleagues chat through the real server: delivery, order, offline sync, idempotency."""

from dataclasses import replace

import pytest
import trio

from corridor.client.client import Client
from corridor.client.transport import running
from corridor.protocol.errors import NotFound
from corridor.protocol.messages import MessageEvent, PresenceEvent, Send


async def next_messages(client: Client, n: int) -> list[MessageEvent]:
    got = []
    async for event in client.events():
        if isinstance(event, MessageEvent):
            got.append(event)
            if len(got) == n:
                return got
    raise AssertionError(f"event stream ended after {len(got)} messages")


async def test_two_users_chat_live(org):
    alice, bob = await org.user("alice"), await org.user("bob")
    with trio.fail_after(20):
        async with Client.open(alice) as a, Client.open(bob) as b:
            ack = await a.send("bob", "Lunch at noon? 午饭?")
            assert (ack.seq, ack.duplicate) == (1, False)
            (received,) = await next_messages(b, 1)
            assert (received.sender, received.recipient, received.text, received.seq) == (
                "alice",
                "bob",
                "Lunch at noon? 午饭?",
                1,
            )
            await b.send("alice", "yes")
            mine, reply = await next_messages(a, 2)  # alice sees her own message too (all her devices do)
            assert (mine.text, reply.text, reply.seq) == ("Lunch at noon? 午饭?", "yes", 2)


async def test_offline_user_gets_100_messages_in_order(org):
    alice, bob = await org.user("alice"), await org.user("bob")
    with trio.fail_after(60):
        async with Client.open(alice, receive=False) as a:
            for i in range(100):
                await a.send("bob", f"message {i}")
        async with Client.open(bob) as b:
            received = await next_messages(b, 100)
    assert [m.text for m in received] == [f"message {i}" for i in range(100)]
    assert [m.seq for m in received] == list(range(1, 101))


async def test_sync_resumes_after_last_seen_message(org):
    alice, bob = await org.user("alice"), await org.user("bob")
    with trio.fail_after(30):
        async with Client.open(alice, receive=False) as a:
            for i in range(5):
                await a.send("bob", f"m{i}")
        async with Client.open(bob) as b:
            assert [m.text for m in await next_messages(b, 3)] == ["m0", "m1", "m2"]
        async with Client.open(alice, receive=False) as a:
            await a.send("bob", "m5")
        async with Client.open(bob) as b:
            assert [m.text for m in await next_messages(b, 3)] == ["m3", "m4", "m5"]


async def test_resend_with_same_id_returns_original_and_stores_once(org):
    alice, _ = await org.user("alice"), await org.user("bob")
    with trio.fail_after(20):
        async with Client.open(alice, receive=False) as a:
            first = await a.send("bob", "only once", msg_id="fixed-id-1")
            again = await a.request(Send(to="bob", msg_id="fixed-id-1", text="only once"))
            assert (again.conversation, again.seq, again.duplicate) == (first.conversation, first.seq, True)
            history = await a.history("bob")
        assert [m.text for m in history.messages] == ["only once"]


async def test_outbox_is_resent_after_a_crash_before_the_ack(org):
    """A message written to the outbox but never acknowledged (the client died) goes out on the
    next connection, exactly once even if it had in fact reached the server."""
    alice, bob = await org.user("alice"), await org.user("bob")
    with trio.fail_after(20):
        async with Client.open(alice, receive=False) as a:
            await a.request(Send(to="bob", msg_id="was-delivered", text="first"))
        alice.outbox_add("was-delivered", "bob", "first")  # the ack was lost
        alice.outbox_add("never-sent", "bob", "second")  # the send never happened
        async with Client.open(alice, receive=False) as a:
            while alice.outbox():
                await trio.sleep(0.01)
        async with Client.open(bob) as b:
            assert [m.text for m in await next_messages(b, 2)] == ["first", "second"]


async def test_reconnect_keeps_order_and_loses_nothing(org):
    alice, bob = await org.user("alice"), await org.user("bob")
    with trio.fail_after(30):
        async with Client.open(alice, receive=False) as a, Client.open(bob) as b:
            for i in range(10):
                await a.send("bob", f"before {i}")
            await b.aclose_connection()  # the link drops; bob's client reconnects by itself
            for i in range(10):
                await a.send("bob", f"after {i}")
            received = await next_messages(b, 20)
            assert b.connects >= 2
    assert [m.text for m in received] == [f"before {i}" for i in range(10)] + [f"after {i}" for i in range(10)]


async def test_history_pages_backwards(org):
    alice, _ = await org.user("alice"), await org.user("bob")
    with trio.fail_after(30):
        async with Client.open(alice, receive=False) as a:
            for i in range(30):
                await a.send("bob", f"h{i}")
            latest = await a.history("bob", limit=10)
            older = await a.history("bob", limit=10, before=latest.messages[0].seq)
    assert [m.text for m in latest.messages] == [f"h{i}" for i in range(20, 30)]
    assert [m.text for m in older.messages] == [f"h{i}" for i in range(10, 20)]


async def test_unknown_recipient_is_refused_and_not_kept_in_outbox(org):
    alice = await org.user("alice")
    with trio.fail_after(10):
        async with Client.open(alice, receive=False) as a:
            with pytest.raises(NotFound) as info:
                await a.send("nobody", "hello?")
    assert info.value.code == "NO_SUCH_USER"
    assert alice.outbox() == []


async def test_presence_is_pushed_to_contacts(org):
    alice, bob = await org.user("alice"), await org.user("bob")
    with trio.fail_after(20):
        async with Client.open(alice) as a:
            assert await a.query_presence(["bob"]) == {"bob": "offline"}
            async with Client.open(bob, receive=False) as b:
                await b.set_presence("busy")
                seen = []
                async for event in a.events():
                    if isinstance(event, PresenceEvent):
                        seen.append(event.status)
                        if event.status == "busy":
                            break
                assert seen[-2:] == ["online", "busy"]
            async for event in a.events():
                if isinstance(event, PresenceEvent):
                    assert (event.user, event.status) == ("bob", "offline")
                    break


async def test_every_message_is_in_the_archive_chain(org, server):
    alice, _ = await org.user("alice"), await org.user("bob")
    with trio.fail_after(20):
        async with Client.open(alice, receive=False) as a:
            for i in range(5):
                await a.send("bob", f"archived {i}")
    from corridor.server.features.archive.store import entries
    from corridor.server.features.archive.verify import verify_chain

    db = server.services.db
    archived = await db.read(lambda c: entries(c))
    texts = [e.payload["text"] for e in archived if e.kind == "message"]
    assert texts == [f"archived {i}" for i in range(5)]
    assert (await db.read(verify_chain)).intact


async def test_large_messages_are_paged_within_the_frame_limit(org):
    alice, bob = await org.user("alice"), await org.user("bob")
    big = "长" * 30_000  # 90 KB of UTF-8 each; 40 of them exceed one 1 MiB frame
    with trio.fail_after(60):
        async with Client.open(alice, receive=False) as a:
            for i in range(40):
                await a.send("bob", f"{i:02d}{big}")
            history = await a.history("bob", limit=40)
        async with Client.open(bob) as b:
            received = await next_messages(b, 40)
    assert [m.text[:2] for m in received] == [f"{i:02d}" for i in range(40)]
    assert 0 < len(history.messages) < 40 and history.messages[-1].text[:2] == "39"


async def test_notes_to_self_reach_my_other_devices_once(org, tmp_path):
    from corridor.client.profile import Profile
    from corridor.protocol.messages import Login

    from .helpers import PASSWORD

    laptop = await org.user("alice")
    phone = Profile(tmp_path / "alice-phone")
    async with running(await org.raw_tls()) as channel:  # a second device: password login
        await channel.handshake()
        login = await channel.request(Login(user="alice", password=PASSWORD, device_name="phone"))
    phone.save_enrollment(
        replace(laptop.credential(), device_id=login.device_id, device_token=login.device_token), laptop.ca_pem()
    )
    with trio.fail_after(20):
        async with Client.open(laptop) as a, Client.open(phone) as p:
            ack = await a.send("alice", "buy milk")
            (mine,) = await next_messages(a, 1)
            (other,) = await next_messages(p, 1)
            await a.send("alice", "and bread")
            (second,) = await next_messages(p, 1)
    assert (mine.seq, mine.text) == (ack.seq, "buy milk") and (other.seq, other.sender) == (ack.seq, "alice")
    assert second.seq == ack.seq + 1
