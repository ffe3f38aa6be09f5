"""Retention and legal hold: how long the archive keeps content, holds that keep it anyway,
and the hourly purge that erases the rest while the chain stays verifiable (`purge.py`)."""

from corridor.protocol.audit import (
    ArchivePurge,
    HoldList,
    HoldPlace,
    HoldRelease,
    RetentionList,
    RetentionRemove,
    RetentionSet,
)

from ...services import Services
from ...sessions import ADMINS
from ..base import Feature, Route
from ..files.blobs import BlobStore
from .handlers import RetentionHandlers
from .migrations import MIGRATIONS
from .purge import Purger

__all__ = ["MIGRATIONS", "feature"]


def feature(services: Services) -> Feature:
    """Wire retention's handlers and its hourly purge."""
    purger = Purger(services, BlobStore(services.config.files_dir))
    handlers = RetentionHandlers(services, purger)
    # Auditors place and release legal holds (they are who litigation asks), but only IT admins
    # decide how long the organisation keeps things and run a purge.
    return Feature(
        name="retention",
        actions={
            "retention.manage": ADMINS,
            "retention.read": ADMINS | {"auditor"},
            "hold.manage": ADMINS | {"auditor"},
        },
        routes=(
            Route(RetentionSet, handlers.retention_set, "retention.manage"),
            Route(RetentionRemove, handlers.retention_remove, "retention.manage"),
            Route(RetentionList, handlers.retention_list, "retention.read"),
            Route(HoldPlace, handlers.hold_place, "hold.manage"),
            Route(HoldRelease, handlers.hold_release, "hold.manage"),
            Route(HoldList, handlers.hold_list, "retention.read"),
            Route(ArchivePurge, handlers.archive_purge, "retention.manage"),
        ),
        tasks=(purger.run,),
    )
