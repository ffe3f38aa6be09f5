"""Who is connected: one `Session` per connection, and the registry of authenticated ones.

`user:<id>` topics carry `Delivery` objects. A session knows its actor (anonymous until login, then a user and device, or the local admin
on the control socket) and how to push an event to its connection without blocking. The
registry publishes `session.started` / `session.ended` on the bus so features (presence) can
follow logins without the network layer knowing about them.

With several serve processes (`cluster.py`) the registry also knows, per other process, which
users hold sessions there and on which devices: each process says so when a user's sessions
change (`sessions`) and in every announcement, and forgets a process that fell silent. When a
user's sessions elsewhere change it publishes `session.elsewhere` (the user id) in this process,
for presence. Ending a user's sessions ends them in every process (`end_sessions`).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from corridor.protocol.errors import CorridorError, make_error
from corridor.protocol.messages import Event, MessageEvent, NoticeEvent, ResyncEvent

from .bus import Bus
from .cluster import Cluster, Message

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
    """Authenticated sessions by user, for delivery and presence; and how many other processes
    hold, by user and device."""

    def __init__(self, bus: Bus, cluster: Cluster | None = None):
        self._bus = bus
        self.cluster = cluster or Cluster(bus)
        self._by_user: dict[int, dict[int, Session]] = defaultdict(dict)
        self._unsubscribe: dict[int, Callable[[], None]] = {}
        # User id → who may still reach them urgently: this process's users on a break (which
        # holds their deliveries here), and others' (so a sender here is told it was held).
        self._breaks: dict[int, frozenset[str]] = {}
        self._elsewhere: dict[str, dict[int, tuple[int, ...]]] = {}  # node → user → devices of its sessions
        self._nodes_of: dict[int, set[str]] = defaultdict(set)  # user → nodes holding sessions of theirs
        self.cluster.on("sessions", self._heard_sessions)
        self.cluster.on("alive", self._heard_alive)
        self.cluster.on("end_sessions", self._heard_end)
        self.cluster.on_gone(self._gone)
        self.cluster.contributes(lambda: {"sessions": [[u, self._devices(u)] for u in self._by_user]})

    def add(self, session: Session) -> None:
        """Register a session whose actor just logged in; it starts receiving `user:<id>` events."""
        user_id = session.actor.user_id
        self._by_user[user_id][session.id] = session
        self._unsubscribe[session.id] = self._bus.subscribe(f"user:{user_id}", lambda d: self._deliver(user_id, session, d))
        self.cluster.publish("sessions", user=user_id, devices=self._devices(user_id))
        self._bus.publish("session.started", session)

    def _deliver(self, user_id: int, session: Session, delivery: Delivery) -> None:
        event = delivery.event
        if isinstance(event, (MessageEvent, NoticeEvent)) and self.holds(user_id, event.sender, delivery.urgent):
            return  # held: the sessions sync (and read their unread notices) when the break ends
        session.deliver(delivery)
        if delivery.origin is None and isinstance(event, MessageEvent) and event.recipient:
            # A 1:1 message stored by another process (which saw `message.stored`): presence
            # lets this session follow the person it talks with.
            self._bus.publish("message.arrived", (session, event))

    # -- breaks ---------------------------------------------------------------------------

    def start_break(self, user_id: int, urgent_from: frozenset[str]) -> None:
        """Hold live messages to the user, except urgent ones from `urgent_from`."""
        self._breaks[user_id] = urgent_from

    def end_break(self, user_id: int) -> None:
        """Deliver again, and tell the user's sessions here to fetch what was held (each process
        ends the break of its own sessions when it learns of the change)."""
        if self._breaks.pop(user_id, None) is not None:
            for session in self.of_user(user_id):
                session.push(ResyncEvent())

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
        user_id = session.actor.user_id
        user_sessions = self._by_user.get(user_id, {})
        user_sessions.pop(session.id, None)
        if not user_sessions:
            self._by_user.pop(user_id, None)
        self.cluster.publish("sessions", user=user_id, devices=self._devices(user_id))
        self._bus.publish("session.ended", session)

    def end_sessions(self, error: CorridorError, user_id: int, device_id: int | None = None) -> int:
        """End the live sessions of a user (or of one of their devices) at once, in every
        process; returns how many (those elsewhere as last heard)."""
        self.cluster.publish("end_sessions", user=user_id, device=device_id, code=error.code, text=error.message)
        elsewhere = sum(
            sum(1 for d in self._elsewhere[node].get(user_id, ()) if device_id is None or d == device_id)
            for node in self._nodes_of.get(user_id, ())
        )
        return self._end_here(error, user_id, device_id) + elsewhere

    def _end_here(self, error: CorridorError, user_id: int, device_id: int | None) -> int:
        ended = [s for s in self.of_user(user_id) if device_id is None or s.actor.device_id == device_id]
        for session in ended:
            session.close(error)
        return len(ended)

    def of_user(self, user_id: int) -> list[Session]:
        """The live sessions of one user in this process."""
        return list(self._by_user.get(user_id, {}).values())

    def elsewhere(self, user_id: int) -> frozenset[str]:
        """The other processes (node ids) where the user has sessions, as last heard."""
        return frozenset(self._nodes_of.get(user_id, ()))

    @property
    def online_users(self) -> int:
        """Users with a session in this process."""
        return len(self._by_user)

    @property
    def count(self) -> int:
        """Sessions in this process."""
        return len(self._unsubscribe)

    @property
    def online_users_everywhere(self) -> int:
        """Users with a session in any process."""
        return len(self._by_user.keys() | self._nodes_of.keys())

    @property
    def count_everywhere(self) -> int:
        """Sessions in every process (the others' as last heard)."""
        return self.count + sum(len(devices) for users in self._elsewhere.values() for devices in users.values())

    # -- the other processes ----------------------------------------------------------------

    def _devices(self, user_id: int) -> list[int | None]:
        return [s.actor.device_id for s in self._by_user.get(user_id, {}).values()]

    def _heard_sessions(self, node: str, message: Message) -> None:
        self._set_elsewhere(node, int(message["user"]), message["devices"])

    def _heard_alive(self, node: str, message: Message) -> None:
        held = {int(user): devices for user, devices in message.get("sessions", ())}
        for user_id in set(self._elsewhere.get(node, {})) - held.keys():
            self._set_elsewhere(node, user_id, ())
        for user_id, devices in held.items():
            self._set_elsewhere(node, user_id, devices)

    def _heard_end(self, node: str, message: Message) -> None:
        self._end_here(make_error(message["code"], message["text"]), int(message["user"]), message["device"])

    def _gone(self, node: str) -> None:
        for user_id in list(self._elsewhere.get(node, {})):
            self._set_elsewhere(node, user_id, ())
        self._elsewhere.pop(node, None)

    def _set_elsewhere(self, node: str, user_id: int, devices) -> None:
        held = self._elsewhere.setdefault(node, {})
        devices = tuple(devices)
        if held.get(user_id, ()) == devices:
            return
        nodes = self._nodes_of[user_id]
        if devices:
            held[user_id] = devices
            nodes.add(node)
        else:
            held.pop(user_id, None)
            nodes.discard(node)
            if not nodes:
                del self._nodes_of[user_id]
        self._bus.publish("session.elsewhere", user_id)
