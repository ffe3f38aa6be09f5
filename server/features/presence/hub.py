"""Live presence: who is online/away/busy, and who should hear about changes.

A user is offline without sessions; otherwise their last chosen status (online by default).
Contacts hear changes: a session watches the people it asked about (`query_presence`) and
everyone it exchanges messages with. Watch lists are per session, bounded, and vanish with
the session, so presence costs nothing for people nobody is looking at.
"""

from __future__ import annotations

from collections import defaultdict

from corridor.protocol.messages import PresenceEvent

from ...bus import Bus
from ...sessions import Session, SessionRegistry
from ..accounts.users import UserCache
from ..messaging.store import StoredMessage

MAX_WATCHED = 5000


class PresenceHub:
    """In-memory presence state, driven by session and message events on the bus."""

    def __init__(self, bus: Bus, sessions: SessionRegistry, users: UserCache):
        self._sessions = sessions
        self._users = users
        self._chosen: dict[int, str] = {}
        self._text: dict[int, str] = {}
        self._watchers: dict[int, dict[int, Session]] = defaultdict(dict)
        self._watching: dict[int, set[int]] = defaultdict(set)
        bus.subscribe("session.started", self._started)
        bus.subscribe("session.ended", self._ended)
        bus.subscribe("message.stored", self._messaged)

    def status(self, user_id: int) -> str:
        """The user's current status as others see it."""
        if not self._sessions.of_user(user_id):
            return "offline"
        return self._chosen.get(user_id, "online")

    def text(self, user_id: int) -> str:
        """The user's status text ("in a meeting until 3"), while they are connected."""
        return self._text.get(user_id, "") if self._sessions.of_user(user_id) else ""

    def set_status(self, user_id: int, status: str, text: str = "", urgent_from: frozenset[str] = frozenset()) -> None:
        """Record a chosen status and text, start or end a break, and tell the watchers."""
        before = (self.status(user_id), self.text(user_id))
        self._chosen[user_id] = status
        self._text[user_id] = text
        if status == "break":
            self._sessions.start_break(user_id, urgent_from)
        else:
            self._sessions.end_break(user_id)
        if (self.status(user_id), self.text(user_id)) != before:
            self._announce(user_id)

    def watch(self, session: Session, user_ids: list[int]) -> None:
        """Let `session` hear about these users' changes (bounded per session)."""
        watching = self._watching[session.id]
        for user_id in user_ids:
            if user_id in watching or user_id == session.actor.user_id:
                continue
            if len(watching) >= MAX_WATCHED:
                break
            watching.add(user_id)
            self._watchers[user_id][session.id] = session

    def _announce(self, user_id: int) -> None:
        event = PresenceEvent(user=self._users.name_of(user_id), status=self.status(user_id), text=self.text(user_id))
        for session in list(self._watchers.get(user_id, {}).values()):
            session.push(event)

    def _started(self, session: Session) -> None:
        if len(self._sessions.of_user(session.actor.user_id)) == 1:
            self._forget(session.actor.user_id)

    def _ended(self, session: Session) -> None:
        for user_id in self._watching.pop(session.id, ()):
            watchers = self._watchers.get(user_id)
            if watchers is not None:
                watchers.pop(session.id, None)
                if not watchers:
                    del self._watchers[user_id]
        if not self._sessions.of_user(session.actor.user_id):
            self._forget(session.actor.user_id)

    def _forget(self, user_id: int) -> None:
        # A status (and a break) lasts while one of the user's devices is connected.
        self._chosen.pop(user_id, None)
        self._text.pop(user_id, None)
        self._sessions.end_break(user_id)
        self._announce(user_id)

    def _messaged(self, message: StoredMessage) -> None:
        if message.recipient_id is None or message.recipient_id == message.sender_id:
            return
        for a, b in ((message.sender_id, message.recipient_id), (message.recipient_id, message.sender_id)):
            for session in self._sessions.of_user(a):
                self.watch(session, [b])
