"""The archive store's contract, written once and run on SQLite and on a real PostgreSQL server,
through `db.write` / `db.read` as the server uses them: the hash chain, admin actions, signed
checkpoints, search (Chinese included), retention's erasing; and, on PostgreSQL, one chain
written by two server processes at once."""

import itertools

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric import ed25519

from corridor.server.features.accounts import MIGRATIONS as ACCOUNTS_MIGRATIONS
from corridor.server.features.accounts import store as accounts
from corridor.server.features.archive import MIGRATIONS, store
from corridor.server.features.archive.checkpoints import checkpoint_txn, checkpoints
from corridor.server.features.archive.indexer import catch_up
from corridor.server.features.archive.search import Selection, select
from corridor.server.features.archive.text import match_expression
from corridor.server.features.archive.verify import chain_status, verify_chain
from corridor.server.storage.migrations import apply_migrations

from .pg import any_db_fixture, closed_later_fixture, pg_dsn_fixture, postgres_cluster_fixture  # noqa: F401

NOW = 1_700_000_000.25  # a fraction PostgreSQL's single-precision REAL would lose


@pytest.fixture
async def db(any_db):
    """A started database with the accounts and archive schemas."""
    apply_migrations(any_db, [*ACCOUNTS_MIGRATIONS, *MIGRATIONS])
    return any_db


async def message(db, ts: float, sender: int, text: str, conversation: int = 7, recipient: int | None = None) -> int:
    """Archive one message as messaging does; returns its seq."""
    payload = {"sender": sender, "recipient": recipient, "text": text}
    return await db.write(
        lambda c: store.append_txn(c, ts=ts, actor=f"user{sender}", kind="message", conversation=conversation, payload=payload)
    )


async def found(db, query: str = "", hi: int = 2**62, limit: int = -1, **filters) -> list[int]:
    """The seqs a search selects (up to seq `hi`), newest first, after the index caught up."""
    await catch_up(db)
    sel = Selection(match=match_expression(query) if query else None, **filters)
    return [row[0] for row in await db.read(lambda c: select(c, sel, hi=hi, newest_first=True, limit=limit).fetchall())]


async def test_entries_chain_in_order_and_read_back(db):
    with trio.fail_after(10):
        first = await message(db, NOW, 1, "hello")
        admin = await db.write(lambda c: store.admin_action_txn(c, actor="root", now=NOW + 1, action="user_add", user="ann"))
        audit = await db.write(
            lambda c: store.append_txn(c, ts=NOW + 2, actor="audrey", kind="audit", conversation=None, payload={"n": 1})
        )
        assert (first, admin, audit) == (1, 2, 3)
        got = await db.read(store.entries)
        assert [(e.seq, e.ts, e.kind, e.conversation) for e in got] == [
            (1, NOW, "message", 7),
            (2, NOW + 1, "admin", None),
            (3, NOW + 2, "audit", None),
        ]
        assert got[0].payload == {"sender": 1, "recipient": None, "text": "hello"}
        assert got[1].payload == {"action": "user_add", "user": "ann"}
        assert [e.prev_hash for e in got[1:]] == [e.hash for e in got[:-1]]
        assert isinstance(got[0].hash, bytes) and len(got[0].hash) == 32
        assert [e.seq for e in await db.read(lambda c: store.entries(c, after=1, limit=1))] == [2]

        admins, more = await db.read(lambda c: store.entries_of_kind(c, "admin", 0, 10))
        assert [e.seq for e in admins] == [2] and more is False
        assert await db.read(lambda c: store.entries_of_kind(c, "admin", 0, 10, actor="other")) == ([], False)
        await db.write(lambda c: store.admin_action_txn(c, actor="root", now=NOW + 3, action="user_deactivate", user="ann"))
        page, more = await db.read(lambda c: store.entries_of_kind(c, "admin", 0, 1, actor="root"))
        assert [e.seq for e in page] == [2] and more is True
        assert await db.read(store.head_seq) == 4
        assert await db.read(lambda c: store.messages_since(c, NOW)) == 1
        assert (await db.read(verify_chain)).verified == 4


async def test_the_archive_refuses_changes_but_an_erased_payload_keeps_the_chain(db):
    with trio.fail_after(10):
        await db.write(lambda c: accounts.create_user_txn(c, "user1", "One", "user", NOW))
        await message(db, NOW, 1, "请把合同发我")
        await db.write(lambda c: store.admin_action_txn(c, actor="root", now=NOW, action="policy_set"))
        await catch_up(db)
        expiring, after = await db.read(lambda c: store.expiring(c, 0, NOW + 1, 10))
        assert [(e.seq, e.people) for e in expiring] == [(1, frozenset({1}))] and after is None

        await db.write(lambda c: store.erase_txn(c, 1, NOW + 5))
        assert (await db.read(store.entries))[0].payload is None
        assert await found(db, "合同") == []
        assert await db.read(lambda c: store.expiring(c, 0, NOW + 1, 10)) == ([], None)
        assert (await db.read(verify_chain)).intact

        for change in (
            "UPDATE archive SET actor = 'mallory' WHERE seq = 2",
            "UPDATE archive SET payload = NULL, purged_at = 1 WHERE seq = 2",  # admin actions are never erased
            "DELETE FROM archive WHERE seq = 2",
        ):
            with pytest.raises(Exception, match="append-only"):
                await db.write(lambda c, change=change: c.execute(change))
        assert (await db.read(verify_chain)).verified == 2  # every refused change rolled back


async def test_checkpoints_sign_the_head_and_the_verifier_checks_them(db):
    key, other = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    with trio.fail_after(10):
        assert await db.write(lambda c: checkpoint_txn(c, key, NOW)) is None  # nothing to sign yet
        await message(db, NOW, 1, "one")
        await message(db, NOW, 1, "two")
        assert await db.write(lambda c: checkpoint_txn(c, key, NOW + 1)) == 2
        assert await db.write(lambda c: checkpoint_txn(c, key, NOW + 2)) is None  # the head is signed
        [(seq, digest, ts, _)] = await db.read(checkpoints)
        assert (seq, ts) == (2, NOW + 1) and digest == (await db.read(store.entries))[1].hash

        verdict = await db.read(lambda c: verify_chain(c, key.public_key()))
        assert (verdict.intact, verdict.verified, verdict.checkpoints) == (True, 2, 1)
        forged = await db.read(lambda c: verify_chain(c, other.public_key()))
        assert forged.broken == 2 and "bad signature" in forged.reason
        status = await db.read(lambda c: chain_status(c, key.public_key(), walk=True))
        assert (status.head, status.checkpoint, status.signature_holds, status.verdict.intact) == (2, (2, NOW + 1), True, True)
        with pytest.raises(Exception, match="append-only"):
            await db.write(lambda c: c.execute("DELETE FROM archive_checkpoints"))


async def test_search_finds_chinese_words_and_phrases_newest_first(db):
    with trio.fail_after(10):
        for name in ("user1", "user2"):
            await db.write(lambda c, name=name: accounts.create_user_txn(c, name, name, "user", NOW))
        texts = [
            (1, "请把合同发我", 7, None),
            (2, "合同第三条要改", 8, 1),
            (1, "Sent you the 合同 just now", 7, None),
            (2, "合 and 同 apart", 7, None),
            (1, "Café opens at nine", 9, None),
            (2, "concatenate the cats", 9, None),
        ]
        for i, (sender, text, conversation, recipient) in enumerate(texts):
            await message(db, NOW + i, sender, text, conversation, recipient)
        await db.write(lambda c: store.admin_action_txn(c, actor="root", now=NOW, action="合同"))  # not content

        assert await found(db, "合同") == [3, 2, 1]
        assert await found(db, '"the 合同"') == [3]
        assert await found(db, "合同 sent") == [3]
        assert await found(db, "CAFE") == [5]  # case and diacritics folded
        assert await found(db, "cat") == []  # whole words: not inside "concatenate" or "cats"
        assert await found(db, "cat*") == [6]
        assert await found(db, "nine*") == [5]
        assert await found(db, "合同", participant=1) == [3, 2, 1]  # user 1 sent two, received one
        assert await found(db, "合同", participant=2) == [2]
        assert await found(db, "合同", conversation=7) == [3, 1]
        assert await found(db, "合同", since=NOW + 1, until=NOW + 2) == [3, 2]
        assert await found(db, "合同", hi=2, limit=1) == [2]  # the next page
        assert await found(db, conversation=9) == [6, 5]
        assert await found(db, participant=2, limit=2) == [6, 4]


async def test_writes_appending_in_one_batch_chain_in_turn_even_when_one_fails(db):
    """Many appends share each group commit (PostgreSQL reads the head once a batch); a write
    that fails after appending takes its entry with it, and the chain stays whole."""

    def append(i):
        def txn(c):
            seq = store.append_txn(c, ts=NOW + i, actor="user1", kind="message", conversation=7, payload={"text": f"e{i}"})
            if i % 5 == 4:
                raise ValueError("changed my mind")
            return seq

        return txn

    outcomes = {}

    async def write(i):
        try:
            outcomes[i] = await db.write(append(i))
        except ValueError:
            outcomes[i] = None

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for i in range(40):
                nursery.start_soon(write, i)
        got = await db.read(store.entries)
    assert sorted(seq for seq in outcomes.values() if seq is not None) == list(range(1, 33))
    assert {e.seq: e.payload["text"] for e in got} == {seq: f"e{i}" for i, seq in outcomes.items() if seq is not None}
    assert (await db.read(verify_chain)).verified == 32
    assert db.commits < 40


async def test_two_processes_append_to_one_chain(pg_dsn):
    """Two PostgresDatabase instances (as two server processes) on one database append 300
    entries at once: one chain, seqs 1..300, each linking to the one before, and it verifies."""
    from corridor.server.storage.postgres import PostgresDatabase

    dbs = [PostgresDatabase(pg_dsn), PostgresDatabase(pg_dsn)]
    apply_migrations(dbs[0], [*ACCOUNTS_MIGRATIONS, *MIGRATIONS])
    try:
        with trio.fail_after(60):
            async with trio.open_nursery() as committers:
                for db in dbs:
                    await committers.start(db.run_committer)

                async def writer(db, n: int, task: int) -> None:
                    for i in range(n):
                        await message(db, NOW + i, task, f"entry {task}.{i}")

                async with trio.open_nursery() as writers:
                    for task in range(10):
                        writers.start_soon(writer, dbs[task % 2], 30, task)
                # Both indexers catch up at once too: neither may index an entry twice.
                async with trio.open_nursery() as indexers:
                    for db in dbs:
                        indexers.start_soon(catch_up, db)
                committers.cancel_scope.cancel()
        got = dbs[1].write_now(lambda c: store.entries(c, limit=1000))
        assert [e.seq for e in got] == list(range(1, 301))
        assert all(e.prev_hash == before.hash for before, e in itertools.pairwise(got))
        # Even writer tasks wrote through the first process, odd ones through the second.
        assert sum((a.actor[-1] in "02468") != (b.actor[-1] in "02468") for a, b in itertools.pairwise(got)) > 1
        assert sorted(e.payload["text"] for e in got) == sorted(f"entry {t}.{i}" for t in range(10) for i in range(30))
        assert dbs[1].write_now(verify_chain).verified == 300
        assert dbs[0].write_now(lambda c: c.execute("SELECT count(*) FROM archive_text").fetchone()[0]) == 300
        assert [db.replays for db in dbs] == [0, 0]  # no conflict hidden behind a second attempt
    finally:
        for db in dbs:
            db.close()
