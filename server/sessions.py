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
from corridor.protocol.messages import Event, MessageEvent, NoticeEvent, ResyncEvent

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
    """An event for every session of a user, except the one it came from (which already knows).
    `urgent`: a message its sender marked urgent (it may pass a break)."""

    event: Event
    origin: int | None = None
    urgent: bool = False


@dataclass(frozen=True)
class Actor:
    """Who is making a request."""

    kind: str  # ANONYMOUS, "user" or LOCAL_ADMIN
    user_id: int | None = None
    username: str = ""
    role: str = ""
    device_id: int | None = None
    # An integration acts as its bot account (a "user"), but only within these scopes (see
    # `policy.SCOPE_ACTIONS`); None for everyone else.
    scopes: frozenset[str] | None = None

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
        self._breaks: dict[int, frozenset[str]] = {}  # user id → who may still reach them urgently

    def add(self, session: Session) -> None:
        """Register a session whose actor just logged in; it starts receiving `user:<id>` events."""
        user_id = session.actor.user_id
        self._by_user[user_id][session.id] = session
        self._unsubscribe[session.id] = self._bus.subscribe(f"user:{user_id}", lambda d: self._deliver(user_id, session, d))
        self._bus.publish("session.started", session)

    def _deliver(self, user_id: int, session: Session, delivery: Delivery) -> None:
        event = delivery.event
        if isinstance(event, (MessageEvent, NoticeEvent)) and self.holds(user_id, event.sender, delivery.urgent):
            return  # held: the sessions sync (and read their unread notices) when the break ends
        session.deliver(delivery)

    # -- breaks ---------------------------------------------------------------------------

    def start_break(self, user_id: int, urgent_from: frozenset[str]) -> None:
        """Hold live messages to the user, except urgent ones from `urgent_from`."""
        self._breaks[user_id] = urgent_from

    def end_break(self, user_id: int) -> None:
        """Deliver again, and tell the user's sessions to fetch what was held."""
        if self._breaks.pop(user_id, None) is not None:
            self._bus.publish(f"user:{user_id}", Delivery(ResyncEvent()))

    def holds(self, user_id: int, sender: str, urgent: bool) -> bool:
        """Whether a live message from `sender` to the user is held now."""
        allowed = self._breaks.get(user_id)
        return allowed is not None and not (urgent and sender in allowed)

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
