"""The Database contract, written once and run on SQLite and on a real PostgreSQL server:
group commit, a failing write fails only its caller (on PostgreSQL by running its batch again),
after-commit order, reads, shutdown and the migrations ledger."""

import sqlite3

import psycopg
import pytest
import trio
import trio.testing

from corridor.protocol.errors import ServerUnavailable
from corridor.server.storage.migrations import Migration, SchemaError, apply_migrations
from corridor.server.storage.sql import each, listed

from .pg import any_db_fixture, closed_later_fixture, pg_dsn_fixture, postgres_cluster_fixture  # noqa: F401

TABLE = Migration("test.0001", "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER UNIQUE);")


def insert(value: int):
    """A write inserting `value`; returns its id."""
    return lambda c: c.execute("INSERT INTO t (id, v) VALUES (?, ?) RETURNING id", (value, value)).fetchone()[0]


async def values(db) -> list[int]:
    return await db.read(lambda c: [row[0] for row in c.execute("SELECT v FROM t ORDER BY v")])


@pytest.fixture
async def db(any_db):
    apply_migrations(any_db, [TABLE])
    return any_db


async def test_concurrent_writes_share_commits(db):
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(db.write, insert(i))
        assert await values(db) == list(range(200))
    assert db.writes == 200 and db.commits < 50  # one commit covered many writes


async def test_one_failing_write_fails_only_its_caller(db):
    results = {}

    async def write(name, value):
        try:
            results[name] = await db.write(insert(value))
        except sqlite3.IntegrityError:
            results[name] = "failed"

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for name, value in [("a", 1), ("dup", 1), ("b", 2), ("c", 3)]:
                nursery.start_soon(write, name, value)
        assert sorted(map(str, results.values())) == ["1", "2", "3", "failed"]
        assert await values(db) == [1, 2, 3]
        assert db.commits == 1  # the failure rolled back its savepoint, not the batch


async def in_one_batch(db, nursery, writes) -> list:
    """Run `writes` in one group commit, in this order (queued before the committer starts);
    each one's result, or its exception."""
    outcomes: list = [None] * len(writes)

    async def one(i, fn):
        try:
            outcomes[i] = await db.write(fn)
        except Exception as exc:
            outcomes[i] = exc

    async with trio.open_nursery() as writers:
        for i, fn in enumerate(writes):
            writers.start_soon(one, i, fn)
            await trio.testing.wait_all_tasks_blocked()  # queued before the next one starts
        await nursery.start(db.run_committer)
    return outcomes


def bump(c) -> int:
    """A write that adds one to the counter (row 0) and returns it."""
    return c.execute("UPDATE t SET v = v + 1 WHERE id = 0 RETURNING v").fetchone()[0]


async def test_a_failed_write_leaves_each_other_write_of_its_batch_done_once(closed_later, nursery):
    """PostgreSQL runs a batch without savepoints and, when a write fails, runs it all again
    with one a write: what the first attempt did must not stay, nor count twice."""
    db = closed_later
    apply_migrations(db, [TABLE])
    db.write_now(lambda c: c.execute("INSERT INTO t (id, v) VALUES (0, 100)"))
    clash = lambda c: c.execute("INSERT INTO t (id, v) VALUES (0, 0)")  # noqa: E731 (row 0 exists)
    with trio.fail_after(10):
        first, failed, second = await in_one_batch(db, nursery, [bump, clash, bump])
        assert (first, second) == (101, 102) and isinstance(failed, sqlite3.IntegrityError)
        assert await values(db) == [102]
    assert db.commits == 1


async def test_a_write_learns_how_many_rows_it_changed_in_the_middle_of_a_batch(closed_later, nursery):
    """PostgreSQL sends a batch's statements without waiting for each answer (pipeline mode):
    `rowcount`, which stores decide on, must still be the statement's own."""
    db = closed_later
    apply_migrations(db, [TABLE])

    def delete(value):
        return lambda c: c.execute("DELETE FROM t WHERE v = ?", (value,)).rowcount

    with trio.fail_after(10):
        assert await in_one_batch(db, nursery, [insert(1), delete(1), delete(1), insert(2)]) == [1, 1, 0, 2]
        assert await values(db) == [2]


async def test_a_write_that_hides_a_failed_statement_cannot_undo_its_batch(closed_later, nursery):
    """A store must not catch a failed statement and carry on (docs/architecture.md): on
    PostgreSQL the transaction is then aborted. Even last in its batch, where nothing after it
    would notice, that must fail the write alone, not roll back the batch behind every
    caller's back. On SQLite only the statement failed, and the write may go on."""
    db = closed_later
    apply_migrations(db, [TABLE])

    def hide(c):
        try:
            insert(1)(c)
        except sqlite3.IntegrityError:
            return "hidden"

    with trio.fail_after(10):
        done, hidden = await in_one_batch(db, nursery, [insert(1), hide])
        assert done == 1
        if db.dialect == "postgresql":
            assert isinstance(hidden, psycopg.errors.InFailedSqlTransaction)
        else:
            assert hidden == "hidden"
        assert await values(db) == [1]


async def test_an_exception_in_a_write_reaches_its_caller_and_undoes_it(db):
    def half_then_fail(c):
        c.execute("INSERT INTO t (id, v) VALUES (?, ?)", (7, 7))
        raise ValueError("changed my mind")

    with trio.fail_after(10):
        with pytest.raises(ValueError, match="changed my mind"):
            await db.write(half_then_fail)
        assert await values(db) == []


async def test_after_commit_callbacks_run_in_queue_order_before_waiters_wake(db):
    ran, order, missing_on_waking = [], [], []

    def write_fn(i):
        def fn(c):
            ran.append(i)  # the committer runs the queue in order
            return insert(i)(c)

        return fn

    async def write(i):
        await db.write(write_fn(i), order.append)
        if i not in order:
            missing_on_waking.append(i)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(write, i)
    assert order == ran and sorted(order) == list(range(50))
    assert missing_on_waking == []


async def test_a_failed_write_runs_no_after_commit(db):
    called = []
    with trio.fail_after(10):
        await db.write(insert(1))
        with pytest.raises(sqlite3.IntegrityError):
            await db.write(insert(1), called.append)
    assert called == []


async def test_reads_see_committed_writes_and_write_now_works_before_the_committer(closed_later):
    db = closed_later
    apply_migrations(db, [TABLE])
    assert db.write_now(insert(5)) == 5
    with pytest.raises(sqlite3.IntegrityError):
        db.write_now(insert(5))
    assert db.write_now(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 1
    with trio.fail_after(10):
        assert await values(db) == [5]


async def test_writes_after_the_committer_stopped_are_refused(closed_later):
    db = closed_later
    apply_migrations(db, [TABLE])
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(db.run_committer)
            await db.write(insert(1))
            nursery.cancel_scope.cancel()
        with pytest.raises(ServerUnavailable) as refused:
            await db.write(insert(2))
    assert refused.value.code == "SHUTTING_DOWN"
    assert await values(db) == [1]


async def test_a_cancelled_caller_is_not_queued(db):
    with trio.fail_after(10):
        with trio.CancelScope() as scope:
            scope.cancel()
            await db.write(insert(1))
        await db.write(insert(2))
    assert await values(db) == [2]


def test_the_ledger_applies_once_and_refuses_a_newer_database(closed_later):
    db = closed_later
    assert apply_migrations(db, [TABLE]) == ["test.0001"]
    assert apply_migrations(db, [TABLE]) == []
    newer = Migration("test.0002", "CREATE TABLE u (x INTEGER);")
    assert apply_migrations(db, [TABLE, newer]) == ["test.0002"]
    with pytest.raises(SchemaError, match=r"newer Corridor \(unknown migrations: test.0002\)"):
        apply_migrations(db, [TABLE])


def test_a_failed_migration_leaves_no_trace(closed_later):
    db = closed_later
    broken = Migration("test.0002", "CREATE TABLE u (x INTEGER); INSERT INTO nowhere VALUES (1);")
    with pytest.raises((sqlite3.Error, psycopg.Error)):
        apply_migrations(db, [TABLE, broken])
    assert db.write_now(lambda c: [row[0] for row in c.execute("SELECT name FROM schema_migrations")]) == ["test.0001"]
    fixed = Migration("test.0002", "CREATE TABLE u (x INTEGER);")
    assert apply_migrations(db, [TABLE, fixed]) == ["test.0002"]  # u was never created


def test_a_migration_runs_its_postgresql_script_there(closed_later):
    db = closed_later
    typed = Migration(
        "test.0001",
        "CREATE TABLE blobs (b BLOB NOT NULL);",
        postgresql="CREATE TABLE blobs (b BYTEA NOT NULL)",
    )
    apply_migrations(db, [typed])
    db.write_now(lambda c: c.execute("INSERT INTO blobs (b) VALUES (?)", (b"\x00\xff",)))
    assert db.write_now(lambda c: c.execute("SELECT b FROM blobs").fetchone()[0]) == b"\x00\xff"


async def test_a_list_parameter_expands_the_same_way_on_both_engines(db):
    for value in (1, 2, 3, 5):
        await db.write(insert(value))

    def pick(conn, wanted):
        query = f"SELECT v FROM t WHERE v IN ({each(conn)}) ORDER BY v"
        return [row[0] for row in conn.execute(query, (listed(conn, wanted),))]

    assert await db.read(lambda c: pick(c, [5, 2, 9])) == [2, 5]
    assert await db.read(lambda c: pick(c, [])) == []
    names = await db.read(
        lambda c: [r[0] for r in c.execute(f"SELECT value FROM ({each(c, 'text')}) AS e", (listed(c, ["王丽", "bob"]),))]
    )
    assert sorted(names) == ["bob", "王丽"]
