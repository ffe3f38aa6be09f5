"""Groups: create, membership, roles, announcement, welcome, leave, dissolve, send and history.

The group's own roles (owner, admin, member) are looked up here and judged by the policy
(`Policy.require_in_group`); creating a group is an organisation-level decision
(`group_create` rules), and adding people is subject to `restrict_messages` like messaging them.
"""

from __future__ import annotations

import re

from corridor.protocol.errors import make_error
from corridor.protocol.messages import (
    DepartmentGroupCreate,
    Empty,
    GroupAnnounce,
    GroupAnnouncementRead,
    GroupCreate,
    GroupDissolve,
    GroupGet,
    GroupHistory,
    GroupInfo,
    GroupLeave,
    GroupList,
    GroupListResult,
    GroupMembersAdd,
    GroupMembersRemove,
    GroupRoleSet,
    GroupSend,
    GroupSummary,
    GroupUpdate,
    HistoryResult,
    SendResult,
)

from ...services import Services
from ...sessions import Session
from ..archive.store import admin_action_txn
from . import group_store, store
from .handlers import MessagingHandlers, fit_in_frame

MENTION = re.compile(r"(?<![\w@])@([a-z0-9][a-z0-9._-]{0,63})", re.IGNORECASE)


class GroupHandlers:
    """Request handlers for groups (messages go through `MessagingHandlers`' delivery)."""

    def __init__(self, services: Services, messaging: MessagingHandlers):
        self.services = services
        self.messaging = messaging

    # -- helpers ------------------------------------------------------------------------------

    def _people(self, names: tuple[str, ...]) -> dict[int, str]:
        found = {}
        for name in names:
            user = self.services.users.by_name(name.lower())
            if user is None or not user.active:
                raise make_error("NO_SUCH_USER", f"no active user '{name}'")
            found[user.id] = user.username
        return found

    def _check_size(self, count: int) -> None:
        limit = self.services.config.limits.max_group_members
        if count > limit:
            raise make_error("GROUP_FULL", f"a group has at most {limit:,} members")

    async def _change(
        self, session: Session, group_id: int, power: str | None, change, *, also_tell: tuple[int, ...] = (), dissolved=False
    ):
        """Run `change(conn, group, role)` in one transaction after the policy allowed `power`,
        then deliver the system messages it wrote to every member (and `also_tell`). Only
        `dissolved=True` changes (leaving) apply to a dissolved group."""
        me = session.actor

        def txn(conn):
            found, role = group_store.group(conn, group_id, me.user_id)
            if found.dissolved and not dissolved:
                raise make_error("NO_SUCH_GROUP", f"group {group_id} was dissolved")
            if power is not None:
                self.services.policy.require_in_group(role, power)
            said = change(conn, found, role)
            return said, group_store.member_ids(conn, group_id)

        def committed(outcome) -> None:
            said, members = outcome
            for message in said:
                self.messaging.deliver(message, None, [*members, *also_tell])

        return await self.services.db.write(txn, after_commit=committed)

    def _not_following(self, found: group_store.GroupRow) -> None:
        if found.department is not None:
            raise make_error("FORBIDDEN", "the members of a department group are the department's: they follow the directory")

    def _created(self, outcome) -> None:
        """After a group's creation committed: its first messages reach all its members."""
        _, said, everyone = outcome
        for message in said:
            self.messaging.deliver(message, None, everyone)

    async def _info(self, session: Session, group_id: int, as_member: int | None = None) -> GroupInfo:
        me = as_member or session.actor.user_id

        def read(conn):
            found, role = group_store.group(conn, group_id, me)
            members = group_store.member_ids(conn, group_id)
            admins = group_store.admin_ids(conn, group_id)
            readers = group_store.announcement_readers(conn, found) if role in ("owner", "admin") else []
            return found, members, admins, readers

        found, members, admins, readers = await self.services.db.read(read)
        name = self.services.users.name_of
        return GroupInfo(
            id=found.id,
            name=found.name,
            owner=name(found.owner_id),
            admins=tuple(sorted(map(name, admins))),
            members=tuple(sorted(map(name, members))),
            welcome=found.welcome,
            announcement=found.announcement,
            announcement_by=name(found.announcement_by) if found.announcement_by else "",
            announcement_ts=found.announcement_ts,
            announcement_read_by=tuple(sorted(map(name, readers))),
            created=found.created,
            dissolved=found.dissolved,
            department=found.department,
        )

    # -- requests -------------------------------------------------------------------------------

    async def group_create(self, session: Session, msg: GroupCreate) -> GroupInfo:
        """Create a group where the policy allows; the creator owns it."""
        me = session.actor
        decision = await self.services.policy.decide(self.services.users.by_id(me.user_id), "group_create")
        if not decision.allowed:
            raise make_error("FORBIDDEN", f"you may not create groups: {decision.reason}")
        members = self._people(msg.members)
        self._check_size(len({me.user_id, *members}))
        name, now = msg.name.strip(), self.services.clock()
        if not name:
            raise make_error("BAD_MESSAGE", "a group needs a name")

        def txn(conn):
            group_id, said = group_store.create_txn(
                conn, name=name, owner_id=me.user_id, owner=me.username, members=members, welcome=msg.welcome, now=now
            )
            return group_id, said, group_store.member_ids(conn, group_id)

        group_id, _, _ = await self.services.db.write(txn, after_commit=self._created)
        return await self._info(session, group_id)

    async def department_group_create(self, session: Session, msg: DepartmentGroupCreate) -> GroupInfo:
        """Create a department's group, whose members then follow the directory (see
        `department_groups.py`); archived as an admin action."""
        ((owner_id, owner),) = self._people((msg.owner,)).items()
        actor, now = session.actor.label, self.services.clock()

        def txn(conn):
            department = group_store.department_name(conn, msg.department)
            if department is None:
                raise make_error("NO_SUCH_DEPARTMENT", f"no department {msg.department}")
            members = {**group_store.department_people(conn, msg.department), owner_id: owner}
            self._check_size(len(members))
            name = msg.name.strip() or department
            text = f"{actor} created {name!r}, the group of the department {department}: its members follow the directory"
            group_id, said = group_store.create_txn(
                conn, name=name, owner_id=owner_id, owner=owner, members=members, welcome=msg.welcome, now=now, text=text
            )
            group_store.set_department_txn(conn, group_id, msg.department)
            admin_action_txn(
                conn,
                actor=actor,
                now=now,
                action="department_group_create",
                group=group_id,
                department=msg.department,
                owner=owner,
                members=len(members),
            )
            return group_id, said, group_store.member_ids(conn, group_id)

        group_id, _, _ = await self.services.db.write(txn, after_commit=self._created)
        return await self._info(session, group_id, as_member=owner_id)

    async def group_list(self, session: Session, msg: GroupList) -> GroupListResult:
        """My groups with my role in each."""
        me = session.actor.user_id

        def read(conn):
            rows = group_store.my_groups(conn, me)
            admin_of = {row[0] for row in conn.execute("SELECT conversation_id FROM group_admins WHERE user_id = ?", (me,))}
            return rows, admin_of

        rows, admin_of = await self.services.db.read(read)
        return GroupListResult(
            groups=tuple(
                GroupSummary(id=g, name=n, members=c, role="owner" if o == me else "admin" if g in admin_of else "member")
                for g, n, c, o in rows
            )
        )

    async def group_get(self, session: Session, msg: GroupGet) -> GroupInfo:
        """One of my groups."""
        return await self._info(session, msg.group)

    async def group_members_add(self, session: Session, msg: GroupMembersAdd) -> Empty:
        """Add people; they see the group from here on, then its welcome message."""
        me, now = session.actor, self.services.clock()
        people = self._people(msg.users)

        def change(conn, found, role):
            self._not_following(found)
            self._check_size(len(set(group_store.member_ids(conn, found.id)) | set(people)))
            return group_store.add_members_txn(conn, found, by_id=me.user_id, by=me.username, members=people, now=now)

        await self._change(session, msg.group, "add_members", change)
        return Empty()

    async def group_members_remove(self, session: Session, msg: GroupMembersRemove) -> Empty:
        """Remove people (the owner anyone but itself, admins plain members)."""
        me, now = session.actor, self.services.clock()
        people = {}
        for name in msg.users:
            user = self.services.users.by_name(name.lower())
            if user is None:
                raise make_error("NO_SUCH_USER", f"no user '{name}'")
            people[user.id] = user.username

        def change(conn, found, role):
            self._not_following(found)
            for user_id in people:
                self.services.policy.require_in_group(role, "remove_members", group_store.role_of(conn, found, user_id))
            return group_store.remove_members_txn(conn, found, by_id=me.user_id, by=me.username, members=people, now=now)

        await self._change(session, msg.group, None, change, also_tell=tuple(people))
        return Empty()

    async def group_role_set(self, session: Session, msg: GroupRoleSet) -> Empty:
        """The owner names admins, or hands the group over."""
        me, now = session.actor, self.services.clock()
        target = self.services.users.by_name(msg.user.lower())
        if target is None or not target.active:
            raise make_error("NO_SUCH_USER", f"no active user '{msg.user}'")

        def change(conn, found, role):
            if target.id not in group_store.member_ids(conn, found.id):
                raise make_error("BAD_MESSAGE", f"'{target.username}' is not in the group")
            if target.id == found.owner_id:
                raise make_error("BAD_MESSAGE", f"'{target.username}' already owns the group")
            return group_store.set_role_txn(
                conn, found, by_id=me.user_id, by=me.username, user_id=target.id, user=target.username, role=msg.role, now=now
            )

        await self._change(session, msg.group, "set_role", change)
        return Empty()

    async def group_update(self, session: Session, msg: GroupUpdate) -> Empty:
        """Rename, or change the welcome message."""
        me, now = session.actor, self.services.clock()
        name = msg.name.strip() if msg.name is not None else None
        if name == "":
            raise make_error("BAD_MESSAGE", "a group needs a name")
        await self._change(
            session,
            msg.group,
            "update",
            lambda conn, found, role: group_store.update_txn(
                conn, found, by_id=me.user_id, by=me.username, name=name, welcome=msg.welcome, now=now
            ),
        )
        return Empty()

    async def group_announce(self, session: Session, msg: GroupAnnounce) -> Empty:
        """Pin (or remove) the announcement."""
        me, now = session.actor, self.services.clock()
        await self._change(
            session,
            msg.group,
            "announce",
            lambda conn, found, role: group_store.announce_txn(
                conn, found, by_id=me.user_id, by=me.username, text=msg.text, now=now
            ),
        )
        return Empty()

    async def group_announcement_read(self, session: Session, msg: GroupAnnouncementRead) -> Empty:
        """Record that I read the current announcement."""
        me = session.actor.user_id

        def txn(conn):
            found, _ = group_store.group(conn, msg.group, me)
            group_store.announcement_read_txn(conn, found, me)

        await self.services.db.write(txn)
        return Empty()

    async def group_leave(self, session: Session, msg: GroupLeave) -> Empty:
        """Leave; an owner must hand the group over or dissolve it first."""
        me, now = session.actor, self.services.clock()

        def change(conn, found, role):
            if role == "owner" and not found.dissolved:
                raise make_error("BAD_MESSAGE", "the owner first hands the group over to another member, or dissolves it")
            if found.dissolved:  # nothing to tell anyone: just stop carrying it
                group_store.forget_txn(conn, found, me.user_id)
                return []
            self._not_following(found)
            return group_store.remove_members_txn(
                conn, found, by_id=me.user_id, by=me.username, members={me.user_id: me.username}, now=now, left=True
            )

        await self._change(session, msg.group, None, change, also_tell=(me.user_id,), dissolved=True)
        return Empty()

    async def group_dissolve(self, session: Session, msg: GroupDissolve) -> Empty:
        """End the group; its history and archive stay."""
        me, now = session.actor, self.services.clock()
        await self._change(
            session,
            msg.group,
            "dissolve",
            lambda conn, found, role: group_store.dissolve_txn(conn, found, by_id=me.user_id, by=me.username, now=now),
        )
        return Empty()

    async def group_send(self, session: Session, msg: GroupSend) -> SendResult:
        """Store durably, then acknowledge; every member's sessions get it once, after the commit."""
        me, now = session.actor, self.services.clock()
        attach = self.messaging.attachment(me.user_id, msg.file, msg.text)

        def txn(conn):
            duplicate = store.find_duplicate(conn, me.device_id, msg.msg_id)
            if duplicate is not None:
                return duplicate, []
            found, role = group_store.group(conn, msg.group, me.user_id)
            if found.dissolved:
                raise make_error("NO_SUCH_GROUP", f"group {msg.group} was dissolved")
            store.hold_sequence(conn, found.id)
            # Again under the hold: on PostgreSQL another process may have stored this retry meanwhile.
            duplicate = store.find_duplicate(conn, me.device_id, msg.msg_id)
            if duplicate is not None:
                return duplicate, []
            members = group_store.member_ids(conn, found.id)
            file = attach(conn) if attach else None
            stored = store.append_message_txn(
                conn,
                conversation=found.id,
                sender_id=me.user_id,
                sender_name=me.username,
                device_id=me.device_id,
                recipient_id=None,
                msg_id=msg.msg_id,
                text=msg.text,
                now=now,
                kind="file" if file else "text",
                mentions=() if file else self._mentions(msg.text, role, members),
                file=file,
            )
            return stored, members

        stored, _ = await self.services.db.write(
            txn, after_commit=lambda outcome: self.messaging.deliver(outcome[0], session.id, outcome[1])
        )
        return SendResult(conversation=stored.conversation, seq=stored.seq, ts=stored.ts, duplicate=stored.duplicate)

    def _mentions(self, text: str, role: str, members: list[int]) -> tuple[str, ...]:
        names = {self.services.users.name_of(i) for i in members}
        found = []
        for match in MENTION.finditer(text):
            name = match.group(1).lower()
            if name not in names:  # "@bob." at the end of a sentence
                name = name.rstrip("._-")
            if name == "all":
                self.services.policy.require_in_group(role, "mention_all")
            elif name not in names:
                continue
            if name not in found:
                found.append(name)
        return tuple(found)

    async def group_history(self, session: Session, msg: GroupHistory) -> HistoryResult:
        """The group's messages from when I joined, oldest first."""
        me = session.actor.user_id

        def read(conn):
            group_store.group(conn, msg.group, me)
            floor = group_store.joined_seq(conn, msg.group, me)
            return store.history(conn, msg.group, msg.before, msg.after, msg.limit, floor=floor)

        found = await self.services.db.read(read)
        if msg.after is None:  # paging backwards: keep the newest that fit
            newest, _ = fit_in_frame(found[::-1], self.messaging.page_bytes)
            found = newest[::-1]
        else:
            found, _ = fit_in_frame(found, self.messaging.page_bytes)
        return HistoryResult(conversation=msg.group, messages=tuple(self.messaging.chat(m) for m in found))
