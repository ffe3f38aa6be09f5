"""The integration API as the company's OA system uses it: a real `corridor serve` with its HTTP
component, integrations made with `corridor admin integration`, calls made with curl and with
Python's own HTTPS client, and what enrolled people and auditors then see."""

from __future__ import annotations

import contextlib
import http.client
import json
import shlex
import sqlite3
import ssl
import subprocess
import time
from pathlib import Path

import msgpack
import pytest

from corridor.server.http.openapi import SPEC

from .cli_helpers import RunningServer, admin, employee, free_port, run

ROOT = Path(__file__).resolve().parent.parent


class Api:
    """HTTPS calls to the server's integration API, verified against the organisation's CA."""

    def __init__(self, data: Path, port: int):
        self.port = port
        self.context = ssl.create_default_context(cafile=str(data / "tls" / "ca.pem"))

    def call(self, method: str, path: str, token: str | None = None, body=None, headers: dict | None = None):
        """(status, headers, JSON answer) of one call on a fresh connection."""
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=15)
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        payload = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        try:
            connection.request(method, path, body=payload, headers=sent)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), json.loads(response.read() or b"null")
        finally:
            connection.close()


@pytest.fixture
def office(tmp_path: Path):
    """A served organisation with an Engineering department (alice, bob), an auditor, and the
    HTTP component on its own loopback port."""
    data = tmp_path / "data"
    port, http_port = free_port(), free_port()
    init = run("init", str(data), "--org", "OA Org", "--listen", f"127.0.0.1:{port}", "--json")
    assert init.returncode == 0, init.stderr
    server = RunningServer(data, "--no-advertise", "--http-listen", f"127.0.0.1:{http_port}")
    try:
        assert f"integration API and web console on https://127.0.0.1:{http_port}/" in server.output()
        admin(data, "department", "add", "Engineering")
        profiles = {name: employee(data, tmp_path, name, name.title()) for name in ("alice", "bob")}
        for name in profiles:
            admin(data, "user", "set", name, "--department", "1")
        auditor = admin(data, "user", "add", "audrey", "--name", "Audrey", "--role", "auditor")["invite"]
        profiles["audrey"] = str(tmp_path / "profile-audrey")
        enrolled = run("enroll", auditor, "--password-stdin", "--profile", profiles["audrey"], stdin="long-enough-pw\n")
        assert enrolled.returncode == 0, enrolled.stderr
        yield {"data": data, "api": Api(data, http_port), "port": http_port, "server": server, **profiles}
    finally:
        server.kill()


def add_integration(data: Path, name: str, *options: str) -> str:
    """`corridor admin integration add`; returns the token it prints once."""
    return admin(data, "integration", "add", name, *options)["token"]


def inbox(profile: str) -> list[dict]:
    shown = run("notice", "inbox", "--profile", profile, "--json")
    assert shown.returncode == 0, shown.stderr
    return [json.loads(line) for line in shown.stdout.splitlines()]


def archived(data: Path, kind: str) -> list[tuple[str, dict]]:
    """(actor, payload) of the archive's entries of one kind, in chain order (read-only)."""
    with contextlib.closing(sqlite3.connect(f"file:{data / 'corridor.sqlite'}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT actor, payload FROM archive WHERE kind = ? ORDER BY seq", (kind,)).fetchall()
    return [(actor, msgpack.unpackb(payload)) for actor, payload in rows]


def doc_example() -> str:
    """The curl one-liner in docs/integrations.md, as an admin would copy it."""
    text = (ROOT / "docs" / "integrations.md").read_text()
    block = text.split("```sh\ncurl ", 1)[1].split("```", 1)[0]
    return "curl " + block.replace("\\\n", " ")


def test_the_documented_curl_example_reaches_an_enrolled_client_and_the_archive_names_the_integration(office):
    data = office["data"]
    token = add_integration(data, "oa", "--scope", "notices", "--name", "OA 审批")
    admin(data, "policy", "set", "broadcast", "--department", "1", "--allow", "user:oa")

    command = doc_example().replace("$CORRIDOR_TOKEN", token).replace("chat.example.internal:7743", f"127.0.0.1:{office['port']}")
    command = command.replace("/etc/corridor/ca.pem", str(data / "tls" / "ca.pem"))
    sent = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30)
    assert sent.returncode == 0, sent.stderr
    answer = json.loads(sent.stdout)
    assert answer["recipients"] == 2 and answer["duplicate"] is False

    [notice] = inbox(office["alice"])
    assert (notice["sender"], notice["title"]) == ("oa", "报销审批提醒")
    found = run("audit", "search", "报销", "--profile", office["audrey"], "--json")
    assert found.returncode == 0, found.stderr
    [hit] = [json.loads(line) for line in found.stdout.splitlines() if json.loads(line)["type"] == "hit"]
    assert (hit["entry"]["actor"], hit["entry"]["kind"]) == ("oa", "notice")

    # The same Idempotency-Key again (a retry after a timeout) sends nothing more.
    again = json.loads(subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30).stdout)
    assert (again["id"], again["duplicate"]) == (answer["id"], True)
    assert len(inbox(office["bob"])) == 1


def test_wrong_token_wrong_address_and_missing_scope_are_refused_and_change_nothing(office):
    data, api = office["data"], office["api"]
    notices = add_integration(data, "oa", "--scope", "notices")
    fenced = add_integration(data, "hr", "--scope", "notices", "--allow-from", "10.20.0.0/16")
    lookups = add_integration(data, "monitor", "--scope", "presence")
    admin(data, "policy", "set", "broadcast", "--allow", "user:oa", "--allow", "user:hr", "--allow", "user:monitor")
    notice = {"title": "Fire drill", "text": "At 3pm", "everyone": True}

    status, headers, answer = api.call("POST", "/api/v1/notices", "not-a-token", notice)
    assert (status, answer["error"]["code"]) == (401, "LOGIN_FAILED")
    assert headers["www-authenticate"].startswith("Bearer")
    status, _, answer = api.call("POST", "/api/v1/notices", None, notice)
    assert status == 401 and "Authorization: Bearer" in answer["error"]["message"]
    status, _, answer = api.call("POST", "/api/v1/notices", fenced, notice)
    assert (status, answer["error"]["code"]) == (403, "FORBIDDEN")
    assert "may not call from 127.0.0.1" in answer["error"]["message"]
    status, _, answer = api.call("POST", "/api/v1/notices", lookups, notice)
    assert (status, answer["error"]["code"]) == (403, "FORBIDDEN")
    assert "needs notices" in answer["error"]["message"]
    status, _, answer = api.call("POST", "/api/v1/messages", notices, {"to": "alice", "text": "hi"})
    assert status == 403 and "needs messages" in answer["error"]["message"]
    assert inbox(office["alice"]) == [] and archived(data, "notice") == []

    # Revoked and rotated tokens are refused at once; the new one works.
    admin(data, "integration", "revoke", "monitor")
    assert api.call("GET", "/api/v1/presence?user=alice", lookups)[0] == 401
    rotated = admin(data, "integration", "rotate", "oa")["token"]
    assert api.call("POST", "/api/v1/notices", notices, notice)[0] == 401
    assert api.call("POST", "/api/v1/notices", rotated, notice)[0] == 201
    assert [n["title"] for n in inbox(office["alice"])] == ["Fire drill"]
    gone = run("admin", "--data", str(data), "integration", "revoke", "monitor")
    assert gone.returncode == 4 and "NO_SUCH_INTEGRATION" in gone.stderr
    taken = run("admin", "--data", str(data), "integration", "add", "alice", "--scope", "presence")
    assert taken.returncode == 1 and "ALREADY_EXISTS" in taken.stderr
    fence = run("admin", "--data", str(data), "integration", "add", "x", "--scope", "presence", "--allow-from", "10.0.0.0/99")
    assert fence.returncode == 2 and "not an IP address or network" in fence.stderr
    listed = admin(data, "integration", "list")["integrations"]
    assert [(i["name"], i["scopes"], i["allow_from"]) for i in listed] == [
        ("hr", ["notices"], ["10.20.0.0/16"]),
        ("oa", ["notices"], []),
    ]


def test_a_bot_message_lookups_and_bad_input(office):
    data, api = office["data"], office["api"]
    token = add_integration(data, "helpdesk", "--scope", "messages", "--scope", "presence", "--scope", "directory")

    status, _, sent = api.call(
        "POST", "/api/v1/messages", token, {"to": "alice", "text": "Ticket #42 is fixed"}, {"Idempotency-Key": "t42"}
    )
    assert status == 201 and sent["seq"] >= 1
    status, _, again = api.call(
        "POST", "/api/v1/messages", token, {"to": "alice", "text": "Ticket #42 is fixed"}, {"Idempotency-Key": "t42"}
    )
    assert (status, again["seq"], again["duplicate"]) == (200, sent["seq"], True)
    got = run("listen", "--profile", office["alice"], "--count", "1", "--timeout", "10", "--json")
    messages = [json.loads(line) for line in got.stdout.splitlines() if json.loads(line).get("type") == "message"]
    assert [(m["sender"], m["text"]) for m in messages] == [("helpdesk", "Ticket #42 is fixed")]

    status, _, presence = api.call("GET", "/api/v1/presence?user=alice&user=bob", token)
    assert status == 200 and [p["user"] for p in presence["presence"]] == ["alice", "bob"]
    status, _, found = api.call("GET", "/api/v1/directory?q=bob", token)
    assert status == 200 and [p["user"] for p in found["people"]] == ["bob"]

    # Bad input gets a clear 400 naming what is wrong; the server keeps serving.
    for body, expected in (
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"to": "alice"}).encode(), "'text' is missing"),
        (json.dumps({"to": "alice", "text": 5}).encode(), "text"),
        (b"x" * 70_000, "larger than"),
    ):
        status, _, answer = api.call("POST", "/api/v1/messages", token, body)
        assert (status, answer["error"]["code"]) == (400, "BAD_MESSAGE"), body[:20]
        assert expected in answer["error"]["message"]
    assert api.call("GET", "/api/v1/directory?q=bob&limit=lots", token)[0] == 400
    assert api.call("POST", "/api/v1/messages", token, {"to": "nobody", "text": "hi"})[0] == 404
    assert api.call("GET", "/api/v1/presence?user=alice", token)[0] == 200

    # The message and each lookup that was answered are archived, with the integration as the actor.
    assert [(a, p["call"]) for a, p in archived(data, "integration_call")] == [
        ("helpdesk", "presence"),
        ("helpdesk", "directory"),
        ("helpdesk", "presence"),
    ]
    assert [(a, p["text"]) for a, p in archived(data, "message")] == [("helpdesk", "Ticket #42 is fixed")]


def test_an_integration_over_its_rate_waits_as_told(office):
    data, api = office["data"], office["api"]
    token = add_integration(data, "chatty", "--scope", "presence", "--rate", "6")  # ten seconds' worth: a burst of 1
    assert api.call("GET", "/api/v1/presence?user=alice", token)[0] == 200
    status, headers, answer = api.call("GET", "/api/v1/presence?user=alice", token)
    assert (status, answer["error"]["code"]) == (429, "RATE_LIMITED")
    assert 1 <= int(headers["retry-after"]) <= 10


def test_the_committed_openapi_description_is_the_one_served(office):
    status, _, served = office["api"].call("GET", "/api/v1/openapi.json")
    assert status == 200 and served == SPEC
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert committed == served, "docs/openapi.json is stale: regenerate it as docs/integrations.md says"


def test_the_http_component_is_off_unless_configured(tmp_path):
    data = tmp_path / "data"
    assert run("init", str(data), "--org", "Quiet", "--listen", f"127.0.0.1:{free_port()}").returncode == 0
    server = RunningServer(data, "--no-advertise")
    try:
        time.sleep(0.2)
        assert "integration API" not in server.output()
    finally:
        server.kill()


def test_a_batch_of_reminders_each_with_its_own_outcome(office):
    data, api = office["data"], office["api"]
    token = add_integration(data, "oa", "--scope", "notices", "--rate", "60")  # bursts of 10 calls
    admin(data, "policy", "set", "broadcast", "--department", "1", "--allow", "user:oa")
    batch = {
        "notices": [
            {"id": "r1", "title": "报销审批提醒", "text": "3 张报销单", "users": ["alice"]},
            {"id": "r2", "title": "请假审批提醒", "text": "1 张请假单", "departments": [1]},
            {"id": "r3", "title": "No text"},
            {"id": "r4", "title": "Everyone", "text": "x", "everyone": True},  # the rule covers department 1 only
            "not an object",
        ]
    }
    status, _, answer = api.call("POST", "/api/v1/notices/batch", token, batch)
    assert status == 200
    first, second, missing, refused, garbage = answer["results"]
    assert (first["recipients"], second["recipients"]) == (1, 2)
    assert missing["error"]["code"] == "BAD_MESSAGE" and "notices[2]" in missing["error"]["message"]
    assert refused["error"]["code"] == "FORBIDDEN"
    assert garbage["error"]["code"] == "BAD_MESSAGE"
    assert sorted(n["title"] for n in inbox(office["alice"])) == ["报销审批提醒", "请假审批提醒"]

    # A retried batch sends nothing twice; one larger than the rate's burst is refused whole.
    status, _, again = api.call("POST", "/api/v1/notices/batch", token, {"notices": batch["notices"][:2]})
    assert [r["duplicate"] for r in again["results"]] == [True, True]
    assert [r["id"] for r in again["results"]] == [first["id"], second["id"]]
    many = {"notices": [{"title": f"n{i}", "text": "x", "users": ["bob"]} for i in range(11)]}
    status, _, answer = api.call("POST", "/api/v1/notices/batch", token, many)
    assert (status, answer["error"]["code"]) == (429, "RATE_LIMITED")
    assert len(inbox(office["bob"])) == 1
    assert api.call("POST", "/api/v1/notices/batch", token, {"notices": []})[0] == 400
