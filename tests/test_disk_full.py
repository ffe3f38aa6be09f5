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
    size = os.statvfs(mount)
    # Filling must never reach the disk the tmpfs was meant to stand in for.
    assert size.f_blocks * size.f_frsize <= 32 * 2**20, "the tmpfs mount did not take its size limit"
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> Path:
    """Take every free byte of the (24 MiB) disk."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        for _ in range(32 * 16):  # 32 MiB at most: more than the disk holds
            try:
                f.write(b"\0" * 65536)
            except OSError:
                break
        else:
            raise AssertionError("the disk never filled up")
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
                # A server stuck on the full disk fails this test instead of hanging the suite.
                with trio.fail_after(60):
                    async with Client.open(profile, receive=False) as client:
                        await write_until_full_and_after(client)
            finally:
                profile.close()

        async def write_until_full_and_after(client):
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
            # Long enough full for the background chores (the archive indexer runs every second)
            # to fail too: they must wait it out, not stop the server.
            await trio.sleep(2.5)
            history = await client.history("bob", limit=100)  # reads still work
            assert [m.text for m in history.messages][:20] == [f"before {i}" for i in range(20)]
            filler.unlink()
            for i in range(5):
                acked.append((await client.send("bob", f"after {i}")).seq)

        trio.run(scenario)
        shown = run("history", "alice", "--json", "--limit", "1000", "--profile", str(tmp_path / "profile-bob"))
        texts = [json.loads(line)["text"] for line in shown.stdout.splitlines()]
        expected = [f"before {i}" for i in range(20)] + [f"after {i}" for i in range(5)]
        assert [t for t in texts if not t.startswith("full")] == expected
        assert len(set(acked)) == len(acked) == 25
    finally:
        assert server.stop() == 0
    assert "indexing the archive failed: the server's disk is full" in server.log()
    verified = json.loads(run("audit", "verify", str(data), "--json").stdout)
    assert verified["ok"], verified
