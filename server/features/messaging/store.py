"""The messaging feature's SQL for messages and 1:1 conversations (groups: `group_store`).

`send_direct_txn` does the whole send in the caller's transaction: the idempotency check on
(sender device, msg_id), the conversation (created on first use), the next sequence number,
the message row and its archive entry. Because it all commits together, an acknowledged
message always has its seq and its archive entry, and a retry finds the original.

The SQL runs on SQLite and on PostgreSQL alike (docs/architecture.md, "Storage backends"). On
PostgreSQL several server processes may send into one conversation at once, yet a send needs
no lock of its own to keep sequences gap-free and store a (device, msg_id) once: every writing
transaction is the only one until it ends. SQLite's BEGIN IMMEDIATE makes it the only writer;
on PostgreSQL it first took the writer lock (`storage.postgres.WRITER_LOCK`), and at READ
COMMITTED each later statement sees what the lock's previous holders committed, so the
retry check finds a message another process stored a moment ago.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from corridor.protocol.files import FileRef

from ...storage.sql import dialect, each, listed
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
    kind: str = "text"
    mentions: tuple[str, ...] = ()
    ref: int = 0
    edited: float = 0.0
    duplicate: bool = False
    file: FileRef | None = None


_COLUMNS = "conversation_id, seq, sender_id, recipient_id, msg_id, text, ts, kind, mentions, ref, coalesce(edited_at, 0), file"
_WRITTEN = "conversation_id, seq, sender_id, recipient_id, msg_id, text, ts, kind, mentions, ref, device_id, file_sha256, file"


def _stored(row, duplicate: bool = False) -> StoredMessage:
    mentions = tuple(json.loads(row[8])) if row[8] else ()
    file = FileRef.from_fields(json.loads(row[11])) if row[11] else None
    return StoredMessage(*row[:7], row[7], mentions, row[9], row[10], duplicate, file)


def _direct_key(a: int, b: int) -> str:
    return f"{min(a, b)}:{max(a, b)}"


def direct_conversation(conn: sqlite3.Connection, a: int, b: int) -> int | None:
    """The id of the 1:1 conversation between two users, if they ever talked."""
    row = conn.execute("SELECT id FROM conversations WHERE direct_key = ?", (_direct_key(a, b),)).fetchone()
    return row[0] if row else None


_SENT_BEFORE = f"SELECT {_COLUMNS} FROM messages WHERE device_id = ? AND msg_id = ?"


def find_duplicate(conn: sqlite3.Connection, device_id: int, msg_id: str) -> StoredMessage | None:
    """The message this device already sent with this id, if any (a retry)."""
    row = conn.execute(_SENT_BEFORE, (device_id, msg_id)).fetchone()
    return _stored(row, duplicate=True) if row else None


def hold_sequence(conn: sqlite3.Connection, conversation: int) -> None:
    """Hold the conversation's sequence until the transaction ends (on PostgreSQL a row lock).
    While every writing transaction holds the writer lock first (module docstring) this adds
    nothing: no other writer can send into the conversation or move a join point until our
    COMMIT. 1:1 sends no longer call it; group sends and `group_store.add_members_txn` still do."""
    if dialect(conn) == "postgresql":
        conn.execute("SELECT 1 FROM conversations WHERE id = ? FOR UPDATE", (conversation,))


def append_message_txn(
    conn: sqlite3.Connection,
    *,
    conversation: int,
    sender_id: int,
    sender_name: str,
    device_id: int,
    recipient_id: int | None,
    msg_id: str,
    text: str,
    now: float,
    kind: str = "text",
    mentions: tuple[str, ...] = (),
    ref: int = 0,
    file: FileRef | None = None,
) -> StoredMessage:
    """Give the message the conversation's next seq, store it and archive it, in the caller's
    transaction (no other writer runs until it commits, so no other takes the same seq, and a
    failed send's seq goes back with its savepoint or its transaction). A `file` message's
    archive entry names the file's content hash, so the archive references every file sent."""
    (seq,) = conn.execute(
        "UPDATE conversations SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq", (conversation,)
    ).fetchone()
    return _store_txn(
        conn,
        StoredMessage(conversation, seq, sender_id, recipient_id, msg_id, text, now, kind, mentions, ref, file=file),
        sender_name,
        device_id,
    )


def _store_txn(conn: sqlite3.Connection, message: StoredMessage, sender_name: str, device_id: int) -> StoredMessage:
    """Store a message that has its seq, and archive it."""
    file = message.file
    conn.execute(
        f"INSERT INTO messages ({_WRITTEN}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            message.conversation,
            message.seq,
            message.sender_id,
            message.recipient_id,
            message.msg_id,
            message.text,
            message.ts,
            message.kind,
            json.dumps(message.mentions) if message.mentions else "",
            message.ref,
            device_id,
            file.id if file else None,
            json.dumps(file.to_fields()) if file else "",
        ),
    )
    payload = {
        "seq": message.seq,
        "sender": message.sender_id,
        "recipient": message.recipient_id,
        "device": device_id,
        "msg_id": message.msg_id,
        "text": message.text,
    }
    if message.kind != "text":
        payload["kind"] = message.kind
    if message.mentions:
        payload["mentions"] = list(message.mentions)
    if message.ref:
        payload["ref"] = message.ref
    if file:
        payload["file"] = {"sha256": file.id, "name": file.name, "size": file.size}
    append_txn(conn, ts=message.ts, actor=sender_name, kind="message", conversation=message.conversation, payload=payload)
    return message


def message(conn: sqlite3.Connection, conversation: int, seq: int) -> StoredMessage | None:
    """One message as it stands now."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM messages WHERE conversation_id = ? AND seq = ?", (conversation, seq)).fetchone()
    return _stored(row) if row else None


def recall_of(conn: sqlite3.Connection, conversation: int, seq: int) -> StoredMessage | None:
    """The `recall` message that took back message `seq`, if any."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM messages WHERE conversation_id = ? AND kind = 'recall' AND ref = ?", (conversation, seq)
    ).fetchone()
    return _stored(row, duplicate=True) if row else None


def change_txn(conn: sqlite3.Connection, target: StoredMessage, *, kind: str, text: str, now: float) -> None:
    """Make the stored message show its recall (no text) or its edit (new text, when); the
    archive, append-only, keeps what it said before."""
    if kind == "recall":
        conn.execute(
            "UPDATE messages SET kind = 'recalled', text = '', mentions = '', edited_at = NULL, file_sha256 = NULL, file = ''"
            " WHERE conversation_id = ? AND seq = ?",
            (target.conversation, target.seq),
        )
    else:
        conn.execute(
            "UPDATE messages SET text = ?, edited_at = ? WHERE conversation_id = ? AND seq = ?",
            (text, now, target.conversation, target.seq),
        )


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
    attach: Callable[[sqlite3.Connection], FileRef] | None = None,
) -> StoredMessage:
    """Store a 1:1 message exactly once; a repeated (device, msg_id) returns the original.
    `attach` makes it a `file` message: it returns the file (or refuses it), and runs only
    for a message not stored before.

    On PostgreSQL each statement is a round trip under the writer lock, and in a batch's
    pipeline (`storage.postgres`) those whose answer is read later go out together. So the
    retry check and the next seq are asked at once, and read only then: the conversation's
    seq moves only if the message is not a retry, and no other writer can store the retry or
    take a seq between these statements and our COMMIT (see the module's docstring). Then the
    message and its archive entry are written, read by no one: one round trip a message."""
    found = conn.execute(_SENT_BEFORE, (device_id, msg_id))
    taking = conn.execute(
        "UPDATE conversations SET last_seq = last_seq + 1 WHERE direct_key = ?"
        " AND NOT EXISTS (SELECT 1 FROM messages WHERE device_id = ? AND msg_id = ?) RETURNING id, last_seq",
        (_direct_key(sender_id, recipient_id), device_id, msg_id),
    )
    original = found.fetchone()
    if original is not None:
        return _stored(original, duplicate=True)
    taken = taking.fetchone()
    file = attach(conn) if attach else None
    if taken is None:  # their first message
        taken = (_open_direct_txn(conn, sender_id, recipient_id, now), 1)
    kind = "file" if file else "text"
    stored = StoredMessage(*taken, sender_id, recipient_id, msg_id, text, now, kind, file=file)
    return _store_txn(conn, stored, sender_name, device_id)


def _open_direct_txn(conn: sqlite3.Connection, a: int, b: int, now: float) -> int:
    """Create the 1:1 conversation of two users, with its two members and its first seq taken."""
    (created,) = conn.execute(
        "INSERT INTO conversations (kind, direct_key, created_at, last_seq) VALUES ('direct', ?, ?, 1) RETURNING id",
        (_direct_key(a, b), now),
    ).fetchone()
    conn.executemany("INSERT INTO conversation_members (user_id, conversation_id) VALUES (?, ?)", {(a, created), (b, created)})
    return created


def messages_after(
    conn: sqlite3.Connection, user_id: int, cursors: dict[int, int], limit: int, only: frozenset[int] = frozenset()
) -> tuple[list[StoredMessage], bool, dict[int, int]]:
    """Up to `limit` messages after each cursor in every conversation of the user, in seq order per
    conversation; conversations without a cursor start from 0, or from where the user joined.
    Only the conversations in `only`, if given. Returns (messages, more, {conversation: join
    point} where that is past the cursor)."""
    conversations = conn.execute(
        "SELECT c.id, c.last_seq, m.joined_seq FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id "
        "WHERE m.user_id = ? ORDER BY c.id",
        (user_id,),
    ).fetchall()
    found: list[StoredMessage] = []
    starts: dict[int, int] = {}
    for conversation, last_seq, joined_seq in conversations:
        if only and conversation not in only:
            continue
        after = cursors.get(conversation, 0)
        if joined_seq > after:  # a group's members see it from when they joined
            after = starts[conversation] = joined_seq
        if last_seq <= after:
            continue
        room = limit - len(found)
        if room <= 0:
            return found, True, starts
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (conversation, after, room),
        ).fetchall()
        found.extend(_stored(row) for row in rows)
        if rows and rows[-1][1] < last_seq:
            return found, True, starts
    return found, False, starts


def history(
    conn: sqlite3.Connection, conversation: int, before: int | None, after: int | None, limit: int, floor: int = 0
) -> list[StoredMessage]:
    """Messages of one conversation after seq `floor` (where the reader joined), oldest first:
    the latest `limit` before `before`, or the first `limit` after `after`."""
    if after is not None:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (conversation, max(after, floor), limit),
        ).fetchall()
        return [_stored(row) for row in rows]
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM messages WHERE conversation_id = ? AND seq > ? AND seq < ? ORDER BY seq DESC LIMIT ?",
        (conversation, floor, before if before is not None else 2**62, limit),
    ).fetchall()
    return [_stored(row) for row in reversed(rows)]


def erase_txn(conn: sqlite3.Connection, conversation: int, seq: int) -> None:
    """Retention erased this message from the archive: erase what its members see too (the
    message keeps its place in the conversation, as kind `purged`)."""
    conn.execute(
        "UPDATE messages SET text = '', kind = 'purged', mentions = '', file_sha256 = NULL, file = ''"
        " WHERE conversation_id = ? AND seq = ?",
        (conversation, seq),
    )


def conversation_exists(conn: sqlite3.Connection, conversation: int) -> bool:
    """Whether a conversation with this id exists."""
    return conn.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation,)).fetchone() is not None


def conversations_of(conn: sqlite3.Connection, user_ids: list[int]) -> set[int]:
    """The conversations any of these users is a member of."""
    query = f"SELECT DISTINCT conversation_id FROM conversation_members WHERE user_id IN ({each(conn)})"
    return {row[0] for row in conn.execute(query, (listed(conn, user_ids),))}
