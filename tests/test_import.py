"""Bulk import: the server applies a whole import or nothing, a repeat changes nothing, and the
CLI checks a CSV file row by row before sending any of it."""

import csv
import json
import os
from pathlib import Path

import pytest

from corridor.client.client import Client
from corridor.client.directory import Directory, sync_directory
from corridor.protocol.errors import RequestError
from corridor.protocol.messages import AdminLog, DirectoryImport, ImportPerson, InviteList

from .cli_helpers import admin, employee, run
from .helpers import admin_request

PEOPLE = (
    ImportPerson(
        username="zhangsan", display_name="张三", title="Engineer", departments=(("Company", "Engineering"),), manager="lisi"
    ),
    ImportPerson(username="lisi", display_name="李四", title="Head", departments=(("Company", "Engineering"),)),
    ImportPerson(username="wangwu", display_name="Wang Wu", departments=(("Company", "Sales"), ("Projects", "Apollo"))),
)


async def imported(org, people=PEOPLE, departments=(), **options):
    total = len(people) + len(departments)
    return await admin_request(
        org.data_dir, DirectoryImport(people=tuple(people), departments=tuple(departments), final=True, total=total, **options)
    )


async def test_an_import_creates_then_a_repeat_changes_nothing_and_edits_are_precise(org):
    dry = await imported(org, dry_run=True)
    assert not dry.applied and dry.created == 3 and dry.departments_created == 5
    first = await imported(org, departments=(("Company", "Empty team"),))
    assert first.applied and (first.created, first.departments_created) == (3, 6)
    again = await imported(org)
    assert (again.created, again.updated, again.moved, again.deactivated, again.departments_created) == (0, 0, 0, 0, 0)
    assert again.changes == ()

    edited = list(PEOPLE)
    edited[0] = ImportPerson(
        username="zhangsan", display_name="张三", title="Staff engineer", departments=(("Company", "Sales"),), manager="lisi"
    )
    edited[2] = ImportPerson(username="wangwu", display_name="Wang Wu", departments=(("Company", "Sales"),), active=False)
    result = await imported(org, edited)
    assert (result.updated, result.moved, result.deactivated) == (1, 2, 1)
    assert "update zhangsan: title 'Engineer' → 'Staff engineer'" in result.changes

    log = await admin_request(org.data_dir, AdminLog(limit=1000))
    last = json.loads([e for e in log.entries if e.action == "user_import"][-1].details)
    assert last["user"] == "wangwu" and last["before"]["active"] is True and last["departments"] == ["Company/Sales"]


async def test_a_bad_row_or_a_missing_batch_imports_nothing(org):
    bad = [*PEOPLE, ImportPerson(username="ghost", display_name="Ghost", manager="nobody"), PEOPLE[0]]
    with pytest.raises(RequestError) as refused:
        await imported(org, bad)
    assert "row 4 (ghost)" in refused.value.message and "row 5 (zhangsan)" in refused.value.message
    # Batches are staged per connection: a final batch that does not find all the others refuses.
    with pytest.raises(RequestError) as interrupted:
        await admin_request(org.data_dir, DirectoryImport(people=PEOPLE, final=True, total=10))
    assert "interrupted" in interrupted.value.message
    assert (await imported(org, dry_run=True)).created == 3  # nothing was applied


async def test_an_imported_person_enrolls_with_the_invite_and_sees_the_tree(org, tmp_path):
    from corridor.client.enrollment import enroll
    from corridor.client.profile import Profile

    result = await imported(org, invites=True)
    invite = {i.user: i.invite for i in result.invites}["lisi"]
    profile = Profile(tmp_path / "lisi")
    await enroll(profile, invite, "long enough password", "desk")
    async with Client.open(profile, receive=False) as lisi:
        await sync_directory(lisi)
    with Directory(profile) as copy:
        tree = copy.tree()
        company = next(b for b in tree.roots if b.department.name == "Company")
        engineering = next(b for b in company.children if b.department.name == "Engineering")
        assert {p.user for p in engineering.people} == {"zhangsan", "lisi"}


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_the_cli_reports_bad_csv_rows_by_line_and_imports_nothing(served, tmp_path):
    data, _, _ = served
    rows = [
        {"username": "alice", "display_name": "Alice", "departments": "Company/Engineering", "manager": "", "active": ""},
        {"username": "Bad Name", "display_name": "X", "departments": "", "manager": "", "active": ""},
        {"username": "carol", "display_name": "", "departments": "", "manager": "", "active": ""},
        {"username": "alice", "display_name": "Alice again", "departments": "", "manager": "", "active": "maybe"},
    ]
    bad = write_csv(tmp_path / "bad.csv", rows)
    result = run("admin", "--data", str(data), "import", str(bad))
    assert result.returncode == 2, result.stderr
    assert f"{bad}:3: username 'Bad Name'" in result.stderr
    assert f"{bad}:4: field 'display_name' is missing" in result.stderr
    assert f"{bad}:5: username 'alice' is already on line 2" in result.stderr
    assert admin(data, "import", str(write_csv(tmp_path / "one.csv", rows[:1])), "--dry-run")["created"] == 1

    good = write_csv(tmp_path / "good.csv", [rows[0], {**rows[0], "username": "bob", "display_name": "Bob", "manager": "alice"}])
    invites = tmp_path / "invites.csv"
    done = admin(data, "import", str(good), "--invites-out", str(invites))
    assert done["applied"] and done["created"] == 2 and done["departments_created"] == 2
    assert os.stat(invites).st_mode & 0o777 == 0o600
    with open(invites, encoding="utf-8") as file:
        assert [row["username"] for row in csv.DictReader(file)] == ["alice", "bob"]
    assert admin(data, "import", str(good))["changes"] == []

    profile = employee(data, tmp_path, "erin", "Erin")
    listed = run("directory", "search", "bob", "--profile", profile, "--json")
    assert json.loads(listed.stdout.splitlines()[0])["user"] == "bob"


async def test_the_answer_with_invites_always_fits_in_a_frame(org):
    crowd = [
        ImportPerson(username=f"u{i:05d}", display_name=f"Person {i}", departments=(("Big", f"Team {i % 50}"),))
        for i in range(2001)
    ]
    with pytest.raises(RequestError) as refused:
        await imported(org, crowd, invites=True)
    assert "at most 2,000 invites; nothing imported" in refused.value.message
    result = await imported(org, crowd[:2000], invites=True)  # the largest answer there can be
    assert len(result.invites) == 2000 and result.created == 2000
    assert len(result.changes) + result.omitted == 2000 + 51


async def test_deactivating_by_import_revokes_unused_invites(org):
    await imported(org, invites=True)
    assert "wangwu" in {i.user for i in (await admin_request(org.data_dir, InviteList())).invites}
    leaving = [*PEOPLE[:2], ImportPerson(username="wangwu", display_name="Wang Wu", active=False)]
    assert (await imported(org, leaving)).deactivated == 1
    assert "wangwu" not in {i.user for i in (await admin_request(org.data_dir, InviteList())).invites}
