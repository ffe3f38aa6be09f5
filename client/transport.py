"""One open connection to a server: TLS (or the local admin socket), requests and events.

`Channel.request()` sends a typed request and waits for its one answer, raising the typed
error the server sent. `Channel.submit()` only writes the request and returns its `Answer`, so
a caller can keep several requests in flight: the server handles a connection's requests in
order, hence in the order they were submitted. A reader task (run it in a nursery:
`nursery.start_soon(ch.run)`) routes answers to their `Answer` and server pushes to
`Channel.events`. When the connection ends, every unanswered request gets `CONNECTION_LOST` and
`events` is closed, so callers never hang on a dead link.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from typing import Any

import trio

from corridor.protocol import CLOSED, NEED_DATA, Connection, Failure, Push, Result
from corridor.protocol.errors import CorridorError, make_error, single_exception
from corridor.protocol.messages import Event, Hello, HelloResult, Request
from corridor.protocol.schema import Record
from corridor.protocol.versions import SUPPORTED_VERSIONS

from .tls import client_context

CLIENT_NAME = "corridor-client/0.1"
EVENT_BUFFER = 10_000


def connection_lost(why: str) -> CorridorError:
    """The client-side error for a link that failed or closed."""
    return make_error("CONNECTION_LOST", why)


class Answer:
    """The answer to a request already written: `await answer` returns its result or raises the
    server's typed error (`CONNECTION_LOST` if the link failed first)."""

    def __init__(self, request_id: int | None):
        self.request_id = request_id  # None: never written, the link had already failed
        self._done = trio.Event()
        self._result: Record | None = None
        self._error: CorridorError | None = None

    def _set(self, result: Record | None = None, error: CorridorError | None = None) -> None:
        if not self._done.is_set():
            self._result, self._error = result, error
            self._done.set()

    def __await__(self) -> Generator[Any, None, Record]:
        return self._wait().__await__()

    async def _wait(self) -> Record:
        await self._done.wait()
        if self._error is not None:
            raise self._error
        return self._result


class Channel:
    """Requests and events over one established stream."""

    def __init__(self, stream: trio.abc.Stream):
        self.stream = stream
        self.conn = Connection("client")
        self._waiters: dict[int, Answer] = {}
        self._send_lock = trio.Lock()
        self._events_send, self.events = trio.open_memory_channel[Event](EVENT_BUFFER)
        self.error: CorridorError | None = None
        self.hello: HelloResult | None = None

    async def request(self, message: Request) -> Record:
        """Send one request and return its result; raises the server's typed error."""
        answer = await self.submit(message)
        try:
            return await answer
        finally:
            if answer.request_id is not None:  # after a cancellation: stop waiting for the answer
                self._waiters.pop(answer.request_id, None)
                self.conn.forget(answer.request_id)

    async def submit(self, message: Request) -> Answer:
        """Write one request and return its `Answer` without waiting for it; requests submitted
        one after another are written, and so handled by the server, in that order.

        Every failure, a failed write included, comes out of awaiting the answer. An answer
        nobody awaits is simply dropped when it arrives."""
        if self.error is not None:
            answer = Answer(None)
            answer._set(error=self.error)
            return answer
        request_id, data = self.conn.send_request(message)
        answer = self._waiters[request_id] = Answer(request_id)
        try:
            async with self._send_lock:
                await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._waiters.pop(request_id, None)
            self.conn.forget(request_id)
            answer._set(error=connection_lost("the connection closed while sending"))
        return answer

    def inject(self, event: Event) -> None:
        """Add an event as if the server had pushed it (the client's own acknowledged message).
        On a closed or overfull channel it is dropped: the next sync delivers it instead."""
        try:
            self._events_send.send_nowait(event)
        except (trio.WouldBlock, trio.ClosedResourceError):
            pass

    async def handshake(self) -> HelloResult:
        """Say hello and agree on a protocol version."""
        self.hello = await self.request(Hello(versions=SUPPORTED_VERSIONS, client=CLIENT_NAME))
        return self.hello

    async def run(self) -> None:
        """Read until the connection ends; then fail every unanswered request and close `events`."""
        try:
            while True:
                data = await self.stream.receive_some(65536)
                self.conn.receive_data(data)
                if self._dispatch():
                    break
            self._end(connection_lost("the server closed the connection"))
        except CorridorError as exc:  # a protocol violation, or events not consumed
            self._end(exc)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._end(connection_lost(f"the connection failed: {exc.__cause__ or exc}"))
        finally:
            self._end(connection_lost("the connection closed"))
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self.stream)

    def _dispatch(self) -> bool:
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA:
                return False
            if event is CLOSED:
                return True
            if isinstance(event, Push):
                try:
                    self._events_send.send_nowait(event.message)
                except trio.WouldBlock:
                    # The application stopped reading events: drop the link rather than grow
                    # without bound; a resync after reconnecting recovers everything.
                    raise connection_lost("events were not consumed") from None
            elif isinstance(event, Failure) and event.re is None:
                self._end(event.error)
            elif isinstance(event, (Result, Failure)):
                answer = self._waiters.pop(event.re, None)
                if answer is not None:
                    if isinstance(event, Result):
                        answer._set(result=event.message)
                    else:
                        answer._set(error=event.error)

    def _end(self, error: CorridorError) -> None:
        if self.error is None:
            self.error = error
        for answer in self._waiters.values():
            answer._set(error=self.error)
        self._waiters.clear()
        self._events_send.close()

    async def aclose(self) -> None:
        """Close the connection (the reader task then ends)."""
        await trio.aclose_forcefully(self.stream)


async def open_tls(host: str, port: int, ca_pem: str | None, tls_host: str, timeout: float) -> trio.SSLStream:
    """Connect and complete a TLS 1.3 handshake verified against the pinned CA.

    `ca_pem=None` skips verification: only enrollment uses that, to fetch the CA and compare it
    with the invite's fingerprint before trusting anything; nothing secret is sent on it.
    """
    if ca_pem is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = client_context(ca_pem)
    try:
        with trio.fail_after(timeout):
            tcp = await trio.open_tcp_stream(host, port)
            stream = trio.SSLStream(tcp, context, server_hostname=tls_host)
            try:
                await stream.do_handshake()
            except BaseException:
                await trio.aclose_forcefully(tcp)
                raise
    except trio.TooSlowError:
        raise connection_lost(f"no TLS connection to {host}:{port} within {timeout:g} s") from None
    except trio.BrokenResourceError as exc:
        cause = exc.__cause__
        if isinstance(cause, ssl.SSLCertVerificationError):
            raise make_error("UNTRUSTED_SERVER", f"{host}:{port} is not trusted: {cause.verify_message}") from None
        raise connection_lost(f"TLS handshake with {host}:{port} failed: {cause or exc}") from None
    except OSError as exc:
        raise connection_lost(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
    return stream


async def open_unix(path: str) -> trio.SocketStream:
    """Connect to a server's local admin socket."""
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.connect(path)
    except OSError as exc:
        sock.close()
        raise connection_lost(
            f"cannot open the admin socket {path}: {exc.strerror or exc} (is 'corridor serve' running?)"
        ) from None
    return trio.SocketStream(sock)


@asynccontextmanager
async def running(stream: trio.abc.Stream) -> AsyncIterator[Channel]:
    """A Channel over `stream` with its reader running; closed on exit. A single error from the
    body or the reader comes out as itself, not wrapped in the nursery's exception group."""
    channel = Channel(stream)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(channel.run)
            try:
                yield channel
            finally:
                await channel.aclose()
    except BaseExceptionGroup as group:
        raise single_exception(group) from None
