"""Copying a data dir's SQLite database into PostgreSQL, verified (`corridor migrate-storage`).

How it works, and why in this order:

1. **A snapshot.** SQLite's online backup API copies the database as of one moment into a
   private file in the data dir, as `corridor backup` does, so a running server keeps serving;
   what it commits later is not copied. Pending migrations are applied to that copy (never to
   the original), so an older data dir is copied in today's schema. Its archive chain is then
   verified there, before PostgreSQL is touched: a chain broken at the source is reported as
   the source's, not blamed on the copy.
2. **A target without Corridor data.** An empty database, or one holding only the schema, is
   filled; a row in any table of ours makes the command refuse, with nothing changed. The
   migrations then give it PostgreSQL's schema (identity columns, BYTEA, a pg_trgm index
   instead of FTS5, the directory log's plpgsql triggers).
3. **One transaction** copies, checks and commits, or rolls back and leaves the schema alone.
   Every table of the snapshot is decided explicitly: copied (only the columns both sides have,
   and a source column with no place in PostgreSQL stops the copy), rebuilt (the search index:
   FTS5 rows there, token lines here), or skipped with a reason (FTS5's shadow tables, the
   migrations ledger the target writes itself); a table nobody decided on stops the copy. Tables
   go parents first as the target's foreign keys say, and rows of a table that refers to itself
   (a department and its parent) parents first too. The directory log's triggers fire as people
   and departments are copied; what they log, like the one-row state the migrations seed, is
   replaced by the source's rows at the end, which needs no superuser and no trigger switched
   off. Identity sequences then move past the copied ids, so new rows get fresh ones.
4. **Checked before the commit**: row counts per table, each conversation's sequence, and the
   archive as `corridor audit verify` checks it (every hash and link, the head equal to the
   snapshot's, every signed checkpoint under `tls/archive.pub`), read through server-side
   cursors so a large archive is walked in pages rather than loaded whole.

All of it is blocking I/O, for the command line (`migrate_storage_cli.py`).
"""

from __future__ import annotations

import fcntl
import itertools
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from cryptography.hazmat.primitives.asymmetric import ed25519
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .app import MIGRATIONS
from .backup import DATABASE, Progress, snapshot
from .config import load_config
from .features.archive.checkpoints import PUBLIC_KEY, load_public_key
from .features.archive.text import token_line
from .features.archive.verify import Verdict, verify_chain
from .storage.database import Database
from .storage.migrations import apply_migrations
from .storage.postgres import WRITER_LOCK, PostgresDatabase, location

SCHEMES = ("postgresql://", "postgres://")
BATCH = 1000
CONNECT_TIMEOUT = 10  # seconds, unless the URL says otherwise: an unreachable host fails soon

# Tables of the snapshot that are not copied, and why (the result names them with it). SQLite's
# own (`sqlite_sequence`, `sqlite_stat1`) are left out by their prefix.
SQLITE_OWN = "SQLite's own bookkeeping"
SKIPPED = {
    "schema_migrations": "the target's ledger, written by its own migrations",
    **{f"archive_text_{part}": "FTS5's storage of the search index" for part in ("data", "idx", "content", "docsize", "config")},
}
# Tables rebuilt rather than copied: the search index holds FTS5 rows in SQLite and token lines
# (`text.token_line`) in PostgreSQL; its rowid is the entry's seq.
REBUILT = {"archive_text": ("SELECT rowid, body FROM archive_text", ("seq", "body"), lambda row: (row[0], token_line(row[1])))}
# Tables whose rows the target's migrations or triggers write: emptied, then filled with the
# source's rows after every other table. The seeded ones hold one row of state on a schema
# without data.
REPLACED = ("directory_log", "search_state", "archive_index_state")
SEEDED = ("search_state", "archive_index_state")


class MigrationRefused(RuntimeError):
    """The copy cannot be done as asked (not a data dir, not a postgresql:// URL, a target that
    holds Corridor data); nothing was changed."""


class MigrationFailed(RuntimeError):
    """The copy stopped or did not verify; its transaction was rolled back."""


@dataclass(frozen=True)
class MigrateResult:
    """What was copied. `tables`: rows per table; `skipped`: the tables not copied, each with
    why; `next_ids`: the id each identity column gives next; `dsn`: the target for `corridor.toml`, its password
    left out (`password_left_out`)."""

    source: str
    target: str
    snapshot: str
    tables: dict[str, int]
    rows: int
    skipped: dict[str, str]
    archive_entries: int
    checkpoints: int
    next_ids: dict[str, int]
    dsn: str
    password_left_out: bool
    seconds: float


@dataclass(frozen=True)
class _Table:
    name: str
    select: str  # on the snapshot
    columns: tuple[str, ...]  # on the target, in the select's order
    rows: int
    convert: Callable[[tuple], tuple] | None = None
    parent: tuple[int, int] | None = None  # (key, parent) positions when rows refer to rows of their table


def server_running(data_dir: Path) -> bool:
    """Whether a `corridor serve` holds the data dir's lock (probed, never kept)."""
    try:
        fd = os.open(Path(data_dir) / "serve.lock", os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the probe's lock
    return False


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _target(dsn: str) -> tuple[str, str, bool]:
    """(what to connect with, the URL for `corridor.toml` without its password, whether one was left out)."""
    if not dsn.startswith(SCHEMES):
        raise MigrationRefused("--to takes a postgresql:// URL: postgresql://USER@HOST[:PORT]/DATABASE")
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise MigrationRefused(f"--to is not a usable postgresql:// URL: {' '.join(str(exc).split())}") from None
    conninfo = dsn if "connect_timeout" in parts else make_conninfo(dsn, connect_timeout=CONNECT_TIMEOUT)
    url = urlsplit(dsn)
    user, at, host = url.netloc.rpartition("@")
    pairs = parse_qsl(url.query, keep_blank_values=True)
    query = urlencode([(k, v) for k, v in pairs if k != "password"]) if "password" in dict(pairs) else url.query
    shown = urlunsplit(url._replace(netloc=user.partition(":")[0] + at + host, query=query))
    return conninfo, shown, "password" in parts


def _snapshot_of(database: Path, staging: Path, progress: Progress) -> tuple[Path, str]:
    """The database as of now, in `staging`, with today's schema; and when it was taken."""
    taken = datetime.now(UTC).isoformat(timespec="seconds")
    copy = staging / DATABASE
    snapshot(database, copy, lambda _, done, total: progress("snapshot", done, total))
    db = Database(copy, readers=0)
    try:
        apply_migrations(db, MIGRATIONS)
    finally:
        db.close()
    return copy, taken


def _head(conn: Any) -> tuple[int, bytes] | None:
    return conn.execute("SELECT seq, hash FROM archive ORDER BY seq DESC LIMIT 1").fetchone()


def _holding(conn: Any, names: list[str]) -> list[str]:
    """The tables among `names` that hold data in the target's schema."""
    present = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
    return [
        name
        for name in names
        if name in present and name not in SEEDED and conn.execute(f"SELECT EXISTS (SELECT 1 FROM {_quoted(name)})").fetchone()[0]
    ]


def _plan(src: sqlite3.Connection, pg: psycopg.Connection) -> tuple[list[_Table], dict[str, str]]:
    """Every table of the snapshot copied, rebuilt or skipped, in an order the target's foreign
    keys accept; and those skipped, each with why."""
    types: dict[str, dict[str, str]] = {}
    for table, column, kind in pg.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
    ):
        types.setdefault(table, {})[column] = kind
    references = pg.execute(
        "SELECT child.relname, child_column.attname, parent.relname, parent_column.attname FROM pg_constraint c"
        " JOIN pg_class child ON child.oid = c.conrelid JOIN pg_class parent ON parent.oid = c.confrelid"
        " JOIN pg_attribute child_column ON child_column.attrelid = c.conrelid AND child_column.attnum = c.conkey[1]"
        " JOIN pg_attribute parent_column ON parent_column.attrelid = c.confrelid AND parent_column.attnum = c.confkey[1]"
        " WHERE c.contype = 'f' AND child.relnamespace = current_schema()::regnamespace"
    ).fetchall()
    tables: dict[str, _Table] = {}
    skipped = {}
    for (name,) in src.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid"):
        if name in SKIPPED or name.startswith("sqlite_"):
            skipped[name] = SKIPPED.get(name, SQLITE_OWN)
            continue
        if name not in types:
            raise MigrationFailed(
                f"the table {name} has no counterpart in PostgreSQL's schema and is not one to skip: nothing copied"
            )
        (rows,) = src.execute(f"SELECT count(*) FROM {_quoted(name)}").fetchone()
        if name in REBUILT:
            select, columns, convert = REBUILT[name]
            tables[name] = _Table(name, select, columns, rows, convert)
            continue
        columns = tuple(row[1] for row in src.execute(f"PRAGMA table_info({_quoted(name)})"))
        lost = [column for column in columns if column not in types[name]]
        if lost:
            raise MigrationFailed(f"the column {name}.{lost[0]} has no counterpart in PostgreSQL's schema: nothing copied")
        select = f"SELECT {', '.join(map(_quoted, columns))} FROM {_quoted(name)}"
        blobs = [i for i, column in enumerate(columns) if types[name][column] == "bytea"]
        parent = next(
            ((columns.index(key), columns.index(ref)) for child, ref, of, key in references if child == of == name), None
        )
        tables[name] = _Table(name, select, columns, rows, _as_bytes(blobs) if blobs else None, parent)
    order = _parents_first([name for name in tables if name not in REPLACED], references)
    return [tables[name] for name in order + [name for name in tables if name in REPLACED]], skipped


def _as_bytes(positions: list[int]) -> Callable[[tuple], tuple]:
    """Text SQLite holds in a BLOB column as its UTF-8 bytes, as SQLite's own CAST gives them
    (psycopg would send it as text, which PostgreSQL reads as bytea's escape syntax)."""

    def convert(row: tuple) -> tuple:
        return tuple(value.encode() if i in positions and isinstance(value, str) else value for i, value in enumerate(row))

    return convert


def _parents_first(names: list[str], references: list[tuple[str, str, str, str]]) -> list[str]:
    """`names` ordered so that every table comes after those it refers to (otherwise as given)."""
    needs = {name: {of for child, _, of, _ in references if child == name and of != name and of in names} for name in names}
    ordered: list[str] = []
    while needs:
        ready = [name for name in names if name in needs and not needs[name]]
        if not ready:
            raise MigrationFailed(f"the foreign keys of {', '.join(needs)} refer in a circle: no order to copy them in")
        for name in ready:
            del needs[name]
        for wanted in needs.values():
            wanted.difference_update(ready)
        ordered += ready
    return ordered


def _parent_rows_first(table: _Table, rows: list[tuple]) -> list[tuple]:
    key, parent = table.parent
    ordered, placed = [], set()
    while rows:
        waiting = []
        for row in rows:
            if row[parent] is None or row[parent] in placed:
                ordered.append(row)
                placed.add(row[key])
            else:
                waiting.append(row)
        if len(waiting) == len(rows):
            raise MigrationFailed(f"rows of {table.name} refer to missing rows or to each other in a circle, e.g. {waiting[0]}")
        rows = waiting
    return ordered


def _batches(src: sqlite3.Connection, table: _Table, size: int) -> Iterator[list[tuple]]:
    cursor = src.execute(table.select)
    if table.parent is not None:
        rows = _parent_rows_first(table, cursor.fetchall())
        chunks: Iterator[list[tuple]] = (rows[i : i + size] for i in range(0, len(rows), size))
    else:
        chunks = iter(lambda: cursor.fetchmany(size), [])
    for chunk in chunks:
        yield [table.convert(row) for row in chunk] if table.convert else chunk


def _copy(src: sqlite3.Connection, pg: psycopg.Connection, tables: list[_Table], progress: Progress, size: int) -> None:
    total, done = sum(t.rows for t in tables), 0
    progress("copying", 0, total)
    for table in tables:
        if table.name in REPLACED:
            pg.execute(f"DELETE FROM {_quoted(table.name)}")
        insert = (
            f"INSERT INTO {_quoted(table.name)} ({', '.join(map(_quoted, table.columns))})"
            f" OVERRIDING SYSTEM VALUE VALUES ({', '.join(['%s'] * len(table.columns))})"
        )
        with pg.cursor() as cursor:
            for chunk in _batches(src, table, size):
                cursor.executemany(insert, chunk)
                done += len(chunk)
                progress("copying", done, total)


def _move_sequences(pg: psycopg.Connection, tables: list[_Table]) -> dict[str, int]:
    """Each identity (or serial) column's sequence past the copied ids; the id each gives next."""
    names = {t.name for t in tables}
    found = pg.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND (is_identity = 'YES' OR column_default LIKE 'nextval(%') ORDER BY table_name"
    ).fetchall()
    moved = {}
    for table, column in found:
        if table in names:
            (moved[f"{table}.{column}"],) = pg.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, %s), coalesce(max({_quoted(column)}), 0) + 1, false)"
                f" FROM {_quoted(table)}",
                (_quoted(table), column),
            ).fetchone()
    return moved


class _PagedReads:
    """What `verify_chain` reads PostgreSQL through: each query on a server-side cursor, so the
    archive is walked in pages (a plain psycopg cursor holds a whole result in memory)."""

    def __init__(self, pg: psycopg.Connection):
        self._pg = pg
        self._names = itertools.count()

    def execute(self, sql: str) -> psycopg.ServerCursor:
        cursor = self._pg.cursor(name=f"corridor_verify_{next(self._names)}")
        cursor.execute(sql)
        return cursor


def _check(
    src: sqlite3.Connection, pg: psycopg.Connection, tables: list[_Table], public: ed25519.Ed25519PublicKey, progress: Progress
) -> Verdict:
    """The copy against the snapshot; raises MigrationFailed naming the first difference."""
    counts = [(t.name, t.rows, pg.execute(f"SELECT count(*) FROM {_quoted(t.name)}").fetchone()[0]) for t in tables]
    differ = [f"{name} has {copied:,} rows, the snapshot {rows:,}" for name, rows, copied in counts if copied != rows]
    if differ:
        raise MigrationFailed(f"the copy does not match the snapshot: {'; '.join(differ)}")
    query = "SELECT id, last_seq FROM conversations ORDER BY id"
    if src.execute(query).fetchall() != pg.execute(query).fetchall():
        raise MigrationFailed("the copy does not match the snapshot: the conversations' sequences differ")
    head = _head(src)
    verdict = verify_chain(_PagedReads(pg), public, progress=lambda done: progress("verifying", done, head[0] if head else 0))
    if not verdict.intact:
        raise MigrationFailed(f"the archive copied to PostgreSQL is broken at entry {verdict.broken}: {verdict.reason}")
    copied = _head(pg)
    if copied != head:
        raise MigrationFailed(
            f"the archive copied to PostgreSQL ends at {copied and copied[0]}, the snapshot's at {head and head[0]}"
        )
    return verdict


def migrate(data_dir: Path, dsn: str, progress: Progress | None = None, batch: int = BATCH) -> MigrateResult:
    """Copy the data dir's database (its server may be running) into the PostgreSQL database
    `dsn` names, which must hold no Corridor data, and check the copy."""
    started = time.perf_counter()
    progress = progress or (lambda *_: None)
    conninfo, shown, password = _target(dsn)
    config = load_config(data_dir)
    if not config.database_path.is_file():
        raise MigrationRefused(f"{config.database_path} does not exist: is {data_dir} a data dir made by 'corridor init'?")
    if config.storage.backend != "sqlite":
        raise MigrationRefused(f"{config.data_dir}'s corridor.toml already stores in PostgreSQL: its {DATABASE} is not in use")
    try:
        public = load_public_key(config.data_dir / PUBLIC_KEY)
    except (OSError, ValueError) as exc:
        raise MigrationRefused(f"cannot use {config.data_dir / PUBLIC_KEY} as the archive's public key: {exc}") from None
    with ExitStack() as cleanup:
        target = PostgresDatabase(conninfo, readers=0)  # unreachable: fails before the snapshot is taken
        cleanup.callback(target.close)
        staging = Path(tempfile.mkdtemp(prefix=".migrate-storage-", dir=config.data_dir))
        cleanup.callback(shutil.rmtree, staging, ignore_errors=True)
        snapshot, taken = _snapshot_of(config.database_path, staging, progress)
        src = cleanup.enter_context(closing(sqlite3.connect(snapshot)))
        (entries,) = src.execute("SELECT count(*) FROM archive").fetchone()
        source = verify_chain(src, public, progress=lambda done: progress("checking", done, entries))
        if not source.intact:
            raise MigrationFailed(
                f"the data dir's archive is broken at entry {source.broken}: {source.reason}"
                f" (see 'corridor audit verify {config.data_dir}'); nothing copied"
            )
        ours = [row[0] for row in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        ours = [name for name in ours if name not in SKIPPED and not name.startswith("sqlite_")]

        def refuse_if_holding(conn: Any) -> None:
            held = _holding(conn, ours)
            if held:
                raise MigrationRefused(
                    f"{target.location} already holds Corridor data (in {', '.join(held[:5])}{', …' if len(held) > 5 else ''}):"
                    " migrate into an empty database; nothing was changed"
                )

        target.write_now(refuse_if_holding)
        apply_migrations(target, MIGRATIONS)
        pg = cleanup.enter_context(psycopg.connect(conninfo, autocommit=True))
        tables, skipped = _plan(src, pg)
        try:
            with pg.transaction():
                pg.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
                refuse_if_holding(pg)  # another run may have filled it since
                _copy(src, pg, tables, progress, batch)
                next_ids = _move_sequences(pg, tables)
                verdict = _check(src, pg, tables, public, progress)
        except (psycopg.Error, MigrationFailed) as exc:
            raise MigrationFailed(
                f"{' '.join(str(exc).split())}; the copy was undone: {target.location} holds the schema only"
            ) from None
    return MigrateResult(
        source=str(config.data_dir),
        target=location(conninfo),
        snapshot=taken,
        tables={t.name: t.rows for t in tables},
        rows=sum(t.rows for t in tables),
        skipped=skipped,
        archive_entries=verdict.verified,
        checkpoints=verdict.checkpoints or 0,
        next_ids=next_ids,
        dsn=shown,
        password_left_out=password,
        seconds=round(time.perf_counter() - started, 3),
    )
