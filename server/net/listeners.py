"""Accepting connections: TLS 1.3 on TCP for everyone, a Unix socket for the local admin.

The TLS handshake runs under its own deadline before any protocol byte is read, so a
plaintext client, an old TLS version or a client that never finishes the handshake costs one
short-lived task. The per-address connection limit is checked before the handshake, and the
refusal is still sent as an error frame (after the handshake) so the client can say why.
The control socket is created mode 0600 in the data dir: being able to open it *is* the
local admin's authentication, exactly like a database's Unix socket.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from corridor.protocol import Connection
from corridor.protocol.errors import make_error

from ..config import Limits, parse_listen
from .proxy_protocol import ProxyHeaderError, is_listed, read_client_address
from .tls_stream import TLSSocketStream

log = logging.getLogger("corridor.net")

StreamHandler = Callable[[trio.abc.Stream, str], Awaitable[None]]


async def open_tls_listeners(addresses: tuple[str, ...]) -> list[trio.SocketListener]:
    """Bind every `HOST:PORT` in the config; raises OSError naming the address on failure."""
    listeners: list[trio.SocketListener] = []
    for address in addresses:
        host, port = parse_listen(address)
        try:
            listeners += await trio.open_tcp_listeners(port, host=host)
        except OSError as exc:
            for listener in listeners:
                await listener.aclose()
            raise OSError(exc.errno, f"cannot listen on {address}: {exc.strerror}") from None
    return listeners


def bound_addresses(listeners: list[trio.SocketListener]) -> list[tuple[str, int]]:
    """The (host, port) each listener is bound to (port 0 resolved)."""
    return [listener.socket.getsockname()[:2] for listener in listeners]


async def serve_tls(
    listeners: list[trio.SocketListener],
    context: ssl.SSLContext,
    handle: StreamHandler,
    admit: Callable[[str], bool],
    release: Callable[[str], None],
    limits: Limits,
    handler_nursery: trio.Nursery,
    proxies: frozenset[str] = frozenset(),
) -> None:
    """Accept TCP connections forever, handshake TLS, and pass admitted streams to `handle`.
    Connections from `proxies` start with a PROXY protocol v2 header naming the client."""

    async def on_tcp(stream: trio.SocketStream) -> None:
        try:
            address = stream.socket.getpeername()[0]
        except OSError:
            await trio.aclose_forcefully(stream)
            return
        if proxies and is_listed(address, proxies):
            address = await _behind_proxy(stream, address, limits)
            if address is None:
                await trio.aclose_forcefully(stream)
                return
        admitted = admit(address)
        tls = TLSSocketStream.wrap(stream, context)
        try:
            with trio.move_on_after(limits.handshake_timeout) as scope:
                await tls.do_handshake()
            if scope.cancelled_caught:
                log.info("TLS handshake from %s timed out", address)
                return
            if not admitted:
                error = make_error(
                    "TOO_MANY_CONNECTIONS", f"at most {limits.max_connections_per_address} connections per address"
                )
                with trio.move_on_after(limits.handshake_timeout):
                    await tls.send_all(Connection("server").send_fatal(error))
                return
            await handle(tls, address)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            # Plaintext, TLS < 1.3, an untrusted CA on the client side, or a dropped link.
            log.info("TLS handshake from %s failed: %s", address, exc.__cause__ or exc)
        finally:
            if admitted:
                release(address)
            await trio.aclose_forcefully(tls)

    await trio.serve_listeners(on_tcp, listeners, handler_nursery=handler_nursery)


async def _behind_proxy(stream: trio.SocketStream, proxy: str, limits: Limits) -> str | None:
    """The client address a proxy's header names (the proxy's own for its health checks), or
    None when the header is missing, malformed or late: the connection is then closed."""
    with trio.move_on_after(limits.handshake_timeout):
        try:
            return await read_client_address(stream.socket) or proxy
        except (ProxyHeaderError, OSError) as exc:
            log.warning("connection from the proxy %s refused: %s", proxy, exc)
            return None
    log.warning("connection from the proxy %s refused: no PROXY protocol header within %g s", proxy, limits.handshake_timeout)
    return None


async def open_control_listener(path: Path) -> trio.SocketListener:
    """Create the admin Unix socket, readable and writable only by the server's user."""
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)
    try:
        await sock.bind(str(path))
    finally:
        os.umask(previous)
    os.chmod(path, 0o600)
    sock.listen(64)
    return trio.SocketListener(sock)


async def serve_control(listener: trio.SocketListener, handle: StreamHandler, handler_nursery: trio.Nursery) -> None:
    """Accept local admin connections forever."""

    async def on_unix(stream: trio.SocketStream) -> None:
        try:
            await handle(stream, "local")
        finally:
            await trio.aclose_forcefully(stream)

    await trio.serve_listeners(on_unix, [listener], handler_nursery=handler_nursery)
