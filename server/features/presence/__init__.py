"""Presence: online/away/busy/break/offline, pushed to the people who look at you, and quiet
hours that put you on a break on a schedule."""

from corridor.protocol.messages import QueryPresence, QuietHoursGet, QuietHoursSet, SetPresence

from ...services import Services
from ...sessions import MEMBERS
from ..base import Feature, Route
from .handlers import PresenceHandlers
from .hub import PresenceHub
from .migrations import MIGRATIONS

__all__ = ["MIGRATIONS", "feature"]


def feature(services: Services) -> Feature:
    """Create the presence hub and wire its handlers and its background task."""
    hub = PresenceHub(services)
    handlers = PresenceHandlers(services, hub)
    return Feature(
        name="presence",
        actions={"presence.set": MEMBERS, "presence.query": MEMBERS, "presence.quiet_hours": MEMBERS},
        routes=(
            Route(SetPresence, handlers.set_presence, "presence.set"),
            Route(QueryPresence, handlers.query_presence, "presence.query"),
            Route(QuietHoursSet, handlers.quiet_hours_set, "presence.quiet_hours"),
            Route(QuietHoursGet, handlers.quiet_hours_get, "presence.quiet_hours"),
        ),
        tasks=(hub.run,),
    )
