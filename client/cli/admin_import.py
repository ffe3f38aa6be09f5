"""`corridor admin import FILE.csv` and `corridor admin ldap-sync`: bulk changes to the directory.

An import is checked locally first (every bad row reported with its line, nothing sent), then
sent in batches on one connection with a progress bar, and applied by the server in one
transaction — or, with `--dry-run`, only described. Invites for the new accounts can be
written to a file (mode 0600: they are passwords until used).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from corridor.protocol.errors import make_error
from corridor.protocol.messages import DirectoryImport, ImportResult, LdapSync

from ..directory_csv import CsvProblems, read_import_csv
from .admin_link import Description, admin_link, run_admin

BATCH = 1000
IMPORT_TIMEOUT = 600.0  # applying tens of thousands of rows takes a while on a small server
SHOWN_CHANGES = 20


def _write_invites(path: Path, result: ImportResult) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["username", "invite"])
        writer.writerows((i.user, i.invite) for i in result.invites)


def _describe(result: ImportResult, *, dry_run: bool, invites_out: Path | None) -> Description:
    counts = {
        name: getattr(result, name)
        for name in ("created", "updated", "moved", "deactivated", "reactivated", "departments_created", "departments_removed")
    }
    summary = ", ".join(f"{value} {name.replace('_', ' ')}" for name, value in counts.items())
    head = f"{'Would change' if dry_run else 'Applied'} ({result.staged} people read): {summary}"
    changes = list(result.changes)
    shown = changes if dry_run else changes[:SHOWN_CHANGES]
    hidden = len(changes) - len(shown) + result.omitted
    lines = [head, *(f"  {c}" for c in shown)]
    if hidden:
        lines.append(f"  … and {hidden} more (--json lists up to 5,000)")
    lines += [f"warning: {w}" for w in result.warnings]
    if invites_out is not None and not dry_run:
        _write_invites(invites_out, result)
        lines.append(f"{len(result.invites)} invite(s) written to {invites_out}")
    data = {
        "ok": True,
        "applied": result.applied,
        "staged": result.staged,
        **counts,
        "changes": changes,
        "omitted": result.omitted,
        "warnings": list(result.warnings),
    }
    return data, "\n".join(lines)


async def _import(args: argparse.Namespace) -> Description:
    try:
        found = read_import_csv(args.file)
    except CsvProblems as exc:
        raise make_error("BAD_MESSAGE", f"nothing imported; fix these rows:\n{exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise make_error("BAD_MESSAGE", f"cannot read {args.file}: {exc}") from None
    people, departments = found.people, found.departments
    total = len(people) + len(departments)
    batches = [people[i : i + BATCH] for i in range(0, len(people), BATCH)] or [[]]
    show = not args.json and sys.stderr.isatty()
    async with admin_link(args, IMPORT_TIMEOUT) as send:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
            disable=not show,
        ) as progress:
            task = progress.add_task("sending", total=len(people))
            for number, batch in enumerate(batches, 1):
                last = number == len(batches)
                if last:
                    progress.update(task, description="applying" if not args.dry_run else "checking")
                result = await send(
                    DirectoryImport(
                        people=tuple(batch),
                        departments=tuple(departments) if last else (),
                        final=last,
                        total=total,
                        dry_run=args.dry_run,
                        invites=args.invites_out is not None,
                    )
                )
                progress.advance(task, len(batch))
    return _describe(result, dry_run=args.dry_run, invites_out=args.invites_out)


async def _ldap_sync(args: argparse.Namespace) -> Description:
    async with admin_link(args, IMPORT_TIMEOUT) as send:
        result = await send(LdapSync(dry_run=args.dry_run, invites=args.invites_out is not None))
    return _describe(result, dry_run=args.dry_run, invites_out=args.invites_out)


def register(topics: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    """Add `import` and `ldap-sync` to `corridor admin`."""
    importing = topics.add_parser(
        "import", help="create and update people and departments from a CSV file (all or nothing; see docs/cli.md)"
    )
    importing.add_argument("file", type=Path, metavar="FILE.csv", help="UTF-8 CSV with a header row")
    syncing = topics.add_parser("ldap-sync", help="apply the LDAP/AD directory configured in [ldap] (see docs/config.md)")
    for command in (importing, syncing):
        command.add_argument("--dry-run", action="store_true", help="only print what would change")
        command.add_argument(
            "--invites-out", type=Path, metavar="FILE", help="issue invites for new accounts and write them here (CSV, mode 0600)"
        )
    importing.set_defaults(run=run_admin(_import))
    syncing.set_defaults(run=run_admin(_ldap_sync))
    return [importing, syncing]
