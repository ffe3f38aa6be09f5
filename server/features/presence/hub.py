"""Live presence: who is online/away/busy/on a break, and who should hear about changes.

A user is offline without sessions; otherwise their last chosen status (online by default).
Contacts hear changes: a session watches the people it asked about (`query_presence`) and
everyone it exchanges messages with. Watch lists are per session, bounded, and vanish with
the session, so presence costs nothing for people nobody is looking at.

Quiet hours (stored, see `quiet_hours.py`) put a connected user on a break while their window
lasts, unless they chose a status during it. The hub holds the quiet hours of connected users
only: `run()`, the feature's background task, reads them after a user's first login and wakes
at the next window boundary of anyone connected (and at least every `RECHECK` seconds) to start
and end those breaks; ending one sends `resync`, as a break chosen by hand does.

Across serve processes (`cluster.py`; the session registry knows where each user has sessions):
a process holding sessions of a user works out what others see of them (`_Shown`: status, text
and, on a break, who may still reach them) from their choice and their quiet hours, holds their
deliveries here to match, and tells the others when that changes (`presence`, and in every
announcement). A status choice travels with it (stamped with when it was made, the later one
wins), so each process holding the user's sessions works out the same; a process holding none
shows what it last heard from one that does, and holds their messages' senders to it. A changed
schedule (`quiet`) makes the processes holding the user's sessions read it again. A user is
offline when no process holds sessions of theirs, which includes a process gone silent.
"""

from __future__ import annotations

import functools
import logging
import math
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass

import trio

from corridor.protocol.messages import MessageEvent, PresenceEvent

from ...cluster import Message
from ...services import Services
from ...sessions import Session
from ..messaging.store import StoredMessage
from . import store
from .quiet_hours import Schedule, Window, clock_time

log = logging.getLogger("corridor.presence")

MAX_WATCHED = 5000
# Windows are wall-clock times but trio sleeps on a monotonic clock: looking again this often
# bounds how late a boundary is noticed after the system clock is stepped (NTP, an admin).
RECHECK = 60.0


@dataclass(frozen=True)
class _Choice:
    """A status the user chose, with its text and, for a break, who may still reach them; `at`
    (wall clock) and `node` (the process it was chosen on) order choices across processes."""

    status: str
    text: str = ""
    urgent_from: frozenset[str] = frozenset()
    at: float = -math.inf
    node: str = ""

    def to_wire(self) -> list:
        return [self.status, self.text, sorted(self.urgent_from), self.at, self.node]

    @classmethod
    def from_wire(cls, wire: list) -> _Choice:
        status, text, urgent_from, at, node = wire
        return cls(status, text, frozenset(urgent_from), float(at), node)


_ONLINE = _Choice("online")


@dataclass(frozen=True)
class _Shown:
    """What others see of a user, and on a break who may still reach them (`allowed`; None
    when not on a break)."""

    status: str
    text: str = ""
    allowed: frozenset[str] | None = None


_SHOWN_ONLINE = _Shown("online")
_SHOWN_OFFLINE = _Shown("offline")


@dataclass(frozen=True)
class _Quiet:
    """A connected user's quiet hours and where `now` stands in them. A status chosen during
    the current window, and after `not_before` (when these quiet hours were set), overrides
    them until the window ends."""

    schedule: Schedule
    window: Window
    not_before: float = -math.inf


@dataclass(frozen=True)
class _Heard:
    """What another process said it shows of a user; `order` says which was heard last."""

    shown: _Shown
    order: int


class PresenceHub:
    """In-memory presence state, driven by session and message events on the bus and by what
    the other processes say."""

    def __init__(self, services: Services):
        self._services = services
        self._sessions = services.sessions
        self._users = services.users
        self._cluster = services.sessions.cluster
        self._chosen: dict[int, _Choice] = {}  # users connected here or elsewhere
        self._quiet: dict[int, _Quiet] = {}  # users connected here
        self._unread: dict[int, float] = {}  # users connected here whose quiet hours to read → not_before
        self._wakeup = trio.Event()
        self._watchers: dict[int, dict[int, Session]] = defaultdict(dict)
        self._watching: dict[int, set[int]] = defaultdict(set)
        self._told: dict[int, tuple[str, str]] = {}  # watched users → what their watchers were last told
        self._published: dict[int, _Shown] = {}  # users connected here → what the others were last told
        self._heard: dict[int, dict[str, _Heard]] = {}  # user → node → what that process shows
        self._heard_order = 0
        services.bus.subscribe("session.started", self._started)
        services.bus.subscribe("session.ended", self._ended)
        services.bus.subscribe("session.elsewhere", self._apply)
        services.bus.subscribe("message.stored", self._messaged)
        services.bus.subscribe("message.arrived", self._arrived)
        self._cluster.on("presence", lambda node, message: self._take(node, message["entry"]))
        self._cluster.on("alive", self._heard_alive)
        self._cluster.on("quiet", self._heard_quiet)
        self._cluster.contributes(lambda: {"presence": self._entries()})

    def status(self, user_id: int) -> str:
        """The user's current status as others see it."""
        return self._shown(user_id).status

    def text(self, user_id: int) -> str:
        """The user's status text ("in a meeting until 3"), while they are connected."""
        return self._shown(user_id).text

    def set_status(self, user_id: int, status: str, text: str = "", urgent_from: frozenset[str] = frozenset()) -> None:
        """Record a chosen status and text, start or end a break, and tell the watchers and the
        other processes."""
        self._chosen[user_id] = _Choice(status, text, urgent_from, self._services.clock(), self._cluster.node)
        self._apply(user_id, chose=True)

    def set_quiet_hours(self, user_id: int, schedule: Schedule | None) -> None:
        """Apply quiet hours just stored for the user (None: cleared) at once, here and in the
        other processes holding sessions of theirs."""
        now = self._services.clock()
        self._cluster.publish("quiet", user=user_id, at=now)
        self._unread.pop(user_id, None)  # what was just stored is newer than a read in flight
        if not self._sessions.of_user(user_id):
            return  # read again at their next login
        if schedule is None:
            self._quiet.pop(user_id, None)
            self._apply(user_id)
        else:
            self._place(user_id, schedule, now, not_before=now)
        self._wakeup.set()

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
            if user_id not in self._told:
                shown = self._shown(user_id)
                self._told[user_id] = (shown.status, shown.text)

    async def run(self) -> None:
        """The background task: read the quiet hours of users who just logged in, and start and
        end their quiet-hours breaks at the window boundaries."""
        while True:
            self._wakeup = trio.Event()
            await self._read_unread()
            now = self._services.clock()
            wake = self._advance(now)
            with trio.move_on_after(wake - now):
                await self._wakeup.wait()

    # -- state ----------------------------------------------------------------------------

    def _shown(self, user_id: int) -> _Shown:
        if self._sessions.of_user(user_id):
            return self._worked_out(user_id)
        nodes = self._sessions.elsewhere(user_id)
        if not nodes:
            return _SHOWN_OFFLINE
        heard = [h for node, h in self._heard.get(user_id, {}).items() if node in nodes]
        return max(heard, key=lambda h: h.order).shown if heard else _SHOWN_ONLINE

    def _worked_out(self, user_id: int) -> _Shown:
        """What others see of a user connected here, from their choice and quiet hours."""
        choice = self._chosen.get(user_id, _ONLINE)
        own_break = choice.urgent_from if choice.status == "break" else None
        quiet = self._quiet.get(user_id)
        if quiet is not None and quiet.window.active and choice.at < max(quiet.window.since, quiet.not_before):
            allowed = quiet.schedule.urgent_from | (own_break or frozenset())
            if choice.status == "offline":  # appearing offline: hold messages without showing they are here
                return _Shown("offline", choice.text, allowed)
            return _Shown("break", choice.text or f"quiet hours until {clock_time(quiet.schedule.end)}", allowed)
        return _Shown(choice.status, choice.text, own_break)

    def _apply(self, user_id: int, chose: bool = False) -> None:
        """After anything that may change what the user shows: hold (or stop holding) their
        messages as it says, tell the other processes if this one holds their sessions, and
        tell the watchers here if what they see changed."""
        here = bool(self._sessions.of_user(user_id))
        if not here and not self._sessions.elsewhere(user_id):
            self._chosen.pop(user_id, None)  # offline everywhere: their next login starts afresh
        heard = self._heard.get(user_id)
        if heard is not None:
            for node in heard.keys() - self._sessions.elsewhere(user_id):
                del heard[node]
            if not heard:
                del self._heard[user_id]
        shown = self._shown(user_id)
        if shown.allowed is None:
            self._sessions.end_break(user_id)
        else:
            self._sessions.start_break(user_id, shown.allowed)
        if here and (chose or shown != self._published.get(user_id, _SHOWN_ONLINE)):
            self._published[user_id] = shown
            self._cluster.publish("presence", entry=self._entry(user_id, shown))
        watchers = self._watchers.get(user_id)
        if watchers and self._told.get(user_id) != (shown.status, shown.text):
            self._told[user_id] = (shown.status, shown.text)
            event = PresenceEvent(user=self._users.name_of(user_id), status=shown.status, text=shown.text)
            for session in list(watchers.values()):
                session.push(event)

    def _place(self, user_id: int, schedule: Schedule, now: float, not_before: float) -> None:
        """Keep the user's quiet hours with where `now` is in them, and apply them."""
        try:
            window = schedule.window(now)
        except zoneinfo.ZoneInfoNotFoundError:
            # The zone was valid when set; the server's time zone database lost it since.
            log.warning("quiet hours of user %d name unknown time zone %r; not applied", user_id, schedule.tz)
            self._quiet.pop(user_id, None)
        else:
            self._quiet[user_id] = _Quiet(schedule, window, not_before)
        self._apply(user_id)

    async def _read_unread(self) -> None:
        if not self._unread:
            return
        asked = dict(self._unread)
        try:
            found = await self._services.db.read(functools.partial(store.quiet_hours_of, user_ids=sorted(asked)))
        except Exception:  # either engine's error, or STORAGE_UNAVAILABLE: the next round retries
            log.exception("reading quiet hours failed; trying again within %g s", RECHECK)
            return
        now = self._services.clock()
        for user_id, not_before in asked.items():
            if self._unread.get(user_id) != not_before:
                continue  # logged out, or set new quiet hours, while this was read
            del self._unread[user_id]
            if user_id in found:
                self._place(user_id, found[user_id], now, not_before)
            elif self._quiet.pop(user_id, None) is not None:  # cleared in another process
                self._apply(user_id)

    def _advance(self, now: float) -> float:
        """Move on the users whose window boundary has passed; returns when to look again."""
        wake = now + RECHECK
        for user_id, quiet in list(self._quiet.items()):
            if quiet.window.boundary <= now:
                self._place(user_id, quiet.schedule, now, quiet.not_before)
            current = self._quiet.get(user_id)
            if current is not None:
                wake = min(wake, current.window.boundary)
        return wake

    # -- the other processes ----------------------------------------------------------------

    def _entry(self, user_id: int, shown: _Shown) -> list:
        """A user connected here, as the others are told: [id, status, text, allowed, choice]."""
        choice = self._chosen.get(user_id)
        allowed = None if shown.allowed is None else sorted(shown.allowed)
        return [user_id, shown.status, shown.text, allowed, None if choice is None else choice.to_wire()]

    def _entries(self) -> list[list]:
        """Every user connected here who is not simply online: the announcement's part."""
        entries = []
        for user_id in self._published.keys() | self._chosen.keys():
            if self._sessions.of_user(user_id):
                shown = self._worked_out(user_id)
                if shown != _SHOWN_ONLINE or user_id in self._chosen:
                    entries.append(self._entry(user_id, shown))
        return entries

    def _take(self, node: str, entry: list) -> None:
        user_id, status, text, allowed, choice = entry
        self._heard_order += 1
        shown = _Shown(status, text, None if allowed is None else frozenset(allowed))
        self._heard.setdefault(user_id, {})[node] = _Heard(shown, self._heard_order)
        if choice is not None and (self._sessions.of_user(user_id) or self._sessions.elsewhere(user_id)):
            theirs, ours = _Choice.from_wire(choice), self._chosen.get(user_id, _ONLINE)
            if (theirs.at, theirs.node) > (ours.at, ours.node):
                self._chosen[user_id] = theirs
        self._apply(user_id)

    def _heard_alive(self, node: str, message: Message) -> None:
        entries = {entry[0]: entry for entry in message.get("presence", ())}
        for user_id, heard in list(self._heard.items()):
            if node in heard and user_id not in entries:
                del heard[node]  # plainly online there now
                self._apply(user_id)
        for entry in entries.values():
            self._take(node, entry)

    def _heard_quiet(self, node: str, message: Message) -> None:
        user_id = int(message["user"])
        if self._sessions.of_user(user_id):
            self._unread[user_id] = float(message["at"])
            self._wakeup.set()

    # -- watchers and sessions --------------------------------------------------------------

    def _started(self, session: Session) -> None:
        user_id = session.actor.user_id
        if len(self._sessions.of_user(user_id)) == 1:
            if not self._sessions.elsewhere(user_id):
                self._chosen.pop(user_id, None)  # a status lasts while one of their devices is connected
            self._unread[user_id] = -math.inf
            self._wakeup.set()
            self._apply(user_id)

    def _ended(self, session: Session) -> None:
        for user_id in self._watching.pop(session.id, ()):
            watchers = self._watchers.get(user_id)
            if watchers is not None:
                watchers.pop(session.id, None)
                if not watchers:
                    del self._watchers[user_id]
                    self._told.pop(user_id, None)
        user_id = session.actor.user_id
        if not self._sessions.of_user(user_id):
            # The copy of their quiet hours is read again at their next login here.
            self._quiet.pop(user_id, None)
            self._unread.pop(user_id, None)
            self._published.pop(user_id, None)
            self._apply(user_id)

    def _messaged(self, message: StoredMessage) -> None:
        if message.recipient_id is None or message.recipient_id == message.sender_id:
            return
        for a, b in ((message.sender_id, message.recipient_id), (message.recipient_id, message.sender_id)):
            for session in self._sessions.of_user(a):
                self.watch(session, [b])

    def _arrived(self, delivered: tuple[Session, MessageEvent]) -> None:
        session, event = delivered
        other = self._users.by_name(event.sender if event.recipient == session.actor.username else event.recipient)
        if other is not None:
            self.watch(session, [other.id])
