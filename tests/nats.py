"""A real `nats-server` on 127.0.0.1 for tests: started as a subprocess on a free port, stopped
at teardown, and restartable on the same port (to test reconnecting).

Use it from a test module with `from .nats import nats_server_fixture  # noqa: F401` and a
`nats_server` argument. The tests are skipped, saying why, where the binary is missing (.ci/run
installs Debian's `nats-server`, so CI runs them).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cli_helpers import free_port

START_TIMEOUT = 10.0


def _find_binary() -> str:
    found = shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin:/usr/local/sbin")
    if not found:
        pytest.skip("nats-server is not installed: run `apt-get install -y nats-server` (CI installs it)")
    return found


class NatsServer:
    """One nats-server process on a loopback port that stays the same across restarts."""

    def __init__(self, workdir: Path):
        self.binary = _find_binary()
        self.workdir = workdir
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start it and wait until it accepts connections; fails the test if it does not."""
        log = (self.workdir / "nats-server.log").open("ab")
        with log:
            self.process = subprocess.Popen(
                [self.binary, "-a", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"nats-server exited with {self.process.returncode}: {self._log()}", pytrace=False)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.02)
        pytest.fail(f"nats-server did not listen on {self.url} within {START_TIMEOUT} s: {self._log()}", pytrace=False)

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL) and wait for it to exit."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def _log(self) -> str:
        return (self.workdir / "nats-server.log").read_text(errors="replace")[-2000:]


@pytest.fixture(name="nats_server")
def nats_server_fixture(tmp_path: Path) -> Iterator[NatsServer]:
    """A running nats-server of this test's own."""
    server = NatsServer(tmp_path)
    server.start()
    yield server
    server.stop()
