"""`corridor admin --data DIR …`: administration through the running server's control socket.

The socket (DIR/control.sock, mode 0600) speaks the same protocol as TLS clients; the server
treats whoever can open it as the local admin, the same trust as reading the data dir.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path

import trio

from corridor.protocol.errors import CorridorError, make_error, single_exception
from corridor.protocol.messages import ROLES, UserAdd

from ..transport import open_unix, running
from .output import EXIT_OK, emit, report

DATA_ENV = "CORRIDOR_DATA"
ADMIN_TIMEOUT = 30.0


async def _user_add(args: argparse.Namespace) -> int:
    stream = await open_unix(str(args.data / "control.sock"))
    try:
        async with running(stream) as channel:
            with trio.fail_after(ADMIN_TIMEOUT):
                await channel.handshake()
                result = await channel.request(UserAdd(username=args.username, display_name=args.name, role=args.role))
    except BaseExceptionGroup as group:
        raise single_exception(group) from None
    except trio.TooSlowError:
        raise make_error("CONNECTION_LOST", f"the server did not answer within {ADMIN_TIMEOUT:g} s") from None
    expires = dt.datetime.fromtimestamp(result.expires).strftime("%Y-%m-%d %H:%M")
    emit(
        {"ok": True, "user": result.user, "role": args.role, "invite": result.invite, "expires": result.expires},
        args.json,
        f"Created {result.user} ({args.name}, {args.role}). One-time invite, valid until {expires}:\n  {result.invite}",
    )
    return EXIT_OK


def _run(body):
    def run(args: argparse.Namespace) -> int:
        try:
            return trio.run(body, args)
        except CorridorError as exc:
            return report("admin", exc, args.json)

    return run


def register(sub: argparse._SubParsersAction) -> None:
    """Add `corridor admin` and its subcommands to the root parser."""
    admin = sub.add_parser("admin", help="administer a running server from its host (control socket)")
    admin.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get(DATA_ENV, "corridor-data")),
        metavar="DIR",
        help=f"the server's data dir (default: ${DATA_ENV} or ./corridor-data)",
    )
    topics = admin.add_subparsers(dest="topic", metavar="TOPIC", required=True)
    user = topics.add_parser("user", help="manage accounts")
    actions = user.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="create an account and print its one-time enrollment invite")
    add.add_argument("username", metavar="USER", help="login name: a-z, 0-9, '.', '_', '-'")
    add.add_argument("--name", required=True, help='display name, e.g. "Zhang San"')
    add.add_argument("--role", choices=ROLES, default="user", help="role (default: user)")
    add.add_argument("--json", action="store_true", help="machine-readable output")
    add.set_defaults(run=_run(_user_add))
