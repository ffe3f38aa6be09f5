"""A trio stream over the standard library's non-blocking `ssl.SSLSocket`.

Why not `trio.SSLStream`: it runs OpenSSL against memory BIOs and moves every record between
Python buffers and the socket in Python code, which on this server cost about a third of the
event loop's time per message. Here OpenSSL reads and writes the socket itself, in C; trio only
waits for readiness. The protocol is the same TLS — same context, same TLS 1.3 minimum, same
certificates — so clients cannot tell the difference.

How it works: every operation is tried at once on the non-blocking socket; when OpenSSL says it
needs the socket readable or writable (`SSLWantReadError` / `SSLWantWriteError`) we wait for
that and retry. One task may receive while another sends (trio lets one waiter per direction),
which is how the connection's reader and writer use it. OpenSSL keeps a half-done write's state
and Python enables moving write buffers, so a retried `send` simply continues.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from typing import TypeVar

import trio

T = TypeVar("T")
DEFAULT_RECEIVE = 65536


class TLSSocketStream(trio.abc.Stream):
    """A TLS connection on a connected socket (the server's side unless `server_hostname` is given)."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server_hostname: str | None = None):
        sock.setblocking(False)
        self._ssl = context.wrap_socket(
            sock, server_side=server_hostname is None, server_hostname=server_hostname, do_handshake_on_connect=False
        )
        self._closed = False

    @classmethod
    def wrap(cls, stream: trio.SocketStream, context: ssl.SSLContext, server_hostname: str | None = None) -> TLSSocketStream:
        """Take over a connected trio socket stream (it must not be used afterwards)."""
        inner = stream.socket
        sock = socket.socket(inner.family, inner.type, inner.proto, fileno=inner.detach())
        return cls(sock, context, server_hostname)

    async def _retry(self, operation: Callable[[], T]) -> T:
        while True:
            if self._closed:
                raise trio.ClosedResourceError("the TLS stream is closed")
            try:
                return operation()
            except ssl.SSLWantReadError:
                await trio.lowlevel.wait_readable(self._ssl)
            except ssl.SSLWantWriteError:
                await trio.lowlevel.wait_writable(self._ssl)
            except (ssl.SSLError, OSError) as exc:
                raise trio.BrokenResourceError(str(exc)) from exc

    async def do_handshake(self) -> None:
        """Complete the TLS handshake (raises BrokenResourceError for plaintext or old TLS)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        await self._retry(self._ssl.do_handshake)
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Up to `max_bytes` of plaintext; b"" once the peer closed the connection."""
        await trio.lowlevel.checkpoint_if_cancelled()
        size = max_bytes or DEFAULT_RECEIVE
        try:
            data = await self._retry(lambda: self._ssl.recv(size))
        except trio.BrokenResourceError as exc:
            if isinstance(exc.__cause__, ssl.SSLZeroReturnError):
                return b""
            raise
        await trio.lowlevel.cancel_shielded_checkpoint()
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and send all of `data`."""
        await trio.lowlevel.checkpoint_if_cancelled()
        view = memoryview(data)
        while view:
            sent = await self._retry(lambda view=view: self._ssl.send(view))
            view = view[sent:]
        await trio.lowlevel.cancel_shielded_checkpoint()

    def try_send(self, data: bytes) -> bool:
        """Send all of `data` now if the socket takes it without waiting. False: it did not, and
        the next send on this stream must be `send_all` of this same `data`, because OpenSSL may
        have written part of it already and continues from its own state."""
        if self._closed:
            raise trio.ClosedResourceError("the TLS stream is closed")
        try:
            self._ssl.send(data)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        except (ssl.SSLError, OSError) as exc:
            raise trio.BrokenResourceError(str(exc)) from exc
        return True

    async def wait_send_all_might_not_block(self) -> None:
        """Return when the socket can take more data."""
        await trio.lowlevel.wait_writable(self._ssl)

    async def aclose(self) -> None:
        """Send close_notify if the socket allows it right now, then close."""
        if not self._closed:
            self._closed = True
            try:
                self._ssl.unwrap()  # non-blocking: sends close_notify, then wants the peer's
            except (ssl.SSLError, OSError, ValueError):
                pass
            trio.lowlevel.notify_closing(self._ssl)
            self._ssl.close()
        await trio.lowlevel.checkpoint()
