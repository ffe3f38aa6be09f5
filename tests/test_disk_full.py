"""A full disk on the server: writes fail with STORAGE_FULL, nothing acknowledged is lost or
damaged, reads keep working, and the server stores again once space returns — all on a real
`corridor serve` whose data dir sits on a small tmpfs that the test fills up."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
import trio

from corridor.client.client import Client
from corridor.protocol.errors import CorridorError
from corridor.protocol.messages import Send

from .cli_helpers import RunningServer, employee, free_port, run

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MiB tmpfs, unmounted at the end."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> Path:
    """Take every free byte of the disk."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_refuses_writes_cleanly_and_the_server_recovers(small_disk, tmp_path):
    data = small_disk / "data"
    port = free_port()
    assert run("init", str(data), "--org", "Full Disk Ltd", "--listen", f"127.0.0.1:{port}").returncode == 0
    server = RunningServer(data, "--no-advertise")
    try:
        alice = employee(data, tmp_path, "alice", "Alice")
        employee(data, tmp_path, "bob", "Bob")
        acked = []

        async def scenario():
            from corridor.client.profile import Profile

            profile = Profile(Path(alice))
            try:
                async with Client.open(profile, receive=False) as client:
                    for i in range(20):
                        acked.append((await client.send("bob", f"before {i}")).seq)
                    filler = fill(small_disk)
                    refused = 0
                    for i in range(20):  # enough writes to need more than what was left in pages
                        try:
                            await client.request(Send(to="bob", msg_id=uuid.uuid4().hex, text=f"full {i} " + "x" * 4000))
                        except CorridorError as exc:
                            assert exc.code == "STORAGE_FULL", exc
                            refused += 1
                    assert refused > 0
                    history = await client.history("bob", limit=100)  # reads still work
                    assert [m.text for m in history.messages][:20] == [f"before {i}" for i in range(20)]
                    filler.unlink()
                    for i in range(5):
                        acked.append((await client.send("bob", f"after {i}")).seq)
            finally:
                profile.close()

        trio.run(scenario)
        shown = run("history", "alice", "--json", "--limit", "1000", "--profile", str(tmp_path / "profile-bob"))
        texts = [json.loads(line)["text"] for line in shown.stdout.splitlines()]
        expected = [f"before {i}" for i in range(20)] + [f"after {i}" for i in range(5)]
        assert [t for t in texts if not t.startswith("full")] == expected
        assert len(set(acked)) == len(acked) == 25
    finally:
        assert server.stop() == 0
    verified = json.loads(run("audit", "verify", str(data), "--json").stdout)
    assert verified["ok"], verified
