"""The SQL of read marks: how far each member has read each conversation. It runs on SQLite
and on PostgreSQL alike (docs/architecture.md, "Storage backends")."""

from __future__ import annotations

import sqlite3

from corridor.protocol.errors import make_error

from ...storage.sql import dialect


def _greater(conn: sqlite3.Connection) -> str:
    """The SQL function giving the greater of two values: SQLite's two-argument max() is
    PostgreSQL's greatest() (there max() is only the aggregate)."""
    return "max" if dialect(conn) == "sqlite" else "greatest"


def _lesser(conn: sqlite3.Connection) -> str:
    """The SQL function giving the lesser of two values (see `_greater`)."""
    return "min" if dialect(conn) == "sqlite" else "least"


def conversation_of(conn: sqlite3.Connection, conversation: int, user_id: int) -> tuple[str, int, int]:
    """(kind, last seq, the member's join point) of a conversation the user is in;
    NO_SUCH_CONVERSATION otherwise, so outsiders learn nothing about it."""
    row = conn.execute(
        "SELECT c.kind, c.last_seq, m.joined_seq FROM conversations c JOIN conversation_members m ON m.conversation_id = c.id"
        " WHERE c.id = ? AND m.user_id = ?",
        (conversation, user_id),
    ).fetchone()
    if row is None:
        raise make_error("NO_SUCH_CONVERSATION", f"you are in no conversation {conversation}")
    return row


def mark_read_txn(conn: sqlite3.Connection, user_id: int, conversation: int, seq: int) -> int:
    """Move the user's read mark forward to `seq` (capped at the conversation's last message);
    returns the mark now stored."""
    _, last_seq, _ = conversation_of(conn, conversation, user_id)
    (mark,) = conn.execute(
        # Qualified: PostgreSQL finds a bare `seq` ambiguous between the row and `excluded`.
        "INSERT INTO read_marks (user_id, conversation_id, seq) VALUES (?, ?, ?) ON CONFLICT (user_id, conversation_id)"
        f" DO UPDATE SET seq = {_greater(conn)}(read_marks.seq, excluded.seq) RETURNING seq",
        (user_id, conversation, min(seq, last_seq)),
    ).fetchone()
    return mark


def mark_delivered_txn(conn: sqlite3.Connection, user_id: int, conversation: int, seq: int) -> tuple[str, int] | None:
    """Move the user's delivered mark forward to `seq` (capped at the last message); returns
    (kind, new mark) when it moved, None when it did not or the user is not in the conversation
    (a group left since the device received its messages is no error)."""
    row = conn.execute(
        f"SELECT c.kind, {_lesser(conn)}(?, c.last_seq), coalesce(d.seq, 0) FROM conversations c"
        " JOIN conversation_members m ON m.conversation_id = c.id AND m.user_id = ?"
        " LEFT JOIN delivered_marks d ON d.conversation_id = c.id AND d.user_id = m.user_id WHERE c.id = ?",
        (seq, user_id, conversation),
    ).fetchone()
    if row is None or row[1] <= row[2]:
        return None
    kind, mark, _ = row
    conn.execute(
        "INSERT INTO delivered_marks (user_id, conversation_id, seq) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id, conversation_id) DO UPDATE SET seq = excluded.seq",
        (user_id, conversation, mark),
    )
    return kind, mark


def other_members(conn: sqlite3.Connection, conversation: int, user_id: int) -> list[int]:
    """The conversation's members other than the user."""
    return [
        row[0]
        for row in conn.execute(
            "SELECT user_id FROM conversation_members WHERE conversation_id = ? AND user_id != ?", (conversation, user_id)
        )
    ]


def unread(conn: sqlite3.Connection, user_id: int) -> list[tuple[int, int, int, int]]:
    """(conversation, unread messages from others, last seq, read mark) for every conversation of
    the user with something unread; counted from the read mark or the join point, whichever is
    later. Group changes, recalls and edits are not messages to read: they do not count."""
    start = f"{_greater(conn)}(coalesce(r.seq, 0), m.joined_seq)"
    return conn.execute(
        "SELECT c.id, (SELECT count(*) FROM messages x WHERE x.conversation_id = c.id"
        f"   AND x.seq > {start} AND x.sender_id != ? AND x.kind IN ('text', 'welcome')),"
        " c.last_seq, coalesce(r.seq, 0)"
        " FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id"
        " LEFT JOIN read_marks r ON r.user_id = m.user_id AND r.conversation_id = c.id"
        f" WHERE m.user_id = ? AND c.last_seq > {start} ORDER BY c.id",
        (user_id, user_id),
    ).fetchall()


def receipts(conn: sqlite3.Connection, conversation: int, user_id: int, seq: int) -> tuple[list[int], list[int], list[int]]:
    """Of the other members who can see message `seq`: those who read it, those who did not,
    and (of the latter) those who have it on a device."""
    read, not_read, delivered = [], [], []
    for member, mark, got, joined in conn.execute(
        "SELECT m.user_id, coalesce(r.seq, 0), coalesce(d.seq, 0), m.joined_seq FROM conversation_members m"
        " LEFT JOIN read_marks r ON r.user_id = m.user_id AND r.conversation_id = m.conversation_id"
        " LEFT JOIN delivered_marks d ON d.user_id = m.user_id AND d.conversation_id = m.conversation_id"
        " WHERE m.conversation_id = ? AND m.user_id != ?",
        (conversation, user_id),
    ):
        if joined >= seq:
            continue
        if mark >= seq:
            read.append(member)
        else:
            not_read.append(member)
            if got >= seq:
                delivered.append(member)
    return read, not_read, delivered
