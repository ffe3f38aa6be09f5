"""Presence: online/away/busy/offline, pushed to the people who look at you."""

from corridor.protocol.messages import QueryPresence, SetPresence

from ...services import Services
from ...sessions import MEMBERS
from ..base import Feature, Route
from .handlers import PresenceHandlers
from .hub import PresenceHub


def feature(services: Services) -> Feature:
    """Create the presence hub and wire its handlers."""
    handlers = PresenceHandlers(services, PresenceHub(services.bus, services.sessions, services.users))
    return Feature(
        name="presence",
        actions={"presence.set": MEMBERS, "presence.query": MEMBERS},
        routes=(
            Route(SetPresence, handlers.set_presence, "presence.set"),
            Route(QueryPresence, handlers.query_presence, "presence.query"),
        ),
    )
