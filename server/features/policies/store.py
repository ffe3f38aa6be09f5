"""The policies feature's SQL: department-admin scopes, policy rules, and the org-tree queries
the policy decides with (whose departments, which subtrees). The SQL runs on SQLite and on
PostgreSQL alike (docs/architecture.md, "Storage backends")."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from corridor.protocol.errors import make_error
from corridor.protocol.messages import PolicyRule

from ...sessions import DEPT_ADMIN
from ...storage.sql import each, listed
from ..archive.store import admin_action_txn

_UP = (
    "WITH RECURSIVE up(id) AS ({start} UNION SELECT d.parent_id FROM departments d JOIN up ON d.id = up.id"
    " WHERE d.parent_id IS NOT NULL) SELECT id FROM up"
)
_DOWN = (
    "WITH RECURSIVE down(id) AS ({start} UNION SELECT d.id FROM departments d"
    " JOIN down ON d.parent_id = down.id) SELECT id FROM down"
)


def user_ancestry(conn: sqlite3.Connection, user_id: int) -> frozenset[int]:
    """The user's departments and every department above them."""
    query = _UP.format(start="SELECT department_id FROM department_members WHERE user_id = ?")
    return frozenset(row[0] for row in conn.execute(query, (user_id,)))


def memberships(conn: sqlite3.Connection, user_id: int) -> frozenset[int]:
    """The departments the user is directly in."""
    return frozenset(row[0] for row in conn.execute("SELECT department_id FROM department_members WHERE user_id = ?", (user_id,)))


def department_ancestry(conn: sqlite3.Connection, department_id: int) -> frozenset[int]:
    """The department and every department above it (empty if it does not exist)."""
    return frozenset(
        row[0] for row in conn.execute(_UP.format(start="SELECT id FROM departments WHERE id = ?"), (department_id,))
    )


def subtree(conn: sqlite3.Connection, department_ids: Iterable[int]) -> frozenset[int]:
    """These departments and every department below them."""
    return frozenset(row[0] for row in conn.execute(_DOWN.format(start=each(conn)), (listed(conn, sorted(department_ids)),)))


def existing_departments(conn: sqlite3.Connection, department_ids: Iterable[int]) -> frozenset[int]:
    """Those of the ids that name a department."""
    query = f"SELECT id FROM departments WHERE id IN ({each(conn)})"
    return frozenset(row[0] for row in conn.execute(query, (listed(conn, sorted(department_ids)),)))


def admin_scope(conn: sqlite3.Connection, user_id: int) -> frozenset[int]:
    """The departments a department admin administers (each with its subtree)."""
    return frozenset(row[0] for row in conn.execute("SELECT department_id FROM department_admins WHERE user_id = ?", (user_id,)))


def rules(conn: sqlite3.Connection) -> tuple[PolicyRule, ...]:
    """Every policy rule, by kind and department."""
    return tuple(
        PolicyRule(kind=kind, department=department, subjects=tuple(json.loads(subjects)))
        for kind, department, subjects in conn.execute(
            "SELECT kind, department_id, subjects FROM policy_rules ORDER BY kind, coalesce(department_id, 0)"
        )
    )


def _rule(conn: sqlite3.Connection, kind: str, department: int | None) -> list[str] | None:
    row = conn.execute(
        "SELECT subjects FROM policy_rules WHERE kind = ? AND coalesce(department_id, 0) = coalesce(?, 0)", (kind, department)
    ).fetchone()
    return json.loads(row[0]) if row else None


def _require_departments(conn: sqlite3.Connection, department_ids: Iterable[int]) -> None:
    wanted = set(department_ids)
    missing = wanted - existing_departments(conn, wanted)
    if missing:
        raise make_error("NO_SUCH_DEPARTMENT", f"no department {min(missing)}")


def set_rule_txn(conn: sqlite3.Connection, rule: PolicyRule, *, actor: str, now: float) -> tuple[PolicyRule, ...]:
    """Create or replace a rule; archived with the subjects it replaced. Returns all rules."""
    named = [int(s.partition(":")[2]) for s in rule.subjects if s.startswith("department:")]
    _require_departments(conn, [*named, *([rule.department] if rule.department is not None else [])])
    before = _rule(conn, rule.kind, rule.department)
    conn.execute(
        "DELETE FROM policy_rules WHERE kind = ? AND coalesce(department_id, 0) = coalesce(?, 0)", (rule.kind, rule.department)
    )
    conn.execute(
        "INSERT INTO policy_rules (kind, department_id, subjects) VALUES (?, ?, ?)",
        (rule.kind, rule.department, json.dumps(list(rule.subjects))),
    )
    admin_action_txn(
        conn,
        actor=actor,
        now=now,
        action="policy_set",
        kind=rule.kind,
        department=rule.department,
        subjects=list(rule.subjects),
        before=before,
    )
    return rules(conn)


def remove_rule_txn(
    conn: sqlite3.Connection, kind: str, department: int | None, *, actor: str, now: float
) -> tuple[PolicyRule, ...]:
    """Remove a rule (NO_SUCH_RULE if there is none); archived with what it said."""
    before = _rule(conn, kind, department)
    if before is None:
        raise make_error(
            "NO_SUCH_RULE", f"no '{kind}' rule for {'the organisation' if department is None else f'department {department}'}"
        )
    conn.execute("DELETE FROM policy_rules WHERE kind = ? AND coalesce(department_id, 0) = coalesce(?, 0)", (kind, department))
    admin_action_txn(conn, actor=actor, now=now, action="policy_remove", kind=kind, department=department, before=before)
    return rules(conn)


def set_role_txn(
    conn: sqlite3.Connection, *, user_id: int, role: str, departments: tuple[int, ...], actor: str, now: float
) -> None:
    """Change a user's role and department-admin scope; archived with the role and scope before."""
    _require_departments(conn, departments)
    username, before_role = conn.execute("SELECT username, role FROM users WHERE id = ?", (user_id,)).fetchone()
    before_scope = sorted(admin_scope(conn, user_id))
    conn.execute("UPDATE users SET role = ? WHERE id = ?", (role, user_id))
    conn.execute("DELETE FROM department_admins WHERE user_id = ?", (user_id,))
    conn.executemany("INSERT INTO department_admins (user_id, department_id) VALUES (?, ?)", [(user_id, d) for d in departments])
    admin_action_txn(
        conn,
        actor=actor,
        now=now,
        action="role_set",
        user=username,
        role=role,
        departments=sorted(departments),
        before={"role": before_role, "departments": before_scope},
    )


def handover_txn(
    conn: sqlite3.Connection, *, user_id: int, username: str, successor_id: int, successor: str, rules: bool
) -> list[str]:
    """Give the successor the departing user's department-admin scope (if the successor is a
    department admin: a handover never changes a role) and, with `rules` (an IT admin's
    handover), their place in policy rules. Returns what was handed over or left, in words."""
    moved = []
    scope = admin_scope(conn, user_id)
    (successor_role,) = conn.execute("SELECT role FROM users WHERE id = ?", (successor_id,)).fetchone()
    listed_scope = ", ".join(map(str, sorted(scope)))
    if scope and successor_role == DEPT_ADMIN:
        conn.executemany(
            "INSERT INTO department_admins (user_id, department_id) VALUES (?, ?) ON CONFLICT (user_id, department_id) DO NOTHING",
            [(successor_id, d) for d in scope],
        )
        conn.execute("DELETE FROM department_admins WHERE user_id = ?", (user_id,))
        moved.append(f"department-admin scope ({listed_scope})")
    elif scope:
        moved.append(f"department-admin scope ({listed_scope}) not handed over: {successor} is not a dept_admin")
    old, new = f"user:{username}", f"user:{successor}"
    for rule_id, kind, subjects in conn.execute("SELECT id, kind, subjects FROM policy_rules").fetchall():
        listed = json.loads(subjects)
        if old not in listed:
            continue
        if not rules:
            moved.append(f"{kind} rule {rule_id} still names {username}: only IT admins change policy rules")
            continue
        replaced = list(dict.fromkeys(new if s == old else s for s in listed))
        conn.execute("UPDATE policy_rules SET subjects = ? WHERE id = ?", (json.dumps(replaced), rule_id))
        moved.append(f"{kind} rule {rule_id}")
    return moved
