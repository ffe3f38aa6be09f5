"""Employee commands: enroll, send, listen, history, discover (`status` is in `status.py`)."""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import getpass
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from corridor.protocol.errors import CorridorError, make_error
from corridor.protocol.messages import MessageEvent, NoticeEvent, PresenceEvent, ReadEvent, TypingEvent

from ..client import Client
from ..discovery import discover
from ..enrollment import enroll
from ..profile import Profile, default_profile_dir
from .output import EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE, emit, fail, human_size, report


def _common(parser: argparse.ArgumentParser) -> None:
    # No explicit defaults here: a subcommand parser with argument_default=SUPPRESS (`devices
    # revoke`) must be able to leave these unset, so the values given before it stay.
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="profile dir (default: $CORRIDOR_PROFILE or the user config dir)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output, one JSON object per line")


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", metavar="HOST:PORT", help="connect here instead of the address saved at enrollment")
    parser.add_argument("--discover", action="store_true", help="if the server does not answer, find it on the LAN by mDNS")
    parser.add_argument(
        "--interface", action="append", metavar="IP", help="with --discover: browse only on this interface address (repeatable)"
    )


def _client_options(args: argparse.Namespace, receive: bool) -> dict:
    """Keyword arguments for Client.open from the connection options."""
    options = {"receive": receive, "discover": args.discover, "interfaces": args.interface}
    if args.server:
        host, _, port = args.server.rpartition(":")
        if not host or not port.isdigit():
            raise make_error("BAD_MESSAGE", f"--server {args.server!r} must be HOST:PORT")
        options["address"] = (host.strip("[]"), int(port))
    return options


def _run(name: str, body: Callable[[argparse.Namespace, Profile], Awaitable[int]]) -> Callable[[argparse.Namespace], int]:
    """Open the profile, run the async body, and map every Corridor error to its exit code."""

    def run(args: argparse.Namespace) -> int:
        try:
            profile = Profile(args.profile or default_profile_dir())
        except OSError as exc:
            return fail(name, "BAD_PROFILE", f"cannot open profile: {exc}", args.json, EXIT_USAGE)
        try:
            return trio.run(body, args, profile)
        except CorridorError as exc:
            return report(name, exc, args.json)
        finally:
            profile.close()

    return run


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _message_line(event: MessageEvent) -> str:
    where = event.recipient or f"#{event.conversation}"
    if event.kind == "system":  # a change to a group, in words
        return f"[{_when(event.ts)}] #{event.conversation} · {event.text}"
    text = {
        "recall": f"(recalled #{event.ref})",
        "edit": f"(edited #{event.ref}) {event.text}",
        "recalled": "(recalled)",
        "purged": "(erased by retention)",
        "file": f"[file #{event.seq}] {event.text} ({human_size(event.file.size) if event.file else '?'})",
    }.get(event.kind, event.text + (" (edited)" if event.edited else ""))
    return f"[{_when(event.ts)}] {event.sender} → {where}: {text}"


def _message_json(event: MessageEvent) -> dict:
    return {"type": "message", **event.to_fields()}


# -- enroll ---------------------------------------------------------------------------------


async def _enroll(args: argparse.Namespace, profile: Profile) -> int:
    if args.bot:
        password = ""  # a bot logs in with its device token only
    elif args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("New password: ")
        if password != getpass.getpass("Repeat it: "):
            return fail("enroll", "BAD_MESSAGE", "the passwords differ", args.json, EXIT_USAGE)
    result = await enroll(profile, args.invite, password, args.device_name or f"{socket.gethostname()} (cli)", args.timeout)
    cred = profile.credential()
    emit(
        {
            "ok": True,
            "user": result.user,
            "display_name": result.display_name,
            "device_id": result.device_id,
            "server": f"{cred.host}:{cred.port}",
        },
        args.json,
        f"Enrolled as {result.user} ({result.display_name}) on {cred.org}; profile {profile.path}",
    )
    return EXIT_OK


# -- send -----------------------------------------------------------------------------------


async def _send(args: argparse.Namespace, profile: Profile) -> int:
    text = sys.stdin.read().removesuffix("\n") if args.text == "-" else args.text
    if not text:
        return fail("send", "BAD_MESSAGE", "the message is empty", args.json, EXIT_USAGE)
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        with trio.move_on_after(args.timeout) as scope:
            ack = await client.send(args.to, text, urgent=args.urgent)
    if scope.cancelled_caught:
        message = (
            f"no acknowledgement within {args.timeout:g} s; the message stays in the outbox and is resent on the next connection"
        )
        return fail("send", "TIMEOUT", message, args.json, EXIT_TIMEOUT)
    emit(
        {
            "ok": True,
            "to": args.to.lower(),
            "conversation": ack.conversation,
            "seq": ack.seq,
            "ts": ack.ts,
            "duplicate": ack.duplicate,
            "held": ack.held,
        },
        args.json,
        f"sent to {args.to.lower()} (conversation {ack.conversation}, #{ack.seq})"
        + (f"; {args.to.lower()} is on a break and gets it when the break ends" if ack.held else ""),
    )
    return EXIT_OK


# -- listen ---------------------------------------------------------------------------------


async def _listen(args: argparse.Namespace, profile: Profile) -> int:
    received = 0
    async with Client.open(profile, **_client_options(args, receive=True)) as client:
        with trio.move_on_after(args.timeout if args.timeout else float("inf")):
            async for event in client.events():
                if isinstance(event, MessageEvent):
                    emit(_message_json(event), args.json, _message_line(event))
                    received += 1
                    if args.count and received >= args.count:
                        break
                elif isinstance(event, ReadEvent):
                    text = f"{event.user} read conversation {event.conversation} up to #{event.seq}"
                    emit({"type": "read", **event.to_fields()}, args.json, text)
                elif isinstance(event, NoticeEvent):
                    text = f"[{_when(event.ts)}] notice {event.id} from {event.sender}: {event.title} — {event.text}"
                    emit({"type": "notice", **event.to_fields()}, args.json, text)
                elif isinstance(event, TypingEvent):
                    emit({"type": "typing", "user": event.user}, args.json, f"{event.user} is typing…")
                elif isinstance(event, PresenceEvent):
                    emit(
                        {"type": "presence", "user": event.user, "status": event.status, "text": event.text},
                        args.json,
                        f"{event.user} is {event.status}" + (f": {event.text}" if event.text else ""),
                    )
    return EXIT_OK


# -- history --------------------------------------------------------------------------------


async def _history(args: argparse.Namespace, profile: Profile) -> int:
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        result = await client.history(args.with_user, limit=args.limit)
    for message in result.messages:
        emit(_message_json(message), args.json, _message_line(message))
    if not result.messages and not args.json:
        print(f"no messages with {args.with_user}")
    return EXIT_OK


# -- discover -------------------------------------------------------------------------------


def _discover(args: argparse.Namespace) -> int:
    try:
        servers = trio.run(functools.partial(discover, args.timeout, interfaces=args.interface or None))
    except OSError as exc:
        return fail("discover", "DISCOVERY_FAILED", f"mDNS failed: {exc}", args.json, EXIT_USAGE)
    for server in servers:
        emit(
            {
                "name": server.name,
                "org": server.org,
                "host": server.host,
                "addresses": list(server.addresses),
                "port": server.port,
                "versions": list(server.versions),
                "ca_sha256": server.ca_sha256,
            },
            args.json,
            f"{server.org}: {server.host} at {', '.join(server.addresses)} port {server.port} (CA sha256:{server.ca_sha256})",
        )
    if not servers and not args.json:
        print(f"no Corridor server answered within {args.timeout:g} s", file=sys.stderr)
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add the employee commands to the root parser."""
    p = sub.add_parser("enroll", help="redeem an invite: pin the organisation CA and register this device")
    p.add_argument("invite", metavar="INVITE", help="the corridor://… invite string from your admin")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--password-stdin", action="store_true", help="read the new password from the first line of stdin")
    how.add_argument("--bot", action="store_true", help="enroll a bot account: no password, it logs in with this profile only")
    p.add_argument("--device-name", default="", help="how this device appears in your device list")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server (default 10)")
    _common(p)
    p.set_defaults(run=_run("enroll", _enroll))

    p = sub.add_parser("send", help="send a message and wait until the server stored it durably")
    p.add_argument("to", metavar="TO", help="recipient's username")
    p.add_argument("text", metavar="TEXT", help="the message ('-' reads it from stdin)")
    p.add_argument("--urgent", action="store_true", help="reach them even on a break, if they allow you")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the acknowledgement (default 30)")
    _common(p)
    _connection(p)
    p.set_defaults(run=_run("send", _send))

    p = sub.add_parser("listen", help="print what arrived since last time, then live messages and presence")
    p.add_argument("--count", type=int, default=0, metavar="N", help="exit after N messages")
    p.add_argument("--timeout", type=float, default=0, metavar="S", help="exit after S seconds")
    _common(p)
    _connection(p)
    p.set_defaults(run=_run("listen", _listen))

    p = sub.add_parser("history", help="show the latest messages with one person")
    p.add_argument("with_user", metavar="WITH", help="the other person's username")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="how many messages (default 50, at most 1000)")
    _common(p)
    _connection(p)
    p.set_defaults(run=_run("history", _history))

    p = sub.add_parser("discover", help="find Corridor servers on the local network (mDNS)")
    p.add_argument("--timeout", type=float, default=3.0, metavar="S", help="seconds to listen (default 3)")
    p.add_argument(
        "--interface",
        action="append",
        metavar="IP",
        help="browse only on this interface address (repeatable; default: all interfaces)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output, one JSON object per line")
    p.set_defaults(run=_discover)
