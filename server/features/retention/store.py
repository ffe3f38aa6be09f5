"""Retention's SQL: the rules and the holds, each change archived as an admin action in the
same transaction."""

from __future__ import annotations

import sqlite3

from corridor.protocol.audit import LegalHold, RetentionRule
from corridor.protocol.errors import make_error

from ..archive.store import admin_action_txn


def rules(conn: sqlite3.Connection) -> tuple[RetentionRule, ...]:
    """Every retention rule, the global one first."""
    rows = conn.execute("SELECT department_id, days FROM retention_rules ORDER BY coalesce(department_id, 0)")
    return tuple(RetentionRule(department=d, days=days) for d, days in rows)


# The rule of a department, or the global rule (NULL): `IS ?` in SQLite, which PostgreSQL
# spells differently; department ids start at 1, so 0 stands for NULL on both.
_RULE_OF = "coalesce(department_id, 0) = coalesce(CAST(? AS BIGINT), 0)"


def set_rule_txn(conn: sqlite3.Connection, department: int | None, days: int, actor: str, now: float) -> None:
    """Create or replace the rule for a department (None: the global rule)."""
    if department is not None and not conn.execute("SELECT 1 FROM departments WHERE id = ?", (department,)).fetchone():
        raise make_error("NO_SUCH_DEPARTMENT", f"no department {department}")
    before = conn.execute(f"SELECT days FROM retention_rules WHERE {_RULE_OF}", (department,)).fetchone()
    conn.execute(f"DELETE FROM retention_rules WHERE {_RULE_OF}", (department,))
    conn.execute(
        "INSERT INTO retention_rules (department_id, days, set_by, set_at) VALUES (?, ?, ?, ?)", (department, days, actor, now)
    )
    admin_action_txn(
        conn, actor=actor, now=now, action="retention_set", department=department, days=days, before=before[0] if before else None
    )


def remove_rule_txn(conn: sqlite3.Connection, department: int | None, actor: str, now: float) -> None:
    """Remove a department's (or the global) rule; NO_SUCH_RULE if there is none."""
    before = conn.execute(f"SELECT days FROM retention_rules WHERE {_RULE_OF}", (department,)).fetchone()
    if before is None:
        where = "the whole organisation" if department is None else f"department {department}"
        raise make_error("NO_SUCH_RULE", f"no retention rule for {where}")
    conn.execute(f"DELETE FROM retention_rules WHERE {_RULE_OF}", (department,))
    admin_action_txn(conn, actor=actor, now=now, action="retention_remove", department=department, before=before[0])


def keep_days(conn: sqlite3.Connection) -> tuple[dict[int, float | None], float | None, bool]:
    """How long to keep what is about each user, in days (None: forever), the global rule's
    days for everyone else, and whether any rule exists. A membership takes the rule of its
    department or the nearest one above; one without falls back to the global rule; a
    person in several departments is kept as long as the longest of them asks."""
    days = dict(conn.execute("SELECT department_id, days FROM retention_rules"))
    default = days.pop(None, None)
    parents = dict(conn.execute("SELECT id, parent_id FROM departments"))

    def of(department: int | None) -> float | None:
        seen = set()
        while department is not None and department not in seen:
            if department in days:
                return days[department]
            seen.add(department)
            department = parents.get(department)
        return default

    by_user: dict[int, float | None] = {}
    for user_id, department in conn.execute("SELECT user_id, department_id FROM department_members"):
        by_user[user_id] = longest(by_user[user_id], of(department)) if user_id in by_user else of(department)
    return by_user, default, bool(days) or default is not None


def longest(a: float | None, b: float | None) -> float | None:
    """The longer of two retention periods, None (forever) being longest."""
    return None if a is None or b is None else max(a, b)


def _hold(row) -> LegalHold:
    hold_id, username, conversation, reason, placed_by, placed_at = row
    return LegalHold(
        id=hold_id, user=username or "", conversation=conversation, reason=reason, placed_by=placed_by, placed_at=placed_at
    )


_HOLDS = (
    "SELECT h.id, u.username, h.conversation_id, h.reason, h.placed_by, h.placed_at FROM legal_holds h"
    " LEFT JOIN users u ON u.id = h.user_id WHERE h.released_at IS NULL"
)


def holds(conn: sqlite3.Connection) -> tuple[LegalHold, ...]:
    """The holds in force, oldest first."""
    return tuple(_hold(r) for r in conn.execute(_HOLDS + " ORDER BY h.id"))


def held(conn: sqlite3.Connection) -> tuple[set[int], set[int]]:
    """The user ids and conversation ids under a hold in force."""
    rows = conn.execute("SELECT user_id, conversation_id FROM legal_holds WHERE released_at IS NULL").fetchall()
    return {u for u, _ in rows if u is not None}, {c for _, c in rows if c is not None}


def place_hold_txn(
    conn: sqlite3.Connection, user_id: int | None, conversation: int | None, reason: str, actor: str, now: float
) -> LegalHold:
    """Place a hold on a user or a conversation (the caller checked that it exists)."""
    hold_id = conn.execute(
        "INSERT INTO legal_holds (user_id, conversation_id, reason, placed_by, placed_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
        (user_id, conversation, reason, actor, now),
    ).fetchone()[0]
    hold = _hold(conn.execute(_HOLDS + " AND h.id = ?", (hold_id,)).fetchone())
    admin_action_txn(
        conn,
        actor=actor,
        now=now,
        action="hold_place",
        hold=hold_id,
        user=hold.user or None,
        conversation=conversation,
        reason=reason,
    )
    return hold


def release_hold_txn(conn: sqlite3.Connection, hold_id: int, actor: str, now: float) -> None:
    """Release a hold in force; NO_SUCH_HOLD if there is none with that id."""
    found = conn.execute(_HOLDS + " AND h.id = ?", (hold_id,)).fetchone()
    if found is None:
        raise make_error("NO_SUCH_HOLD", f"no legal hold {hold_id} is in force")
    conn.execute("UPDATE legal_holds SET released_by = ?, released_at = ? WHERE id = ?", (actor, now, hold_id))
    hold = _hold(found)
    admin_action_txn(
        conn,
        actor=actor,
        now=now,
        action="hold_release",
        hold=hold_id,
        user=hold.user or None,
        conversation=hold.conversation,
        reason=hold.reason,
    )
