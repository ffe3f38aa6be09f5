"""Read and delivered marks, unread counts, read receipts and typing indicators."""

from __future__ import annotations

from corridor.protocol.errors import make_error
from corridor.protocol.messages import (
    DeliveredEvent,
    Empty,
    MarkDelivered,
    MarkRead,
    ReadEvent,
    ReadReceipts,
    ReadReceiptsResult,
    Typing,
    TypingEvent,
    Unread,
    UnreadCount,
    UnreadResult,
)

from ...services import Services
from ...sessions import Delivery, Session
from . import read_store


class ReadHandlers:
    """Request handlers for what people have read, and who is typing."""

    def __init__(self, services: Services):
        self.services = services

    async def mark_read(self, session: Session, msg: MarkRead) -> Empty:
        """Move my read mark; tell my other devices, and the other person of a 1:1 conversation."""
        me = session.actor

        def txn(conn):
            kind, _, _ = read_store.conversation_of(conn, msg.conversation, me.user_id)
            mark = read_store.mark_read_txn(conn, me.user_id, msg.conversation, msg.seq)
            others = read_store.other_members(conn, msg.conversation, me.user_id) if kind == "direct" else []
            return mark, others

        def committed(outcome) -> None:
            mark, others = outcome
            delivery = Delivery(ReadEvent(conversation=msg.conversation, user=me.username, seq=mark), session.id)
            for user_id in [me.user_id, *others]:
                self.services.bus.publish(f"user:{user_id}", delivery)

        await self.services.db.write(txn, after_commit=committed)
        return Empty()

    async def mark_delivered(self, session: Session, msg: MarkDelivered) -> Empty:
        """Move my delivered marks; in a 1:1 conversation the sender hears that it arrived."""
        me = session.actor

        def txn(conn):
            moved = []
            for mark in msg.marks:
                outcome = read_store.mark_delivered_txn(conn, me.user_id, mark.conversation, mark.seq)
                if outcome is not None and outcome[0] == "direct":
                    moved.append((mark.conversation, outcome[1], read_store.other_members(conn, mark.conversation, me.user_id)))
            return moved

        def committed(moved) -> None:
            for conversation, seq, others in moved:
                delivery = Delivery(DeliveredEvent(conversation=conversation, user=me.username, seq=seq))
                for user_id in others:
                    self.services.bus.publish(f"user:{user_id}", delivery)

        await self.services.db.write(txn, after_commit=committed)
        return Empty()

    async def unread(self, session: Session, msg: Unread) -> UnreadResult:
        """My conversations with unread messages from others."""
        me = session.actor.user_id
        found = await self.services.db.read(lambda conn: read_store.unread(conn, me))
        return UnreadResult(
            conversations=tuple(UnreadCount(conversation=c, unread=n, last_seq=last, read_seq=r) for c, n, last, r in found if n)
        )

    async def read_receipts(self, session: Session, msg: ReadReceipts) -> ReadReceiptsResult:
        """Who has read message `seq`, and who has not (among those who can see it)."""
        me = session.actor.user_id

        def read(conn):
            _, last_seq, joined = read_store.conversation_of(conn, msg.conversation, me)
            if not joined < msg.seq <= last_seq:
                raise make_error("NO_SUCH_MESSAGE", f"conversation {msg.conversation} has no message #{msg.seq} you can see")
            return read_store.receipts(conn, msg.conversation, me, msg.seq)

        read_by, not_yet, delivered = await self.services.db.read(read)

        def names(user_ids: list[int]) -> tuple[str, ...]:
            return tuple(sorted(map(self.services.users.name_of, user_ids)))

        return ReadReceiptsResult(read=names(read_by), unread=names(not_yet), delivered=names(delivered))

    async def typing(self, session: Session, msg: Typing) -> Empty:
        """Tell the other person, now; nothing is stored."""
        peer = self.services.users.by_name(msg.to.lower())
        if peer is None or not peer.active:
            raise make_error("NO_SUCH_USER", f"no active user '{msg.to}'")
        self.services.bus.publish(f"user:{peer.id}", Delivery(TypingEvent(user=session.actor.username)))
        return Empty()
