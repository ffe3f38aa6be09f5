"""Messaging: durable, idempotent, gap-free 1:1 conversations."""

from corridor.protocol.messages import History, Send, Sync

from ...policy import Targets
from ...services import Services
from ...sessions import CHATTERS, MEMBERS
from ..base import Feature, Route
from .handlers import MessagingHandlers
from .migrations import MIGRATIONS

__all__ = ["MIGRATIONS", "feature"]


def feature(services: Services) -> Feature:
    """Wire the messaging handlers to their requests and actions."""
    handlers = MessagingHandlers(services)
    return Feature(
        name="messaging",
        actions={"message.send": CHATTERS, "message.read": MEMBERS},
        routes=(
            Route(Send, handlers.send, "message.send", lambda m: Targets(recipients=(m.to,))),
            Route(Sync, handlers.sync, "message.read"),
            Route(History, handlers.history, "message.read"),
        ),
    )
