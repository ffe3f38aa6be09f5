"""Background chores that repeat for the server's whole life (indexing the archive, signing
checkpoints, retention passes, following the directory).

A round that fails — a full disk, a locked or damaged database, an unreachable PostgreSQL, an
I/O error — is logged and the next round tries again: a chore must never take the server, and everyone's
connections, down with it. Nothing is lost by a skipped round; each one starts from what is
stored.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from corridor.protocol.errors import CorridorError

log = logging.getLogger("corridor.server")


async def every(interval: float, job: Callable[[], Awaitable[object]], what: str, first_wait: bool = True) -> None:
    """Run `job()` every `interval` seconds (waiting first unless `first_wait` is false)."""
    if first_wait:
        await trio.sleep(interval)
    while True:
        try:
            await job()
        except CorridorError as exc:
            # Typed storage faults (STORAGE_FULL) are expected while they last: no traceback.
            log.warning("%s failed: %s [%s]; trying again in %g s", what, exc, exc.code, interval)
        except Exception:
            # Whatever else the engine raised (SQLite, or PostgreSQL through psycopg): logged with
            # its traceback, and the server goes on serving.
            log.exception("%s failed; trying again in %g s", what, interval)
        await trio.sleep(interval)
