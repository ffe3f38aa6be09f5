"""The compliance archive: every message and admin action, hash-chained, append-only.

Other features append to it inside their transactions (`store.append_txn`); here it answers
the admin log. Auditor search and export come with the archive issue."""

from corridor.protocol.messages import AdminLog

from ...services import Services
from ...sessions import ADMINS
from ..base import Feature, Route
from .handlers import ArchiveHandlers
from .migrations import MIGRATIONS

__all__ = ["MIGRATIONS", "feature"]


def feature(services: Services) -> Feature:
    """Wire the archive's handlers to their requests and actions."""
    handlers = ArchiveHandlers(services)
    return Feature(
        name="archive",
        actions={"admin_log.read": ADMINS | {"auditor"}},
        routes=(Route(AdminLog, handlers.admin_log, "admin_log.read"),),
    )
