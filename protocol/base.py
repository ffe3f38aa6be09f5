"""What every message module builds on: the request, event and empty-result bases, and the
field types several domains share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar

from .schema import Bound, Record

UserName = Annotated[str, Bound(min_len=1, max_len=64)]
DisplayName = Annotated[str, Bound(min_len=1, max_len=128)]
Secret = Annotated[str, Bound(min_len=1, max_len=1024)]
MessageId = Annotated[str, Bound(min_len=1, max_len=64)]
Text = Annotated[str, Bound(min_len=1, max_len=32_000)]
Seq = Annotated[int, Bound(min=0, max=2**62)]
PRESENCE_STATES = ("online", "away", "busy", "break", "offline")
Status = Annotated[str, Bound(choices=PRESENCE_STATES)]
ROLES = ("user", "dept_admin", "admin", "auditor")
Role = Annotated[str, Bound(choices=ROLES)]


class Request(Record):
    """A client request; it carries an `id` on the wire and gets exactly one response.

    `IDEMPOTENT`: doing it twice has the effect of doing it once (reads, messages with their
    `msg_id`, setting a value), so a client may resend it when it cannot know whether the
    first try got through (the connection dropped before the answer)."""

    TYPE: ClassVar[str]
    RESULT: ClassVar[type[Record]]
    IDEMPOTENT: ClassVar[bool] = False


class Event(Record):
    """A server push, without an id."""

    TYPE: ClassVar[str]


@dataclass(frozen=True)
class Empty(Record):
    """A result with no fields."""
