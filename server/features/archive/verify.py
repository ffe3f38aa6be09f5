"""Checking the archive's hash chain, entry by entry, and its signed checkpoints.

The walk is the one `docs/archive.md` publishes: entries in `seq` order from 1, each linking to
the previous one's hash and hashing to its own. The first entry that fails is named with the
kind of damage that explains it: a missing `seq` is an entry deleted, a hash that does not match
the entry's own fields is an entry changed, and a link to something other than the previous
entry's hash is an entry inserted or replaced. Everything after the first break is unverifiable
relative to what came before, so the walk stops there.

With the archive's public key, the checkpoints are checked too (see `checkpoints.py`): each
must carry a good signature, the entry it signed must still have the hash it signed, and no
checkpoint may sign an entry past the end — which catches the two things a chain alone cannot:
the newest entries cut off, and the chain rewritten from some entry on with fresh hashes.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ed25519

from corridor.protocol.archive_format import GENESIS, entry_damage

from .checkpoints import checkpoints, signature_holds
from .store import head_seq

_ROWS = "SELECT seq, ts, actor, kind, conversation_id, payload, payload_hash, prev_hash, hash FROM archive ORDER BY seq"


@dataclass(frozen=True)
class Verdict:
    """What a walk found: how many entries verified, the first broken one and why, and how
    many signed checkpoints held (None when no public key was given)."""

    verified: int
    broken: int | None = None
    reason: str = ""
    checkpoints: int | None = None

    @property
    def intact(self) -> bool:
        return self.broken is None


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _signed(conn: sqlite3.Connection, public: ed25519.Ed25519PublicKey) -> tuple[dict[int, tuple[bytes, float]], Verdict | None]:
    try:
        found = checkpoints(conn)
    except sqlite3.OperationalError:  # a data dir from before checkpoints existed
        return {}, None
    for seq, digest, ts, signature in found:
        if not signature_holds(public, seq, digest, ts, signature):
            return {}, Verdict(0, seq, f"the checkpoint of entry {seq} has a bad signature: forged, changed, or another key")
    return {seq: (digest, ts) for seq, digest, ts, _ in found}, None


def verify_chain(
    conn: sqlite3.Connection,
    public: ed25519.Ed25519PublicKey | None = None,
    progress: Callable[[int], None] | None = None,
    every: int = 10_000,
) -> Verdict:
    """Walk the whole chain (and, given the archive's public key, its checkpoints);
    `progress(entries so far)` is called every `every` entries."""
    marks, forged = _signed(conn, public) if public is not None else ({}, None)
    if forged is not None:
        return forged
    prev, expected = GENESIS, 1
    for seq, ts, actor, kind, conversation, payload, payload_hash, prev_hash, digest in conn.execute(_ROWS):
        if seq != expected:
            missing = f"entry {expected} is missing" if seq == expected + 1 else f"entries {expected} to {seq - 1} are missing"
            return Verdict(expected - 1, expected, f"{missing} (deleted)")
        damage = entry_damage(seq, ts, actor, kind, conversation, payload, payload_hash, prev_hash, digest)
        if damage:
            return Verdict(seq - 1, seq, damage)
        if prev_hash != prev:
            return Verdict(seq - 1, seq, f"entry {seq} does not link to entry {seq - 1}: inserted, or the chain rewritten")
        if seq in marks and marks[seq][0] != digest:
            return Verdict(
                seq - 1, seq, f"entry {seq} is not the one signed at {_when(marks[seq][1])}: the chain was rewritten up to here"
            )
        prev, expected = digest, seq + 1
        if progress and seq % every == 0:
            progress(seq)
    last = expected - 1
    if marks and max(marks) > last:
        cut = max(marks)
        return Verdict(
            last, last + 1, f"the archive ends at entry {last}, but entry {cut} was signed: entries after {last} were cut off"
        )
    return Verdict(last, checkpoints=len(marks) if public is not None else None)


@dataclass(frozen=True)
class ChainStatus:
    """The archive as the web console shows it to auditors: its newest entry, its latest signed
    checkpoint (seq, time) and whether that signature holds, and a whole walk when one was asked for."""

    head: int
    checkpoint: tuple[int, float] | None
    signature_holds: bool
    verdict: Verdict | None = None


def chain_status(conn: sqlite3.Connection, public: ed25519.Ed25519PublicKey, walk: bool = False) -> ChainStatus:
    """Read-only: the chain's head and latest checkpoint, and with `walk` the whole chain checked
    as `corridor audit verify DATA_DIR` checks it."""
    found = checkpoints(conn)
    latest = found[-1] if found else None
    holds = latest is not None and signature_holds(public, *latest)
    return ChainStatus(
        head=head_seq(conn),
        checkpoint=(latest[0], latest[2]) if latest else None,
        signature_holds=holds,
        verdict=verify_chain(conn, public) if walk else None,
    )
