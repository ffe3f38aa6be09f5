"""What a feature module adds to the server: its actions, request routes and migrations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from corridor.protocol.messages import Request
from corridor.protocol.schema import Record

from ..storage.migrations import Migration

if TYPE_CHECKING:
    from ..sessions import Session

Handler = Callable[["Session", Any], Awaitable[Record]]


@dataclass(frozen=True)
class Route:
    """Requests of type `request` go to `handler` after the policy allows `action`."""

    request: type[Request]
    handler: Handler
    action: str


@dataclass(frozen=True)
class Feature:
    """A feature's declarations; `actions` maps each action to the roles allowed by default."""

    name: str
    actions: dict[str, frozenset[str]] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    migrations: tuple[Migration, ...] = ()
