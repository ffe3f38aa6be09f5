"""What only PostgreSQL has: several server processes writing to one database, the connection
adapter's placeholders, and a connection the server dropped."""

import psycopg
import pytest
import trio

from corridor.protocol.errors import CorridorError
from corridor.server.features.accounts import MIGRATIONS, store
from corridor.server.storage.postgres import placeholders

from .pg import pg_dsn_fixture, postgres_cluster_fixture, two_processes  # noqa: F401


@pytest.fixture
async def servers(pg_dsn, nursery):
    """Two databases on one PostgreSQL database, as two `serve` processes would have."""
    async with two_processes(pg_dsn, MIGRATIONS, nursery) as both:
        yield both


async def test_two_writers_taking_one_username_one_wins_and_the_other_is_told(servers):
    first, second = servers
    for round_ in range(20):
        outcomes = {}

        async def create(db, name, username=f"ann{round_}", outcomes=outcomes):
            try:
                user = await db.write(lambda c: store.create_user_txn(c, username, name, "user", 1.0))
                # In the same batch as the racing insert: a failure there must not undo it.
                outcomes[name] = user.id
            except CorridorError as exc:
                outcomes[name] = exc.code

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(create, first, "first")
                nursery.start_soon(create, second, "second")
                nursery.start_soon(first.write, lambda c, r=round_: store.create_user_txn(c, f"bob{r}", "Bob", "user", 1.0))
        assert sorted(map(type, outcomes.values()), key=str) == [int, str], outcomes
        assert "ALREADY_EXISTS" in outcomes.values()
    users = await first.read(store.all_users)
    assert sorted(u.username for u in users) == sorted([f"ann{r}" for r in range(20)] + [f"bob{r}" for r in range(20)])
    assert len({u.display_name for u in users if u.username.startswith("ann")}) <= 2  # whole rows, never a mix


async def test_concurrent_writers_each_get_every_write_committed(servers):
    first, second = servers
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for i in range(100):
                db = first if i % 2 else second
                nursery.start_soon(db.write, lambda c, i=i: store.create_user_txn(c, f"u{i}", "U", "user", 1.0))
    assert len(await second.read(store.all_users)) == 100
    assert first.commits + second.commits < 100  # both still group their commits


def test_placeholders_become_psycopg_s_and_quoted_text_stays():
    assert placeholders("SELECT ? , '?' FROM t WHERE a = ?") == "SELECT %s , '?' FROM t WHERE a = %s"
    assert placeholders("SELECT x FROM t WHERE n LIKE 'a%' AND m = ?") == "SELECT x FROM t WHERE n LIKE 'a%%' AND m = %s"
    assert placeholders("""SELECT "a?b", 'it''s ?' , ?""") == """SELECT "a?b", 'it''s ?' , %s"""


async def test_a_literal_percent_and_executemany_work_through_the_adapter(servers):
    db = servers[0]
    with trio.fail_after(10):
        rows = [(f"u{i}", "U", "user", 1.0) for i in range(3)]
        await db.write(
            lambda c: c.executemany("INSERT INTO users (username, display_name, role, created_at) VALUES (?, ?, ?, ?)", rows)
        )
        assert (
            await db.read(
                lambda c: c.execute("SELECT count(*) FROM users WHERE username LIKE 'u%' AND role = ?", ("user",)).fetchone()[0]
            )
            == 3
        )


def database_of(dsn: str) -> str:
    return dict(item.split("=", 1) for item in dsn.split())["dbname"]


async def drop_sessions(cluster: str, database: str, *, refuse: bool = False) -> None:
    """End every session of one database, as a PostgreSQL restart or failover does (`refuse`:
    and take no new ones until `allow_sessions`, as while it is down)."""
    sessions = f"FROM pg_stat_activity WHERE datname = '{database}'"
    with psycopg.connect(cluster, autocommit=True) as admin:
        if refuse:
            admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
        admin.execute(f"SELECT pg_terminate_backend(pid) {sessions}")
        while admin.execute(f"SELECT count(*) {sessions}").fetchone()[0]:  # termination is asynchronous
            await trio.sleep(0.01)


def allow_sessions(cluster: str, database: str) -> None:
    with psycopg.connect(cluster, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")


async def test_sessions_postgresql_dropped_are_replaced_without_failing_anything(servers, pg_dsn, postgres_cluster):
    db = servers[0]
    with trio.fail_after(20):
        await db.write(lambda c: store.create_user_txn(c, "ann", "Ann", "user", 1.0))
        await drop_sessions(postgres_cluster, database_of(pg_dsn))
        await db.write(lambda c: store.create_user_txn(c, "bob", "Bob", "user", 1.0))
        assert [u.username for u in await db.read(store.all_users)] == ["ann", "bob"]


async def test_while_postgresql_is_down_requests_fail_typed_and_retryable_then_work_again(servers, pg_dsn, postgres_cluster):
    db, database = servers[0], database_of(pg_dsn)
    with trio.fail_after(20):
        await drop_sessions(postgres_cluster, database, refuse=True)
        try:
            for attempt in (db.write(lambda c: store.create_user_txn(c, "bob", "Bob", "user", 1.0)), db.read(store.all_users)):
                with pytest.raises(CorridorError) as refused:
                    await attempt
                assert refused.value.code == "STORAGE_UNAVAILABLE"
        finally:
            allow_sessions(postgres_cluster, database)
        await db.write(lambda c: store.create_user_txn(c, "bob", "Bob", "user", 1.0))
        assert [u.username for u in await db.read(store.all_users)] == ["bob"]
