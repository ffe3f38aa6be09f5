"""Department groups through the real server: created by an admin, their members are the
department's people (sub-departments included) and follow every change to the directory."""

from __future__ import annotations

from dataclasses import replace

import pytest
import trio

from corridor.client.client import Client
from corridor.protocol.errors import CorridorError
from corridor.protocol.messages import (
    DepartmentAdd,
    DepartmentGroupCreate,
    DirectorySearch,
    GroupGet,
    GroupHistory,
    GroupLeave,
    GroupMembersAdd,
    LdapSync,
    MessageEvent,
    ProfileSet,
    RoleSet,
    UserDeactivate,
)
from corridor.server.app import Server
from corridor.server.config import load_config

from .cli_helpers import admin, employee, run
from .helpers import Org, admin_request
from .slapd import PEOPLE, slapd_fixture  # noqa: F401


async def members_become(client: Client, group: int, expected: set[str]) -> None:
    """Wait until the group's members are `expected` (the directory is followed within a second or so)."""
    with trio.fail_after(10):
        while set((await client.request(GroupGet(group=group))).members) != expected:
            await trio.sleep(0.05)


async def test_a_department_group_follows_moves_arrivals_and_deactivations(org):
    engineering = (await admin_request(org.data_dir, DepartmentAdd(name="Engineering"))).id
    platform = (await admin_request(org.data_dir, DepartmentAdd(name="Platform", parent=engineering))).id
    sales = (await admin_request(org.data_dir, DepartmentAdd(name="Sales"))).id
    profiles = {name: await org.user(name) for name in ("alice", "bob", "carol", "heidi")}
    for name, department in (("alice", engineering), ("bob", platform), ("carol", sales)):
        await admin_request(org.data_dir, ProfileSet(user=name, departments=(department,)))

    info = await admin_request(org.data_dir, DepartmentGroupCreate(department=engineering, owner="heidi"))
    assert (info.name, info.department, info.owner) == ("Engineering", engineering, "heidi")
    assert set(info.members) == {"alice", "bob", "heidi"}  # the sub-department too; the owner always

    async with Client.open(profiles["heidi"], receive=False) as heidi, Client.open(profiles["carol"]) as carol:
        await admin_request(org.data_dir, ProfileSet(user="carol", departments=(platform,)))
        await members_become(heidi, info.id, {"alice", "bob", "carol", "heidi"})
        with trio.fail_after(10):
            async for event in carol.events():
                if isinstance(event, MessageEvent) and event.conversation == info.id:
                    assert event.text == "carol joined Engineering"
                    break
        seen = (await carol.request(GroupHistory(group=info.id))).messages
        assert [m.text for m in seen] == ["carol joined Engineering"]  # nothing from before she came

        await admin_request(org.data_dir, UserDeactivate(user="bob"))
        await admin_request(org.data_dir, ProfileSet(user="alice", departments=(sales,)))
        await members_become(heidi, info.id, {"carol", "heidi"})
        texts = [m.text for m in (await heidi.request(GroupHistory(group=info.id))).messages]
        # one message when both changes landed in one round, two when they came a round apart
        assert texts[-1:] == ["alice, bob left Engineering"] or texts[-2:] == ["bob left Engineering", "alice left Engineering"]

        for client, request in ((heidi, GroupMembersAdd(group=info.id, users=("alice",))), (carol, GroupLeave(group=info.id))):
            with pytest.raises(CorridorError) as refused:
                await client.request(request)
            assert refused.value.code == "FORBIDDEN" and "follow the directory" in refused.value.message


async def test_only_admins_of_the_department_create_its_group(org):
    engineering = (await admin_request(org.data_dir, DepartmentAdd(name="Engineering"))).id
    sales = (await admin_request(org.data_dir, DepartmentAdd(name="Sales"))).id
    boss, worker = await org.user("boss"), await org.user("worker")
    await admin_request(org.data_dir, RoleSet(user="boss", role="dept_admin", departments=(sales,)))
    with trio.fail_after(10):
        async with Client.open(boss, receive=False) as b, Client.open(worker, receive=False) as w:
            created = await b.request(DepartmentGroupCreate(department=sales, owner="boss", name="Sales team"))
            assert (created.name, created.members) == ("Sales team", ("boss",))
            for client, department in ((b, engineering), (w, sales)):
                with pytest.raises(CorridorError) as refused:
                    await client.request(DepartmentGroupCreate(department=department, owner="worker"))
                assert refused.value.code == "FORBIDDEN"
            with pytest.raises(CorridorError) as unknown:
                await admin_request(org.data_dir, DepartmentGroupCreate(department=999, owner="boss"))
    assert unknown.value.code == "NO_SUCH_DEPARTMENT"


def test_a_department_group_from_the_command_line(served, tmp_path):
    data, _, _ = served
    heidi = employee(data, tmp_path, "heidi", "Heidi")
    employee(data, tmp_path, "alice", "Alice")
    assert admin(data, "department", "add", "Engineering")["id"] == 1
    admin(data, "user", "set", "alice", "--department", "1")
    created = admin(data, "department", "group", "1", "--owner", "heidi", "--welcome", "Hello, engineers")
    assert (created["name"], created["department"], created["members"]) == ("Engineering", 1, ["alice", "heidi"])
    shown = run("group", "show", str(created["id"]), "--profile", heidi).stdout
    assert "members follow department 1 and the departments below it" in shown
    unknown = run("admin", "--data", str(data), "department", "group", "7", "--owner", "heidi")
    assert unknown.returncode == 4 and unknown.stderr.rstrip().endswith("[NO_SUCH_DEPARTMENT]"), unknown.stderr


async def test_department_groups_follow_an_ldap_sync_and_outlive_their_department(slapd, data_dir, tmp_path, nursery):
    engineering_dn, temp_dn = f"ou=Engineering,{PEOPLE}", f"ou=Temp,{PEOPLE}"
    slapd.add_ou("Engineering")
    slapd.add_ou("Temp")
    slapd.add_person(f"uid=ann,{engineering_dn}", displayName="Ann")
    bob = slapd.add_person(f"uid=bob,{temp_dn}", displayName="Bob")
    server = Server(replace(load_config(data_dir), ldap=slapd.ldap_config(data_dir)), advertise=False)
    await nursery.start(server.run)
    org = Org(server, tmp_path)
    owner = await org.user("owner")  # made by hand: no sync touches it

    async def sync():
        with trio.fail_after(30):
            return await admin_request(org.data_dir, LdapSync())

    await sync()
    (ann,) = (await admin_request(org.data_dir, DirectorySearch(query="ann"))).people
    (bob_now,) = (await admin_request(org.data_dir, DirectorySearch(query="bob"))).people
    engineering, temp = ann.departments[0], bob_now.departments[0]
    eng_group = await admin_request(org.data_dir, DepartmentGroupCreate(department=engineering, owner="owner"))
    temp_group = await admin_request(org.data_dir, DepartmentGroupCreate(department=temp, owner="owner"))
    assert set(eng_group.members) == {"ann", "owner"} and set(temp_group.members) == {"bob", "owner"}

    slapd.move(bob, engineering_dn)
    await sync()
    async with Client.open(owner, receive=False) as client:
        await members_become(client, eng_group.id, {"ann", "bob", "owner"})
        await members_become(client, temp_group.id, {"owner"})
        slapd.delete(temp_dn)
        assert (await sync()).departments_removed == 1
        with trio.fail_after(10):
            while (await client.request(GroupGet(group=temp_group.id))).department is not None:
                await trio.sleep(0.05)
        texts = [m.text for m in (await client.request(GroupHistory(group=temp_group.id))).messages]
    assert texts[-1].startswith("its department was removed")
