"""`corridor admin retention|purge|audit-log`: how long the archive keeps content, erasing what
expired now, and the audit log of what auditors searched and exported (IT admins)."""

from __future__ import annotations

import argparse
import datetime as dt
import json

from corridor.protocol.audit import ArchivePurge, AuditLog, RetentionList, RetentionRemove, RetentionSet
from corridor.protocol.schema import Record

from .admin_link import Description, admin_command


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _where(department: int | None) -> str:
    return "everyone else (global)" if department is None else f"department {department}"


def _retention_set(request: RetentionSet, result: Record) -> Description:
    return {"ok": True, **request.to_fields()}, f"Keep {_where(request.department)}: {request.days} days"


def _retention_removed(request: RetentionRemove, result: Record) -> Description:
    return {"ok": True, **request.to_fields()}, f"Removed the retention rule for {_where(request.department)}"


def _retention_listed(request: RetentionList, result: Record) -> Description:
    lines = [f"{_where(r.department):<24} {r.days} days" for r in result.rules]
    return {"ok": True, "rules": [r.to_fields() for r in result.rules]}, "\n".join(lines) or "no retention rules: kept forever"


def _purged(request: ArchivePurge, result: Record) -> Description:
    verb = "would erase" if request.dry_run else "erased"
    files = "" if request.dry_run else f", deleted {result.files} file(s)"
    return (
        {"ok": True, "dry_run": request.dry_run, **result.to_fields()},
        f"{verb} {result.purged} archived entries{files}; {result.held} expired entries kept by legal holds",
    )


def _audit_log_listed(request: AuditLog, result: Record) -> Description:
    entries = [{**e.to_fields(), "query": json.loads(e.query)} for e in result.entries]
    lines = []
    for e in result.entries:
        total = f" of {e.total}" if e.total is not None else ""
        lines.append(f"#{e.seq:<7} {_when(e.ts)}  {e.actor:<14} {e.request:<13} {e.results}{total} entries  {e.query}")
    if result.more:
        lines.append(f"… more: --after {result.entries[-1].seq}")
    return {"ok": True, "entries": entries, "more": result.more}, "\n".join(lines) or "no audit searches or exports yet"


def register(topics: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    """Add the retention, purge and audit-log topics to `corridor admin`."""
    retention = topics.add_parser("retention", help="how long the archive keeps messages, notices and files")
    actions = retention.add_subparsers(dest="action", metavar="ACTION", required=True)
    setting = actions.add_parser("set", help="keep a department's content (or everyone's) this many days")
    setting.add_argument("days", type=int, metavar="DAYS", help="days to keep (1-36500)")
    setting.add_argument("--department", type=int, metavar="ID", help="the department, with those below it (default: global)")
    setting.set_defaults(run=admin_command(lambda a: RetentionSet(department=a.department, days=a.days), _retention_set))
    removing = actions.add_parser("remove", help="remove a department's (or the global) rule")
    removing.add_argument("--department", type=int, metavar="ID", help="its department (default: the global rule)")
    removing.set_defaults(run=admin_command(lambda a: RetentionRemove(department=a.department), _retention_removed))
    listing = actions.add_parser("list", help="the rules in force")
    listing.set_defaults(run=admin_command(lambda a: RetentionList(), _retention_listed))

    purge = topics.add_parser("purge", help="erase expired archive content now (it also runs hourly)")
    purge.add_argument("--dry-run", action="store_true", help="only count what would be erased")
    purge.set_defaults(run=admin_command(lambda a: ArchivePurge(dry_run=a.dry_run), _purged))

    log = topics.add_parser("audit-log", help="what auditors searched and exported, and how much they got")
    log.add_argument("--after", type=int, default=0, metavar="SEQ", help="only entries after this one (for paging)")
    log.add_argument("--limit", type=int, default=200, metavar="N", help="at most this many (1-1000, default 200)")
    log.add_argument("--actor", default="", metavar="NAME", help="only this auditor's")
    log.set_defaults(run=admin_command(lambda a: AuditLog(after=a.after, limit=a.limit, actor=a.actor), _audit_log_listed))
    return [setting, removing, listing, purge, log]
