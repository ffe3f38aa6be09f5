"""Who is connected: one `Session` per connection, and the registry of authenticated ones.

`user:<id>` topics carry `Delivery` objects. A session knows its actor (anonymous until login, then a user and device, or the local admin
on the control socket) and how to push an event to its connection without blocking. The
registry publishes `session.started` / `session.ended` on the bus so features (presence) can
follow logins without the network layer knowing about them.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from corridor.protocol.errors import CorridorError
from corridor.protocol.messages import Event

from .bus import Bus

ANONYMOUS = "anonymous"
LOCAL_ADMIN = "local-admin"
DEPT_ADMIN = "dept_admin"
# Role sets that features grant actions to: everyone with an account; those who converse
# (auditors only look); and IT administrators (including whoever holds the server's control
# socket). Department admins are granted actions one by one, within their subtrees.
MEMBERS = frozenset({"user", DEPT_ADMIN, "admin", "auditor"})
CHATTERS = MEMBERS - {"auditor"}
ADMINS = frozenset({"admin", LOCAL_ADMIN})


@dataclass(frozen=True)
class Delivery:
    """An event for every session of a user, except the one it came from (which already knows)."""

    event: Event
    origin: int | None = None


@dataclass(frozen=True)
class Actor:
    """Who is making a request."""

    kind: str  # ANONYMOUS, "user" or LOCAL_ADMIN
    user_id: int | None = None
    username: str = ""
    role: str = ""
    device_id: int | None = None

    @property
    def authenticated(self) -> bool:
        return self.kind != ANONYMOUS

    @property
    def label(self) -> str:
        """How the archive and logs name this actor."""
        return self.username if self.kind == "user" else self.kind


_ids = itertools.count(1)


class Session:
    """One live connection's identity and its way to push events."""

    def __init__(
        self,
        peer: str,
        push: Callable[[Event], None],
        actor: Actor | None = None,
        close: Callable[[CorridorError], None] | None = None,
    ):
        self.id = next(_ids)
        self.peer = peer
        self.actor = actor or Actor(ANONYMOUS)
        self._push = push
        self._close = close

    def close(self, error: CorridorError) -> None:
        """End this connection now, telling the peer why (never blocks)."""
        if self._close is not None:
            self._close(error)

    def push(self, event: Event) -> None:
        """Queue an event for this connection (never blocks; a full queue closes the connection)."""
        self._push(event)

    def deliver(self, delivery: Delivery) -> None:
        """Push a user-wide delivery unless this session originated it."""
        if delivery.origin != self.id:
            self._push(delivery.event)


class SessionRegistry:
    """Authenticated sessions by user, for delivery and presence."""

    def __init__(self, bus: Bus):
        self._bus = bus
        self._by_user: dict[int, dict[int, Session]] = defaultdict(dict)
        self._unsubscribe: dict[int, Callable[[], None]] = {}

    def add(self, session: Session) -> None:
        """Register a session whose actor just logged in; it starts receiving `user:<id>` events."""
        user_id = session.actor.user_id
        self._by_user[user_id][session.id] = session
        self._unsubscribe[session.id] = self._bus.subscribe(f"user:{user_id}", session.deliver)
        self._bus.publish("session.started", session)

    def remove(self, session: Session) -> None:
        """Forget a session (its connection closed); safe to call for sessions never added."""
        unsubscribe = self._unsubscribe.pop(session.id, None)
        if unsubscribe is None:
            return
        unsubscribe()
        user_sessions = self._by_user.get(session.actor.user_id, {})
        user_sessions.pop(session.id, None)
        if not user_sessions:
            self._by_user.pop(session.actor.user_id, None)
        self._bus.publish("session.ended", session)

    def end_sessions(self, error: CorridorError, user_id: int, device_id: int | None = None) -> int:
        """End the live sessions of a user (or of one of their devices) at once; returns how many."""
        ended = [s for s in self.of_user(user_id) if device_id is None or s.actor.device_id == device_id]
        for session in ended:
            session.close(error)
        return len(ended)

    def of_user(self, user_id: int) -> list[Session]:
        """The live sessions of one user."""
        return list(self._by_user.get(user_id, {}).values())

    @property
    def online_users(self) -> int:
        return len(self._by_user)

    @property
    def count(self) -> int:
        return len(self._unsubscribe)
