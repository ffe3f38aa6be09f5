"""The web console for IT admins and auditors, served by the HTTP component under `/console/`.

Server-rendered pages (Jinja2 templates, autoescaped) with a little JavaScript, all served from
this package, so nothing is fetched from outside the premises. Sign-in takes Corridor
credentials; every action is the protocol request a client would send, run through the router,
so the one policy module decides and the handlers archive it. See docs/console.md.
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles

from ...router import Router as RequestRouter
from ...services import Services
from ...sessions import DEPT_ADMIN
from .admin_pages import AdminPages
from .audit_pages import AuditPages
from .sessions import CONSOLE_ROLES
from .signin import SignIn
from .web import Console, SecurityHeaders, Visit

# Where each role starts.
HOME = {"admin": "/console/status", DEPT_ADMIN: "/console/users", "auditor": "/console/audit"}


async def _home(visit: Visit) -> Response:
    return RedirectResponse(HOME[visit.user.role], 303)


async def _to_console(request) -> Response:
    return RedirectResponse("/console/", 307)


def console_routes(router: RequestRouter, services: Services) -> list[BaseRoute]:
    """The console's routes (`/console/…`, and `/` sending browsers there)."""
    console = Console(router, services)
    signin = SignIn(console)
    routes = [
        Route("/", console.page(CONSOLE_ROLES, _home), methods=["GET"]),
        Route("/signin", signin.form, methods=["GET"]),
        Route("/signin", signin.submit, methods=["POST"]),
        Route("/signout", console.page(CONSOLE_ROLES, signin.signout), methods=["POST"]),
        Route("/lang/{lang}", signin.choose_language, methods=["GET"]),
        *AdminPages(console).routes(),
        *AuditPages(console).routes(),
        Mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static"),
    ]
    return [Route("/", _to_console, methods=["GET"]), Mount("/console", app=SecurityHeaders(Router(routes)))]
