"""The notices feature's SQL: sending (recipients fixed at send time), inboxes, read counts.
The SQL runs on SQLite and on PostgreSQL alike (docs/architecture.md, "Storage backends")."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from corridor.protocol.errors import make_error

from ...storage.sql import each, listed
from ..archive.store import append_txn
from ..policies.store import existing_departments, subtree

HOUR = 3600.0


@dataclass(frozen=True)
class Sent:
    id: int
    recipients: list[int]
    ts: float
    duplicate: bool


def sent_since(conn: sqlite3.Connection, sender_id: int, since: float) -> list[float]:
    """When the sender sent notices after `since`, oldest first (for the hourly limit)."""
    return [
        row[0]
        for row in conn.execute(
            "SELECT created_at FROM notices WHERE sender_id = ? AND created_at > ? ORDER BY created_at", (sender_id, since)
        )
    ]


def already_sent(conn: sqlite3.Connection, device_id: int, msg_id: str) -> bool:
    """Whether this device already sent a notice with this id (a retry)."""
    return conn.execute("SELECT 1 FROM notices WHERE device_id = ? AND msg_id = ?", (device_id, msg_id)).fetchone() is not None


def send_txn(
    conn: sqlite3.Connection,
    *,
    sender_id: int,
    sender_name: str,
    device_id: int,
    msg_id: str,
    title: str,
    text: str,
    departments: tuple[int, ...],
    everyone: bool,
    now: float,
    users: tuple[int, ...] = (),
) -> Sent:
    """Store a notice for everyone active in the departments' subtrees and the `users` (or
    everyone), except its sender, and archive it; a repeated (device, msg_id) returns the first."""
    row = conn.execute("SELECT id, created_at FROM notices WHERE device_id = ? AND msg_id = ?", (device_id, msg_id)).fetchone()
    if row:
        return Sent(row[0], [], row[1], True)
    if everyone:
        recipients = [r[0] for r in conn.execute("SELECT id FROM users WHERE active = 1 AND id != ?", (sender_id,))]
    else:
        missing = set(departments) - existing_departments(conn, departments)
        if missing:
            raise make_error("NO_SUCH_DEPARTMENT", f"no department {min(missing)}")
        # A UNION of index lookups, not a scan of every user: the named people, then the
        # members of the departments' subtrees.
        recipients = [
            r[0]
            for r in conn.execute(
                f"SELECT id FROM users WHERE id IN ({each(conn)}) AND active = 1 AND id != ?"
                " UNION SELECT u.id FROM department_members m JOIN users u ON u.id = m.user_id"
                f" WHERE m.department_id IN ({each(conn)}) AND u.active = 1 AND u.id != ?"
                " ORDER BY 1",
                (
                    listed(conn, users),
                    sender_id,
                    listed(conn, sorted(subtree(conn, departments)) if departments else []),
                    sender_id,
                ),
            )
        ]
    named: dict = {"departments": sorted(departments)}
    if users:
        query = f"SELECT username FROM users WHERE id IN ({each(conn)}) ORDER BY username"
        named["users"] = [r[0] for r in conn.execute(query, (listed(conn, users),))]
    targets = json.dumps({"everyone": True} if everyone else named)
    (notice,) = conn.execute(
        "INSERT INTO notices (sender_id, device_id, msg_id, title, text, targets, recipients, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (sender_id, device_id, msg_id, title, text, targets, len(recipients), now),
    ).fetchone()
    conn.executemany("INSERT INTO notice_recipients (notice_id, user_id) VALUES (?, ?)", [(notice, r) for r in recipients])
    append_txn(
        conn,
        ts=now,
        actor=sender_name,
        kind="notice",
        conversation=None,
        payload={"id": notice, "title": title, "text": text, "targets": json.loads(targets), "recipients": len(recipients)},
    )
    return Sent(notice, recipients, now, False)


def inbox(conn: sqlite3.Connection, user_id: int, unread: bool, limit: int) -> list[tuple]:
    """(id, sender id, title, text, ts, read) of the user's notices, newest first."""
    return conn.execute(
        "SELECT n.id, n.sender_id, n.title, n.text, n.created_at, r.read_at IS NOT NULL FROM notice_recipients r"
        " JOIN notices n ON n.id = r.notice_id WHERE r.user_id = ? AND (? = 0 OR r.read_at IS NULL)"
        " ORDER BY n.id DESC LIMIT ?",
        (user_id, int(unread), limit),
    ).fetchall()


def mark_read_txn(conn: sqlite3.Connection, notice_id: int, user_id: int, now: float) -> tuple[int, int, int] | None:
    """Record the read; returns (sender id, read count, recipients) if it was new, None if it was
    read before. NO_SUCH_NOTICE if the notice was not sent to the user."""
    row = conn.execute(
        "SELECT read_at FROM notice_recipients WHERE notice_id = ? AND user_id = ?", (notice_id, user_id)
    ).fetchone()
    if row is None:
        raise make_error("NO_SUCH_NOTICE", f"no notice {notice_id} was sent to you")
    if row[0] is not None:
        return None
    conn.execute("UPDATE notice_recipients SET read_at = ? WHERE notice_id = ? AND user_id = ?", (now, notice_id, user_id))
    return conn.execute(
        "UPDATE notices SET read_count = read_count + 1 WHERE id = ? RETURNING sender_id, read_count, recipients", (notice_id,)
    ).fetchone()


def status(conn: sqlite3.Connection, notice_id: int, sender_id: int | None, limit: int) -> tuple[int, int, list[int], int]:
    """(recipients, read, the first `limit` unread user ids by name, how many more) of a notice sent by
    `sender_id` (None: by anyone, for IT admins)."""
    row = conn.execute(
        "SELECT recipients, read_count FROM notices WHERE id = ? AND (CAST(? AS INTEGER) IS NULL OR sender_id = ?)",
        (notice_id, sender_id, sender_id),
    ).fetchone()
    if row is None:
        raise make_error("NO_SUCH_NOTICE", f"you sent no notice {notice_id}")
    unread = [
        r[0]
        for r in conn.execute(
            "SELECT r.user_id FROM notice_recipients r JOIN users u ON u.id = r.user_id"
            " WHERE r.notice_id = ? AND r.read_at IS NULL ORDER BY u.username LIMIT ?",
            (notice_id, limit),
        )
    ]
    recipients, read = row
    return recipients, read, unread, recipients - read - len(unread)


def erase_txn(conn: sqlite3.Connection, notice_id: int) -> None:
    """Retention erased this notice from the archive: erase its title and text from inboxes too."""
    conn.execute("UPDATE notices SET title = '', text = '' WHERE id = ?", (notice_id,))
