"""`corridor file send|get` as people run them, against a real `corridor serve` that is killed
with SIGKILL in the middle of an upload."""

from __future__ import annotations

import json
import os

import trio

from corridor.client.client import Client
from corridor.client.profile import Profile
from corridor.client.transfers import hash_file
from corridor.protocol.messages import FileChunk, FileUpload

from .cli_helpers import RunningServer, employee, run

MIB = 1024 * 1024


async def test_a_file_sent_and_fetched_from_the_command_line_resumes_after_the_server_was_killed(served, tmp_path):
    data, _, server = served
    alice = employee(data, tmp_path, "alice", "Alice")
    bob = employee(data, tmp_path, "bob", "Bob")
    survey = tmp_path / "survey.bin"
    survey.write_bytes(os.urandom(8 * MIB))
    file_id, size = hash_file(survey)

    with trio.fail_after(30):  # an earlier run that got 3 MiB through before the server died
        async with Client.open(Profile(alice), receive=False) as client:
            state = await client.request(FileUpload(sha256=file_id, size=size))
            blob = survey.read_bytes()
            for offset in range(0, 3 * MIB, 256 * 1024):
                state = await client.request(
                    FileChunk(upload=state.upload, offset=offset, data=blob[offset : offset + 256 * 1024])
                )
    server.kill()
    restarted = RunningServer(data, "--no-advertise")
    try:
        sent = run("file", "send", "bob", str(survey), "--profile", alice, "--json")
        assert sent.returncode == 0, sent.stderr
        answer = json.loads(sent.stdout)
        assert (answer["resumed_from"], answer["size"], answer["seq"], answer["name"]) == (3 * MIB, 8 * MIB, 1, "survey.bin")

        line = run("history", "alice", "--profile", bob).stdout.strip()
        assert line.endswith("alice → bob: [file #1] survey.bin (8.0 MiB)"), line

        downloads = tmp_path / "downloads"
        downloads.mkdir()
        got = run("file", "get", "alice", "1", "--out", str(downloads), "--profile", bob, "--json")
        assert got.returncode == 0, got.stderr
        assert json.loads(got.stdout)["path"] == str(downloads / "survey.bin")
        assert (downloads / "survey.bin").read_bytes() == blob

        again = run("file", "get", "alice", "1", "--out", str(downloads), "--profile", bob)
        assert again.returncode == 1 and again.stderr.rstrip().endswith("[ALREADY_EXISTS]"), again.stderr
        by_id = run("file", "get", "--id", file_id, "--out", str(tmp_path / "copy.bin"), "--profile", bob)
        assert by_id.returncode == 0 and (tmp_path / "copy.bin").read_bytes() == blob, by_id.stderr

        crafted = run("file", "send", "bob", str(survey), "--name", "../../.bashrc", "--profile", alice)
        assert crafted.returncode == 2 and "[BAD_FILE_NAME]" in crafted.stderr, crafted.stderr
        missing = run("file", "send", "bob", str(tmp_path / "nope.pdf"), "--profile", alice)
        assert missing.returncode == 2 and "is not a file" in missing.stderr
        not_a_file = run("file", "get", "alice", "2", "--profile", bob)
        assert not_a_file.returncode == 4 and "[NO_SUCH_FILE]" in not_a_file.stderr, not_a_file.stderr
    finally:
        restarted.kill()
