"""Accounts: invite-only enrollment, password and device-token login, account creation."""

from corridor.protocol.messages import (
    DeviceList,
    DeviceRevoke,
    Enroll,
    InviteList,
    InviteReissue,
    InviteRevoke,
    Login,
    UserAdd,
    UserDeactivate,
    UserReactivate,
)

from ...policy import Targets
from ...services import Services
from ...sessions import ADMINS, ANONYMOUS, DEPT_ADMIN
from ..base import Feature, Route
from .handlers import AccountHandlers
from .migrations import MIGRATIONS

__all__ = ["MIGRATIONS", "feature"]


def _new_user(msg: UserAdd) -> Targets:
    return Targets(departments=msg.departments or (None,), role=msg.role)


def _named(msg) -> Targets:
    return Targets(users=(msg.user,))


def _departing(msg: UserDeactivate) -> Targets:
    return Targets(users=(msg.user, msg.handover) if msg.handover else (msg.user,))


def feature(services: Services) -> Feature:
    """Wire the accounts handlers to their requests and actions; the user cache follows the
    changes other serve processes make."""
    services.users.follow(services.sessions.cluster, services.db)
    handlers = AccountHandlers(services)
    return Feature(
        name="accounts",
        actions={
            "auth.login": frozenset({ANONYMOUS}),
            "auth.enroll": frozenset({ANONYMOUS}),
            "admin.user_add": ADMINS | {DEPT_ADMIN},
            "admin.user_lifecycle": ADMINS | {DEPT_ADMIN},
            "admin.invite_list": ADMINS,
            "device.manage": ADMINS | {DEPT_ADMIN},
        },
        self_service={"device.manage": "user"},
        routes=(
            Route(Login, handlers.login, "auth.login"),
            Route(Enroll, handlers.enroll, "auth.enroll"),
            Route(UserAdd, handlers.user_add, "admin.user_add", _new_user),
            Route(UserDeactivate, handlers.user_deactivate, "admin.user_lifecycle", _departing),
            Route(UserReactivate, handlers.user_reactivate, "admin.user_lifecycle", _named),
            Route(InviteReissue, handlers.invite_reissue, "admin.user_lifecycle", _named),
            Route(InviteRevoke, handlers.invite_revoke, "admin.user_lifecycle", _named),
            Route(InviteList, handlers.invite_list, "admin.invite_list"),
            Route(DeviceList, handlers.device_list, "device.manage", _named),
            Route(DeviceRevoke, handlers.device_revoke, "device.manage", _named),
        ),
    )
