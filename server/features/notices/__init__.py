"""Broadcast notices to departments or everyone, with live read counts for their sender."""

from corridor.protocol.messages import NoticeInbox, NoticeRead, NoticeSend, NoticeStatus

from ...services import Services
from ...sessions import ADMINS, CHATTERS, MEMBERS
from ..base import Feature, Route
from .handlers import NoticeHandlers
from .migrations import MIGRATIONS

__all__ = ["MIGRATIONS", "feature"]


def feature(services: Services) -> Feature:
    """Wire the notice handlers to their requests and actions."""
    handlers = NoticeHandlers(services)
    return Feature(
        name="notices",
        actions={"notice.send": CHATTERS, "notice.read": MEMBERS, "notice.status": CHATTERS | ADMINS},
        routes=(
            Route(NoticeSend, handlers.notice_send, "notice.send"),
            Route(NoticeInbox, handlers.notice_inbox, "notice.read"),
            Route(NoticeRead, handlers.notice_read, "notice.read"),
            Route(NoticeStatus, handlers.notice_status, "notice.status"),
        ),
    )
