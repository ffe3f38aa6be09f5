"""What a feature module adds to the server at run time: its actions, request routes and
background tasks.

A feature's schema is its package-level `MIGRATIONS`, which `server/app.py` applies in
dependency order before any feature is built (the user cache needs the tables)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from corridor.protocol.messages import Request
from corridor.protocol.schema import Record

if TYPE_CHECKING:
    from ..policy import TargetsOf
    from ..sessions import Session

Handler = Callable[["Session", Any], Awaitable[Record]]
Task = Callable[[], Awaitable[None]]
Stop = Callable[[], None]


@dataclass(frozen=True)
class Route:
    """Requests of type `request` go to `handler` after the policy allows `action`. `targets`
    says what a request acts on, for the rules that depend on it (department-admin scope,
    message restrictions); routes of actions open to department admins must give it."""

    request: type[Request]
    handler: Handler
    action: str
    targets: TargetsOf | None = None


@dataclass(frozen=True)
class Feature:
    """A feature's declarations: `actions` maps each action to the roles allowed by default;
    `self_service` lets any logged-in user perform an action on themselves, naming the request
    field that says whom it concerns (e.g. a user revoking their own device).

    `tasks` run for the server's whole life in its root nursery: started once the committer
    runs and before connections are accepted, cancelled after the connections have closed
    (presence uses one to start and end quiet hours on time). A task that raises stops the
    server, so a task handles the failures it expects (a database read) and carries on.
    `stops` run once, in order, after every task and the committer have ended and before the
    database closes, on a normal stop only (the archive signs its last checkpoint there)."""

    name: str
    actions: dict[str, frozenset[str]] = field(default_factory=dict)
    self_service: dict[str, str] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    tasks: tuple[Task, ...] = ()
    stops: tuple[Stop, ...] = ()
