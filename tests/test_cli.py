"""The `corridor` command as users run it: real processes, real server, documented exit codes."""

import json
import os
import subprocess
import sys
import time

from .cli_helpers import CORRIDOR, RunningServer, employee, free_port, run


def test_two_people_chat_with_the_cli(served, tmp_path):
    data, init, server = served
    assert init["invite"].startswith("corridor://127.0.0.1:") and init["admin"] == "admin"
    profiles = {}
    for user in ("alice", "bob"):
        added = run("admin", "--data", str(data), "user", "add", user, "--name", user.title(), "--json")
        assert added.returncode == 0, added.stderr
        profiles[user] = str(tmp_path / user)
        enrolled = run(
            "enroll",
            json.loads(added.stdout)["invite"],
            "--password-stdin",
            "--profile",
            profiles[user],
            "--json",
            stdin="s3cret-pass\n",
        )
        assert enrolled.returncode == 0, enrolled.stderr
        assert json.loads(enrolled.stdout)["user"] == user

    for text in ("hello bob", "第二条消息"):
        sent = run("send", "bob", text, "--profile", profiles["alice"], "--json")
        assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["seq"] == 2

    listened = run("listen", "--count", "2", "--timeout", "20", "--profile", profiles["bob"], "--json")
    assert listened.returncode == 0, listened.stderr
    lines = [json.loads(line) for line in listened.stdout.splitlines()]
    assert [(m["sender"], m["text"], m["seq"]) for m in lines if m["type"] == "message"] == [
        ("alice", "hello bob", 1),
        ("alice", "第二条消息", 2),
    ]

    again = run("listen", "--timeout", "1", "--profile", profiles["bob"], "--json")
    assert [json.loads(line)["type"] for line in again.stdout.splitlines()].count("message") == 0  # already seen

    history = run("history", "alice", "--profile", profiles["bob"])
    assert history.returncode == 0 and "alice → bob: hello bob" in history.stdout

    unknown = run("send", "nobody", "hi", "--profile", profiles["alice"], "--json")
    assert unknown.returncode == 4 and "NO_SUCH_USER" in unknown.stderr
    assert json.loads(unknown.stdout)["error"]["code"] == "NO_SUCH_USER"

    reused = run("admin", "--data", str(data), "user", "add", "alice", "--name", "Again")
    assert reused.returncode == 1 and "already exists" in reused.stderr

    assert server.stop() == 0


def test_errors_are_clear_and_exit_codes_documented(served, tmp_path):
    data, init, server = served
    not_enrolled = run("send", "bob", "hi", "--profile", str(tmp_path / "empty"))
    assert not_enrolled.returncode == 3 and "corridor enroll" in not_enrolled.stderr

    garbage = run("enroll", "http://example/not-an-invite", "--password-stdin", "--profile", str(tmp_path / "x"), stdin="pw\n")
    assert garbage.returncode == 2 and "not a valid Corridor invite" in garbage.stderr

    tampered = init["invite"].replace(init["ca_sha256"], "f" * 64)
    untrusted = run("enroll", tampered, "--password-stdin", "--profile", str(tmp_path / "y"), stdin="long-enough-pw\n")
    assert untrusted.returncode == 5 and "UNTRUSTED_SERVER" in untrusted.stderr

    second = run("serve", str(data), "--no-advertise")
    assert second.returncode == 2 and "another 'corridor serve'" in second.stderr

    exists = run("init", str(data), "--org", "Again")
    assert exists.returncode == 2 and "not empty" in exists.stderr

    no_admin_socket = run("admin", "--data", str(tmp_path / "nowhere"), "user", "add", "x", "--name", "X")
    assert no_admin_socket.returncode == 5 and "is 'corridor serve' running?" in no_admin_socket.stderr

    assert run("send").returncode == 2  # argparse usage error
    assert server.stop() == 0

    down = run("admin", "--data", str(data), "user", "add", "x", "--name", "X")
    assert down.returncode == 5


def test_bad_config_names_the_key(tmp_path):
    data = tmp_path / "data"
    assert run("init", str(data), "--org", "Cfg Org").returncode == 0
    config = data / "corridor.toml"
    config.write_text(config.read_text() + "\n[limits]\nmax_frame_bytez = 5\n")
    result = run("serve", str(data), "--no-advertise")
    assert result.returncode == 2 and "limits.max_frame_bytez" in result.stderr
    config.write_text(config.read_text().replace("max_frame_bytez = 5", 'idle_timeout = "soon"'))
    result = run("serve", str(data), "--no-advertise")
    assert result.returncode == 2 and "limits.idle_timeout" in result.stderr and "float" in result.stderr
    missing = run("serve", str(tmp_path / "missing"))
    assert missing.returncode == 2 and "corridor init" in missing.stderr


def test_discover_finds_the_server_on_loopback(tmp_path):
    data = tmp_path / "data"
    port = free_port()
    assert run("init", str(data), "--org", f"Discovery Org {os.getpid()}", "--listen", f"127.0.0.1:{port}").returncode == 0
    server = RunningServer(data)  # advertising on, on the interface it listens on: 127.0.0.1
    try:
        found = run("discover", "--interface", "127.0.0.1", "--timeout", "3", "--json")
        assert found.returncode == 0, found.stderr
        servers = [json.loads(line) for line in found.stdout.splitlines()]
        ours = [s for s in servers if s["org"] == f"Discovery Org {os.getpid()}"]
        assert ours and ours[0]["port"] == port and ours[0]["addresses"] == ["127.0.0.1"]
        ca = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from corridor.deploy.pki import fingerprint; print(fingerprint(open('{data}/tls/ca.pem','rb').read()))",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert ours[0]["ca_sha256"] == ca.stdout.strip()
        # The server "moved": the saved address no longer answers, --discover finds it.
        added = run("admin", "--data", str(data), "user", "add", "alice", "--name", "Alice", "--json")
        profile = str(tmp_path / "alice")
        assert (
            run(
                "enroll", json.loads(added.stdout)["invite"], "--password-stdin", "--profile", profile, stdin="long-enough-pw\n"
            ).returncode
            == 0
        )
        stale = f"127.0.0.1:{free_port()}"
        lost = run("send", "admin", "hi", "--profile", profile, "--server", stale)
        assert lost.returncode == 5 and "CONNECTION_LOST" in lost.stderr
        found = run(
            "send", "admin", "hi", "--profile", profile, "--server", stale, "--discover", "--interface", "127.0.0.1", "--json"
        )
        assert found.returncode == 0, found.stderr
        assert json.loads(found.stdout)["seq"] == 1
        assert run("send", "admin", "hi", "--profile", profile, "--server", "nonsense").returncode == 2
        assert server.stop() == 0
    finally:
        server.kill()


def test_help_lists_every_command():
    result = run("--help")
    assert result.returncode == 0
    for command in ("init", "serve", "enroll", "send", "listen", "history", "status", "directory", "discover", "admin"):
        assert command in result.stdout
    assert "presence" not in run("status", "--help").stdout and run("presence").returncode == 2  # replaced by status


def test_status_and_quiet_hours_with_the_cli(served, tmp_path):
    data, _, server = served
    alice = employee(data, tmp_path, "alice", "Alice")
    bob = employee(data, tmp_path, "bob", "Bob")
    quiet = ["status", "quiet-hours", "--profile", bob]

    none = run(*quiet, "--json")
    assert none.returncode == 0, none.stderr
    assert json.loads(none.stdout) == {"ok": True, "quiet_hours": None, "active": False, "until": 0.0}
    weekly = run(*quiet, "19:30-07:00", "--tz", "Asia/Shanghai", "--days", "mon,Wed")
    assert weekly.returncode == 0 and weekly.stdout.startswith("quiet hours 19:30-07:00 (Asia/Shanghai), mon, wed"), weekly

    # A window around the server's present moment (in UTC), so it is on now.
    minute = int(time.time() // 60)
    start, end = (f"{m % 1440 // 60:02d}:{m % 60:02d}" for m in (minute - 60, minute + 120))
    window = f"{start}-{end}"
    on = run(*quiet, window, "--tz", "UTC", "--urgent-from", "Carol", "--json")
    assert on.returncode == 0, on.stderr
    setting = json.loads(on.stdout)
    assert setting["active"] and setting["quiet_hours"] == {
        "start": start,
        "end": end,
        "tz": "UTC",
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "urgent_from": ["carol"],
    }
    shown = run(*quiet)
    assert shown.returncode == 0
    assert shown.stdout.strip() == (
        f"quiet hours {start}-{end} (UTC), every day; urgent messages from carol still come through; inside them now, until {end}"
    )

    for args, field in [(("25:00-07:00",), "start"), (("22:00-07:00", "--tz", "Nowhere/Land"), "tz")]:
        bad = run(*quiet, *args, "--json")
        assert bad.returncode == 2 and f"field '{field}'" in bad.stderr and bad.stderr.rstrip().endswith("[BAD_MESSAGE]")
        assert json.loads(bad.stdout)["error"]["code"] == "BAD_MESSAGE"
    for args in (("--off", "22:00-07:00"), ("--tz", "UTC"), ("2200",)):
        assert run(*quiet, *args).returncode == 2
    assert run("status", "set", "away", "--urgent-from", "carol", "--profile", alice).returncode == 2
    assert run("status", "set", "asleep", "--profile", alice).returncode == 2
    assert json.loads(run(*quiet, "--json").stdout) == setting  # the bad tries changed nothing

    # While bob is connected he is on a break: alice sees it, her message waits.
    listener = subprocess.Popen(
        [CORRIDOR, "listen", "--count", "1", "--timeout", "30", "--profile", bob, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            show = run("status", "show", "bob", "nobody", "--profile", alice, "--json")
            assert show.returncode == 0, show.stderr
            (seen,) = [json.loads(line) for line in show.stdout.splitlines()]  # unknown names are left out
            if seen["status"] == "break" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert seen == {"type": "presence", "user": "bob", "status": "break", "text": f"quiet hours until {end}"}
        assert run("status", "show", "bob", "--profile", alice).stdout.strip() == f"bob is on a break: quiet hours until {end}"
        sent = run("send", "bob", "see you tomorrow", "--profile", alice, "--json")
        assert sent.returncode == 0 and json.loads(sent.stdout)["held"] is True

        off = run(*quiet, "--off", "--json")  # from another device: the break ends, the message comes
        assert off.returncode == 0 and json.loads(off.stdout)["quiet_hours"] is None
        out, err = listener.communicate(timeout=30)
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.communicate()
    assert listener.returncode == 0, err
    assert [json.loads(line)["text"] for line in out.splitlines() if json.loads(line)["type"] == "message"] == [
        "see you tomorrow"
    ]

    away = run("status", "set", "away", "--text", "back at 2", "--profile", alice, "--json")
    assert away.returncode == 0 and json.loads(away.stdout) == {"ok": True, "status": "away", "text": "back at 2"}
    assert run("status", "show", "alice", "--profile", bob).stdout.strip() == "alice is offline"  # it lasted one connection
    assert server.stop() == 0


def test_empty_listen_list_is_a_config_error(tmp_path):
    data = tmp_path / "data"
    assert run("init", str(data), "--org", "Cfg Org").returncode == 0
    config = data / "corridor.toml"
    config.write_text(config.read_text().replace('listen = ["127.0.0.1:7740"]', "listen = []"))
    result = run("serve", str(data), "--no-advertise")
    assert result.returncode == 2 and "server.listen" in result.stderr
