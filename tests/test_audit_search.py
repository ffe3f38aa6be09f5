"""Auditors search the archive on a real server: Chinese full text, filters, context, paging,
their department scope, and the audit log that records every look."""

from __future__ import annotations

import json

import pytest
import trio

from corridor.client.client import Client
from corridor.protocol.audit import AuditLog, AuditSearch
from corridor.protocol.errors import NotFound, PermissionDenied, RequestError
from corridor.protocol.messages import DepartmentAdd, GroupCreate, GroupSend, PolicySet, ProfileSet

from .helpers import admin_request


async def build(org):
    """Sales (alice) and Engineering (bob, carol); auditors audrey (everything) and sam (Sales)."""
    a = lambda m: admin_request(org.data_dir, m)  # noqa: E731
    sales = (await a(DepartmentAdd(name="Sales"))).id
    eng = (await a(DepartmentAdd(name="Engineering"))).id
    people = {name: await org.user(name) for name in ("alice", "bob", "carol")}
    for name, role in (("audrey", "auditor"), ("sam", "auditor")):
        people[name] = await org.user(name, role=role)
    for name, department in (("alice", sales), ("bob", eng), ("carol", eng), ("sam", sales)):
        await a(ProfileSet(user=name, departments=(department,)))
    with trio.fail_after(30):
        async with Client.open(people["alice"], receive=False) as alice:
            await alice.send("bob", "请把合同发我")
            await alice.send("bob", "Thanks, got it")
        async with Client.open(people["bob"], receive=False) as bob:
            await bob.send("carol", "The quarterly contract draft is ready")
            await bob.send("carol", "合同第三条要改")
            await bob.send("alice", "Sent you the 合同 just now")
    return people, sales, eng


async def search(profile, **fields):
    async with Client.open(profile, receive=False) as client:
        return await client.request(AuditSearch(**fields))


async def test_chinese_words_are_found_inside_sentences_with_snippets_and_context(org):
    people, _, _ = await build(org)
    found = await search(people["audrey"], text="合同")
    texts = [h.entry.text for h in found.hits]
    assert texts == ["Sent you the 合同 just now", "合同第三条要改", "请把合同发我"], texts  # newest first
    assert not found.more
    first = found.hits[-1].entry
    assert (first.actor, first.recipient, first.kind, first.subkind) == ("alice", "bob", "message", "text")
    # A phrase must occur as written: 合发 is in no message, though 合 and 发 both are.
    assert (await search(people["audrey"], text="合发")).hits == ()
    assert [h.entry.text for h in (await search(people["audrey"], text="QUARTERLY contr*")).hits] == [
        "The quarterly contract draft is ready"
    ]
    with_context = await search(people["audrey"], text="请把", context=2)
    (hit,) = with_context.hits
    assert [e.text for e in hit.after] == ["Thanks, got it", "Sent you the 合同 just now"]
    assert hit.before == ()


async def test_filters_by_person_conversation_and_time_and_pages(org):
    people, _, eng = await build(org)
    mine = await search(people["audrey"], participant="alice")
    assert {h.entry.text for h in mine.hits} == {"请把合同发我", "Thanks, got it", "Sent you the 合同 just now"}
    conversation = mine.hits[0].entry.conversation
    assert len((await search(people["audrey"], conversation=conversation)).hits) == 3
    by_department = await search(people["audrey"], department=eng, text="合同")
    assert len(by_department.hits) == 3  # bob is in Engineering: all three involve him
    everything = await search(people["audrey"])
    newest = everything.hits[0].entry.ts
    assert [h.entry.text for h in (await search(people["audrey"], since=newest)).hits] == ["Sent you the 合同 just now"]
    assert (await search(people["audrey"], until=newest - 3600)).hits == ()
    page = await search(people["audrey"], limit=2)
    assert page.more and len(page.hits) == 2
    rest = await search(people["audrey"], before=page.hits[-1].entry.seq)
    assert [h.entry.seq for h in page.hits + rest.hits] == [h.entry.seq for h in everything.hits]
    with pytest.raises(NotFound):
        await search(people["audrey"], participant="nobody")
    with pytest.raises(RequestError, match="nothing to search for"):
        await search(people["audrey"], text='" * "')


async def test_an_auditor_limited_to_a_department_gets_nothing_from_others(org):
    people, sales, eng = await build(org)
    await admin_request(org.data_dir, PolicySet(kind="archive_read", department=sales, subjects=("user:sam",)))
    seen = await search(people["sam"], text="合同")
    # Alice (Sales) is in two of the three; bob and carol's conversation is Engineering's alone.
    assert {h.entry.text for h in seen.hits} == {"请把合同发我", "Sent you the 合同 just now"}
    assert (await search(people["sam"], text="quarterly")).hits == ()
    assert (await search(people["sam"], participant="carol")).hits == ()
    with pytest.raises(PermissionDenied, match="outside your archive scope"):
        await search(people["sam"], department=eng)
    # Once rules exist, an auditor no rule names reads nothing.
    with pytest.raises(PermissionDenied, match="no archive_read rule names audrey"):
        await search(people["audrey"], text="合同")
    await admin_request(org.data_dir, PolicySet(kind="archive_read", department=None, subjects=("user:audrey",)))
    assert len((await search(people["audrey"], text="合同")).hits) == 3


async def test_group_messages_are_searchable_and_only_auditors_search(org):
    people, _, _ = await build(org)
    async with Client.open(people["carol"], receive=False) as carol:
        group = await carol.request(GroupCreate(name="Launch", members=("bob",)))
        await carol.request(GroupSend(group=group.id, msg_id="g1", text="发布会在周五"))
    (hit,) = (await search(people["audrey"], text="周五")).hits
    assert (hit.entry.actor, hit.entry.conversation, hit.entry.recipient) == ("carol", group.id, "")
    with pytest.raises(PermissionDenied):
        await search(people["bob"], text="周五")


async def test_every_search_is_in_the_audit_log_that_only_it_admins_read(org):
    people, _, _ = await build(org)
    await search(people["audrey"], text="合同", limit=5)
    await search(people["sam"], participant="bob")
    log = await admin_request(org.data_dir, AuditLog())
    assert [(e.actor, e.request, e.results) for e in log.entries] == [("audrey", "audit_search", 3), ("sam", "audit_search", 5)]
    query = json.loads(log.entries[0].query)
    assert (query["text"], query["limit"]) == ("合同", 5)
    assert [e.actor for e in (await admin_request(org.data_dir, AuditLog(actor="sam"))).entries] == ["sam"]
    for auditor in ("audrey", "sam"):
        async with Client.open(people[auditor], receive=False) as client:
            with pytest.raises(PermissionDenied):
                await client.request(AuditLog())


async def test_a_long_message_is_shortened_in_search_and_exported_whole(org):
    from corridor.protocol.audit import AuditExport

    people, _, _ = await build(org)
    long_text = "长" * 31_000 + "结尾合同"
    async with Client.open(people["alice"], receive=False) as alice:
        await alice.send("bob", long_text)
    (hit,) = (await search(people["audrey"], text="结尾合同")).hits
    assert len(hit.entry.text) == 2001 and hit.snippet.endswith("结尾合同")
    async with Client.open(people["audrey"], receive=False) as audrey:
        page = await audrey.request(AuditExport(text="结尾合同"))
    assert [i.entry.text for i in page.items] == [long_text] and page.manifest.count == 1


@pytest.mark.parametrize("check_each", [0, 2000])
async def test_both_ways_of_searching_a_person_or_conversation_find_the_same(org, server, monkeypatch, check_each):
    """Few entries of a person or a conversation are checked one by one against the text; many
    are found through the text's index. Both plans must give the same hits."""
    from corridor.server.features.archive import search as archive_search

    people, _, _ = await build(org)
    monkeypatch.setattr(archive_search, "CHECK_EACH", check_each)
    bob = [h.entry.text for h in (await search(people["audrey"], text="合同", participant="bob")).hits]
    assert bob == ["Sent you the 合同 just now", "合同第三条要改", "请把合同发我"]
    conversation = (await search(people["audrey"], text="请把")).hits[0].entry.conversation
    in_it = [h.entry.text for h in (await search(people["audrey"], text="合同", conversation=conversation)).hits]
    assert in_it == ["Sent you the 合同 just now", "请把合同发我"]
