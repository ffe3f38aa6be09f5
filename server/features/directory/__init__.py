"""The org directory: nested departments, profiles, incremental sync and search (pinyin too)."""

from corridor.protocol.messages import DepartmentAdd, DirectoryImport, DirectorySearch, DirectorySync, LdapSync, ProfileSet

from ...policy import Targets
from ...services import Services
from ...sessions import ADMINS, DEPT_ADMIN, LOCAL_ADMIN, MEMBERS
from ..base import Feature, Route
from .handlers import DirectoryHandlers
from .migrations import MIGRATIONS

__all__ = ["MIGRATIONS", "feature"]


def feature(services: Services) -> Feature:
    """Wire the directory handlers to their requests and actions."""
    handlers = DirectoryHandlers(services)
    return Feature(
        name="directory",
        actions={
            "directory.read": MEMBERS | {LOCAL_ADMIN},
            "directory.manage": ADMINS | {DEPT_ADMIN},
            "directory.import": ADMINS,
        },
        routes=(
            Route(DepartmentAdd, handlers.department_add, "directory.manage", lambda m: Targets(departments=(m.parent,))),
            Route(
                ProfileSet,
                handlers.profile_set,
                "directory.manage",
                lambda m: Targets(
                    users=(m.user,),
                    departments=m.departments or (),
                    replaces_memberships_of=m.user if m.departments is not None else None,
                ),
            ),
            Route(DirectoryImport, handlers.directory_import, "directory.import"),
            Route(LdapSync, handlers.ldap_sync, "directory.import"),
            Route(DirectorySync, handlers.directory_sync, "directory.read"),
            Route(DirectorySearch, handlers.directory_search, "directory.read"),
        ),
    )
