"""`corridor`: the one command. Client commands are defined here; server-side commands
(`serve`, `init`) are imported by name only when run, so `corridor --help` and every client
command load no server code (DESIGN.md §2)."""

from __future__ import annotations

import argparse
import importlib
import sys

from . import admin, audit, commands, devices, directory, files, groups, notices, reading, recall, status

# name → (module with main(argv) -> int, one-line help)
SERVER_COMMANDS = {
    "init": ("corridor.deploy.init", "create a data dir: config, CA, certificates, database, first admin"),
    "serve": ("corridor.server.cli", "run the server in the foreground"),
}


def build_parser() -> argparse.ArgumentParser:
    """The full command tree (server commands appear by name; their options live in their modules)."""
    parser = argparse.ArgumentParser(prog="corridor", description="Corridor: the company's own LAN messenger.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, summary) in SERVER_COMMANDS.items():
        sub.add_parser(name, help=summary, add_help=False)
    commands.register(sub)
    status.register(sub)
    directory.register(sub)
    devices.register(sub)
    groups.register(sub)
    reading.register(sub)
    recall.register(sub)
    notices.register(sub)
    files.register(sub)
    admin.register(sub)
    audit.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `corridor` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SERVER_COMMANDS:
        module = importlib.import_module(SERVER_COMMANDS[argv[0]][0])
        sys.exit(module.main(argv[1:]))
    args = build_parser().parse_args(argv)
    try:
        sys.exit(args.run(args))
    except KeyboardInterrupt:
        sys.exit(130)
