"""Setting one's own status and asking for others'."""

from __future__ import annotations

from corridor.protocol.messages import Empty, PresenceInfo, PresenceResult, QueryPresence, SetPresence

from ...services import Services
from ...sessions import Session
from .hub import PresenceHub


class PresenceHandlers:
    """Request handlers of the presence feature."""

    def __init__(self, services: Services, hub: PresenceHub):
        self.services = services
        self.hub = hub

    async def set_presence(self, session: Session, msg: SetPresence) -> Empty:
        """Choose online/away/busy/break (or appear offline), with a text, for all my sessions."""
        allowed = frozenset(name.lower() for name in msg.urgent_from)
        self.hub.set_status(session.actor.user_id, msg.status, msg.text, allowed)
        return Empty()

    async def query_presence(self, session: Session, msg: QueryPresence) -> PresenceResult:
        """Current statuses of the named users; this session then hears their changes.
        Unknown names are left out rather than refused, so a stale contact list still works."""
        found = [user for name in msg.users if (user := self.services.users.by_name(name.lower())) and user.active]
        self.hub.watch(session, [user.id for user in found])
        return PresenceResult(
            statuses=tuple(
                PresenceInfo(user=user.username, status=self.hub.status(user.id), text=self.hub.text(user.id)) for user in found
            )
        )
