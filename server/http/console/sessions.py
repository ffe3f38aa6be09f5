"""Console sign-ins: who holds which session cookie, until when.

The store is a dict in this process's memory, keyed by a random token (the cookie's value).
That is enough because one `corridor serve` process serves the console: a restart signs
everyone out, which costs an admin one sign-in. Several processes behind a load balancer would
keep these rows in the shared database instead (docs/console.md says so). A session ends when
it has been idle `idle` seconds, `lifetime` seconds after sign-in whatever happens, at sign-out,
and whenever the account it belongs to is deactivated or changes role (the caller re-reads the
account on every request and ends the session then).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from ...sessions import DEPT_ADMIN

# Who may use the console at all; pages narrow it further.
CONSOLE_ROLES = frozenset({"admin", DEPT_ADMIN, "auditor"})
# A bound on the store: sign-ins beyond it push out the oldest session (memory stays bounded
# even if someone with valid credentials signs in in a loop).
MAX_SESSIONS = 10_000


@dataclass
class ConsoleSession:
    """One signed-in browser: its account (as it was at sign-in), CSRF token and clock readings."""

    token: str
    user_id: int
    role: str
    csrf: str
    started: float
    seen: float


class ConsoleSessions:
    """The in-memory session store, with idle and absolute expiry (seconds)."""

    def __init__(self, idle: float, lifetime: float, clock: Callable[[], float] = time.monotonic):
        self.idle, self.lifetime, self.clock = idle, lifetime, clock
        self._by_token: dict[str, ConsoleSession] = {}

    def start(self, user_id: int, role: str) -> ConsoleSession:
        """A new session for an account that just signed in."""
        now = self.clock()
        self._by_token = {t: s for t, s in self._by_token.items() if self._alive(s, now)}
        while len(self._by_token) >= MAX_SESSIONS:
            del self._by_token[next(iter(self._by_token))]  # dicts keep insertion order: the oldest
        session = ConsoleSession(secrets.token_urlsafe(32), user_id, role, secrets.token_urlsafe(32), now, now)
        self._by_token[session.token] = session
        return session

    def get(self, token: str) -> ConsoleSession | None:
        """The live session for a cookie's token (and it counts as used now), or None."""
        session = self._by_token.get(token)
        now = self.clock()
        if session is None or not self._alive(session, now):
            self._by_token.pop(token, None)
            return None
        session.seen = now
        return session

    def end(self, token: str) -> None:
        """Sign a session out (unknown tokens are ignored)."""
        self._by_token.pop(token, None)

    def _alive(self, session: ConsoleSession, now: float) -> bool:
        return now - session.seen < self.idle and now - session.started < self.lifetime
