"""A break through the real server: messages to someone on a break are held (their senders are
told), urgent ones from people they allow still arrive, and the held ones come when it ends."""

import trio

from corridor.client.client import Client
from corridor.protocol.messages import MessageEvent, NoticeEvent, NoticeSend, PolicySet, PresenceEvent, QueryPresence

from .helpers import admin_request


async def test_a_break_holds_messages_lets_urgent_ones_through_and_delivers_the_rest_after(org):
    alice, bob, carol = [await org.user(n) for n in ("alice", "bob", "carol")]
    async with Client.open(bob) as b, Client.open(alice, receive=False) as a, Client.open(carol, receive=False) as c:
        await b.set_presence("break", "lunch, back at 2", urgent_from=("alice",))
        seen = (await c.request(QueryPresence(users=("bob",)))).statuses[0]
        assert (seen.status, seen.text) == ("break", "lunch, back at 2")

        held = await c.send("bob", "when you have a minute")
        assert held.held  # carol is told
        assert (await a.send("bob", "not urgent either")).held
        urgent = await a.send("bob", "the server room is flooding", urgent=True)
        assert not urgent.held

        async def next_message() -> MessageEvent:
            async for event in b.events():
                if isinstance(event, MessageEvent):
                    return event
                assert not isinstance(event, PresenceEvent) or event.user != "bob"

        with trio.fail_after(5):  # the urgent one comes, after the earlier one of its conversation
            assert [(await next_message()).text for _ in range(2)] == ["not urgent either", "the server room is flooding"]
        with trio.move_on_after(0.5):
            early = await next_message()
            raise AssertionError(f"held message delivered during the break: {early}")

        await b.set_presence("online")
        with trio.fail_after(5):
            assert (await next_message()).text == "when you have a minute"
        assert not (await c.send("bob", "thanks")).held


async def test_notices_wait_for_the_end_of_a_break_too(org):
    hr, bob = await org.user("hr"), await org.user("bob")
    await admin_request(org.data_dir, PolicySet(kind="broadcast", department=None, subjects=("user:hr",)))
    async with Client.open(bob) as b, Client.open(hr, receive=False) as h:
        await b.set_presence("break")
        await h.request(NoticeSend(msg_id="n1", title="Canteen", text="closed today", everyone=True))

        async def next_notice() -> NoticeEvent:
            async for event in b.events():
                if isinstance(event, NoticeEvent):
                    return event

        with trio.move_on_after(0.5):
            early = await next_notice()
            raise AssertionError(f"notice delivered during the break: {early}")
        await b.set_presence("online")
        with trio.fail_after(5):
            assert (await next_notice()).title == "Canteen"
