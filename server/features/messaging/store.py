"""The messaging feature's SQL.

`send_direct_txn` does the whole send in the caller's transaction: the idempotency check on
(sender device, msg_id), the conversation (created on first use), the next sequence number,
the message row and its archive entry. Because it all commits together, an acknowledged
message always has its seq and its archive entry, and a retry finds the original.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ..archive.store import append_txn


@dataclass(frozen=True)
class StoredMessage:
    conversation: int
    seq: int
    sender_id: int
    recipient_id: int | None
    msg_id: str
    text: str
    ts: float
    duplicate: bool = False


_COLUMNS = "conversation_id, seq, sender_id, recipient_id, msg_id, text, ts"


def _direct_key(a: int, b: int) -> str:
    return f"{min(a, b)}:{max(a, b)}"


def direct_conversation(conn: sqlite3.Connection, a: int, b: int) -> int | None:
    """The id of the 1:1 conversation between two users, if they ever talked."""
    row = conn.execute("SELECT id FROM conversations WHERE direct_key = ?", (_direct_key(a, b),)).fetchone()
    return row[0] if row else None


def send_direct_txn(
    conn: sqlite3.Connection,
    *,
    sender_id: int,
    sender_name: str,
    device_id: int,
    recipient_id: int,
    msg_id: str,
    text: str,
    now: float,
) -> StoredMessage:
    """Store a 1:1 message exactly once; a repeated (device, msg_id) returns the original."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM messages WHERE device_id = ? AND msg_id = ?", (device_id, msg_id)).fetchone()
    if row:
        return StoredMessage(*row, duplicate=True)
    conversation = direct_conversation(conn, sender_id, recipient_id)
    if conversation is None:
        conversation = conn.execute(
            "INSERT INTO conversations (kind, direct_key, created_at) VALUES ('direct', ?, ?)",
            (_direct_key(sender_id, recipient_id), now),
        ).lastrowid
        conn.executemany(
            "INSERT INTO conversation_members (user_id, conversation_id) VALUES (?, ?)",
            {(sender_id, conversation), (recipient_id, conversation)},
        )
    (seq,) = conn.execute(
        "UPDATE conversations SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq", (conversation,)
    ).fetchone()
    conn.execute(
        f"INSERT INTO messages ({_COLUMNS}, device_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (conversation, seq, sender_id, recipient_id, msg_id, text, now, device_id),
    )
    append_txn(
        conn,
        ts=now,
        actor=sender_name,
        kind="message",
        conversation=conversation,
        payload={"seq": seq, "sender": sender_id, "recipient": recipient_id, "device": device_id, "msg_id": msg_id, "text": text},
    )
    return StoredMessage(conversation, seq, sender_id, recipient_id, msg_id, text, now)


def messages_after(
    conn: sqlite3.Connection, user_id: int, cursors: dict[int, int], limit: int
) -> tuple[list[StoredMessage], bool]:
    """Up to `limit` messages after each cursor in every conversation of the user, in seq order per
    conversation; conversations without a cursor start from 0. Returns (messages, more)."""
    conversations = conn.execute(
        "SELECT c.id, c.last_seq FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id "
        "WHERE m.user_id = ? ORDER BY c.id",
        (user_id,),
    ).fetchall()
    found: list[StoredMessage] = []
    for conversation, last_seq in conversations:
        after = cursors.get(conversation, 0)
        if last_seq <= after:
            continue
        room = limit - len(found)
        if room <= 0:
            return found, True
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (conversation, after, room),
        ).fetchall()
        found.extend(StoredMessage(*row) for row in rows)
        if rows and rows[-1][1] < last_seq:
            return found, True
    return found, False


def history(
    conn: sqlite3.Connection, conversation: int, before: int | None, after: int | None, limit: int
) -> list[StoredMessage]:
    """Messages of one conversation, oldest first: the latest `limit` before `before`, or the
    first `limit` after `after`."""
    if after is not None:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (conversation, after, limit),
        ).fetchall()
        return [StoredMessage(*row) for row in rows]
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM messages WHERE conversation_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
        (conversation, before if before is not None else 2**62, limit),
    ).fetchall()
    return [StoredMessage(*row) for row in reversed(rows)]
