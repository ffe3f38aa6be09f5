"""PostgreSQL with one writer and group commit: the same contract as SQLite's `Database`.

How it works: the queue, the committer loop and its shutdown are `GroupCommit`'s, shared with
SQLite. What differs is where the SQL runs. Every statement is a round trip to the server (and
may wait for another process's row lock), so the whole batch — `BEGIN`, each write in its own
`SAVEPOINT`, `COMMIT` — runs in one worker thread while the event loop serves the network;
SQLite runs the statements on the loop because each takes microseconds. Reads run in worker
threads on a few connections in autocommit mode, one snapshot a statement, as SQLite's do.

Why threads and psycopg's sync API: psycopg's async connections need asyncio's loop and trio
has none (trio-asyncio would put a second event loop under every query). A sync connection
used by one thread at a time is what psycopg is built for, and a worker thread is how trio
runs blocking calls (`trio.to_thread.run_sync`). The write functions therefore run in a thread
here: like every `*_txn` function they must touch only their connection and arguments, and
leave shared state to `after_commit`, which runs on the loop.

Several server processes may write to one database. A transaction here is READ COMMITTED, so
writers meet at rows, not at a database-wide lock as in SQLite: a unique key taken by another
process's uncommitted insert makes ours wait for its COMMIT and then fail with IntegrityError,
in its SAVEPOINT only. A store that needs more (a gap-free sequence, the archive chain) locks
the row or table it extends inside its write.

The stores are written against sqlite3's connection (`?` placeholders, `execute`, cursors to
fetch from or iterate); `Connection` offers those calls on a psycopg connection.
"""

from __future__ import annotations

import functools
import logging
import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import psycopg
import trio
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus

from corridor.protocol.errors import make_error

from .database import GroupCommit, _Write

log = logging.getLogger("corridor.storage")

# The advisory lock every writing transaction takes first (any constant no other lock in the
# database uses: "corrwrit" in ASCII).
WRITER_LOCK = 0x636F_7272_7772_6974


class DatabaseUnreachable(ConnectionError):
    """PostgreSQL refused or could not take the connection at start-up (an OSError, so the
    command-line tools report it as they report any unreachable service)."""


class IntegrityError(sqlite3.IntegrityError, psycopg.IntegrityError):
    """A constraint violation on PostgreSQL. It is also sqlite3's IntegrityError, so a store
    catches one class (`except sqlite3.IntegrityError`) whichever engine it runs on, and also
    psycopg's, so the committer treats it like any PostgreSQL error."""


# A quoted string or name (where `?` is text), a `?` placeholder, or a `%`.
_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?|%")


@functools.cache
def placeholders(sql: str) -> str:
    """sqlite3's `?` placeholders as psycopg's `%s` (a `?` in quoted text stays), and every
    literal `%` (as in `LIKE 'a%'`) doubled, since psycopg reads `%` as a placeholder's start."""

    def swap(match: re.Match[str]) -> str:
        token = match.group()
        if token == "?":
            return "%s"
        return token.replace("%", "%%")  # psycopg reads `%` inside quotes too

    return _TOKEN.sub(swap, sql)


def location(dsn: str) -> str:
    """Where a DSN points, for messages: never its password."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(a malformed DSN)"
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{parts.get('host', '')}{port}/{parts.get('dbname', '')}"


class Connection:
    """A psycopg connection (autocommit: transactions are explicit SQL) with the calls the stores
    make on sqlite3's: `execute(sql, params)` and `executemany` return a cursor with `fetchone`,
    `fetchall`, `rowcount` and iteration. There is no `lastrowid`: stores use `RETURNING`."""

    dialect = "postgresql"  # what `storage.sql` asks (sqlite3's connections have no such attribute)

    def __init__(self, dsn: str):
        self._dsn = dsn
        self._pg = _connect(dsn)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor:
        """Run one statement (a whole script when there are no parameters)."""
        if not params:
            # Without parameters psycopg sends the text as it is: no placeholders to swap.
            return self._run(lambda pg: pg.execute(sql))
        return self._run(lambda pg: pg.execute(placeholders(sql), params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> psycopg.Cursor:
        """Run one statement once for each row of parameters."""
        rows = list(rows)  # a second attempt must see them too

        def run(pg: psycopg.Connection) -> psycopg.Cursor:
            cursor = pg.cursor()
            cursor.executemany(placeholders(sql), rows)
            return cursor

        return self._run(run)

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open (as sqlite3's attribute of the same name)."""
        return self._pg.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR)

    def close(self) -> None:
        """Close the connection."""
        self._pg.close()

    def _run(self, statement: Callable[[psycopg.Connection], psycopg.Cursor]) -> psycopg.Cursor:
        """Run a statement, on a new session if PostgreSQL dropped this one while it was idle.

        A dropped session (a restart, a failover, an admin ending sessions) stays broken and is
        only noticed when the next statement fails. Outside a transaction nothing of ours was
        in flight on it — reads run alone, writes start with BEGIN — so that statement runs again
        on a new session. Inside one the statement fails and so does the transaction, as it
        must. A PostgreSQL still down raises DatabaseUnreachable."""
        if self._pg.broken:
            self._pg = _connect(self._dsn)
        idle = not self.in_transaction
        try:
            return _integrity(statement, self._pg)
        except psycopg.OperationalError:
            if not (idle and self._pg.broken):
                raise
        self._pg = _connect(self._dsn)
        return _integrity(statement, self._pg)


def _connect(dsn: str) -> psycopg.Connection:
    try:
        return psycopg.connect(dsn, autocommit=True)
    except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
        reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
        raise DatabaseUnreachable(f"cannot use the PostgreSQL database {location(dsn)}: {reason}") from None


def _integrity(statement: Callable[[psycopg.Connection], psycopg.Cursor], pg: psycopg.Connection) -> psycopg.Cursor:
    try:
        return statement(pg)
    except psycopg.IntegrityError as exc:
        raise IntegrityError(str(exc)) from exc


class PostgresDatabase(GroupCommit):
    """The owner of the write connection and the read connections of one PostgreSQL database."""

    dialect = "postgresql"

    def __init__(self, dsn: str, readers: int = 2):
        self.location = location(dsn)
        writer = Connection(dsn)
        try:
            pool = [Connection(dsn) for _ in range(readers)]
        except BaseException:
            writer.close()
            raise
        super().__init__(writer, pool)

    async def _commit_batch(self, batch: list[_Write]) -> None:
        await trio.to_thread.run_sync(self._run_and_commit, batch)

    def _begin(self, conn: Connection) -> None:
        conn.execute(self.begin)
        # One writing transaction at a time across all processes, taken before any row lock.
        # Nearly every write appends to the archive's single chain, which serialises writers
        # anyway once they reach it; a batch holding a row lock (a conversation's sequence, the
        # directory log) while it waits for the chain, and another holding the chain while it
        # waits for that row, would deadlock. Locks are then always taken in one order, as
        # SQLite's single writer takes them. Processes still read, parse, check and push in
        # parallel; only the transactions queue. Migrations of processes starting together
        # take turns the same way.
        conn.execute("SELECT pg_advisory_xact_lock(?)", (WRITER_LOCK,))

    def _run_and_commit(self, batch: list[_Write]) -> None:
        """The whole transaction, in a worker thread."""
        try:
            self._begin(self._writer)
            self._run_each(batch)
            self._writer.execute("COMMIT")
        except (psycopg.Error, DatabaseUnreachable) as exc:
            self._fail_batch(batch, exc)
            return
        self.commits += 1
        self.writes += len(batch)

    def _typed(self, exc: Exception) -> Exception:
        if isinstance(exc, psycopg.errors.DiskFull):
            return make_error("STORAGE_FULL", "the database server's disk is full: nothing was stored; retry once space is freed")
        if isinstance(exc, (psycopg.OperationalError, DatabaseUnreachable)):
            log.warning("%s", exc)
            return make_error("STORAGE_UNAVAILABLE", "the server cannot reach its database just now; retry shortly")
        return super()._typed(exc)
