"""The accounts store's contract, written once and run on SQLite and on a real PostgreSQL
server, through `db.write` / `db.read` as the server uses them: users, invites, devices, and
the actions that archive themselves (deactivate, revoke a device)."""

import pytest
import trio

from corridor.protocol.errors import CorridorError
from corridor.server.features.accounts import MIGRATIONS, store
from corridor.server.features.archive import MIGRATIONS as ARCHIVE_MIGRATIONS
from corridor.server.storage.migrations import apply_migrations

from .pg import any_db_fixture, closed_later_fixture, pg_dsn_fixture, postgres_cluster_fixture  # noqa: F401

NOW = 1_700_000_000.25  # a fraction PostgreSQL's single-precision REAL would lose


@pytest.fixture
async def db(any_db):
    """A started database with the accounts and archive schemas."""
    apply_migrations(any_db, [*MIGRATIONS, *ARCHIVE_MIGRATIONS])
    return any_db


async def add(db, username: str, role: str = "user", bot: bool = False) -> store.UserRow:
    return await db.write(lambda c: store.create_user_txn(c, username, username.title(), role, NOW, bot=bot))


async def test_users_are_created_once_and_listed(db):
    with trio.fail_after(10):
        ann = await add(db, "ann")
        bot = await add(db, "build-bot", bot=True)
        with pytest.raises(CorridorError) as taken:
            await add(db, "ann", role="admin")
        assert taken.value.code == "ALREADY_EXISTS"
        assert ann.id != bot.id
        assert await db.read(store.all_users) == [
            store.UserRow(ann.id, "ann", "Ann", "user", True, False),
            store.UserRow(bot.id, "build-bot", "Build-Bot", "user", True, True),
        ]
        assert await db.read(lambda c: store.user_row(c, ann.id)) == ann
        assert await db.read(lambda c: store.password_hash(c, ann.id)) is None


async def test_an_invite_is_redeemed_once_and_expires(db):
    with trio.fail_after(10):
        ann = await add(db, "ann")
        await db.write(lambda c: store.create_invite_txn(c, ann.id, b"\x00invite", NOW, NOW + 60))
        assert await db.read(lambda c: store.invited_user(c, b"\x00invite", NOW + 1)) == ann
        assert await db.read(lambda c: store.invited_user(c, b"\x00invite", NOW + 61)) is None  # expired
        assert await db.read(lambda c: store.pending_invites(c, None, NOW)) == [("ann", NOW, NOW + 60)]
        assert await db.read(lambda c: store.pending_invites(c, ann.id, NOW)) == [("ann", NOW, NOW + 60)]
        assert await db.read(lambda c: store.pending_invites(c, ann.id + 1, NOW)) == []

        await db.write(lambda c: store.redeem_invite_txn(c, b"\x00invite", ann.id, "argon2id$hash", NOW + 2))
        assert await db.read(lambda c: store.password_hash(c, ann.id)) == "argon2id$hash"
        with pytest.raises(CorridorError) as again:
            await db.write(lambda c: store.redeem_invite_txn(c, b"\x00invite", ann.id, "other", NOW + 3))
        assert again.value.code == "INVITE_INVALID"
        assert await db.read(lambda c: store.password_hash(c, ann.id)) == "argon2id$hash"  # nothing half-written

        await db.write(lambda c: store.create_invite_txn(c, ann.id, b"late", NOW, NOW + 60))
        with pytest.raises(CorridorError):
            await db.write(lambda c: store.redeem_invite_txn(c, b"late", ann.id, "late", NOW + 61))


async def test_revoked_invites_no_longer_count(db):
    with trio.fail_after(10):
        ann = await add(db, "ann")
        await db.write(lambda c: store.create_invite_txn(c, ann.id, b"one", NOW, NOW + 60))
        assert await db.write(lambda c: store.revoke_invites_txn(c, ann.id, NOW + 1)) == 1
        assert await db.read(lambda c: store.invited_user(c, b"one", NOW + 2)) is None
        assert await db.read(lambda c: store.pending_invites(c, None, NOW + 2)) == []


async def test_devices_are_added_and_found_by_token(db):
    with trio.fail_after(10):
        ann = await add(db, "ann")
        laptop = await db.write(lambda c: store.add_device_txn(c, ann.id, "laptop", b"\xfflaptop", NOW))
        phone = await db.write(lambda c: store.add_device_txn(c, ann.id, "phone", b"\xffphone", NOW + 1))
        assert laptop != phone
        assert await db.read(lambda c: store.device_for_token(c, b"\xffphone")) == (phone, ann.id)
        assert await db.read(lambda c: store.device_for_token(c, b"unknown")) is None
        assert await db.read(lambda c: store.devices(c, ann.id)) == [
            (laptop, "laptop", NOW, False),
            (phone, "phone", NOW + 1, False),
        ]


async def test_a_revoked_device_token_no_longer_logs_in(db):
    with trio.fail_after(10):
        ann = await add(db, "ann")
        laptop = await db.write(lambda c: store.add_device_txn(c, ann.id, "laptop", b"laptop", NOW))
        await db.write(lambda c: store.revoke_device_txn(c, user_id=ann.id, device_id=laptop, actor="admin", now=NOW + 1))
        assert await db.read(lambda c: store.device_for_token(c, b"laptop")) is None
        assert await db.read(lambda c: store.devices(c, ann.id)) == [(laptop, "laptop", NOW, True)]
        with pytest.raises(CorridorError) as other:
            await db.write(lambda c: store.revoke_device_txn(c, user_id=ann.id, device_id=laptop + 1, actor="admin", now=NOW))
        assert other.value.code == "NO_SUCH_DEVICE"


async def test_a_deactivated_user_loses_invites_and_devices(db):
    with trio.fail_after(10):
        ann = await add(db, "ann")
        await db.write(lambda c: store.create_invite_txn(c, ann.id, b"invite", NOW, NOW + 60))
        await db.write(lambda c: store.add_device_txn(c, ann.id, "laptop", b"laptop", NOW))
        after = await db.write(lambda c: store.set_active_txn(c, user_id=ann.id, active=False, actor="admin", now=NOW + 1))
        assert after.active is False
        assert await db.read(lambda c: store.device_for_token(c, b"laptop")) is None
        assert await db.read(lambda c: store.invited_user(c, b"invite", NOW + 2)) is None
        assert [u.active for u in await db.read(store.all_users)] == [False]
