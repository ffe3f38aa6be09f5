"""Policies: roles with department-admin scopes, and the rules IT admins set (see server/policy.py)."""

from corridor.protocol.messages import PolicyCheck, PolicyList, PolicyRemove, PolicySet, RoleSet

from ...services import Services
from ...sessions import ADMINS
from ..base import Feature, Route
from .handlers import PolicyHandlers
from .migrations import MIGRATIONS

__all__ = ["MIGRATIONS", "feature"]


def feature(services: Services) -> Feature:
    """Wire the policy handlers to their requests and actions; the rules in force follow the
    changes other serve processes make."""
    services.policy.follow(services.sessions.cluster)
    handlers = PolicyHandlers(services)
    return Feature(
        name="policies",
        actions={"policy.manage": ADMINS, "policy.read": ADMINS | {"auditor"}},
        routes=(
            Route(RoleSet, handlers.role_set, "policy.manage"),
            Route(PolicySet, handlers.policy_set, "policy.manage"),
            Route(PolicyRemove, handlers.policy_remove, "policy.manage"),
            Route(PolicyList, handlers.policy_list, "policy.read"),
            Route(PolicyCheck, handlers.policy_check, "policy.read"),
        ),
    )
