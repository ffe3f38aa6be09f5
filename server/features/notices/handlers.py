"""Broadcast notices: sending (where the policy's `broadcast` rules allow, at most
`limits.notices_per_hour`), inboxes, reading, and the sender's live read count."""

from __future__ import annotations

from corridor.protocol.errors import make_error
from corridor.protocol.messages import (
    Empty,
    NoticeEvent,
    NoticeInbox,
    NoticeInboxResult,
    NoticeInfo,
    NoticeRead,
    NoticeReadEvent,
    NoticeSend,
    NoticeSent,
    NoticeStatus,
    NoticeStatusResult,
)

from ...services import Services
from ...sessions import ADMINS, Delivery, Session
from ..policies import store as policies_store
from . import store

UNREAD_LISTED = 5000


class NoticeHandlers:
    """Request handlers of the notices feature."""

    def __init__(self, services: Services):
        self.services = services

    async def notice_send(self, session: Session, msg: NoticeSend) -> NoticeSent:
        """Check the policy for every target, the sender's hourly limit, then store and push."""
        me, now = session.actor, self.services.clock()
        if msg.everyone == bool(msg.departments or msg.users):
            raise make_error("BAD_MESSAGE", "send a notice to some departments or people, or to everyone, not both or neither")
        sender = self.services.users.by_id(me.user_id)
        policy = self.services.policy
        for department in msg.departments or ((None,) if msg.everyone else ()):
            decision = await policy.decide(sender, "broadcast", department=department)
            if not decision.allowed:
                raise make_error("FORBIDDEN", f"you may not send notices there: {decision.reason}")
        users = await self._named_recipients(sender, msg.users)
        # An integration is held to its own rate (`integrations/gate.py`), not a person's.
        per_hour = self.services.config.limits.notices_per_hour if me.scopes is None else None

        def txn(conn):
            recent = store.sent_since(conn, me.user_id, now - store.HOUR) if per_hour is not None else []
            if per_hour is not None and len(recent) >= per_hour and not store.already_sent(conn, me.device_id, msg.msg_id):
                raise make_error("RATE_LIMITED", f"at most {per_hour} notices an hour", retry_after=recent[0] + store.HOUR - now)
            return store.send_txn(
                conn,
                sender_id=me.user_id,
                sender_name=me.username,
                device_id=me.device_id,
                msg_id=msg.msg_id,
                title=msg.title,
                text=msg.text,
                departments=msg.departments,
                everyone=msg.everyone,
                now=now,
                users=users,
            )

        def committed(sent: store.Sent) -> None:
            event = Delivery(NoticeEvent(id=sent.id, sender=me.username, title=msg.title, text=msg.text, ts=sent.ts, read=False))
            self.services.bus.publish_to_users(sent.recipients, event, f"notice.{sent.id}")

        sent = await self.services.db.write(txn, after_commit=committed)
        recipients = len(sent.recipients) if not sent.duplicate else (await self._status(sent.id, None))[0]
        return NoticeSent(id=sent.id, recipients=recipients, duplicate=sent.duplicate)

    async def _named_recipients(self, sender, names: tuple[str, ...]) -> tuple[int, ...]:
        """The ids of people a notice names; each must be active and in a department (or the
        organisation) where the sender may broadcast."""
        found = []
        for name in dict.fromkeys(n.lower() for n in names):
            user = self.services.users.by_name(name)
            if user is None or not user.active:
                raise make_error("NO_SUCH_USER", f"no user '{name}'")
            places = await self.services.db.read(lambda conn, u=user: policies_store.memberships(conn, u.id))
            decisions = [await self.services.policy.decide(sender, "broadcast", department=p) for p in places or (None,)]
            if not any(d.allowed for d in decisions):
                raise make_error("FORBIDDEN", f"you may not send notices to '{name}': {decisions[0].reason}")
            found.append(user.id)
        return tuple(found)

    async def notice_inbox(self, session: Session, msg: NoticeInbox) -> NoticeInboxResult:
        """My notices, newest first."""
        me = session.actor.user_id
        found = await self.services.db.read(lambda conn: store.inbox(conn, me, msg.unread, msg.limit))
        name = self.services.users.name_of
        return NoticeInboxResult(
            notices=tuple(NoticeInfo(id=i, sender=name(s), title=t, text=x, ts=ts, read=bool(r)) for i, s, t, x, ts, r in found)
        )

    async def notice_read(self, session: Session, msg: NoticeRead) -> Empty:
        """Mark it read; the sender's sessions hear the new count at once."""
        me, now = session.actor, self.services.clock()

        def committed(counted) -> None:
            if counted is not None:
                sender, read, recipients = counted
                event = NoticeReadEvent(id=msg.notice, user=me.username, read=read, recipients=recipients)
                self.services.bus.publish(f"user:{sender}", Delivery(event))

        await self.services.db.write(lambda conn: store.mark_read_txn(conn, msg.notice, me.user_id, now), after_commit=committed)
        return Empty()

    async def _status(self, notice: int, sender: int | None) -> tuple[int, int, list[int], int]:
        return await self.services.db.read(lambda conn: store.status(conn, notice, sender, UNREAD_LISTED))

    async def notice_status(self, session: Session, msg: NoticeStatus) -> NoticeStatusResult:
        """Read and unread counts of a notice I sent (any notice, for IT admins)."""
        actor = session.actor
        admin = (actor.role if actor.kind == "user" else actor.kind) in ADMINS
        recipients, read, unread, more = await self._status(msg.notice, None if admin else actor.user_id)
        name = self.services.users.name_of
        return NoticeStatusResult(
            id=msg.notice, recipients=recipients, read=read, unread_by=tuple(sorted(map(name, unread))), more_unread=more
        )
