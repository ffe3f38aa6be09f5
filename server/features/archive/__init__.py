"""The compliance archive: every message and admin action, hash-chained, append-only.

It has no requests of its own yet: other features append to it inside their transactions
(`store.append_txn`); auditor search and export come with the archive issue."""

from .migrations import MIGRATIONS

__all__ = ["MIGRATIONS"]
