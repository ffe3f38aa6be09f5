"""The purge: erasing archived content that retention no longer keeps.

Once an hour (and when an IT admin asks), the purger walks the archive's messages, notices and
uploads older than the shortest retention period and erases those whose time is up: the
archive entry becomes a tombstone (payload gone, hashes kept, so `verify` still passes), it
leaves the search index, the message or notice its people see is erased too, and a file content
no remaining message refers to is deleted from disk.

How long an entry is kept is the longest period any of its people's departments asks for
(`store.keep_days`); no rule at all means keep forever. A legal hold on anyone the entry is about,
or on a conversation — a user's hold covering every conversation they are in — keeps it however
old it is; it is counted as `held` and erased by a later pass once the hold is released.

The walk reads in steps and writes each step's erasures in one transaction, so other writes
interleave with a long purge.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

import trio

from corridor.protocol.audit import PurgeResult

from ...services import Services
from ..archive import store as archive_store
from ..archive.indexer import catch_up
from ..files import store as files_store
from ..files.blobs import BlobStore
from ..files.handlers import UPLOAD_TTL
from ..messaging import store as messaging_store
from ..notices import store as notices_store
from ..periodic import every
from . import store

log = logging.getLogger("corridor.retention")

PURGE_INTERVAL = 3600.0
STEP = 2000
DAY = 86400.0


@dataclass(frozen=True)
class Plan:
    """What a pass decides with: days kept per user, the global rule, and the holds."""

    by_user: dict[int, float | None]
    default: float | None
    held_users: frozenset[int]
    held_conversations: frozenset[int]

    def keep(self, entry: archive_store.Expiring) -> float | None:
        """Days this entry is kept (None: forever)."""
        if not entry.people:
            return self.default
        periods = [self.by_user.get(p, self.default) for p in entry.people]
        kept = periods[0]
        for period in periods[1:]:
            kept = store.longest(kept, period)
        return kept

    def held(self, entry: archive_store.Expiring) -> bool:
        return bool(entry.people & self.held_users) or entry.conversation in self.held_conversations


def _plan(conn: sqlite3.Connection) -> Plan | None:
    by_user, default, any_rule = store.keep_days(conn)
    if not any_rule:
        return None
    users, conversations = store.held(conn)
    conversations |= messaging_store.conversations_of(conn, sorted(users))
    return Plan(by_user, default, frozenset(users), frozenset(conversations))


def _erase_txn(conn: sqlite3.Connection, entries: list[archive_store.Expiring], now: float) -> list[str]:
    """Erase the entries and what their people see; returns the file contents to delete."""
    contents = set()
    for entry in entries:
        archive_store.erase_txn(conn, entry.seq, now)
        if entry.kind == "message":
            messaging_store.erase_txn(conn, entry.conversation, entry.payload["seq"])
            if entry.payload.get("file"):
                contents.add(entry.payload["file"]["sha256"])
        elif entry.kind == "notice":
            notices_store.erase_txn(conn, entry.payload["id"])
        elif entry.kind == "file":
            contents.add(entry.payload["sha256"])
    return files_store.forget_unreferenced_txn(conn, contents, now - UPLOAD_TTL)


class Purger:
    """Runs retention passes: hourly in the background, or on request."""

    def __init__(self, services: Services, blobs: BlobStore):
        self.services, self.blobs = services, blobs

    async def run(self) -> None:
        """The background task: a pass every `PURGE_INTERVAL`."""
        await every(PURGE_INTERVAL, self._scheduled_pass, "the retention pass")

    async def _scheduled_pass(self) -> None:
        result = await self.purge("retention")
        if result.purged or result.held:
            log.info("retention: erased %d entries, %d held, %d files deleted", result.purged, result.held, result.files)

    async def purge(self, actor: str, dry_run: bool = False) -> PurgeResult:
        """One pass; `dry_run` counts what it would erase and erases nothing. A pass that erased
        something is itself archived as an admin action."""
        db, now = self.services.db, self.services.clock()
        await catch_up(db)  # who each entry is about comes from the index
        plan = await db.read(_plan)
        periods = [p for p in (*plan.by_user.values(), plan.default) if p is not None] if plan else []
        if not periods:
            return PurgeResult(purged=0, held=0, files=0)
        shortest = min(periods)
        held = files = 0
        erased: list[int] = []
        after: int | None = 0
        while after is not None:
            batch, after = await db.read(lambda conn, a=after: archive_store.expiring(conn, a, now - shortest * DAY, STEP))
            due = []
            for entry in batch:
                keep = plan.keep(entry)
                if keep is None or entry.ts >= now - keep * DAY:
                    continue
                if plan.held(entry):
                    held += 1
                else:
                    due.append(entry)
            erased += [entry.seq for entry in due]
            if due and not dry_run:
                gone = await db.write(lambda conn, d=due: _erase_txn(conn, d, now))
                await trio.to_thread.run_sync(lambda g=gone: [self.blobs.remove(f) for f in g])
                files += len(gone)
        if erased and not dry_run:
            await db.write(
                lambda conn: archive_store.admin_action_txn(
                    conn,
                    actor=actor,
                    now=now,
                    action="archive_purge",
                    purged=len(erased),
                    held=held,
                    files=files,
                    entries=_ranges(erased),
                )
            )
        return PurgeResult(purged=len(erased), held=held, files=files)


def _ranges(seqs: list[int]) -> list[list[int]]:
    """Ascending seqs as [first, last] runs: how the chain records which entries a purge erased."""
    runs: list[list[int]] = []
    for seq in seqs:
        if runs and runs[-1][1] == seq - 1:
            runs[-1][1] = seq
        else:
            runs.append([seq, seq])
    return runs
