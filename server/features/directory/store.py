"""The directory feature's SQL: departments, profiles, memberships, change log, search keys.

People are the `users` rows of the accounts feature joined with their profile here; the
directory reads those rows but writes only its own tables (the triggers in `migrations.py`
log changes to both). The SQL runs on SQLite and on PostgreSQL alike (docs/architecture.md,
"Storage backends").
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from corridor.protocol.errors import make_error

from ...storage.sql import each, listed
from ..archive.store import admin_action_txn
from .search_keys import like_pattern, matches_without, search_key

PROFILE_FIELDS = ("title", "email", "phone", "extension", "employee_no")


@dataclass(frozen=True)
class PersonRow:
    id: int
    user: str
    display_name: str
    active: bool
    title: str
    email: str
    phone: str
    extension: str
    employee_no: str
    manager: str
    departments: tuple[int, ...]
    bot: bool = False


@dataclass(frozen=True)
class DepartmentRow:
    id: int
    name: str
    parent: int | None


def people(conn: sqlite3.Connection, ids: list[int]) -> list[PersonRow]:
    """Directory entries for these user ids, in the order given."""
    found: dict[int, PersonRow] = {}
    memberships: dict[int, list[int]] = {}
    for user_id, department_id in conn.execute(
        f"SELECT user_id, department_id FROM department_members WHERE user_id IN ({each(conn)}) ORDER BY department_id",
        (listed(conn, ids),),
    ):
        memberships.setdefault(user_id, []).append(department_id)
    for row in conn.execute(
        "SELECT u.id, u.username, u.display_name, u.active, coalesce(p.title, ''), coalesce(p.email, ''),"
        " coalesce(p.phone, ''), coalesce(p.extension, ''), coalesce(p.employee_no, ''), coalesce(m.username, ''),"
        " u.bot FROM users u LEFT JOIN profiles p ON p.user_id = u.id LEFT JOIN users m ON m.id = p.manager_id"
        f" WHERE u.id IN ({each(conn)})",
        (listed(conn, ids),),
    ):
        found[row[0]] = PersonRow(*row[:3], bool(row[3]), *row[4:10], tuple(memberships.get(row[0], ())), bot=bool(row[10]))
    return [found[i] for i in ids if i in found]


def departments(conn: sqlite3.Connection, ids: list[int]) -> list[DepartmentRow]:
    """These departments, in the order given."""
    found: dict[int, DepartmentRow] = {}
    for row in conn.execute(f"SELECT id, name, parent_id FROM departments WHERE id IN ({each(conn)})", (listed(conn, ids),)):
        found[row[0]] = DepartmentRow(*row)
    return [found[i] for i in ids if i in found]


def current_version(conn: sqlite3.Connection) -> int:
    """The directory's version: the latest change's number."""
    return conn.execute("SELECT coalesce(max(version), 0) FROM directory_log").fetchone()[0]


@dataclass(frozen=True)
class Page:
    """One page of directory changes as one viewer may see them."""

    people: list[PersonRow]
    departments: list[DepartmentRow]
    removed_people: tuple[str, ...]
    removed_departments: tuple[int, ...]
    version: int
    more: bool


def changes(conn: sqlite3.Connection, since: int, limit: int, invisible: frozenset[int] = frozenset()) -> Page:
    """What changed after `since`, at most `limit` entries, without what is `invisible` to the
    viewer: hidden departments, and people who are only in hidden departments, come as removals
    (as do deleted departments), so a client drops what it may no longer see."""
    rows = conn.execute(
        "SELECT version, kind, entity_id FROM directory_log WHERE version > ? ORDER BY version LIMIT ?", (since, limit + 1)
    ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    # Nothing new: the current version (lower than `since` only if the database was restored from
    # an older backup, which tells the client to sync again from 0).
    version = rows[-1][0] if rows else current_version(conn)
    found = people(conn, [entity for _, kind, entity in rows if kind == "person"])
    department_ids = [entity for _, kind, entity in rows if kind == "department"]
    shown = [d for d in departments(conn, department_ids) if d.id not in invisible]
    gone = tuple(sorted(set(department_ids) - {d.id for d in shown}))
    visible, removed = [], []
    for person in found:
        kept = tuple(d for d in person.departments if d not in invisible)
        if person.departments and not kept:
            removed.append(person.user)
        else:
            visible.append(dataclasses.replace(person, departments=kept) if kept != person.departments else person)
    return Page(visible, shown, tuple(removed), gone, version, more)


def add_department_txn(conn: sqlite3.Connection, *, name: str, parent: int | None, actor: str, now: float) -> int:
    """Create a department; NO_SUCH_DEPARTMENT for an unknown parent, ALREADY_EXISTS for a sibling's name."""
    if parent is not None and not conn.execute("SELECT 1 FROM departments WHERE id = ?", (parent,)).fetchone():
        raise make_error("NO_SUCH_DEPARTMENT", f"no department {parent}")
    # ON CONFLICT rather than catching the IntegrityError: on PostgreSQL that error would abort
    # the transaction the caller goes on using.
    inserted = conn.execute(
        "INSERT INTO departments (parent_id, name, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
        (parent, name, now),
    ).fetchone()
    if inserted is None:
        raise make_error("ALREADY_EXISTS", f"a department named {name!r} already exists there")
    (department,) = inserted
    admin_action_txn(conn, actor=actor, now=now, action="department_add", id=department, name=name, parent=parent)
    return department


def set_profile_txn(
    conn: sqlite3.Connection,
    *,
    user_id: int,
    fields: dict[str, str],
    manager_id: int | bool | None,
    department_ids: tuple[int, ...] | None,
    actor: str,
    now: float,
) -> None:
    """Change the given profile fields (`manager_id=False`: leave the manager as it is; None clears it)
    and, if given, replace the user's departments. Archived with what it set and what was before."""
    conn.execute("INSERT INTO profiles (user_id) VALUES (?) ON CONFLICT (user_id) DO NOTHING", (user_id,))
    (person,) = people(conn, [user_id])
    changes = dict(fields)
    if manager_id is not False:
        changes["manager_id"] = manager_id
    before = {name: getattr(person, name) for name in fields}
    if manager_id is not False:
        before["manager"] = person.manager
    if department_ids is not None:
        before["departments"] = list(person.departments)
    if changes:
        assignments = ", ".join(f"{column} = ?" for column in changes)
        conn.execute(f"UPDATE profiles SET {assignments} WHERE user_id = ?", (*changes.values(), user_id))
    if department_ids is not None:
        set_memberships_txn(conn, user_id, department_ids)
        changes["departments"] = sorted(set(department_ids))
    if "manager_id" in changes:
        manager = changes.pop("manager_id")
        changes["manager"] = people(conn, [manager])[0].user if manager is not None else ""
    admin_action_txn(conn, actor=actor, now=now, action="profile_set", user=person.user, **changes, before=before)


def set_memberships_txn(conn: sqlite3.Connection, user_id: int, department_ids: Iterable[int]) -> None:
    """Make the user a member of exactly these departments (NO_SUCH_DEPARTMENT for an unknown one)."""
    wanted = set(department_ids)
    known = {row[0] for row in conn.execute(f"SELECT id FROM departments WHERE id IN ({each(conn)})", (listed(conn, wanted),))}
    if wanted - known:
        raise make_error("NO_SUCH_DEPARTMENT", f"no department {sorted(wanted - known)[0]}")
    current = {row[0] for row in conn.execute("SELECT department_id FROM department_members WHERE user_id = ?", (user_id,))}
    conn.executemany(
        "DELETE FROM department_members WHERE user_id = ? AND department_id = ?", [(user_id, d) for d in current - wanted]
    )
    conn.executemany(
        "INSERT INTO department_members (user_id, department_id) VALUES (?, ?)", [(user_id, d) for d in wanted - current]
    )


def handover_reports_txn(conn: sqlite3.Connection, *, user_id: int, successor_id: int) -> list[str]:
    """The departing user's direct reports now report to the successor (a successor who was one of
    them now reports to the departing user's manager); returns what moved, in words."""
    own_manager = conn.execute("SELECT manager_id FROM profiles WHERE user_id = ?", (user_id,)).fetchone()
    conn.execute(
        "UPDATE profiles SET manager_id = ? WHERE user_id = ? AND manager_id = ?",
        (own_manager[0] if own_manager else None, successor_id, user_id),
    )
    moved = conn.execute("UPDATE profiles SET manager_id = ? WHERE manager_id = ?", (successor_id, user_id)).rowcount
    return [f"{moved} direct report{'s' if moved != 1 else ''}"] if moved else []


def stale_search_keys(conn: sqlite3.Connection) -> tuple[list[tuple[int, str, str, str, list[str]]], int]:
    """People changed since the search keys were last refreshed, with what their key is made of,
    and the version the keys will be current at."""
    (since,) = conn.execute("SELECT version FROM search_state WHERE id = 1").fetchone()
    rows = conn.execute("SELECT version, entity_id FROM directory_log WHERE kind = 'person' AND version > ?", (since,)).fetchall()
    version = max([since, *(v for v, _ in rows)])
    ids = [entity for _, entity in rows]
    names: dict[int, list[str]] = {}
    for user_id, name in conn.execute(
        "SELECT m.user_id, d.name FROM department_members m JOIN departments d ON d.id = m.department_id"
        f" WHERE m.user_id IN ({each(conn)})",
        (listed(conn, ids),),
    ):
        names.setdefault(user_id, []).append(name)
    found = [(p.id, p.display_name, p.user, p.title, names.get(p.id, [])) for p in people(conn, ids)]
    return found, version


def store_search_keys_txn(conn: sqlite3.Connection, keys: list[tuple[int, str]], version: int) -> None:
    """Save refreshed keys and the version they are current at (never moving it back)."""
    conn.executemany(
        "INSERT INTO search_keys (user_id, key) VALUES (?, ?) ON CONFLICT (user_id) DO UPDATE SET key = excluded.key", keys
    )
    conn.execute("UPDATE search_state SET version = ? WHERE id = 1 AND version < ?", (version, version))


def compute_keys(stale: list[tuple[int, str, str, str, list[str]]]) -> list[tuple[int, str]]:
    """Search keys for the stale people (pure Python; run it outside any transaction)."""
    return [(user_id, search_key(display_name, user, title, depts)) for user_id, display_name, user, title, depts in stale]


def search(conn: sqlite3.Connection, query: str, limit: int, invisible: frozenset[int] = frozenset()) -> list[PersonRow]:
    """Active people whose key contains the query, by display name, leaving out people who are
    only in `invisible` departments, those departments from everyone's list, and matches made
    only through an invisible department's name."""
    rows = conn.execute(
        "SELECT k.user_id, k.key FROM search_keys k JOIN users u ON u.id = k.user_id"
        " WHERE k.key LIKE ? ESCAPE '\\' AND u.active = 1"
        " AND (NOT EXISTS (SELECT 1 FROM department_members m WHERE m.user_id = u.id)"
        "  OR EXISTS (SELECT 1 FROM department_members m WHERE m.user_id = u.id"
        f"   AND m.department_id NOT IN ({each(conn)})))"
        " ORDER BY u.display_name" + ("" if invisible else " LIMIT ?"),
        (like_pattern(query), listed(conn, sorted(invisible)), *(() if invisible else (limit,))),
    ).fetchall()
    if invisible:
        hidden = _hidden_names(conn, [user_id for user_id, _ in rows], invisible)
        rows = [(u, k) for u, k in rows if matches_without(k, query, hidden.get(u, []))][:limit]
    found = people(conn, [user_id for user_id, _ in rows])
    return [dataclasses.replace(p, departments=tuple(d for d in p.departments if d not in invisible)) for p in found]


def _hidden_names(conn: sqlite3.Connection, ids: list[int], invisible: frozenset[int]) -> dict[int, list[str]]:
    """For each of these people, the names of their departments in `invisible`."""
    names: dict[int, list[str]] = {}
    for user_id, name in conn.execute(
        "SELECT m.user_id, d.name FROM department_members m JOIN departments d ON d.id = m.department_id"
        f" WHERE m.user_id IN ({each(conn)}) AND m.department_id IN ({each(conn)})",
        (listed(conn, ids), listed(conn, sorted(invisible))),
    ):
        names.setdefault(user_id, []).append(name)
    return names
