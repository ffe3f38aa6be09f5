"""SIGTERM and SIGINT ask the server to stop gracefully; a second signal is not needed.

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
    """Wait for SIGTERM/SIGINT and stop the server when one arrives."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        async for signum in signals:
            log.info("received %s; stopping", signal.Signals(signum).name)
            server.stop()
            return
