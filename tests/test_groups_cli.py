"""`corridor group` as employees use it: real processes against a real `corridor serve`."""

import json

from .cli_helpers import employee, run


def ok(*args: str) -> dict | list:
    result = run(*args, "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return lines[0] if len(lines) == 1 else lines


def test_a_group_is_created_used_and_run_from_the_command_line(served, tmp_path):
    data, _, _ = served
    alice = employee(data, tmp_path, "alice", "Alice")
    bob = employee(data, tmp_path, "bob", "Bob")
    created = ok("group", "create", "Launch", "--member", "bob", "--welcome", "Hi, read the announcement", "--profile", alice)
    group = str(created["id"])
    assert created["members"] == ["alice", "bob"] and created["owner"] == "alice"

    assert ok("group", "send", "Launch", "hello @alice", "--profile", bob)["seq"] == 2  # by its name
    ok("group", "announce", group, "Ship on Friday", "--profile", alice)
    ok("group", "ack", group, "--profile", bob)
    shown = ok("group", "show", group, "--profile", alice)
    assert shown["announcement"] == "Ship on Friday" and shown["announcement_read_by"] == ["bob"]

    heard = ok("listen", "--count", "3", "--timeout", "10", "--profile", alice)
    assert [(m["kind"], m["sender"], m["text"], m["mentions"]) for m in heard] == [
        ("system", "alice", "alice created the group 'Launch' with bob", []),
        ("text", "bob", "hello @alice", ["alice"]),
        ("system", "alice", "alice pinned an announcement: Ship on Friday", []),
    ]
    text = run("group", "history", group, "--profile", bob).stdout
    assert f"bob → #{group}: hello @alice" in text and f"#{group} · alice pinned an announcement" in text

    denied = run("group", "dissolve", group, "--profile", bob)
    assert denied.returncode == 3 and denied.stderr.rstrip().endswith("[FORBIDDEN]"), denied.stderr
    missing = run("group", "show", "Nope", "--profile", bob)
    assert missing.returncode == 4 and "NO_SUCH_GROUP" in missing.stderr
    assert [g["role"] for g in [ok("group", "list", "--profile", bob)]] == ["member"]
    ok("group", "dissolve", group, "--profile", alice)
    assert run("group", "list", "--profile", bob, "--json").stdout == ""
