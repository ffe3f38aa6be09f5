"""The one place that decides whether an actor may perform an action.

Features declare their actions with the roles allowed by default (`Feature.actions`), and which
actions anyone may perform on themselves (`Feature.self_service`); the router asks `require()`
before every handler runs. Anonymous actors may do only what is declared for `ANONYMOUS`
(hello, login, enroll); a denial is a typed error, never a silent drop.

On top of roles come the organisation's own rules (see `docs/policies.md`):
- a department admin acts only inside the subtrees it administers, on plain users, so routes
  open to department admins declare what each request touches (`Targets`);
- `restrict_messages` rules limit who may message the people of a department;
- `hide` rules make departments, and the people only in them, invisible in the directory;
- `group_create`, `broadcast` and `archive_read` rules say who may do those (`decide`);
- inside a group, its owner and admins have the powers in `GROUP_POWERS`.
The rules live in memory (they are few, and the hot path reads them on every message); the org
tree is asked in SQL at decision time, only when a rule needs it. With several serve processes a
change to the rules is announced (`follow`) and the others read them again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from corridor.protocol.errors import make_error
from corridor.protocol.messages import PolicyRule
from corridor.protocol.schema import Record

from .features.accounts.store import UserRow
from .features.accounts.users import UserCache
from .features.policies import store
from .sessions import ANONYMOUS, DEPT_ADMIN, Actor
from .storage.database import Database

if TYPE_CHECKING:
    from .cluster import Cluster, Message

# Who always sees the whole directory and is never limited by the organisation's rules.
UNRESTRICTED = frozenset({"admin", "auditor"})

# What each integration scope lets an integration's bot do; nothing else is open to it, whatever
# its account could otherwise do.
SCOPE_ACTIONS = {
    "notices": frozenset({"notice.send", "notice.status"}),
    "messages": frozenset({"message.send"}),
    "presence": frozenset({"presence.query"}),
    "directory": frozenset({"directory.read"}),
}


@dataclass(frozen=True)
class Targets:
    """What a request acts on, for the rules that depend on it: existing `users`, `departments`
    it creates things in or moves people to (None: the top level), a `role` it grants, the
    people it sends to."""

    users: tuple[str, ...] = ()
    departments: tuple[int | None, ...] = ()
    role: str | None = None
    recipients: tuple[str, ...] = ()
    # Whose department list `departments` replaces: their memberships outside a department
    # admin's scope must survive the change.
    replaces_memberships_of: str | None = None


TargetsOf = Callable[[Record], Targets]


@dataclass(frozen=True)
class View:
    """What the directory shows someone: every department but `invisible`; `key` changes
    whenever that set does (empty when nothing is hidden)."""

    invisible: frozenset[int] = frozenset()
    key: str = ""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


EVERYTHING = View()

# What each role inside a group may do there (the group's own roles, not the organisation's).
GROUP_POWERS = {
    "add_members": frozenset({"owner", "admin"}),
    "remove_members": frozenset({"owner", "admin"}),
    "update": frozenset({"owner", "admin"}),
    "announce": frozenset({"owner", "admin"}),
    "mention_all": frozenset({"owner", "admin"}),
    "recall_any": frozenset({"owner", "admin"}),
    "set_role": frozenset({"owner"}),
    "dissolve": frozenset({"owner"}),
}


def _subject_matches(subject: str, user: UserRow, ancestry: frozenset[int]) -> bool:
    kind, _, value = subject.partition(":")
    if kind == "everyone":
        return True
    if kind == "user":
        return value == user.username
    if kind == "role":
        return value == user.role
    return kind == "department" and value.isdigit() and int(value) in ancestry


def _where(department: int | None) -> str:
    return "the whole organisation" if department is None else f"department {department}"


class Policy:
    """Role-based decisions over the declared actions, and the organisation's rules."""

    def __init__(self, db: Database, users: UserCache, rules: tuple[PolicyRule, ...] = ()):
        self._db = db
        self._users = users
        self._actions: dict[str, frozenset[str]] = {}
        self._self_service: dict[str, str] = {}
        self._cluster: Cluster | None = None
        self._changes = 0  # rule changes made here: a re-read begun before one must not undo it
        self._use(rules)

    def follow(self, cluster: Cluster) -> None:
        """From now on, tell the other processes when the rules change here, and read them again
        when they change them."""
        self._cluster = cluster
        cluster.on_change("rules", self._reload, self._apply)

    def declare(self, actions: Mapping[str, frozenset[str]], self_service: Mapping[str, str]) -> None:
        """Take the features' actions (once, at start-up)."""
        self._actions = dict(actions)
        self._self_service = dict(self_service)

    def set_rules(self, rules: tuple[PolicyRule, ...]) -> None:
        """Replace the rules in force (after a change to them committed)."""
        self._use(rules)
        self._changes += 1
        if self._cluster is not None:
            self._cluster.changed("rules", rules=[[r.kind, r.department, list(r.subjects)] for r in rules])

    def _apply(self, message: Message) -> None:
        self._use(tuple(PolicyRule(kind=k, department=d, subjects=tuple(s)) for k, d, s in message["rules"]))

    async def _reload(self, ids: frozenset[int] | None) -> None:
        changes = self._changes
        rules = await self._db.read(store.rules)
        if self._changes == changes:
            self._use(rules)

    def _use(self, rules: tuple[PolicyRule, ...]) -> None:
        self.rules = rules
        self._by_kind: dict[str, list[PolicyRule]] = {}
        for rule in rules:
            self._by_kind.setdefault(rule.kind, []).append(rule)

    def scoped(self, action: str) -> bool:
        """Whether `action` is an admin power that department admins have within their subtrees
        (then its routes must declare targets); what plain users may do needs no scope."""
        allowed = self._actions[action]
        return DEPT_ADMIN in allowed and "user" not in allowed

    async def require(self, actor: Actor, action: str, request: Record, targets: TargetsOf | None = None) -> None:
        """Return if `actor` may do `action`; raise NOT_AUTHENTICATED or FORBIDDEN otherwise."""
        allowed = self._actions[action]
        if ANONYMOUS in allowed:
            return
        if not actor.authenticated:
            raise make_error("NOT_AUTHENTICATED", "log in first")
        role = actor.role if actor.kind == "user" else actor.kind
        if actor.scopes is not None and not any(action in SCOPE_ACTIONS[scope] for scope in actor.scopes):
            needed = [scope for scope, actions in SCOPE_ACTIONS.items() if action in actions]
            raise make_error(
                "FORBIDDEN",
                f"integration '{actor.username}' lacks the scope for '{action}'"
                + (f" (needs {' or '.join(needed)})" if needed else " (no scope grants it)"),
            )
        field = self._self_service.get(action)
        if field is not None and actor.kind == "user" and str(getattr(request, field, "")).lower() == actor.username:
            return
        if role in allowed:
            if targets is not None and actor.kind == "user":
                await self._check_targets(actor, targets(request), self.scoped(action))
            return
        raise make_error("FORBIDDEN", f"'{action}' is not allowed for role '{role}'")

    async def _check_targets(self, actor: Actor, targets: Targets, scoped: bool) -> None:
        if scoped and actor.role == DEPT_ADMIN:
            await self._db.read(lambda conn: self._within_scope(conn, actor, targets))
        if targets.recipients and "restrict_messages" in self._by_kind and actor.role not in UNRESTRICTED:
            sender = self._users.by_id(actor.user_id)
            for name in targets.recipients:
                recipient = self._users.by_name(name.lower())
                if recipient is not None:
                    decision = await self._db.read(lambda conn, r=recipient: self._may_message(conn, sender, r))
                    if not decision.allowed:
                        raise make_error("FORBIDDEN", decision.reason)

    def _within_scope(self, conn, actor: Actor, targets: Targets) -> None:
        scope = store.subtree(conn, store.admin_scope(conn, actor.user_id))
        refuse = f"department admin '{actor.username}' manages only departments {sorted(scope) or '(none)'} and their people"
        if targets.role not in (None, "user"):
            raise make_error("FORBIDDEN", "only IT admins grant roles other than 'user'")
        kept = frozenset()
        if targets.replaces_memberships_of is not None:
            member = self._users.by_name(targets.replaces_memberships_of.lower())
            kept = store.memberships(conn, member.id) - scope if member is not None else frozenset()
            dropped = kept - set(targets.departments)
            if dropped:
                raise make_error("FORBIDDEN", f"{refuse}; the change would remove them from department {min(dropped)}")
        for department in targets.departments:
            if department not in scope and department not in kept:
                raise make_error("FORBIDDEN", f"{refuse}; not {_where(department)}")
        for name in targets.users:
            user = self._users.by_name(name.lower())
            if user is None:
                continue  # the handler answers NO_SUCH_USER
            if user.role != "user":
                raise make_error("FORBIDDEN", f"only IT admins manage '{user.username}' (role {user.role})")
            if not store.user_ancestry(conn, user.id) & scope:
                raise make_error("FORBIDDEN", f"{refuse}; '{user.username}' is outside them")

    def _may_message(self, conn, sender: UserRow, recipient: UserRow) -> Decision:
        if sender.role in UNRESTRICTED:
            return Decision(True, f"role {sender.role} is not restricted")
        rules = [r for r in self._by_kind.get("restrict_messages", ()) if r.department is not None]
        if not rules:
            return Decision(True, "no restrict_messages rule")
        theirs = store.user_ancestry(conn, recipient.id)
        mine = store.user_ancestry(conn, sender.id)
        for rule in rules:
            if rule.department in theirs and rule.department not in mine:
                if not any(_subject_matches(s, sender, mine) for s in rule.subjects):
                    return Decision(
                        False,
                        f"'{recipient.username}' is in department {rule.department}, which accepts messages only "
                        f"from its own people and {', '.join(rule.subjects) or 'nobody else'}",
                    )
        return Decision(True, "no restrict_messages rule applies")

    async def directory_view(self, actor: Actor) -> View:
        """The departments hidden from `actor` by `hide` rules."""
        rules = self._by_kind.get("hide")
        if not rules or actor.kind != "user" or actor.role in UNRESTRICTED:
            return EVERYTHING
        user = self._users.by_id(actor.user_id)
        return await self._db.read(lambda conn: self._view(conn, user, rules))

    def _view(self, conn, user: UserRow, rules: list[PolicyRule]) -> View:
        ancestry = store.user_ancestry(conn, user.id)
        managed = store.subtree(conn, store.admin_scope(conn, user.id)) if user.role == DEPT_ADMIN else frozenset()
        hidden = [
            r.department
            for r in rules
            if r.department is not None
            and r.department not in ancestry
            and r.department not in managed
            and not any(_subject_matches(s, user, ancestry) for s in r.subjects)
        ]
        # What a department admin manages stays visible to it, even under a hidden parent.
        invisible = store.subtree(conn, hidden) - managed if hidden else frozenset()
        if not invisible:
            return EVERYTHING
        key = hashlib.sha256(",".join(map(str, sorted(invisible))).encode()).hexdigest()[:32]
        return View(invisible, key)

    async def decide(
        self, user: UserRow, permission: str, target: UserRow | None = None, department: int | None = None
    ) -> Decision:
        """Whether `user` may `permission` (see PERMISSIONS) to `target` or on `department`, and why."""
        if permission == "message":
            if target is None:
                raise make_error("BAD_MESSAGE", "'message' needs a target user")
            if user.role == "auditor":
                return Decision(False, "auditors do not send messages")
            return await self._db.read(lambda conn: self._may_message(conn, user, target))
        if permission == "see_department":
            if department is None:
                raise make_error("BAD_MESSAGE", "'see_department' needs a department")
            view = await self.directory_view(Actor("user", user.id, user.username, user.role))
            hidden = department in view.invisible
            return Decision(not hidden, f"department {department} is {'hidden from' if hidden else 'visible to'} {user.username}")
        return await self._db.read(lambda conn: self._granted(conn, user, permission, department))

    def archive_scope(self, conn, user: UserRow, department: int | None = None) -> frozenset[int] | None:
        """The departments whose archive `user` may read (inside a read transaction), narrowed
        to `department`'s subtree when one is asked for; None means all of it, which every
        auditor has while no `archive_read` rule exists, and anyone a rule for the whole
        organisation names. Raises FORBIDDEN for non-auditors, for auditors no rule names, and
        for a department wholly outside the scope."""
        if user.role != "auditor":
            raise make_error("FORBIDDEN", "only auditors read the archive")
        scope = self._archive_scope(conn, user)
        if department is None:
            return scope
        if not store.existing_departments(conn, [department]):
            raise make_error("NO_SUCH_DEPARTMENT", f"no department {department}")
        asked = store.subtree(conn, [department])
        narrowed = asked if scope is None else asked & scope
        if not narrowed:
            raise make_error("FORBIDDEN", f"department {department} is outside your archive scope")
        return narrowed

    def _archive_scope(self, conn, user: UserRow) -> frozenset[int] | None:
        rules = self._by_kind.get("archive_read", [])
        if not rules:
            return None
        ancestry = store.user_ancestry(conn, user.id)
        named = [r.department for r in rules if any(_subject_matches(s, user, ancestry) for s in r.subjects)]
        if None in named:
            return None
        if not named:
            raise make_error("FORBIDDEN", f"no archive_read rule names {user.username}: ask an IT admin for a scope")
        return store.subtree(conn, named)

    def may_in_group(self, role: str, power: str) -> bool:
        """Whether a member with group `role` has `power` there."""
        return role in GROUP_POWERS[power]

    def require_in_group(self, role: str, power: str, target_role: str | None = None) -> None:
        """Raise FORBIDDEN unless a member with group `role` has `power`; for removals, only the
        owner removes admins, and nobody removes the owner."""
        if not self.may_in_group(role, power):
            holders = " and its admins" if "admin" in GROUP_POWERS[power] else ""
            raise make_error("FORBIDDEN", f"only the group's owner{holders} may do that")
        if target_role == "owner" or (target_role == "admin" and role != "owner"):
            raise make_error("FORBIDDEN", f"a group {role} cannot remove its {target_role}")

    def _granted(self, conn, user: UserRow, permission: str, department: int | None) -> Decision:
        if permission == "archive_read" and user.role != "auditor":
            return Decision(False, "only auditors read the archive")
        if permission != "archive_read" and user.role == "admin":
            return Decision(True, "IT admins may")
        rules = self._by_kind.get(permission, [])
        if not rules:
            default = {"group_create": "everyone may", "archive_read": "every auditor may"}.get(permission)
            return Decision(default is not None, f"no {permission} rule: {default or 'only IT admins may'}")
        ancestry = store.user_ancestry(conn, user.id)
        covering = {None} if department is None else {None, *store.department_ancestry(conn, department)}
        for rule in rules:
            if (permission == "group_create" or rule.department in covering) and any(
                _subject_matches(s, user, ancestry) for s in rule.subjects
            ):
                return Decision(True, f"{permission} rule for {_where(rule.department)} names {user.username}")
        return Decision(False, f"no {permission} rule covering {_where(department)} names {user.username}")
