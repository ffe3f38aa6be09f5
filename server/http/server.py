"""Runs the HTTP component with hypercorn's trio worker inside the server's own trio run, over
TLS 1.3 with the organisation's server certificate (the same rules as the protocol listener)."""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from ..config import parse_listen
from ..net.tls import server_context

log = logging.getLogger("corridor.http")


class _Config(HypercornConfig):
    """Hypercorn's settings with our TLS context instead of the one it would build."""

    def __init__(self, context: ssl.SSLContext):
        super().__init__()
        self._context = context

    def create_ssl_context(self) -> ssl.SSLContext:
        return self._context


def http_context(certificate: Path, key: Path) -> ssl.SSLContext:
    """A TLS 1.3-only server context offering HTTP/2 and HTTP/1.1."""
    context = server_context(certificate, key)
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


async def serve_http(
    app,
    listen: str,
    context: ssl.SSLContext,
    stopping: Callable[[], Awaitable[None]],
    grace: float,
    *,
    task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` on `listen` until `stopping()` returns, then give open requests `grace`
    seconds; reports the bound (host, port) list through `task_status`."""
    host, port = parse_listen(listen)
    config = _Config(context)
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    # Hypercorn turns TLS on when these are set; it never reads them (see _Config).
    config.certfile = config.keyfile = "in-memory"
    config.graceful_timeout = grace
    config.accesslog = None
    config.errorlog = logging.getLogger("corridor.http.hypercorn")
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(functools.partial(serve, app, config, shutdown_trigger=stopping))
        addresses = [parse_listen(bind.split("://", 1)[1]) for bind in binds]
        log.info("integration API and web console on %s", ", ".join(f"https://{h}:{p}" for h, p in addresses))
        task_status.started(addresses)
