"""How `corridor admin` reaches the server: the local control socket, or TLS as an admin.

On the server host, whoever can open DIR/control.sock (mode 0600) is the local admin, the same
trust as reading the data dir. Anywhere else, `--remote` (or `--profile DIR`) logs in with an
enrolled profile over TLS, and the server's policy decides what that user's role may do (an IT
admin everything, a department admin its own subtree).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import trio

from corridor.protocol.errors import CorridorError, make_error
from corridor.protocol.messages import Request
from corridor.protocol.schema import Record

from ..client import Client
from ..profile import Profile, default_profile_dir
from ..transport import open_unix, running
from .output import EXIT_OK, emit, report

DATA_ENV = "CORRIDOR_DATA"
ADMIN_TIMEOUT = 30.0

# What a command prints for its result: the `--json` object and the human text.
Description = tuple[dict[str, Any], str]
Send = Callable[[Request], Awaitable[Record]]


def add_link_options(parser: argparse.ArgumentParser) -> None:
    """--data for the control socket; --remote / --profile for TLS as an enrolled admin."""
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get(DATA_ENV, "corridor-data")),
        metavar="DIR",
        help=f"the server's data dir, to use its control socket (default: ${DATA_ENV} or ./corridor-data)",
    )
    parser.add_argument(
        "--remote", action="store_true", help="connect over TLS with your enrolled profile instead of the control socket"
    )
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="with --remote (implied): the profile dir (default: the user config dir)"
    )


def control_socket(data: Path) -> Path:
    """The admin socket of the server on a data dir: `control.sock`, or, where several serve
    processes share the data dir (`serve --instance NAME`), the first `control-NAME.sock`
    (they share one database, so any of them will do)."""
    single = data / "control.sock"
    if single.exists():
        return single
    return next(iter(sorted(data.glob("control-*.sock"))), single)


@asynccontextmanager
async def admin_link(args: argparse.Namespace, timeout: float = ADMIN_TIMEOUT) -> AsyncIterator[Send]:
    """One connection to the server for a whole command; yields a function that sends a request
    and returns its result (typed errors raised). Every request must finish within `timeout`."""
    if args.remote or args.profile:
        try:
            profile = Profile(args.profile or default_profile_dir())
        except OSError as exc:
            raise make_error("BAD_MESSAGE", f"cannot open profile: {exc}") from None
        try:
            # If the link drops during a bulk import, the server sees batches missing and refuses it.
            async with Client.open(profile, receive=False) as client:
                yield _deadline(client.request, timeout)
        finally:
            profile.close()
        return
    stream = await open_unix(str(control_socket(args.data)))
    async with running(stream) as channel:
        with _timed(timeout):
            await channel.handshake()
        yield _deadline(channel.request, timeout)


@contextmanager
def _timed(timeout: float) -> Iterator[None]:
    try:
        with trio.fail_after(timeout):
            yield
    except trio.TooSlowError:
        raise make_error("CONNECTION_LOST", f"the server did not answer within {timeout:g} s") from None


def _deadline(send: Send, timeout: float) -> Send:
    async def request(message: Request) -> Record:
        with _timed(timeout):
            return await send(message)

    return request


def admin_command(
    build: Callable[[argparse.Namespace], Request], describe: Callable[[Any, Any], Description]
) -> Callable[[argparse.Namespace], int]:
    """An admin command of one request: build it, send it, print `describe(request, result)`."""

    async def body(args: argparse.Namespace) -> Description:
        request = build(args)
        async with admin_link(args) as send:
            return describe(request, await send(request))

    return run_admin(body)


def run_admin(body: Callable[[argparse.Namespace], Awaitable[Description]]) -> Callable[[argparse.Namespace], int]:
    """Run an admin command's async body; print its description, or its error with its exit code."""

    def run(args: argparse.Namespace) -> int:
        try:
            data, text = trio.run(body, args)
        except CorridorError as exc:
            return report("admin", exc, args.json)
        emit(data, args.json, text)
        return EXIT_OK

    return run
