"""`corridor backup DIR OUT`: a consistent backup of a data dir while its server keeps serving.

The work is in `backup.py`; this is the command line around it. Exit codes: 0 saved; 1 saved,
but some contents on the source disk no longer match their hash (named on stderr), or an
operating-system error (disk full, permission denied); 2 bad arguments, not a data dir, or an
`OUT` that exists.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from .backup import BackupError, format_size, take_backup
from .backup import Progress as ProgressCallback
from .config import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corridor backup",
        description="Back up a data dir (database, config, keys, file contents) while its server runs.",
    )
    parser.add_argument("data_dir", metavar="DIR", type=Path, help="the data dir (of a running server, or a stopped one)")
    parser.add_argument("out", metavar="OUT", type=Path, help="the backup directory to create (must not exist)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


@contextmanager
def progress_bar(show: bool) -> Iterator[ProgressCallback]:
    """A `Progress` callback drawing one bar per phase on stderr (nothing when `show` is false)."""
    columns = (TextColumn("{task.description:>9}"), BarColumn(), DownloadColumn(binary_units=True), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True, disable=not show) as bar:
        tasks = {}

        def update(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        yield update


def main(argv: list[str]) -> int:
    """Entry point for `corridor backup`; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        with progress_bar(not args.json and sys.stderr.isatty()) as progress:
            result = take_backup(args.data_dir, args.out, progress)
    except (BackupError, ConfigError) as exc:
        print(f"corridor backup: {exc}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:
        print(f"corridor backup: {exc}", file=sys.stderr)
        return 1
    for name in result.damaged:
        print(
            f"corridor backup: {name} does not match its SHA-256 on the source disk (damaged there); backed up as it is",
            file=sys.stderr,
        )
    for name in result.vanished:
        print(f"corridor backup: {name} was erased by retention during the backup; not in it", file=sys.stderr)
    for name in result.not_included:
        print(f"corridor backup: not in the backup, outside the data dir: {name}; keep a copy of it yourself", file=sys.stderr)
    if args.json:
        print(json.dumps({"ok": not result.damaged, **dataclasses.asdict(result)}, ensure_ascii=False))
    else:
        print(
            f"backed up {result.source} to {result.backup}: {result.files:,} files ({format_size(result.bytes)}), "
            f"database {format_size(result.database_bytes)} with {result.migrations} migrations, in {result.seconds:.2f} s"
        )
    return 1 if result.damaged else 0
