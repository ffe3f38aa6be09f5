"""The auditors' pages: archive search (Chinese full text included), a hit's conversation with
the messages around it, JSON Lines exports that `corridor audit verify` checks, the chain's
`verify` status, and the log of auditors' queries (an auditor sees only their own).

Searches and exports are the protocol's `audit_search` and `audit_export`, so each is archived
before its answer comes back, exactly as from the CLI. Dates in the forms are the server's
local calendar days.
"""

from __future__ import annotations

import datetime as dt
import time

from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from corridor.protocol.audit import AuditExport, AuditLog, AuditSearch
from corridor.protocol.errors import make_error
from corridor.protocol.export_json import entry_json, jsonl_line, manifest_json

from ...features.archive.checkpoints import PUBLIC_KEY, load_public_key
from ...features.archive.verify import chain_status
from .admin_pages import optional_number
from .web import Console, Visit

AUDITOR = ("auditor",)
PAGE = 20
CONTEXT = 10  # messages shown before and after a hit (the protocol's most)
EXPORT_PAGE = 1000


def _day(text: str, end: bool = False) -> float | None:
    """A form's date (YYYY-MM-DD) as the start, or with `end` the end, of that local day."""
    if not text:
        return None
    try:
        day = dt.datetime.combine(dt.date.fromisoformat(text), dt.time())
    except ValueError:
        raise make_error("BAD_MESSAGE", f"a date is written YYYY-MM-DD, not {text!r}") from None
    return (day + dt.timedelta(days=1)).timestamp() - 0.001 if end else day.timestamp()


def selection(visit: Visit) -> dict:
    """The search form's filter as `AuditFilter` fields."""
    return {
        "text": visit.field("q"),
        "participant": visit.field("participant"),
        "since": _day(visit.field("since")),
        "until": _day(visit.field("until"), end=True),
    }


class AuditPages:
    """Endpoints for auditors (and the audit log for IT admins too)."""

    def __init__(self, console: Console):
        self.console = console

    async def search(self, visit: Visit) -> Response:
        """GET /console/audit: the search form and, once asked, a page of hits, newest first."""
        asked = any(visit.field(name) for name in ("q", "participant", "since", "until"))
        found = None
        if asked:
            before = optional_number(visit.field("before"), "before") or 0
            found = await self.console.call(visit, AuditSearch.from_fields({**selection(visit), "before": before, "limit": PAGE}))
        query = {name: visit.field(name) for name in ("q", "participant", "since", "until")}
        return self.console.show(visit, "search.html", found=found, query=query)

    async def conversation(self, visit: Visit) -> Response:
        """GET /console/audit/conversation?c=…&seq=…: one entry with the messages around it."""
        conversation = optional_number(visit.field("c"), "conversation")
        seq = optional_number(visit.field("seq"), "seq")
        if conversation is None or seq is None:
            raise make_error("BAD_MESSAGE", "name a conversation and an entry: ?c=…&seq=…")
        asked = AuditSearch(conversation=conversation, before=seq + 1, limit=1, context=CONTEXT)
        hits = (await self.console.call(visit, asked)).hits
        if not hits or hits[0].entry.seq != seq:
            raise make_error("NO_SUCH_MESSAGE", f"entry {seq} is not in conversation {conversation}, or not in your scope")
        return self.console.show(visit, "conversation.html", hit=hits[0], conversation=conversation, context=CONTEXT)

    async def export(self, visit: Visit) -> Response:
        """POST /console/audit/export: the selection as a signed JSON Lines download.

        The first page is asked for before the answer starts, so a refusal is a page; later
        pages stream. Should one fail midway, the file is cut short, and `corridor audit verify`
        says so (the manifest signed more entries than the file holds)."""
        chosen = selection(visit)
        first = await self.console.call(visit, AuditExport.from_fields({**chosen, "limit": EXPORT_PAGE}))

        async def lines():
            yield jsonl_line(manifest_json(first.manifest))
            page = first
            while True:
                for item in page.items:
                    yield jsonl_line(entry_json(item))
                if not page.more:
                    return
                fields = {**chosen, "through": first.through, "after": page.items[-1].row.seq, "limit": EXPORT_PAGE}
                page = await self.console.call(visit, AuditExport.from_fields(fields))

        name = time.strftime("corridor-export-%Y%m%d-%H%M%S.jsonl")
        return StreamingResponse(
            lines(),
            media_type="application/x-ndjson; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    async def verify(self, visit: Visit) -> Response:
        """GET /console/audit/verify: the latest signed checkpoint; POST: walk the live chain now."""
        public = load_public_key(self.console.services.config.data_dir / PUBLIC_KEY)
        walk = visit.request.method == "POST"
        chain = await self.console.services.db.read(lambda conn: chain_status(conn, public, walk))
        return self.console.show(visit, "verify.html", chain=chain)

    async def audit_log(self, visit: Visit) -> Response:
        """GET /console/audit-log: auditors' searches and exports; an auditor's own only."""
        after = optional_number(visit.field("after"), "after") or 0
        actor = visit.user.username if visit.user.role == "auditor" else visit.field("actor")
        found = await self.console.call(visit, AuditLog.from_fields({"after": after, "actor": actor}))
        return self.console.show(visit, "audit_log.html", entries=found.entries, more=found.more, actor=actor)

    def routes(self) -> list[Route]:
        """The auditors' pages' routes."""
        page = self.console.page
        return [
            Route("/audit", page(AUDITOR, self.search), methods=["GET"]),
            Route("/audit/conversation", page(AUDITOR, self.conversation), methods=["GET"]),
            Route("/audit/export", page(AUDITOR, self.export), methods=["POST"]),
            Route("/audit/verify", page(AUDITOR, self.verify), methods=["GET", "POST"]),
            Route("/audit-log", page(("admin", "auditor"), self.audit_log), methods=["GET"]),
        ]
