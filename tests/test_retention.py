"""Retention and legal hold on a real server: rules per department and global, holds that
override them, and a purge that erases content — archive payload, search index, what people see,
file contents — while the hash chain still verifies."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
import trio

from corridor.client.client import Client
from corridor.client.transfers import send_file
from corridor.protocol.audit import (
    ArchivePurge,
    AuditSearch,
    HoldList,
    HoldPlace,
    HoldRelease,
    RetentionList,
    RetentionRemove,
    RetentionRule,
    RetentionSet,
)
from corridor.protocol.errors import NotFound, PermissionDenied
from corridor.protocol.messages import AdminLog, DepartmentAdd, FileGet, ProfileSet
from corridor.server.features.archive.verify import verify_chain

from .helpers import admin_request

DAY = 86400.0


async def build(org, tmp_path):
    """Sales (alice) and Engineering (bob, carol): alice sends bob a text and a file; bob
    and carol talk; audrey audits."""
    a = lambda m: admin_request(org.data_dir, m)  # noqa: E731
    sales = (await a(DepartmentAdd(name="Sales"))).id
    eng = (await a(DepartmentAdd(name="Engineering"))).id
    people = {name: await org.user(name) for name in ("alice", "bob", "carol")}
    people["audrey"] = await org.user("audrey", role="auditor")
    for name, department in (("alice", sales), ("bob", eng), ("carol", eng)):
        await a(ProfileSet(user=name, departments=(department,)))
    report = tmp_path / "report.txt"
    report.write_bytes(b"quarterly numbers " * 1000)
    with trio.fail_after(30):
        async with Client.open(people["alice"], receive=False) as alice:
            await alice.send("bob", "请把合同发我 before Friday")
            await send_file(alice, "bob", report)
        async with Client.open(people["bob"], receive=False) as bob:
            await bob.send("carol", "the merger talks are secret")
    return people, sales, eng


def later(server, days: float) -> None:
    """Move the server's clock on, as if `days` passed."""
    server.services.clock = lambda: time.time() + days * DAY


async def found(profile, **fields):
    async with Client.open(profile, receive=False) as client:
        return (await client.request(AuditSearch(**fields))).hits


async def test_purge_erases_expired_content_but_the_chain_still_verifies(org, server, tmp_path):
    people, sales, eng = await build(org, tmp_path)
    a = lambda m: admin_request(org.data_dir, m)  # noqa: E731
    await a(RetentionSet(department=None, days=30))
    await a(RetentionSet(department=sales, days=10))
    await a(RetentionSet(department=eng, days=400))
    assert (await a(RetentionList())).rules == (
        RetentionRule(None, 30),
        RetentionRule(sales, 10),
        RetentionRule(eng, 400),
    )
    later(server, 40)
    # Only alice's upload record is about Sales alone (10 days); every message involves bob or
    # carol (Engineering, 400 days). The file stays: a message still refers to it.
    first = await a(ArchivePurge())
    assert (first.purged, first.files) == (1, 0)
    await a(RetentionRemove(department=eng))  # now Engineering falls back to the global 30 days
    dry = await a(ArchivePurge(dry_run=True))
    assert (dry.purged, dry.files) == (3, 0)  # three messages, one of them the file's
    assert len(await found(people["audrey"], text="合同")) == 1  # a dry run erases nothing
    result = await a(ArchivePurge())
    assert (result.purged, result.held, result.files) == (3, 0, 1)

    db = server.services.db
    file_id = db.write_now(lambda c: c.execute("SELECT sha256 FROM uploads").fetchone()[0])
    assert (await db.read(verify_chain)).intact
    assert await found(people["audrey"], text="合同") == ()
    erased = await found(people["audrey"], participant="alice")
    assert erased and all(h.entry.purged and h.entry.text == "" for h in erased)
    async with Client.open(people["bob"], receive=False) as bob:
        history = await bob.history("alice")
        assert [m.kind for m in history.messages] == ["purged", "purged"]
        assert all(m.text == "" for m in history.messages)
        with pytest.raises(NotFound):
            await bob.request(FileGet(file=file_id, offset=0))
    assert not [p for p in (server.config.files_dir / "sha256").rglob("*") if p.is_file()]  # gone from disk
    log = (await a(AdminLog())).entries
    assert [e.action for e in log][-1] == "archive_purge"
    recorded = json.loads(log[-1].details)
    assert recorded["purged"] == 3 and sum(last - first + 1 for first, last in recorded["entries"]) == 3


async def test_a_legal_hold_keeps_a_conversation_or_a_persons_archive_until_released(org, server, tmp_path):
    people, _, _ = await build(org, tmp_path)
    a = lambda m: admin_request(org.data_dir, m)  # noqa: E731
    await a(RetentionSet(department=None, days=30))
    async with Client.open(people["audrey"], receive=False) as audrey:
        secret = (await audrey.request(AuditSearch(text="merger"))).hits[0].entry
        on_talks = await audrey.request(HoldPlace(conversation=secret.conversation, reason="case 2026-17"))
        on_alice = await audrey.request(HoldPlace(user="alice", reason="case 2026-18"))
        assert [h.id for h in (await audrey.request(HoldList())).holds] == [on_talks.id, on_alice.id]
    later(server, 40)
    assert (await a(ArchivePurge())).purged == 0 and (await a(ArchivePurge())).held == 4
    await a(HoldRelease(hold=on_alice.id))
    result = await a(ArchivePurge())
    assert (result.purged, result.held) == (3, 1)  # alice's are erased; the held talks stay
    assert [h.entry.text for h in await found(people["audrey"], text="merger")] == ["the merger talks are secret"]
    with pytest.raises(NotFound):
        await a(HoldRelease(hold=on_alice.id))
    actions = [e.action for e in (await a(AdminLog())).entries]
    assert actions.count("hold_place") == 2 and "hold_release" in actions


async def test_only_it_admins_set_retention_and_the_archive_allows_no_other_change(org, server, tmp_path):
    people, _, _ = await build(org, tmp_path)
    async with Client.open(people["audrey"], receive=False) as audrey:
        with pytest.raises(PermissionDenied):
            await audrey.request(RetentionSet(department=None, days=1))
        with pytest.raises(PermissionDenied):
            await audrey.request(ArchivePurge())
    async with Client.open(people["bob"], receive=False) as bob:
        with pytest.raises(PermissionDenied):
            await bob.request(HoldPlace(user="alice", reason="curious"))
    with pytest.raises(NotFound):
        await admin_request(org.data_dir, RetentionSet(department=999, days=5))
    db = server.services.db
    await admin_request(org.data_dir, RetentionSet(department=None, days=1))
    later(server, 2)
    await admin_request(org.data_dir, ArchivePurge())
    # A tombstone cannot be filled in again, nor its hashes changed.
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.write_now(lambda c: c.execute("UPDATE archive SET payload = X'80' WHERE payload IS NULL"))
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.write_now(lambda c: c.execute("UPDATE archive SET payload = NULL, purged_at = 1 WHERE kind = 'admin'"))
