"""The compliance archive: every message and admin action, hash-chained, append-only.

Other features append to it inside their transactions (`store.append_txn`); here it answers
the admin log, auditors' searches and exports and the audit log of them, and signs checkpoints
of the chain (`checkpoints.py`)."""

from corridor.protocol.audit import AuditExport, AuditLog, AuditSearch
from corridor.protocol.messages import AdminLog

from ...services import Services
from ...sessions import ADMINS
from ..base import Feature, Route
from .audit_handlers import AuditHandlers
from .checkpoints import Checkpointer, load_signing_key
from .handlers import ArchiveHandlers
from .indexer import run_indexer
from .migrations import MIGRATIONS

__all__ = ["MIGRATIONS", "feature"]


def feature(services: Services) -> Feature:
    """Wire the archive's handlers to their requests and actions."""
    handlers = ArchiveHandlers(services)
    key = load_signing_key(services.config.data_dir)
    audit = AuditHandlers(services, key)
    # The clock is read through `services` at each use: tests move it on a running server.
    signer = Checkpointer(services.db, key, lambda: services.clock())
    return Feature(
        name="archive",
        actions={"admin_log.read": ADMINS | {"auditor"}, "archive.read": frozenset({"auditor"}), "audit_log.read": ADMINS},
        # An auditor may read the log of their own queries (`audit_log` with `actor` = themselves).
        self_service={"audit_log.read": "actor"},
        routes=(
            Route(AdminLog, handlers.admin_log, "admin_log.read"),
            Route(AuditSearch, audit.audit_search, "archive.read"),
            Route(AuditExport, audit.audit_export, "archive.read"),
            Route(AuditLog, audit.audit_log, "audit_log.read"),
        ),
        tasks=(signer.run, lambda: run_indexer(services.db)),
        stops=(signer.final,),
    )
