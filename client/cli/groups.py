"""`corridor group …`: create and run group chats from the command line.

A group is named by its id (as `group list` shows it, and as `listen` prints `#ID`) or by its
exact name when that is unique among your groups.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from corridor.protocol.errors import make_error
from corridor.protocol.messages import (
    GroupAnnounce,
    GroupAnnouncementRead,
    GroupCreate,
    GroupDissolve,
    GroupGet,
    GroupHistory,
    GroupLeave,
    GroupList,
    GroupMembersAdd,
    GroupMembersRemove,
    GroupRoleSet,
    GroupUpdate,
)
from corridor.protocol.schema import Record

from ..client import Client
from ..profile import Profile
from .commands import _client_options, _common, _connection, _message_json, _message_line, _run
from .output import EXIT_OK, emit


async def _group_id(client: Client, text: str) -> int:
    if text.isdigit():
        return int(text)
    found = [g for g in (await client.request(GroupList())).groups if g.name.lower() == text.lower()]
    if len(found) != 1:
        if not found:
            raise make_error("NO_SUCH_GROUP", f"none of your groups is called {text!r}")
        ids = ", ".join(str(g.id) for g in found)
        raise make_error("NO_SUCH_GROUP", f"{len(found)} of your groups are called {text!r} ({ids}); use the group's id")
    return found[0].id


def _info_text(info: Record) -> str:
    lines = [f"#{info.id} {info.name}" + (" (dissolved)" if info.dissolved else ""), f"  owner: {info.owner}"]
    if info.department is not None:
        lines.append(f"  members follow department {info.department} and the departments below it")
    if info.admins:
        lines.append(f"  admins: {', '.join(info.admins)}")
    lines.append(f"  members ({len(info.members)}): {', '.join(info.members)}")
    if info.welcome:
        lines.append(f"  welcome: {info.welcome}")
    if info.announcement:
        lines.append(f"  announcement by {info.announcement_by}: {info.announcement}")
        if info.announcement_read_by:
            lines.append(f"  read by ({len(info.announcement_read_by)}): {', '.join(info.announcement_read_by)}")
    return "\n".join(lines)


def _action(build, say):
    """A group command that sends one request about a group and prints what it did."""

    async def body(args: argparse.Namespace, profile: Profile) -> int:
        async with Client.open(profile, **_client_options(args, receive=False)) as client:
            group = await _group_id(client, args.group)
            result = await client.request(build(args, group))
            data, text = say(args, group, result)
        emit({"ok": True, "group": group, **data}, args.json, text)
        return EXIT_OK

    return body


async def _create(args: argparse.Namespace, profile: Profile) -> int:
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        info = await client.request(GroupCreate(name=args.name, members=tuple(args.member or ()), welcome=args.welcome))
    emit({"ok": True, **info.to_fields()}, args.json, f"Created group #{info.id}\n{_info_text(info)}")
    return EXIT_OK


async def _list(args: argparse.Namespace, profile: Profile) -> int:
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        groups = (await client.request(GroupList())).groups
    for g in groups:
        emit({"type": "group", **g.to_fields()}, args.json, f"#{g.id:<6} {g.name}  ({g.members} members; you: {g.role})")
    if not groups and not args.json:
        print("you are in no groups")
    return EXIT_OK


async def _show(args: argparse.Namespace, profile: Profile) -> int:
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        info = await client.request(GroupGet(group=await _group_id(client, args.group)))
    emit({"ok": True, **info.to_fields()}, args.json, _info_text(info))
    return EXIT_OK


async def _send(args: argparse.Namespace, profile: Profile) -> int:
    text = sys.stdin.read().removesuffix("\n") if args.text == "-" else args.text
    if not text:
        raise make_error("BAD_MESSAGE", "the message is empty")
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        group = await _group_id(client, args.group)
        ack = await client.send_group(group, text)
    data = {"ok": True, "group": group, "seq": ack.seq, "ts": ack.ts, "duplicate": ack.duplicate}
    emit(data, args.json, f"sent to #{group} (#{ack.seq})")
    return EXIT_OK


async def _history(args: argparse.Namespace, profile: Profile) -> int:
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        group = await _group_id(client, args.group)
        result = await client.request(GroupHistory(group=group, limit=args.limit))
    for message in result.messages:
        emit(_message_json(message), args.json, _message_line(message))
    return EXIT_OK


def _said(words):
    """What a group command prints: `words(args, group)`."""

    def say(args: argparse.Namespace, group: int, result: Any) -> tuple[dict, str]:
        return {}, words(args, group)

    return say


def register(sub: argparse._SubParsersAction) -> None:
    """Add `corridor group` and its subcommands."""
    group = sub.add_parser("group", help="group chats: create, members, roles, announcement, send, history")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    commands = []

    def command(name: str, help: str, body, *arguments: tuple[tuple, dict]) -> None:
        parser = actions.add_parser(name, help=help)
        for positional, options in arguments:
            parser.add_argument(*positional, **options)
        _common(parser)
        _connection(parser)
        parser.set_defaults(run=_run(f"group {name}", body))
        commands.append(parser)

    GROUP = (("group",), {"metavar": "GROUP", "help": "the group's id, or its name if unique"})
    USERS = (("users",), {"nargs": "+", "metavar": "USER", "help": "usernames"})
    command(
        "create",
        "create a group that you own",
        _create,
        (("name",), {"metavar": "NAME", "help": "the group's name"}),
        (("--member",), {"action": "append", "metavar": "USER", "help": "a first member (repeatable)"}),
        (("--welcome",), {"default": "", "metavar": "TEXT", "help": "shown to each member who joins later"}),
    )
    command("list", "the groups you are in", _list)
    command("show", "a group's members, admins, welcome and announcement", _show, GROUP)
    command(
        "send",
        "send to a group (@user mentions a member; @all is for owners and admins)",
        _send,
        GROUP,
        (("text",), {"metavar": "TEXT", "help": "the message ('-' reads it from stdin)"}),
    )
    command(
        "history",
        "a group's messages since you joined",
        _history,
        GROUP,
        (("--limit",), {"type": int, "default": 50, "metavar": "N", "help": "how many (default 50, at most 1000)"}),
    )
    command(
        "add",
        "add members (owner and admins)",
        _action(
            lambda a, g: GroupMembersAdd(group=g, users=tuple(a.users)), _said(lambda a, g: f"added {', '.join(a.users)} to #{g}")
        ),
        GROUP,
        USERS,
    )
    command(
        "remove",
        "remove members (owner: anyone; admins: plain members)",
        _action(
            lambda a, g: GroupMembersRemove(group=g, users=tuple(a.users)),
            _said(lambda a, g: f"removed {', '.join(a.users)} from #{g}"),
        ),
        GROUP,
        USERS,
    )
    command(
        "role",
        "make a member an admin or a member again, or hand the group over (owner)",
        _action(
            lambda a, g: GroupRoleSet(group=g, user=a.user, role=a.role), _said(lambda a, g: f"{a.user} is now {a.role} of #{g}")
        ),
        GROUP,
        (("user",), {"metavar": "USER", "help": "a member"}),
        (("role",), {"choices": ("admin", "member", "owner"), "help": "the new role; 'owner' hands the group over"}),
    )
    command(
        "rename",
        "rename a group (owner and admins)",
        _action(lambda a, g: GroupUpdate(group=g, name=a.name), _said(lambda a, g: f"#{g} is now called {a.name!r}")),
        GROUP,
        (("name",), {"metavar": "NAME", "help": "the new name"}),
    )
    command(
        "welcome",
        "set the message new members see ('' removes it; owner and admins)",
        _action(lambda a, g: GroupUpdate(group=g, welcome=a.text), _said(lambda a, g: f"welcome message of #{g} set")),
        GROUP,
        (("text",), {"metavar": "TEXT", "help": "the welcome message"}),
    )
    command(
        "announce",
        "pin an announcement ('' removes it; owner and admins)",
        _action(lambda a, g: GroupAnnounce(group=g, text=a.text), _said(lambda a, g: f"announcement of #{g} set")),
        GROUP,
        (("text",), {"metavar": "TEXT", "help": "the announcement"}),
    )
    command(
        "ack",
        "mark the group's announcement as read",
        _action(lambda a, g: GroupAnnouncementRead(group=g), _said(lambda a, g: f"announcement of #{g} marked read")),
        GROUP,
    )
    command("leave", "leave a group", _action(lambda a, g: GroupLeave(group=g), _said(lambda a, g: f"you left #{g}")), GROUP)
    command(
        "dissolve",
        "end a group for everyone (owner); its history stays",
        _action(lambda a, g: GroupDissolve(group=g), _said(lambda a, g: f"#{g} dissolved")),
        GROUP,
    )
