"""`corridor audit verify DIR`: check a data dir's archive chain and its signed checkpoints
offline, and name the first entry that was changed, inserted or deleted, or cut off the end.

It opens the database read-only (a running server is fine: WAL readers never block it, and
nothing is written), so an auditor or IT admin can run it at any time on the server host or on
a copy of the data dir. On PostgreSQL (`[storage] backend`) it reads the configured database in
one read-only snapshot, while the serve processes go on writing.
Exit codes: 0 intact, 1 broken, 2 not a data dir or not readable.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .config import ConfigError, load_config
from .features.archive.checkpoints import PUBLIC_KEY, load_public_key
from .features.archive.verify import verify_chain


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corridor audit", description="Audit tools that run on a data dir.")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    verify = sub.add_parser("verify", help="check the archive's hash chain and name the first broken entry")
    verify.add_argument("data_dir", metavar="DIR", type=Path, help="a data dir (of a running server, or a copy)")
    verify.add_argument(
        "--public-key",
        type=Path,
        metavar="PEM",
        help="the archive's public key as you keep it (default: the data dir's tls/archive.pub)",
    )
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _open(data_dir: Path) -> sqlite3.Connection:
    config = load_config(data_dir)
    if config.storage.backend == "postgresql":
        return _open_postgresql(config.storage.dsn)
    database = config.database_path
    if not database.is_file():
        raise ConfigError(f"{database} does not exist")
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        conn.execute("SELECT 1 FROM archive LIMIT 1").fetchall()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ConfigError(f"{database} holds no Corridor archive ({exc})") from None
    return conn


def _open_postgresql(dsn: str):
    from .storage.postgres import Connection

    conn = Connection(dsn)
    # The count and the walk see one snapshot, whatever the servers append meanwhile.
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    return conn


def _public_key(args: argparse.Namespace):
    path = args.public_key or args.data_dir / PUBLIC_KEY
    try:
        return load_public_key(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot use {path} as the archive's public key: {exc}") from None


def _verify(args: argparse.Namespace) -> int:
    conn = _open(args.data_dir)
    try:
        public = _public_key(args)
        (total,) = conn.execute("SELECT count(*) FROM archive").fetchone()
        show = not args.json and sys.stderr.isatty()
        columns = (TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        started = time.perf_counter()
        with Progress(*columns, console=Console(stderr=True), transient=True, disable=not show) as bar:
            task = bar.add_task("verifying", total=total)
            verdict = verify_chain(conn, public, progress=lambda done: bar.update(task, completed=done))
        seconds = time.perf_counter() - started
    finally:
        conn.close()
    result = {
        "ok": verdict.intact,
        "entries": total,
        "verified": verdict.verified,
        "broken": verdict.broken,
        "reason": verdict.reason,
        "checkpoints": verdict.checkpoints,
        "seconds": round(seconds, 3),
    }
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    elif verdict.intact:
        print(f"archive intact: {total:,} entries verified, {verdict.checkpoints:,} signed checkpoints hold ({seconds:.2f} s)")
    else:
        print(f"archive BROKEN at entry {verdict.broken}: {verdict.reason} ({verdict.verified:,} entries before it verified)")
    return 0 if verdict.intact else 1


def main(argv: list[str]) -> int:
    """Entry point for `corridor audit`; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return _verify(args)
    except (ConfigError, sqlite3.Error, OSError) as exc:
        print(f"corridor audit {args.action}: {exc}", file=sys.stderr)
        return 2
