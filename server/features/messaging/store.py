"""The messaging feature's SQL for messages and 1:1 conversations (groups: `group_store`).

`send_direct_txn` does the whole send in the caller's transaction: the idempotency check on
(sender device, msg_id), the conversation (created on first use), the next sequence number,
the message row and its archive entry. Because it all commits together, an acknowledged
message always has its seq and its archive entry, and a retry finds the original.

The SQL runs on SQLite and on PostgreSQL alike (docs/architecture.md, "Storage backends"). On
PostgreSQL several server processes may send into one conversation at once: a send holds the
conversation's sequence (`hold_sequence`) before it looks for a retry and takes the next seq,
so sequences stay gap-free and a (device, msg_id) is stored once, as SQLite's single writer
gives for free.
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


def find_duplicate(conn: sqlite3.Connection, device_id: int, msg_id: str) -> StoredMessage | None:
    """The message this device already sent with this id, if any (a retry)."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM messages WHERE device_id = ? AND msg_id = ?", (device_id, msg_id)).fetchone()
    return _stored(row, duplicate=True) if row else None


def hold_sequence(conn: sqlite3.Connection, conversation: int) -> None:
    """Hold the conversation's sequence until the transaction ends. On PostgreSQL another
    process's send into the conversation waits here until ours commits, and ours for theirs: a
    send that looks for its retry after this sees one committed meanwhile (READ COMMITTED: each
    statement sees what was committed before it), rather than failing on the idempotency index,
    which would abort its savepoint; and a new member's join point cannot move under them.
    SQLite's writer holds the whole database already."""
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
    transaction (the UPDATE holds the sequence, as `hold_sequence` does, until it commits: no
    other writer takes the same seq, and a failed send's seq goes back with its savepoint). A
    `file` message's archive entry names the file's content hash, so the archive
    references every file sent."""
    (seq,) = conn.execute(
        "UPDATE conversations SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq", (conversation,)
    ).fetchone()
    conn.execute(
        f"INSERT INTO messages ({_WRITTEN}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            conversation,
            seq,
            sender_id,
            recipient_id,
            msg_id,
            text,
            now,
            kind,
            json.dumps(mentions) if mentions else "",
            ref,
            device_id,
            file.id if file else None,
            json.dumps(file.to_fields()) if file else "",
        ),
    )
    payload = {"seq": seq, "sender": sender_id, "recipient": recipient_id, "device": device_id, "msg_id": msg_id, "text": text}
    if kind != "text":
        payload["kind"] = kind
    if mentions:
        payload["mentions"] = list(mentions)
    if ref:
        payload["ref"] = ref
    if file:
        payload["file"] = {"sha256": file.id, "name": file.name, "size": file.size}
    append_txn(conn, ts=now, actor=sender_name, kind="message", conversation=conversation, payload=payload)
    return StoredMessage(conversation, seq, sender_id, recipient_id, msg_id, text, now, kind, mentions, ref, file=file)


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
    for a message not stored before."""
    duplicate = find_duplicate(conn, device_id, msg_id)
    if duplicate is not None:
        return duplicate
    conversation = direct_conversation(conn, sender_id, recipient_id) or _open_direct_txn(conn, sender_id, recipient_id, now)
    hold_sequence(conn, conversation)
    # Again under the hold: on PostgreSQL another process may have stored this retry meanwhile.
    duplicate = find_duplicate(conn, device_id, msg_id)
    if duplicate is not None:
        return duplicate
    file = attach(conn) if attach else None
    return append_message_txn(
        conn,
        conversation=conversation,
        sender_id=sender_id,
        sender_name=sender_name,
        device_id=device_id,
        recipient_id=recipient_id,
        msg_id=msg_id,
        text=text,
        now=now,
        kind="file" if file else "text",
        file=file,
    )


def _open_direct_txn(conn: sqlite3.Connection, a: int, b: int, now: float) -> int:
    """The 1:1 conversation of two users, created with its two members. On PostgreSQL another
    process may be creating it at the same moment: the insert then waits for that one's commit
    and yields, and the conversation it made is the one found."""
    created = conn.execute(
        "INSERT INTO conversations (kind, direct_key, created_at) VALUES ('direct', ?, ?)"
        " ON CONFLICT (direct_key) DO NOTHING RETURNING id",
        (_direct_key(a, b), now),
    ).fetchone()
    if created is None:
        return direct_conversation(conn, a, b)
    conn.executemany(
        "INSERT INTO conversation_members (user_id, conversation_id) VALUES (?, ?)", {(a, created[0]), (b, created[0])}
    )
    return created[0]


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
