"""`corridor migrate-storage DIR --to postgresql://…`: copy a data dir's database into PostgreSQL.

The work is in `migrate_storage.py`; this is the command line around it. Exit codes: 0 copied
and verified; 1 PostgreSQL unreachable, the data dir's archive broken, or the copy failed or did
not verify (and was undone); 2 bad arguments, not a data dir, not a postgresql:// URL, or a
target that already holds Corridor data.
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

import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .backup import BackupError
from .backup import Progress as ProgressCallback
from .config import ConfigError
from .migrate_storage import MigrationFailed, MigrationRefused, migrate, server_running
from .storage.migrations import SchemaError

# What each phase counts; the snapshot's bytes are shown in KiB.
UNITS = {"snapshot": "KiB", "checking": "entries", "copying": "rows", "verifying": "entries"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corridor migrate-storage",
        description="Copy a data dir's database (SQLite) into an empty PostgreSQL database, and verify the copy.",
    )
    parser.add_argument("data_dir", metavar="DIR", type=Path, help="the data dir (of a running server, or a stopped one)")
    parser.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="the PostgreSQL database, postgresql://USER@HOST[:PORT]/DATABASE: empty, or holding only Corridor's schema",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


@contextmanager
def progress_bar(show: bool) -> Iterator[ProgressCallback]:
    """A `Progress` callback drawing one bar per phase on stderr (nothing when `show` is false)."""
    columns = (
        TextColumn("{task.description:>9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True, disable=not show) as bar:
        tasks = {}

        def update(what: str, done: int, total: int) -> None:
            if what == "snapshot":
                done, total = done // 1024, total // 1024
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total, unit=UNITS[what])
            bar.update(tasks[what], completed=done, total=total)

        yield update


def main(argv: list[str]) -> int:
    """Entry point for `corridor migrate-storage`; returns the exit code."""
    args = _parser().parse_args(argv)
    running = server_running(args.data_dir)
    if running:
        print(
            f"corridor migrate-storage: a server is running on {args.data_dir}: copying a snapshot, and what it writes"
            " after it is not copied; for the cut-over, stop the server first",
            file=sys.stderr,
        )
    try:
        with progress_bar(not args.json and sys.stderr.isatty()) as progress:
            result = migrate(args.data_dir, args.to, progress)
    except (MigrationRefused, BackupError, ConfigError, SchemaError) as exc:
        print(f"corridor migrate-storage: {exc}", file=sys.stderr)
        return 2
    except (MigrationFailed, OSError, sqlite3.Error, psycopg.Error) as exc:
        print(f"corridor migrate-storage: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"ok": True, "server_running": running, **dataclasses.asdict(result)}, ensure_ascii=False))
        return 0
    print(
        f"copied {result.source} (snapshot of {result.snapshot}) into {result.target}: {result.rows:,} rows"
        f" in {len(result.tables)} tables, in {result.seconds:.2f} s"
    )
    signed = "1 signed checkpoint holds" if result.checkpoints == 1 else f"{result.checkpoints:,} signed checkpoints hold"
    print(
        f"verified: row counts and conversation sequences match; archive intact, {result.archive_entries:,} entries"
        f" up to the snapshot's head, {signed}"
    )
    print("Writes made after the snapshot are not copied: for the cut-over, stop the server and copy into a new, empty database.")
    print(f"To switch, put this in {result.source}/corridor.toml and restart the server:\n")
    print(f'[storage]\nbackend = "postgresql"\ndsn = {json.dumps(result.dsn)}')
    if result.password_left_out:
        print("\n(the password is left out: give it to the server's user in ~/.pgpass or PGPASSFILE)")
    return 0
