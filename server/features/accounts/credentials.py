"""Password checks for everything that takes a password — the protocol's `login` and the web
console's sign-in — behind one throttle, so failures anywhere count against the same account
and address limits."""

from __future__ import annotations

from corridor.protocol.errors import make_error

from ...config import Limits
from ...storage.database import Database
from . import store
from .passwords import PasswordHasher
from .throttle import LoginThrottle
from .users import UserCache


class Credentials:
    """Verifies passwords (Argon2id, in worker threads under a cap) with per-account and
    per-address throttling."""

    def __init__(self, db: Database, users: UserCache, limits: Limits):
        self.db, self.users = db, users
        self.hasher = PasswordHasher(limits.password_hash_concurrency)
        self.throttle = LoginThrottle(limits.failed_logins_per_hour)

    async def verify(self, username: str, password: str, peer: str) -> store.UserRow:
        """The active user whose password this is; LOGIN_FAILED (the same answer and time for
        an unknown user, a bot and a wrong password) or RATE_LIMITED after too many failures."""
        username = username.lower()
        keys = (f"account:{username}", f"address:{peer}")
        self.throttle.check(*keys)
        user = self.users.by_name(username)
        encoded = await self.db.read(lambda c: store.password_hash(c, user.id)) if user else None
        if not await self.hasher.verify(password, encoded):
            self.throttle.failed(*keys)
            raise make_error("LOGIN_FAILED")
        self.throttle.succeeded(keys[0])
        return user
