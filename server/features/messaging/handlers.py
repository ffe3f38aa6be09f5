"""Sending, syncing and reading 1:1 messages; recalling and editing any message."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable

from corridor.protocol.errors import make_error
from corridor.protocol.files import FileRef, check_file_name
from corridor.protocol.framing import DEFAULT_MAX_FRAME_BYTES
from corridor.protocol.messages import (
    ChatMessage,
    Cursor,
    Edit,
    History,
    HistoryResult,
    Recall,
    Send,
    SendResult,
    Sync,
    SyncResult,
)

from ...services import Services
from ...sessions import Session
from ..files import store as files_store
from . import delivery, group_store, read_store, store

# Per-message framing overhead allowance on top of the text (field names, ids, numbers).
MESSAGE_OVERHEAD = 256


def fit_in_frame(messages: list[store.StoredMessage], budget: int) -> tuple[list[store.StoredMessage], bool]:
    """The longest prefix of `messages` whose encoding stays within `budget` bytes (at least one
    message, which always fits since texts are bounded); True if some were left out."""
    used = 0
    for index, message in enumerate(messages):
        used += len(message.text.encode()) + MESSAGE_OVERHEAD
        if message.file:
            used += len(message.file.name.encode()) + MESSAGE_OVERHEAD
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

    def chat(self, stored: store.StoredMessage, cls: type[ChatMessage] = ChatMessage) -> ChatMessage:
        """The wire form of a stored message."""
        return delivery.chat_message(self.services.users, stored, cls)

    def deliver(self, stored: store.StoredMessage, origin: int | None, to: list[int], urgent: bool = False) -> None:
        """After commit: push to everyone in `to` (see `delivery.deliver`)."""
        delivery.deliver(self.services, stored, origin, to, urgent)

    @staticmethod
    def attachment(user_id: int, file_id: str | None, name: str) -> Callable[[sqlite3.Connection], FileRef] | None:
        """For a send with a file: a check, run in the send's transaction, that the sender may
        send that file (their finished upload, or one they can see), giving its reference."""
        if file_id is None:
            return None
        check_file_name(name)
        return lambda conn: files_store.attachment(conn, user_id, file_id, name)

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
                attach=self.attachment(actor.user_id, msg.file, msg.text),
            ),
            after_commit=lambda stored: self.deliver(stored, session.id, [stored.sender_id, recipient.id], msg.urgent),
        )
        held = self.services.sessions.holds(recipient.id, actor.username, msg.urgent)
        return SendResult(conversation=stored.conversation, seq=stored.seq, ts=stored.ts, duplicate=stored.duplicate, held=held)

    async def sync(self, session: Session, msg: Sync) -> SyncResult:
        """Everything after the client's cursors, in order, paged by `limit`."""
        cursors = {cursor.conversation: cursor.seq for cursor in msg.after}
        user_id = session.actor.user_id
        found, more, starts = await self.services.db.read(
            lambda conn: store.messages_after(conn, user_id, cursors, msg.limit, frozenset(msg.conversations))
        )
        found, cut = fit_in_frame(found, self.page_bytes)
        return SyncResult(
            messages=tuple(self.chat(m) for m in found),
            more=more or cut,
            starts=tuple(Cursor(conversation=c, seq=s) for c, s in starts.items()),
        )

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
        return HistoryResult(conversation=conversation, messages=tuple(self.chat(m) for m in found))

    # -- recall and edit ----------------------------------------------------------------------

    async def recall(self, session: Session, msg: Recall) -> SendResult:
        """Take back a message (see `_change`)."""
        return await self._change(session, msg.conversation, msg.seq, "recall", "")

    async def edit(self, session: Session, msg: Edit) -> SendResult:
        """Change a message's text (see `_change`)."""
        return await self._change(session, msg.conversation, msg.seq, "edit", msg.text)

    async def _change(self, session: Session, conversation: int, seq: int, kind: str, text: str) -> SendResult:
        """The sender within the recall window, or a group's owner and admins for a recall at any
        time: the message shows the change, and everyone in the conversation gets a `recall` or
        `edit` message about it, delivered and archived like any other."""
        me, now = session.actor, self.services.clock()
        window = self.services.config.limits.recall_window
        policy = self.services.policy

        def txn(conn):
            conversation_kind, _, joined = read_store.conversation_of(conn, conversation, me.user_id)
            target = store.message(conn, conversation, seq)
            if target is None or seq <= joined or target.kind not in ("text", "recalled", "file"):
                raise make_error("NO_SUCH_MESSAGE", f"conversation {conversation} has no message #{seq} that can be changed")
            if conversation_kind == "group":
                found, role = group_store.group(conn, conversation, me.user_id)
                if found.dissolved:
                    raise make_error("NO_SUCH_GROUP", f"group {conversation} was dissolved")
            if target.kind == "recalled":
                earlier = store.recall_of(conn, conversation, seq)
                if kind == "recall" and earlier is not None and earlier.sender_id == me.user_id:
                    return earlier, []  # a retry of my own recall: the same answer
                raise make_error("NO_SUCH_MESSAGE", f"message #{seq} was recalled")
            if kind == "edit" and target.kind == "file":
                raise make_error("NO_SUCH_MESSAGE", f"message #{seq} is a file: recall it and send another instead")
            moderator = kind == "recall" and conversation_kind == "group" and policy.may_in_group(role, "recall_any")
            if target.sender_id != me.user_id and not moderator:
                raise make_error("FORBIDDEN", f"only its sender may {kind} message #{seq}")
            if not moderator and now - target.ts > window:
                raise make_error("TOO_LATE", f"messages can be changed for {window:g} s after sending")
            store.change_txn(conn, target, kind=kind, text=text, now=now)
            change = store.append_message_txn(
                conn,
                conversation=conversation,
                sender_id=me.user_id,
                sender_name=me.username,
                device_id=me.device_id,
                recipient_id=target.recipient_id,
                msg_id=f"{kind}-{uuid.uuid4().hex}",
                text=text,
                now=now,
                kind=kind,
                ref=seq,
            )
            return change, group_store.member_ids(conn, conversation)

        change, _ = await self.services.db.write(
            txn, after_commit=lambda outcome: self.deliver(outcome[0], session.id, outcome[1])
        )
        return SendResult(conversation=change.conversation, seq=change.seq, ts=change.ts, duplicate=change.duplicate)
