"""The SQL of groups: a group is a conversation with a name, an owner, admins, a welcome text
and a pinned announcement. Members are the conversation's members; each one's `joined_seq` is
where their view of the group starts. Every change to a group is also a `system` message in it
(appended with `store.append_message_txn`), so members learn of it in order, through the same
gap-free delivery as messages, and the archive records it.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from corridor.protocol.errors import make_error

from . import store

SYSTEM_DEVICE = 0  # system messages come from no device; their msg_ids are random
NAMES_IN_TEXT = 20  # a system message names this many people, then says how many more


@dataclass(frozen=True)
class GroupRow:
    id: int
    name: str
    owner_id: int
    welcome: str
    announcement: str
    announcement_by: int | None
    announcement_ts: float
    announcement_version: int
    created: float
    dissolved: bool
    department: int | None = None  # a department group: its members follow the directory


_GROUP_COLUMNS = (
    "g.conversation_id, g.name, g.owner_id, g.welcome, g.announcement, g.announcement_by, g.announcement_ts,"
    " g.announcement_version, g.created_at, g.dissolved_at IS NOT NULL, g.department_id"
)


def _row(row) -> GroupRow:
    return GroupRow(*row[:9], bool(row[9]), row[10])


def names_text(names) -> str:
    """People for a system message: a few by name, then how many more, so a text about a big
    department stays far within a message's length."""
    names = sorted(names)
    shown = ", ".join(names[:NAMES_IN_TEXT])
    return shown if len(names) <= NAMES_IN_TEXT else f"{shown} and {len(names) - NAMES_IN_TEXT:,} more"


def group(conn: sqlite3.Connection, group_id: int, member_id: int) -> tuple[GroupRow, str]:
    """The group and the member's role in it (owner, admin, member); NO_SUCH_GROUP if they are
    not in it, so non-members learn nothing about it."""
    row = conn.execute(
        f"SELECT {_GROUP_COLUMNS} FROM groups g JOIN conversation_members m ON m.conversation_id = g.conversation_id"
        " WHERE g.conversation_id = ? AND m.user_id = ?",
        (group_id, member_id),
    ).fetchone()
    if row is None:
        raise make_error("NO_SUCH_GROUP", f"you are in no group {group_id}")
    found = _row(row)
    return found, role_of(conn, found, member_id)


def role_of(conn: sqlite3.Connection, found: GroupRow, user_id: int) -> str:
    """owner, admin or member."""
    if found.owner_id == user_id:
        return "owner"
    admin = conn.execute("SELECT 1 FROM group_admins WHERE conversation_id = ? AND user_id = ?", (found.id, user_id)).fetchone()
    return "admin" if admin else "member"


def joined_seq(conn: sqlite3.Connection, group_id: int, user_id: int) -> int:
    """The seq after which the member sees the group's messages."""
    row = conn.execute(
        "SELECT joined_seq FROM conversation_members WHERE conversation_id = ? AND user_id = ?", (group_id, user_id)
    ).fetchone()
    return row[0] if row else 2**62


def member_ids(conn: sqlite3.Connection, group_id: int) -> list[int]:
    """Everyone in the group."""
    return [row[0] for row in conn.execute("SELECT user_id FROM conversation_members WHERE conversation_id = ?", (group_id,))]


def admin_ids(conn: sqlite3.Connection, group_id: int) -> list[int]:
    """The group's admins (not counting its owner)."""
    return [row[0] for row in conn.execute("SELECT user_id FROM group_admins WHERE conversation_id = ?", (group_id,))]


def announcement_readers(conn: sqlite3.Connection, found: GroupRow) -> list[int]:
    """Who has read the current announcement."""
    return [
        row[0]
        for row in conn.execute(
            "SELECT user_id FROM announcement_reads WHERE conversation_id = ? AND version = ?",
            (found.id, found.announcement_version),
        )
    ]


def my_groups(conn: sqlite3.Connection, user_id: int) -> list[tuple[int, str, int, int]]:
    """(id, name, member count, owner id) of the user's groups that are not dissolved, by name."""
    return conn.execute(
        "SELECT g.conversation_id, g.name, (SELECT count(*) FROM conversation_members c WHERE c.conversation_id = g.conversation_id),"
        " g.owner_id FROM groups g JOIN conversation_members m ON m.conversation_id = g.conversation_id"
        " WHERE m.user_id = ? AND g.dissolved_at IS NULL ORDER BY g.name, g.conversation_id",
        (user_id,),
    ).fetchall()


def system_message_txn(
    conn: sqlite3.Connection, group_id: int, *, by_id: int, by: str, text: str, now: float, kind: str = "system"
) -> store.StoredMessage:
    """A message from the group itself, e.g. "alice added bob"."""
    return store.append_message_txn(
        conn,
        conversation=group_id,
        sender_id=by_id,
        sender_name=by,
        device_id=SYSTEM_DEVICE,
        recipient_id=None,
        msg_id=f"system-{uuid.uuid4().hex}",
        text=text,
        now=now,
        kind=kind,
    )


def create_txn(
    conn: sqlite3.Connection,
    *,
    name: str,
    owner_id: int,
    owner: str,
    members: dict[int, str],
    welcome: str,
    now: float,
    text: str = "",
):
    """Create the group with its owner and first members; returns (id, its first message),
    which says `text` or by default who created it with whom."""
    (group_id,) = conn.execute("INSERT INTO conversations (kind, created_at) VALUES ('group', ?) RETURNING id", (now,)).fetchone()
    conn.execute(
        "INSERT INTO groups (conversation_id, name, owner_id, welcome, created_at) VALUES (?, ?, ?, ?, ?)",
        (group_id, name, owner_id, welcome, now),
    )
    conn.executemany(
        "INSERT INTO conversation_members (user_id, conversation_id, joined_seq) VALUES (?, ?, 0)",
        [(user_id, group_id) for user_id in {owner_id, *members}],
    )
    others = names_text(n for i, n in members.items() if i != owner_id)
    text = text or f"{owner} created the group {name!r}" + (f" with {others}" if others else "")
    return group_id, [system_message_txn(conn, group_id, by_id=owner_id, by=owner, text=text, now=now)]


def add_members_txn(
    conn: sqlite3.Connection,
    found: GroupRow,
    *,
    by_id: int,
    by: str,
    members: dict[int, str],
    now: float,
    says: Callable[[str], str] | None = None,
) -> list[store.StoredMessage]:
    """Add those not yet in the group: they see it from the "added" message on (what `says`
    makes of their names; by default "BY added …"), then the welcome."""
    present = set(member_ids(conn, found.id))
    new = {i: n for i, n in members.items() if i not in present}
    if not new:
        return []
    store.hold_sequence(conn, found.id)  # so no other process's message slips between join point and "added"
    (last_seq,) = conn.execute("SELECT last_seq FROM conversations WHERE id = ?", (found.id,)).fetchone()
    conn.executemany(
        "INSERT INTO conversation_members (user_id, conversation_id, joined_seq) VALUES (?, ?, ?)",
        [(user_id, found.id, last_seq) for user_id in new],
    )
    text = (says or (lambda names: f"{by} added {names}"))(names_text(new.values()))
    said = [system_message_txn(conn, found.id, by_id=by_id, by=by, text=text, now=now)]
    if found.welcome:
        owner = conn.execute("SELECT username FROM users WHERE id = ?", (found.owner_id,)).fetchone()[0]
        said.append(
            system_message_txn(conn, found.id, by_id=found.owner_id, by=owner, text=found.welcome, now=now, kind="welcome")
        )
    return said


def remove_members_txn(
    conn: sqlite3.Connection,
    found: GroupRow,
    *,
    by_id: int,
    by: str,
    members: dict[int, str],
    now: float,
    left: bool = False,
    says: Callable[[str], str] | None = None,
) -> list[store.StoredMessage]:
    """Take members out (they keep nothing of the group but what their devices hold). The
    message says "BY left", or what `says` makes of their names (by default "BY removed …")."""
    present = set(member_ids(conn, found.id))
    gone = {i: n for i, n in members.items() if i in present}
    if not gone:
        return []
    text = f"{by} left" if left else (says or (lambda names: f"{by} removed {names}"))(names_text(gone.values()))
    said = system_message_txn(conn, found.id, by_id=by_id, by=by, text=text, now=now)
    conn.executemany("DELETE FROM conversation_members WHERE conversation_id = ? AND user_id = ?", [(found.id, i) for i in gone])
    conn.executemany("DELETE FROM group_admins WHERE conversation_id = ? AND user_id = ?", [(found.id, i) for i in gone])
    return [said]


def forget_txn(conn: sqlite3.Connection, found: GroupRow, user_id: int) -> None:
    """Take a member out of a dissolved group, so it leaves their sync (its archive stays)."""
    conn.execute("DELETE FROM conversation_members WHERE conversation_id = ? AND user_id = ?", (found.id, user_id))


def set_role_txn(
    conn: sqlite3.Connection, found: GroupRow, *, by_id: int, by: str, user_id: int, user: str, role: str, now: float
) -> list[store.StoredMessage]:
    """Make someone an admin or a plain member, or the owner (the old owner becomes an admin)."""
    if role == "owner":
        conn.execute("UPDATE groups SET owner_id = ? WHERE conversation_id = ?", (user_id, found.id))
        conn.execute("DELETE FROM group_admins WHERE conversation_id = ? AND user_id = ?", (found.id, user_id))
        conn.execute(
            "INSERT INTO group_admins (conversation_id, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING", (found.id, found.owner_id)
        )
        text = f"{by} handed the group over to {user}"
    elif role == "admin":
        conn.execute(
            "INSERT INTO group_admins (conversation_id, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING", (found.id, user_id)
        )
        text = f"{by} made {user} an admin"
    else:
        conn.execute("DELETE FROM group_admins WHERE conversation_id = ? AND user_id = ?", (found.id, user_id))
        text = f"{by} made {user} a member"
    return [system_message_txn(conn, found.id, by_id=by_id, by=by, text=text, now=now)]


def update_txn(
    conn: sqlite3.Connection, found: GroupRow, *, by_id: int, by: str, name: str | None, welcome: str | None, now: float
) -> list[store.StoredMessage]:
    """Rename the group and/or change its welcome text."""
    said = []
    if name is not None and name != found.name:
        conn.execute("UPDATE groups SET name = ? WHERE conversation_id = ?", (name, found.id))
        said.append(system_message_txn(conn, found.id, by_id=by_id, by=by, text=f"{by} renamed the group to {name!r}", now=now))
    if welcome is not None and welcome != found.welcome:
        conn.execute("UPDATE groups SET welcome = ? WHERE conversation_id = ?", (welcome, found.id))
        said.append(system_message_txn(conn, found.id, by_id=by_id, by=by, text=f"{by} changed the welcome message", now=now))
    return said


def announce_txn(
    conn: sqlite3.Connection, found: GroupRow, *, by_id: int, by: str, text: str, now: float
) -> list[store.StoredMessage]:
    """Pin a new announcement (a new version: nobody has read it yet) or remove it."""
    conn.execute(
        "UPDATE groups SET announcement = ?, announcement_by = ?, announcement_ts = ?,"
        " announcement_version = announcement_version + 1 WHERE conversation_id = ?",
        (text, by_id, now, found.id),
    )
    said = f"{by} pinned an announcement: {text}" if text else f"{by} removed the announcement"
    return [system_message_txn(conn, found.id, by_id=by_id, by=by, text=said, now=now)]


def announcement_read_txn(conn: sqlite3.Connection, found: GroupRow, user_id: int) -> None:
    """Record that the member read the current announcement."""
    conn.execute(
        "INSERT INTO announcement_reads (conversation_id, user_id, version) VALUES (?, ?, ?)"
        " ON CONFLICT (conversation_id, user_id) DO UPDATE SET version = excluded.version",
        (found.id, user_id, found.announcement_version),
    )


def dissolve_txn(conn: sqlite3.Connection, found: GroupRow, *, by_id: int, by: str, now: float) -> list[store.StoredMessage]:
    """End the group: its last message says so; nobody can send to it again."""
    said = system_message_txn(conn, found.id, by_id=by_id, by=by, text=f"{by} dissolved the group", now=now)
    conn.execute("UPDATE groups SET dissolved_at = ? WHERE conversation_id = ?", (now, found.id))
    return [said]


def handover_txn(
    conn: sqlite3.Connection, *, user_id: int, username: str, successor_id: int, successor: str, now: float
) -> tuple[list[str], list[tuple[store.StoredMessage, list[int]]]]:
    """A departing user's groups go to the successor (who joins any they were not in); returns
    what was handed over, in words, and the system messages to deliver with their members."""
    handed, said = [], []
    owned = conn.execute(
        f"SELECT {_GROUP_COLUMNS} FROM groups g WHERE g.owner_id = ? AND g.dissolved_at IS NULL ORDER BY g.conversation_id",
        (user_id,),
    ).fetchall()
    for row in owned:
        found = _row(row)
        messages = add_members_txn(conn, found, by_id=user_id, by=username, members={successor_id: successor}, now=now)
        conn.execute("UPDATE groups SET owner_id = ? WHERE conversation_id = ?", (successor_id, found.id))
        conn.execute(
            "DELETE FROM group_admins WHERE conversation_id = ? AND user_id IN (?, ?)", (found.id, user_id, successor_id)
        )
        text = f"{successor} now owns the group, handed over from {username}"
        messages.append(system_message_txn(conn, found.id, by_id=user_id, by=username, text=text, now=now))
        members = member_ids(conn, found.id)
        said += [(message, members) for message in messages]
        handed.append(f"group #{found.id} {found.name!r}")
    return handed, said


# -- department groups --------------------------------------------------------------------------
# These read the directory's tables: following the directory is what a department group is.

# The CAST gives the recursion's first row the type of the ids it meets (PostgreSQL would take
# the parameter for text), and `active = 1` is a condition on both engines (PostgreSQL's WHERE
# wants a boolean, not SQLite's integer).
_SUBTREE_PEOPLE = (
    "WITH RECURSIVE down(id) AS (SELECT CAST(? AS BIGINT) UNION SELECT d.id FROM departments d JOIN down ON d.parent_id = down.id)"
    " SELECT DISTINCT u.id, u.username FROM down JOIN department_members m ON m.department_id = down.id"
    " JOIN users u ON u.id = m.user_id WHERE u.active = 1"
)


def department_name(conn: sqlite3.Connection, department_id: int) -> str | None:
    """A department's name, or None if there is no such department."""
    row = conn.execute("SELECT name FROM departments WHERE id = ?", (department_id,)).fetchone()
    return row[0] if row else None


def department_people(conn: sqlite3.Connection, department_id: int) -> dict[int, str]:
    """The active people of a department and of every department below it."""
    return dict(conn.execute(_SUBTREE_PEOPLE, (department_id,)).fetchall())


def directory_version(conn: sqlite3.Connection) -> int:
    """The directory's version: it grows with every change to people, departments or memberships."""
    return conn.execute("SELECT coalesce(max(version), 0) FROM directory_log").fetchone()[0]


def set_department_txn(conn: sqlite3.Connection, group_id: int, department_id: int | None) -> None:
    """Make a group follow a department (or, with None, stop following one)."""
    conn.execute("UPDATE groups SET department_id = ? WHERE conversation_id = ?", (department_id, group_id))


def department_groups(conn: sqlite3.Connection) -> list[GroupRow]:
    """Every department group that is not dissolved."""
    rows = conn.execute(
        f"SELECT {_GROUP_COLUMNS} FROM groups g WHERE g.department_id IS NOT NULL AND g.dissolved_at IS NULL"
        " ORDER BY g.conversation_id"
    ).fetchall()
    return [_row(row) for row in rows]
