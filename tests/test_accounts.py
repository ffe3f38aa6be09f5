"""Account lifecycle through the real server: deactivation ends live sessions at once, invites
can be reissued, and people manage their own devices."""

import pytest
import trio

from corridor.client.client import Client
from corridor.client.enrollment import enroll
from corridor.client.profile import Profile
from corridor.client.transport import running
from corridor.protocol.errors import AuthenticationError, NotFound, PermissionDenied
from corridor.protocol.messages import (
    DeviceList,
    DeviceRevoke,
    InviteReissue,
    Login,
    UserDeactivate,
    UserReactivate,
)

from .helpers import PASSWORD, RawPeer, admin_request


async def logged_in_peer(org, profile: Profile) -> RawPeer:
    cred = profile.credential()
    peer = RawPeer(await org.raw_tls())
    await peer.hello()
    await peer.send({"type": "login", "id": 2, "user": cred.user, "device_token": cred.device_token})
    assert (await peer.frame())["type"] == "result"
    return peer


async def closed_within(peer: RawPeer, seconds: float) -> dict:
    """The connection-level error the server sent before closing, within `seconds`."""
    with trio.fail_after(seconds):
        frame = await peer.frame()
        while frame is not None and frame["type"] != "error":
            frame = await peer.frame()
        assert frame is not None and "re" not in frame
        assert await peer.frame() is None
        return frame


async def test_deactivation_ends_live_sessions_at_once_and_keeps_history(org):
    alice, bob = await org.user("alice"), await org.user("bob")
    async with Client.open(alice, receive=False) as a:
        await a.send("bob", "before leaving")
    live = await logged_in_peer(org, bob)
    started = trio.current_time()
    await admin_request(org.data_dir, UserDeactivate(user="bob"))
    assert (await closed_within(live, 1.0))["code"] == "ACCOUNT_DISABLED"
    assert trio.current_time() - started < 1.0

    with pytest.raises(AuthenticationError) as refused:  # the device token no longer logs in
        async with Client.open(bob, receive=False):
            pass
    assert refused.value.code == "LOGIN_FAILED"
    async with running(await org.raw_tls()) as channel:  # nor does the password, with the same error
        await channel.handshake()
        with pytest.raises(AuthenticationError) as by_password:
            await channel.request(Login(user="bob", password=PASSWORD))
    assert by_password.value.code == "LOGIN_FAILED"
    async with Client.open(alice, receive=False) as a:
        with pytest.raises(NotFound):
            await a.send("bob", "are you there?")
        assert [m.text for m in (await a.history("bob")).messages] == ["before leaving"]  # history stays readable

    await admin_request(org.data_dir, UserReactivate(user="bob"))
    async with Client.open(bob) as b:
        async for event in b.events():
            assert event.text == "before leaving"  # nothing of theirs was lost
            break


async def test_reissued_invite_replaces_the_old_one(org, tmp_path):
    old = await org.invite("carol")
    new = (await admin_request(org.data_dir, InviteReissue(user="carol"))).invite
    with pytest.raises(AuthenticationError) as stale:
        await enroll(Profile(tmp_path / "stale"), old, PASSWORD, "laptop")
    assert stale.value.code == "INVITE_INVALID"
    result = await enroll(Profile(tmp_path / "fresh"), new, "a brand new password", "laptop")
    assert result.user == "carol"
    # An admin password reset: reissue, and the person enrolls again with a new password.
    reset = (await admin_request(org.data_dir, InviteReissue(user="carol"))).invite
    await enroll(Profile(tmp_path / "reset"), reset, "another new password", "phone")
    async with running(await org.raw_tls()) as channel:
        await channel.handshake()
        assert (await channel.request(Login(user="carol", password="another new password"))).user == "carol"


async def test_people_manage_their_own_devices_and_only_theirs(org, tmp_path):
    laptop, _ = await org.user("dave"), await org.user("erin")
    phone = Profile(tmp_path / "dave-phone")
    await enroll(phone, (await admin_request(org.data_dir, InviteReissue(user="dave"))).invite, PASSWORD, "phone")
    phone_id = phone.credential().device_id
    live_phone = await logged_in_peer(org, phone)
    async with Client.open(laptop, receive=False) as dave:
        devices = (await dave.request(DeviceList(user="dave"))).devices
        assert [(d.name, d.revoked) for d in devices] == [("test device", False), ("phone", False)]
        with pytest.raises(PermissionDenied):
            await dave.request(DeviceList(user="erin"))
        with pytest.raises(NotFound) as foreign:
            await dave.request(DeviceRevoke(user="dave", device_id=9999))
        assert foreign.value.code == "NO_SUCH_DEVICE"
        await dave.request(DeviceRevoke(user="dave", device_id=phone_id))
        assert (await closed_within(live_phone, 1.0))["code"] == "ACCOUNT_DISABLED"
        assert [d.revoked for d in (await dave.request(DeviceList(user="dave"))).devices] == [False, True]
        assert (await dave.send("erin", "laptop still works")).seq == 1
    with pytest.raises(AuthenticationError):
        async with Client.open(phone, receive=False):
            pass
    admin_view = await admin_request(org.data_dir, DeviceList(user="dave"))
    assert len(admin_view.devices) == 2
