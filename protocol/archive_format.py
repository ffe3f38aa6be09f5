"""The archive's published format (docs/archive.md), pure: how an entry is hashed, what a
checkpoint's and an export manifest's signatures cover, and the check of one entry.

Format 2 — each entry's hash covers its fields, the hash of its payload and the previous
entry's hash:

    hash = SHA-256(msgpack([seq, ts, actor, kind, conversation, payload_hash, prev_hash]))
    payload_hash = SHA-256(payload)

Committing to the payload through its hash lets retention erase a payload and leave a
tombstone that still verifies. The first entry's prev_hash is 32 zero bytes. The server writes
entries and signs; `corridor audit verify` checks data dirs and exports with these functions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import msgpack
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from .audit import ArchiveRow, ExportManifest

GENESIS = bytes(32)
CHECKPOINT_DOMAIN = "corridor-archive-checkpoint"
EXPORT_DOMAIN = "corridor-archive-export"
_VERSION = 1


def payload_digest(payload: bytes) -> bytes:
    """The hash an entry keeps of its payload bytes."""
    return hashlib.sha256(payload).digest()


def entry_hash(
    seq: int, ts: float, actor: str, kind: str, conversation: int | None, payload_hash: bytes, prev_hash: bytes
) -> bytes:
    """The hash of one archive entry."""
    canonical = msgpack.packb([seq, ts, actor, kind, conversation, payload_hash, prev_hash], use_bin_type=True)
    return hashlib.sha256(canonical).digest()


def entry_damage(
    seq: int,
    ts: float,
    actor: str,
    kind: str,
    conversation: int | None,
    payload: bytes | None,
    payload_hash: bytes,
    prev_hash: bytes,
    digest: bytes,
) -> str | None:
    """What is wrong with one entry on its own (None: nothing). A tombstone (payload None) is
    checked through the payload hash it kept; whether it links to the entry before is the
    caller's check."""
    if payload is not None and payload_digest(payload) != payload_hash:
        return f"entry {seq} was changed: its payload does not match the payload hash it was archived with"
    if entry_hash(seq, ts, actor, kind, conversation, payload_hash, prev_hash) != digest:
        return f"entry {seq} was changed: its fields do not hash to its stored hash"
    return None


def checkpoint_bytes(seq: int, digest: bytes, ts: float) -> bytes:
    """The exact bytes a checkpoint's signature covers."""
    return msgpack.packb([CHECKPOINT_DOMAIN, _VERSION, seq, digest, ts], use_bin_type=True)


def selection_digest(entries: Iterable[tuple[int, bytes]]) -> tuple[int, bytes]:
    """How many entries an export selected and the SHA-256 over the concatenated
    msgpack([seq, hash]) of each, in seq order (computed as they stream by)."""
    digest, count = hashlib.sha256(), 0
    for seq, entry in entries:
        digest.update(msgpack.packb([seq, entry], use_bin_type=True))
        count += 1
    return count, digest.digest()


def manifest_bytes(query: str, through: int, count: int, digest: bytes, ts: float, exporter: str) -> bytes:
    """The exact bytes an export manifest's signature covers."""
    return msgpack.packb([EXPORT_DOMAIN, _VERSION, query, through, count, digest, ts, exporter], use_bin_type=True)


@dataclass(frozen=True)
class ExportVerdict:
    """What checking an export found: how many entries held, the first bad one and why."""

    entries: int
    broken: int | None = None
    reason: str = ""

    @property
    def intact(self) -> bool:
        return not self.reason


def verify_export(manifest: ExportManifest, rows: Iterable[ArchiveRow], trusted_key: bytes | None = None) -> ExportVerdict:
    """Check an export: the manifest's signature (under `trusted_key`, the raw Ed25519 public
    key an auditor kept, else the key the manifest names), every entry against its own hash,
    and the entries against the manifest — so a changed, added or removed entry is named."""
    key = trusted_key if trusted_key is not None else manifest.public_key
    signed = manifest_bytes(manifest.query, manifest.through, manifest.count, manifest.digest, manifest.ts, manifest.exporter)
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(key).verify(manifest.signature, signed)
    except (InvalidSignature, ValueError):
        whose = "the key you trust" if trusted_key is not None else "the key it names"
        return ExportVerdict(
            0, None, f"the manifest's signature does not hold under {whose}: forged, changed, or another archive"
        )
    ordered = sorted(rows, key=lambda r: r.seq)
    listed = []
    for row in ordered:
        damage = entry_damage(
            row.seq, row.ts, row.actor, row.kind, row.conversation, row.payload, row.payload_hash, row.prev_hash, row.hash
        )
        if damage:
            return ExportVerdict(len(listed), row.seq, damage)
        if row.seq > manifest.through or (listed and listed[-1][0] == row.seq):
            return ExportVerdict(len(listed), row.seq, f"entry {row.seq} is not part of the signed selection: it was added")
        listed.append((row.seq, row.hash))
    count, digest = selection_digest(listed)
    if count != manifest.count:
        change = "removed" if count < manifest.count else "added"
        return ExportVerdict(
            count, None, f"the export holds {count} entries but its manifest signed {manifest.count}: entries were {change}"
        )
    if digest != manifest.digest:
        return ExportVerdict(count, None, "the entries are not the ones the manifest signed: one was replaced with another entry")
    return ExportVerdict(count)
