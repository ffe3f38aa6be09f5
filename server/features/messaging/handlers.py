"""Sending, syncing and reading 1:1 messages."""

from __future__ import annotations

from corridor.protocol.errors import make_error
from corridor.protocol.framing import DEFAULT_MAX_FRAME_BYTES
from corridor.protocol.messages import ChatMessage, History, HistoryResult, MessageEvent, Send, SendResult, Sync, SyncResult

from ...services import Services
from ...sessions import Delivery, Session
from . import store

# Per-message framing overhead allowance on top of the text (field names, ids, numbers).
MESSAGE_OVERHEAD = 256


def fit_in_frame(messages: list[store.StoredMessage], budget: int) -> tuple[list[store.StoredMessage], bool]:
    """The longest prefix of `messages` whose encoding stays within `budget` bytes (at least one
    message, which always fits since texts are bounded); True if some were left out."""
    used = 0
    for index, message in enumerate(messages):
        used += len(message.text.encode()) + MESSAGE_OVERHEAD
        if used > budget and index > 0:
            return messages[:index], True
    return messages, False


class MessagingHandlers:
    """Request handlers of the messaging feature."""

    def __init__(self, services: Services):
        self.services = services
        # Leave room for the envelope, and never exceed the default frame size every client
        # accepts, even where an admin raised the server's own receive limit.
        self.page_bytes = min(services.config.limits.max_frame_bytes, DEFAULT_MAX_FRAME_BYTES) * 3 // 4

    def _chat(self, stored: store.StoredMessage, cls: type[ChatMessage] = ChatMessage) -> ChatMessage:
        users = self.services.users
        recipient = users.name_of(stored.recipient_id) if stored.recipient_id is not None else ""
        return cls(
            conversation=stored.conversation,
            seq=stored.seq,
            sender=users.name_of(stored.sender_id),
            recipient=recipient,
            msg_id=stored.msg_id,
            text=stored.text,
            ts=stored.ts,
        )

    def _deliver(self, stored: store.StoredMessage, origin: int) -> None:
        """After commit: push to every session of both people, except the sending one, which
        learns the message from its acknowledgement."""
        if stored.duplicate:
            return
        delivery = Delivery(self._chat(stored, MessageEvent), origin)
        bus = self.services.bus
        bus.publish(f"user:{stored.sender_id}", delivery)
        if stored.recipient_id != stored.sender_id:
            bus.publish(f"user:{stored.recipient_id}", delivery)
        bus.publish("message.stored", stored)

    def _user(self, username: str, *, active: bool):
        user = self.services.users.by_name(username.lower())
        if user is None or (active and not user.active):
            raise make_error("NO_SUCH_USER", f"no {'active ' if active else ''}user '{username}'")
        return user

    async def send(self, session: Session, msg: Send) -> SendResult:
        """Store durably, then acknowledge; delivery happens after the commit, in commit order."""
        actor = session.actor
        recipient = self._user(msg.to, active=True)
        now = self.services.clock()
        stored = await self.services.db.write(
            lambda conn: store.send_direct_txn(
                conn,
                sender_id=actor.user_id,
                sender_name=actor.username,
                device_id=actor.device_id,
                recipient_id=recipient.id,
                msg_id=msg.msg_id,
                text=msg.text,
                now=now,
            ),
            after_commit=lambda stored: self._deliver(stored, session.id),
        )
        return SendResult(conversation=stored.conversation, seq=stored.seq, ts=stored.ts, duplicate=stored.duplicate)

    async def sync(self, session: Session, msg: Sync) -> SyncResult:
        """Everything after the client's cursors, in order, paged by `limit`."""
        cursors = {cursor.conversation: cursor.seq for cursor in msg.after}
        user_id = session.actor.user_id
        found, more = await self.services.db.read(lambda conn: store.messages_after(conn, user_id, cursors, msg.limit))
        found, cut = fit_in_frame(found, self.page_bytes)
        return SyncResult(messages=tuple(self._chat(m) for m in found), more=more or cut)

    async def history(self, session: Session, msg: History) -> HistoryResult:
        """The 1:1 conversation with one user, oldest first (also with someone who has left)."""
        peer = self._user(msg.with_user, active=False)
        me = session.actor.user_id

        def read(conn):
            conversation = store.direct_conversation(conn, me, peer.id)
            found = store.history(conn, conversation, msg.before, msg.after, msg.limit) if conversation else []
            return conversation, found

        conversation, found = await self.services.db.read(read)
        if msg.after is None:  # paging backwards: keep the newest that fit
            newest, _ = fit_in_frame(found[::-1], self.page_bytes)
            found = newest[::-1]
        else:
            found, _ = fit_in_frame(found, self.page_bytes)
        return HistoryResult(conversation=conversation, messages=tuple(self._chat(m) for m in found))
