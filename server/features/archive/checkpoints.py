"""Signed checkpoints of the archive: the server's Ed25519 signature on the chain's head.

A hash chain proves that entries were not changed relative to each other, but not that the
newest ones were not cut off, nor that the whole chain from some entry on was not rewritten
with fresh hashes: both leave a chain that verifies. A checkpoint closes that gap. It is the
head's (`seq`, `hash`) at a time `ts`, signed with the archive key that `corridor init` made
(`tls/archive.key`, whose public half `tls/archive.pub` auditors keep); without the private key
nobody can sign a checkpoint for a rewritten chain, and a checkpoint for an entry that is no
longer there shows the cut.

What is signed (docs/archive.md publishes it):

    msgpack(["corridor-archive-checkpoint", 1, seq, hash, ts])   (use_bin_type; hash as bin)

The server writes one every `CHECKPOINT_INTERVAL` seconds while the chain grows, and one when
it stops.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from corridor.protocol.archive_format import checkpoint_bytes

from ...storage.database import Database
from ..periodic import every

log = logging.getLogger("corridor.archive")

CHECKPOINT_INTERVAL = 60.0
SIGNING_KEY = "tls/archive.key"
PUBLIC_KEY = "tls/archive.pub"


def load_signing_key(data_dir: Path) -> ed25519.Ed25519PrivateKey:
    """The data dir's archive signing key."""
    key = serialization.load_pem_private_key((data_dir / SIGNING_KEY).read_bytes(), password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError(f"{data_dir / SIGNING_KEY} is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> ed25519.Ed25519PublicKey:
    """An archive's public key (PEM), as auditors keep it."""
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key


def signature_holds(public: ed25519.Ed25519PublicKey, seq: int, digest: bytes, ts: float, signature: bytes) -> bool:
    """Whether `signature` is the archive key's signature on this checkpoint."""
    try:
        public.verify(signature, checkpoint_bytes(seq, digest, ts))
    except InvalidSignature:
        return False
    return True


def checkpoint_txn(conn: sqlite3.Connection, key: ed25519.Ed25519PrivateKey, now: float) -> int | None:
    """Sign the chain's head unless the latest checkpoint already covers it; returns the seq
    signed, or None when there was nothing new."""
    head = conn.execute("SELECT seq, hash FROM archive ORDER BY seq DESC LIMIT 1").fetchone()
    last = conn.execute("SELECT max(seq) FROM archive_checkpoints").fetchone()[0]
    if head is None or (last is not None and last >= head[0]):
        return None
    seq, digest = head
    # Several server processes may share a PostgreSQL database, and each signs: when another
    # signed this head first (its insert waited for or committed), its checkpoint stands.
    signed = conn.execute(
        "INSERT INTO archive_checkpoints (seq, hash, ts, signature) VALUES (?, ?, ?, ?) ON CONFLICT (seq) DO NOTHING RETURNING seq",
        (seq, digest, now, key.sign(checkpoint_bytes(seq, digest, now))),
    ).fetchone()
    return seq if signed else None


def checkpoints(conn: sqlite3.Connection) -> list[tuple[int, bytes, float, bytes]]:
    """Every checkpoint (seq, hash, ts, signature), oldest first."""
    return conn.execute("SELECT seq, hash, ts, signature FROM archive_checkpoints ORDER BY seq").fetchall()


class Checkpointer:
    """Signs the archive's head now and then, and once more when the server stops."""

    def __init__(self, db: Database, key: ed25519.Ed25519PrivateKey, clock):
        self.db, self.key, self.clock = db, key, clock

    async def run(self) -> None:
        """The background task: a checkpoint every `CHECKPOINT_INTERVAL` while the chain grows."""
        await every(
            CHECKPOINT_INTERVAL,
            lambda: self.db.write(lambda conn: checkpoint_txn(conn, self.key, self.clock())),
            "signing an archive checkpoint",
        )

    def final(self) -> None:
        """At shutdown, after the last write committed: sign the head the server leaves."""
        seq = self.db.write_now(lambda conn: checkpoint_txn(conn, self.key, self.clock()))
        if seq is not None:
            log.info("signed an archive checkpoint at entry %d", seq)
