"""Checking the archive's hash chain, entry by entry, and saying what broke it.

The walk is the one `docs/archive.md` publishes: entries in `seq` order from 1, each linking to
the previous one's hash and hashing to its own. The first entry that fails is named with the
kind of damage that explains it: a missing `seq` is an entry deleted, a hash that does not match
the entry's own fields is an entry changed, and a link to something other than the previous
entry's hash is an entry inserted or replaced. Everything after the first break is unverifiable
relative to what came before, so the walk stops there.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from .chain import GENESIS, entry_hash

_ROWS = "SELECT seq, ts, actor, kind, conversation_id, payload, prev_hash, hash FROM archive ORDER BY seq"


@dataclass(frozen=True)
class Verdict:
    """What a walk of the chain found: how many entries verified, and the first broken one."""

    verified: int
    broken: int | None = None
    reason: str = ""

    @property
    def intact(self) -> bool:
        return self.broken is None


def verify_chain(conn: sqlite3.Connection, progress: Callable[[int], None] | None = None, every: int = 10_000) -> Verdict:
    """Walk the whole chain; `progress(entries so far)` is called every `every` entries."""
    prev, expected = GENESIS, 1
    for seq, ts, actor, kind, conversation, payload, prev_hash, digest in conn.execute(_ROWS):
        if seq != expected:
            missing = f"entry {expected} is missing" if seq == expected + 1 else f"entries {expected} to {seq - 1} are missing"
            return Verdict(expected - 1, expected, f"{missing} (deleted)")
        if entry_hash(seq, ts, actor, kind, conversation, payload, prev_hash) != digest:
            return Verdict(seq - 1, seq, f"entry {seq} was changed: its fields do not hash to its stored hash")
        if prev_hash != prev:
            return Verdict(seq - 1, seq, f"entry {seq} does not link to entry {seq - 1}: inserted, or the chain rewritten")
        prev, expected = digest, seq + 1
        if progress and seq % every == 0:
            progress(seq)
    return Verdict(expected - 1)
