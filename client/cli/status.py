"""`corridor status …`: show people's status, set mine, and keep my quiet hours."""

from __future__ import annotations

import argparse

from corridor.protocol.errors import make_error
from corridor.protocol.messages import (
    PRESENCE_STATES,
    QueryPresence,
    QuietHoursGet,
    QuietHoursResult,
    QuietHoursSet,
    Request,
)

from ..client import Client
from ..profile import Profile
from .commands import _client_options, _common, _connection, _run
from .output import EXIT_OK, emit


async def _show(args: argparse.Namespace, profile: Profile) -> int:
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        statuses = (await client.request(QueryPresence(users=tuple(args.users)))).statuses
    for info in statuses:
        state = "on a break" if info.status == "break" else info.status
        line = f"{info.user} is {state}" + (f": {info.text}" if info.text else "")
        emit({"type": "presence", **info.to_fields()}, args.json, line)
    return EXIT_OK


async def _set(args: argparse.Namespace, profile: Profile) -> int:
    if args.urgent_from and args.status != "break":
        raise make_error("BAD_MESSAGE", "--urgent-from goes with the status 'break'")
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        await client.set_presence(args.status, args.text, tuple(args.urgent_from or ()))
    emit(
        {"ok": True, "status": args.status, "text": args.text},
        args.json,
        f"status set to {args.status} (it lasts while one of your devices is connected)",
    )
    return EXIT_OK


def _quiet_request(args: argparse.Namespace) -> Request:
    """The request the options ask for: show (no START-END), clear (--off) or set."""
    detail = args.tz or args.days or args.urgent_from
    if args.off:
        if args.window or detail:
            raise make_error("BAD_MESSAGE", "--off takes no START-END, --tz, --days or --urgent-from")
        return QuietHoursSet(off=True)
    if not args.window:
        if detail:
            raise make_error("BAD_MESSAGE", "--tz, --days and --urgent-from need START-END, e.g. 22:00-08:00")
        return QuietHoursGet()
    start, dash, end = args.window.partition("-")
    if not dash:
        raise make_error("BAD_MESSAGE", f"{args.window!r} must be START-END, e.g. 22:00-08:00")
    days = tuple(day.strip().lower() for day in args.days.split(",")) if args.days else ()
    return QuietHoursSet(start=start, end=end, tz=args.tz or "", days=days, urgent_from=tuple(args.urgent_from or ()))


def _describe(result: QuietHoursResult) -> str:
    quiet = result.quiet_hours
    if quiet is None:
        return "no quiet hours"
    days = "every day" if len(quiet.days) == 7 else ", ".join(quiet.days)
    line = f"quiet hours {quiet.start}-{quiet.end} ({quiet.tz}), {days}"
    if quiet.urgent_from:
        line += f"; urgent messages from {', '.join(quiet.urgent_from)} still come through"
    if result.active:
        line += f"; inside them now, until {quiet.end}"
    return line


async def _quiet_hours(args: argparse.Namespace, profile: Profile) -> int:
    request = _quiet_request(args)
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        result = await client.request(request)
    emit({"ok": True, **result.to_fields()}, args.json, _describe(result))
    return EXIT_OK


ACTIONS = ("show", "set", "quiet-hours")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `corridor status` and its subcommands (`corridor status DIR` is `server_status`)."""
    status = sub.add_parser("status", help="people's status, setting mine, and my quiet hours; DIR: a server's health")
    actions = status.add_subparsers(dest="action", metavar="ACTION", required=True)

    show = actions.add_parser("show", help="show people's status and status text")
    show.add_argument("users", nargs="+", metavar="USER", help="usernames (unknown ones are left out)")
    show.set_defaults(run=_run("status show", _show))

    chosen = actions.add_parser("set", help="set my status on all my devices (it lasts while one is connected)")
    chosen.add_argument(
        "status",
        choices=PRESENCE_STATES,
        metavar="STATUS",
        help="online, away, busy, break (holds messages until you set another) or offline (appear offline)",
    )
    chosen.add_argument("--text", default="", metavar="TEXT", help='a status text others see, e.g. "back at 2pm"')
    chosen.add_argument(
        "--urgent-from", action="append", metavar="USER", help="with break: whose urgent messages still come through (repeatable)"
    )
    chosen.set_defaults(run=_run("status set", _set))

    quiet = actions.add_parser("quiet-hours", help="show or set my quiet hours: a daily break the server keeps for me")
    quiet.add_argument(
        "window", nargs="?", metavar="START-END", help="e.g. 22:00-08:00 (may cross midnight); without it, show the setting"
    )
    quiet.add_argument("--tz", metavar="ZONE", help="IANA time zone, e.g. Asia/Shanghai (default: the server's)")
    quiet.add_argument("--days", metavar="mon,tue,...", help="the days a window starts on (default: every day)")
    quiet.add_argument(
        "--urgent-from", action="append", metavar="USER", help="whose urgent messages still come through (repeatable)"
    )
    quiet.add_argument("--off", action="store_true", help="clear my quiet hours")
    quiet.set_defaults(run=_run("status quiet-hours", _quiet_hours))

    for parser in (show, chosen, quiet):
        _common(parser)
        _connection(parser)
