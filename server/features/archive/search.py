"""The archive's SQL for auditors: selecting entries by text, person, department, conversation
and time, for search (newest first) and export (oldest first).

Only conversation content is selected (messages, notices, uploads); administrative actions are
the admin log, and the audit log is for IT admins. A department filter or an auditor's scope
means "entries about someone now in one of these departments" (`archive_people`: a message's
sender and direct recipient, a notice's or upload's author).

Time ranges use the `ts` index to find the range of seqs, then filter on `ts` exactly: seq order
is archive order and follows time, except if the server's clock stepped back (tolerated up to
`CLOCK_SLACK`).

The text condition is the one part that differs between engines (see `text.py`): FTS5's MATCH
on SQLite, `LIKE` patterns on a pg_trgm index on PostgreSQL; the plans and the hits are the same.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ...storage.sql import dialect, each, listed
from .text import TextMatch

CONTENT_KINDS = ("message", "notice", "file")
CLOCK_SLACK = 3600.0
# Up to this many entries of a person or a conversation, a text search there checks each
# against the text (about 0.1 ms an entry); beyond, it walks the text's matches instead.
CHECK_EACH = 2000
ROW_COLUMNS = "a.seq, a.ts, a.actor, a.kind, a.conversation_id, a.payload, a.payload_hash, a.prev_hash, a.hash, a.purged_at"
_NO_LIMIT = -1  # SQLite's "no limit"; PostgreSQL's is NULL


@dataclass(frozen=True)
class Selection:
    """A resolved filter: a text to match, a user id, a set of departments (None: any), a
    conversation, and a time range."""

    match: TextMatch | None = None
    participant: int | None = None
    departments: frozenset[int] | None = None
    conversation: int | None = None
    since: float | None = None
    until: float | None = None


def _seq_range(conn: sqlite3.Connection, sel: Selection, lo: int, hi: int) -> tuple[int, int]:
    """Narrow (lo, hi], the seqs to look at, to the selection's time range."""
    if sel.since is not None:
        row = conn.execute("SELECT seq FROM archive WHERE ts >= ? ORDER BY ts LIMIT 1", (sel.since - CLOCK_SLACK,)).fetchone()
        lo = max(lo, row[0] - 1) if row else hi
    if sel.until is not None:
        row = conn.execute(
            "SELECT seq FROM archive WHERE ts <= ? ORDER BY ts DESC LIMIT 1", (sel.until + CLOCK_SLACK,)
        ).fetchone()
        hi = min(hi, row[0]) if row else lo
    return lo, hi


def select(
    conn: sqlite3.Connection,
    sel: Selection,
    *,
    lo: int = 0,
    hi: int = 2**62,
    newest_first: bool,
    limit: int = _NO_LIMIT,
    columns: str = ROW_COLUMNS,
) -> sqlite3.Cursor:
    """A cursor over the rows of the entries the selection matches with lo < seq <= hi, in seq
    order (or reversed)."""
    lo, hi = _seq_range(conn, sel, lo, hi)
    if lo >= hi:
        return conn.execute("SELECT 1 WHERE 1 = 0")
    where = [f"a.kind IN {CONTENT_KINDS}"]
    params: list = []
    by_person = sel.participant is not None and (sel.match is None or _few(conn, _PERSON, sel.participant, lo, hi))
    in_conversation = (
        sel.match is not None and sel.conversation is not None and _few(conn, _CONVERSATION, sel.conversation, lo, hi)
    )
    if by_person:
        # The (user, seq) index yields one person's entries in order without touching others';
        # with a text too, only when they are few: each then costs a lookup in the index.
        source, key = "archive_people pp JOIN archive a ON a.seq = pp.seq", "pp.seq"
        where.append("pp.user_id = ?")
        params.append(sel.participant)
        if sel.match is not None:
            text_key, matches, text_params = _text(conn, sel.match)
            where.append(f"EXISTS (SELECT 1 FROM archive_text t WHERE {text_key} = pp.seq AND {matches})")
            params += text_params
    elif in_conversation:
        source, key = "archive a", "a.seq"
        text_key, matches, text_params = _text(conn, sel.match)
        where.append(f"EXISTS (SELECT 1 FROM archive_text t WHERE {text_key} = a.seq AND {matches})")
        params += text_params
    elif sel.match is not None:
        text_key, matches, text_params = _text(conn, sel.match)
        source, key = f"archive_text t JOIN archive a ON a.seq = {text_key}", text_key
        where.append(matches)
        params += text_params
        if sel.participant is not None:
            where.append("EXISTS (SELECT 1 FROM archive_people p WHERE p.user_id = ? AND p.seq = a.seq)")
            params.append(sel.participant)
    else:
        source, key = "archive a", "a.seq"
    where.append(f"{key} > ? AND {key} <= ?")
    params += [lo, hi]
    if sel.conversation is not None:
        where.append("a.conversation_id = ?")
        params.append(sel.conversation)
    if sel.since is not None:
        where.append("a.ts >= ?")
        params.append(sel.since)
    if sel.until is not None:
        where.append("a.ts <= ?")
        params.append(sel.until)
    if sel.departments is not None:
        where.append(
            "EXISTS (SELECT 1 FROM archive_people p JOIN department_members m ON m.user_id = p.user_id"
            f" WHERE p.seq = a.seq AND m.department_id IN ({each(conn)}))"
        )
        params.append(listed(conn, sorted(sel.departments)))
    order = "DESC" if newest_first else "ASC"
    if limit == _NO_LIMIT and dialect(conn) == "postgresql":
        limit = None
    query = f"SELECT {columns} FROM {source} WHERE {' AND '.join(where)} ORDER BY {key} {order} LIMIT ?"
    return conn.execute(query, (*params, limit))


def _text(conn: sqlite3.Connection, match: TextMatch) -> tuple[str, str, list[str]]:
    """The text index's seq column, the condition that an entry's text matches, and its
    parameters, on this connection's engine (the index is aliased `t`)."""
    if dialect(conn) == "sqlite":
        return "t.rowid", "archive_text MATCH ?", [match.fts5()]
    patterns = match.like_patterns()
    return "t.seq", " AND ".join(["t.body LIKE ?"] * len(patterns)), patterns


_PERSON = "SELECT 1 FROM archive_people WHERE user_id = ? AND seq > ? AND seq <= ? LIMIT ?"
_CONVERSATION = "SELECT 1 FROM archive WHERE conversation_id = ? AND seq > ? AND seq <= ? LIMIT ?"


def _few(conn: sqlite3.Connection, entries_of: str, key: int, lo: int, hi: int) -> bool:
    """Whether the person's (or conversation's) entries in (lo, hi] are few enough to check each
    against the text; otherwise a common word would be walked through everyone's messages."""
    return (
        conn.execute(f"SELECT count(*) FROM ({entries_of}) AS found", (key, lo, hi, CHECK_EACH + 1)).fetchone()[0] <= CHECK_EACH
    )
