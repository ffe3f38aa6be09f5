"""Shared fixtures: a real data dir, a real server on 127.0.0.1 (port 0), real TLS, real files.

`server` runs in-process under the test's trio nursery with production code and production
limits except where a test shortens one on purpose (each such override says what it guards).
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from corridor.deploy.init import create_data_dir
from corridor.server.app import Server
from corridor.server.config import load_config

from .cli_helpers import RunningServer, free_port, run
from .helpers import Org


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A fresh data dir listening on 127.0.0.1:0 (a free port is picked at serve time)."""
    path = tmp_path / "data"
    create_data_dir(path, "Test Org", "127.0.0.1:0", ["127.0.0.1", "localhost"], "admin", "Administrator")
    return path


def start_server(data_dir: Path, **limits) -> Server:
    """A Server for `data_dir`, with some limits overridden."""
    config = load_config(data_dir)
    if limits:
        config = replace(config, limits=replace(config.limits, **limits))
    return Server(config, advertise=False)


async def serve_with(nursery: trio.Nursery, data_dir: Path, tmp_path: Path, **limits) -> Org:
    """Start a server with some limits overridden; returns helpers for it (stopped with the nursery)."""
    srv = start_server(data_dir, **limits)
    await nursery.start(srv.run)
    return Org(srv, tmp_path)


@pytest.fixture
async def server(data_dir: Path, nursery: trio.Nursery) -> Server:
    """A running server with production limits."""
    srv = start_server(data_dir)
    await nursery.start(srv.run)
    yield srv
    srv.stop()


@pytest.fixture
async def org(server: Server, tmp_path: Path) -> Org:
    """Helpers to create enrolled users on the running server."""
    return Org(server, tmp_path)


@pytest.fixture
def served(tmp_path: Path):
    """`corridor init` + `corridor serve` as real processes on a free loopback port; yields the
    data dir, the `init --json` result and the RunningServer (killed at the end if still up)."""
    data = tmp_path / "data"
    port = free_port()
    init = run("init", str(data), "--org", "CLI Org", "--listen", f"127.0.0.1:{port}", "--json")
    assert init.returncode == 0, init.stderr
    server = RunningServer(data, "--no-advertise")
    yield data, json.loads(init.stdout), server
    server.kill()


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """A test must not leave threads behind (zeroconf or worker threads stuck on I/O)."""
    before = {t.ident for t in threading.enumerate()}
    yield
    for _ in range(50):
        leaked = [
            t for t in threading.enumerate() if t.ident not in before and t.is_alive() and not t.name.startswith("Trio thread")
        ]
        if not leaked:
            return
        threading.Event().wait(0.1)
    pytest.fail(f"threads leaked: {[t.name for t in leaked]}")
