"""`corridor read …`: what I have read, what is unread, and who has read what I sent.

A conversation is named by the other person's username for 1:1, or `#ID` for a group.
"""

from __future__ import annotations

import argparse

from corridor.protocol.errors import make_error
from corridor.protocol.messages import GroupHistory, History, MarkRead, ReadReceipts, Unread

from ..client import Client
from ..profile import Profile
from .commands import _client_options, _common, _connection, _run
from .output import EXIT_OK, emit


async def _conversation(client: Client, target: str) -> tuple[int, int]:
    """(conversation id, its latest seq) of a username or `#ID`."""
    if target.startswith("#") and target[1:].isdigit():
        result = await client.request(GroupHistory(group=int(target[1:]), limit=1))
        conversation = int(target[1:])
    else:
        result = await client.request(History(with_user=target, limit=1))
        conversation = result.conversation
        if conversation is None:
            raise make_error("NO_SUCH_CONVERSATION", f"you have no conversation with {target}")
    return conversation, result.messages[-1].seq if result.messages else 0


async def _mark(args: argparse.Namespace, profile: Profile) -> int:
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        conversation, latest = await _conversation(client, args.conversation)
        seq = args.seq if args.seq is not None else latest
        await client.request(MarkRead(conversation=conversation, seq=seq))
    emit({"ok": True, "conversation": conversation, "seq": seq}, args.json, f"read {args.conversation} up to #{seq}")
    return EXIT_OK


async def _unread(args: argparse.Namespace, profile: Profile) -> int:
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        counts = (await client.request(Unread())).conversations
    for c in counts:
        emit(
            {"type": "unread", **c.to_fields()},
            args.json,
            f"conversation {c.conversation}: {c.unread} unread (up to #{c.last_seq})",
        )
    if not counts and not args.json:
        print("nothing unread")
    return EXIT_OK


async def _receipts(args: argparse.Namespace, profile: Profile) -> int:
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        conversation, _ = await _conversation(client, args.conversation)
        result = await client.request(ReadReceipts(conversation=conversation, seq=args.seq))
    text = f"read by {', '.join(result.read) or 'nobody'}; not yet by {', '.join(result.unread) or 'nobody'}"
    if result.delivered:
        text += f" (on a device of {', '.join(result.delivered)})"
    emit(
        {
            "ok": True,
            "conversation": conversation,
            "seq": args.seq,
            "read": list(result.read),
            "unread": list(result.unread),
            "delivered": list(result.delivered),
        },
        args.json,
        text,
    )
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add `corridor read` and its subcommands."""
    read = sub.add_parser("read", help="read marks: mark a conversation read, list unread, see who read a message")
    actions = read.add_subparsers(dest="action", metavar="ACTION", required=True)
    target = {"metavar": "WITH", "help": "the other person's username, or #ID for a group"}
    mark = actions.add_parser("mark", help="mark a conversation read (to its latest message unless --seq)")
    mark.add_argument("conversation", **target)
    mark.add_argument("--seq", type=int, metavar="N", help="read up to message #N")
    mark.set_defaults(run=_run("read mark", _mark))
    unread = actions.add_parser("unread", help="conversations with messages you have not read, and how many")
    unread.set_defaults(run=_run("read unread", _unread))
    receipts = actions.add_parser("receipts", help="who has read one of the conversation's messages, and who not")
    receipts.add_argument("conversation", **target)
    receipts.add_argument("seq", type=int, metavar="SEQ", help="the message's number (#N)")
    receipts.set_defaults(run=_run("read receipts", _receipts))
    for parser in (mark, unread, receipts):
        _common(parser)
        _connection(parser)
