"""Roles and the organisation's rules, enforced through the real server: department admins
stay in their subtrees, restricted departments refuse messages, hidden departments vanish from
search and the tree, auditors only look, and every admin action is in the admin log."""

import json

import pytest

from corridor.client.client import Client
from corridor.client.directory import Directory, search_directory, sync_directory
from corridor.protocol.errors import PermissionDenied
from corridor.protocol.messages import (
    AdminLog,
    DepartmentAdd,
    DeviceList,
    GroupCreate,
    GroupGet,
    InviteList,
    InviteRevoke,
    PolicyCheck,
    PolicyList,
    PolicyRemove,
    PolicySet,
    ProfileSet,
    RoleSet,
    UserAdd,
    UserDeactivate,
)

from .cli_helpers import admin, employee, run
from .helpers import admin_request


async def make_org(org):
    """Company ⊃ Engineering ⊃ Platform, and Company ⊃ Board; people in each."""
    a = lambda m: admin_request(org.data_dir, m)  # noqa: E731
    company = (await a(DepartmentAdd(name="Company"))).id
    engineering = (await a(DepartmentAdd(name="Engineering", parent=company))).id
    platform = (await a(DepartmentAdd(name="Platform", parent=engineering))).id
    board = (await a(DepartmentAdd(name="Board", parent=company))).id
    people = {}
    for name, department in (("erin", engineering), ("pat", platform), ("bea", board), ("dana", engineering)):
        people[name] = await org.user(name)
        await a(ProfileSet(user=name, departments=(department,)))
    return {"company": company, "engineering": engineering, "platform": platform, "board": board}, people


async def test_a_restricted_department_refuses_messages_from_outside_with_a_clear_error(org):
    ids, people = await make_org(org)
    await admin_request(org.data_dir, PolicySet(kind="restrict_messages", department=ids["board"], subjects=("user:dana",)))
    async with Client.open(people["erin"], receive=False) as erin:
        with pytest.raises(PermissionDenied) as denied:
            await erin.send("bea", "hello board")
        assert denied.value.code == "FORBIDDEN" and "department" in denied.value.message
        await erin.send("pat", "inside the company is fine")
    async with Client.open(people["dana"], receive=False) as dana:  # named in the rule
        await dana.send("bea", "hello from dana")
    async with Client.open(people["bea"], receive=False) as bea:  # the restricted may still write out
        await bea.send("erin", "hello from the board")
    check = await admin_request(org.data_dir, PolicyCheck(user="erin", permission="message", target="bea"))
    assert not check.allowed and "accepts messages only" in check.reason

    await admin_request(org.data_dir, PolicyRemove(kind="restrict_messages", department=ids["board"]))
    async with Client.open(people["erin"], receive=False) as erin:
        await erin.send("bea", "now allowed")


async def test_a_hidden_department_is_invisible_in_search_and_in_the_tree(org):
    ids, people = await make_org(org)
    async with Client.open(people["erin"], receive=False) as erin:
        await sync_directory(erin)  # a copy made before the rule: it must lose the department
        await admin_request(org.data_dir, PolicySet(kind="hide", department=ids["board"], subjects=()))
        assert [p.user for p in await search_directory(erin, "bea")] == []
        report = await sync_directory(erin)
        assert report.people > 0  # the view changed, so the copy was made again
        with Directory(people["erin"]) as copy:
            names = {d.name for d in copy.departments()}
            assert "Board" not in names and {"Company", "Engineering", "Platform"} <= names
            assert "bea" not in {p.user for p in copy.people()}
        assert (await sync_directory(erin)).people == 0  # and stays up to date afterwards
    # Someone also in a visible department is found, but not through the hidden one's name.
    await admin_request(org.data_dir, ProfileSet(user="pat", departments=(ids["platform"], ids["board"])))
    async with Client.open(people["erin"], receive=False) as erin:
        assert [p.user for p in await search_directory(erin, "board")] == []
        (pat,) = await search_directory(erin, "pat")
        assert pat.departments == (ids["platform"],)
    async with Client.open(people["bea"], receive=False) as bea:  # its own people see it
        assert [p.user for p in await search_directory(bea, "bea")] == ["bea"]
        assert {p.user for p in await search_directory(bea, "board")} == {"bea", "pat"}
        await sync_directory(bea)
        with Directory(people["bea"]) as copy:
            assert "Board" in {d.name for d in copy.departments()}
    check = await admin_request(org.data_dir, PolicyCheck(user="erin", permission="see_department", department=ids["board"]))
    assert not check.allowed


async def test_a_department_admin_manages_only_its_own_subtree(org):
    ids, _ = await make_org(org)
    manager = await org.user("maria")
    await admin_request(org.data_dir, RoleSet(user="maria", role="dept_admin", departments=(ids["engineering"],)))
    async with Client.open(manager, receive=False) as maria:
        await maria.request(ProfileSet(user="pat", title="Platform lead"))  # Platform is under Engineering
        added = await maria.request(UserAdd(username="newbie", display_name="Newbie", departments=(ids["platform"],)))
        assert added.invite
        await maria.request(DepartmentAdd(name="Tools", parent=ids["engineering"]))
        for outside in (
            ProfileSet(user="bea", title="x"),  # Board is not hers
            ProfileSet(user="pat", departments=(ids["board"],)),  # nor may she move people there
            UserAdd(username="intruder", display_name="X", departments=(ids["board"],)),
            UserAdd(username="rootless", display_name="X"),  # nor at the top level
            UserAdd(username="boss", display_name="X", role="admin", departments=(ids["platform"],)),
            DepartmentAdd(name="Rogue", parent=ids["board"]),
            UserDeactivate(user="bea"),
            DeviceList(user="bea"),
            RoleSet(user="pat", role="admin"),
            PolicySet(kind="hide", department=ids["platform"], subjects=()),
        ):
            with pytest.raises(PermissionDenied):
                await maria.request(outside)
        await maria.request(UserDeactivate(user="dana"))  # inside: allowed
    # Someone in her subtree and in the Board: she may move them within hers, but not out of the Board.
    await admin_request(org.data_dir, ProfileSet(user="pat", departments=(ids["platform"], ids["board"])))
    async with Client.open(manager, receive=False) as maria:
        await maria.request(ProfileSet(user="pat", departments=(ids["engineering"], ids["board"])))
        with pytest.raises(PermissionDenied) as refused:
            await maria.request(ProfileSet(user="pat", departments=(ids["engineering"],)))
        assert "would remove them from department" in refused.value.message


async def test_an_auditor_cannot_send_but_reads_the_admin_log_and_members_cannot(org):
    _, people = await make_org(org)
    auditor = await org.user("audrey", role="auditor")
    async with Client.open(auditor, receive=False) as audrey:
        with pytest.raises(PermissionDenied):
            await audrey.send("erin", "auditors only look")
        log = await audrey.request(AdminLog(limit=1000))
        assert {"department_add", "profile_set", "user_add"} <= {e.action for e in log.entries}
    async with Client.open(people["erin"], receive=False) as erin:
        with pytest.raises(PermissionDenied):
            await erin.request(AdminLog())
        with pytest.raises(PermissionDenied):
            await erin.request(PolicyList())


async def test_the_admin_log_records_who_what_when_and_what_it_replaced(org):
    ids, _ = await make_org(org)
    await admin_request(org.data_dir, ProfileSet(user="erin", title="Engineer"))
    await admin_request(org.data_dir, ProfileSet(user="erin", title="Staff engineer", departments=(ids["platform"],)))
    await admin_request(org.data_dir, RoleSet(user="erin", role="dept_admin", departments=(ids["platform"],)))
    log = await admin_request(org.data_dir, AdminLog(limit=1000, actor="local-admin"))
    changes = [(e.action, json.loads(e.details)) for e in log.entries if json.loads(e.details).get("user") == "erin"]
    title = changes[-2][1]
    assert title["title"] == "Staff engineer" and title["before"]["title"] == "Engineer"
    assert title["before"]["departments"] == [ids["engineering"]] and title["departments"] == [ids["platform"]]
    role = changes[-1]
    assert role[0] == "role_set" and role[1]["before"] == {"role": "user", "departments": []}
    assert all(e.actor == "local-admin" and e.ts > 0 for e in log.entries)


async def test_invites_can_be_listed_and_revoked(org):
    await admin_request(org.data_dir, UserAdd(username="ivy", display_name="Ivy"))
    pending = await admin_request(org.data_dir, InviteList())
    assert [i.user for i in pending.invites][-1] == "ivy"  # after the first admin's, from init
    assert (await admin_request(org.data_dir, InviteRevoke(user="ivy"))).revoked == 1
    assert (await admin_request(org.data_dir, InviteList(user="ivy"))).invites == ()


async def test_deactivating_with_a_handover_moves_reports_and_admin_scope_to_the_successor(org):
    ids, people = await make_org(org)
    lead = await org.user("lead")
    await org.user("next")
    async with Client.open(lead, receive=False) as client:
        group = (await client.request(GroupCreate(name="Platform guild", members=("erin",)))).id
    await admin_request(org.data_dir, RoleSet(user="lead", role="dept_admin", departments=(ids["engineering"],)))
    await admin_request(org.data_dir, RoleSet(user="next", role="dept_admin", departments=(ids["board"],)))
    await admin_request(org.data_dir, ProfileSet(user="next", manager="lead"))  # the successor reported to lead
    await admin_request(org.data_dir, ProfileSet(user="erin", manager="lead"))
    await admin_request(org.data_dir, PolicySet(kind="restrict_messages", department=ids["board"], subjects=("user:lead",)))
    result = await admin_request(org.data_dir, UserDeactivate(user="lead", handover="next"))
    assert result.handed_over == (
        "1 direct report",
        f"group #{group} 'Platform guild'",
        f"department-admin scope ({ids['engineering']})",
        "restrict_messages rule 1",
    )
    rules = (await admin_request(org.data_dir, PolicyList())).rules
    assert rules[0].subjects == ("user:next",)
    async with Client.open(people["erin"], receive=False) as erin:
        await sync_directory(erin)
        with Directory(people["erin"]) as copy:
            managers = {p.user: p.manager for p in copy.people()}
            assert managers["erin"] == "next" and managers["next"] == ""  # never their own manager
        guild = await erin.request(GroupGet(group=group))
        assert (guild.owner, guild.members, guild.admins) == ("next", ("erin", "lead", "next"), ())
    check = await admin_request(org.data_dir, PolicyCheck(user="next", permission="see_department", department=ids["platform"]))
    assert check.allowed


def test_a_department_admin_administers_remotely_over_tls_within_its_subtree(served, tmp_path):
    data, _, _ = served
    engineering = admin(data, "department", "add", "Engineering")["id"]
    board = admin(data, "department", "add", "Board")["id"]
    maria = employee(data, tmp_path, "maria", "Maria")
    employee(data, tmp_path, "pat", "Pat")
    employee(data, tmp_path, "bea", "Bea")
    admin(data, "user", "set", "pat", "--department", str(engineering))
    admin(data, "user", "set", "bea", "--department", str(board))
    admin(data, "role", "set", "maria", "dept_admin", "--department", str(engineering))

    inside = run("admin", "--profile", maria, "user", "set", "pat", "--title", "Platform lead", "--json")
    assert inside.returncode == 0 and json.loads(inside.stdout)["title"] == "Platform lead", inside.stderr
    outside = run("admin", "--profile", maria, "user", "set", "bea", "--title", "x")
    assert outside.returncode == 3 and outside.stderr.rstrip().endswith("[FORBIDDEN]"), outside.stderr
    assert "outside them" in outside.stderr
    rules = run("admin", "--remote", "--profile", maria, "policy", "list")
    assert rules.returncode == 3 and "FORBIDDEN" in rules.stderr
    admin(data, "policy", "set", "restrict_messages", "--department", str(board), "--allow", "user:maria")
    assert admin(data, "policy", "list")["rules"] == [
        {"kind": "restrict_messages", "department": board, "subjects": ["user:maria"]}
    ]
    unknown = run("admin", "--data", str(data), "policy", "set", "hide", "--department", "99")
    assert unknown.returncode == 4 and unknown.stderr.rstrip().endswith("[NO_SUCH_DEPARTMENT]")
    log = admin(data, "log", "--actor", "maria")
    assert [(e["action"], e["details"]["user"], e["details"]["before"]["title"]) for e in log["entries"]] == [
        ("profile_set", "pat", "")
    ]
