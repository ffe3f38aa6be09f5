"""Turning stored messages into events and pushing them, after their commit.

Other features that write messages in their own transactions (a handover writes "alice handed
the group over to bob") deliver them through here too, so every message reaches people the
same way."""

from __future__ import annotations

from corridor.protocol.messages import ChatMessage, MessageEvent

from ...services import Services
from ...sessions import Delivery
from ..accounts.users import UserCache
from .store import StoredMessage


def chat_message(users: UserCache, stored: StoredMessage, cls: type[ChatMessage] = ChatMessage) -> ChatMessage:
    """The wire form of a stored message."""
    return cls(
        conversation=stored.conversation,
        seq=stored.seq,
        sender=users.name_of(stored.sender_id),
        recipient=users.name_of(stored.recipient_id) if stored.recipient_id is not None else "",
        msg_id=stored.msg_id,
        text=stored.text,
        ts=stored.ts,
        kind=stored.kind,
        mentions=stored.mentions,
        ref=stored.ref,
        edited=stored.edited,
        file=stored.file,
    )


def deliver(services: Services, stored: StoredMessage, origin: int | None, to: list[int], urgent: bool = False) -> None:
    """Push to every session of everyone in `to`, except the session it came from (which
    learns the message from its acknowledgement); a repeat of a stored message is not pushed.
    People on a break get it when the break ends (see `SessionRegistry.holds`)."""
    if stored.duplicate:
        return
    event = Delivery(chat_message(services.users, stored, MessageEvent), origin, urgent)
    services.bus.publish_to_users(to, event, f"conversation.{stored.conversation}")
    services.bus.publish("message.stored", stored)
