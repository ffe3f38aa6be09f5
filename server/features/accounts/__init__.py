"""Accounts: invite-only enrollment, password and device-token login, account creation."""

from corridor.protocol.messages import (
    DeviceList,
    DeviceRevoke,
    Enroll,
    InviteReissue,
    Login,
    UserAdd,
    UserDeactivate,
    UserReactivate,
)

from ...services import Services
from ...sessions import ADMINS, ANONYMOUS
from ..base import Feature, Route
from .handlers import AccountHandlers
from .migrations import MIGRATIONS

__all__ = ["MIGRATIONS", "feature"]


def feature(services: Services) -> Feature:
    """Wire the accounts handlers to their requests and actions."""
    handlers = AccountHandlers(services)
    return Feature(
        name="accounts",
        actions={
            "auth.login": frozenset({ANONYMOUS}),
            "auth.enroll": frozenset({ANONYMOUS}),
            "admin.user_add": ADMINS,
            "admin.user_lifecycle": ADMINS,
            "device.manage": ADMINS,
        },
        self_service={"device.manage": "user"},
        routes=(
            Route(Login, handlers.login, "auth.login"),
            Route(Enroll, handlers.enroll, "auth.enroll"),
            Route(UserAdd, handlers.user_add, "admin.user_add"),
            Route(UserDeactivate, handlers.user_deactivate, "admin.user_lifecycle"),
            Route(UserReactivate, handlers.user_reactivate, "admin.user_lifecycle"),
            Route(InviteReissue, handlers.invite_reissue, "admin.user_lifecycle"),
            Route(DeviceList, handlers.device_list, "device.manage"),
            Route(DeviceRevoke, handlers.device_revoke, "device.manage"),
        ),
    )
