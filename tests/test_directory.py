"""The org directory through the real server: departments, profiles, pinyin search, and
incremental sync where an up-to-date client downloads nothing."""

import pytest
import trio

from corridor.client.client import Client
from corridor.protocol.errors import NotFound, PermissionDenied
from corridor.protocol.messages import DepartmentAdd, DirectorySearch, DirectorySync, ProfileSet, UserAdd

from .helpers import admin_request


async def org_chart(org):
    """Company > Engineering > Platform, and Sales; 张三 and 李四 in Platform, Wang Wu in Sales."""
    data = org.data_dir
    company = (await admin_request(data, DepartmentAdd(name="Company"))).id
    engineering = (await admin_request(data, DepartmentAdd(name="Engineering", parent=company))).id
    platform = (await admin_request(data, DepartmentAdd(name="Platform", parent=engineering))).id
    sales = (await admin_request(data, DepartmentAdd(name="Sales", parent=company))).id
    for user, name in [("zhangsan", "张三"), ("lisi", "李四"), ("wangwu", "Wang Wu")]:
        await admin_request(data, UserAdd(username=user, display_name=name))
    await admin_request(
        data, ProfileSet(user="zhangsan", title="Platform Engineer", departments=(platform,), phone="+86 10 1234")
    )
    await admin_request(data, ProfileSet(user="lisi", title="Team Lead", departments=(platform,)))
    await admin_request(data, ProfileSet(user="wangwu", title="Account Manager", departments=(sales,), manager="lisi"))
    return {"company": company, "engineering": engineering, "platform": platform, "sales": sales}


async def search(client: Client, query: str) -> list[str]:
    return [p.user for p in (await client.request(DirectorySearch(query=query))).people]


async def test_search_by_pinyin_initials_name_title_and_department(org):
    employee = await org.user("employee")
    await org_chart(org)
    with trio.fail_after(20):
        async with Client.open(employee, receive=False) as client:
            assert await search(client, "zs") == ["zhangsan"]
            assert await search(client, "zhangsan") == ["zhangsan"]
            assert await search(client, "Zhang") == ["zhangsan"]
            assert await search(client, "张") == ["zhangsan"]
            assert await search(client, "ls") == ["lisi"]
            assert sorted(await search(client, "platform")) == ["lisi", "zhangsan"]  # department and title
            assert await search(client, "account manager") == ["wangwu"]
            assert await search(client, "100%_") == []  # LIKE wildcards are literal
            # A rename is found at once by its new name, and no longer by the old one.
            await admin_request(org.data_dir, UserAdd(username="zhaoliu", display_name="赵六"))
            assert await search(client, "zl") == ["zhaoliu"]


async def test_sync_sends_everything_once_then_only_changes(org):
    employee = await org.user("employee")
    depts = await org_chart(org)
    with trio.fail_after(20):
        async with Client.open(employee, receive=False) as client:
            full = await client.request(DirectorySync(since=0))
            assert not full.more
            people = {p.user: p for p in full.people}
            assert {"admin", "employee", "zhangsan", "lisi", "wangwu"} <= set(people)
            assert people["zhangsan"].departments == (depts["platform"],) and people["zhangsan"].phone == "+86 10 1234"
            assert people["wangwu"].manager == "lisi"
            tree = {d.id: d for d in full.departments}
            assert tree[depts["platform"]].parent == depts["engineering"] and tree[depts["company"]].parent is None

            idle = await client.request(DirectorySync(since=full.version))
            assert (idle.people, idle.departments, idle.version) == ((), (), full.version)  # up to date: nothing

            await admin_request(org.data_dir, ProfileSet(user="lisi", title="Director"))
            delta = await client.request(DirectorySync(since=full.version))
            assert [(p.user, p.title) for p in delta.people] == [("lisi", "Director")] and delta.departments == ()


async def test_sync_pages_through_a_large_directory(org):
    employee = await org.user("employee")
    with trio.fail_after(60):
        for i in range(120):
            await admin_request(org.data_dir, UserAdd(username=f"u{i:03d}", display_name=f"User {i}"))
        async with Client.open(employee, receive=False) as client:
            since, seen, pages = 0, set(), 0
            while True:
                page = await client.request(DirectorySync(since=since, limit=50))
                seen |= {p.user for p in page.people}
                since, pages = page.version, pages + 1
                if not page.more:
                    break
    assert pages >= 3 and {f"u{i:03d}" for i in range(120)} <= seen


async def test_only_admins_manage_the_directory(org):
    employee = await org.user("employee")
    depts = await org_chart(org)
    with trio.fail_after(20):
        async with Client.open(employee, receive=False) as client:
            with pytest.raises(PermissionDenied):
                await client.request(DepartmentAdd(name="Shadow IT"))
            with pytest.raises(PermissionDenied):
                await client.request(ProfileSet(user="employee", title="CEO"))
    with pytest.raises(NotFound) as missing:
        await admin_request(org.data_dir, DepartmentAdd(name="Orphans", parent=9999))
    assert missing.value.code == "NO_SUCH_DEPARTMENT"
    with pytest.raises(Exception, match="already exists"):
        await admin_request(org.data_dir, DepartmentAdd(name="Platform", parent=depts["engineering"]))


async def test_directory_changes_are_archived(org, server):
    await org_chart(org)
    from corridor.server.features.archive.store import entries

    archived = await server.services.db.read(lambda c: entries(c))
    actions = [e.payload["action"] for e in archived if e.kind == "admin"]
    assert actions.count("department_add") == 4 and actions.count("profile_set") == 3


async def test_blank_names_empty_queries_and_self_management_are_refused(org):
    from corridor.protocol.errors import RequestError

    employee = await org.user("employee")
    await org_chart(org)
    for request in [DepartmentAdd(name="   "), ProfileSet(user="lisi", manager="lisi")]:
        with pytest.raises(RequestError) as info:
            await admin_request(org.data_dir, request)
        assert info.value.code == "BAD_MESSAGE"
    with trio.fail_after(10):
        async with Client.open(employee, receive=False) as client:
            with pytest.raises(RequestError, match="empty"):
                await client.request(DirectorySearch(query="  "))
