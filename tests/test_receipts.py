"""Read and delivered marks through the real server: unread counts agree across a user's devices,
the sender sees a message delivered and then read, groups report who has and has not read, and
typing reaches the other person."""

import json

import pytest
import trio

from corridor.client.client import Client
from corridor.client.enrollment import enroll
from corridor.client.profile import Profile
from corridor.protocol.errors import NotFound
from corridor.protocol.messages import (
    DeliveredEvent,
    DeliveredMark,
    GroupCreate,
    GroupMembersAdd,
    InviteReissue,
    MarkDelivered,
    MarkRead,
    MessageEvent,
    ReadEvent,
    ReadReceipts,
    Typing,
    TypingEvent,
    Unread,
)

from .cli_helpers import employee, run
from .helpers import PASSWORD, admin_request


async def next_event(client: Client, kind: type, seconds: float = 5):
    with trio.fail_after(seconds):
        async for event in client.events():
            if isinstance(event, kind):
                return event


async def test_unread_counts_agree_across_devices_and_the_sender_sees_the_receipt(org, tmp_path):
    alice, bob = await org.user("alice"), await org.user("bob")
    second = Profile(tmp_path / "bob-laptop")  # bob's second device: a new invite is his password reset
    await enroll(second, (await admin_request(org.data_dir, InviteReissue(user="bob"))).invite, PASSWORD, "laptop")
    async with Client.open(alice) as a:
        for n in range(3):
            sent = await a.send("bob", f"message {n}")
        conversation = sent.conversation
        async with Client.open(bob) as desk, Client.open(second) as laptop:
            assert [(u.conversation, u.unread) for u in (await desk.request(Unread())).conversations] == [(conversation, 3)]
            await desk.request(MarkRead(conversation=conversation, seq=2))
            assert (await next_event(laptop, ReadEvent)).seq == 2  # his other device hears it
            receipt = await next_event(a, ReadEvent)  # and so does the sender
            assert (receipt.user, receipt.seq) == ("bob", 2)
            assert [u.unread for u in (await laptop.request(Unread())).conversations] == [1]
            assert (await a.request(ReadReceipts(conversation=conversation, seq=3))).unread == ("bob",)
            await laptop.request(MarkRead(conversation=conversation, seq=99))  # capped at the last message
            await laptop.request(MarkRead(conversation=conversation, seq=1))  # marks never move back
            assert (await desk.request(Unread())).conversations == ()
            assert (await a.request(ReadReceipts(conversation=conversation, seq=3))).read == ("bob",)
    async with Client.open(await org.user("carol"), receive=False) as c:
        with pytest.raises(NotFound):
            await c.request(MarkRead(conversation=conversation, seq=1))  # not her conversation


async def test_the_sender_sees_a_message_delivered_when_a_device_has_shown_it(org):
    alice, bob = await org.user("alice"), await org.user("bob")
    async with Client.open(alice) as a:
        first = await a.send("bob", "lunch?")
        await a.send("bob", "at noon")
        receipt = await a.request(ReadReceipts(conversation=first.conversation, seq=2))
        assert (receipt.read, receipt.unread, receipt.delivered) == ((), ("bob",), ())  # bob is not connected
        async with Client.open(bob) as b:
            with trio.fail_after(5):
                got = [event async for event in _messages(b, 2)]
            assert [m.text for m in got] == ["lunch?", "at noon"]
            delivered = await next_event(a, DeliveredEvent)
            assert (delivered.conversation, delivered.user, delivered.seq) == (first.conversation, "bob", 2)
            receipt = await a.request(ReadReceipts(conversation=first.conversation, seq=2))
            assert (receipt.read, receipt.unread, receipt.delivered) == ((), ("bob",), ("bob",))

            await b.request(MarkRead(conversation=first.conversation, seq=2))
            assert (await next_event(a, ReadEvent)).seq == 2
            receipt = await a.request(ReadReceipts(conversation=first.conversation, seq=2))
            assert (receipt.read, receipt.unread, receipt.delivered) == (("bob",), (), ())

            # A repeat, a mark past the end and a conversation bob is not in change nothing and
            # tell alice nothing (a device may report a group it has since left).
            marks = (DeliveredMark(conversation=first.conversation, seq=99), DeliveredMark(conversation=10**9, seq=1))
            await b.request(MarkDelivered(marks=marks))
            await a.send("bob", "see you")
            with trio.fail_after(5):
                [latest] = [event async for event in _messages(b, 1)]
            assert (await next_event(a, DeliveredEvent)).seq == latest.seq == 3


async def _messages(client: Client, count: int):
    """The next `count` messages this client hands over."""
    async for event in client.events():
        if isinstance(event, MessageEvent):
            yield event
            count -= 1
            if not count:
                return


async def test_group_receipts_count_only_those_who_could_see_the_message(org):
    alice, bob, carol = [await org.user(n) for n in ("alice", "bob", "carol")]
    async with Client.open(alice, receive=False) as a, Client.open(bob, receive=False) as b:
        group = (await a.request(GroupCreate(name="Team", members=("bob",)))).id
        first = await a.send_group(group, "before carol")
        await a.request(GroupMembersAdd(group=group, users=("carol",)))
        second = await a.send_group(group, "after carol")
        await b.request(MarkRead(conversation=group, seq=first.seq))
        early = await a.request(ReadReceipts(conversation=group, seq=first.seq))
        assert (early.read, early.unread) == (("bob",), ())  # carol never saw it
        late = await a.request(ReadReceipts(conversation=group, seq=second.seq))
        assert (late.read, late.unread) == ((), ("bob", "carol"))
    async with Client.open(carol, receive=False) as c:
        counts = {u.conversation: u.unread for u in (await c.request(Unread())).conversations}
        assert counts == {group: 1}  # "after carol" ("alice added carol" is not a message to read)


async def test_typing_reaches_the_other_person_at_once(org):
    alice, bob = await org.user("alice"), await org.user("bob")
    async with Client.open(alice, receive=False) as a, Client.open(bob) as b:
        await a.request(Typing(to="bob"))
        assert (await next_event(b, TypingEvent)).user == "alice"
        with pytest.raises(NotFound):
            await a.request(Typing(to="nobody"))


def test_read_marks_from_the_command_line(served, tmp_path):
    data, _, _ = served
    alice = employee(data, tmp_path, "alice", "Alice")
    bob = employee(data, tmp_path, "bob", "Bob")
    assert run("send", "bob", "are you there?", "--profile", alice).returncode == 0
    unread = json.loads(run("read", "unread", "--profile", bob, "--json").stdout)
    assert (unread["unread"], unread["last_seq"]) == (1, 1)
    before = run("read", "receipts", "bob", "1", "--profile", alice)
    assert before.returncode == 0 and before.stdout.strip() == "read by nobody; not yet by bob"
    assert run("listen", "--count", "1", "--timeout", "10", "--profile", bob).returncode == 0
    delivered = run("read", "receipts", "bob", "1", "--profile", alice)
    assert delivered.stdout.strip() == "read by nobody; not yet by bob (on a device of bob)"
    assert run("read", "mark", "alice", "--profile", bob).stdout.strip() == "read alice up to #1"
    after = json.loads(run("read", "receipts", "bob", "1", "--profile", alice, "--json").stdout)
    assert (after["read"], after["unread"], after["delivered"]) == (["bob"], [], [])
    assert run("read", "unread", "--profile", bob).stdout.strip() == "nothing unread"
    missing = run("read", "mark", "carol", "--profile", bob)
    assert missing.returncode == 4, missing.stderr
