"""Setting one's own status and quiet hours, and asking for others' statuses."""

from __future__ import annotations

import functools

from corridor.protocol.messages import (
    Empty,
    PresenceInfo,
    PresenceResult,
    QueryPresence,
    QuietHoursGet,
    QuietHoursResult,
    QuietHoursSet,
    SetPresence,
)

from ...services import Services
from ...sessions import Session
from . import store
from .hub import PresenceHub
from .quiet_hours import Schedule, local_zone


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

    async def quiet_hours_set(self, session: Session, msg: QuietHoursSet) -> QuietHoursResult:
        """Store my quiet hours (or clear them) and apply them to my sessions at once."""
        user_id = session.actor.user_id
        schedule = Schedule.from_request(msg, local_zone())
        await self.services.db.write(
            functools.partial(store.set_quiet_hours_txn, user_id=user_id, schedule=schedule),
            after_commit=lambda _: self.hub.set_quiet_hours(user_id, schedule),
        )
        return self._result(schedule)

    async def quiet_hours_get(self, session: Session, msg: QuietHoursGet) -> QuietHoursResult:
        """My stored quiet hours and whether it is inside them now."""
        user_id = session.actor.user_id
        found = await self.services.db.read(functools.partial(store.quiet_hours_of, user_ids=[user_id]))
        return self._result(found.get(user_id))

    def _result(self, schedule: Schedule | None) -> QuietHoursResult:
        if schedule is None:
            return QuietHoursResult()
        window = schedule.window(self.services.clock())
        return QuietHoursResult(quiet_hours=schedule.to_wire(), active=window.active, until=window.until)
