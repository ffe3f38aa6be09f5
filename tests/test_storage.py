"""Storage promises on real SQLite files: group commit, isolated failures, migrations, archive chain."""

import sqlite3
import threading

import msgpack
import pytest
import trio

from corridor.protocol.errors import ServerUnavailable
from corridor.server.app import MIGRATIONS, open_database
from corridor.server.config import load_config
from corridor.server.features.archive.store import append_txn
from corridor.server.features.archive.verify import verify_chain
from corridor.server.storage.database import Database
from corridor.server.storage.migrations import Migration, SchemaError, apply_migrations


@pytest.fixture
async def db(tmp_path, nursery):
    database = Database(tmp_path / "t.sqlite")
    database.write_now(lambda c: c.execute("CREATE TABLE t (v INTEGER UNIQUE)"))
    await nursery.start(database.run_committer)
    yield database


async def test_concurrent_writes_share_commits(db):
    async with trio.open_nursery() as nursery:
        for i in range(200):
            nursery.start_soon(db.write, lambda c, i=i: c.execute("INSERT INTO t VALUES (?)", (i,)))
    assert await db.read(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 200
    assert db.writes == 200 and db.commits < 50  # one fsync covered many writes


async def test_one_failing_write_does_not_fail_its_batch(db):
    results = {}

    async def write(name, value):
        try:
            await db.write(lambda c: c.execute("INSERT INTO t VALUES (?)", (value,)))
            results[name] = "ok"
        except sqlite3.IntegrityError:
            results[name] = "failed"

    async with trio.open_nursery() as nursery:
        for name, value in [("a", 1), ("dup", 1), ("b", 2)]:
            nursery.start_soon(write, name, value)
    assert sorted(results.values()) == ["failed", "ok", "ok"]
    assert await db.read(lambda c: [r[0] for r in c.execute("SELECT v FROM t ORDER BY v")]) == [1, 2]


async def test_after_commit_callbacks_run_in_commit_order(db):
    order = []
    async with trio.open_nursery() as nursery:
        for i in range(50):
            nursery.start_soon(
                lambda i=i: db.write(lambda c: c.execute("INSERT INTO t VALUES (?)", (i,)).lastrowid, order.append)
            )
    rowids = await db.read(lambda c: [r[0] for r in c.execute("SELECT rowid FROM t ORDER BY rowid")])
    assert order == rowids


def test_migrations_apply_once_and_refuse_a_newer_database(data_dir):
    config = load_config(data_dir)
    db = open_database(config)
    assert apply_migrations(db, MIGRATIONS) == []  # init applied them all already
    db.write_now(lambda c: c.execute("INSERT INTO schema_migrations VALUES ('future.0001_x', 0)"))
    db.close()
    with pytest.raises(SchemaError, match="newer Corridor"):
        open_database(config)


def test_failed_migration_leaves_no_trace(tmp_path):
    db = Database(tmp_path / "m.sqlite")
    broken = Migration("x.0001", "CREATE TABLE a (v INTEGER);\nINSERT INTO nowhere VALUES (1);\n")
    with pytest.raises(sqlite3.OperationalError):
        apply_migrations(db, [broken])
    tables = db.write_now(lambda c: [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")])
    assert "a" not in tables
    assert db.write_now(lambda c: c.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]) == 0
    db.close()


def test_archive_is_append_only_and_tampering_is_found(data_dir):
    config = load_config(data_dir)
    db = open_database(config)
    for i in range(5):
        db.write_now(
            lambda c, i=i: append_txn(c, ts=float(i), actor="alice", kind="message", conversation=1, payload={"text": f"t{i}"})
        )
    assert db.write_now(verify_chain).intact
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.write_now(lambda c: c.execute("UPDATE archive SET actor = 'mallory' WHERE seq = 3"))
    db.close()
    # Someone with the sqlite3 tool drops the trigger and edits one entry.
    conn = sqlite3.connect(config.database_path)
    conn.execute("DROP TRIGGER archive_no_update")
    conn.execute("UPDATE archive SET payload = ? WHERE seq = 4", (msgpack.packb({"text": "forged"}),))
    conn.commit()
    assert verify_chain(conn).broken == 4
    conn.execute("DROP TRIGGER archive_no_delete")
    conn.execute("DELETE FROM archive WHERE seq = 2")
    conn.commit()
    assert verify_chain(conn).broken == 2
    conn.close()


def test_a_format_1_archive_is_rechained_as_format_2_and_indexed(tmp_path):
    """Development builds hashed the payload bytes themselves (format 1); the migration rewrites
    such a chain as format 2 and indexes it for search, keeping every entry's contents."""
    import hashlib

    from corridor.server.features.archive.search import Selection, select
    from corridor.server.features.archive.text import match_expression

    names = [m.name for m in MIGRATIONS]
    db = Database(tmp_path / "old.sqlite")
    apply_migrations(db, MIGRATIONS[: names.index("archive.0003_checkpoints") + 1])
    prev = bytes(32)

    def write_format_1(conn):
        nonlocal prev
        conn.execute(
            "INSERT INTO users (id, username, display_name, role, password_hash, created_at) VALUES (1, 'alice', 'A', 'user', '', 0)"
        )
        for seq, text in enumerate(["请把合同发我", "hello"], start=1):
            payload = msgpack.packb({"seq": seq, "sender": 1, "recipient": None, "text": text}, use_bin_type=True)
            digest = hashlib.sha256(
                msgpack.packb([seq, 1.0 * seq, "alice", "message", 7, payload, prev], use_bin_type=True)
            ).digest()
            conn.execute(
                "INSERT INTO archive VALUES (?, ?, 'alice', 'message', 7, ?, ?, ?)", (seq, 1.0 * seq, payload, prev, digest)
            )
            prev = digest
        conn.execute("INSERT INTO archive_checkpoints VALUES (2, ?, 3.0, ?)", (prev, bytes(64)))

    db.write_now(write_format_1)
    assert "archive.0004_format_2" in apply_migrations(db, MIGRATIONS)
    assert db.write_now(verify_chain).verified == 2
    assert db.write_now(lambda c: c.execute("SELECT count(*) FROM archive_checkpoints").fetchone()[0]) == 0
    hits = db.write_now(lambda c: select(c, Selection(match=match_expression("合同")), newest_first=True).fetchall())
    assert [h[0] for h in hits] == [1]
    db.close()


async def _stop_during_a_read(tmp_path, then_write) -> list[str]:
    """A chore reads (in a worker thread) and then writes; the committer and the chore are
    cancelled together while the read is still running, as when the server stops. Returns what
    the chore's write came to."""
    database = Database(tmp_path / "stop.sqlite")
    database.write_now(lambda c: c.execute("CREATE TABLE t (v INTEGER)"))
    reading, release = threading.Event(), threading.Event()
    outcome: list[str] = []

    def slow_read(conn):
        reading.set()
        release.wait(10)
        return conn.execute("SELECT count(*) FROM t").fetchone()[0]

    async def chore():
        await database.read(slow_read)  # a worker thread is not abandoned: this returns after the cancel
        try:
            await then_write(database)
            outcome.append("stored")
        except trio.Cancelled:
            outcome.append("cancelled")
            raise
        except ServerUnavailable as exc:
            outcome.append(exc.code)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(database.run_committer)
            nursery.start_soon(chore)
            while not reading.is_set():
                await trio.sleep(0.01)
            threading.Timer(0.3, release.set).start()  # the read ends after the committer's last round
            nursery.cancel_scope.cancel()
    database.close()
    with sqlite3.connect(tmp_path / "stop.sqlite") as check:
        assert check.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    return outcome


@pytest.mark.timeout(60)  # before the fix the chore waited for a commit forever
async def test_a_chore_cancelled_during_its_read_does_not_wait_forever_for_its_write(tmp_path):
    """Found as a hang of the server's shutdown (and of a test's teardown): the archive indexer's
    write, queued after the committer had made its last commit."""

    async def write(database):
        await database.write(lambda c: c.execute("INSERT INTO t VALUES (1)"))

    assert await _stop_during_a_read(tmp_path, write) == ["cancelled"]


@pytest.mark.timeout(60)
async def test_a_shielded_write_after_the_committer_stopped_is_refused(tmp_path):
    async def write(database):
        with trio.CancelScope(shield=True):
            await database.write(lambda c: c.execute("INSERT INTO t VALUES (1)"))

    assert await _stop_during_a_read(tmp_path, write) == ["SHUTTING_DOWN"]
