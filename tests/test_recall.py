"""Recall and edit through the real server: people see a message taken back or changed, only
its sender may do it (or a group's owner and admins may recall), only within the window, and
the archive keeps the original and records the change."""

import json
import sqlite3

import pytest
import trio

from corridor.client.client import Client
from corridor.protocol.errors import NotFound, PermissionDenied, RequestError
from corridor.protocol.messages import Edit, GroupCreate, GroupHistory, MessageEvent, Recall
from corridor.server.features.archive.store import entries

from .cli_helpers import employee, run
from .conftest import serve_with


async def messages(client: Client, count: int) -> list[MessageEvent]:
    got = []
    with trio.fail_after(5):
        async for event in client.events():
            if isinstance(event, MessageEvent):
                got.append(event)
                if len(got) == count:
                    return got
    return got


def archived_texts(data_dir) -> list[tuple[str, str, int]]:
    """(kind, text, ref) of every archived message, straight from the data dir's database."""
    conn = sqlite3.connect(data_dir / "corridor.sqlite")
    try:
        found = entries(conn, 0, 10_000)
    finally:
        conn.close()
    return [(e.payload.get("kind", "text"), e.payload["text"], e.payload.get("ref", 0)) for e in found if e.kind == "message"]


async def test_a_recalled_message_is_gone_for_people_and_kept_marked_in_the_archive(org):
    alice, bob = await org.user("alice"), await org.user("bob")
    async with Client.open(alice, receive=False) as a, Client.open(bob) as b:
        sent = await a.send("bob", "the password is hunter2")
        (original,) = await messages(b, 1)
        assert original.text == "the password is hunter2"
        recall = await a.request(Recall(conversation=sent.conversation, seq=sent.seq))
        (notice,) = await messages(b, 1)
        assert (notice.kind, notice.ref, notice.text, notice.sender) == ("recall", sent.seq, "", "alice")
        again = await a.request(Recall(conversation=sent.conversation, seq=sent.seq))  # a retry: the same answer
        assert (again.seq, again.duplicate) == (recall.seq, True)
        history = (await b.history("alice")).messages
        assert [(m.seq, m.kind, m.text) for m in history] == [(1, "recalled", ""), (2, "recall", "")]
        with pytest.raises(NotFound):
            await a.request(Edit(conversation=sent.conversation, seq=sent.seq, text="too late"))
    assert archived_texts(org.data_dir) == [("text", "the password is hunter2", 0), ("recall", "", 1)]


async def test_an_edit_changes_the_text_everyone_sees_and_the_archive_keeps_both(org):
    alice, bob = await org.user("alice"), await org.user("bob")
    async with Client.open(alice, receive=False) as a, Client.open(bob) as b:
        sent = await a.send("bob", "meet at 3")
        await a.request(Edit(conversation=sent.conversation, seq=sent.seq, text="meet at 4"))
        _, edit = await messages(b, 2)
        assert (edit.kind, edit.ref, edit.text) == ("edit", sent.seq, "meet at 4")
        with pytest.raises(PermissionDenied):
            await b.request(Edit(conversation=sent.conversation, seq=sent.seq, text="meet never"))  # not his
        first = (await b.history("alice")).messages[0]
        assert (first.text, first.kind) == ("meet at 4", "text") and first.edited > 0
    assert archived_texts(org.data_dir) == [("text", "meet at 3", 0), ("edit", "meet at 4", 1)]


async def test_only_within_the_window_except_a_group_admin_recalling(data_dir, tmp_path, nursery):
    org = await serve_with(nursery, data_dir, tmp_path, recall_window=0.3)
    alice, bob = await org.user("alice"), await org.user("bob")
    async with Client.open(alice, receive=False) as a, Client.open(bob, receive=False) as b:
        group = (await a.request(GroupCreate(name="Team", members=("bob",)))).id
        owners = await a.send_group(group, "agenda attached")
        mine = await b.send_group(group, "oops, wrong group")
        await trio.sleep(0.4)
        with pytest.raises(RequestError) as late:
            await b.request(Edit(conversation=group, seq=mine.seq, text="fixed"))
        assert late.value.code == "TOO_LATE"
        with pytest.raises(PermissionDenied):  # a plain member cannot recall the owner's messages
            await b.request(Recall(conversation=group, seq=owners.seq))
        await a.request(Recall(conversation=group, seq=mine.seq))  # the owner moderates, any time
        kinds = [(m.seq, m.kind) for m in (await b.request(GroupHistory(group=group))).messages]
        assert kinds[-2:] == [(mine.seq, "recalled"), (mine.seq + 1, "recall")]


def test_recall_and_edit_from_the_command_line(served, tmp_path):
    data, _, _ = served
    alice = employee(data, tmp_path, "alice", "Alice")
    employee(data, tmp_path, "bob", "Bob")
    assert run("send", "bob", "draft one", "--profile", alice).returncode == 0
    assert run("send", "bob", "draft two", "--profile", alice).returncode == 0
    assert run("edit", "bob", "1", "final one", "--profile", alice).stdout.strip() == "edited #1"
    assert json.loads(run("recall", "bob", "2", "--profile", alice, "--json").stdout)["recall_seq"] == 4
    lines = [line.split("] ", 1)[1] for line in run("history", "bob", "--profile", alice).stdout.splitlines()]
    assert lines == [
        "alice → bob: final one (edited)",
        "alice → bob: (recalled)",
        "alice → bob: (edited #1) final one",
        "alice → bob: (recalled #2)",
    ]
    refused = run("recall", "bob", "9", "--profile", alice)
    assert refused.returncode == 4 and refused.stderr.rstrip().endswith("[NO_SUCH_MESSAGE]"), refused.stderr
