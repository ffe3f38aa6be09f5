"""The org directory: nested departments, profiles, incremental sync and search (pinyin too)."""

from corridor.protocol.messages import DepartmentAdd, DirectorySearch, DirectorySync, ProfileSet

from ...services import Services
from ...sessions import ADMINS, LOCAL_ADMIN, MEMBERS
from ..base import Feature, Route
from .handlers import DirectoryHandlers
from .migrations import MIGRATIONS

__all__ = ["MIGRATIONS", "feature"]


def feature(services: Services) -> Feature:
    """Wire the directory handlers to their requests and actions."""
    handlers = DirectoryHandlers(services)
    return Feature(
        name="directory",
        actions={"directory.read": MEMBERS | {LOCAL_ADMIN}, "directory.manage": ADMINS},
        routes=(
            Route(DepartmentAdd, handlers.department_add, "directory.manage"),
            Route(ProfileSet, handlers.profile_set, "directory.manage"),
            Route(DirectorySync, handlers.directory_sync, "directory.read"),
            Route(DirectorySearch, handlers.directory_search, "directory.read"),
        ),
    )
