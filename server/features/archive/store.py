"""The archive's SQL. `append_txn` is the one cross-feature call: features make it inside
the transaction that performs what it records, so the record and the act commit together.
The SQL runs on SQLite and on PostgreSQL (docs/architecture.md, "Storage backends")."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import msgpack

from corridor.protocol.archive_format import GENESIS, entry_hash, payload_digest

from ...storage.sql import dialect, each, listed
from .text import index_text, token_line


@dataclass(frozen=True)
class ArchiveEntry:
    seq: int
    ts: float
    actor: str
    kind: str
    conversation: int | None
    payload: dict | None  # None: erased by retention (a tombstone)
    prev_hash: bytes
    hash: bytes


def append_txn(conn: sqlite3.Connection, *, ts: float, actor: str, kind: str, conversation: int | None, payload: dict) -> int:
    """Append one entry to the chain inside the caller's transaction; returns its seq. The search
    index follows a moment later (`index_pending_txn`).

    Reading the head and inserting the next entry must not interleave with another writer doing
    the same, or two entries would claim one seq or link to one prev_hash. No lock of its own is
    needed for that: every writing transaction is the only one until it ends. SQLite's BEGIN
    IMMEDIATE makes it the only writer; on PostgreSQL it took the writer lock
    (`storage.postgres.WRITER_LOCK`) before its first statement, so this read, a later
    statement at READ COMMITTED, sees every entry the lock's previous holders committed, and
    no one else appends until our COMMIT: entries commit in seq order and readers never see a
    gap. For the same reason a PostgreSQL batch remembers the head it appended (`memo`, only
    where no single write can be undone alone) and reads it once, not once an entry: each
    statement there is a round trip under the writer lock."""
    memo = getattr(conn, "memo", None)
    head = memo.get("archive_head") if memo is not None else None
    if head is None:
        head = conn.execute("SELECT seq, hash FROM archive ORDER BY seq DESC LIMIT 1").fetchone() or (0, GENESIS)
    seq, prev = head[0] + 1, head[1]
    body = msgpack.packb(payload, use_bin_type=True)
    body_hash = payload_digest(body)
    digest = entry_hash(seq, ts, actor, kind, conversation, body_hash, prev)
    conn.execute(
        "INSERT INTO archive (seq, ts, actor, kind, conversation_id, payload, payload_hash, prev_hash, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (seq, ts, actor, kind, conversation, body, body_hash, prev, digest),
    )
    if memo is not None:
        memo["archive_head"] = (seq, digest)
    return seq


def index_pending_txn(conn: sqlite3.Connection, limit: int) -> int:
    """Index up to `limit` entries appended since the index last caught up; returns how many.
    Indexing in batches rather than in each send's transaction writes one full-text segment per
    batch instead of one per group commit (a quarter of a send's cost at 200 clients)."""
    # Two processes' indexers never index the same entries: each runs in a writing transaction,
    # which is the only one until it commits (see `append_txn`), and reads where the last one
    # stopped.
    (through,) = conn.execute("SELECT indexed_through FROM archive_index_state").fetchone()
    rows = conn.execute(
        "SELECT seq, actor, kind, payload FROM archive WHERE seq > ? ORDER BY seq LIMIT ?", (through, limit)
    ).fetchall()
    unpacked = [
        (seq, actor, kind, msgpack.unpackb(payload, raw=False)) for seq, actor, kind, payload in rows if payload is not None
    ]
    index_entries_txn(conn, unpacked)  # an entry erased by retention before it was indexed has nothing to find
    if rows:
        conn.execute("UPDATE archive_index_state SET indexed_through = ?", (rows[-1][0],))
    return len(rows)


def index_behind(conn: sqlite3.Connection) -> bool:
    """Whether entries were appended that the search index does not hold yet."""
    query = "SELECT (SELECT indexed_through FROM archive_index_state) < (SELECT coalesce(max(seq), 0) FROM archive)"
    return bool(conn.execute(query).fetchone()[0])


def index_txn(conn: sqlite3.Connection, seq: int, actor: str, kind: str, payload: dict) -> None:
    """Make one entry findable (see `index_entries_txn`)."""
    index_entries_txn(conn, [(seq, actor, kind, payload)])


def index_entries_txn(conn: sqlite3.Connection, entries: list[tuple[int, str, str, dict]]) -> None:
    """Make entries (seq, actor, kind, payload) findable: their text, and the people each is
    about (a message's sender and direct recipient; a notice's or an upload's author). A few
    statements for the whole list, whatever its length: on PostgreSQL each statement is a round
    trip made under the writer lock."""
    texts, people = [], []
    authors = {actor for _, actor, kind, _ in entries if kind in ("notice", "file")}
    query = f"SELECT username, id FROM users WHERE username IN ({each(conn, 'text')})"
    user_ids = dict(conn.execute(query, (listed(conn, authors),)).fetchall()) if authors else {}
    for seq, actor, kind, payload in entries:
        text = index_text(kind, payload)
        if text:
            texts.append((seq, text if dialect(conn) == "sqlite" else token_line(text)))
        if kind == "message":
            about = {p for p in (payload.get("sender"), payload.get("recipient")) if p is not None}
        elif kind in ("notice", "file") and actor in user_ids:
            about = {user_ids[actor]}
        else:
            about = set()
        people.extend((person, seq) for person in about)
    key = "rowid" if dialect(conn) == "sqlite" else "seq"  # FTS5 keys its rows by rowid
    if texts:
        conn.executemany(f"INSERT INTO archive_text ({key}, body) VALUES (?, ?)", texts)
    if people:
        conn.executemany("INSERT INTO archive_people (user_id, seq) VALUES (?, ?)", people)


def admin_action_txn(conn: sqlite3.Connection, *, actor: str, now: float, action: str, **details) -> int:
    """Archive an administrative action (who, when, what it set) inside its own transaction."""
    return append_txn(conn, ts=now, actor=actor, kind="admin", conversation=None, payload={"action": action, **details})


def entries(conn: sqlite3.Connection, after: int = 0, limit: int = 1000) -> list[ArchiveEntry]:
    """Archive entries in chain order after `after`."""
    rows = conn.execute(
        "SELECT seq, ts, actor, kind, conversation_id, payload, prev_hash, hash FROM archive WHERE seq > ? ORDER BY seq LIMIT ?",
        (after, limit),
    ).fetchall()
    return [_entry(r) for r in rows]


def _entry(row) -> ArchiveEntry:
    payload = None if row[5] is None else msgpack.unpackb(row[5], raw=False)
    return ArchiveEntry(row[0], row[1], row[2], row[3], row[4], payload, row[6], row[7])


def entries_of_kind(
    conn: sqlite3.Connection, kind: str, after: int, limit: int, actor: str = ""
) -> tuple[list[ArchiveEntry], bool]:
    """Entries of one kind (`admin`, `audit`) after seq `after`, optionally one actor's, oldest
    first, and whether more follow."""
    rows = conn.execute(
        "SELECT seq, ts, actor, kind, conversation_id, payload, prev_hash, hash FROM archive"
        " WHERE kind = ? AND seq > ? AND (? = '' OR actor = ?) ORDER BY seq LIMIT ?",
        (kind, after, actor, actor, limit + 1),
    ).fetchall()
    found = [_entry(r) for r in rows[:limit]]
    return found, len(rows) > limit


def erase_txn(conn: sqlite3.Connection, seq: int, now: float) -> None:
    """Make an entry a tombstone: its payload erased and unsearchable, its hashes (and so the
    chain) kept. The archive's trigger allows no other change."""
    conn.execute("UPDATE archive SET payload = NULL, purged_at = ? WHERE seq = ? AND payload IS NOT NULL", (now, seq))
    key = "rowid" if dialect(conn) == "sqlite" else "seq"  # FTS5 keys its rows by rowid
    conn.execute(f"DELETE FROM archive_text WHERE {key} = ?", (seq,))


@dataclass(frozen=True)
class Expiring:
    """A content entry old enough that retention may erase it, with the people it is about."""

    seq: int
    ts: float
    kind: str
    conversation: int | None
    payload: dict
    people: frozenset[int]


def expiring(conn: sqlite3.Connection, after: int, older_than: float, limit: int) -> tuple[list[Expiring], int | None]:
    """Unerased messages, notices and uploads after seq `after` archived before `older_than`,
    in seq order, and the seq to continue after (None when the scan is done)."""
    rows = conn.execute(
        "SELECT seq, ts, kind, conversation_id, payload FROM archive WHERE seq > ? AND kind IN ('message', 'notice', 'file')"
        " AND payload IS NOT NULL AND ts < ? ORDER BY seq LIMIT ?",
        (after, older_than, limit),
    ).fetchall()
    if not rows:
        return [], None
    people: dict[int, set[int]] = {}
    query = f"SELECT seq, user_id FROM archive_people WHERE seq IN ({each(conn)})"
    for seq, user_id in conn.execute(query, (listed(conn, [r[0] for r in rows]),)):
        people.setdefault(seq, set()).add(user_id)
    found = [
        Expiring(seq, ts, kind, conversation, msgpack.unpackb(payload, raw=False), frozenset(people.get(seq, ())))
        for seq, ts, kind, conversation, payload in rows
    ]
    return found, (rows[-1][0] if len(rows) == limit else None)


def messages_since(conn: sqlite3.Connection, ts: float) -> int:
    """How many messages were archived since `ts` (seq order follows time)."""
    first = conn.execute("SELECT seq FROM archive WHERE ts >= ? ORDER BY ts LIMIT 1", (ts,)).fetchone()
    if first is None:
        return 0
    return conn.execute("SELECT count(*) FROM archive WHERE kind = 'message' AND seq >= ?", (first[0],)).fetchone()[0]


def head_seq(conn: sqlite3.Connection) -> int:
    """The chain's last seq (0 when empty)."""
    return conn.execute("SELECT coalesce(max(seq), 0) FROM archive").fetchone()[0]
