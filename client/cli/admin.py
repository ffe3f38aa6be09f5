"""`corridor admin …`: accounts, the org tree and devices (see `admin_link` for how the
commands reach the server, `admin_policy` and `admin_import` for the other topics).

Every command here is one request: it builds the request from its arguments and describes the result.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from corridor.protocol.errors import make_error
from corridor.protocol.messages import (
    ROLES,
    DepartmentAdd,
    DepartmentGroupCreate,
    DeviceList,
    DeviceRevoke,
    InviteReissue,
    ProfileSet,
    UserAdd,
    UserDeactivate,
    UserReactivate,
)
from corridor.protocol.schema import Record

from . import admin_import, admin_integrations, admin_policy, admin_retention
from .admin_link import Description, add_link_options, admin_command
from .devices import device_fields, device_line, revoked_text

# -- user add -------------------------------------------------------------------------------


def _user_add(args: argparse.Namespace) -> UserAdd:
    return UserAdd(
        username=args.username, display_name=args.name, role=args.role, departments=tuple(args.department or ()), bot=args.bot
    )


def _invite_text(result: Record) -> str:
    expires = dt.datetime.fromtimestamp(result.expires).strftime("%Y-%m-%d %H:%M")
    return f"One-time invite, valid until {expires}:\n  {result.invite}"


def _user_added(request: UserAdd, result: Record) -> Description:
    data = {"ok": True, "user": result.user, "role": request.role, "bot": request.bot}
    if request.bot:
        text = f"Created bot {result.user} ({request.display_name}). {_invite_text(result)}"
        text += "\nEnroll it with 'corridor enroll INVITE --bot'"
    else:
        text = f"Created {result.user} ({request.display_name}, {request.role}). {_invite_text(result)}"
    return {**data, "invite": result.invite, "expires": result.expires}, text


# -- user set -------------------------------------------------------------------------------

_PROFILE_OPTIONS = ("title", "email", "phone", "extension", "employee_no", "manager")


def _user_set(args: argparse.Namespace) -> ProfileSet:
    changes: dict[str, Any] = {name: getattr(args, name) for name in _PROFILE_OPTIONS if getattr(args, name) is not None}
    if args.department is not None:
        changes["departments"] = tuple(args.department)
    if not changes:
        raise make_error("BAD_MESSAGE", "nothing to change: give at least one option (see 'corridor admin user set --help')")
    return ProfileSet(user=args.username, **changes)


def _user_updated(request: ProfileSet, result: Record) -> Description:
    user = request.user.lower()
    changes = {name: value for name, value in request.to_fields().items() if name != "user" and value is not None}
    listed = ", ".join(f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in changes.items())
    return {"ok": True, "user": user, **changes}, f"Updated {user}: {listed}"


# -- user deactivate / reactivate / invite ----------------------------------------------------


def _user_deactivated(request: UserDeactivate, result: Record) -> Description:
    user = request.user.lower()
    text = (
        f"Deactivated {user}: {result.sessions_ended} live session(s) ended; cannot log in; unused invites revoked; "
        "messages and archive kept."
    )
    if request.handover:
        text += f"\nHanded over to {request.handover.lower()}: {', '.join(result.handed_over) or 'nothing to hand over'}"
    data = {"ok": True, "user": user, "active": False, "sessions_ended": result.sessions_ended}
    return {**data, "handover": request.handover.lower() or None, "handed_over": list(result.handed_over)}, text


def _user_reactivated(request: UserReactivate, result: Record) -> Description:
    user = request.user.lower()
    text = f"Reactivated {user}: their devices that were not revoked can log in again."
    return {"ok": True, "user": user, "active": True}, text


def _user_invited(request: InviteReissue, result: Record) -> Description:
    return (
        {"ok": True, "user": result.user, "invite": result.invite, "expires": result.expires},
        f"New invite for {result.user}; their earlier unused invites no longer work. Redeeming it sets a new password "
        f"and registers a new device. {_invite_text(result)}",
    )


# -- device list / revoke -------------------------------------------------------------------


def _devices_listed(request: DeviceList, result: Record) -> Description:
    user = request.user.lower()
    lines = [device_line(d) for d in result.devices] or [f"{user} has no devices (not enrolled yet)"]
    return {"ok": True, "user": user, "devices": [device_fields(d) for d in result.devices]}, "\n".join(lines)


def _device_revoked(request: DeviceRevoke, result: Record) -> Description:
    user = request.user.lower()
    return {"ok": True, "user": user, "device_id": request.device_id}, revoked_text(user, request.device_id)


# -- department add -------------------------------------------------------------------------


def _department_add(args: argparse.Namespace) -> DepartmentAdd:
    return DepartmentAdd(name=args.name, parent=args.parent)


def _department_added(request: DepartmentAdd, result: Record) -> Description:
    where = "top level" if request.parent is None else f"under {request.parent}"
    return (
        {"ok": True, "id": result.id, "name": request.name, "parent": request.parent},
        f"Created department {result.id}: {request.name} ({where})",
    )


def _department_group(args: argparse.Namespace) -> DepartmentGroupCreate:
    return DepartmentGroupCreate(
        department=args.department_id, owner=args.owner, name=args.name or "", welcome=args.welcome or ""
    )


def _department_group_created(request: DepartmentGroupCreate, result: Record) -> Description:
    return (
        {"ok": True, **result.to_fields()},
        f"Created group #{result.id} {result.name!r} for department {request.department}, owned by {result.owner}:"
        f" {len(result.members)} members, who follow the directory from now on",
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add `corridor admin` and its subcommands to the root parser."""
    admin = sub.add_parser("admin", help="administer a running server (control socket on its host, or --remote over TLS)")
    add_link_options(admin)
    topics = admin.add_subparsers(dest="topic", metavar="TOPIC", required=True)
    user = topics.add_parser("user", help="manage accounts")
    actions = user.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="create an account and print its one-time enrollment invite")
    add.add_argument("username", metavar="USER", help="login name: a-z, 0-9, '.', '_', '-'")
    add.add_argument("--name", required=True, help='display name, e.g. "Zhang San"')
    add.add_argument("--role", choices=ROLES, default="user", help="role (default: user)")
    add.add_argument("--department", type=int, action="append", metavar="ID", help="a department to put them in; repeatable")
    add.add_argument("--bot", action="store_true", help="an account for a program: no password, shown as a bot")
    add.set_defaults(run=admin_command(_user_add, _user_added))

    edit = actions.add_parser("set", help="change someone's directory profile (options left out stay as they are)")
    edit.add_argument("username", metavar="USER", help="whose profile")
    edit.add_argument("--title", metavar="T", help='job title ("" clears it)')
    edit.add_argument("--email", metavar="E", help="e-mail address")
    edit.add_argument("--phone", metavar="P", help="phone number")
    edit.add_argument("--extension", metavar="X", help="desk phone extension")
    edit.add_argument("--employee-no", metavar="N", help="employee number")
    edit.add_argument("--manager", metavar="USER", help='username of their manager ("" clears it)')
    edit.add_argument(
        "--department",
        type=int,
        action="append",
        metavar="ID",
        help="a department id; repeatable; the ids given replace the current list",
    )
    edit.set_defaults(run=admin_command(_user_set, _user_updated))

    deactivate = actions.add_parser("deactivate", help="sign someone out everywhere and refuse their logins; their messages stay")
    deactivate.add_argument("username", metavar="USER", help="whose account")
    deactivate.add_argument(
        "--handover", metavar="USER", help="successor who takes over their direct reports, admin scope and policy entries"
    )
    deactivate.set_defaults(
        run=admin_command(lambda args: UserDeactivate(user=args.username, handover=args.handover or ""), _user_deactivated)
    )

    reactivate = actions.add_parser("reactivate", help="let a deactivated account log in again")
    reactivate.add_argument("username", metavar="USER", help="whose account")
    reactivate.set_defaults(run=admin_command(lambda args: UserReactivate(user=args.username), _user_reactivated))

    invite = actions.add_parser(
        "invite", help="print a new one-time invite for an existing account (password reset); earlier ones stop working"
    )
    invite.add_argument("username", metavar="USER", help="whose account")
    invite.set_defaults(run=admin_command(lambda args: InviteReissue(user=args.username), _user_invited))

    department = topics.add_parser("department", help="manage the org tree")
    actions = department.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_department = actions.add_parser("add", help="create a department and print its id")
    add_department.add_argument("name", metavar="NAME", help='department name, e.g. "Engineering"')
    add_department.add_argument("--parent", type=int, metavar="ID", help="the parent department's id (default: top level)")
    add_department.set_defaults(run=admin_command(_department_add, _department_added))
    group = actions.add_parser(
        "group", help="create a department's group: its people and those of the departments below it, kept in step"
    )
    group.add_argument("department_id", type=int, metavar="ID", help="the department")
    group.add_argument("--owner", required=True, metavar="USER", help="who runs the group (always a member)")
    group.add_argument("--name", help="the group's name (default: the department's)")
    group.add_argument("--welcome", metavar="TEXT", help="a welcome message for people who join")
    group.set_defaults(run=admin_command(_department_group, _department_group_created))

    device = topics.add_parser("device", help="see and revoke someone's enrolled devices")
    actions = device.add_subparsers(dest="action", metavar="ACTION", required=True)
    list_devices = actions.add_parser("list", help="someone's devices, oldest first, with their ids")
    list_devices.add_argument("username", metavar="USER", help="whose devices")
    list_devices.set_defaults(run=admin_command(lambda args: DeviceList(user=args.username), _devices_listed))
    revoke = actions.add_parser("revoke", help="revoke one device: it is signed out at once and cannot log in again")
    revoke.add_argument("username", metavar="USER", help="whose device")
    revoke.add_argument("device_id", type=int, metavar="DEVICE_ID", help="the device's id, from 'device list'")
    revoke.set_defaults(
        run=admin_command(lambda args: DeviceRevoke(user=args.username, device_id=args.device_id), _device_revoked)
    )

    more = (
        admin_policy.register(topics)
        + admin_import.register(topics)
        + admin_retention.register(topics)
        + admin_integrations.register(topics)
    )
    for command in (add, edit, deactivate, reactivate, invite, add_department, group, list_devices, revoke, *more):
        command.add_argument("--json", action="store_true", help="machine-readable output")
