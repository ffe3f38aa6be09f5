"""`corridor serve DIR`: run the server in the foreground."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

import trio

from corridor.protocol.errors import single_exception

from .app import DataDirBusy, Server
from .config import ConfigError, load_config, parse_listen, with_instance
from .shutdown import stop_on_signals
from .storage.migrations import SchemaError

log = logging.getLogger("corridor.server")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corridor serve", description="Run the Corridor server in the foreground.")
    parser.add_argument("data_dir", metavar="DIR", type=Path, help="data dir made by 'corridor init'")
    parser.add_argument(
        "--listen",
        action="append",
        metavar="HOST:PORT",
        help="listen here instead of the config's server.listen (repeatable; port 0 picks a free port)",
    )
    parser.add_argument(
        "--http-listen",
        metavar="HOST:PORT",
        help="serve the integration API and web console here instead of the config's http.listen (port 0 picks one)",
    )
    parser.add_argument(
        "--instance",
        metavar="NAME",
        help="one of several serve processes on this data dir (PostgreSQL and NATS): its own lock and admin socket",
    )
    parser.add_argument("--no-advertise", action="store_true", help="do not advertise the server over mDNS")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="log verbosity (stderr)"
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="text lines, or one JSON object per line (ts, level, logger, message) for a log collector",
    )
    return parser


class JsonLines(logging.Formatter):
    """One JSON object per record: what journald forwarders and log collectors parse without
    guessing at a text layout."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


# Every message allocates many short-lived objects; with the default threshold (700) the young
# generation is collected hundreds of times a second. Objects alive after start-up are frozen
# so collections never walk them.
GC_YOUNG_THRESHOLD = 20_000


async def _run(server: Server) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(stop_on_signals, server)
        addresses = await nursery.start(server.run)
        gc.freeze()
        shown = ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in addresses)
        print(f"corridor: serving {server.config.organisation.name!r} on {shown} (TLS 1.3)", flush=True)
        print(f"corridor: admin socket {server.config.control_socket}", flush=True)
        for host, port in server.http_addresses:
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            print(f"corridor: integration API and web console on https://{shown}/", flush=True)
    # server.run returned: stopped gracefully; the signal task has ended with it.


def main(argv: list[str]) -> int:
    """Entry point for `corridor serve`; returns the exit code."""
    args = _parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonLines() if args.log_format == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    try:
        config = load_config(args.data_dir)
        if args.instance is not None:
            config = with_instance(config, args.instance)
        if args.listen:
            for address in args.listen:
                parse_listen(address)
            config = replace(config, server=replace(config.server, listen=tuple(args.listen)))
        if args.http_listen:
            parse_listen(args.http_listen)
            config = replace(config, http=replace(config.http, listen=args.http_listen))
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        try:
            trio.run(_run, Server(config, advertise=False if args.no_advertise else None))
        except BaseExceptionGroup as group:
            raise single_exception(group) from None
    except (ConfigError, SchemaError, DataDirBusy) as exc:
        print(f"corridor serve: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"corridor serve: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
