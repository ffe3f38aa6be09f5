"""The integrations feature's SQL. `*_txn` functions run in the caller's transaction. The SQL
runs on SQLite and on PostgreSQL alike (docs/architecture.md, "Storage backends")."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from corridor.protocol.errors import make_error

from ..accounts.store import add_device_txn, create_user_txn
from ..archive.store import admin_action_txn, append_txn


@dataclass(frozen=True)
class IntegrationRow:
    id: int
    name: str
    display_name: str
    user_id: int
    device_id: int
    scopes: tuple[str, ...]
    allow_from: tuple[str, ...]
    rate_per_minute: int
    created: float
    last_used: float


_COLUMNS = (
    "i.id, i.name, u.display_name, i.user_id, i.device_id, i.scopes, i.allow_from, i.rate_per_minute,"
    " i.created_at, i.last_used FROM integrations i JOIN users u ON u.id = i.user_id"
)


def _row(row) -> IntegrationRow | None:
    if row is None:
        return None
    return IntegrationRow(
        row[0], row[1], row[2], row[3], row[4], tuple(json.loads(row[5])), tuple(json.loads(row[6])), row[7], row[8], row[9]
    )


def add_txn(
    conn: sqlite3.Connection,
    *,
    name: str,
    display_name: str,
    scopes: tuple[str, ...],
    allow_from: tuple[str, ...],
    rate_per_minute: int,
    token_hash: bytes,
    device_token_hash: bytes,
    actor: str,
    now: float,
):
    """Create the integration with its bot account and that account's device; archived.
    Returns the new bot's UserRow (for the user cache)."""
    bot = create_user_txn(conn, name, display_name, "user", now, bot=True)
    device_id = add_device_txn(conn, bot.id, f"integration {name}", device_token_hash, now)
    conn.execute(
        "INSERT INTO integrations (name, user_id, device_id, token_hash, scopes, allow_from, rate_per_minute, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (name, bot.id, device_id, token_hash, json.dumps(list(scopes)), json.dumps(list(allow_from)), rate_per_minute, now),
    )
    admin_action_txn(
        conn,
        actor=actor,
        now=now,
        action="integration_add",
        integration=name,
        scopes=list(scopes),
        allow_from=list(allow_from),
        rate_per_minute=rate_per_minute,
    )
    return bot


def active(conn: sqlite3.Connection) -> list[IntegrationRow]:
    """The integrations in force, by name."""
    return [_row(r) for r in conn.execute(f"SELECT {_COLUMNS} WHERE i.revoked_at IS NULL ORDER BY i.name")]


def by_token(conn: sqlite3.Connection, token_hash: bytes) -> IntegrationRow | None:
    """The integration in force whose bot is active and whose token hashes to `token_hash`."""
    return _row(
        conn.execute(
            f"SELECT {_COLUMNS} WHERE i.token_hash = ? AND i.revoked_at IS NULL AND u.active = 1", (token_hash,)
        ).fetchone()
    )


def _require(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute("SELECT id FROM integrations WHERE name = ? AND revoked_at IS NULL", (name,)).fetchone()
    if row is None:
        raise make_error("NO_SUCH_INTEGRATION", f"no integration '{name}' is in force")
    return row[0]


def rotate_txn(conn: sqlite3.Connection, *, name: str, token_hash: bytes, actor: str, now: float) -> None:
    """Replace the integration's token; archived."""
    conn.execute("UPDATE integrations SET token_hash = ? WHERE id = ?", (token_hash, _require(conn, name)))
    admin_action_txn(conn, actor=actor, now=now, action="integration_rotate", integration=name)


def revoke_txn(conn: sqlite3.Connection, *, name: str, actor: str, now: float) -> None:
    """Revoke the integration (its bot account and what it sent stay); archived."""
    conn.execute("UPDATE integrations SET revoked_at = ? WHERE id = ?", (now, _require(conn, name)))
    admin_action_txn(conn, actor=actor, now=now, action="integration_revoke", integration=name)


def touch_txn(conn: sqlite3.Connection, used: dict[int, float]) -> None:
    """Record when integrations were last used (batched: not a write per call)."""
    conn.executemany("UPDATE integrations SET last_used = ? WHERE id = ?", [(ts, i) for i, ts in used.items()])


def call_txn(conn: sqlite3.Connection, *, actor: str, call: str, details: dict, now: float) -> None:
    """Archive one lookup an integration made (`integration_call` entries)."""
    append_txn(conn, ts=now, actor=actor, kind="integration_call", conversation=None, payload={"call": call, **details})
