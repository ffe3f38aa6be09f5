"""The Corridor client library: stays connected, sends durably, delivers in order.

How it works. `Client.open(profile)` connects (TLS pinned to the profile's CA), says hello and
logs in with the device token; a supervisor task then keeps that true, reconnecting with
exponential backoff whenever the link drops. `send()` puts the message in the profile's
outbox *before* sending and removes it only after the durable ack, retrying the same message
id across reconnects — the server turns a repeat into the original ack, so no one sees a
duplicate. After every (re)connect the outbox is resent.

Receiving (`receive=True`) is gap-free by construction: the client tracks, per conversation,
the last sequence number it has handed to the application. On connect it asks the server for
everything after those cursors (`sync`, paged). A live message with the next seq is delivered
at once; one that is already known is dropped; one that skips ahead triggers a sync, which
fills the gap in order. So replays, reorderings and reconnects can never show a message twice
or lose one.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio

from corridor.protocol.errors import CorridorError, make_error, single_exception
from corridor.protocol.messages import (
    Cursor,
    DeliveredMark,
    Event,
    GroupSend,
    History,
    HistoryResult,
    Login,
    LoginResult,
    MarkDelivered,
    MessageEvent,
    NoticeEvent,
    NoticeInbox,
    Ping,
    PresenceEvent,
    QueryPresence,
    Request,
    ResyncEvent,
    Send,
    SendResult,
    SetPresence,
    Sync,
)
from corridor.protocol.schema import Record

from .discovery import discover
from .profile import Credential, Profile
from .transport import Answer, Channel, open_tls

log = logging.getLogger("corridor.client")

RETRYABLE = frozenset(
    {"CONNECTION_LOST", "SHUTTING_DOWN", "INTERNAL", "TOO_MANY_REQUESTS", "SLOW_CONSUMER", "TIMEOUT", "STORAGE_UNAVAILABLE"}
)
# After these the request may or may not have been carried out (only TOO_MANY_REQUESTS is
# refused before the server looks at it).
UNKNOWN_OUTCOME = RETRYABLE - {"TOO_MANY_REQUESTS"}
# After these a message stays in the outbox, to be resent on the next connection: a full disk
# on the server is not retried at once (it lasts until an admin frees space) but is not final.
KEEP_IN_OUTBOX = RETRYABLE | {"STORAGE_FULL"}
MAX_FAULT_RETRIES = 3
FATAL = frozenset({"LOGIN_FAILED", "UNTRUSTED_SERVER", "UNSUPPORTED_VERSION", "NOT_AUTHENTICATED", "ACCOUNT_DISABLED"})
SYNC_PAGE = 500
DISCOVERY_SECONDS = 2.0
APP_BUFFER = 1000
DELIVERED_BATCH = 0.2  # seconds: messages handed over meanwhile are reported in one request
DELIVERED_MAX_MARKS = 1000
FLUSH_SECONDS = 1.0


GROUP_PREFIX = "#"


def _send_request(target: str, msg_id: str, text: str, urgent: bool = False) -> Send | GroupSend:
    if target.startswith(GROUP_PREFIX):
        return GroupSend(group=int(target[len(GROUP_PREFIX) :]), msg_id=msg_id, text=text)
    return Send(to=target, msg_id=msg_id, text=text, urgent=urgent)


class Client:
    """A logged-in, self-reconnecting client for one profile."""

    def __init__(
        self,
        profile: Profile,
        *,
        address: tuple[str, int] | None = None,
        discover: bool = False,
        interfaces: list[str] | None = None,
        receive: bool = True,
        connect_timeout: float = 10.0,
        ping_interval: float = 60.0,
        backoff: tuple[float, float] = (0.1, 5.0),
        on_link: Callable[[bool, str], None] | None = None,
    ):
        self.profile = profile
        self.credential: Credential = profile.credential()
        self.address = address or (self.credential.host, self.credential.port)
        self.discover = discover
        self.interfaces = interfaces
        self.receive = receive
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        self.backoff = backoff
        # Told (True, "") when a connection is logged in and (False, why) when it drops or a
        # reconnect fails: what a window shows as its connection state.
        self.on_link = on_link or (lambda up, why: None)
        self.login: LoginResult | None = None
        self.connects = 0
        self._channel: Channel | None = None
        self._connected = trio.Event()
        self._fatal: CorridorError | None = None
        self._queued = profile.cursors()
        self._app_send, self._app_receive = trio.open_memory_channel[Event](APP_BUFFER)
        self._notices_seen: set[int] = set()
        self._delivered: dict[int, int] = {}  # conversation → last message from others handed over
        self._delivered_waiting = trio.Event()

    @classmethod
    @asynccontextmanager
    async def open(cls, profile: Profile, **options) -> AsyncIterator[Client]:
        """Connect and log in (raising the first failure), then stay connected until exit."""
        client = cls(profile, **options)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(client._supervise)
                if client.receive:
                    nursery.start_soon(client._report_delivered)
                try:
                    yield client
                finally:
                    await client._flush_delivered()
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # Giving up, the supervisor raises the fatal error and so do the application's
            # waiting calls (events(), requests): that is one error, not several.
            _, others = group.split(lambda exc: exc is client._fatal)
            if others is None:
                raise client._fatal from None
            raise single_exception(group) from None

    # -- connection management -------------------------------------------------------------

    async def _connect(self) -> Channel:
        cred = self.credential
        try:
            stream = await open_tls(self.address[0], self.address[1], self.profile.ca_pem(), cred.tls_host, self.connect_timeout)
        except CorridorError as exc:
            if not self.discover or exc.code != "CONNECTION_LOST":
                raise
            stream = await self._discover_and_connect(exc)
        return Channel(stream)

    async def _discover_and_connect(self, unreachable: CorridorError) -> trio.SSLStream:
        """Find the organisation's server by mDNS when the known address does not answer.

        The advertised CA fingerprint only picks candidates; each connection is still verified
        against the pinned CA, so a spoofed advertisement leads nowhere."""
        cred = self.credential
        found = await discover(DISCOVERY_SECONDS, interfaces=self.interfaces)
        for server in found:
            if server.ca_sha256 not in (None, cred.ca_sha256):
                continue
            for host in server.addresses:
                try:
                    stream = await open_tls(host, server.port, self.profile.ca_pem(), cred.tls_host, self.connect_timeout)
                except CorridorError as exc:
                    log.info("discovered %s:%d is not usable: %s", host, server.port, exc.message)
                    continue
                log.info("%s:%d did not answer; discovered the server at %s:%d", *self.address, host, server.port)
                self.address = (host, server.port)
                return stream
        raise unreachable

    async def _supervise(self, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        delay = self.backoff[0]
        first = True
        while True:
            try:
                channel = await self._connect()
                try:
                    async with trio.open_nursery() as link:
                        link.start_soon(channel.run)
                        await self._log_in(channel)
                        delay = self.backoff[0]
                        if first:
                            first = False
                            task_status.started()
                        link.start_soon(self._pinger, channel)
                        await self._serve_link(channel)
                        link.cancel_scope.cancel()
                except BaseExceptionGroup as group:
                    # A refused login or a failed sync surfaces wrapped by the nursery; unwrapped,
                    # it takes the same backoff-or-give-up path as a failed connect.
                    raise single_exception(group) from None
                if channel.error is not None and channel.error.code in FATAL:
                    # The server ended the session for good (ACCOUNT_DISABLED): reconnecting
                    # would only be refused, and the reason would be lost as LOGIN_FAILED.
                    raise channel.error
                why = channel.error.message if channel.error else "closed"
                log.info("disconnected: %s", why)
                self.on_link(False, why)
            except CorridorError as exc:
                if first or exc.code in FATAL:
                    self._give_up(exc)
                    raise
                log.info("reconnect failed (%s); retrying in about %.2f s", exc.message, delay)
                self.on_link(False, exc.message)
                delay = min(delay * 2, self.backoff[1])
            # Jitter spreads a whole office's reconnects after a server restart.
            await trio.sleep(delay * random.uniform(0.5, 1.0))

    async def _log_in(self, channel: Channel) -> None:
        try:
            await channel.handshake()
            self.login = await channel.request(Login(user=self.credential.user, device_token=self.credential.device_token))
        except CorridorError:
            await channel.aclose()
            raise

    async def _serve_link(self, channel: Channel) -> None:
        """Use one logged-in connection until it ends."""
        self.connects += 1
        self._channel = channel
        self._connected.set()
        self.on_link(True, "")
        try:
            await self._resend_outbox(channel)
            if self.receive:
                await self._deliver(channel)
            else:
                async for _ in channel.events:
                    pass  # a send-only client ignores pushes but must keep draining them
        finally:
            self._channel = None
            self._connected = trio.Event()

    def _give_up(self, error: CorridorError) -> None:
        self._fatal = error
        self._connected.set()
        self._app_send.close()

    async def _wait_channel(self) -> Channel:
        while True:
            await self._connected.wait()
            if self._fatal is not None:
                raise self._fatal
            if self._channel is not None:
                return self._channel
            await trio.sleep(0)

    async def _pinger(self, channel: Channel) -> None:
        while True:
            await trio.sleep(self.ping_interval)
            try:
                await channel.request(Ping())
            except CorridorError:
                return

    async def request(self, message: Request) -> Record:
        """Send a request on the current connection, waiting through reconnects.

        A request whose outcome is unknown (the link dropped before the answer) is sent again
        only if it is idempotent; otherwise the caller gets the error and decides. A server
        fault (INTERNAL) is retried a few times, then reported."""
        result, _ = await self._request(message)
        return result

    async def submit(self, message: Request) -> Answer:
        """Write a request on the current connection (waiting for one) and return its answer
        without waiting for it, so that requests submitted one after another are handled in
        that order: a window of them in flight hides the round trip.

        Unlike `request()`, nothing is sent again: if the link drops first, awaiting the answer
        raises CONNECTION_LOST, and the caller resends from where the server is."""
        channel = await self._wait_channel()
        return await channel.submit(message)

    async def _request(self, message: Request) -> tuple[Record, Channel]:
        faults = 0
        while True:
            channel = await self._wait_channel()
            try:
                return await channel.request(message), channel
            except CorridorError as exc:
                if exc.code not in RETRYABLE or (exc.code in UNKNOWN_OUTCOME and not message.IDEMPOTENT):
                    raise
                faults += exc.code == "INTERNAL"
                if faults >= MAX_FAULT_RETRIES:
                    raise
                if exc.retry_after:
                    await trio.sleep(exc.retry_after)
                elif channel is self._channel:
                    await trio.sleep(self.backoff[0])

    async def aclose_connection(self) -> None:
        """Drop the current connection (the supervisor reconnects); for tests and diagnostics."""
        if self._channel is not None:
            await self._channel.aclose()

    # -- sending ---------------------------------------------------------------------------

    async def send(self, to: str, text: str, *, msg_id: str | None = None, urgent: bool = False) -> SendResult:
        """Send a 1:1 message and return once the server has stored it durably (`held` in the
        result: the recipient is on a break)."""
        if to.startswith(GROUP_PREFIX):  # never a username: refuse it before it enters the outbox
            raise make_error("NO_SUCH_USER", f"{to!r} is not a username (send to a group with send_group)")
        return await self._send(to.lower(), text, msg_id or uuid.uuid4().hex, urgent)

    async def send_group(self, group: int, text: str, *, msg_id: str | None = None) -> SendResult:
        """Send to a group and return once the server has stored it durably."""
        return await self._send(f"{GROUP_PREFIX}{group}", text, msg_id or uuid.uuid4().hex)

    async def _send(self, target: str, text: str, msg_id: str, urgent: bool = False) -> SendResult:
        # The outbox names a group "#ID": no username starts with "#".
        self.profile.outbox_add(msg_id, target, text)
        try:
            result, channel = await self._request(_send_request(target, msg_id, text, urgent))
        except CorridorError as exc:
            if exc.code not in KEEP_IN_OUTBOX:
                self.profile.outbox_remove(msg_id)  # refused for good: retrying cannot help
            raise
        self.profile.outbox_remove(msg_id)
        if self.receive and not result.duplicate:
            # The server does not echo a message to the connection that sent it; it enters the
            # event stream here, through the same in-order, no-duplicates path as pushes.
            mine = MessageEvent(
                conversation=result.conversation,
                seq=result.seq,
                sender=self.credential.user,
                recipient="" if target.startswith(GROUP_PREFIX) else target,
                msg_id=msg_id,
                text=text,
                ts=result.ts,
            )
            channel.inject(mine)
        return result

    async def _resend_outbox(self, channel: Channel) -> None:
        for entry in self.profile.outbox():
            try:
                await channel.request(_send_request(entry.recipient, entry.msg_id, entry.text))
            except ValueError:
                log.warning("dropping message %s with an unusable target %r", entry.msg_id, entry.recipient)
            except CorridorError as exc:
                if exc.code in KEEP_IN_OUTBOX:
                    return
                log.warning("dropping unsendable message %s to %s: %s", entry.msg_id, entry.recipient, exc.message)
            self.profile.outbox_remove(entry.msg_id)

    # -- receiving -------------------------------------------------------------------------

    async def _emit(self, event: Event) -> None:
        if isinstance(event, MessageEvent):
            self._queued[event.conversation] = event.seq
        if isinstance(event, NoticeEvent):
            if event.id in self._notices_seen:
                return
            self._notices_seen.add(event.id)
        await self._app_send.send(event)

    async def _sync(self, channel: Channel, only: tuple[int, ...] = ()) -> set[str]:
        """Deliver everything after the cursors (in the `only` conversations, if given); returns
        the people seen in those messages."""
        peers: set[str] = set()
        while True:
            after = tuple(Cursor(conversation=c, seq=s) for c, s in self._queued.items() if not only or c in only)
            result = await channel.request(Sync(after=after, limit=SYNC_PAGE, conversations=only))
            for start in result.starts:  # a group joined later: nothing before this is ours to see
                self._queued[start.conversation] = max(self._queued.get(start.conversation, 0), start.seq)
            for message in result.messages:
                if message.seq == self._queued.get(message.conversation, 0) + 1:
                    await self._emit(MessageEvent(**{f.name: getattr(message, f.name) for f in dataclasses.fields(message)}))
                    peers.update((message.sender, message.recipient))
            if not result.more:
                return peers

    async def _unread_notices(self, channel: Channel) -> None:
        # Notices sent while this device was away or on a break: once per client, like live ones.
        for notice in reversed((await channel.request(NoticeInbox(unread=True, limit=500))).notices):
            await self._emit(NoticeEvent(**{f.name: getattr(notice, f.name) for f in dataclasses.fields(notice)}))

    async def _deliver(self, channel: Channel) -> None:
        try:
            peers = await self._sync(channel) - {self.credential.user, ""}
            await self._unread_notices(channel)
            if peers:
                statuses = await channel.request(QueryPresence(users=tuple(sorted(peers))[:1000]))
                for status in statuses.statuses:
                    await self._emit(PresenceEvent(user=status.user, status=status.status))
            async for event in channel.events:
                if isinstance(event, ResyncEvent):  # a break ended: fetch what was held
                    await self._sync(channel)
                    await self._unread_notices(channel)
                    continue
                if not isinstance(event, MessageEvent):
                    await self._emit(event)
                    continue
                known = self._queued.get(event.conversation, 0)
                if event.seq == known + 1:
                    await self._emit(event)
                elif event.seq > known + 1:
                    # Fill this conversation's gap only: others may be held by a break.
                    await self._sync(channel, only=(event.conversation,))
        except CorridorError as exc:
            if exc.code not in RETRYABLE:
                raise

    async def events(self) -> AsyncIterator[Event]:
        """Messages (in order, each once) and presence changes, across reconnects.

        A message's cursor is saved as it is handed over, so the next session starts after it."""
        if not self.receive:
            raise RuntimeError("this client was opened with receive=False")
        async for event in self._app_receive:
            if isinstance(event, MessageEvent):
                self.profile.advance_cursor(event.conversation, event.seq)
                # 1:1 only: in a group nobody is shown it, and it would cost the server a write
                # per member for every message.
                if event.recipient and event.sender != self.credential.user:
                    self._delivered[event.conversation] = event.seq
                    self._delivered_waiting.set()
            yield event
        if self._fatal is not None:
            raise self._fatal

    def _take_delivered(self) -> list[MarkDelivered]:
        marks = [DeliveredMark(conversation=c, seq=s) for c, s in self._delivered.items()]
        self._delivered = {}
        self._delivered_waiting = trio.Event()
        return [MarkDelivered(marks=tuple(marks[i : i + DELIVERED_MAX_MARKS])) for i in range(0, len(marks), DELIVERED_MAX_MARKS)]

    async def _report_delivered(self) -> None:
        """Tell the server, in batches, up to which message of each conversation this device has
        handed to the application: the sender of a 1:1 message then sees it delivered."""
        while True:
            await self._delivered_waiting.wait()
            await trio.sleep(DELIVERED_BATCH)
            for request in self._take_delivered():
                try:
                    await self.request(request)
                except CorridorError as exc:
                    if self._fatal is not None:
                        return
                    log.info("delivered marks not sent: %s", exc.message)  # a mark, not a message: no loss

    async def _flush_delivered(self) -> None:
        """On close, report what the last batch would have (briefly, even while cancelled)."""
        channel = self._channel
        if not self._delivered or channel is None:
            return
        with trio.CancelScope(shield=True), trio.move_on_after(FLUSH_SECONDS):
            for request in self._take_delivered():
                try:
                    await channel.request(request)
                except CorridorError as exc:
                    log.info("delivered marks not sent: %s", exc.message)
                    return

    # -- other requests --------------------------------------------------------------------

    async def history(self, with_user: str, *, limit: int = 50, before: int | None = None) -> HistoryResult:
        """The latest messages with one person, oldest first."""
        return await self.request(History(with_user=with_user, limit=limit, before=before))

    async def set_presence(self, status: str, text: str = "", urgent_from: tuple[str, ...] = ()) -> None:
        """Set my status (online, away, busy, break, or offline to appear offline) and its text;
        on a break, only urgent messages from `urgent_from` arrive live."""
        await self.request(SetPresence(status=status, text=text, urgent_from=urgent_from))

    async def query_presence(self, users: list[str]) -> dict[str, str]:
        """Current statuses of these people; their later changes arrive as events."""
        result = await self.request(QueryPresence(users=tuple(users)))
        return {info.user: info.status for info in result.statuses}
