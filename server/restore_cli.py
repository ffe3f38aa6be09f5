"""`corridor restore BACKUP NEWDIR`: check a backup made by `corridor backup` and restore it into
a new data dir, ready for `corridor serve`.

The work is in `backup.py`; this is the command line around it. Exit codes: 0 restored; 1 the
backup is damaged (a file missing or not what the manifest says, a database failing its
integrity check; the message names it) or an operating-system error; 2 bad arguments, not a
backup, an existing `NEWDIR`, or a backup written by a newer Corridor.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sqlite3
import sys
from pathlib import Path

from .app import MIGRATIONS
from .backup import BackupError, DamagedBackup, format_size, restore_backup
from .backup_cli import progress_bar


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corridor restore", description="Check a backup and restore it into a new data dir for 'corridor serve'."
    )
    parser.add_argument("backup", metavar="BACKUP", type=Path, help="a backup directory made by 'corridor backup'")
    parser.add_argument("new_dir", metavar="NEWDIR", type=Path, help="the data dir to create (must not exist)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: list[str]) -> int:
    """Entry point for `corridor restore`; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        with progress_bar(not args.json and sys.stderr.isatty()) as progress:
            result = restore_backup(args.backup, args.new_dir, [m.name for m in MIGRATIONS], progress)
    except BackupError as exc:
        print(f"corridor restore: {exc}", file=sys.stderr)
        return 2
    except (DamagedBackup, OSError, sqlite3.Error) as exc:
        print(f"corridor restore: {exc}", file=sys.stderr)
        return 1
    start = f"corridor serve {shlex.quote(str(args.new_dir))}"
    if args.json:
        print(json.dumps({"ok": True, **dataclasses.asdict(result), "start": start}, ensure_ascii=False))
        return 0
    print(
        f"restored {result.backup} (taken {result.created} from {result.source}) into {result.data_dir}: "
        f"{result.files:,} files ({format_size(result.bytes)}) verified, database intact with {result.migrations} migrations"
    )
    for name in result.not_included:
        print(f"Not in the backup, put it back yourself: {name}")
    if result.pending_migrations:
        print(f"The server applies {result.pending_migrations} newer migrations when it starts.")
    print(f"Start the server:  {start}")
    print(f"To try it beside the running server:  {start} --listen 127.0.0.1:0 --no-advertise")
    return 0
