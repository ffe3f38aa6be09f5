"""Roles and the organisation's policy rules: setting them (IT admins) and asking about them."""

from __future__ import annotations

from corridor.protocol.errors import make_error
from corridor.protocol.messages import (
    ROLES,
    Empty,
    PolicyCheck,
    PolicyCheckResult,
    PolicyList,
    PolicyListResult,
    PolicyRemove,
    PolicyRule,
    PolicySet,
    RoleSet,
)

from ...services import Services
from ...sessions import DEPT_ADMIN, Session
from ..accounts.store import user_row
from . import store

SUBJECT_FORMS = '"everyone", "user:NAME", "department:ID" or "role:ROLE"'


class PolicyHandlers:
    """Request handlers of the policies feature."""

    def __init__(self, services: Services):
        self.services = services

    def _user(self, username: str):
        user = self.services.users.by_name(username.lower())
        if user is None:
            raise make_error("NO_SUCH_USER", f"no user '{username}'")
        return user

    def _check_subject(self, subject: str) -> str:
        kind, _, value = subject.partition(":")
        if kind == "everyone" and not value:
            return subject
        if kind == "user" and value:
            return f"user:{self._user(value).username}"
        if kind == "department" and value.isdigit():
            return subject
        if kind == "role" and value in ROLES:
            return subject
        raise make_error("BAD_MESSAGE", f"subject {subject!r} must be {SUBJECT_FORMS}")

    async def role_set(self, session: Session, msg: RoleSet) -> Empty:
        """Change a role; a department admin needs the departments it will administer."""
        user = self._user(msg.user)
        if (msg.role == DEPT_ADMIN) != bool(msg.departments):
            raise make_error("BAD_MESSAGE", "departments are given for the dept_admin role, and only for it")
        if user.bot and msg.role != "user":
            raise make_error("BAD_MESSAGE", "a bot's role is always 'user'")
        now, actor = self.services.clock(), session.actor.label

        def txn(conn):
            store.set_role_txn(conn, user_id=user.id, role=msg.role, departments=msg.departments, actor=actor, now=now)
            return user_row(conn, user.id)

        await self.services.db.write(txn, after_commit=self.services.users.put)
        # Sessions keep the role they logged in with; a changed role applies from the next login.
        self.services.sessions.end_sessions(make_error("REAUTHENTICATE", "your role changed"), user.id)
        return Empty()

    async def policy_set(self, session: Session, msg: PolicySet) -> Empty:
        """Create or replace a rule."""
        if msg.kind in ("hide", "restrict_messages") and msg.department is None:
            raise make_error("BAD_MESSAGE", f"a {msg.kind} rule needs a department")
        if msg.kind == "group_create" and msg.department is not None:
            raise make_error("BAD_MESSAGE", "group_create rules are for the whole organisation (no department)")
        rule = PolicyRule(kind=msg.kind, department=msg.department, subjects=tuple(self._check_subject(s) for s in msg.subjects))
        now, actor = self.services.clock(), session.actor.label
        await self.services.db.write(
            lambda conn: store.set_rule_txn(conn, rule, actor=actor, now=now), after_commit=self.services.policy.set_rules
        )
        return Empty()

    async def policy_remove(self, session: Session, msg: PolicyRemove) -> Empty:
        """Remove a rule."""
        now, actor = self.services.clock(), session.actor.label
        await self.services.db.write(
            lambda conn: store.remove_rule_txn(conn, msg.kind, msg.department, actor=actor, now=now),
            after_commit=self.services.policy.set_rules,
        )
        return Empty()

    async def policy_list(self, session: Session, msg: PolicyList) -> PolicyListResult:
        """The rules in force."""
        return PolicyListResult(rules=self.services.policy.rules)

    async def policy_check(self, session: Session, msg: PolicyCheck) -> PolicyCheckResult:
        """Ask the policy, as it would decide for that user now, and why."""
        user = self._user(msg.user)
        target = self._user(msg.target) if msg.target else None
        decision = await self.services.policy.decide(user, msg.permission, target, msg.department)
        return PolicyCheckResult(allowed=decision.allowed, reason=decision.reason)
