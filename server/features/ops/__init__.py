"""Operations: the server's health for IT admins (`server_status`, behind `corridor status
DIR`), and a Prometheus metrics endpoint when `metrics.listen` is set."""

from corridor.protocol.ops import ServerStatus

from ...services import Services
from ...sessions import ADMINS
from ..base import Feature, Route
from .metrics import serve_metrics
from .status import Health

MIGRATIONS = ()

__all__ = ["MIGRATIONS", "feature"]


def feature(services: Services) -> Feature:
    """Wire the status request, and the metrics endpoint if configured."""
    health = Health(services)
    listen = services.config.metrics.listen
    return Feature(
        name="ops",
        actions={"server.status": ADMINS},
        routes=(Route(ServerStatus, health.server_status, "server.status"),),
        tasks=((lambda: serve_metrics(listen, health)),) if listen else (),
    )
