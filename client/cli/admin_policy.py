"""`corridor admin role|policy|invite|log`: roles, the organisation's rules, pending invites,
and the admin log (who did what, when, and what it was before)."""

from __future__ import annotations

import argparse
import datetime as dt
import json

from corridor.protocol.messages import (
    PERMISSIONS,
    POLICY_KINDS,
    ROLES,
    AdminLog,
    InviteList,
    InviteRevoke,
    PolicyCheck,
    PolicyList,
    PolicyRemove,
    PolicySet,
    RoleSet,
)
from corridor.protocol.schema import Record

from .admin_link import Description, admin_command

SUBJECTS_HELP = '"everyone", "user:NAME", "department:ID" (with its subtree) or "role:ROLE"'


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _where(department: int | None) -> str:
    return "the organisation" if department is None else f"department {department}"


def _role_set(request: RoleSet, result: Record) -> Description:
    scope = f" of departments {', '.join(map(str, request.departments))}" if request.departments else ""
    return (
        {"ok": True, "user": request.user.lower(), "role": request.role, "departments": list(request.departments)},
        f"{request.user.lower()} is now {request.role}{scope}; their live sessions were ended so the new role applies.",
    )


def _rule_text(rule) -> str:
    return f"{rule.kind:<17} {_where(rule.department):<15} {', '.join(rule.subjects) or '(nobody)'}"


def _rules_listed(request: PolicyList, result: Record) -> Description:
    lines = [_rule_text(r) for r in result.rules] or ["no rules: roles alone decide"]
    return {"ok": True, "rules": [r.to_fields() for r in result.rules]}, "\n".join(lines)


def _rule_set(request: PolicySet, result: Record) -> Description:
    return {"ok": True, **request.to_fields()}, f"Set: {_rule_text(request)}"


def _rule_removed(request: PolicyRemove, result: Record) -> Description:
    return {"ok": True, **request.to_fields()}, f"Removed the {request.kind} rule for {_where(request.department)}"


def _checked(request: PolicyCheck, result: Record) -> Description:
    verdict = "allowed" if result.allowed else "denied"
    return {"ok": True, "allowed": result.allowed, "reason": result.reason}, f"{verdict}: {result.reason}"


def _invites_listed(request: InviteList, result: Record) -> Description:
    lines = [f"{i.user:<20} created {_when(i.created)}  expires {_when(i.expires)}" for i in result.invites]
    return {"ok": True, "invites": [i.to_fields() for i in result.invites]}, "\n".join(lines) or "no pending invites"


def _invites_revoked(request: InviteRevoke, result: Record) -> Description:
    user = request.user.lower()
    return {"ok": True, "user": user, "revoked": result.revoked}, f"Revoked {result.revoked} unused invite(s) of {user}"


def _log_listed(request: AdminLog, result: Record) -> Description:
    entries = [{**e.to_fields(), "details": json.loads(e.details)} for e in result.entries]
    lines = [f"#{e.seq:<7} {_when(e.ts)}  {e.actor:<14} {e.action:<17} {e.details}" for e in result.entries]
    if result.more:
        lines.append(f"… more: --after {result.entries[-1].seq}")
    return {"ok": True, "entries": entries, "more": result.more}, "\n".join(lines) or "no administrative actions yet"


def register(topics: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    """Add the role, policy, invite and log topics to `corridor admin`."""
    role = topics.add_parser("role", help="give someone a role (IT admins)")
    actions = role.add_subparsers(dest="action", metavar="ACTION", required=True)
    role_set = actions.add_parser("set", help="set a user's role; a dept_admin also needs the departments it administers")
    role_set.add_argument("username", metavar="USER", help="whose role")
    role_set.add_argument("role", choices=ROLES, help="the new role")
    role_set.add_argument(
        "--department",
        type=int,
        action="append",
        metavar="ID",
        help="with dept_admin: a department it administers (with its subtree); repeatable",
    )
    role_set.set_defaults(
        run=admin_command(lambda a: RoleSet(user=a.username, role=a.role, departments=tuple(a.department or ())), _role_set)
    )

    policy = topics.add_parser(
        "policy", help="the organisation's rules: hidden departments, who may message, create groups, broadcast, read the archive"
    )
    actions = policy.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every rule in force")
    listing.set_defaults(run=admin_command(lambda a: PolicyList(), _rules_listed))
    setting = actions.add_parser("set", help="create or replace the rule of a kind for a department (see docs/policies.md)")
    setting.add_argument("kind", choices=POLICY_KINDS, help="what the rule decides")
    setting.add_argument(
        "--allow", action="append", default=[], metavar="SUBJECT", help=f"who the rule lets through (repeatable): {SUBJECTS_HELP}"
    )
    setting.add_argument(
        "--department", type=int, metavar="ID", help="the department it is about (default: the whole organisation)"
    )
    setting.set_defaults(
        run=admin_command(lambda a: PolicySet(kind=a.kind, department=a.department, subjects=tuple(a.allow)), _rule_set)
    )
    removing = actions.add_parser("remove", help="remove the rule of a kind for a department")
    removing.add_argument("kind", choices=POLICY_KINDS, help="the rule's kind")
    removing.add_argument("--department", type=int, metavar="ID", help="its department (default: the whole organisation)")
    removing.set_defaults(run=admin_command(lambda a: PolicyRemove(kind=a.kind, department=a.department), _rule_removed))
    checking = actions.add_parser("check", help="would the policy let a user do something, and which rule decides")
    checking.add_argument("username", metavar="USER", help="who would do it")
    checking.add_argument("permission", choices=PERMISSIONS, help="what they would do")
    checking.add_argument("--target", metavar="USER", help="with 'message': the recipient")
    checking.add_argument("--department", type=int, metavar="ID", help="the department it concerns")
    checking.set_defaults(
        run=admin_command(
            lambda a: PolicyCheck(user=a.username, permission=a.permission, target=a.target or "", department=a.department),
            _checked,
        )
    )

    invite = topics.add_parser("invite", help="pending enrollment invites")
    actions = invite.add_subparsers(dest="action", metavar="ACTION", required=True)
    invites = actions.add_parser("list", help="invites not yet used and not expired, oldest first")
    invites.add_argument("username", nargs="?", metavar="USER", help="only this user's")
    invites.set_defaults(run=admin_command(lambda a: InviteList(user=a.username or ""), _invites_listed))
    revoke = actions.add_parser("revoke", help="make a user's unused invites stop working now")
    revoke.add_argument("username", metavar="USER", help="whose invites")
    revoke.set_defaults(run=admin_command(lambda a: InviteRevoke(user=a.username), _invites_revoked))

    log = topics.add_parser("log", help="the admin log: who did what and when, with what it replaced")
    log.add_argument("--after", type=int, default=0, metavar="SEQ", help="only entries after this one (for paging)")
    log.add_argument("--limit", type=int, default=200, metavar="N", help="at most this many (1-1000, default 200)")
    log.add_argument("--actor", default="", metavar="NAME", help="only this admin's actions (a username, or local-admin)")
    log.set_defaults(run=admin_command(lambda a: AdminLog(after=a.after, limit=a.limit, actor=a.actor), _log_listed))
    return [role_set, listing, setting, removing, checking, invites, revoke, log]
