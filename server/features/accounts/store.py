"""The accounts feature's SQL: users, invites, devices. `*_txn` functions run in the caller's
transaction (through `Database.write`); the others are reads. The SQL runs on SQLite and on
PostgreSQL alike (docs/architecture.md, "Storage backends")."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from corridor.protocol.errors import make_error

from ..archive.store import admin_action_txn


@dataclass(frozen=True)
class UserRow:
    id: int
    username: str
    display_name: str
    role: str
    active: bool
    bot: bool = False


_USER_COLUMNS = "id, username, display_name, role, active, bot"


def _user(row) -> UserRow | None:
    return UserRow(row[0], row[1], row[2], row[3], bool(row[4]), bool(row[5])) if row else None


def create_user_txn(
    conn: sqlite3.Connection, username: str, display_name: str, role: str, now: float, *, bot: bool = False
) -> UserRow:
    """Insert a user without a password (set at enrollment; a bot never has one);
    ALREADY_EXISTS if the name is taken."""
    try:
        (user_id,) = conn.execute(
            "INSERT INTO users (username, display_name, role, created_at, bot) VALUES (?, ?, ?, ?, ?) RETURNING id",
            (username, display_name, role, now, int(bot)),
        ).fetchone()
    except sqlite3.IntegrityError:
        raise make_error("ALREADY_EXISTS", f"user '{username}' already exists") from None
    return UserRow(user_id, username, display_name, role, True, bot)


def create_invite_txn(conn: sqlite3.Connection, user_id: int, token_hash: bytes, now: float, expires_at: float) -> None:
    """Store a one-time invite (only its hash) for a user."""
    conn.execute(
        "INSERT INTO invites (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
        (token_hash, user_id, now, expires_at),
    )


def add_user_with_invite_txn(
    conn: sqlite3.Connection,
    *,
    username: str,
    display_name: str,
    role: str,
    token_hash: bytes,
    actor: str,
    now: float,
    expires_at: float,
    departments: tuple[int, ...] = (),
    bot: bool = False,
) -> UserRow:
    """Create an account (a person's, or a `bot`'s) with its one-time invite, and archive who did
    it (the caller places the user in `departments`)."""
    user = create_user_txn(conn, username, display_name, role, now, bot=bot)
    create_invite_txn(conn, user.id, token_hash, now, expires_at)
    admin_action_txn(
        conn,
        actor=actor,
        now=now,
        action="user_add",
        user=username,
        display_name=display_name,
        role=role,
        departments=sorted(departments),
        bot=bot,
    )
    return user


def all_users(conn: sqlite3.Connection) -> list[UserRow]:
    """Every user, for the in-memory user cache."""
    return [_user(row) for row in conn.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY id")]


def password_hash(conn: sqlite3.Connection, user_id: int) -> str | None:
    """The stored password hash of an active user, or None."""
    row = conn.execute("SELECT password_hash FROM users WHERE id = ? AND active = 1", (user_id,)).fetchone()
    return row[0] if row else None


def invited_user(conn: sqlite3.Connection, token_hash: bytes, now: float) -> UserRow | None:
    """The active user an unused, unexpired invite belongs to."""
    row = conn.execute(
        f"SELECT {', '.join('u.' + c for c in _USER_COLUMNS.split(', '))} FROM invites i JOIN users u ON u.id = i.user_id "
        "WHERE i.token_hash = ? AND i.used_at IS NULL AND i.expires_at > ? AND u.active = 1",
        (token_hash, now),
    ).fetchone()
    return _user(row)


def redeem_invite_txn(
    conn: sqlite3.Connection, token_hash: bytes, user_id: int, new_password_hash: str | None, now: float
) -> None:
    """Mark the invite used and set the password (None for a bot, which never has one: its
    password login then fails like a wrong password); INVITE_INVALID if someone redeemed it first."""
    cursor = conn.execute(
        "UPDATE invites SET used_at = ? WHERE token_hash = ? AND user_id = ? AND used_at IS NULL AND expires_at > ?",
        (now, token_hash, user_id, now),
    )
    if cursor.rowcount != 1:
        raise make_error("INVITE_INVALID")
    conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (new_password_hash, user_id))


def add_device_txn(conn: sqlite3.Connection, user_id: int, name: str, token_hash: bytes, now: float) -> int:
    """Register a device and its token hash; returns the device id."""
    return conn.execute(
        "INSERT INTO devices (user_id, name, token_hash, created_at) VALUES (?, ?, ?, ?) RETURNING id",
        (user_id, name, token_hash, now),
    ).fetchone()[0]


def device_for_token(conn: sqlite3.Connection, token_hash: bytes) -> tuple[int, int] | None:
    """(device id, user id) of a live device token of an active user, or None."""
    row = conn.execute(
        "SELECT d.id, d.user_id FROM devices d JOIN users u ON u.id = d.user_id "
        "WHERE d.token_hash = ? AND d.revoked_at IS NULL AND u.active = 1",
        (token_hash,),
    ).fetchone()
    return (row[0], row[1]) if row else None


def set_active_txn(conn: sqlite3.Connection, *, user_id: int, active: bool, actor: str, now: float) -> UserRow:
    """Activate or deactivate an account (deactivating also revokes its unused invites); archived."""
    before = user_row(conn, user_id)
    conn.execute("UPDATE users SET active = ? WHERE id = ?", (int(active), user_id))
    if not active:
        revoke_invites_txn(conn, user_id, now)
    action = "user_reactivate" if active else "user_deactivate"
    admin_action_txn(conn, actor=actor, now=now, action=action, user=before.username, before={"active": before.active})
    return user_row(conn, user_id)


def user_row(conn: sqlite3.Connection, user_id: int) -> UserRow:
    """One user as it is in this transaction (for the user cache after a change)."""
    return _user(conn.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", (user_id,)).fetchone())


def record_handover_txn(conn: sqlite3.Connection, *, actor: str, now: float, user: str, successor: str, items: list[str]) -> None:
    """Archive what a departing user handed over to whom."""
    admin_action_txn(conn, actor=actor, now=now, action="user_handover", user=user, successor=successor, items=items)


def revoke_invites_txn(conn: sqlite3.Connection, user_id: int, now: float) -> int:
    """Make the user's unused invites unusable (marked as expired now); returns how many."""
    return conn.execute(
        "UPDATE invites SET expires_at = ? WHERE user_id = ? AND used_at IS NULL AND expires_at > ?", (now, user_id, now)
    ).rowcount


def revoke_invites_by_admin_txn(conn: sqlite3.Connection, *, user_id: int, actor: str, now: float) -> int:
    """An admin revokes the user's unused invites; archived. Returns how many there were."""
    revoked = revoke_invites_txn(conn, user_id, now)
    admin_action_txn(conn, actor=actor, now=now, action="invite_revoke", user=user_row(conn, user_id).username, revoked=revoked)
    return revoked


def pending_invites(conn: sqlite3.Connection, user_id: int | None, now: float) -> list[tuple[str, float, float]]:
    """(username, created, expires) of unused, unexpired invites, oldest first."""
    return conn.execute(
        "SELECT u.username, i.created_at, i.expires_at FROM invites i JOIN users u ON u.id = i.user_id"
        " WHERE i.used_at IS NULL AND i.expires_at > ? AND (CAST(? AS INTEGER) IS NULL OR i.user_id = ?) ORDER BY i.created_at",
        (now, user_id, user_id),
    ).fetchall()


def reissue_invite_txn(
    conn: sqlite3.Connection, *, user_id: int, token_hash: bytes, actor: str, now: float, expires_at: float
) -> None:
    """Replace the user's unused invites with a new one; archived."""
    revoke_invites_txn(conn, user_id, now)
    create_invite_txn(conn, user_id, token_hash, now, expires_at)
    admin_action_txn(conn, actor=actor, now=now, action="invite_reissue", user=user_row(conn, user_id).username)


def devices(conn: sqlite3.Connection, user_id: int) -> list[tuple[int, str, float, bool]]:
    """(id, name, created, revoked) of every device the user ever registered."""
    return [
        (row[0], row[1], row[2], row[3] is not None)
        for row in conn.execute("SELECT id, name, created_at, revoked_at FROM devices WHERE user_id = ? ORDER BY id", (user_id,))
    ]


def revoke_device_txn(conn: sqlite3.Connection, *, user_id: int, device_id: int, actor: str, now: float) -> None:
    """Revoke one of the user's devices (NO_SUCH_DEVICE if it is not theirs); archived."""
    found = conn.execute("SELECT revoked_at FROM devices WHERE id = ? AND user_id = ?", (device_id, user_id)).fetchone()
    if found is None:
        raise make_error("NO_SUCH_DEVICE", f"no device {device_id} for this user")
    if found[0] is None:
        conn.execute("UPDATE devices SET revoked_at = ? WHERE id = ?", (now, device_id))
    username = user_row(conn, user_id).username
    admin_action_txn(conn, actor=actor, now=now, action="device_revoke", user=username, device=device_id)
