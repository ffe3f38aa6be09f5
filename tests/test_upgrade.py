"""A data dir from an earlier version starts on this one: the fixtures in `tests/fixtures/`
(made by `make_upgrade_fixture.py`, one per release) are copied, served, and read back as
their people would — messages, the group, the notice, an auditor's search, the archive's chain
and checkpoints. Schema migrations added since run at start-up, forward only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from corridor.deploy.pki import sign_server_key

from .cli_helpers import RunningServer, free_port, run

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("datadir-*"))


def renewed(data: Path) -> None:
    """A fixture's server certificate outlives no release: sign its key afresh with its CA."""
    tls = data / "tls"
    cert = sign_server_key(
        (tls / "ca.pem").read_bytes(),
        (tls / "ca.key").read_bytes(),
        (tls / "server.key").read_bytes(),
        ["127.0.0.1", "localhost"],
    )
    (tls / "server.pem").write_bytes(cert)


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_a_data_dir_of_an_earlier_version_serves_everything_it_held(fixture, tmp_path):
    assert FIXTURES, "no upgrade fixtures"
    work = tmp_path / fixture.name
    shutil.copytree(fixture, work)
    data, profiles = work / "data", work / "profiles"
    expected = json.loads((fixture / "expected.json").read_text())
    renewed(data)
    port = free_port()
    server = RunningServer(data, "--listen", f"127.0.0.1:{port}", "--no-advertise")
    try:
        at = ("--server", f"127.0.0.1:{port}")
        history = run("history", "bob", "--json", "--profile", str(profiles / "alice"), *at)
        assert history.returncode == 0, history.stderr
        assert [json.loads(line)["text"] for line in history.stdout.splitlines()] == expected["direct"]
        group = run("group", "history", str(expected["group"]["id"]), "--json", "--profile", str(profiles / "bob"), *at)
        assert expected["group"]["text"] in group.stdout, group.stderr
        inbox = run("notice", "inbox", "--profile", str(profiles / "bob"), *at)
        assert expected["notice"] in inbox.stdout, inbox.stderr
        search = run("audit", "search", expected["search"]["text"], "--json", "--profile", str(profiles / "audrey"), *at)
        assert len([line for line in search.stdout.splitlines() if '"hit"' in line]) == expected["search"]["hits"]
    finally:
        assert server.stop() == 0
    verified = json.loads(
        run("audit", "verify", str(data), "--json", "--public-key", str(fixture / "data/tls/archive.pub")).stdout
    )
    assert verified["ok"] and verified["checkpoints"] >= 1
