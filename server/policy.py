"""The one place that decides whether an actor may perform an action.

Features declare their actions with the roles allowed by default (`Feature.actions`), and which
actions anyone may perform on themselves (`Feature.self_service`); the router asks `require()`
before every handler runs. Anonymous actors may do only what is
declared for `ANONYMOUS` (hello, login, enroll); a denial is a typed error, never a silent drop.
"""

from __future__ import annotations

from collections.abc import Mapping

from corridor.protocol.errors import make_error
from corridor.protocol.schema import Record

from .sessions import ANONYMOUS, Actor


class Policy:
    """Role-based decisions over the declared actions."""

    def __init__(self, actions: Mapping[str, frozenset[str]], self_service: Mapping[str, str] | None = None):
        self._actions = dict(actions)
        self._self_service = dict(self_service or {})

    def require(self, actor: Actor, action: str, request: Record | None = None) -> None:
        """Return if `actor` may do `action`; raise NOT_AUTHENTICATED or FORBIDDEN otherwise."""
        allowed = self._actions[action]
        if ANONYMOUS in allowed:
            return
        if not actor.authenticated:
            raise make_error("NOT_AUTHENTICATED", "log in first")
        role = actor.role if actor.kind == "user" else actor.kind
        if role in allowed:
            return
        field = self._self_service.get(action)
        if field is not None and actor.kind == "user" and str(getattr(request, field, "")).lower() == actor.username:
            return
        raise make_error("FORBIDDEN", f"'{action}' is not allowed for role '{role}'")
