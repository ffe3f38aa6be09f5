"""The contracts of the stores ported after accounts, written once and run on SQLite and on a
real PostgreSQL server through `db.write` / `db.read`, as their handlers use them: policies,
directory, presence, notices, integrations, files, retention — on the server's whole schema,
since their writes archive themselves and files read messages.

Some tests make their departments, notices or integrations with plain SQL, to check the reads
apart from the writes, which their own tests check."""

import pytest
import trio

from corridor.protocol.errors import CorridorError
from corridor.protocol.messages import PolicyRule
from corridor.server.app import MIGRATIONS
from corridor.server.features import (
    accounts,
    directory,
)
from corridor.server.features.accounts import store as accounts_store
from corridor.server.features.directory import store as directory_store
from corridor.server.features.files import store as files_store
from corridor.server.features.files.thumbnails import NOT_A_PICTURE, Picture
from corridor.server.features.integrations import store as integrations_store
from corridor.server.features.notices import store as notices_store
from corridor.server.features.policies import store as policies_store
from corridor.server.features.presence import store as presence_store
from corridor.server.features.presence.quiet_hours import Schedule
from corridor.server.features.retention import store as retention_store
from corridor.server.storage.migrations import apply_migrations

from .pg import any_db_fixture, closed_later_fixture, pg_dsn_fixture, postgres_cluster_fixture  # noqa: F401

NOW = 1_700_000_000.25  # a fraction PostgreSQL's single-precision REAL would lose
TIMEOUT = 10  # seconds for any one test's reads and writes


@pytest.fixture
async def db(any_db):
    """A started database with the whole schema, in the server's order."""
    apply_migrations(any_db, MIGRATIONS)
    return any_db


async def user(db, username: str, role: str = "user") -> int:
    made = await db.write(lambda c: accounts_store.create_user_txn(c, username, username.title(), role, NOW))
    return made.id


async def department(db, name: str, parent: int | None = None) -> int:
    """A department made with plain SQL (`test_departments_and_profiles_are_set` checks the store's)."""
    query = "INSERT INTO departments (parent_id, name, created_at) VALUES (?, ?, ?) RETURNING id"
    return await db.write(lambda c: c.execute(query, (parent, name, NOW)).fetchone()[0])


async def org(db) -> tuple[int, int, int, int]:
    """Company ⊃ Engineering ⊃ Platform, and Company ⊃ Board."""
    company = await department(db, "Company")
    engineering = await department(db, "Engineering", company)
    platform = await department(db, "Platform", engineering)
    board = await department(db, "Board", company)
    return company, engineering, platform, board


# Policies


async def test_policies_walk_the_org_tree(db):
    with trio.fail_after(TIMEOUT):
        company, engineering, platform, board = await org(db)
        ann = await user(db, "ann")
        await db.write(lambda c: directory_store.set_memberships_txn(c, ann, [platform, board]))
        read = db.read
        assert await read(lambda c: policies_store.memberships(c, ann)) == {platform, board}
        assert await read(lambda c: policies_store.user_ancestry(c, ann)) == {company, engineering, platform, board}
        assert await read(lambda c: policies_store.department_ancestry(c, platform)) == {company, engineering, platform}
        assert await read(lambda c: policies_store.department_ancestry(c, platform + 100)) == frozenset()
        assert await read(lambda c: policies_store.subtree(c, [engineering, board])) == {engineering, platform, board}
        assert await read(lambda c: policies_store.subtree(c, [])) == frozenset()
        assert await read(lambda c: policies_store.existing_departments(c, [board, board + 100])) == {board}
        assert await read(lambda c: policies_store.existing_departments(c, [])) == frozenset()


async def test_a_handover_moves_scope_and_rule_subjects(db):
    with trio.fail_after(TIMEOUT):
        company, engineering, _, board = await org(db)
        ann = await user(db, "ann", role="dept_admin")
        bob = await user(db, "bob", role="dept_admin")
        scopes = [(ann, engineering), (ann, board), (bob, board)]  # bob already has one of them

        def setup(conn):
            conn.executemany("INSERT INTO department_admins (user_id, department_id) VALUES (?, ?)", scopes)
            conn.execute(
                "INSERT INTO policy_rules (kind, department_id, subjects) VALUES ('restrict_messages', ?, ?)",
                (company, '["user:ann", "user:bob"]'),
            )

        await db.write(setup)
        moved = await db.write(
            lambda c: policies_store.handover_txn(c, user_id=ann, username="ann", successor_id=bob, successor="bob", rules=True)
        )
        assert moved[0] == f"department-admin scope ({min(engineering, board)}, {max(engineering, board)})"
        assert await db.read(lambda c: policies_store.admin_scope(c, ann)) == frozenset()
        assert await db.read(lambda c: policies_store.admin_scope(c, bob)) == {engineering, board}
        assert await db.read(policies_store.rules) == (
            PolicyRule(kind="restrict_messages", department=company, subjects=("user:bob",)),
        )


async def test_rules_and_roles_are_set_and_removed(db):
    with trio.fail_after(TIMEOUT):
        company, engineering, _, _ = await org(db)
        ann = await user(db, "ann")
        everyone = PolicyRule(kind="restrict_messages", department=None, subjects=("everyone",))
        local = PolicyRule(kind="restrict_messages", department=engineering, subjects=(f"department:{company}",))
        await db.write(lambda c: policies_store.set_rule_txn(c, everyone, actor="admin", now=NOW))
        assert await db.write(lambda c: policies_store.set_rule_txn(c, local, actor="admin", now=NOW)) == (everyone, local)
        replaced = PolicyRule(kind="restrict_messages", department=None, subjects=("user:ann",))
        await db.write(lambda c: policies_store.set_rule_txn(c, replaced, actor="admin", now=NOW))
        assert await db.read(policies_store.rules) == (replaced, local)
        assert await db.write(lambda c: policies_store.remove_rule_txn(c, "restrict_messages", None, actor="admin", now=NOW)) == (
            local,
        )
        with pytest.raises(CorridorError) as gone:
            await db.write(lambda c: policies_store.remove_rule_txn(c, "restrict_messages", None, actor="admin", now=NOW))
        assert gone.value.code == "NO_SUCH_RULE"
        with pytest.raises(CorridorError) as unknown:
            bad = PolicyRule(kind="restrict_messages", department=engineering + 100, subjects=("everyone",))
            await db.write(lambda c: policies_store.set_rule_txn(c, bad, actor="admin", now=NOW))
        assert unknown.value.code == "NO_SUCH_DEPARTMENT"

        await db.write(
            lambda c: policies_store.set_role_txn(
                c, user_id=ann, role="dept_admin", departments=(engineering,), actor="a", now=NOW
            )
        )
        assert await db.read(lambda c: policies_store.admin_scope(c, ann)) == {engineering}


# Directory


async def refresh_search_keys(db) -> None:
    """What the directory's search-key chore does: read the stale, compute, store."""
    stale, version = await db.read(directory_store.stale_search_keys)
    await db.write(lambda c: directory_store.store_search_keys_txn(c, directory_store.compute_keys(stale), version))


async def test_every_directory_change_moves_the_one_version(db):
    with trio.fail_after(TIMEOUT):
        start = await db.read(directory_store.current_version)
        company, engineering, _, _ = await org(db)
        ann = await user(db, "ann")
        bob = await user(db, "bob")
        await db.write(lambda c: directory_store.set_memberships_txn(c, ann, [engineering]))
        page = await db.read(lambda c: directory_store.changes(c, start, 100))
        assert page.version == start + 7 and not page.more  # 4 departments, 2 users, 1 membership
        assert [p.user for p in page.people] == ["bob", "ann"]  # ann's latest change is the newest
        assert page.people[1].departments == (engineering,)
        assert [d.name for d in page.departments] == ["Company", "Engineering", "Platform", "Board"]

        await db.write(lambda c: c.execute("UPDATE users SET display_name = 'Robert' WHERE id = ?", (bob,)))
        first = await db.read(lambda c: directory_store.changes(c, page.version, 1))
        assert (first.version, [p.display_name for p in first.people], first.more) == (page.version + 1, ["Robert"], False)
        hidden = await db.read(lambda c: directory_store.changes(c, start, 100, invisible=frozenset({engineering})))
        assert hidden.removed_people == ("ann",) and hidden.removed_departments == (engineering,)
        assert await db.read(lambda c: directory_store.departments(c, [engineering, company])) == [
            directory_store.DepartmentRow(engineering, "Engineering", company),
            directory_store.DepartmentRow(company, "Company", None),
        ]


async def test_memberships_reports_and_search(db):
    with trio.fail_after(TIMEOUT):
        _, engineering, platform, board = await org(db)
        ann, bob, cho = await user(db, "ann"), await user(db, "bob"), await user(db, "cho")
        await db.write(lambda c: directory_store.set_memberships_txn(c, ann, [engineering, board]))
        await db.write(lambda c: directory_store.set_memberships_txn(c, ann, [platform, board]))
        await db.write(lambda c: directory_store.set_memberships_txn(c, bob, [board]))
        await db.write(lambda c: directory_store.set_memberships_txn(c, cho, []))
        with pytest.raises(CorridorError) as unknown:
            await db.write(lambda c: directory_store.set_memberships_txn(c, cho, [board + 100]))
        assert unknown.value.code == "NO_SUCH_DEPARTMENT"
        people = await db.read(lambda c: directory_store.people(c, [bob, ann, bob + 100]))
        assert [(p.user, p.departments) for p in people] == [("bob", (board,)), ("ann", tuple(sorted((platform, board))))]

        def reports(conn):
            conn.executemany("INSERT INTO profiles (user_id, manager_id) VALUES (?, ?)", [(bob, ann), (cho, ann)])
            return directory_store.handover_reports_txn(conn, user_id=ann, successor_id=bob)

        assert await db.write(reports) == ["1 direct report"]  # bob himself now has no manager
        assert [p.manager for p in await db.read(lambda c: directory_store.people(c, [bob, cho]))] == ["", "bob"]

        await refresh_search_keys(db)
        found = await db.read(lambda c: directory_store.search(c, "board", 10))
        assert [p.user for p in found] == ["ann", "bob"]
        # Hiding Board: bob is only there, and ann matches only through its name.
        assert await db.read(lambda c: directory_store.search(c, "board", 10, invisible=frozenset({board}))) == []
        assert [p.user for p in await db.read(lambda c: directory_store.search(c, "an", 10))] == ["ann"]
        assert await db.read(lambda c: directory_store.search(c, "100%_", 10)) == []
        stale, version = await db.read(directory_store.stale_search_keys)
        assert stale == [] and version == await db.read(directory_store.current_version)


async def test_departments_and_profiles_are_set(db):
    with trio.fail_after(TIMEOUT):
        company = await db.write(lambda c: directory_store.add_department_txn(c, name="Company", parent=None, actor="a", now=NOW))
        for parent, code in [(company + 100, "NO_SUCH_DEPARTMENT"), (None, "ALREADY_EXISTS")]:
            with pytest.raises(CorridorError) as refused:
                await db.write(
                    lambda c, parent=parent: directory_store.add_department_txn(
                        c, name="Company", parent=parent, actor="a", now=NOW
                    )
                )
            assert refused.value.code == code
        sales = await db.write(lambda c: directory_store.add_department_txn(c, name="Sales", parent=company, actor="a", now=NOW))
        ann, bob = await user(db, "ann"), await user(db, "bob")
        fields = {"title": "Engineer", "email": "ann@example.com"}
        await db.write(
            lambda c: directory_store.set_profile_txn(
                c, user_id=ann, fields=fields, manager_id=bob, department_ids=(sales,), actor="a", now=NOW
            )
        )
        (person,) = await db.read(lambda c: directory_store.people(c, [ann]))
        assert (person.title, person.email, person.manager, person.departments) == (
            "Engineer",
            "ann@example.com",
            "bob",
            (sales,),
        )


async def test_concurrent_writers_number_changes_in_commit_order(closed_later):
    """Two processes' writers on one PostgreSQL database: the second bump waits for the first
    to commit, so a version is never seen before a lower one."""
    if closed_later.dialect != "postgresql":
        pytest.skip("one SQLite writer at a time is the file lock's job")
    from corridor.server.storage.postgres import Connection

    apply_migrations(closed_later, [*accounts.MIGRATIONS, *directory.MIGRATIONS])
    dsn = closed_later._writer._dsn
    first, second = Connection(dsn), Connection(dsn)
    insert = "INSERT INTO users (username, display_name, role, created_at) VALUES (?, ?, 'user', ?)"
    try:
        with trio.fail_after(TIMEOUT):
            first.execute("BEGIN")
            first.execute(insert, ("ann", "Ann", NOW))

            def later():
                second.execute("BEGIN")
                second.execute(insert, ("bob", "Bob", NOW))
                second.execute("COMMIT")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.to_thread.run_sync, later)
                await trio.sleep(0.3)  # bob's insert is now waiting for the log's lock
                assert closed_later._readers[0].execute("SELECT count(*) FROM directory_log").fetchone()[0] == 0
                first.execute("COMMIT")
        log = closed_later._readers[0].execute("SELECT version, entity_id FROM directory_log ORDER BY version").fetchall()
        ids = dict(closed_later._readers[0].execute("SELECT username, id FROM users").fetchall())
        assert log == [(1, ids["ann"]), (2, ids["bob"])]
    finally:
        first.close()
        second.close()


# Presence


async def test_quiet_hours_are_replaced_and_cleared(db):
    with trio.fail_after(TIMEOUT):
        ann, bob = await user(db, "ann"), await user(db, "bob")
        night = Schedule(22 * 60, 7 * 60, "Europe/Berlin", frozenset({0, 4, 6}), frozenset({"bob"}))
        lunch = Schedule(12 * 60, 13 * 60, "UTC", frozenset(range(5)), frozenset())
        await db.write(lambda c: presence_store.set_quiet_hours_txn(c, ann, lunch))
        await db.write(lambda c: presence_store.set_quiet_hours_txn(c, ann, night))
        await db.write(lambda c: presence_store.set_quiet_hours_txn(c, bob, lunch))
        assert await db.read(lambda c: presence_store.quiet_hours_of(c, [ann, bob, bob + 100])) == {ann: night, bob: lunch}
        await db.write(lambda c: presence_store.set_quiet_hours_txn(c, bob, None))
        assert await db.read(lambda c: presence_store.quiet_hours_of(c, [ann, bob])) == {ann: night}
        assert await db.read(lambda c: presence_store.quiet_hours_of(c, [])) == {}


# Notices


async def test_notices_are_read_counted_and_erased(db):
    """Inboxes, reads and status of a notice stored with plain SQL (sending is checked below)."""
    with trio.fail_after(TIMEOUT):
        ann, bob, cho = await user(db, "ann"), await user(db, "bob"), await user(db, "cho")

        def stored(conn):
            (notice,) = conn.execute(
                "INSERT INTO notices (sender_id, device_id, msg_id, title, text, targets, recipients, created_at)"
                " VALUES (?, 1, 'm1', 'Fire drill', 'At noon', '{\"everyone\": true}', 2, ?) RETURNING id",
                (ann, NOW),
            ).fetchone()
            conn.executemany("INSERT INTO notice_recipients (notice_id, user_id) VALUES (?, ?)", [(notice, bob), (notice, cho)])
            return notice

        notice = await db.write(stored)
        assert await db.read(lambda c: notices_store.sent_since(c, ann, NOW - 1)) == [NOW]
        assert await db.read(lambda c: notices_store.already_sent(c, 1, "m1"))
        assert not await db.read(lambda c: notices_store.already_sent(c, 1, "m2"))
        (row,) = await db.read(lambda c: notices_store.inbox(c, bob, True, 10))
        assert row[:5] == (notice, ann, "Fire drill", "At noon", NOW) and not row[5]

        assert await db.write(lambda c: notices_store.mark_read_txn(c, notice, bob, NOW + 1)) == (ann, 1, 2)
        assert await db.write(lambda c: notices_store.mark_read_txn(c, notice, bob, NOW + 2)) is None
        with pytest.raises(CorridorError) as not_yours:
            await db.write(lambda c: notices_store.mark_read_txn(c, notice, ann, NOW))
        assert not_yours.value.code == "NO_SUCH_NOTICE"
        assert await db.read(lambda c: notices_store.inbox(c, bob, True, 10)) == []
        assert [bool(r[5]) for r in await db.read(lambda c: notices_store.inbox(c, bob, False, 10))] == [True]

        assert await db.read(lambda c: notices_store.status(c, notice, ann, 10)) == (2, 1, [cho], 0)
        assert await db.read(lambda c: notices_store.status(c, notice, None, 0)) == (2, 1, [], 1)
        with pytest.raises(CorridorError) as other:
            await db.read(lambda c: notices_store.status(c, notice, bob, 10))
        assert other.value.code == "NO_SUCH_NOTICE"
        await db.write(lambda c: notices_store.erase_txn(c, notice))
        assert (await db.read(lambda c: notices_store.inbox(c, cho, False, 10)))[0][2:4] == ("", "")


async def test_a_notice_reaches_its_targets_once(db):
    with trio.fail_after(TIMEOUT):
        _, engineering, platform, board = await org(db)
        ann, bob, cho, dan = [await user(db, name) for name in ("ann", "bob", "cho", "dan")]
        await db.write(lambda c: directory_store.set_memberships_txn(c, bob, [platform]))
        await db.write(lambda c: directory_store.set_memberships_txn(c, ann, [engineering]))

        def send(msg_id: str, departments=(), everyone=False, users=()):
            return lambda c: notices_store.send_txn(
                c,
                sender_id=ann,
                sender_name="ann",
                device_id=1,
                msg_id=msg_id,
                title="T",
                text="x",
                departments=departments,
                everyone=everyone,
                now=NOW,
                users=users,
            )

        sent = await db.write(send("m1", departments=(engineering,), users=(cho,)))
        assert sent.recipients == sorted([bob, cho]) and not sent.duplicate
        again = await db.write(send("m1", everyone=True))
        assert (again.id, again.duplicate) == (sent.id, True)
        assert sorted((await db.write(send("m2", everyone=True))).recipients) == sorted([bob, cho, dan])
        with pytest.raises(CorridorError) as unknown:
            await db.write(send("m3", departments=(board + 100,)))
        assert unknown.value.code == "NO_SUCH_DEPARTMENT"


# Integrations


async def test_integrations_are_found_by_token_and_touched(db):
    """An integration stored with plain SQL (adding one is checked below)."""
    with trio.fail_after(TIMEOUT):
        bot = await db.write(lambda c: accounts_store.create_user_txn(c, "ci", "CI", "user", NOW, bot=True))
        device = await db.write(lambda c: accounts_store.add_device_txn(c, bot.id, "integration ci", b"\x00device", NOW))
        made = await db.write(
            lambda c: c.execute(
                "INSERT INTO integrations (name, user_id, device_id, token_hash, scopes, allow_from, rate_per_minute, created_at)"
                " VALUES ('ci', ?, ?, ?, '[\"notices\"]', '[]', 60, ?) RETURNING id",
                (bot.id, device, b"\xfftoken", NOW),
            ).fetchone()[0]
        )
        expected = integrations_store.IntegrationRow(made, "ci", "CI", bot.id, device, ("notices",), (), 60, NOW, 0)
        assert await db.read(integrations_store.active) == [expected]
        assert await db.read(lambda c: integrations_store.by_token(c, b"\xfftoken")) == expected
        assert await db.read(lambda c: integrations_store.by_token(c, b"\xffother")) is None
        await db.write(lambda c: integrations_store.touch_txn(c, {made: NOW + 5}))
        assert (await db.read(integrations_store.active))[0].last_used == NOW + 5
        await db.write(lambda c: c.execute("UPDATE users SET active = 0 WHERE id = ?", (bot.id,)))
        assert await db.read(lambda c: integrations_store.by_token(c, b"\xfftoken")) is None  # its bot is deactivated


async def test_integrations_are_added_rotated_and_revoked(db):
    with trio.fail_after(TIMEOUT):
        add = dict(scopes=("notices",), allow_from=("10.0.0.0/8",), rate_per_minute=60, actor="admin", now=NOW)
        bot = await db.write(
            lambda c: integrations_store.add_txn(
                c, name="ci", display_name="CI", token_hash=b"one", device_token_hash=b"d", **add
            )
        )
        assert bot.bot and [i.user_id for i in await db.read(integrations_store.active)] == [bot.id]
        await db.write(lambda c: integrations_store.rotate_txn(c, name="ci", token_hash=b"two", actor="admin", now=NOW))
        assert await db.read(lambda c: integrations_store.by_token(c, b"one")) is None
        assert (await db.read(lambda c: integrations_store.by_token(c, b"two"))).name == "ci"
        await db.write(lambda c: integrations_store.revoke_txn(c, name="ci", actor="admin", now=NOW))
        assert await db.read(integrations_store.active) == []
        with pytest.raises(CorridorError) as gone:
            await db.write(lambda c: integrations_store.revoke_txn(c, name="ci", actor="admin", now=NOW))
        assert gone.value.code == "NO_SUCH_INTEGRATION"


# Files

PHOTO, OTHER = "a" * 64, "b" * 64


async def test_uploads_count_against_the_quota_and_complete_once(db):
    with trio.fail_after(TIMEOUT):
        ann, bob = await user(db, "ann"), await user(db, "bob")
        limits = {"max_bytes": 1000, "quota": 1500}

        def upload(user_id: int, file_id: str, size: int, now: float = NOW):
            return lambda c: files_store.open_upload_txn(c, user_id=user_id, file_id=file_id, size=size, now=now, **limits)

        first = await db.write(upload(ann, PHOTO, 800))
        assert await db.write(upload(ann, PHOTO, 800)) == first  # resumed, not a second one
        assert await db.read(lambda c: files_store.open_upload(c, ann, first.id)) == first
        with pytest.raises(CorridorError) as over:
            await db.write(upload(ann, OTHER, 800))  # the unfinished one counts
        assert over.value.code == "QUOTA_EXCEEDED"
        with pytest.raises(CorridorError) as large:
            await db.write(upload(ann, OTHER, 1001))
        assert large.value.code == "FILE_TOO_LARGE"

        await db.write(lambda c: files_store.complete_txn(c, first, Picture(64, 48, True), actor="ann", now=NOW, **limits))
        assert await db.read(lambda c: files_store.used_bytes(c, ann)) == 800
        found = await db.read(lambda c: files_store.visible(c, ann, PHOTO))
        assert found == files_store.StoredFile(PHOTO, 800, 64, 48, True)
        assert await db.read(lambda c: files_store.visible_name(c, ann, PHOTO)) == ""  # seen as its uploader only
        with pytest.raises(CorridorError) as hidden:
            await db.read(lambda c: files_store.visible(c, bob, PHOTO))
        assert hidden.value.code == "NO_SUCH_FILE"
        assert (await db.write(upload(ann, PHOTO, 800))).complete  # already there: nothing to send

        second = await db.write(upload(bob, PHOTO, 800))  # the same content, stored first by ann
        await db.write(lambda c: files_store.complete_txn(c, second, NOT_A_PICTURE, actor="bob", now=NOW + 1, **limits))
        assert (await db.read(lambda c: files_store.stored(c, PHOTO))).width == 64
        assert (await db.read(lambda c: files_store.attachment(c, bob, PHOTO, "cat.png"))).mime == "image/png"


async def test_stale_uploads_and_unreferenced_contents_go(db):
    with trio.fail_after(TIMEOUT):
        ann = await user(db, "ann")
        limits = {"max_bytes": 1000, "quota": 5000}
        old = await db.write(lambda c: files_store.open_upload_txn(c, user_id=ann, file_id=PHOTO, size=10, now=NOW, **limits))
        new = await db.write(
            lambda c: files_store.open_upload_txn(c, user_id=ann, file_id=OTHER, size=10, now=NOW + 60, **limits)
        )
        assert await db.write(lambda c: files_store.expire_uploads_txn(c, ann, NOW + 30)) == [old.id]
        with pytest.raises(CorridorError) as gone:
            await db.read(lambda c: files_store.open_upload(c, ann, old.id))
        assert gone.value.code == "NO_SUCH_UPLOAD"
        await db.write(lambda c: files_store.complete_txn(c, new, NOT_A_PICTURE, actor="ann", now=NOW + 61, **limits))
        assert await db.write(lambda c: files_store.forget_unreferenced_txn(c, {OTHER}, NOW + 30)) == []  # uploaded since
        assert await db.write(lambda c: files_store.forget_unreferenced_txn(c, {OTHER, PHOTO}, NOW + 90)) == [OTHER]
        assert await db.read(lambda c: files_store.stored(c, OTHER)) is None
        third = await db.write(lambda c: files_store.open_upload_txn(c, user_id=ann, file_id=PHOTO, size=10, now=NOW, **limits))
        await db.write(lambda c: files_store.discard_txn(c, third.id))
        assert await db.read(lambda c: files_store.used_bytes(c, ann)) == 10  # the finished one still counts


# Retention


async def test_retention_rules_and_legal_holds(db):
    with trio.fail_after(TIMEOUT):
        _, engineering, platform, board = await org(db)
        ann, bob = await user(db, "ann"), await user(db, "bob")
        await db.write(lambda c: directory_store.set_memberships_txn(c, ann, [platform, board]))
        await db.write(lambda c: directory_store.set_memberships_txn(c, bob, [board]))
        await db.write(lambda c: retention_store.set_rule_txn(c, None, 365, "admin", NOW))
        await db.write(lambda c: retention_store.set_rule_txn(c, engineering, 30, "admin", NOW))
        await db.write(lambda c: retention_store.set_rule_txn(c, board, 90, "admin", NOW))
        await db.write(lambda c: retention_store.set_rule_txn(c, None, 400, "admin", NOW))  # replaces the global one
        rules = await db.read(retention_store.rules)
        assert [(r.department, r.days) for r in rules] == [(None, 400), (engineering, 30), (board, 90)]
        by_user, default, any_rule = await db.read(retention_store.keep_days)
        assert (by_user, default, any_rule) == ({ann: 90, bob: 90}, 400, True)  # the longest of ann's two
        await db.write(lambda c: retention_store.remove_rule_txn(c, board, "admin", NOW))
        assert (await db.read(retention_store.keep_days))[0] == {ann: 400, bob: 400}
        with pytest.raises(CorridorError) as missing:
            await db.write(lambda c: retention_store.remove_rule_txn(c, board, "admin", NOW))
        assert missing.value.code == "NO_SUCH_RULE"

        hold = await db.write(lambda c: retention_store.place_hold_txn(c, ann, None, "case 7", "audrey", NOW))
        assert (hold.user, hold.reason, hold.placed_at) == ("ann", "case 7", NOW)
        assert await db.read(retention_store.held) == ({ann}, set())
        await db.write(lambda c: retention_store.release_hold_txn(c, hold.id, "audrey", NOW))
        assert await db.read(retention_store.holds) == ()
        with pytest.raises(CorridorError) as gone:
            await db.write(lambda c: retention_store.release_hold_txn(c, hold.id, "audrey", NOW))
        assert gone.value.code == "NO_SUCH_HOLD"
        actions = await db.read(lambda c: [r[0] for r in c.execute("SELECT kind FROM archive ORDER BY seq")])
        assert actions.count("admin") >= 7  # every change archived in its own transaction
