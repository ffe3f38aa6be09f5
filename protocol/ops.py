"""What IT admins ask a running server about its health (`corridor status DIR`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from .base import Request
from .schema import Bound, Record


@dataclass(frozen=True)
class ServerStatusResult(Record):
    """A running server's health: what `corridor status DIR` and the metrics endpoint show;
    `warnings` say what an admin should act on (a certificate about to expire)."""

    version: str
    organisation: str
    started: float
    connections: int
    sessions: int
    users_online: int
    messages_today: int
    archive_entries: int
    database_bytes: int
    certificate_expires: float
    commits: int
    writes: int
    warnings: Annotated[tuple[str, ...], Bound(max_items=16)] = ()


@dataclass(frozen=True)
class ServerStatus(Request):
    """The server's health now. IT admins and the local admin."""

    TYPE = "server_status"
    IDEMPOTENT = True
    RESULT = ServerStatusResult


REQUESTS = (ServerStatus,)
