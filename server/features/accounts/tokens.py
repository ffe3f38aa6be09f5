"""Random secrets (invite and device tokens) and the hashes we store instead of them.

The secrets are 256-bit random, so a plain SHA-256 is enough to store them: there is
nothing to brute-force, and lookups stay an index hit with no KDF on the login path.
"""

from __future__ import annotations

import hashlib
import secrets


def new_secret() -> str:
    """A new URL-safe random token."""
    return secrets.token_urlsafe(32)


def digest(secret: str) -> bytes:
    """What the database stores for a token."""
    return hashlib.sha256(secret.encode()).digest()
