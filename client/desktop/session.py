"""The desktop's link to the server: one `Client`, kept connected, its events turned into Qt
signals, and the employee's actions run as trio tasks.

How it works. `run()` is the trio side of the window (started in guest mode, `guest.py`). It
opens a `Client` and, when the server cannot be reached at all (the laptop started before the
network), keeps trying with a growing delay; once connected, the client library reconnects by
itself and reports each change of the link through `on_link`, which becomes `link_changed`.

Sending never waits for the network. `send_text()` gives the message its id at once and the
window shows it as pending; with a client, the library's `send()` puts it in the profile's
outbox and retries it across reconnects; with none yet, it goes straight into that outbox,
which the client resends when it first connects. Either way the server's answer arrives later
as `sent` (or `failed`), and the message itself comes back through the event stream with the
same `msg_id`, so the window replaces the pending line instead of showing it twice. Closing
the window mid-send loses nothing: the outbox is on disk.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio
from PySide6.QtCore import QObject, Signal

from corridor.protocol.errors import CorridorError, make_error
from corridor.protocol.messages import (
    DeliveredEvent,
    GroupGet,
    GroupHistory,
    GroupList,
    MarkRead,
    MessageEvent,
    NoticeEvent,
    NoticeInbox,
    NoticeRead,
    NoticeReadEvent,
    PresenceEvent,
    QuietHoursGet,
    QuietHoursSet,
    ReadEvent,
    ReadReceipts,
    Typing,
    TypingEvent,
    Unread,
)

from ..client import FATAL, GROUP_PREFIX, Client
from ..directory import search_directory, sync_directory
from ..profile import Profile
from ..transfers import download, send_file
from .guest import Tasks

log = logging.getLogger("corridor.desktop")

RETRY = (0.5, 10.0)  # first and longest wait between attempts to reach an unreachable server
PRESENCE_BATCH = 1000  # a query_presence holds at most this many people


def group_target(group: int) -> str:
    """The target naming a group, as the outbox does."""
    return f"{GROUP_PREFIX}{group}"


def is_group(target: str) -> bool:
    """Whether a target names a group rather than a person."""
    return target.startswith(GROUP_PREFIX)


def group_id(target: str) -> int:
    """The group a group target names."""
    return int(target[len(GROUP_PREFIX) :])


class Session(QObject):
    """The connection and every request the window makes, on trio's side of the event loop."""

    # "connecting" (never connected yet), "online", "offline" (reconnecting), "failed" (given up)
    link_changed = Signal(str, str)
    logged_in = Signal(object)  # LoginResult, at each (re)connection
    message = Signal(object)  # MessageEvent
    sent = Signal(str, object)  # msg_id, SendResult
    failed = Signal(str, str)  # msg_id, why
    presence = Signal(str, str, str)  # user, status, text
    read = Signal(object)  # ReadEvent
    delivered = Signal(object)  # DeliveredEvent
    typing = Signal(str)  # user
    notice = Signal(object)  # NoticeEvent
    notice_read = Signal(object)  # NoticeReadEvent
    unread = Signal(object)  # UnreadResult
    directory_changed = Signal()
    groups_changed = Signal(object)  # GroupListResult
    progress = Signal(str, int, int)  # msg_id, bytes done, total
    error = Signal(str)  # something the user asked for could not be done

    def __init__(self, profile: Profile, tasks: Tasks, *, interfaces: list[str] | None = None, discover: bool = True):
        super().__init__()
        self.profile = profile
        self.tasks = tasks
        self.me = profile.credential().user
        self.interfaces = interfaces
        self.discover = discover
        self.client: Client | None = None
        self.state = "connecting"
        self._watched: set[str] = set()

    # -- the trio side ----------------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected until cancelled (or until the server refuses this device for good)."""
        delay = RETRY[0]
        while True:
            try:
                options = {"discover": self.discover, "interfaces": self.interfaces, "on_link": self._on_link}
                async with Client.open(self.profile, backoff=(0.2, 5.0), **options) as client:
                    self.client = client
                    delay = RETRY[0]
                    self._on_link(True, "")
                    async for event in client.events():
                        self._dispatch(event)
            except CorridorError as exc:
                self.client = None
                if exc.code in FATAL:
                    self._set_state("failed", exc.message)
                    return
                self._set_state("offline" if self.state != "connecting" else "connecting", exc.message)
            await trio.sleep(delay)
            delay = min(delay * 2, RETRY[1])

    def _set_state(self, state: str, why: str) -> None:
        self.state = state
        self.link_changed.emit(state, why)

    def _on_link(self, up: bool, why: str) -> None:
        if not up:
            self._set_state("offline", why)
            return
        if self.client is None or self.state == "online":
            return  # the first link is reported once Client.open has returned
        self._set_state("online", "")
        self.logged_in.emit(self.client.login)
        self.spawn(self._refresh)

    async def _refresh(self) -> None:
        """What a new connection needs: unread counts, the directory, groups, presence."""
        client = self._client()
        self.unread.emit(await client.request(Unread()))
        report = await sync_directory(client)
        if report.people or report.departments:
            self.directory_changed.emit()
        self.groups_changed.emit(await client.request(GroupList()))
        await self._watch(sorted(self._watched))

    def _dispatch(self, event: object) -> None:
        if isinstance(event, MessageEvent):
            self.message.emit(event)
        elif isinstance(event, PresenceEvent):
            self.presence.emit(event.user, event.status, event.text)
        elif isinstance(event, ReadEvent):
            self.read.emit(event)
        elif isinstance(event, DeliveredEvent):
            self.delivered.emit(event)
        elif isinstance(event, TypingEvent):
            self.typing.emit(event.user)
        elif isinstance(event, NoticeEvent):
            self.notice.emit(event)
        elif isinstance(event, NoticeReadEvent):
            self.notice_read.emit(event)

    def _client(self) -> Client:
        if self.client is None:
            raise make_error("CONNECTION_LOST", "not connected to the server yet")
        return self.client

    def spawn(
        self, fn: Callable[..., Awaitable[object]], *args: object, on_result: Callable[[object], None] | None = None
    ) -> None:
        """Run a request as a trio task; its result goes to `on_result`, a Corridor error to
        the `error` signal (the window shows it), and nothing is raised into the event loop."""

        async def task() -> None:
            try:
                result = await fn(*args)
            except CorridorError as exc:
                self.error.emit(exc.message)
                return
            if on_result is not None:
                on_result(result)

        self.tasks.start(task)

    def request(self, message: object, on_result: Callable[[object], None] | None = None) -> None:
        """Send one request when connected; see `spawn`."""

        async def ask() -> object:
            return await self._client().request(message)

        self.spawn(ask, on_result=on_result)

    # -- sending ----------------------------------------------------------------------------

    def send_text(self, target: str, text: str) -> str:
        """Send a message to a username or `#GROUP`; returns its id at once (see the module)."""
        msg_id = uuid.uuid4().hex
        if self.client is None:
            self.profile.outbox_add(msg_id, target, text)
            return msg_id
        self.tasks.start(self._send, self.client, target, text, msg_id)
        return msg_id

    async def _send(self, client: Client, target: str, text: str, msg_id: str) -> None:
        try:
            if is_group(target):
                result = await client.send_group(group_id(target), text, msg_id=msg_id)
            else:
                result = await client.send(target, text, msg_id=msg_id)
        except CorridorError as exc:
            self.failed.emit(msg_id, exc.message)
            return
        self.sent.emit(msg_id, result)

    def send_file(self, target: str, path: Path) -> str:
        """Upload and send a file; `progress` reports it, `sent`/`failed` end it."""
        msg_id = uuid.uuid4().hex

        async def transfer() -> None:
            try:
                result = await send_file(
                    self._client(),
                    target,
                    path,
                    msg_id=msg_id,
                    progress=lambda done, total: self.progress.emit(msg_id, done, total),
                )
            except (CorridorError, OSError) as exc:
                self.failed.emit(msg_id, getattr(exc, "message", None) or str(exc))
                return
            self.sent.emit(msg_id, result)
            # The server does not echo a message to the connection that sent it, and the library
            # puts only its own text sends into the event stream: without this the window would
            # show the file as a pending line (no size, no thumbnail) until the next sync.
            try:
                stored = await self._history(target, result.seq + 1, 1)
            except CorridorError:
                return  # the next sync brings it
            for message in stored.messages:
                if message.msg_id == msg_id:
                    self.message.emit(message)

        self.tasks.start(transfer)
        return msg_id

    def fetch_file(self, file_id: str, dest: Path, on_result: Callable[[object], None], *, thumbnail: bool = False) -> None:
        """Download a file (or its thumbnail) into `dest`, overwriting an earlier copy."""

        async def fetch() -> Path:
            return await download(self._client(), file_id, dest, thumbnail=thumbnail, overwrite=True)

        self.spawn(fetch, on_result=on_result)

    # -- reading ----------------------------------------------------------------------------

    def history(self, target: str, before: int | None, on_result: Callable[[object], None], limit: int = 50) -> None:
        """Load the messages of a conversation before `before` (the latest when None)."""

        self.spawn(self._history, target, before, limit, on_result=on_result)

    async def _history(self, target: str, before: int | None, limit: int) -> object:
        client = self._client()
        if is_group(target):
            return await client.request(GroupHistory(group=group_id(target), before=before, limit=limit))
        return await client.history(target, before=before, limit=limit)

    def mark_read(self, conversation: int, seq: int) -> None:
        """Tell the server (and so my other devices and a 1:1 peer) that I read up to `seq`."""
        if self.client is not None:
            self.request(MarkRead(conversation=conversation, seq=seq))

    def read_receipts(self, conversation: int, seq: int, on_result: Callable[[object], None]) -> None:
        """Who has read message `seq` (and who has it on a device, unread)."""
        self.request(ReadReceipts(conversation=conversation, seq=seq), on_result)

    def typing_to(self, user: str) -> None:
        """Tell `user` that I am typing to them."""
        if self.client is not None:
            self.request(Typing(to=user))

    def search(self, query: str, on_result: Callable[[object], None]) -> None:
        """People the server finds (by name, pinyin, initials, title or department)."""

        async def find() -> object:
            return await search_directory(self._client(), query, limit=50)

        self.spawn(find, on_result=on_result)

    def watch(self, users: list[str]) -> None:
        """Follow these people's presence (again after every reconnect)."""
        new = sorted(set(users) - self._watched - {self.me})
        self._watched.update(new)
        if new and self.client is not None:
            self.spawn(self._watch, new)

    async def _watch(self, users: list[str]) -> None:
        for start in range(0, len(users), PRESENCE_BATCH):
            statuses = await self._client().query_presence(users[start : start + PRESENCE_BATCH])
            for user, status in statuses.items():
                self.presence.emit(user, status, "")

    # -- my status, groups and notices ------------------------------------------------------

    def set_presence(self, status: str, text: str = "") -> None:
        """Set my status: online, away, busy, break (or offline to appear offline)."""

        async def set_it() -> None:
            await self._client().set_presence(status, text)

        self.spawn(set_it)

    def quiet_hours(self, on_result: Callable[[object], None]) -> None:
        """My quiet hours (QuietHoursResult)."""
        self.request(QuietHoursGet(), on_result)

    def set_quiet_hours(self, start: str, end: str, tz: str, on_result: Callable[[object], None]) -> None:
        """Set a daily quiet-hours window (a break between `start` and `end`, local `tz`), or turn
        them off with empty `start`/`end`."""
        if not start:
            self.request(QuietHoursSet(off=True), on_result)
        else:
            self.request(QuietHoursSet(start=start, end=end, tz=tz), on_result)

    def group_info(self, group: int, on_result: Callable[[object], None]) -> None:
        """A group's name, announcement and members (GroupInfo)."""
        self.request(GroupGet(group=group), on_result)

    def groups(self) -> None:
        """Ask for my groups again (`groups_changed` brings them): one I was just added to."""
        self.request(GroupList(), self.groups_changed.emit)

    def notices(self, on_result: Callable[[object], None]) -> None:
        """The broadcast notices inbox, the latest first."""
        self.request(NoticeInbox(limit=100), on_result)

    def notice_seen(self, notice: int) -> None:
        """Mark a notice read."""
        self.request(NoticeRead(notice=notice))
