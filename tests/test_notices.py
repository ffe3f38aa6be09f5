"""Broadcast notices through the real server: a notice to a department tree reaches everyone in
it (offline people on login), its sender watches the unread list shrink as people read it, and
the policy and the hourly limit decide who may send what."""

import json

import pytest
import trio

from corridor.client.client import Client
from corridor.client.enrollment import enroll
from corridor.client.profile import Profile
from corridor.protocol.errors import LimitExceeded, NotFound, PermissionDenied, RequestError
from corridor.protocol.messages import (
    DepartmentAdd,
    DirectoryImport,
    ImportPerson,
    NoticeEvent,
    NoticeInbox,
    NoticeRead,
    NoticeReadEvent,
    NoticeSend,
    NoticeStatus,
    PolicySet,
    ProfileSet,
)

from .cli_helpers import admin, employee, run
from .conftest import serve_with
from .helpers import PASSWORD, admin_request

TEAMS = [("Company", "Engineering", f"Team {i}") for i in range(10)] + [("Company", "Sales", f"Region {i}") for i in range(10)]


async def next_of(client: Client, kind: type, seconds: float = 10):
    with trio.fail_after(seconds):
        async for event in client.events():
            if isinstance(event, kind):
                return event


async def test_a_notice_to_a_1000_person_tree_and_its_shrinking_unread_list(org, tmp_path):
    people = [ImportPerson(username=f"p{i:04d}", display_name=f"Person {i}", departments=(TEAMS[i % 20],)) for i in range(1000)]
    readers = [p.username for p in people[:5]]
    result = await admin_request(org.data_dir, DirectoryImport(people=tuple(people), final=True, total=1000, invites=True))
    invites = {i.user: i.invite for i in result.invites}
    profiles = {}
    for name in readers:
        profiles[name] = Profile(tmp_path / name)
        await enroll(profiles[name], invites[name], PASSWORD, "desk")
    hr = await org.user("hr")
    company = 1  # the import made ("Company",) first
    await admin_request(org.data_dir, PolicySet(kind="broadcast", department=company, subjects=("user:hr",)))

    async with Client.open(hr) as sender, Client.open(profiles[readers[0]]) as online:
        sent = await sender.request(
            NoticeSend(msg_id="n1", title="Fire drill", text="Friday 10:00, all floors", departments=(company,))
        )
        assert sent.recipients == 1000
        notice = await next_of(online, NoticeEvent)  # pushed at once to those online
        assert (notice.id, notice.title, notice.sender, notice.read) == (sent.id, "Fire drill", "hr", False)
        await online.request(NoticeRead(notice=sent.id))
        update = await next_of(sender, NoticeReadEvent)  # the sender sees it live
        assert (update.user, update.read, update.recipients) == (readers[0], 1, 1000)
        for count, name in enumerate(readers[1:], start=2):
            async with Client.open(profiles[name]) as late:  # offline when it was sent: it comes on login
                assert (await next_of(late, NoticeEvent)).id == sent.id
                await late.request(NoticeRead(notice=sent.id))
            assert (await next_of(sender, NoticeReadEvent)).read == count
        status = await sender.request(NoticeStatus(notice=sent.id))
        assert (status.recipients, status.read, len(status.unread_by), status.more_unread) == (1000, 5, 995, 0)
        assert not set(readers) & set(status.unread_by)
        inbox = await online.request(NoticeInbox())
        assert [(n.id, n.read) for n in inbox.notices] == [(sent.id, True)]
    for profile in profiles.values():
        profile.close()


async def test_who_may_send_where_and_how_often(data_dir, tmp_path, nursery):
    org = await serve_with(nursery, data_dir, tmp_path, notices_per_hour=2)
    hr, erin = await org.user("hr"), await org.user("erin")
    result = await admin_request(
        org.data_dir,
        DirectoryImport(
            people=(ImportPerson(username="zed", display_name="Zed", departments=(("Company", "Sales"),)),),
            departments=(("Company", "Engineering"),),
            final=True,
            total=2,
        ),
    )
    assert result.departments_created == 3
    company, engineering, sales = 1, 2, 3
    await admin_request(org.data_dir, ProfileSet(user="erin", departments=(engineering,)))
    await admin_request(org.data_dir, PolicySet(kind="broadcast", department=engineering, subjects=("user:hr",)))
    async with Client.open(hr, receive=False) as h, Client.open(erin, receive=False) as e:
        with pytest.raises(PermissionDenied):  # no rule names erin
            await e.request(NoticeSend(msg_id="e1", title="Hi", text="all", everyone=True))
        for refused in (
            NoticeSend(msg_id="h0", title="x", text="y", departments=(sales,)),
            NoticeSend(msg_id="h0", title="x", text="y", everyone=True),
        ):
            with pytest.raises(PermissionDenied):
                await h.request(refused)
        first = await h.request(NoticeSend(msg_id="h1", title="One", text="1", departments=(engineering,)))
        assert first.recipients == 1  # erin; not hr herself
        assert (await h.request(NoticeSend(msg_id="h1", title="One", text="1", departments=(engineering,)))).duplicate
        await h.request(NoticeSend(msg_id="h2", title="Two", text="2", departments=(engineering,)))
        with pytest.raises(LimitExceeded) as limited:
            await h.request(NoticeSend(msg_id="h3", title="Three", text="3", departments=(engineering,)))
        assert limited.value.code == "RATE_LIMITED" and 3500 < limited.value.retry_after <= 3600
    assert company == 1


def test_notices_from_the_command_line(served, tmp_path):
    data, _, _ = served
    hr = employee(data, tmp_path, "hr", "HR")
    erin = employee(data, tmp_path, "erin", "Erin")
    company = admin(data, "department", "add", "Company")["id"]
    admin(data, "user", "set", "erin", "--department", str(company))
    denied = run("notice", "send", "Drill", "Friday", "--department", str(company), "--profile", hr)
    assert denied.returncode == 3 and "only IT admins may" in denied.stderr, denied.stderr
    admin(data, "policy", "set", "broadcast", "--department", str(company), "--allow", "user:hr")
    sent = json.loads(
        run("notice", "send", "Drill", "Friday 10:00", "--department", str(company), "--profile", hr, "--json").stdout
    )
    assert sent["recipients"] == 1
    heard = json.loads(run("listen", "--timeout", "2", "--profile", erin, "--json").stdout.splitlines()[0])
    assert (heard["type"], heard["title"], heard["sender"]) == ("notice", "Drill", "hr")
    assert run("notice", "inbox", "--unread", "--profile", erin).stdout.startswith(f"* {sent['id']}")
    assert (
        run("notice", "status", str(sent["id"]), "--profile", hr).stdout.strip()
        == f"notice {sent['id']}: read by 0 of 1; not yet: erin"
    )
    assert run("notice", "read", str(sent["id"]), "--profile", erin).returncode == 0
    assert run("notice", "status", str(sent["id"]), "--profile", hr).stdout.strip() == f"notice {sent['id']}: read by 1 of 1"


async def test_a_notice_to_named_people_follows_the_broadcast_rules_of_their_departments(org):
    hr, erin, zed = await org.user("hr"), await org.user("erin"), await org.user("zed")
    engineering, sales = [(await admin_request(org.data_dir, DepartmentAdd(name=n))).id for n in ("Engineering", "Sales")]
    await admin_request(org.data_dir, ProfileSet(user="erin", departments=(engineering,)))
    await admin_request(org.data_dir, ProfileSet(user="zed", departments=(sales,)))
    await admin_request(org.data_dir, PolicySet(kind="broadcast", department=engineering, subjects=("user:hr",)))
    async with Client.open(hr, receive=False) as h, Client.open(erin) as e, Client.open(zed, receive=False) as z:
        sent = await h.request(NoticeSend(msg_id="u1", title="Your laptop", text="is ready", users=("Erin",)))
        assert sent.recipients == 1
        assert (await next_of(e, NoticeEvent)).title == "Your laptop"
        both = await h.request(
            NoticeSend(msg_id="u2", title="Standup", text="10:00", departments=(engineering,), users=("erin",))
        )
        assert both.recipients == 1  # named and in the department: once
        with pytest.raises(PermissionDenied) as refused:
            await h.request(NoticeSend(msg_id="u3", title="x", text="y", users=("erin", "zed")))
        assert "'zed'" in refused.value.message
        with pytest.raises(NotFound):
            await h.request(NoticeSend(msg_id="u4", title="x", text="y", users=("nobody",)))
        with pytest.raises(RequestError):  # people and everyone at once
            await h.request(NoticeSend(msg_id="u5", title="x", text="y", users=("erin",), everyone=True))
        assert (await z.request(NoticeInbox())).notices == ()
