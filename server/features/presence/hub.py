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
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass

import trio

from corridor.protocol.messages import PresenceEvent

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
    """A status the user chose, with its text and, for a break, who may still reach them."""

    status: str
    text: str = ""
    urgent_from: frozenset[str] = frozenset()


_ONLINE = _Choice("online")


@dataclass(frozen=True)
class _Quiet:
    """A connected user's quiet hours, where `now` stands in them, and whether they chose a
    status during the current window (which then no longer puts them on a break)."""

    schedule: Schedule
    window: Window
    overridden: bool = False


class PresenceHub:
    """In-memory presence state, driven by session and message events on the bus."""

    def __init__(self, services: Services):
        self._services = services
        self._sessions = services.sessions
        self._users = services.users
        self._chosen: dict[int, _Choice] = {}
        self._quiet: dict[int, _Quiet] = {}
        self._unread: set[int] = set()  # connected users whose quiet hours are not read yet
        self._wakeup = trio.Event()
        self._watchers: dict[int, dict[int, Session]] = defaultdict(dict)
        self._watching: dict[int, set[int]] = defaultdict(set)
        services.bus.subscribe("session.started", self._started)
        services.bus.subscribe("session.ended", self._ended)
        services.bus.subscribe("message.stored", self._messaged)

    def status(self, user_id: int) -> str:
        """The user's current status as others see it."""
        return self._effective(user_id)[0]

    def text(self, user_id: int) -> str:
        """The user's status text ("in a meeting until 3"), while they are connected."""
        return self._effective(user_id)[1]

    def set_status(self, user_id: int, status: str, text: str = "", urgent_from: frozenset[str] = frozenset()) -> None:
        """Record a chosen status and text, start or end a break, and tell the watchers."""
        before = self._shown(user_id)
        self._chosen[user_id] = _Choice(status, text, urgent_from)
        quiet = self._quiet.get(user_id)
        if quiet is not None and quiet.window.active:
            self._quiet[user_id] = _Quiet(quiet.schedule, quiet.window, overridden=True)
        self._settle(user_id, before)

    def set_quiet_hours(self, user_id: int, schedule: Schedule | None) -> None:
        """Apply quiet hours just stored for the user (None: cleared) at once."""
        self._unread.discard(user_id)  # what was just stored is newer than a read in flight
        if not self._sessions.of_user(user_id):
            return  # read again at their next login
        if schedule is None:
            before = self._shown(user_id)
            self._quiet.pop(user_id, None)
            self._settle(user_id, before)
        else:
            self._place(user_id, schedule, self._services.clock(), overridden=False)
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

    def _effective(self, user_id: int) -> tuple[str, str, frozenset[str] | None]:
        """(status, text) as others see them and, on a break, who may still reach the user
        urgently (None when not on a break)."""
        if not self._sessions.of_user(user_id):
            return "offline", "", None
        choice = self._chosen.get(user_id, _ONLINE)
        own_break = choice.urgent_from if choice.status == "break" else None
        quiet = self._quiet.get(user_id)
        if quiet is not None and quiet.window.active and not quiet.overridden:
            allowed = quiet.schedule.urgent_from | (own_break or frozenset())
            if choice.status == "offline":  # appearing offline: hold messages without showing they are here
                return "offline", choice.text, allowed
            return "break", choice.text or f"quiet hours until {clock_time(quiet.schedule.end)}", allowed
        return choice.status, choice.text, own_break

    def _shown(self, user_id: int) -> tuple[str, str]:
        status, text, _ = self._effective(user_id)
        return status, text

    def _settle(self, user_id: int, before: tuple[str, str]) -> None:
        """Make the session registry hold (or stop holding) messages as the user's state says,
        and tell the watchers if what they see changed."""
        status, text, allowed = self._effective(user_id)
        if allowed is None:
            self._sessions.end_break(user_id)
        else:
            self._sessions.start_break(user_id, allowed)
        if (status, text) != before:
            self._announce(user_id)

    def _place(self, user_id: int, schedule: Schedule, now: float, overridden: bool) -> None:
        """Keep the user's quiet hours with where `now` is in them, and apply them."""
        before = self._shown(user_id)
        try:
            window = schedule.window(now)
        except zoneinfo.ZoneInfoNotFoundError:
            # The zone was valid when set; the server's time zone database lost it since.
            log.warning("quiet hours of user %d name unknown time zone %r; not applied", user_id, schedule.tz)
            self._quiet.pop(user_id, None)
        else:
            self._quiet[user_id] = _Quiet(schedule, window, overridden and window.active)
        self._settle(user_id, before)

    async def _read_unread(self) -> None:
        if not self._unread:
            return
        user_ids = sorted(self._unread)
        try:
            found = await self._services.db.read(functools.partial(store.quiet_hours_of, user_ids=user_ids))
        except sqlite3.Error:
            log.exception("reading quiet hours failed; trying again within %g s", RECHECK)
            return
        now = self._services.clock()
        for user_id in user_ids:
            if user_id not in self._unread:
                continue  # logged out, or set new quiet hours, while this was read
            self._unread.discard(user_id)
            if user_id in found:
                # A status chosen since this login was chosen inside the window, if one is open.
                self._place(user_id, found[user_id], now, overridden=user_id in self._chosen)

    def _advance(self, now: float) -> float:
        """Move on the users whose window boundary has passed; returns when to look again."""
        wake = now + RECHECK
        for user_id, quiet in list(self._quiet.items()):
            if quiet.window.boundary <= now:
                # A new window, or none: a status chosen during the last one no longer counts.
                self._place(user_id, quiet.schedule, now, overridden=False)
            current = self._quiet.get(user_id)
            if current is not None:
                wake = min(wake, current.window.boundary)
        return wake

    # -- watchers and sessions --------------------------------------------------------------

    def _announce(self, user_id: int) -> None:
        event = PresenceEvent(user=self._users.name_of(user_id), status=self.status(user_id), text=self.text(user_id))
        for session in list(self._watchers.get(user_id, {}).values()):
            session.push(event)

    def _started(self, session: Session) -> None:
        user_id = session.actor.user_id
        if len(self._sessions.of_user(user_id)) == 1:
            self._forget(user_id)
            self._unread.add(user_id)
            self._wakeup.set()

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
        # A status (and a break) lasts while one of the user's devices is connected; so does
        # the copy of their quiet hours, which is read again at their next login.
        self._chosen.pop(user_id, None)
        self._quiet.pop(user_id, None)
        self._unread.discard(user_id)
        self._sessions.end_break(user_id)
        self._announce(user_id)

    def _messaged(self, message: StoredMessage) -> None:
        if message.recipient_id is None or message.recipient_id == message.sender_id:
            return
        for a, b in ((message.sender_id, message.recipient_id), (message.recipient_id, message.sender_id)):
            for session in self._sessions.of_user(a):
                self.watch(session, [b])
