"""The archive's hash chain: each entry's hash covers its fields and the previous hash.

hash = SHA-256(msgpack([seq, ts, actor, kind, conversation, payload, prev_hash]))

`payload` is the msgpack bytes stored in the row, so a verifier needs only the row values.
The first entry's prev_hash is 32 zero bytes. docs/archive.md publishes this format.
"""

from __future__ import annotations

import hashlib

import msgpack

GENESIS = bytes(32)


def entry_hash(seq: int, ts: float, actor: str, kind: str, conversation: int | None, payload: bytes, prev_hash: bytes) -> bytes:
    """The hash of one archive entry."""
    canonical = msgpack.packb([seq, ts, actor, kind, conversation, payload, prev_hash], use_bin_type=True)
    return hashlib.sha256(canonical).digest()
