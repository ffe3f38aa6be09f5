"""Groups through the real server: who may do what in a group, members who join later see only
what follows, announcements with who read them, mentions, leaving and dissolving — and every
member of a large group receives each message exactly once."""

import pytest
import trio

from corridor.client.client import Client
from corridor.client.enrollment import enroll
from corridor.client.profile import Profile
from corridor.client.transport import running
from corridor.protocol.errors import NotFound, PermissionDenied, RequestError
from corridor.protocol.messages import (
    DepartmentAdd,
    DirectoryImport,
    GroupAnnounce,
    GroupAnnouncementRead,
    GroupCreate,
    GroupDissolve,
    GroupGet,
    GroupHistory,
    GroupLeave,
    GroupList,
    GroupMembersAdd,
    GroupMembersRemove,
    GroupRoleSet,
    GroupSend,
    GroupUpdate,
    ImportPerson,
    Login,
    MessageEvent,
    PolicySet,
    ProfileSet,
)

from .conftest import serve_with
from .helpers import PASSWORD, admin_request


async def messages(client: Client, count: int, seconds: float = 10) -> list[MessageEvent]:
    """The next `count` messages a receiving client hands over."""
    got = []
    with trio.fail_after(seconds):
        async for event in client.events():
            if isinstance(event, MessageEvent):
                got.append(event)
                if len(got) == count:
                    return got
    return got


async def test_owners_admins_and_members_each_have_their_powers(org):
    alice, bob, carol, dave = [await org.user(n) for n in ("alice", "bob", "carol", "dave")]
    async with (
        Client.open(alice, receive=False) as a,
        Client.open(bob, receive=False) as b,
        Client.open(carol, receive=False) as c,
    ):
        info = await a.request(GroupCreate(name="Launch", members=("bob", "carol"), welcome="Welcome to Launch!"))
        assert (info.owner, info.members, info.admins) == ("alice", ("alice", "bob", "carol"), ())
        group = info.id
        for refused in (GroupMembersAdd(group=group, users=("dave",)), GroupUpdate(group=group, name="Mine")):
            with pytest.raises(PermissionDenied):
                await b.request(refused)  # a plain member
        await a.request(GroupRoleSet(group=group, user="bob", role="admin"))
        await b.request(GroupMembersAdd(group=group, users=("dave",)))
        await b.request(GroupUpdate(group=group, name="Launch team"))
        with pytest.raises(PermissionDenied):
            await b.request(GroupMembersRemove(group=group, users=("alice",)))  # nobody removes the owner
        with pytest.raises(PermissionDenied):
            await b.request(GroupDissolve(group=group))
        await b.request(GroupMembersRemove(group=group, users=("carol",)))
        with pytest.raises(NotFound):
            await c.request(GroupGet(group=group))  # carol is out: the group is not hers to see
        with pytest.raises(RequestError):
            await a.request(GroupLeave(group=group))  # the owner hands over first
        await a.request(GroupRoleSet(group=group, user="bob", role="owner"))
        await a.request(GroupLeave(group=group))
        info = await b.request(GroupGet(group=group))
        assert (info.name, info.owner, info.members) == ("Launch team", "bob", ("bob", "dave"))
        assert [g.role for g in (await b.request(GroupList())).groups] == ["owner"]
    async with Client.open(dave, receive=False) as d:
        history = await d.request(GroupHistory(group=group))
        assert [(m.kind, m.text) for m in history.messages][:2] == [
            ("system", "bob added dave"),
            ("welcome", "Welcome to Launch!"),
        ]


async def test_members_who_join_later_see_history_from_their_join_point_only(org):
    alice, bob, carol = [await org.user(n) for n in ("alice", "bob", "carol")]
    async with Client.open(alice, receive=False) as a:
        group = (await a.request(GroupCreate(name="Ops", members=("bob",)))).id
        await a.send_group(group, "before carol")
        await a.request(GroupMembersAdd(group=group, users=("carol",)))
        await a.send_group(group, "after carol")
    async with Client.open(carol) as c:  # her first sync: from her join point on
        got = await messages(c, 2)
        assert [m.text for m in got] == ["alice added carol", "after carol"]
        history = await c.request(GroupHistory(group=group, limit=100))
        assert "before carol" not in [m.text for m in history.messages]
    async with Client.open(bob) as b:
        got = await messages(b, 4)
        assert [m.text for m in got][1:] == ["before carol", "alice added carol", "after carol"]


async def test_announcements_show_who_read_them_and_mentions_are_marked(org):
    alice, bob, carol = [await org.user(n) for n in ("alice", "bob", "carol")]
    async with Client.open(alice, receive=False) as a, Client.open(bob, receive=False) as b:
        group = (await a.request(GroupCreate(name="All hands", members=("bob", "carol")))).id
        await a.request(GroupAnnounce(group=group, text="Friday: office closed"))
        await b.request(GroupAnnouncementRead(group=group))
        info = await a.request(GroupGet(group=group))
        assert (info.announcement, info.announcement_by, info.announcement_read_by) == (
            "Friday: office closed",
            "alice",
            ("bob",),
        )
        assert (await b.request(GroupGet(group=group))).announcement_read_by == ()  # only for owner and admins
        with pytest.raises(PermissionDenied):
            await b.send_group(group, "@all lunch?")  # @all is for the owner and admins
        await b.send_group(group, "@nobody, see above @carol.")
        await a.send_group(group, "@all thanks")
    async with Client.open(carol) as c:
        got = await messages(c, 4)
        assert [(m.text, m.mentions) for m in got[-2:]] == [
            ("@nobody, see above @carol.", ("carol",)),
            ("@all thanks", ("all",)),
        ]


async def test_group_creation_and_membership_follow_the_organisation_policy(org):
    alice, bob = await org.user("alice"), await org.user("bob")
    await org.user("bea")
    board = (await admin_request(org.data_dir, DepartmentAdd(name="Board"))).id
    await admin_request(org.data_dir, ProfileSet(user="bea", departments=(board,)))
    await admin_request(org.data_dir, PolicySet(kind="restrict_messages", department=board, subjects=()))
    async with Client.open(alice, receive=False) as a:
        with pytest.raises(PermissionDenied):  # adding someone is messaging them
            await a.request(GroupCreate(name="Sneaky", members=("bea",)))
        group = (await a.request(GroupCreate(name="Fine", members=("bob",)))).id
        with pytest.raises(PermissionDenied):
            await a.request(GroupMembersAdd(group=group, users=("bea",)))
    await admin_request(org.data_dir, PolicySet(kind="group_create", department=None, subjects=("user:bob",)))
    async with Client.open(alice, receive=False) as a, Client.open(bob, receive=False) as b:
        with pytest.raises(PermissionDenied) as refused:
            await a.request(GroupCreate(name="Another"))
        assert "group_create" in refused.value.message
        await b.request(GroupCreate(name="Bob's"))


async def test_a_dissolved_group_takes_no_more_messages_but_keeps_its_history(org):
    alice, bob = await org.user("alice"), await org.user("bob")
    async with Client.open(alice, receive=False) as a, Client.open(bob, receive=False) as b:
        group = (await a.request(GroupCreate(name="Short-lived", members=("bob",)))).id
        await b.send_group(group, "hello")
        await a.request(GroupDissolve(group=group))
        with pytest.raises(NotFound):
            await b.send_group(group, "anyone?")
        assert (await b.request(GroupList())).groups == ()
        texts = [m.text for m in (await b.request(GroupHistory(group=group))).messages]
        assert texts[-2:] == ["hello", "alice dissolved the group"]
        await b.request(GroupLeave(group=group))  # and it leaves his sync
        with pytest.raises(NotFound):
            await b.request(GroupHistory(group=group))
        with pytest.raises(NotFound):  # "#2" is never a username: nothing enters the outbox
            await b.send("#2", "to a group by mistake")
        assert b.profile.outbox() == []


@pytest.mark.slow
async def test_every_member_of_a_500_member_group_receives_each_message_exactly_once(data_dir, tmp_path, nursery):
    org = await serve_with(nursery, data_dir, tmp_path, max_connections_per_address=1000)
    names = [f"m{i:03d}" for i in range(500)]
    result = await admin_request(
        org.data_dir,
        DirectoryImport(
            people=tuple(ImportPerson(username=n, display_name=n) for n in names), final=True, total=500, invites=True
        ),
    )
    profiles: dict[str, Profile] = {}
    limiter = trio.CapacityLimiter(8)

    async def enroll_one(name: str, invite: str) -> None:
        async with limiter:
            profiles[name] = Profile(tmp_path / name)
            await enroll(profiles[name], invite, PASSWORD, "desk")

    async with trio.open_nursery() as enrolling:
        for issued in result.invites:
            enrolling.start_soon(enroll_one, issued.user, issued.invite)

    # Every member is connected on the raw protocol and counts what the server pushes to it.
    received: dict[str, list[tuple[int, str]]] = {n: [] for n in names}
    senders = names[:5]
    expected = 1 + len(senders) * 4  # the "created" message, then 4 from each sender
    # Bounded as a whole: a stuck connection fails the test with its stack instead of hanging it.
    with trio.fail_after(150):
        async with trio.open_nursery() as members:
            listeners = []

            async def listen(name: str) -> None:
                stream = await org.raw_tls()
                async with running(stream) as channel:
                    await channel.handshake()
                    await channel.request(Login(user=name, device_token=profiles[name].credential().device_token))
                    listeners.append(name)
                    with trio.move_on_after(60):
                        async for event in channel.events:
                            if isinstance(event, MessageEvent):
                                received[name].append((event.seq, event.msg_id))
                                if len(received[name]) == expected:
                                    break
                    with trio.move_on_after(0.5):  # anything more would be a duplicate
                        async for event in channel.events:
                            if isinstance(event, MessageEvent):
                                received[name].append((event.seq, event.msg_id))

            for name in names:
                members.start_soon(listen, name)
            with trio.fail_after(60):
                while len(listeners) < len(names):
                    await trio.sleep(0.05)
            owner = profiles[names[0]]
            async with running(await org.raw_tls()) as channel:
                await channel.handshake()
                await channel.request(Login(user=names[0], device_token=owner.credential().device_token))
                group = (await channel.request(GroupCreate(name="Everyone", members=tuple(names[1:])))).id

            async def send_four(name: str) -> None:
                async with running(await org.raw_tls()) as channel:
                    await channel.handshake()
                    await channel.request(Login(user=name, device_token=profiles[name].credential().device_token))
                    for n in range(4):
                        await channel.request(GroupSend(group=group, msg_id=f"{name}-{n}", text=f"{name} says {n}"))

            async with trio.open_nursery() as sending:
                for name in senders:
                    sending.start_soon(send_four, name)

    for name in names:
        seqs = [seq for seq, _ in received[name]]
        assert seqs == list(range(1, expected + 1)), (name, seqs)  # each once, in order, none missing
    for profile in profiles.values():
        profile.close()
