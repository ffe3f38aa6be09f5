"""LDAP/AD sync through the real server against a real slapd: people and departments are
created, changed, moved and deactivated as the directory says, a dry run changes nothing, a
second run changes nothing, and accounts made by hand are never touched."""

from dataclasses import replace

import trio

from corridor.protocol.messages import DirectorySearch, LdapSync, UserAdd
from corridor.server.app import Server
from corridor.server.config import load_config

from .helpers import Org, admin_request
from .slapd import GROUPS, PEOPLE, slapd_fixture  # noqa: F401

ENGINEERING = f"ou=Engineering,{PEOPLE}"
PLATFORM = f"ou=Platform,{ENGINEERING}"
SALES = f"ou=Sales,{PEOPLE}"


def counts(result) -> tuple[int, ...]:
    return (
        result.created,
        result.updated,
        result.moved,
        result.deactivated,
        result.departments_created,
        result.departments_removed,
    )


async def test_ldap_sync_reflects_adds_changes_moves_and_disables_and_repeats_as_no_op(slapd, data_dir, tmp_path, nursery):
    slapd.add_ou("Engineering")
    slapd.add_ou("Platform", ENGINEERING)
    slapd.add_ou("Sales")
    ann = slapd.add_person(f"uid=ann,{PLATFORM}", displayName="安妮", title="Engineer", mail="ann@example.com")
    bob = slapd.add_person(f"uid=bob,{SALES}", displayName="Bob", manager=ann)
    admins = slapd.add_group(f"cn=Admins,{GROUPS}", [ann])
    ldap = slapd.ldap_config(
        data_dir, roles={f"cn=Admins,{GROUPS}": "admin"}, disabled_attribute="employeeType", disabled_values=("disabled",)
    )
    server = Server(replace(load_config(data_dir), ldap=ldap), advertise=False)
    await nursery.start(server.run)
    org = Org(server, tmp_path)
    await admin_request(org.data_dir, UserAdd(username="local", display_name="Made by hand"))

    async def sync(dry_run=False):
        with trio.fail_after(30):
            return await admin_request(org.data_dir, LdapSync(dry_run=dry_run))

    async def found(query):
        return {p.user: p for p in (await admin_request(org.data_dir, DirectorySearch(query=query))).people}

    dry = await sync(dry_run=True)
    assert counts(dry) == (2, 0, 0, 0, 3, 0) and not dry.applied
    assert "create ann (安妮) in Engineering/Platform" in dry.changes
    assert await found("ann") == {}

    first = await sync()
    assert counts(first) == (2, 0, 0, 0, 3, 0) and first.applied and first.warnings == ()
    assert (await found("anni"))["ann"].title == "Engineer"  # pinyin of 安妮 finds her
    assert (await found("bob"))["bob"].manager == "ann"
    assert counts(await sync()) == (0, 0, 0, 0, 0, 0)

    slapd.modify(ann, title="Staff engineer")
    bob = slapd.move(bob, ENGINEERING)
    slapd.modify(admins, member=[bob])  # the admin role passes from ann to bob
    carol = slapd.add_person(f"uid=carol,{SALES}", displayName="Carol", employeeType="disabled")
    second = await sync()
    assert (second.created, second.updated, second.moved) == (1, 2, 1)
    assert "update ann: title 'Engineer' → 'Staff engineer', role 'admin' → 'user'" in second.changes
    assert "update bob: role 'user' → 'admin'" in second.changes
    assert "move bob: Sales → Engineering" in second.changes
    assert "carol" not in await found("carol")  # created, but disabled in LDAP
    assert counts(await sync()) == (0, 0, 0, 0, 0, 0)

    slapd.modify(carol, employeeType=[])  # enabled: her account is reactivated
    assert (await sync()).reactivated == 1 and "carol" in await found("carol")
    slapd.delete(carol)
    slapd.delete(f"ou=Sales,{PEOPLE}")
    third = await sync()
    assert (third.deactivated, third.departments_removed) == (1, 1)
    assert "remove department Sales: no longer in the ldap source" in third.changes
    assert counts(await sync()) == (0, 0, 0, 0, 0, 0)
    assert "local" in await found("local")  # never touched by a prune
