"""SIGTERM and SIGINT ask the server to stop gracefully; a second signal is not needed.
SIGHUP reloads the TLS certificate and key (after `corridor cert renew`) without a restart.

`Server.stop()` does the work (stop accepting → in-flight requests get
`limits.shutdown_grace` seconds → connections close → the committer flushes), so a stop by
signal and a stop in a test follow the same path and the process exits 0.
"""

from __future__ import annotations

import logging
import signal

import trio

from .app import Server

log = logging.getLogger("corridor.server")


async def stop_on_signals(server: Server, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
    """Wait for SIGTERM/SIGINT and stop the server when one arrives; reload TLS on each SIGHUP."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        task_status.started()
        async for signum in signals:
            if signum == signal.SIGHUP:
                server.reload_tls()
                continue
            log.info("received %s; stopping", signal.Signals(signum).name)
            server.stop()
            return
