"""The archive's SQL. `append_txn` is the one cross-feature call: features make it inside
the transaction that performs what it records, so the record and the act commit together."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import msgpack

from .chain import GENESIS, entry_hash


@dataclass(frozen=True)
class ArchiveEntry:
    seq: int
    ts: float
    actor: str
    kind: str
    conversation: int | None
    payload: dict
    prev_hash: bytes
    hash: bytes


def append_txn(conn: sqlite3.Connection, *, ts: float, actor: str, kind: str, conversation: int | None, payload: dict) -> int:
    """Append one entry to the chain inside the caller's transaction; returns its seq."""
    row = conn.execute("SELECT seq, hash FROM archive ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
    body = msgpack.packb(payload, use_bin_type=True)
    digest = entry_hash(seq, ts, actor, kind, conversation, body, prev)
    conn.execute(
        "INSERT INTO archive (seq, ts, actor, kind, conversation_id, payload, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (seq, ts, actor, kind, conversation, body, prev, digest),
    )
    return seq


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
    return ArchiveEntry(row[0], row[1], row[2], row[3], row[4], msgpack.unpackb(row[5], raw=False), row[6], row[7])


def admin_actions(conn: sqlite3.Connection, after: int, limit: int, actor: str = "") -> tuple[list[ArchiveEntry], bool]:
    """Administrative entries after seq `after` (optionally one actor's), and whether more follow."""
    rows = conn.execute(
        "SELECT seq, ts, actor, kind, conversation_id, payload, prev_hash, hash FROM archive"
        " WHERE kind = 'admin' AND seq > ? AND (? = '' OR actor = ?) ORDER BY seq LIMIT ?",
        (after, actor, actor, limit + 1),
    ).fetchall()
    found = [_entry(r) for r in rows[:limit]]
    return found, len(rows) > limit
