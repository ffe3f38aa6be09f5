"""Auditor search and export, and the audit log of both.

Every search and export page is itself archived (kind `audit`: who, when, the exact request,
how many entries it returned) after it ran and before its answer leaves, so no answer goes out
unrecorded; the archive is append-only and hash-chained, so auditors cannot take a look back.
An auditor's `archive_read` scope (policy.py) narrows every selection.
"""

from __future__ import annotations

import dataclasses
import json

import msgpack
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from corridor.protocol.archive_format import manifest_bytes, selection_digest
from corridor.protocol.audit import (
    ArchiveRow,
    AuditEntry,
    AuditExport,
    AuditExportResult,
    AuditFilter,
    AuditHit,
    AuditLog,
    AuditLogEntry,
    AuditLogResult,
    AuditSearch,
    AuditSearchResult,
    ExportItem,
    ExportManifest,
)
from corridor.protocol.errors import make_error
from corridor.protocol.framing import DEFAULT_MAX_FRAME_BYTES

from ...services import Services
from ...sessions import Session
from . import store
from .indexer import catch_up
from .search import Selection, select
from .text import match_expression, snippet

# A search shows this much of each text; an export carries it whole.
SEARCH_TEXT_CHARS = 2000
ENTRY_OVERHEAD = 512


def _shortened(entry: AuditEntry) -> AuditEntry:
    """The entry as a search shows it: at most SEARCH_TEXT_CHARS of its text."""
    if len(entry.text) <= SEARCH_TEXT_CHARS:
        return entry
    return dataclasses.replace(entry, text=entry.text[:SEARCH_TEXT_CHARS] + "…")


class AuditHandlers:
    """Request handlers for auditors' reads and IT admins' view of them."""

    def __init__(self, services: Services, key: ed25519.Ed25519PrivateKey):
        self.services, self.key = services, key
        self.public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.page_bytes = min(services.config.limits.max_frame_bytes, DEFAULT_MAX_FRAME_BYTES) * 3 // 4

    def _resolve(self, conn, session: Session, f: AuditFilter) -> Selection:
        """The filter as a selection within the auditor's scope; refuses a department outside it."""
        auditor = self.services.users.by_id(session.actor.user_id)
        departments = self.services.policy.archive_scope(conn, auditor, f.department)
        participant = None
        if f.participant:
            person = self.services.users.by_name(f.participant.lower())
            if person is None:
                raise make_error("NO_SUCH_USER", f"nobody is called {f.participant!r}")
            participant = person.id
        if f.since is not None and f.until is not None and f.since > f.until:
            raise make_error("BAD_MESSAGE", "the time range ends before it starts")
        return Selection(
            match=match_expression(f.text) if f.text.strip() else None,
            participant=participant,
            departments=departments,
            conversation=f.conversation,
            since=f.since,
            until=f.until,
        )

    def _entry(self, row: tuple) -> AuditEntry:
        seq, ts, actor, kind, conversation, payload = row[:6]
        if payload is None:
            return AuditEntry(seq=seq, ts=ts, actor=actor, kind=kind, conversation=conversation, purged=True)
        fields = msgpack.unpackb(payload, raw=False)
        text = fields.get("text", "")
        common = {"seq": seq, "ts": ts, "actor": actor, "kind": kind, "conversation": conversation, "text": text}
        if kind == "notice":
            return AuditEntry(**common, subkind="notice", title=fields.get("title", ""))
        if kind == "file":
            return AuditEntry(**common, subkind="file", file_sha256=fields["sha256"], file_size=fields["size"])
        recipient = fields.get("recipient")
        file = fields.get("file") or {}
        return AuditEntry(
            **common,
            recipient=self._name(recipient) if recipient is not None else "",
            subkind=fields.get("kind", "text"),
            ref=fields.get("ref", 0),
            file_sha256=file.get("sha256", ""),
            file_size=file.get("size", 0),
        )

    def _name(self, user_id: int) -> str:
        user = self.services.users.by_id(user_id)
        return user.username if user else f"#{user_id}"

    async def _record(self, session: Session, msg, results: int, total: int | None = None) -> None:
        payload = {"request": msg.TYPE, "query": msg.to_fields(), "results": results}
        if total is not None:
            payload["total"] = total
        now = self.services.clock()
        await self.services.db.write(
            lambda conn: store.append_txn(
                conn, ts=now, actor=session.actor.username, kind="audit", conversation=None, payload=payload
            )
        )

    async def audit_search(self, session: Session, msg: AuditSearch) -> AuditSearchResult:
        """Entries matching the filter, newest first, with their context."""
        await catch_up(self.services.db)

        def read(conn):
            sel = self._resolve(conn, session, msg)
            hi = msg.before - 1 if msg.before else 2**62
            rows = select(conn, sel, hi=hi, newest_first=True, limit=msg.limit + 1).fetchall()
            around = {}
            for row in rows[: msg.limit] if msg.context else ():
                if row[4] is not None:
                    nearby = Selection(conversation=row[4], departments=sel.departments)
                    earlier = select(conn, nearby, hi=row[0] - 1, newest_first=True, limit=msg.context).fetchall()
                    later = select(conn, nearby, lo=row[0], newest_first=False, limit=msg.context).fetchall()
                    around[row[0]] = (earlier[::-1], later)
            return rows, around

        rows, around = await self.services.db.read(read)
        hits, used = [], 0
        for row in rows[: msg.limit]:
            whole = self._entry(row)
            entry = _shortened(whole)
            earlier, later = around.get(row[0], ((), ()))
            hit = AuditHit(
                entry=entry,
                snippet=snippet(whole.text, msg.text) if msg.text.strip() else whole.text[:80],
                before=tuple(_shortened(self._entry(r)) for r in earlier),
                after=tuple(_shortened(self._entry(r)) for r in later),
            )
            used += sum(len(e.text.encode()) + ENTRY_OVERHEAD for e in (entry, *hit.before, *hit.after))
            if used > self.page_bytes and hits:
                break
            hits.append(hit)
        more = len(hits) < len(rows)
        await self._record(session, msg, len(hits))
        return AuditSearchResult(hits=tuple(hits), more=more)

    async def audit_export(self, session: Session, msg: AuditExport) -> AuditExportResult:
        """A page of whole entries, oldest first; the first page also signs the selection."""
        await catch_up(self.services.db)

        def read(conn):
            sel = self._resolve(conn, session, msg)
            through = min(msg.through, store.head_seq(conn)) if msg.through else store.head_seq(conn)
            rows = select(conn, sel, lo=msg.after, hi=through, newest_first=False, limit=msg.limit + 1).fetchall()
            selected = None
            if msg.after == 0:
                cursor = select(conn, sel, hi=through, newest_first=False, columns="a.seq, a.hash")
                selected = selection_digest(cursor)
            return through, rows, selected

        through, rows, selected = await self.services.db.read(read)
        items, used = [], 0
        for row in rows[: msg.limit]:
            used += 2 * len(row[5] or b"") + ENTRY_OVERHEAD
            if used > self.page_bytes and items:
                break
            items.append(ExportItem(row=ArchiveRow(*row), entry=self._entry(row)))
        manifest = None
        if selected is not None:
            count, digest = selected
            manifest = self._manifest(session, msg, through, count, digest)
        await self._record(session, msg, len(items), manifest.count if manifest else None)
        return AuditExportResult(items=tuple(items), more=len(items) < len(rows), through=through, manifest=manifest)

    def _manifest(self, session: Session, msg: AuditExport, through: int, count: int, digest: bytes) -> ExportManifest:
        query = json.dumps(
            AuditFilter(**{k: getattr(msg, k) for k in AuditFilter.__dataclass_fields__}).to_fields(), sort_keys=True
        )
        now, exporter = self.services.clock(), session.actor.username
        signature = self.key.sign(manifest_bytes(query, through, count, digest, now, exporter))
        return ExportManifest(
            query=query,
            through=through,
            count=count,
            digest=digest,
            ts=now,
            exporter=exporter,
            signature=signature,
            public_key=self.public,
        )

    async def audit_log(self, session: Session, msg: AuditLog) -> AuditLogResult:
        """What auditors searched and exported, oldest first: all of it for IT admins, an
        auditor's own entries for that auditor (the policy lets nobody else ask)."""
        found, more = await self.services.db.read(
            lambda conn: store.entries_of_kind(conn, "audit", msg.after, msg.limit, msg.actor)
        )
        return AuditLogResult(
            entries=tuple(
                AuditLogEntry(
                    seq=e.seq,
                    ts=e.ts,
                    actor=e.actor,
                    request=e.payload["request"],
                    query=json.dumps(e.payload["query"], ensure_ascii=False, sort_keys=True),
                    results=e.payload["results"],
                    total=e.payload.get("total"),
                )
                for e in found
            ),
            more=more,
        )
