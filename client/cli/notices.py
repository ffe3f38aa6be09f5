"""`corridor notice …`: send broadcast notices, read your inbox, and watch who has read yours."""

from __future__ import annotations

import argparse
import sys
import uuid

import trio

from corridor.protocol.errors import make_error
from corridor.protocol.messages import NoticeInbox, NoticeRead, NoticeSend, NoticeStatus

from ..client import Client
from ..profile import Profile
from .commands import _client_options, _common, _connection, _run, _when
from .output import EXIT_OK, emit

WATCH_INTERVAL = 1.0


async def _send(args: argparse.Namespace, profile: Profile) -> int:
    text = sys.stdin.read().removesuffix("\n") if args.text == "-" else args.text
    if not text:
        raise make_error("BAD_MESSAGE", "the notice is empty")
    if args.everyone == bool(args.department):
        raise make_error("BAD_MESSAGE", "give --department ID (repeatable) or --everyone")
    request = NoticeSend(
        msg_id=uuid.uuid4().hex, title=args.title, text=text, departments=tuple(args.department or ()), everyone=args.everyone
    )
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        sent = await client.request(request)
    emit(
        {"ok": True, **sent.to_fields()},
        args.json,
        f"notice {sent.id} sent to {sent.recipients} {'person' if sent.recipients == 1 else 'people'}",
    )
    return EXIT_OK


async def _inbox(args: argparse.Namespace, profile: Profile) -> int:
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        notices = (await client.request(NoticeInbox(unread=args.unread, limit=args.limit))).notices
    for n in notices:
        mark = " " if n.read else "*"
        emit(
            {"type": "notice", **n.to_fields()},
            args.json,
            f"{mark} {n.id:<6} [{_when(n.ts)}] {n.sender}: {n.title}\n         {n.text}",
        )
    if not notices and not args.json:
        print("no notices")
    return EXIT_OK


async def _read(args: argparse.Namespace, profile: Profile) -> int:
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        await client.request(NoticeRead(notice=args.notice))
    emit({"ok": True, "notice": args.notice}, args.json, f"notice {args.notice} marked read")
    return EXIT_OK


def _status_line(status) -> str:
    waiting = ", ".join(status.unread_by[:20]) + (" …" if status.more_unread or len(status.unread_by) > 20 else "")
    return f"notice {status.id}: read by {status.read} of {status.recipients}" + (f"; not yet: {waiting}" if waiting else "")


async def _status(args: argparse.Namespace, profile: Profile) -> int:
    # Polls rather than listening for `notice_read` events: a receiving client would also take
    # the user's messages off what `corridor listen` shows next.
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        status = await client.request(NoticeStatus(notice=args.notice))
        emit({"type": "status", **status.to_fields()}, args.json, _status_line(status))
        with trio.move_on_after(args.watch):
            while args.watch > 0 and status.read < status.recipients:
                await trio.sleep(WATCH_INTERVAL)
                latest = await client.request(NoticeStatus(notice=args.notice))
                if latest.read != status.read:
                    emit({"type": "status", **latest.to_fields()}, args.json, _status_line(latest))
                status = latest
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add `corridor notice` and its subcommands."""
    notice = sub.add_parser("notice", help="broadcast notices: send to departments or everyone, inbox, read status")
    actions = notice.add_subparsers(dest="action", metavar="ACTION", required=True)
    send = actions.add_parser("send", help="send a notice (where the broadcast policy allows)")
    send.add_argument("title", metavar="TITLE", help="the notice's title")
    send.add_argument("text", metavar="TEXT", help="its text ('-' reads it from stdin)")
    send.add_argument(
        "--department", type=int, action="append", metavar="ID", help="a department, with its sub-departments (repeatable)"
    )
    send.add_argument("--everyone", action="store_true", help="to the whole organisation")
    send.set_defaults(run=_run("notice send", _send))
    inbox = actions.add_parser("inbox", help="notices sent to you, newest first (* = unread)")
    inbox.add_argument("--unread", action="store_true", help="only the unread ones")
    inbox.add_argument("--limit", type=int, default=50, metavar="N", help="how many (default 50, at most 500)")
    inbox.set_defaults(run=_run("notice inbox", _inbox))
    read = actions.add_parser("read", help="mark a notice read (its sender sees it at once)")
    read.add_argument("notice", type=int, metavar="ID", help="the notice's id, from your inbox")
    read.set_defaults(run=_run("notice read", _read))
    status = actions.add_parser("status", help="how many have read a notice you sent, and who not yet")
    status.add_argument("notice", type=int, metavar="ID", help="the notice's id")
    status.add_argument(
        "--watch",
        type=float,
        default=0,
        metavar="S",
        help="then print the status each time it changes, for up to S seconds or until everyone read it",
    )
    status.set_defaults(run=_run("notice status", _status))
    for parser in (send, inbox, read, status):
        _common(parser)
        _connection(parser)
