"""`corridor file send` and `corridor file get`: send a file to a person or a group, and fetch
one that was sent to you, both resuming where an interrupted run stopped, with a progress bar."""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from corridor.protocol.errors import make_error
from corridor.protocol.messages import GroupHistory, History

from ..client import Client
from ..profile import Profile
from ..transfers import download, send_file
from .commands import _client_options, _common, _connection, _run
from .output import EXIT_OK, emit, human_size


@contextmanager
def _bar(label: str, as_json: bool):
    """A progress bar on stderr (only for a person at a terminal); yields the callback."""
    show = not as_json and sys.stderr.isatty()
    columns = (TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True, disable=not show) as progress:
        task = progress.add_task(label, total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)


async def _send(args: argparse.Namespace, profile: Profile) -> int:
    path: Path = args.path
    if not path.is_file():
        raise make_error("BAD_MESSAGE", f"{path} is not a file")
    starts: list[int] = []

    def progress(done: int, total: int) -> None:
        if not starts:
            starts.append(done)
        bar(done, total)

    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        with _bar(f"sending {path.name}", args.json) as bar:
            ack = await send_file(client, args.to, path, name=args.name, progress=progress)
    size = path.stat().st_size
    resumed = f", resumed at {human_size(starts[0])}" if 0 < starts[0] < size else ""
    emit(
        {
            "ok": True,
            "to": args.to.lower(),
            "name": args.name or path.name,
            "size": size,
            "conversation": ack.conversation,
            "seq": ack.seq,
            "duplicate": ack.duplicate,
            "held": ack.held,
            "resumed_from": starts[0],
        },
        args.json,
        f"sent {args.name or path.name} ({human_size(size)}{resumed}) to {args.to.lower()}"
        f" (conversation {ack.conversation}, #{ack.seq})",
    )
    return EXIT_OK


async def _file_of(client: Client, where: str, seq: int) -> str:
    """The id of the file in message #seq of a conversation (a username or #ID)."""
    if where.startswith("#") and where[1:].isdigit():
        found = await client.request(GroupHistory(group=int(where[1:]), after=seq - 1, limit=1))
    else:
        found = await client.request(History(with_user=where, after=seq - 1, limit=1))
    message = next((m for m in found.messages if m.seq == seq), None)
    if message is None or message.file is None:
        raise make_error("NO_SUCH_FILE", f"message #{seq} with {where} is not a file you can see")
    return message.file.id


async def _get(args: argparse.Namespace, profile: Profile) -> int:
    if (args.id is None) == (args.conversation is None) or (args.conversation is not None and args.seq is None):
        raise make_error("BAD_MESSAGE", "name the file as WITH SEQ (as history shows it) or with --id FILE_ID")
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        file_id = args.id or await _file_of(client, args.conversation, args.seq)
        with _bar("fetching", args.json) as bar:
            path = await download(client, file_id, args.out, thumbnail=args.thumbnail, overwrite=args.force, progress=bar)
    size = path.stat().st_size
    emit(
        {"ok": True, "file": file_id, "path": str(path), "size": size, "thumbnail": args.thumbnail},
        args.json,
        f"saved {path} ({human_size(size)}, SHA-256 checked)" if not args.thumbnail else f"saved {path}",
    )
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add `corridor file send|get`."""
    file = sub.add_parser("file", help="send a file to someone or a group; fetch a file sent to you")
    actions = file.add_subparsers(dest="action", metavar="ACTION", required=True)
    send = actions.add_parser("send", help="upload a file and send it (resumes an interrupted upload)")
    send.add_argument("to", metavar="TO", help="recipient's username, or #ID for a group")
    send.add_argument("path", type=Path, metavar="PATH", help="the file to send")
    send.add_argument("--name", help="the name others see (default: the file's own name)")
    send.set_defaults(run=_run("file send", _send))
    get = actions.add_parser("get", help="download a file sent to you (resumes an interrupted download)")
    get.add_argument("conversation", nargs="?", metavar="WITH", help="the other person's username, or #ID for a group")
    get.add_argument("seq", nargs="?", type=int, metavar="SEQ", help="the file message's number (#N, as history shows it)")
    get.add_argument("--id", metavar="FILE_ID", help="the file's id (SHA-256) instead of WITH SEQ")
    get.add_argument("--out", type=Path, default=Path("."), metavar="PATH", help="a directory (default: here) or a file path")
    get.add_argument("--thumbnail", action="store_true", help="fetch an image's thumbnail instead")
    get.add_argument("--force", action="store_true", help="overwrite a file that exists")
    get.set_defaults(run=_run("file get", _get))
    for parser in (send, get):
        _common(parser)
        _connection(parser)
