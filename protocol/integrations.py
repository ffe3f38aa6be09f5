"""Integrations: the company's own systems (OA, HR, monitoring) calling the server's HTTP API
with a secret token. IT admins create and revoke them over the protocol like any other admin
action; each acts as a bot account of the same name, only within its scopes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from .base import Empty, Request, UserName
from .schema import Bound, Record

# What an integration may be allowed to do, one scope per kind of call.
SCOPES = ("notices", "messages", "presence", "directory")
Scope = Annotated[str, Bound(choices=SCOPES)]
# A source address or network, as `ipaddress.ip_network` reads it: 10.1.2.3, 10.1.0.0/16, fd00::/8.
Network = Annotated[str, Bound(min_len=1, max_len=64)]
RatePerMinute = Annotated[int, Bound(min=1, max=600_000)]


@dataclass(frozen=True)
class IntegrationInfo(Record):
    """One integration as IT admins see it (never its token)."""

    name: str
    display_name: str
    scopes: tuple[str, ...]
    allow_from: tuple[str, ...]
    rate_per_minute: int
    created: float
    last_used: float  # 0: never


@dataclass(frozen=True)
class IntegrationToken(Record):
    """A new integration's (or a rotated) secret token: shown once, stored only hashed."""

    name: str
    token: str


@dataclass(frozen=True)
class IntegrationAdd(Request):
    """Create an integration and its bot account `name` (which must not exist yet). IT admins."""

    TYPE = "integration_add"
    RESULT = IntegrationToken
    name: UserName
    scopes: Annotated[tuple[Scope, ...], Bound(max_items=len(SCOPES))]
    display_name: Annotated[str, Bound(max_len=128)] = ""
    allow_from: Annotated[tuple[Network, ...], Bound(max_items=32)] = ()
    rate_per_minute: RatePerMinute = 600


@dataclass(frozen=True)
class IntegrationListResult(Record):
    integrations: Annotated[tuple[IntegrationInfo, ...], Bound(max_items=1000)]


@dataclass(frozen=True)
class IntegrationList(Request):
    """The integrations in force, by name. IT admins."""

    TYPE = "integration_list"
    IDEMPOTENT = True
    RESULT = IntegrationListResult


@dataclass(frozen=True)
class IntegrationRotate(Request):
    """Issue a new token for an integration; the old one stops working at once. IT admins."""

    TYPE = "integration_rotate"
    RESULT = IntegrationToken
    name: UserName


@dataclass(frozen=True)
class IntegrationRevoke(Request):
    """Revoke an integration: its token stops working at once; its bot account and what it
    sent stay (the archive keeps them). IT admins."""

    TYPE = "integration_revoke"
    IDEMPOTENT = True
    RESULT = Empty
    name: UserName


REQUESTS = (IntegrationAdd, IntegrationList, IntegrationRotate, IntegrationRevoke)
