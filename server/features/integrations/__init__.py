"""Integrations: the company's own systems calling the HTTP API with a token, each acting as
its bot account within its scopes. IT admins manage them here; `gate.py` admits their calls."""

from corridor.protocol.integrations import IntegrationAdd, IntegrationList, IntegrationRevoke, IntegrationRotate

from ...services import Services
from ...sessions import ADMINS
from ..base import Feature, Route
from ..periodic import every
from .gate import IntegrationGate
from .handlers import IntegrationHandlers
from .migrations import MIGRATIONS

__all__ = ["MIGRATIONS", "IntegrationGate", "feature"]

LAST_USED_EVERY = 60.0


def feature(services: Services, gate: IntegrationGate) -> Feature:
    """Wire the admin requests; the gate's last-used times are stored once a minute."""
    handlers = IntegrationHandlers(services, gate.forget)
    return Feature(
        name="integrations",
        actions={"admin.integrations": ADMINS},
        routes=(
            Route(IntegrationAdd, handlers.integration_add, "admin.integrations"),
            Route(IntegrationList, handlers.integration_list, "admin.integrations"),
            Route(IntegrationRotate, handlers.integration_rotate, "admin.integrations"),
            Route(IntegrationRevoke, handlers.integration_revoke, "admin.integrations"),
        ),
        tasks=(lambda: every(LAST_USED_EVERY, gate.record_use, "recording when integrations were last used"),),
    )
