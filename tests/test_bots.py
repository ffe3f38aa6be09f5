"""Bot accounts: an admin creates one, it enrolls without a password, the directory shows it as
a bot, a password never logs it in, and the example script of docs/bots.md answers people's
messages against a real `corridor serve`."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from corridor.client.client import Client
from corridor.client.directory import Directory, sync_directory
from corridor.client.enrollment import enroll
from corridor.client.profile import Credential, Profile
from corridor.client.transport import running
from corridor.protocol.errors import AuthenticationError, RequestError
from corridor.protocol.messages import DirectorySyncResult, Login, Person, RoleSet, UserAdd
from corridor.server.features.accounts import passwords

from .cli_helpers import admin, employee, run
from .helpers import PASSWORD, admin_request

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # for the desktop test

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "answering_bot.py"


async def add_bot(org, username: str = "helper") -> str:
    """Create a bot account; returns its invite."""
    return (await admin_request(org.data_dir, UserAdd(username=username, display_name="Helpdesk Bot", bot=True))).invite


async def test_a_bot_enrolls_without_a_password_and_never_logs_in_with_one(org, tmp_path, monkeypatch):
    invite = await add_bot(org)
    with trio.fail_after(30):
        with pytest.raises(RequestError) as with_password:
            await enroll(Profile(tmp_path / "wrong"), invite, PASSWORD, "script host")
        assert (with_password.value.code, with_password.value.message) == ("BAD_MESSAGE", "bot accounts have no password")
        bot = Profile(tmp_path / "bot")
        enrolled = await enroll(bot, invite, device_name="script host")  # the refusal left the invite usable
        assert (enrolled.user, enrolled.role) == ("helper", "user") and enrolled.device_token
        with sqlite3.connect(org.server.config.database_path) as db:
            assert db.execute("SELECT password_hash, bot FROM users WHERE username = 'helper'").fetchone() == (None, 1)

        checked = []
        real_verify = passwords.verify_password_sync
        monkeypatch.setattr(
            passwords, "verify_password_sync", lambda password, encoded: checked.append(encoded) or real_verify(password, encoded)
        )
        await org.user("alice")
        refusals = []
        for user in ("helper", "alice"):  # the bot with any password, a person with a wrong one
            async with running(await org.raw_tls()) as channel:
                await channel.handshake()
                with pytest.raises(AuthenticationError) as refused:
                    await channel.request(Login(user=user, password="not the password"))
                refusals.append((refused.value.code, refused.value.message))
        assert refusals[0] == refusals[1] == ("LOGIN_FAILED", refusals[0][1])
        # The bot's attempt cost a full hash (against the dummy), as a wrong password does: no
        # answer and no timing tells a bot from a person.
        assert checked[0] == passwords._DUMMY and len(checked) == 2
        async with Client.open(bot, receive=False) as client:  # its device token does log in
            assert client.login.user == "helper"


async def test_a_bot_has_the_role_user(org):
    with trio.fail_after(10):
        with pytest.raises(RequestError) as made_admin:
            await admin_request(org.data_dir, UserAdd(username="boss-bot", display_name="Boss", role="admin", bot=True))
        await add_bot(org)
        with pytest.raises(RequestError) as promoted:
            await admin_request(org.data_dir, RoleSet(user="helper", role="auditor"))
    assert made_admin.value.code == promoted.value.code == "BAD_MESSAGE"


async def test_a_persons_invite_still_needs_a_password(org, tmp_path):
    invite = (await admin_request(org.data_dir, UserAdd(username="dana", display_name="Dana"))).invite
    with trio.fail_after(10), pytest.raises(RequestError) as refused:
        await enroll(Profile(tmp_path / "dana"), invite, device_name="laptop")
    assert refused.value.code == "WEAK_PASSWORD"


async def test_the_directory_copy_marks_the_bot(org, tmp_path):
    alice = await org.user("alice")
    await add_bot(org)
    with trio.fail_after(30):
        async with Client.open(alice, receive=False) as client:
            await sync_directory(client)
    with Directory(alice) as directory:
        assert {p.user: p.bot for p in directory.people()} == {"admin": False, "alice": False, "helper": True}


def test_a_copy_made_before_bots_downloads_everyone_again(tmp_path):
    profile = Profile(tmp_path / "profile")
    profile.save_enrollment(Credential("127.0.0.1", 1, "127.0.0.1", "Org", "me", 1, "token", "a" * 64), "CA")
    with sqlite3.connect(profile.path / "directory.sqlite") as old:  # the schema without `bot`
        old.executescript(
            """
            CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 1), ca_sha256 TEXT NOT NULL, version INTEGER NOT NULL);
            CREATE TABLE people (user TEXT PRIMARY KEY, display_name TEXT NOT NULL, title TEXT NOT NULL,
                departments TEXT NOT NULL, email TEXT NOT NULL, phone TEXT NOT NULL, extension TEXT NOT NULL,
                employee_no TEXT NOT NULL, manager TEXT NOT NULL, active INTEGER NOT NULL);
            INSERT INTO people VALUES ('helper', 'Helpdesk Bot', '', '[]', '', '', '', '', '', 1);
            """
        )
        old.execute("INSERT INTO state VALUES (1, ?, 7)", ("a" * 64,))
    old.close()
    bot = Person("helper", "Helpdesk Bot", "", (), "", "", "", "", "", True, bot=True)
    with Directory(profile) as directory:
        assert (directory.version(), directory.people()) == (0, [])  # the next sync starts from 0
        directory.apply(DirectorySyncResult(version=7, more=False, people=(bot,), departments=()))
    with Directory(profile) as directory:
        assert directory.people() == [bot]
    profile.close()


def test_the_example_bot_answers_messages(served, tmp_path):
    data, _, _ = served
    added = admin(data, "user", "add", "helper", "--name", "Helpdesk Bot", "--bot")
    assert (added["role"], added["bot"]) == ("user", True)
    bot = str(tmp_path / "profile-helper")
    with_password = run("enroll", added["invite"], "--password-stdin", "--profile", bot, "--json", stdin="long-enough-pw\n")
    assert with_password.returncode == 2 and json.loads(with_password.stdout)["error"]["code"] == "BAD_MESSAGE"
    enrolled = run("enroll", added["invite"], "--bot", "--profile", bot)
    assert enrolled.returncode == 0, enrolled.stderr

    alice = employee(data, tmp_path, "alice", "Alice")
    assert run("send", "helper", "help", "--profile", alice).returncode == 0  # while the bot is not running
    answering = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--profile", bot, "--count", "2", "--timeout", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # What arrived while it was stopped is answered first (the script stops within 30 s, so
        # this read ends too); then a message sent while it runs.
        first = answering.stdout.readline()
        assert run("send", "helper", "is the printer fixed?", "--profile", alice).returncode == 0
        out, err = answering.communicate(timeout=60)
    finally:
        answering.kill()
    assert answering.returncode == 0 and [first, *out.splitlines()] == ["answered alice (#1)\n", "answered alice (#3)"], err

    history = run("history", "helper", "--profile", alice, "--json")
    said = [(m["sender"], m["text"]) for m in map(json.loads, history.stdout.splitlines())]
    assert said == [
        ("alice", "help"),
        ("helper", "I am the helpdesk bot. Send 'help' for this text; anything else, I repeat it back to you."),
        ("alice", "is the printer fixed?"),
        ("helper", "You said: is the printer fixed?"),
    ]
    found = run("directory", "search", "helpdesk", "--profile", alice)
    assert found.stdout.strip() == "Helpdesk Bot (helper) [bot]"
    as_json = json.loads(run("directory", "search", "helpdesk", "--profile", alice, "--json").stdout)
    assert (as_json["user"], as_json["bot"]) == ("helper", True)


def test_docs_show_the_example_as_it_is():
    script = EXAMPLE.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "bots.md").read_text(encoding="utf-8"), re.DOTALL)
    assert script in blocks


def test_the_desktop_marks_a_bot(qtbot):
    pytest.importorskip("PySide6")
    from corridor.client.desktop.org_tree import BOT_MARK, OrgTreeView
    from corridor.client.directory import OrgTree

    view = OrgTreeView("alice")
    qtbot.addWidget(view)
    people = [
        Person("helper", "Helpdesk Bot", "", (), "", "", "", "", "", True, bot=True),
        Person("bob", "Bob", "", (), "", "", "", "", "", True),
    ]
    view.show_tree(OrgTree(roots=(), unassigned=tuple(people)), people)
    others = view.tree.topLevelItem(0)
    labels = [others.child(i).text(0) for i in range(others.childCount())]
    assert labels == [BOT_MARK + "Helpdesk Bot", "Bob"]
    assert "bot" in others.child(0).toolTip(0) and "bot" not in others.child(1).toolTip(0)
    view.show_results(people[:1])
    assert view.results.topLevelItem(0).text(0) == BOT_MARK + "Helpdesk Bot"
