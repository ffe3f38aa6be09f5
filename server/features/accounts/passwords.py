"""Password hashing with Argon2id (OWASP parameters), in worker threads under a cap.

Encoded as `argon2id$v=19$m=KIB,t=ITER,p=LANES$SALT$HASH` (base64 without padding), so the
parameters travel with each hash and can be raised later without breaking old ones.
`verify(password, None)` hashes against a fixed dummy so that an unknown user costs the same
time as a wrong password (no user enumeration by timing).
"""

from __future__ import annotations

import base64
import hmac
import os

import trio
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

MEMORY_KIB = 19 * 1024
ITERATIONS = 2
LANES = 1
LENGTH = 32


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, memory: int, iterations: int, lanes: int) -> bytes:
    kdf = Argon2id(salt=salt, length=LENGTH, iterations=iterations, lanes=lanes, memory_cost=memory)
    return kdf.derive(password.encode())


def hash_password_sync(password: str) -> str:
    """Hash a password now (blocking); the encoded string includes salt and parameters."""
    salt = os.urandom(16)
    digest = _derive(password, salt, MEMORY_KIB, ITERATIONS, LANES)
    return f"argon2id$v=19$m={MEMORY_KIB},t={ITERATIONS},p={LANES}${_b64(salt)}${_b64(digest)}"


def verify_password_sync(password: str, encoded: str) -> bool:
    """Check a password against an encoded hash (blocking)."""
    try:
        name, _version, params, salt, digest = encoded.split("$")
        values = dict(item.split("=") for item in params.split(","))
        memory, iterations, lanes = int(values["m"]), int(values["t"]), int(values["p"])
    except (ValueError, KeyError):
        return False
    if name != "argon2id":
        return False
    return hmac.compare_digest(_derive(password, _unb64(salt), memory, iterations, lanes), _unb64(digest))


_DUMMY = hash_password_sync("corridor-dummy-password")


class PasswordHasher:
    """Async hashing and verification, at most `concurrency` at a time."""

    def __init__(self, concurrency: int):
        self._limiter = trio.CapacityLimiter(concurrency)

    async def hash(self, password: str) -> str:
        """Hash a new password."""
        return await trio.to_thread.run_sync(hash_password_sync, password, limiter=self._limiter)

    async def verify(self, password: str, encoded: str | None) -> bool:
        """Verify; `encoded=None` (no such user) costs the same and returns False."""
        ok = await trio.to_thread.run_sync(verify_password_sync, password, encoded or _DUMMY, limiter=self._limiter)
        return ok and encoded is not None
