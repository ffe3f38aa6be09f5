"""The compliance archive: every message and admin action, hash-chained, append-only.

Other features append to it inside their transactions (`store.append_txn`); here it answers
the admin log, and signs checkpoints of the chain (`checkpoints.py`). Auditor search and export
come with the archive issue."""

from corridor.protocol.messages import AdminLog

from ...services import Services
from ...sessions import ADMINS
from ..base import Feature, Route
from .checkpoints import Checkpointer, load_signing_key
from .handlers import ArchiveHandlers
from .migrations import MIGRATIONS

__all__ = ["MIGRATIONS", "feature"]


def feature(services: Services) -> Feature:
    """Wire the archive's handlers to their requests and actions."""
    handlers = ArchiveHandlers(services)
    # The clock is read through `services` at each use: tests move it on a running server.
    signer = Checkpointer(services.db, load_signing_key(services.config.data_dir), lambda: services.clock())
    return Feature(
        name="archive",
        actions={"admin_log.read": ADMINS | {"auditor"}},
        routes=(Route(AdminLog, handlers.admin_log, "admin_log.read"),),
        tasks=(signer.run,),
        stops=(signer.final,),
    )
