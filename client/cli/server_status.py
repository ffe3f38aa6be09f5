"""`corridor status DIR`: a running server's health, asked over its control socket on the
server host — connections, people online, messages today, archive and database size,
certificate expiry, and warnings to act on. (`corridor status show|set|quiet-hours` are an
employee's own status: `main` tells the two apart by the first argument.)

Exit codes: 0 healthy, 1 running with a warning, 2 bad usage, 5 not running (no answer on the
control socket).
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import trio

from corridor.protocol.errors import CorridorError
from corridor.protocol.ops import ServerStatus, ServerStatusResult

from .admin_link import admin_link
from .output import EXIT_OK, EXIT_REFUSED, emit, human_size, report

STATUS_TIMEOUT = 10.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corridor status", description="A running server's health (on the server host).")
    parser.add_argument("data_dir", metavar="DIR", type=Path, help="the server's data dir")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _ago(seconds: float) -> str:
    minutes = int(seconds // 60)
    days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60
    return (f"{days} d " if days else "") + (f"{hours} h " if days or hours else "") + f"{minutes} min"


def _text(status: ServerStatusResult, now: float) -> str:
    expires = dt.datetime.fromtimestamp(status.certificate_expires)
    lines = [
        f"{status.organisation} — Corridor {status.version}, up {_ago(now - status.started)}",
        f"connections      {status.connections} ({status.sessions} logged in, {status.users_online} people online)",
        f"messages today   {status.messages_today:,}",
        f"archive          {status.archive_entries:,} entries",
        f"database         {human_size(status.database_bytes)} ({status.writes:,} writes in {status.commits:,} commits since start)",
        f"certificate      expires {expires:%Y-%m-%d} ({(status.certificate_expires - now) / 86400:.0f} days)",
    ]
    return "\n".join(lines + [f"WARNING: {w}" for w in status.warnings])


async def _ask(args: argparse.Namespace) -> ServerStatusResult:
    link = argparse.Namespace(data=args.data_dir, remote=False, profile=None)
    async with admin_link(link, STATUS_TIMEOUT) as send:
        return await send(ServerStatus())


def main(argv: list[str]) -> int:
    """Entry point for `corridor status DIR`; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        status = trio.run(_ask, args)
    except CorridorError as exc:  # CONNECTION_LOST when no server answers: exit 5
        return report("status", exc, args.json)
    now = dt.datetime.now().timestamp()
    emit({"ok": not status.warnings, **status.to_fields()}, args.json, _text(status, now))
    return EXIT_OK if not status.warnings else EXIT_REFUSED
