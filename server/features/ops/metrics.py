"""A Prometheus metrics endpoint: `GET /metrics` over plain HTTP on `metrics.listen`.

Off by default, and meant for a Prometheus (or node exporter's textfile collector) on the same
host: it answers only that one path, one request per connection, and reads nothing a client
sends beyond the request line and headers (bounded), so it needs no HTTP library.

Sessions and people online are shown twice, labelled: `scope="cluster"` counts every serve
process (what to alert on), `scope="process"` this one (with its `instance` name when it has
one), so summing the per-process series of several processes is also right.
"""

from __future__ import annotations

import logging
import sqlite3
import time

import trio

from corridor.protocol.ops import ServerStatusResult

from ...config import parse_listen
from .status import Health, Here

log = logging.getLogger("corridor.metrics")

MAX_REQUEST_BYTES = 8192
REQUEST_TIMEOUT = 5.0

# Counted for every serve process and for this one: (name, help, field of both).
_SCOPED = (
    ("corridor_sessions", "Logged-in sessions.", "sessions"),
    ("corridor_users_online", "Users with at least one session.", "users_online"),
)

# (name, type, help, field of ServerStatusResult or a function of it)
_METRICS = (
    ("corridor_connections", "gauge", "Open client connections to this process.", "connections"),
    ("corridor_processes", "gauge", "Serve processes sharing the bus, this one included.", None),
    ("corridor_messages_today", "gauge", "Messages archived since local midnight.", "messages_today"),
    ("corridor_archive_entries", "gauge", "Entries in the archive's hash chain.", "archive_entries"),
    ("corridor_database_bytes", "gauge", "Size of the database and its WAL.", "database_bytes"),
    ("corridor_certificate_expiry_seconds", "gauge", "Seconds until the server certificate expires.", None),
    ("corridor_uptime_seconds", "gauge", "Seconds since the server started.", None),
    ("corridor_db_commits_total", "counter", "Group commits since start.", "commits"),
    ("corridor_db_writes_total", "counter", "Write transactions since start.", "writes"),
)


def render(status: ServerStatusResult, here: Here, now: float) -> str:
    """The Prometheus text exposition of a status and this process's own counts."""
    derived = {
        "corridor_processes": here.processes,
        "corridor_certificate_expiry_seconds": status.certificate_expires - now,
        "corridor_uptime_seconds": now - status.started,
    }
    lines = [
        "# HELP corridor_info The running version.",
        "# TYPE corridor_info gauge",
        f'corridor_info{{version="{status.version}"}} 1',
    ]
    process = f'scope="process",instance="{here.instance}"' if here.instance else 'scope="process"'
    for name, text, field in _SCOPED:
        lines += [
            f"# HELP {name} {text}",
            f"# TYPE {name} gauge",
            f'{name}{{scope="cluster"}} {getattr(status, field)}',
            f"{name}{{{process}}} {getattr(here, field)}",
        ]
    for name, kind, text, field in _METRICS:
        value = derived[name] if field is None else getattr(status, field)
        lines += [
            f"# HELP {name} {text}",
            f"# TYPE {name} {kind}",
            f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}",
        ]
    return "\n".join(lines) + "\n"


async def _answer(stream: trio.SocketStream, health: Health) -> None:
    request = b""
    with trio.move_on_after(REQUEST_TIMEOUT):
        while b"\r\n\r\n" not in request and len(request) < MAX_REQUEST_BYTES:
            chunk = await stream.receive_some(MAX_REQUEST_BYTES)
            if not chunk:
                break
            request += chunk
    parts = request.split(b"\r\n", 1)[0].split()
    if len(parts) != 3 or parts[0] not in (b"GET", b"HEAD") or parts[1].split(b"?")[0] != b"/metrics":
        await stream.send_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        return
    try:
        body = render(await health.gather(), health.here(), time.time()).encode()
    except (sqlite3.Error, OSError, ValueError):
        log.exception("could not gather metrics")
        await stream.send_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        return
    head = f"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {len(body)}\r\n"
    await stream.send_all(head.encode() + b"Connection: close\r\n\r\n" + (body if parts[0] == b"GET" else b""))


async def serve_metrics(listen: str, health: Health) -> None:
    """The background task: serve `GET /metrics` on `listen` until the server stops."""
    host, port = parse_listen(listen)
    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        # Monitoring must not take the messenger down: serve without it, and say so.
        log.error("metrics.listen %s: cannot listen (%s); serving without metrics", listen, exc.strerror or exc)
        return
    log.info("metrics on http://%s/metrics", listen)

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            try:
                await _answer(stream, health)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass  # the scraper went away: nothing to tell it

    await trio.serve_listeners(handle, listeners)
