"""The account lifecycle as admins and employees run it (real processes): deactivating someone
signs them out at once, an invite can be reissued, and people revoke their own lost devices."""

import json
import subprocess
import time

from .cli_helpers import CORRIDOR, admin, employee, run

PASSWORD = "long-enough-pw\n"


def fails(status: int, code: str, *args: str) -> subprocess.CompletedProcess:
    """Run `corridor ARGS…`, which must exit `status` naming error `code`."""
    result = run(*args)
    assert result.returncode == status and result.stderr.rstrip().endswith(f"[{code}]"), (result.returncode, result.stderr)
    return result


def listening(profile: str) -> subprocess.Popen:
    """`corridor listen --timeout 30` for a profile that has a message waiting, once it printed
    that message (so it is logged in and live)."""
    process = subprocess.Popen(
        [CORRIDOR, "listen", "--timeout", "30", "--profile", profile],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = process.stdout.readline()  # --timeout bounds the wait if it never connects
    assert "→" in first, process.communicate()[1]
    return process


def ends_disabled(process: subprocess.Popen, started: float) -> None:
    """The listener exits 3 with ACCOUNT_DISABLED within a few seconds of `started`."""
    try:
        _, stderr = process.communicate(timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 3 and stderr.rstrip().endswith("[ACCOUNT_DISABLED]"), (process.returncode, stderr)
    assert time.monotonic() - started < 5


def test_a_deactivated_account_is_signed_out_at_once_until_reactivated(served, tmp_path):
    data, _, server = served
    alice = employee(data, tmp_path, "alice", "Alice")
    bob = employee(data, tmp_path, "bob", "Bob")
    assert run("send", "bob", "before leaving", "--profile", alice).returncode == 0
    listener = listening(bob)

    started = time.monotonic()
    deactivated = admin(data, "user", "deactivate", "bob")
    assert deactivated["ok"] and deactivated["user"] == "bob" and deactivated["active"] is False
    ends_disabled(listener, started)
    fails(3, "LOGIN_FAILED", "send", "alice", "still here?", "--profile", bob)
    fails(4, "NO_SUCH_USER", "send", "bob", "are you there?", "--profile", alice)
    history = run("history", "bob", "--profile", alice)
    assert history.returncode == 0 and "alice → bob: before leaving" in history.stdout  # messages stay

    back = run("admin", "--data", str(data), "user", "reactivate", "bob")
    assert back.returncode == 0 and back.stdout == "Reactivated bob: their devices that were not revoked can log in again.\n"
    sent = run("send", "alice", "back again", "--profile", bob)
    assert sent.returncode == 0, sent.stderr
    fails(4, "NO_SUCH_USER", "admin", "--data", str(data), "user", "deactivate", "nobody")
    assert server.stop() == 0


def test_a_reissued_invite_replaces_the_unused_one(served, tmp_path):
    data, _, server = served
    unused = admin(data, "user", "add", "carol", "--name", "Carol")["invite"]
    reissued = run("admin", "--data", str(data), "user", "invite", "carol")
    assert reissued.returncode == 0, reissued.stderr
    assert reissued.stdout.startswith("New invite for carol; their earlier unused invites no longer work.")
    invite = reissued.stdout.splitlines()[-1].strip()
    assert invite.startswith("corridor://127.0.0.1:")

    stale = ("enroll", unused, "--password-stdin", "--profile", str(tmp_path / "stale"))
    assert run(*stale, stdin=PASSWORD).returncode == 3
    fresh = run("enroll", invite, "--password-stdin", "--profile", str(tmp_path / "fresh"), "--json", stdin=PASSWORD)
    assert fresh.returncode == 0 and json.loads(fresh.stdout)["user"] == "carol", fresh.stderr
    used = run("enroll", invite, "--password-stdin", "--profile", str(tmp_path / "again"), stdin=PASSWORD)
    assert used.returncode == 3 and "[INVITE_INVALID]" in used.stderr
    fails(4, "NO_SUCH_USER", "admin", "--data", str(data), "user", "invite", "nobody")
    assert server.stop() == 0


def devices(profile: str) -> list[dict]:
    listed = run("devices", "--profile", profile, "--json")
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)["devices"]


def test_people_list_and_revoke_their_own_devices(served, tmp_path):
    data, _, server = served
    laptop = employee(data, tmp_path, "dave", "Dave")
    phone = str(tmp_path / "dave-phone")
    invite = admin(data, "user", "invite", "dave")["invite"]  # a second device needs a new invite
    enrolled = run("enroll", invite, "--password-stdin", "--device-name", "phone", "--profile", phone, stdin=PASSWORD)
    assert enrolled.returncode == 0, enrolled.stderr

    mine, other = devices(laptop)
    assert (mine["current"], other["current"], other["name"], other["revoked"]) == (True, False, "phone", False)
    human = run("devices", "--profile", phone).stdout.splitlines()
    assert human[0].startswith(f"{mine['id']}: {mine['name']}, enrolled ") and not human[0].endswith("(this device)")
    assert human[1].startswith(f"{other['id']}: phone, enrolled ") and human[1].endswith(" (this device)")

    refused = fails(2, "BAD_MESSAGE", "devices", "revoke", str(mine["id"]), "--profile", laptop)
    assert "--force" in refused.stderr
    fails(4, "NO_SUCH_DEVICE", "devices", "revoke", "9999", "--profile", laptop)

    assert run("send", "dave", "note to self", "--profile", laptop).returncode == 0
    listener = listening(phone)
    started = time.monotonic()
    revoked = run("devices", "--profile", laptop, "revoke", str(other["id"]))  # options before `revoke` count too
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout == f"Revoked device {other['id']} of dave: its live sessions ended and it can no longer log in.\n"
    ends_disabled(listener, started)
    fails(3, "LOGIN_FAILED", "send", "dave", "from the lost phone", "--profile", phone)
    assert [d["revoked"] for d in devices(laptop)] == [False, True]

    others = employee(data, tmp_path, "erin", "Erin")
    admin(data, "user", "add", "frank", "--name", "Frank")
    none = run("admin", "--data", str(data), "device", "list", "frank")
    assert none.returncode == 0 and none.stdout == "frank has no devices (not enrolled yet)\n"
    assert [d["name"] for d in admin(data, "device", "list", "dave")["devices"]] == [mine["name"], "phone"]
    assert admin(data, "device", "revoke", "dave", str(mine["id"])) == {"ok": True, "user": "dave", "device_id": mine["id"]}
    fails(3, "LOGIN_FAILED", "devices", "--profile", laptop)

    (own,) = devices(others)
    forced = run("devices", "revoke", str(own["id"]), "--force", "--profile", others, "--json")
    assert forced.returncode == 0 and json.loads(forced.stdout) == {"ok": True, "user": "erin", "device_id": own["id"]}
    fails(3, "LOGIN_FAILED", "devices", "--profile", others)
    assert server.stop() == 0
