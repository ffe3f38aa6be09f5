"""The messaging stores' contract, written once and run on SQLite and on a real PostgreSQL server,
through `db.write` / `db.read` as the server uses them: 1:1 sends and their sequence, retries,
sync and history, groups and join points, read and delivered marks, recalls and edits; and, on
PostgreSQL, one conversation written by two server processes at once.

Every message is also archived (`archive.store.append_txn`, in the send's transaction), so the
archive's schema is applied too."""

import itertools
import random

import pytest
import trio

from corridor.protocol.errors import CorridorError
from corridor.server.features.accounts import MIGRATIONS as ACCOUNTS_MIGRATIONS
from corridor.server.features.accounts import store as accounts
from corridor.server.features.archive import MIGRATIONS as ARCHIVE_MIGRATIONS
from corridor.server.features.messaging import MIGRATIONS, group_store, read_store, store
from corridor.server.storage.migrations import apply_migrations
from corridor.server.storage.postgres import PostgresDatabase

from .pg import any_db_fixture, closed_later_fixture, pg_dsn_fixture, postgres_cluster_fixture, two_processes  # noqa: F401
from .test_store_database import in_one_batch

NOW = 1_700_000_000.25  # a fraction PostgreSQL's single-precision REAL would lose
SCHEMA = [*ACCOUNTS_MIGRATIONS, *ARCHIVE_MIGRATIONS, *MIGRATIONS]  # in the app's order


@pytest.fixture
async def db(any_db):
    """A started database with the accounts, archive and messaging schemas."""
    apply_migrations(any_db, SCHEMA)
    return any_db


async def add(db, username: str) -> int:
    """A new user's id."""
    return (await db.write(lambda c: accounts.create_user_txn(c, username, username.title(), "user", NOW))).id


def send(sender: int, recipient: int, msg_id: str, text: str, device: int = 1, now: float = NOW):
    """A write sending a 1:1 message as the server's `send` does."""
    return lambda c: store.send_direct_txn(
        c,
        sender_id=sender,
        sender_name=f"user{sender}",
        device_id=device,
        recipient_id=recipient,
        msg_id=msg_id,
        text=text,
        now=now,
    )


def post(group: int, sender: int, text: str, device: int = 1, msg_id: str | None = None, **fields):
    """A write sending into a group (or any conversation) as the server's `group_send` does."""
    return lambda c: store.append_message_txn(
        c,
        conversation=group,
        sender_id=sender,
        sender_name=f"user{sender}",
        device_id=device,
        recipient_id=None,
        msg_id=msg_id or f"{group}-{text}",
        text=text,
        now=NOW,
        **fields,
    )


async def archived_messages(db) -> int:
    return await db.read(lambda c: c.execute("SELECT count(*) FROM archive WHERE kind = 'message'").fetchone()[0])


async def test_direct_sends_are_numbered_and_a_retry_returns_the_original(db):
    with trio.fail_after(20):
        ann, bob = await add(db, "ann"), await add(db, "bob")
        first = await db.write(send(ann, bob, "m1", "hello", now=NOW))
        second = await db.write(send(bob, ann, "m1", "hi", device=2, now=NOW + 1))  # another device's msg_id space
        third = await db.write(send(ann, bob, "m3", "how are you?", now=NOW + 2))
        assert [first.seq, second.seq, third.seq] == [1, 2, 3]
        assert first.conversation == second.conversation == third.conversation
        assert (first.ts, first.text, first.duplicate) == (NOW, "hello", False)

        retry = await db.write(send(ann, bob, "m1", "hello again", now=NOW + 5))
        assert (retry.seq, retry.text, retry.ts, retry.duplicate) == (1, "hello", NOW, True)
        assert await db.read(lambda c: store.find_duplicate(c, 1, "m3")) == store.StoredMessage(
            first.conversation, 3, ann, bob, "m3", "how are you?", NOW + 2, duplicate=True
        )
        conversation = first.conversation
        assert await db.read(lambda c: store.direct_conversation(c, bob, ann)) == conversation
        assert await db.read(lambda c: store.conversation_exists(c, conversation)) is True
        assert await db.read(lambda c: store.conversations_of(c, [ann, bob, 999])) == {conversation}
        assert await db.read(lambda c: store.conversations_of(c, [])) == set()
        assert await archived_messages(db) == 3  # the retry archived nothing


async def test_a_retry_in_the_same_group_commit_as_its_original_gets_the_original(closed_later, nursery):
    """The retry check and the next seq are asked together (on PostgreSQL in one pipeline, with
    the original's INSERT not yet answered): the retry must still find the original, take no
    seq, and leave the next message gap-free, in a conversation its original just created."""
    db = closed_later
    apply_migrations(db, SCHEMA)
    ann = db.write_now(lambda c: accounts.create_user_txn(c, "ann", "Ann", "user", NOW)).id
    bob = db.write_now(lambda c: accounts.create_user_txn(c, "bob", "Bob", "user", NOW)).id
    with trio.fail_after(20):
        first, retry, second = await in_one_batch(
            db, nursery, [send(ann, bob, "m1", "hello"), send(ann, bob, "m1", "hello again"), send(bob, ann, "m2", "hi")]
        )
        assert (first.seq, first.duplicate) == (1, False)
        assert (retry.seq, retry.text, retry.duplicate) == (1, "hello", True)
        assert (second.seq, second.conversation) == (2, first.conversation)
        assert await db.read(lambda c: read_store.conversation_of(c, first.conversation, ann)) == ("direct", 2, 0)
        assert await archived_messages(db) == 2
    assert db.commits == 1


async def test_sync_and_history_read_after_a_seq(db):
    with trio.fail_after(20):
        ann, bob = await add(db, "ann"), await add(db, "bob")
        for i in range(1, 6):
            await db.write(send(ann, bob, f"m{i}", f"text {i}", now=NOW + i))
        conversation = await db.read(lambda c: store.direct_conversation(c, ann, bob))

        found, more, starts = await db.read(lambda c: store.messages_after(c, bob, {conversation: 2}, 10))
        assert ([m.seq for m in found], more, starts) == ([3, 4, 5], False, {})
        found, more, _ = await db.read(lambda c: store.messages_after(c, bob, {}, 2))
        assert ([m.seq for m in found], more) == ([1, 2], True)
        found, more, _ = await db.read(lambda c: store.messages_after(c, bob, {conversation: 5}, 10))
        assert (found, more) == ([], False)
        found, _, _ = await db.read(lambda c: store.messages_after(c, bob, {}, 10, only=frozenset({conversation + 1})))
        assert found == []

        history = await db.read(lambda c: store.history(c, conversation, None, None, 2))
        assert [(m.seq, m.text) for m in history] == [(4, "text 4"), (5, "text 5")]
        assert [m.seq for m in await db.read(lambda c: store.history(c, conversation, 4, None, 2))] == [2, 3]
        assert [m.seq for m in await db.read(lambda c: store.history(c, conversation, None, 1, 3))] == [2, 3, 4]
        assert [m.seq for m in await db.read(lambda c: store.history(c, conversation, None, 0, 10, floor=3))] == [4, 5]


async def test_groups_add_remove_and_leave_with_join_points(db):
    with trio.fail_after(20):
        ann, bob, cat, dan = [await add(db, name) for name in ("ann", "bob", "cat", "dan")]
        group, said = await db.write(
            lambda c: group_store.create_txn(
                c, name="Team", owner_id=ann, owner="ann", members={bob: "bob"}, welcome="Welcome!", now=NOW
            )
        )
        assert [(m.seq, m.kind, m.text) for m in said] == [(1, "system", "ann created the group 'Team' with bob")]
        await db.write(post(group, bob, "before cat"))

        found, role = await db.read(lambda c: group_store.group(c, group, ann))
        assert (found.name, found.owner_id, found.dissolved, role) == ("Team", ann, False, "owner")
        added = await db.write(
            lambda c: group_store.add_members_txn(c, found, by_id=ann, by="ann", members={cat: "cat"}, now=NOW)
        )
        assert [(m.seq, m.kind, m.text) for m in added] == [(3, "system", "ann added cat"), (4, "welcome", "Welcome!")]
        assert (
            await db.write(lambda c: group_store.add_members_txn(c, found, by_id=ann, by="ann", members={cat: "cat"}, now=NOW))
            == []
        )
        assert await db.read(lambda c: group_store.joined_seq(c, group, cat)) == 2  # sees from "added" on
        found_for_cat, more, starts = await db.read(lambda c: store.messages_after(c, cat, {}, 10))
        assert ([m.seq for m in found_for_cat], more, starts) == ([3, 4], False, {group: 2})
        assert await db.read(lambda c: group_store.joined_seq(c, group, dan)) == 2**62  # not a member

        await db.write(
            lambda c: group_store.set_role_txn(c, found, by_id=ann, by="ann", user_id=bob, user="bob", role="admin", now=NOW)
        )
        await db.write(
            lambda c: group_store.set_role_txn(c, found, by_id=ann, by="ann", user_id=bob, user="bob", role="admin", now=NOW)
        )
        assert await db.read(lambda c: group_store.admin_ids(c, group)) == [bob]  # made admin twice, listed once
        assert (await db.read(lambda c: group_store.group(c, group, bob)))[1] == "admin"

        removed = await db.write(
            lambda c: group_store.remove_members_txn(c, found, by_id=ann, by="ann", members={bob: "bob", dan: "dan"}, now=NOW)
        )
        assert [(m.seq, m.text) for m in removed] == [(7, "ann removed bob")]
        left = await db.write(
            lambda c: group_store.remove_members_txn(c, found, by_id=cat, by="cat", members={cat: "cat"}, now=NOW, left=True)
        )
        assert [(m.seq, m.text) for m in left] == [(8, "cat left")]
        assert await db.read(lambda c: group_store.member_ids(c, group)) == [ann]
        assert await db.read(lambda c: group_store.admin_ids(c, group)) == []
        with pytest.raises(CorridorError) as outside:
            await db.read(lambda c: group_store.group(c, group, bob))
        assert outside.value.code == "NO_SUCH_GROUP"
        assert await db.read(lambda c: group_store.my_groups(c, ann)) == [(group, "Team", 1, ann)]

        await db.write(lambda c: group_store.announce_txn(c, found, by_id=ann, by="ann", text="Ship it", now=NOW + 1))
        found, _ = await db.read(lambda c: group_store.group(c, group, ann))
        await db.write(lambda c: group_store.announcement_read_txn(c, found, ann))
        await db.write(lambda c: group_store.announcement_read_txn(c, found, ann))
        assert (found.announcement, found.announcement_ts, found.announcement_version) == ("Ship it", NOW + 1, 1)
        assert await db.read(lambda c: group_store.announcement_readers(c, found)) == [ann]

        await db.write(lambda c: group_store.dissolve_txn(c, found, by_id=ann, by="ann", now=NOW + 2))
        assert (await db.read(lambda c: group_store.group(c, group, ann)))[0].dissolved is True
        assert await db.read(lambda c: group_store.my_groups(c, ann)) == []


async def test_a_handover_passes_groups_to_the_successor(db):
    with trio.fail_after(20):
        ann, bob = await add(db, "ann"), await add(db, "bob")
        group, _ = await db.write(
            lambda c: group_store.create_txn(c, name="Ops", owner_id=ann, owner="ann", members={}, welcome="", now=NOW)
        )
        handed, said = await db.write(
            lambda c: group_store.handover_txn(c, user_id=ann, username="ann", successor_id=bob, successor="bob", now=NOW)
        )
        assert handed == [f"group #{group} 'Ops'"]
        assert [(m.seq, m.text) for m, _ in said] == [(2, "ann added bob"), (3, "bob now owns the group, handed over from ann")]
        assert (await db.read(lambda c: group_store.group(c, group, bob)))[1] == "owner"


async def test_read_and_delivered_marks_and_receipts(db):
    with trio.fail_after(20):
        ann, bob, cat = [await add(db, name) for name in ("ann", "bob", "cat")]
        for i in range(1, 4):
            stored = await db.write(send(ann, bob, f"m{i}", f"text {i}"))
        conversation = stored.conversation
        assert await db.read(lambda c: read_store.conversation_of(c, conversation, bob)) == ("direct", 3, 0)
        with pytest.raises(CorridorError) as outside:
            await db.read(lambda c: read_store.conversation_of(c, conversation, cat))
        assert outside.value.code == "NO_SUCH_CONVERSATION"

        assert await db.read(lambda c: read_store.unread(c, bob)) == [(conversation, 3, 3, 0)]
        assert await db.read(lambda c: read_store.unread(c, ann)) == [(conversation, 0, 3, 0)]  # her own
        assert await db.read(lambda c: read_store.receipts(c, conversation, ann, 2)) == ([], [bob], [])

        assert await db.write(lambda c: read_store.mark_delivered_txn(c, bob, conversation, 9)) == ("direct", 3)  # capped
        assert await db.write(lambda c: read_store.mark_delivered_txn(c, bob, conversation, 2)) is None  # no step back
        assert await db.write(lambda c: read_store.mark_delivered_txn(c, cat, conversation, 2)) is None  # not a member
        assert await db.read(lambda c: read_store.receipts(c, conversation, ann, 2)) == ([], [bob], [bob])

        assert await db.write(lambda c: read_store.mark_read_txn(c, bob, conversation, 2)) == 2
        assert await db.write(lambda c: read_store.mark_read_txn(c, bob, conversation, 1)) == 2  # never backwards
        assert await db.read(lambda c: read_store.unread(c, bob)) == [(conversation, 1, 3, 2)]
        assert await db.read(lambda c: read_store.receipts(c, conversation, ann, 2)) == ([bob], [], [])
        assert await db.read(lambda c: read_store.receipts(c, conversation, ann, 3)) == ([], [bob], [bob])
        assert await db.write(lambda c: read_store.mark_read_txn(c, bob, conversation, 99)) == 3  # capped
        assert await db.read(lambda c: read_store.unread(c, bob)) == []
        with pytest.raises(CorridorError):
            await db.write(lambda c: read_store.mark_read_txn(c, cat, conversation, 1))
        assert await db.read(lambda c: read_store.other_members(c, conversation, ann)) == [bob]


async def test_recall_and_edit_change_the_row_and_are_messages_themselves(db):
    with trio.fail_after(20):
        ann, bob = await add(db, "ann"), await add(db, "bob")
        first = await db.write(send(ann, bob, "m1", "helo"))
        second = await db.write(send(ann, bob, "m2", "secret"))
        conversation = first.conversation

        def change(target, kind, text, now):
            def txn(c):
                store.change_txn(c, target, kind=kind, text=text, now=now)
                return store.append_message_txn(
                    c,
                    conversation=conversation,
                    sender_id=ann,
                    sender_name="ann",
                    device_id=1,
                    recipient_id=bob,
                    msg_id=f"{kind}-{target.seq}",
                    text=text,
                    now=now,
                    kind=kind,
                    ref=target.seq,
                )

            return txn

        edit = await db.write(change(first, "edit", "hello", NOW + 1))
        assert (edit.seq, edit.kind, edit.ref) == (3, "edit", 1)
        edited = await db.read(lambda c: store.message(c, conversation, 1))
        assert (edited.text, edited.edited, edited.kind) == ("hello", NOW + 1, "text")

        recall = await db.write(change(second, "recall", "", NOW + 2))
        recalled = await db.read(lambda c: store.message(c, conversation, 2))
        assert (recalled.kind, recalled.text, recalled.edited) == ("recalled", "", 0)
        assert await db.read(lambda c: store.recall_of(c, conversation, 2)) == store.StoredMessage(
            conversation, recall.seq, ann, bob, "recall-2", "", NOW + 2, "recall", ref=2, duplicate=True
        )
        assert await db.read(lambda c: store.recall_of(c, conversation, 1)) is None

        await db.write(lambda c: store.erase_txn(c, conversation, 1))
        erased = await db.read(lambda c: store.message(c, conversation, 1))
        assert (erased.kind, erased.text) == ("purged", "")
        assert await db.read(lambda c: store.message(c, conversation, 99)) is None


@pytest.fixture
async def servers(pg_dsn, nursery):
    """Two databases on one PostgreSQL database, as two `serve` processes would have."""
    async with two_processes(pg_dsn, SCHEMA, nursery) as both:
        yield both


SENDS = 200


async def test_two_processes_sending_into_one_conversation_keep_it_gap_free_and_idempotent(servers):
    """200 sends, alternately through each process, every fifth also retried at once through the
    other one (a client reconnected elsewhere); both start before the conversation exists."""
    first, second = servers
    ann = (await first.write(lambda c: accounts.create_user_txn(c, "ann", "Ann", "user", NOW))).id
    bob = (await first.write(lambda c: accounts.create_user_txn(c, "bob", "Bob", "user", NOW))).id
    answers: dict[str, list[store.StoredMessage]] = {f"m{i}": [] for i in range(SENDS)}
    stored_by: dict[int, PostgresDatabase] = {}  # seq: the process that stored it
    jitter = random.Random(11)  # small random pauses, so the processes' transactions interleave

    async def one(db, i: int, pause: float) -> None:
        await trio.sleep(pause)
        answer = await db.write(send(ann, bob, f"m{i}", f"text {i}", device=1 + i % 3))
        answers[f"m{i}"].append(answer)
        if not answer.duplicate:
            stored_by[answer.seq] = db

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for i in range(SENDS):
                here, there = (first, second) if i % 2 else (second, first)
                pause = jitter.random() * 0.5
                nursery.start_soon(one, here, i, pause)
                if i % 5 == 0:  # the retry at the same moment, so the two race for the one message
                    nursery.start_soon(one, there, i, pause)

        rows = await first.read(lambda c: c.execute("SELECT seq, device_id, msg_id FROM messages ORDER BY seq").fetchall())
        assert [row[0] for row in rows] == list(range(1, SENDS + 1))  # gap-free, no seq twice
        assert sorted(row[2] for row in rows) == sorted(answers)  # each (device, msg_id) stored once
        for msg_id, got in answers.items():
            assert len({m.seq for m in got}) == 1, msg_id  # a retry got the original's seq
            assert [m.duplicate for m in got].count(False) == 1, msg_id  # and only one stored it
        assert sum(len(got) for got in answers.values()) == SENDS + SENDS // 5
        assert len({m.conversation for got in answers.values() for m in got}) == 1
        assert await archived_messages(first) == SENDS
        by_seq = [stored_by[seq] for seq in sorted(stored_by)]
        turns = sum(a is not b for a, b in itertools.pairwise(by_seq))
        assert turns >= 4, turns  # the processes' transactions really took turns in the conversation
        # No write ever met another process's: none failed, so no batch had to run again (a
        # batch that did would hide a conflict behind its second attempt).
        assert first.replays == second.replays == 0


async def test_two_processes_sending_into_different_conversations_never_deadlock(servers):
    """Each send locks its conversation's row and the archive's chain; with two processes
    writing into two conversations at once those locks must always be taken in one order."""
    first, second = servers
    ids = []
    for name in ("ann", "bob", "cy"):
        ids.append((await first.write(lambda c, n=name: accounts.create_user_txn(c, n, n.title(), "user", NOW))).id)
    ann, bob, cy = ids
    jitter = random.Random(7)
    failures: list[BaseException] = []

    async def one(db, i: int, pause: float) -> None:
        await trio.sleep(pause)
        try:
            await db.write(send(ann, bob if i % 2 else cy, f"d{i}", f"text {i}", device=1))
        except Exception as exc:  # a deadlock would surface here as a failed write
            failures.append(exc)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for i in range(400):
                nursery.start_soon(one, (first, second)[i % 3 % 2], i, jitter.random() * 0.5)
    assert failures == []
    rows = await first.read(
        lambda c: c.execute("SELECT conversation_id, seq FROM messages ORDER BY conversation_id, seq").fetchall()
    )
    for conversation in {row[0] for row in rows}:
        seqs = [seq for c, seq in rows if c == conversation]
        assert seqs == list(range(1, len(seqs) + 1))
    assert len(rows) == 400 and await archived_messages(first) == 400
    assert first.replays == second.replays == 0  # no conflict hidden behind a second attempt
