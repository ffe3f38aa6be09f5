"""Reading the archive: for now the admin log (auditor search and export come with issue 6)."""

from __future__ import annotations

import json

from corridor.protocol.messages import AdminLog, AdminLogEntry, AdminLogResult

from ...services import Services
from ...sessions import Session
from . import store


class ArchiveHandlers:
    """Request handlers of the archive feature."""

    def __init__(self, services: Services):
        self.services = services

    async def admin_log(self, session: Session, msg: AdminLog) -> AdminLogResult:
        """Administrative actions, oldest first, paged by archive seq."""
        found, more = await self.services.db.read(
            lambda conn: store.entries_of_kind(conn, "admin", msg.after, msg.limit, msg.actor)
        )
        return AdminLogResult(
            entries=tuple(
                AdminLogEntry(
                    seq=e.seq,
                    ts=e.ts,
                    actor=e.actor,
                    action=e.payload.get("action", ""),
                    details=json.dumps({k: v for k, v in e.payload.items() if k != "action"}, ensure_ascii=False),
                )
                for e in found
            ),
            more=more,
        )
