"""Accounts: invite-only enrollment, password and device-token login, account creation."""

from corridor.protocol.messages import Enroll, Login, UserAdd

from ...services import Services
from ...sessions import ANONYMOUS, LOCAL_ADMIN
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
            "admin.user_add": frozenset({"admin", LOCAL_ADMIN}),
        },
        routes=(
            Route(Login, handlers.login, "auth.login"),
            Route(Enroll, handlers.enroll, "auth.enroll"),
            Route(UserAdd, handlers.user_add, "admin.user_add"),
        ),
    )
