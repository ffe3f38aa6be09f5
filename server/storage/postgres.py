"""PostgreSQL with one writer and group commit: the same contract as SQLite's `Database`.

How it works: the queue, the committer loop and its shutdown are `GroupCommit`'s, shared with
SQLite. What differs is where the SQL runs. Every statement is a round trip to the server (and
may wait for another process's lock), so the whole batch — `BEGIN`, the writer lock, the
writes, `COMMIT` — runs in one worker thread while the event loop serves the network; SQLite
runs the statements on the loop because each takes microseconds. Unlike SQLite's, the writes
run without a `SAVEPOINT` each, which would cost two round trips a write under the writer
lock, and in psycopg's pipeline mode, where a statement whose answer is not read does not wait
for it; only a batch in which a write failed runs again, the old way (`_run_all`). Reads run
in worker threads on a few connections in autocommit mode, one snapshot a statement, as
SQLite's do.

Why threads and psycopg's sync API: psycopg's async connections need asyncio's loop and trio
has none (trio-asyncio would put a second event loop under every query). A sync connection
used by one thread at a time is what psycopg is built for, and a worker thread is how trio
runs blocking calls (`trio.to_thread.run_sync`). The write functions therefore run in a thread
here, and run again when another write of their batch failed: like every `*_txn` function they
must touch only their connection and arguments, and leave shared state to `after_commit`,
which runs on the loop.

Several server processes may write to one database. Their writing transactions take turns: each
takes the writer lock (`WRITER_LOCK`) before anything else and holds it until it ends, so while
it runs it is the only writer, as SQLite's BEGIN IMMEDIATE makes it, and the stores need no
locks of their own. At READ COMMITTED each of its statements sees what the turns before it
committed. Reads take no turn.

The stores are written against sqlite3's connection (`?` placeholders, `execute`, cursors to
fetch from or iterate); `Connection` offers those calls on a psycopg connection.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
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


class _Integrity:
    """Within it, psycopg's constraint violations are raised as `IntegrityError`: around a
    statement, and around a fetch, where a statement's error surfaces in a pipeline."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if isinstance(exc, psycopg.IntegrityError) and not isinstance(exc, IntegrityError):
            raise IntegrityError(str(exc)) from exc
        return False


_INTEGRITY = _Integrity()


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


class Cursor:
    """What `Connection.execute` returns: sqlite3's `fetchone`, `fetchall`, `rowcount` and
    iteration on a psycopg cursor. In a pipeline (`Connection.pipeline`) the statement's answer
    may still be on its way: fetching waits for it, as psycopg does, and so does `rowcount`."""

    __slots__ = ("_conn", "_cursor")

    def __init__(self, conn: Connection, cursor: psycopg.Cursor):
        self._conn = conn
        self._cursor = cursor

    def fetchone(self) -> Any:
        with _INTEGRITY:
            return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        with _INTEGRITY:
            return self._cursor.fetchall()

    def __iter__(self) -> Iterator[Any]:
        with _INTEGRITY:
            yield from self._cursor

    @property
    def rowcount(self) -> int:
        """Rows the statement changed (psycopg knows only once its answer is in)."""
        if self._conn.pipelined is not None:
            with _INTEGRITY:
                self._conn.pipelined.sync()
        return self._cursor.rowcount


class Connection:
    """A psycopg connection (autocommit: transactions are explicit SQL) with the calls the stores
    make on sqlite3's: `execute(sql, params)` and `executemany` return a `Cursor`. There is no
    `lastrowid`: stores use `RETURNING`."""

    dialect = "postgresql"  # what `storage.sql` asks (sqlite3's connections have no such attribute)

    def __init__(self, dsn: str):
        self._dsn = dsn
        self._pg = _connect(dsn)
        # What the writes of one batch may remember for each other while their transaction
        # holds the writer lock and no write of it can be undone alone (no savepoints), so that
        # no one else can change it meanwhile: a dict then, None otherwise (see `_run_all`).
        self.memo: dict[str, Any] | None = None
        self.pipelined: psycopg.Pipeline | None = None  # while in `pipeline`

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """Run one statement (a whole script when there are no parameters)."""
        if not params:
            # Without parameters psycopg sends the text as it is: no placeholders to swap.
            return self._run(lambda pg: pg.execute(sql))
        return self._run(lambda pg: pg.execute(placeholders(sql), params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Cursor:
        """Run one statement once for each row of parameters."""
        rows = list(rows)  # a second attempt must see them too

        def run(pg: psycopg.Connection) -> psycopg.Cursor:
            cursor = pg.cursor()
            cursor.executemany(placeholders(sql), rows)
            return cursor

        return self._run(run)

    @contextlib.contextmanager
    def pipeline(self) -> Iterator[None]:
        """Within the block, send each statement without waiting for the one before it to be
        answered; wait only where an answer is read (a fetch, `rowcount`) and at the end. An
        error may therefore surface at a later statement than the one that failed, or at the
        end, and a statement without parameters is one statement, not a script (psycopg's
        pipeline mode)."""
        with self._pg.pipeline() as self.pipelined:
            try:
                yield
            finally:
                self.pipelined = None

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open (as sqlite3's attribute of the same name); in a
        pipeline one is while its statements' answers are still on their way (ACTIVE)."""
        return self._pg.pgconn.transaction_status in (
            TransactionStatus.ACTIVE,
            TransactionStatus.INTRANS,
            TransactionStatus.INERROR,
        )

    @property
    def failed(self) -> bool:
        """Whether the open transaction failed: it can only be rolled back (or back to a savepoint)."""
        return self._pg.pgconn.transaction_status == TransactionStatus.INERROR

    def close(self) -> None:
        """Close the connection."""
        self._pg.close()

    def _run(self, statement: Callable[[psycopg.Connection], psycopg.Cursor]) -> Cursor:
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
            with _INTEGRITY:
                return Cursor(self, statement(self._pg))
        except psycopg.OperationalError:
            if not (idle and self._pg.broken):
                raise
        self._pg = _connect(self._dsn)
        with _INTEGRITY:
            return Cursor(self, statement(self._pg))


def _connect(dsn: str) -> psycopg.Connection:
    try:
        return psycopg.connect(dsn, autocommit=True)
    except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
        reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
        raise DatabaseUnreachable(f"cannot use the PostgreSQL database {location(dsn)}: {reason}") from None


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
        self.replays = 0  # batches run again, a savepoint a write, because a write failed

    async def _commit_batch(self, batch: list[_Write]) -> None:
        await trio.to_thread.run_sync(self._run_and_commit, batch)

    def _begin(self, conn: Connection) -> None:
        conn.execute(self.begin)
        # One writing transaction at a time across all processes, taken before anything else:
        # what SQLite's BEGIN IMMEDIATE gives. The stores rely on it and need no locks of their
        # own (docs/architecture.md, "Storage backends"): PostgreSQL releases the lock only
        # after its holder's COMMIT is visible, so at READ COMMITTED every statement after this
        # one sees all that earlier holders wrote, and no one else writes until our COMMIT. A
        # conversation's next seq, a retry's original, the archive chain's head and the
        # directory log's last version are then read and extended by one writer at a time.
        # Processes still read, parse, check and push in parallel; only the transactions queue.
        # Migrations of processes starting together take turns the same way.
        conn.execute("SELECT pg_advisory_xact_lock(?)", (WRITER_LOCK,))

    def _run_and_commit(self, batch: list[_Write]) -> None:
        """The whole transaction, in a worker thread: the writes one after the other, and only
        if one of them fails, all of them again, each in its own SAVEPOINT."""
        try:
            self._begin(self._writer)
            if not self._run_all(batch):
                self.replays += 1
                self._writer.execute("ROLLBACK")
                self._begin(self._writer)
                self._run_each(batch)
            self._writer.execute("COMMIT")
        except (psycopg.Error, DatabaseUnreachable) as exc:
            self._fail_batch(batch, exc)
            return
        self.commits += 1
        self.writes += len(batch)

    def _run_all(self, batch: list[_Write]) -> bool:
        """Run every write in one pipeline without savepoints; False, with no result kept, if
        one raised or left the transaction failed.

        Each statement under the writer lock costs a round trip, and this saves most of them:
        SAVEPOINT and RELEASE around each write are two, and in a pipeline a statement whose
        answer no one reads (an INSERT) goes out with the next one instead of waiting. Writes
        almost never fail. When one does, its error may surface in a later write (or at the
        pipeline's end), so the caller rolls the whole transaction back and runs the batch
        again, without a pipeline and with a savepoint each, where the failure fails only its
        own caller. Running a write twice is safe because a write touches only its connection
        and its arguments (shared state changes in `after_commit`)."""
        self._writer.memo = {}
        try:
            with self._writer.pipeline():
                for item in batch:
                    item.result = item.fn(self._writer)
            # A write that caught a statement's error and returned anyway left the transaction
            # failed; COMMIT would then roll it back without an error.
            done = not self._writer.failed
        except Exception:
            done = False
        finally:
            self._writer.memo = None
        if not done:
            for item in batch:
                item.result = None
        return done

    def _typed(self, exc: Exception) -> Exception:
        if isinstance(exc, psycopg.errors.DiskFull):
            return make_error("STORAGE_FULL", "the database server's disk is full: nothing was stored; retry once space is freed")
        if isinstance(exc, (psycopg.OperationalError, DatabaseUnreachable)):
            log.warning("%s", exc)
            return make_error("STORAGE_UNAVAILABLE", "the server cannot reach its database just now; retry shortly")
        return super()._typed(exc)
