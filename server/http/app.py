"""The HTTP component's ASGI application: the integration API, and the web console when it is
built in."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from ..features.integrations import IntegrationGate
from ..router import Router
from .api import Api


def build_app(router: Router, gate: IntegrationGate, extra: list[BaseRoute] = ()) -> Starlette:
    """The application serving the API (and any `extra` routes, such as the console)."""
    return Starlette(routes=[*Api(router, gate).routes(), *extra])
