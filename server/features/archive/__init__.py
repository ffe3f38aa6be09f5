"""The compliance archive: every message and admin action, hash-chained, append-only."""

from ..base import Feature
from .migrations import MIGRATIONS


def feature() -> Feature:
    """The archive adds storage only; other features append to it inside their transactions."""
    return Feature(name="archive", migrations=MIGRATIONS)
