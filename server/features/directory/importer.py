"""Bulk changes to the directory: compare what a source says (a CSV import, an LDAP tree) with
what the directory holds, and apply the difference in one transaction.

`plan` only reads, so a dry run is the same code as the real thing; `apply_txn` runs the plan
inside the caller's write transaction, so nothing is ever half-imported. Departments are
matched by path, people by username. Only a source that owns what it made (`prune`, for LDAP)
deactivates the people and removes the departments it made that it no longer lists; people
and departments made by hand are never touched by a prune.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

from corridor.protocol.errors import make_error
from corridor.protocol.messages import ImportPerson
from corridor.protocol.names import USERNAME, USERNAME_RULE

from ...sessions import DEPT_ADMIN
from ..accounts.store import create_invite_txn, revoke_invites_txn
from ..archive.store import admin_action_txn
from . import store

# An import's answer must fit in one frame (1 MiB by default) with its invites: the changes in
# words are listed up to a count and a size, and the rest only counted.
MAX_CHANGES_LISTED = 5000
MAX_CHANGES_BYTES = 256 * 1024
MAX_PROBLEMS_LISTED = 20
_FIELDS = ("display_name", "title", "email", "phone", "extension", "employee_no")

Path = tuple[str, ...]


def _path_text(path: Path) -> str:
    return "/".join(path) or "(top level)"


@dataclass
class Plan:
    """What an import would change, with counts and the changes in words."""

    new_departments: list[Path] = field(default_factory=list)
    removed_departments: list[tuple[int, Path]] = field(default_factory=list)
    creates: list[ImportPerson] = field(default_factory=list)
    updates: list[tuple[int, ImportPerson]] = field(default_factory=list)
    deactivations: list[tuple[int, str]] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("created", "updated", "moved", "deactivated", "reactivated"), 0)
    )
    changes: list[str] = field(default_factory=list)
    omitted: int = 0
    _listed_bytes: int = 0

    def say(self, text: str) -> None:
        if len(self.changes) < MAX_CHANGES_LISTED and self._listed_bytes + len(text) <= MAX_CHANGES_BYTES:
            self.changes.append(text)
            self._listed_bytes += len(text.encode())
        else:
            self.omitted += 1


def check(people: list[ImportPerson], known_users: set[str]) -> None:
    """Refuse the whole import if any row is bad, naming the first rows at fault (1-based)."""
    problems, seen = [], {}
    names = {p.username.lower() for p in people}
    for number, person in enumerate(people, 1):
        name = person.username.lower()
        if not USERNAME.match(name):
            problems.append(f"row {number} ({person.username!r}): {USERNAME_RULE}")
        elif name in seen:
            problems.append(f"row {number} ({name}): the same username as row {seen[name]}")
        seen.setdefault(name, number)
        manager = person.manager.lower()
        if manager and manager not in names and manager not in known_users:
            problems.append(f"row {number} ({name}): manager {manager!r} is neither in the import nor in the directory")
        if manager == name:
            problems.append(f"row {number} ({name}): nobody is their own manager")
        if any(not all(part.strip() for part in path) or not path for path in person.departments):
            problems.append(f"row {number} ({name}): a department path has an empty part")
    if problems:
        more = len(problems) - MAX_PROBLEMS_LISTED
        listed = "; ".join(problems[:MAX_PROBLEMS_LISTED]) + (f"; and {more} more" if more > 0 else "")
        raise make_error("BAD_MESSAGE", f"nothing imported: {listed}")


class _Tree:
    """The department tree by path."""

    def __init__(self, conn: sqlite3.Connection):
        rows = conn.execute("SELECT id, parent_id, name, source FROM departments").fetchall()
        by_id = {r[0]: r for r in rows}
        self.path_of: dict[int, Path] = {}
        self.source: dict[int, str] = {r[0]: r[3] for r in rows}
        self.parent: dict[int, int | None] = {r[0]: r[1] for r in rows}
        self.children: dict[int, int] = {}
        for row in rows:
            if row[1] is not None:
                self.children[row[1]] = self.children.get(row[1], 0) + 1

        def path(department: int) -> Path:
            if department not in self.path_of:
                parent = by_id[department][1]
                self.path_of[department] = (*(path(parent) if parent is not None else ()), by_id[department][2])
            return self.path_of[department]

        for department in by_id:
            path(department)
        self.id_of: dict[Path, int] = {p: d for d, p in self.path_of.items()}


def plan(conn: sqlite3.Connection, people: list[ImportPerson], departments: list[Path], *, source: str, prune: bool) -> Plan:
    """What applying this source would change; refuses (BAD_MESSAGE) if any row is bad."""
    current = {row[1]: row for row in conn.execute("SELECT id, username, role, active, source FROM users")}
    check(people, set(current))
    tree = _Tree(conn)
    result = Plan()
    wanted: set[Path] = set()
    for path in [*departments, *(p for person in people for p in person.departments)]:
        wanted.update(path[:n] for n in range(1, len(path) + 1))
    for path in sorted(wanted, key=lambda p: (len(p), p)):  # parents first; the same ids every run
        if path not in tree.id_of:
            result.new_departments.append(path)
            result.say(f"create department {_path_text(path)}")
    existing = store.people(conn, [current[p.username.lower()][0] for p in people if p.username.lower() in current])
    by_name = {row.user: row for row in existing}
    for person in people:
        name = person.username.lower()
        row = by_name.get(name)
        if row is None:
            result.creates.append(person)
            result.counts["created"] += 1
            where = ", ".join(map(_path_text, person.departments)) or "no department"
            result.say(f"create {name} ({person.display_name}) in {where}" + ("" if person.active else ", deactivated"))
            continue
        if prune and current[name][4] != source and person.role is not None:
            # A source that owns accounts decides roles only of the accounts it made.
            person = dataclasses.replace(person, role=None)
        differences = _differences(row, current[name][2], person, tree)
        if differences:
            result.updates.append((row.id, person))
            for key, text in differences:
                result.counts[key] += 1
                result.say(text)
    if prune:
        _plan_prune(conn, result, people, tree, wanted, current, source)
    return result


def _plan_prune(
    conn, result: Plan, people: list[ImportPerson], tree: _Tree, wanted: set[Path], current: dict, source: str
) -> None:
    listed = {p.username.lower() for p in people}
    for name, (user_id, _, _, active, made_by) in current.items():
        if made_by == source and active and name not in listed:
            result.deactivations.append((user_id, name))
            result.counts["deactivated"] += 1
            result.say(f"deactivate {name}: no longer in the {source} source")
    leaving = {user_id for user_id, _ in result.deactivations}
    # Whoever else is in a department keeps it: someone active from another source, not moved away.
    holders: dict[int, int] = {}
    for department, user_id, username, active in conn.execute(
        "SELECT m.department_id, u.id, u.username, u.active FROM department_members m JOIN users u ON u.id = m.user_id"
    ):
        if active and user_id not in leaving and username not in listed:
            holders[department] = holders.get(department, 0) + 1
    named = set()
    for department, subjects in conn.execute("SELECT department_id, subjects FROM policy_rules"):
        named.add(department)
        named.update(int(s.partition(":")[2]) for s in json.loads(subjects) if s.startswith("department:"))
    children = dict(tree.children)
    for department, path in sorted(tree.path_of.items(), key=lambda item: -len(item[1])):
        if tree.source[department] != source or path in wanted or children.get(department) or holders.get(department):
            continue
        if department in named:
            result.say(f"keep department {_path_text(path)}: a policy rule names it (remove the rule first)")
            continue
        result.removed_departments.append((department, path))
        parent = tree.parent[department]
        if parent is not None:
            children[parent] -= 1
        result.say(f"remove department {_path_text(path)}: no longer in the {source} source")


def _differences(row: store.PersonRow, role: str, person: ImportPerson, tree: _Tree) -> list[tuple[str, str]]:
    name = row.user
    found = []
    changed = [f for f in _FIELDS if getattr(row, f) != getattr(person, f)]
    if row.manager != person.manager.lower():
        changed.append("manager")
    if person.role is not None and person.role != role:
        changed.append("role")
    if changed:
        listed = ", ".join(f"{f} {_value(row, role, f)!r} → {_value(person, person.role, f)!r}" for f in changed)
        found.append(("updated", f"update {name}: {listed}"))
    before = sorted(_path_text(tree.path_of[d]) for d in row.departments)
    after = sorted(_path_text(p) for p in person.departments)
    if before != after:
        found.append(("moved", f"move {name}: {', '.join(before) or 'no department'} → {', '.join(after) or 'no department'}"))
    if row.active != person.active:
        key = "reactivated" if person.active else "deactivated"
        found.append((key, f"{key[:-1]} {name}"))
    return found


def _value(record, role: str | None, name: str) -> str:
    if name == "role":
        return role or ""
    if name == "manager":
        return record.manager.lower()
    return getattr(record, name)


@dataclass(frozen=True)
class Applied:
    """What `apply_txn` did that the caller acts on after the commit."""

    changed_users: list[int]
    deactivated: list[int]
    role_changed: list[int]
    invites: list[tuple[str, str]]


def apply_txn(
    conn: sqlite3.Connection,
    result: Plan,
    *,
    source: str,
    actor: str,
    now: float,
    new_invite: Callable[[], tuple[str, bytes]] | None,
    invite_expires: float,
) -> Applied:
    """Carry out a plan inside the caller's transaction; every change is archived."""
    tree = _Tree(conn)
    for path in result.new_departments:
        parent = tree.id_of.get(path[:-1]) if len(path) > 1 else None
        department = conn.execute(
            "INSERT INTO departments (parent_id, name, created_at, source) VALUES (?, ?, ?, ?) RETURNING id",
            (parent, path[-1], now, source),
        ).fetchone()[0]
        tree.id_of[path] = department
        admin_action_txn(
            conn, actor=actor, now=now, action="department_add", id=department, name=path[-1], parent=parent, source=source
        )
    invites, changed, role_changed = [], [], []
    ids: dict[str, int] = {}
    for person in result.creates:
        name = person.username.lower()
        user_id = conn.execute(
            "INSERT INTO users (username, display_name, role, active, source, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (name, person.display_name, person.role or "user", int(person.active), source, now),
        ).fetchone()[0]
        ids[name] = user_id
        changed.append(user_id)
        if new_invite is not None and person.active:
            invite, token_hash = new_invite()
            create_invite_txn(conn, user_id, token_hash, now, invite_expires)
            invites.append((name, invite))
        admin_action_txn(conn, actor=actor, now=now, action="user_import", user=name, source=source, **_fields(person))
    everyone = dict(conn.execute("SELECT username, id FROM users").fetchall())
    created = [(ids[p.username.lower()], p, True) for p in result.creates]
    for user_id, person, new in [*created, *((user_id, p, False) for user_id, p in result.updates)]:
        name = person.username.lower()
        before = None if new else store.people(conn, [user_id])[0]
        role_before = conn.execute("SELECT role FROM users WHERE id = ?", (user_id,)).fetchone()[0]
        conn.execute(
            "UPDATE users SET display_name = ?, active = ?, role = coalesce(?, role) WHERE id = ?",
            (person.display_name, int(person.active), person.role, user_id),
        )
        manager = everyone.get(person.manager.lower()) if person.manager else None
        # Not an upsert: an upsert's conflict handling would override the change-log triggers' own.
        conn.execute("INSERT INTO profiles (user_id) VALUES (?) ON CONFLICT (user_id) DO NOTHING", (user_id,))
        conn.execute(
            "UPDATE profiles SET title = ?, email = ?, phone = ?, extension = ?, employee_no = ?, manager_id = ? WHERE user_id = ?",
            (person.title, person.email, person.phone, person.extension, person.employee_no, manager, user_id),
        )
        if not person.active:
            revoke_invites_txn(conn, user_id, now)
        department_ids = [tree.id_of[p] for p in person.departments]
        store.set_memberships_txn(conn, user_id, department_ids)
        if person.role is not None and person.role != role_before and before is not None:
            role_changed.append(user_id)
        if person.role == DEPT_ADMIN:
            # A department admin made by a source administers the departments the source puts it in.
            conn.execute("DELETE FROM department_admins WHERE user_id = ?", (user_id,))
            conn.executemany(
                "INSERT INTO department_admins (user_id, department_id) VALUES (?, ?)", [(user_id, d) for d in department_ids]
            )
        if before is not None:
            changed.append(user_id)
            admin_action_txn(
                conn,
                actor=actor,
                now=now,
                action="user_import",
                user=name,
                source=source,
                **_fields(person),
                before={**_fields(before, role_before), "active": before.active},
            )
    for user_id, name in result.deactivations:
        conn.execute("UPDATE users SET active = 0 WHERE id = ?", (user_id,))
        revoke_invites_txn(conn, user_id, now)
        changed.append(user_id)
        admin_action_txn(conn, actor=actor, now=now, action="user_deactivate", user=name, source=source, before={"active": True})
    for department, path in result.removed_departments:
        conn.execute("DELETE FROM department_members WHERE department_id = ?", (department,))
        conn.execute("DELETE FROM department_admins WHERE department_id = ?", (department,))
        conn.execute("DELETE FROM departments WHERE id = ?", (department,))
        admin_action_txn(conn, actor=actor, now=now, action="department_remove", id=department, path=list(path), source=source)
    deactivated = [user_id for user_id, _ in result.deactivations]
    deactivated += [user_id for user_id, person in result.updates if not person.active]
    return Applied(changed_users=changed, deactivated=deactivated, role_changed=role_changed, invites=invites)


def _fields(person, role: str | None = None) -> dict:
    values = {name: getattr(person, name) for name in _FIELDS}
    values["departments"] = (
        ["/".join(p) for p in person.departments] if isinstance(person, ImportPerson) else list(person.departments)
    )
    values["manager"] = person.manager
    values["role"] = person.role if isinstance(person, ImportPerson) else role
    return values
