"""Requests to handlers, through the policy; the one place where errors become frames.

The table is built once at start-up from the features; a request type with no route, or with
two, fails start-up instead of being dropped at run time. Every request is answered exactly
once: a result, the typed error its handler raised, or INTERNAL for an unexpected exception
(logged with its trace so the fault can be found).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from corridor.protocol import Connection
from corridor.protocol.errors import CorridorError, LocalProtocolError, make_error
from corridor.protocol.messages import REQUESTS, Request
from corridor.protocol.schema import Record

from .features.base import Feature, Route
from .policy import Policy
from .sessions import Session
from .storage.database import typed

log = logging.getLogger("corridor.router")


class Router:
    """Dispatches typed requests for all features."""

    def __init__(self, features: Iterable[Feature], policy: Policy):
        features = tuple(features)
        routes: dict[type[Request], Route] = {}
        actions: dict[str, frozenset[str]] = {}
        self_service: dict[str, str] = {}
        for feature in features:
            self_service.update(feature.self_service)
            for action, roles in feature.actions.items():
                if action in actions:
                    raise RuntimeError(f"action {action!r} is declared twice")
                actions[action] = roles
            for route in feature.routes:
                if route.request in routes:
                    raise RuntimeError(f"request {route.request.TYPE!r} has two routes")
                if route.action not in actions:
                    raise RuntimeError(f"route for {route.request.TYPE!r} names undeclared action {route.action!r}")
                routes[route.request] = route
        missing = [name for name, cls in REQUESTS.items() if cls not in routes]
        if missing:
            raise RuntimeError(f"no route for request types: {', '.join(sorted(missing))}")
        policy.declare(actions, self_service)
        unscoped = [r.request.TYPE for r in routes.values() if policy.scoped(r.action) and r.targets is None]
        if unscoped:
            raise RuntimeError(f"routes open to department admins must declare targets: {', '.join(sorted(unscoped))}")
        self._routes = routes
        self.policy = policy
        self.tasks = tuple(task for feature in features for task in feature.tasks)  # the server runs them
        self.stops = tuple(stop for feature in features for stop in feature.stops)

    def action(self, request: type[Request]) -> str:
        """The action a request type is checked against (what integration scopes grant)."""
        return self._routes[request].action

    async def call(self, session: Session, message: Request) -> Record:
        """Run one request through the policy and its handler; returns its result or raises
        its typed error (INTERNAL for an unexpected exception, logged with its trace). The
        protocol connections answer through `respond`; the HTTP component calls this."""
        route = self._routes[type(message)]
        try:
            await self.policy.require(session.actor, route.action, message, route.targets)
            return await route.handler(session, message)
        except CorridorError:
            raise
        except Exception as exc:
            error = typed(exc)  # a full disk (a file chunk, say) is STORAGE_FULL, not a fault
            if not isinstance(error, CorridorError):
                log.exception("request %s from %s failed", message.TYPE, session.peer)
                error = make_error("INTERNAL")
            raise error from exc

    async def respond(
        self, session: Session, conn: Connection, request_id: int, message: Request
    ) -> tuple[bytes, CorridorError | None]:
        """Run one request; returns the bytes of its single answer and the error, if it failed."""
        try:
            result = await self.call(session, message)
        except CorridorError as exc:
            return conn.send_failure(request_id, exc), exc
        try:
            return conn.send_result(request_id, result), None
        except LocalProtocolError:
            log.exception("answer to %s from %s cannot be framed", message.TYPE, session.peer)
            error = make_error("INTERNAL")
            return conn.send_failure(request_id, error), error
