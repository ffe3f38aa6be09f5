"""One connection: the only place where bytes meet `protocol.Connection`.

Three tasks per connection. The reader decodes frames and queues requests; a worker answers
them one at a time in arrival order (so a client's sends get increasing sequence numbers in the
order it sent them); a writer drains the bounded outbound queue, coalescing whatever is queued
into one TLS write. A frame for a connection whose queue is empty is written at once, without
waking the writer, when the socket takes it (most pushes and answers: a group message reaches
a thousand members without a thousand task switches); otherwise it is queued. Events go out
without blocking: a client too slow to drain its queue is disconnected with SLOW_CONSUMER — it loses nothing, everything is durable and it
resyncs by sequence. Before login the read deadline is the login deadline; after it, the idle
timeout. Any protocol fault gets one error frame and a close; nothing here can take the server
down, and nothing one peer does blocks another.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import trio

from corridor.protocol import CLOSED, NEED_DATA, BadRequest, Connection, ReceivedRequest
from corridor.protocol.errors import CorridorError, ProtocolError, make_error
from corridor.protocol.messages import Event, Hello, Request

from ..config import Limits
from ..router import Router
from ..sessions import Actor, Session, SessionRegistry

log = logging.getLogger("corridor.net")
READ_SIZE = 65536
CLOSE_GRACE = 1.0


@dataclass
class ConnectionTracker:
    """Counts connections per address and requests in flight, for limits and graceful stop."""

    max_per_address: int
    closing: bool = False
    per_address: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    _idle: trio.Event = field(default_factory=trio.Event)

    def admit(self, address: str) -> bool:
        """Count a new connection from `address`; False if it is over the limit."""
        count = self.per_address.get(address, 0)
        if count >= self.max_per_address:
            return False
        self.per_address[address] = count + 1
        return True

    def release(self, address: str) -> None:
        """Forget one connection from `address`."""
        count = self.per_address.get(address, 0) - 1
        if count > 0:
            self.per_address[address] = count
        else:
            self.per_address.pop(address, None)

    def total(self) -> int:
        """Connections open now, from every address."""
        return sum(self.per_address.values())

    def request_started(self) -> None:
        self.in_flight += 1

    def request_finished(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()
            self._idle = trio.Event()

    async def wait_idle(self) -> None:
        """Return once no request is in flight."""
        while self.in_flight:
            await self._idle.wait()

    @property
    def connections(self) -> int:
        return sum(self.per_address.values())


def _is_disconnect(exc: BaseException) -> bool:
    """True for the peer going away (possibly wrapped in exception groups by nurseries)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_disconnect(inner) for inner in exc.exceptions)
    return isinstance(exc, (trio.BrokenResourceError, trio.ClosedResourceError))


class ConnectionHandler:
    """Serves one accepted stream until the peer leaves, misbehaves, or the server stops."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        peer: str,
        router: Router,
        sessions: SessionRegistry,
        limits: Limits,
        tracker: ConnectionTracker,
        actor: Actor | None = None,
    ):
        self.stream = stream
        self.router = router
        self.sessions = sessions
        self.limits = limits
        self.tracker = tracker
        self.conn = Connection("server", limits.max_frame_bytes)
        self.session = Session(peer, self._push, actor, close=self._fail)
        self._out_send, self._out_receive = trio.open_memory_channel[bytes](limits.outbound_queue)
        self._queued = 0  # frames given to the writer and not yet written
        self._resend_first = False  # the writer's next frame is one OpenSSL began: send it alone
        self._try_send = getattr(stream, "try_send", None)
        self._requests_send, self._requests_receive = trio.open_memory_channel[tuple[int, Request]](limits.max_in_flight)
        self._fatal: CorridorError | None = None
        self._cancel = trio.CancelScope()

    def _enqueue(self, data: bytes) -> None:
        if self._queued == 0 and self._try_send is not None:
            try:
                if self._try_send(data):
                    return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._cancel.cancel()  # the peer is gone: the reader would find out next
                return
            self._resend_first = True
        try:
            self._out_send.send_nowait(data)
            self._queued += 1
        except trio.WouldBlock:
            self._fail(
                make_error("SLOW_CONSUMER", f"more than {self.limits.outbound_queue} frames waiting; resync after reconnecting")
            )
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    def _push(self, event: Event) -> None:
        self._enqueue(self.conn.send_push(event))

    def _fail(self, error: CorridorError) -> None:
        if self._fatal is None:
            self._fatal = error
        self._cancel.cancel()

    async def run(self) -> None:
        """Serve the connection; never raises (every outcome is logged and the stream closed)."""
        try:
            with self._cancel:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer)
                    nursery.start_soon(self._worker)
                    await self._reader()
                    nursery.cancel_scope.cancel()
        except Exception as exc:
            if not _is_disconnect(exc):
                log.exception("connection from %s failed", self.session.peer)
                self._fatal = self._fatal or make_error("INTERNAL")
        finally:
            self.sessions.remove(self.session)
            await self._close()

    async def _close(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_GRACE):
            try:
                if self._fatal is not None:
                    log.info("closing connection from %s: %s %s", self.session.peer, self._fatal.code, self._fatal.message)
                    await self.stream.send_all(self.conn.send_fatal(self._fatal))
                await self.stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    async def _reader(self) -> None:
        login_deadline = trio.current_time() + self.limits.login_timeout
        while True:
            authenticated = self.session.actor.authenticated
            deadline = trio.current_time() + self.limits.idle_timeout if authenticated else login_deadline
            with trio.move_on_at(deadline) as scope:
                data = await self.stream.receive_some(READ_SIZE)
            if scope.cancelled_caught:
                if not authenticated and self.session.actor.authenticated:
                    continue  # logged in while this read waited: the idle deadline applies from now
                self._fail(make_error("TIMEOUT", "idle timeout" if authenticated else "no login before the deadline"))
                return
            self.conn.receive_data(data)
            if self._dispatch():
                return

    def _dispatch(self) -> bool:
        """Handle every complete frame; True once the peer closed its side."""
        while True:
            try:
                event = self.conn.next_event()
            except ProtocolError as exc:
                self._fail(exc)
                return True
            if event is NEED_DATA:
                return False
            if event is CLOSED:
                return True
            if isinstance(event, BadRequest):
                self._enqueue(self.conn.send_failure(event.id, event.error))
            elif isinstance(event, ReceivedRequest):
                if self.tracker.closing:
                    self._enqueue(self.conn.send_failure(event.id, make_error("SHUTTING_DOWN")))
                    continue
                try:
                    self._requests_send.send_nowait((event.id, event.message))
                except trio.WouldBlock:
                    error = make_error("TOO_MANY_REQUESTS", f"more than {self.limits.max_in_flight} requests queued")
                    self._enqueue(self.conn.send_failure(event.id, error))

    async def _worker(self) -> None:
        async for request_id, message in self._requests_receive:
            self.tracker.request_started()
            try:
                answer, error = await self.router.respond(self.session, self.conn, request_id, message)
            finally:
                self.tracker.request_finished()
            if error is not None and isinstance(message, Hello):
                self._fail(error)  # no common version: nothing more can be said on this connection
                return
            self._enqueue(answer)

    async def _writer(self) -> None:
        async for data in self._out_receive:
            chunks = [data]
            if self._resend_first:
                self._resend_first = False
            else:
                while True:
                    try:
                        chunks.append(self._out_receive.receive_nowait())
                    except trio.WouldBlock:
                        break
            await self.stream.send_all(b"".join(chunks))
            self._queued -= len(chunks)
