"""`corridor`: the one command. Client commands are defined here; server-side commands
(`serve`, `init`) are imported by name only when run, so `corridor --help` and every client
command load no server code (DESIGN.md §2)."""

from __future__ import annotations

import argparse
import importlib
import sys

from . import admin, audit, commands, desktop, devices, directory, files, groups, notices, reading, recall, server_status, status

# name → (module with main(argv) -> int, one-line help)
SERVER_COMMANDS = {
    "init": ("corridor.deploy.init", "create a data dir: config, CA, certificates, database, first admin"),
    "serve": ("corridor.server.cli", "run the server in the foreground"),
    "check-config": (
        "corridor.server.check_config_cli",
        "on a data dir: validate corridor.toml (a bad key is named with its line) and the files it points at",
    ),
    "backup": ("corridor.server.backup_cli", "on a data dir: a consistent online backup (database, files, keys)"),
    "restore": ("corridor.server.restore_cli", "restore a backup into a new data dir"),
    "migrate-storage": ("corridor.server.migrate_storage_cli", "on a data dir: copy its database into PostgreSQL, verified"),
    "cert": ("corridor.deploy.cert_cli", "on a data dir: server certificate status, renewal, key rotation, host names"),
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
    desktop.register(sub)
    return parser


def is_server_status(argv: list[str]) -> bool:
    """`corridor status DIR` is the server's health; `corridor status show|set|quiet-hours` the
    employee's own (a data dir is never named like those)."""
    return len(argv) > 1 and argv[0] == "status" and argv[1] not in status.ACTIONS and not argv[1].startswith("-")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `corridor` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if is_server_status(argv):
        sys.exit(server_status.main(argv[1:]))
    if argv and argv[0] in SERVER_COMMANDS:
        module = importlib.import_module(SERVER_COMMANDS[argv[0]][0])
        sys.exit(module.main(argv[1:]))
    args = build_parser().parse_args(argv)
    try:
        sys.exit(args.run(args))
    except KeyboardInterrupt:
        sys.exit(130)
