"""`corridor recall` and `corridor edit`: take back or change a message you sent."""

from __future__ import annotations

import argparse

from corridor.protocol.messages import Edit, Recall

from ..client import Client
from ..profile import Profile
from .commands import _client_options, _common, _connection, _run
from .output import EXIT_OK, emit
from .reading import _conversation


async def _recall(args: argparse.Namespace, profile: Profile) -> int:
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        conversation, _ = await _conversation(client, args.conversation)
        ack = await client.request(Recall(conversation=conversation, seq=args.seq))
    emit({"ok": True, "conversation": conversation, "seq": args.seq, "recall_seq": ack.seq}, args.json, f"recalled #{args.seq}")
    return EXIT_OK


async def _edit(args: argparse.Namespace, profile: Profile) -> int:
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        conversation, _ = await _conversation(client, args.conversation)
        ack = await client.request(Edit(conversation=conversation, seq=args.seq, text=args.text))
    emit({"ok": True, "conversation": conversation, "seq": args.seq, "edit_seq": ack.seq}, args.json, f"edited #{args.seq}")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add `corridor recall` and `corridor edit`."""
    target = {"metavar": "WITH", "help": "the other person's username, or #ID for a group"}
    recall = sub.add_parser("recall", help="take back a message you sent (within the server's recall window)")
    recall.add_argument("conversation", **target)
    recall.add_argument("seq", type=int, metavar="SEQ", help="the message's number (#N, as history shows it)")
    recall.set_defaults(run=_run("recall", _recall))
    edit = sub.add_parser("edit", help="change the text of a message you sent (within the recall window)")
    edit.add_argument("conversation", **target)
    edit.add_argument("seq", type=int, metavar="SEQ", help="the message's number (#N)")
    edit.add_argument("text", metavar="TEXT", help="the new text")
    edit.set_defaults(run=_run("edit", _edit))
    for parser in (recall, edit):
        _common(parser)
        _connection(parser)
