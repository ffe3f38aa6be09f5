"""The org directory as people use it: an admin builds the org chart with `corridor admin`, an
employee searches it, prints the tree and syncs only what changed (real processes); and the
client's local copy underneath (`corridor.client.directory`)."""

import json
from pathlib import Path
from textwrap import dedent

import trio

from corridor.client.client import Client
from corridor.client.directory import Directory, sync_directory
from corridor.client.profile import Credential, Profile
from corridor.protocol.messages import Department, DepartmentAdd, DirectorySyncResult, Person, ProfileSet

from .cli_helpers import admin, employee, run
from .helpers import admin_request


def org_chart(data: Path) -> dict[str, int]:
    """Company > Engineering > Platform, and Company > Sales; 张三 in Platform, 李四 in
    Engineering and Platform, Wang Wu (no account enrolled yet) in Sales."""
    company = admin(data, "department", "add", "Company")["id"]
    engineering = admin(data, "department", "add", "Engineering", "--parent", str(company))["id"]
    platform = admin(data, "department", "add", "Platform", "--parent", str(engineering))["id"]
    sales = admin(data, "department", "add", "Sales", "--parent", str(company))["id"]
    for user, name in (("zhangsan", "张三"), ("lisi", "李四"), ("wangwu", "Wang Wu")):
        admin(data, "user", "add", user, "--name", name)
    admin(
        data,
        "user",
        "set",
        "lisi",
        "--title",
        "Head of Engineering",
        "--department",
        str(engineering),
        "--department",
        str(platform),
    )
    admin(data, "user", "set", "wangwu", "--title", "Account Manager", "--department", str(sales), "--manager", "lisi")
    return {"company": company, "engineering": engineering, "platform": platform, "sales": sales}


def test_admins_build_the_org_chart_and_employees_find_people(served, tmp_path):
    data, _, server = served
    depts = org_chart(data)
    zhangsan = admin(
        data,
        "user",
        "set",
        "zhangsan",
        "--title",
        "Platform Engineer",
        "--department",
        str(depts["platform"]),
        "--email",
        "zhangsan@example.com",
        "--phone",
        "+86 10 1234",
        "--extension",
        "1234",
        "--employee-no",
        "E0042",
    )
    assert zhangsan == {
        "ok": True,
        "user": "zhangsan",
        "title": "Platform Engineer",
        "email": "zhangsan@example.com",
        "phone": "+86 10 1234",
        "extension": "1234",
        "employee_no": "E0042",
        "departments": [depts["platform"]],
    }
    reader = employee(data, tmp_path, "reader", "Reader")

    first = run("directory", "sync", "--profile", reader)
    assert first.returncode == 0, first.stderr
    # admin, zhangsan, lisi, wangwu, reader; four departments.
    assert first.stdout.endswith(": 5 people, 4 departments updated\n"), first.stdout
    version = int(first.stdout.split()[3].rstrip(":"))
    again = run("directory", "sync", "--profile", reader)
    assert again.stdout == f"directory at version {version}: 0 people, 0 departments updated\n"

    found = run("directory", "search", "zs", "--profile", reader)
    assert found.returncode == 0, found.stderr
    assert found.stdout == "张三 (zhangsan) — Platform Engineer — Platform\n"
    by_pinyin = run("directory", "search", "lisi", "--profile", reader, "--json")
    assert [json.loads(line) for line in by_pinyin.stdout.splitlines()] == [
        {
            "user": "lisi",
            "display_name": "李四",
            "title": "Head of Engineering",
            "departments": [depts["engineering"], depts["platform"]],
            "email": "",
            "phone": "",
            "extension": "",
            "employee_no": "",
            "manager": "",
            "active": True,
            "bot": False,
        }
    ]
    nobody = run("directory", "search", "nobody-at-all", "--profile", reader)
    assert nobody.returncode == 0 and nobody.stdout == "no one matches 'nobody-at-all'\n"

    tree = run("directory", "tree", "--profile", reader)
    assert tree.returncode == 0, tree.stderr
    assert tree.stdout == dedent(
        """\
        Company
          Engineering
            李四 (lisi) — Head of Engineering
            Platform
              张三 (zhangsan) — Platform Engineer
              李四 (lisi) — Head of Engineering
          Sales
            Wang Wu (wangwu) — Account Manager
        (no department)
          Administrator (admin)
          Reader (reader)
        """
    )
    nested = json.loads(run("directory", "tree", "--profile", reader, "--json").stdout)
    (company,) = nested["departments"]
    assert [c["name"] for c in company["children"]] == ["Engineering", "Sales"]
    assert [p["user"] for p in company["children"][0]["children"][0]["people"]] == ["zhangsan", "lisi"]
    assert [p["user"] for p in nested["unassigned"]] == ["admin", "reader"] and nested["version"] == version

    admin(data, "user", "set", "zhangsan", "--title", "Staff Engineer")
    delta = json.loads(run("directory", "sync", "--profile", reader, "--json").stdout)
    assert (delta["people"], delta["departments"], delta["pages"]) == (1, 0, 1) and delta["version"] > version
    assert "张三 (zhangsan) — Staff Engineer" in run("directory", "tree", "--profile", reader).stdout
    assert server.stop() == 0


def test_directory_commands_report_errors_with_the_documented_exit_codes(served, tmp_path):
    data, _, server = served
    created = run("admin", "--data", str(data), "department", "add", "Company")
    assert created.returncode == 0 and created.stdout == "Created department 1: Company (top level)\n"
    updated = run("admin", "--data", str(data), "user", "set", "admin", "--title", "IT", "--department", "1", "--manager", "")
    assert updated.returncode == 0 and updated.stdout == 'Updated admin: title="IT", manager="", departments=[1]\n'

    def fails(status: int, code: str, *args: str) -> None:
        result = run(*args)
        assert result.returncode == status and result.stderr.rstrip().endswith(f"[{code}]"), result.stderr

    fails(1, "ALREADY_EXISTS", "admin", "--data", str(data), "department", "add", "Company")
    fails(4, "NO_SUCH_DEPARTMENT", "admin", "--data", str(data), "department", "add", "Team", "--parent", "99")
    fails(4, "NO_SUCH_USER", "admin", "--data", str(data), "user", "set", "nobody", "--title", "X")
    fails(4, "NO_SUCH_USER", "admin", "--data", str(data), "user", "set", "admin", "--manager", "nobody")
    fails(4, "NO_SUCH_DEPARTMENT", "admin", "--data", str(data), "user", "set", "admin", "--department", "99")
    fails(2, "BAD_MESSAGE", "admin", "--data", str(data), "user", "set", "admin")  # nothing to change
    fails(5, "CONNECTION_LOST", "admin", "--data", str(tmp_path / "nowhere"), "department", "add", "X")
    fails(3, "NOT_AUTHENTICATED", "directory", "sync", "--profile", str(tmp_path / "not-enrolled"))

    reader = employee(data, tmp_path, "reader", "Reader")
    fails(2, "BAD_MESSAGE", "directory", "search", "x", "--limit", "0", "--profile", reader)
    as_json = run("directory", "search", "x", "--limit", "201", "--profile", reader, "--json")
    assert as_json.returncode == 2 and json.loads(as_json.stdout)["error"]["code"] == "BAD_MESSAGE"
    assert server.stop() == 0
    fails(5, "CONNECTION_LOST", "directory", "tree", "--profile", reader)


# -- the local copy -----------------------------------------------------------------------------


def person(user: str, departments: tuple[int, ...] = (), *, active: bool = True) -> Person:
    return Person(
        user=user,
        display_name=user.title(),
        title="",
        departments=departments,
        email="",
        phone="",
        extension="",
        employee_no="",
        manager="",
        active=active,
    )


def enroll_on_paper(profile: Profile, ca_sha256: str) -> Profile:
    """Save an enrollment with the organisation whose CA has this fingerprint (no server needed)."""
    profile.save_enrollment(Credential("127.0.0.1", 1, "127.0.0.1", "Org", "me", 1, "token", ca_sha256), "CA")
    return profile


async def test_an_up_to_date_copy_downloads_nothing_and_a_change_downloads_one_person(org):
    reader = await org.user("reader")
    for name in ("Company", "Sales"):
        await admin_request(org.data_dir, DepartmentAdd(name=name))
    with trio.fail_after(30):
        async with Client.open(reader, receive=False) as client:
            first = await sync_directory(client, page_size=2)
            again = await sync_directory(client)
            await admin_request(org.data_dir, ProfileSet(user="admin", title="IT Desk", departments=(1,)))
            delta = await sync_directory(client)
    assert (first.people, first.departments, first.pages) == (2, 2, 2)  # admin, reader, 2 departments; 2 a page
    assert (again.people, again.departments, again.pages, again.version) == (0, 0, 1, first.version)
    assert (delta.people, delta.departments) == (1, 0) and delta.version > first.version
    with Directory(reader) as directory:
        assert directory.version() == delta.version
        assert [(p.user, p.title, p.departments) for p in directory.people()] == [("admin", "IT Desk", (1,)), ("reader", "", ())]
        assert [d.name for d in directory.departments()] == ["Company", "Sales"]


async def test_a_server_restored_from_an_older_backup_gets_a_full_download(org):
    reader = await org.user("reader")
    with Directory(reader) as directory:  # a copy ahead of the server, with someone it no longer has
        directory.apply(DirectorySyncResult(version=10**6, more=False, people=(person("ghost"),), departments=()))
    with trio.fail_after(30):
        async with Client.open(reader, receive=False) as client:
            report = await sync_directory(client)
    assert report.version < 10**6 and report.pages == 2
    with Directory(reader) as directory:
        assert [p.user for p in directory.people()] == ["admin", "reader"]


def test_the_copy_belongs_to_one_organisation(tmp_path):
    profile = enroll_on_paper(Profile(tmp_path / "profile"), "a" * 64)
    page = DirectorySyncResult(version=7, more=False, people=(person("ghost"),), departments=(Department(1, "Old", None),))
    with Directory(profile) as directory:
        directory.apply(page)
    with Directory(profile) as directory:
        assert directory.version() == 7 and [p.user for p in directory.people()] == ["ghost"]
    enroll_on_paper(profile, "b" * 64)  # enrolled again, with another organisation
    with Directory(profile) as directory:
        assert (directory.version(), directory.people(), directory.departments()) == (0, [], [])
    profile.close()


def test_the_tree_nests_departments_and_places_everyone_once_per_department(tmp_path):
    profile = enroll_on_paper(Profile(tmp_path / "profile"), "a" * 64)
    departments = (Department(1, "Company", None), Department(2, "Engineering", 1), Department(3, "Design", 1))
    people = (
        person("carol", (2, 3)),
        person("bob", (2,)),
        person("dave", (99,)),  # a department the copy does not know: shown without one
        person("erin", (2,), active=False),  # left the company: kept in the copy, not in the tree
        person("alice"),
    )
    with Directory(profile) as directory:
        directory.apply(DirectorySyncResult(version=9, more=False, people=people, departments=departments))
        tree = directory.tree()
        assert len(directory.people()) == 5
    profile.close()
    (company,) = tree.roots
    assert company.department.name == "Company" and company.people == ()
    assert [(b.department.name, [p.user for p in b.people]) for b in company.children] == [
        ("Design", ["carol"]),
        ("Engineering", ["bob", "carol"]),
    ]
    assert [p.user for p in tree.unassigned] == ["alice", "dave"]
