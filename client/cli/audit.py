"""`corridor audit …`: what auditors do — search the archive, export it to a file that carries its
own proof, place legal holds — and `verify`, which checks an export here or a data dir on the
server host (that check is server code, loaded by name only when a directory is given).

Every search and export page is recorded in the audit log on the server; IT admins read it with
`corridor admin audit-log`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from corridor.protocol.archive_format import verify_export
from corridor.protocol.audit import AuditEntry, AuditExport, AuditSearch, HoldList, HoldPlace, HoldRelease
from corridor.protocol.errors import make_error

from ..client import Client
from ..export_files import FORMATS, ExportTampered, ExportWriter, format_for, read_export
from ..profile import Profile
from .commands import _client_options, _common, _connection, _run, _when
from .output import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, emit, fail, human_size

EXPORT_PAGE = 500


def _moment(text: str, end_of_day: bool = False) -> float:
    """`2026-12-01` or `2026-12-01T14:30` (local time) as Unix seconds; a bare date given as an
    end means the end of that day."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD) or a time (YYYY-MM-DDTHH:MM)") from None
    if end_of_day and len(text) == 10:
        when += dt.timedelta(days=1, microseconds=-1)
    return when.timestamp()


def _filter(args: argparse.Namespace) -> dict:
    return {
        "text": args.text or "",
        "participant": args.participant or "",
        "department": args.department,
        "conversation": args.conversation,
        "since": args.since,
        "until": args.until,
    }


def _entry_line(entry: AuditEntry, shown: str | None = None) -> str:
    """One entry on one line; `shown` replaces its text (a search shows the snippet)."""
    text = entry.text if shown is None else shown
    if entry.purged:
        body = "(erased by retention)"
    elif entry.kind == "notice":
        body = f"[notice] {entry.title}: {text}"
    elif entry.kind == "file":
        body = f"[upload] {entry.file_sha256} ({human_size(entry.file_size)})"
    elif entry.subkind == "file":
        body = f"[file] {text} ({human_size(entry.file_size)}, sha256 {entry.file_sha256[:12]}…)"
    elif entry.subkind in ("recall", "edit"):
        body = f"({entry.subkind} of #{entry.ref}) {text}"
    else:
        body = text
    where = f" → {entry.recipient}" if entry.recipient else (f" in #{entry.conversation}" if entry.conversation else "")
    return f"#{entry.seq:<8} {_when(entry.ts)}  {entry.actor}{where}: {body}"


async def _search(args: argparse.Namespace, profile: Profile) -> int:
    request = AuditSearch(**_filter(args), before=args.before, limit=args.limit, context=args.context)
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        result = await client.request(request)
    for hit in result.hits:
        if args.json:
            emit({"type": "hit", **hit.to_fields()}, True, None)
            continue
        for entry in hit.before:
            print("    " + _entry_line(entry))
        print(_entry_line(hit.entry, hit.snippet if args.text else None))
        for entry in hit.after:
            print("    " + _entry_line(entry))
        if hit.before or hit.after:
            print()
    if result.more:
        emit({"type": "more", "before": result.hits[-1].entry.seq}, args.json, f"… more: --before {result.hits[-1].entry.seq}")
    elif not result.hits and not args.json:
        print("nothing found")
    return EXIT_OK


async def _export(args: argparse.Namespace, profile: Profile) -> int:
    try:
        fmt = format_for(args.file, args.format)
    except ValueError as exc:
        raise make_error("BAD_MESSAGE", str(exc)) from None
    if args.file.exists():
        raise make_error("ALREADY_EXISTS", f"{args.file} exists; export to a new file")
    selection = _filter(args)
    show = not args.json and sys.stderr.isatty()
    columns = (TextColumn("exporting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        first = await client.request(AuditExport(**selection, limit=EXPORT_PAGE))
        manifest, page, written = first.manifest, first, 0
        with Progress(*columns, console=Console(stderr=True), transient=True, disable=not show) as bar:
            task = bar.add_task("exporting", total=manifest.count)
            with ExportWriter(args.file, fmt, manifest, org=profile.credential().org) as writer:
                while True:
                    writer.write(page.items)
                    written += len(page.items)
                    bar.update(task, completed=written)
                    if not page.more:
                        break
                    after = page.items[-1].row.seq
                    page = await client.request(
                        AuditExport(**selection, through=manifest.through, after=after, limit=EXPORT_PAGE)
                    )
    fingerprint = hashlib.sha256(manifest.public_key).hexdigest()
    emit(
        {
            "ok": True,
            "file": str(args.file),
            "format": fmt,
            "entries": written,
            "through": manifest.through,
            "key_sha256": fingerprint,
        },
        args.json,
        f"exported {written:,} entries to {args.file} ({fmt}), signed by archive key sha256:{fingerprint[:16]}…\n"
        f"check it with: corridor audit verify {args.file} --public-key archive.pub",
    )
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    if not args.path.exists():
        return fail(
            "audit verify", "BAD_FILE", f"{args.path} not found: give an export file or a data dir", args.json, EXIT_USAGE
        )
    if args.path.is_dir():
        # A data dir: the chain walk is the server's code, loaded only now (DESIGN.md §2).
        argv = ["verify", str(args.path)] + (["--public-key", str(args.public_key)] if args.public_key else [])
        return importlib.import_module("corridor.server.audit_cli").main(argv + (["--json"] if args.json else []))
    try:
        trusted = _raw_key(args.public_key) if args.public_key else None
        manifest, rows = read_export(args.path)
    except ExportTampered as exc:
        return _report_export(args, {"ok": False, "entries": 0, "broken": exc.seq, "reason": str(exc)}, f"export BROKEN: {exc}")
    except (OSError, ValueError) as exc:
        return fail("audit verify", "BAD_FILE", str(exc), args.json, EXIT_USAGE)
    verdict = verify_export(manifest, rows, trusted)
    fingerprint = hashlib.sha256(manifest.public_key).hexdigest()
    result = {
        "ok": verdict.intact,
        "entries": verdict.entries,
        "broken": verdict.broken,
        "reason": verdict.reason,
        "exporter": manifest.exporter,
        "exported": manifest.ts,
        "query": json.loads(manifest.query),
        "key_sha256": fingerprint,
        "key_trusted": trusted is not None,
    }
    if verdict.intact:
        trust = "the key you gave" if trusted else f"the key it names (sha256:{fingerprint[:16]}…; pass --public-key to check it)"
        text = (
            f"export intact: {verdict.entries:,} entries, as signed by {trust}; exported by {manifest.exporter} "
            f"at {_when(manifest.ts)}, selection {manifest.query}"
        )
    else:
        text = f"export BROKEN{f' at entry {verdict.broken}' if verdict.broken else ''}: {verdict.reason}"
    return _report_export(args, result, text)


def _report_export(args: argparse.Namespace, result: dict, text: str) -> int:
    emit(result, args.json, text)
    return EXIT_OK if result["ok"] else EXIT_REFUSED


def _raw_key(path: Path) -> bytes:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _hold_text(hold) -> str:
    what = f"user {hold.user}" if hold.user else f"conversation {hold.conversation}"
    return f"hold {hold.id}: {what} — {hold.reason} (placed by {hold.placed_by}, {_when(hold.placed_at)})"


async def _hold_place(args: argparse.Namespace, profile: Profile) -> int:
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        hold = await client.request(HoldPlace(user=args.user or "", conversation=args.conversation, reason=args.reason))
    emit({"ok": True, **hold.to_fields()}, args.json, f"placed {_hold_text(hold)}")
    return EXIT_OK


async def _hold_release(args: argparse.Namespace, profile: Profile) -> int:
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        await client.request(HoldRelease(hold=args.hold))
    emit({"ok": True, "id": args.hold}, args.json, f"released hold {args.hold}; the next purge applies retention again")
    return EXIT_OK


async def _hold_list(args: argparse.Namespace, profile: Profile) -> int:
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        holds = (await client.request(HoldList())).holds
    for hold in holds:
        emit({"type": "hold", **hold.to_fields()}, args.json, _hold_text(hold))
    if not holds and not args.json:
        print("no legal holds in force")
    return EXIT_OK


def _selection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--participant", metavar="USER", help="what this person sent, and direct messages they received")
    parser.add_argument("--department", type=int, metavar="ID", help="about people of this department (with those below)")
    parser.add_argument("--conversation", type=int, metavar="ID", help="one conversation")
    parser.add_argument("--since", type=_moment, metavar="WHEN", help="from this date or time (YYYY-MM-DD[THH:MM], local)")
    parser.add_argument(
        "--until", type=lambda t: _moment(t, end_of_day=True), metavar="WHEN", help="up to this date (inclusive) or time"
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add `corridor audit` and its subcommands."""
    audit = sub.add_parser("audit", help="auditors: search and export the archive, legal holds, verify exports and data dirs")
    actions = audit.add_subparsers(dest="action", metavar="ACTION", required=True)

    search = actions.add_parser("search", help="search the archive, newest first (recorded in the audit log)")
    search.add_argument("text", nargs="?", metavar="TEXT", help='words to find (Chinese too); "a phrase"; prefix*')
    _selection_options(search)
    search.add_argument("--context", type=int, default=0, metavar="N", help="show N messages before and after each hit (0-10)")
    search.add_argument("--limit", type=int, default=20, metavar="N", help="hits per page (1-200, default 20)")
    search.add_argument("--before", type=int, default=0, metavar="SEQ", help="the next page: hits older than this entry")
    search.set_defaults(run=_run("audit search", _search))

    export = actions.add_parser("export", help="export entries to a file that carries the server's signature")
    export.add_argument("file", type=Path, metavar="FILE", help="the new file (.jsonl, .csv, .html or .sqlite)")
    export.add_argument("--format", choices=FORMATS, help="the format (default: from the file's suffix)")
    export.add_argument("--text", metavar="TEXT", help="only entries matching this full-text query")
    _selection_options(export)
    export.set_defaults(run=_run("audit export", _export))

    verify = actions.add_parser("verify", help="check an export file, or a data dir's whole archive (on the server host)")
    verify.add_argument("path", type=Path, metavar="PATH", help="an export file, or a data dir")
    verify.add_argument("--public-key", type=Path, metavar="PEM", help="the archive's public key as you keep it")
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.set_defaults(run=_verify)

    hold = actions.add_parser("hold", help="legal holds: keep a person's or a conversation's archive from retention")
    holds = hold.add_subparsers(dest="hold_action", metavar="ACTION", required=True)
    place = holds.add_parser("place", help="place a hold on a user or a conversation")
    target = place.add_mutually_exclusive_group(required=True)
    target.add_argument("--user", metavar="USER", help="everything about this person, and their conversations")
    target.add_argument("--conversation", type=int, metavar="ID", help="this conversation")
    place.add_argument("--reason", required=True, metavar="TEXT", help="why (a case number)")
    place.set_defaults(run=_run("audit hold place", _hold_place))
    release = holds.add_parser("release", help="release a hold")
    release.add_argument("hold", type=int, metavar="ID", help="the hold's id")
    release.set_defaults(run=_run("audit hold release", _hold_release))
    listing = holds.add_parser("list", help="the holds in force")
    listing.set_defaults(run=_run("audit hold list", _hold_list))
    for parser in (search, export, place, release, listing):
        _common(parser)
        _connection(parser)
