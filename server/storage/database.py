"""SQLite with one writer and group commit.

How it works: `await db.write(fn)` queues `fn(conn)`; a single committer task takes everything
queued so far and runs it inside one `BEGIN IMMEDIATE … COMMIT`, each function in its own
SAVEPOINT so that one failure fails only its caller. With `journal_mode=WAL` and
`synchronous=FULL` the COMMIT fsyncs the WAL, so when `write()` returns the change is durable —
and one fsync covers every write queued meanwhile, which is what makes durable
acknowledgements cheap under load.

The write functions are short SQL (microseconds each) and run on the event loop; only the
COMMIT, which waits for the disk, runs in a worker thread, so the loop serves the network while
the disk syncs. Running the statements in the thread instead cost more than it saved: each
statement gives up the GIL and then waits for the busy event loop to hand it back. `after_commit` callbacks run in queue order right
after the commit, before any waiter wakes, so events published from them keep commit order.

`await db.read(fn)` runs on one of a few read connections; WAL readers never block the writer.

`GroupCommit` is the part every backend shares (the queue, the committer, shutdown, reads);
`Database` is SQLite's, `postgres.PostgresDatabase` PostgreSQL's.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from corridor.protocol.errors import make_error

log = logging.getLogger("corridor.storage")

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)


def typed(exc: Exception) -> Exception:
    """A full disk as the typed STORAGE_FULL its callers answer with (it is the one storage
    fault a client should wait out rather than report); other errors as they are."""
    full = isinstance(exc, sqlite3.OperationalError) and "full" in str(exc).lower()
    if full or (isinstance(exc, OSError) and exc.errno == errno.ENOSPC):
        return make_error("STORAGE_FULL", "the server's disk is full: nothing was stored; retry once space is freed")
    return exc


def connect(path: Path) -> sqlite3.Connection:
    """A connection with Corridor's pragmas, in autocommit mode (transactions are explicit)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    return conn


@dataclass
class _Write:
    fn: Callable[[sqlite3.Connection], Any]
    after_commit: Callable[[Any], None] | None
    done: trio.Event = field(default_factory=trio.Event)
    result: Any = None
    error: BaseException | None = None


class GroupCommit:
    """What every backend shares: the write queue, the committer loop and its shutdown, and the
    pool of read connections. A backend gives the connections, `dialect` (which migration
    scripts it runs), `location` (for messages) and `_commit_batch`."""

    dialect: str
    location: str
    begin = "BEGIN"

    def __init__(self, writer: Any, readers: list[Any]):
        self._writer = writer
        self._readers = readers
        self._reader_slots = trio.Semaphore(len(readers)) if readers else None
        self._queue: list[_Write] = []
        self._wakeup = trio.Event()
        self._closed = False
        self._stopped = False  # the committer ran and ended: no commit will come
        self.commits = 0
        self.writes = 0

    async def write(self, fn: Callable[[sqlite3.Connection], Any], after_commit: Callable[[Any], None] | None = None) -> Any:
        """Run `fn(conn)` in the next group commit; returns its result once it is durable.

        A caller already cancelled gets Cancelled here, with nothing queued; once the committer
        has stopped, writes are refused with SHUTTING_DOWN. Either way it never waits for a
        commit that cannot come (a chore whose read finished as the server stopped used to
        queue a write after the committer's last round, and wait for it forever)."""
        if self._closed:
            raise RuntimeError("database is closed")
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._stopped:
            raise make_error("SHUTTING_DOWN", "the server is stopping: nothing was stored")
        item = _Write(fn, after_commit)
        self._queue.append(item)
        self._wakeup.set()
        # Not cancellable: once queued, the caller must learn whether it committed.
        with trio.CancelScope(shield=True):
            await item.done.wait()
        if item.error is not None:
            raise item.error
        return item.result

    async def read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run `fn(conn)` on a read connection in a worker thread."""
        async with self._reader_slots:
            conn = self._readers.pop()
            try:
                return await trio.to_thread.run_sync(fn, conn)
            except Exception as exc:
                error = self._typed(exc)
                if error is exc:
                    raise
                raise error from exc
            finally:
                self._readers.append(conn)

    async def run_committer(self, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """The committer loop; run it in a nursery. On cancellation it commits what is queued."""
        task_status.started()
        try:
            while True:
                await self._wakeup.wait()
                await self._commit_queued()
        finally:
            with trio.CancelScope(shield=True):
                while self._queue:
                    await self._commit_queued()
            self._stopped = True  # no await since the last look at the queue: nothing is left in it

    async def _commit_queued(self) -> None:
        batch, self._queue = self._queue, []
        self._wakeup = trio.Event()
        if not batch:
            return
        await self._commit_batch(batch)
        for item in batch:
            if item.error is None and item.after_commit is not None:
                try:
                    item.after_commit(item.result)
                except Exception:
                    log.exception("after-commit callback failed")
        for item in batch:
            item.done.set()

    async def _commit_batch(self, batch: list[_Write]) -> None:
        """Run the batch in one transaction and commit it, leaving each write's result or error
        on it (the backend decides what runs in a worker thread)."""
        raise NotImplementedError

    def _run_each(self, batch: list[_Write]) -> None:
        """Each write in its own SAVEPOINT of the open transaction: one failure fails only its caller."""
        conn = self._writer
        for item in batch:
            conn.execute("SAVEPOINT w")
            try:
                item.result = item.fn(conn)
                conn.execute("RELEASE w")
            except Exception as exc:
                conn.execute("ROLLBACK TO w")
                conn.execute("RELEASE w")
                item.error = self._typed(exc)

    def _typed(self, exc: Exception) -> Exception:
        return typed(exc)

    def _fail_batch(self, batch: list[_Write], exc: Exception) -> None:
        log.error("group commit of %d writes failed: %s", len(batch), exc)
        if self._writer.in_transaction:
            self._writer.execute("ROLLBACK")
        for item in batch:
            item.error = item.error or self._typed(exc)

    def _begin(self, conn: Any) -> None:
        """Open a writing transaction (a backend adds what it needs to order writers)."""
        conn.execute(self.begin)

    def write_now(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run one write transaction synchronously (start-up and tools, before the committer runs)."""
        conn = self._writer
        self._begin(conn)
        try:
            result = fn(conn)
            conn.execute("COMMIT")
            return result
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close every connection (the committer must have stopped)."""
        self._closed = True
        for conn in [self._writer, *self._readers]:
            conn.close()


class Database(GroupCommit):
    """The owner of the write connection and the read connections of one SQLite file."""

    dialect = "sqlite"
    begin = "BEGIN IMMEDIATE"

    def __init__(self, path: Path, readers: int = 2):
        self.path = Path(path)
        self.location = str(self.path)
        super().__init__(connect(self.path), [connect(self.path) for _ in range(readers)])

    async def _commit_batch(self, batch: list[_Write]) -> None:
        if self._run_batch(batch):
            await trio.to_thread.run_sync(self._commit, batch)

    def _run_batch(self, batch: list[_Write]) -> bool:
        """Run every write in one open transaction; False if the transaction itself failed."""
        try:
            self._begin(self._writer)
            self._run_each(batch)
        except sqlite3.Error as exc:
            self._fail_batch(batch, exc)
            return False
        return True

    def _commit(self, batch: list[_Write]) -> None:
        """COMMIT (the fsync) in a worker thread."""
        try:
            self._writer.execute("COMMIT")
        except sqlite3.Error as exc:
            self._fail_batch(batch, exc)
            return
        self.commits += 1
        self.writes += len(batch)
