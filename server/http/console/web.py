"""What every console page shares: templates, security headers, the session check, CSRF and
role checks, and calling the router as the signed-in person.

Every page goes through `Console.page(roles, handler)`: the session cookie must name a live
session whose account is still active and still has the role it signed in with (otherwise the
session ends); the role must be one the page allows; a POST must come from this origin (when
the browser says where it comes from) and carry the session's CSRF token. Only then does the
handler run, and what it does goes through `Router.call()` — the same policy and handlers as a
protocol client — so a refused action is the typed error the policy raised, shown as a page.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.datastructures import FormData
from starlette.requests import Request as HttpRequest
from starlette.responses import HTMLResponse, RedirectResponse, Response

from corridor.protocol.errors import CorridorError
from corridor.protocol.messages import Request
from corridor.protocol.schema import Record

from ...features.accounts.store import UserRow
from ...router import Router
from ...services import Services
from ...sessions import Actor, Session
from ..api import peer_of
from ..errors import status_of
from .i18n import language, translator
from .sessions import ConsoleSession, ConsoleSessions

COOKIE = "corridor_console"
MAX_FORM_FIELDS = 100
_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
]
_NO_STORE = (b"cache-control", b"no-store")

templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def when(ts: float) -> str:
    """A timestamp in the server's local time, as the pages show it."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def highlight(text: str, query: str) -> Markup:
    """`text`, escaped, with each word of the search marked."""
    shown = str(escape(text))
    for term in {t.strip('"*') for t in query.split()} - {""}:
        shown = shown.replace(str(escape(term)), f"<mark>{escape(term)}</mark>")
    return Markup(shown)


templates.filters.update(when=when, highlight=highlight)


class SecurityHeaders:
    """ASGI wrapper adding the console's security headers to every response under it, and
    `Cache-Control: no-store` to all but its static files (pages hold archive content)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        static = scope["path"].startswith("/console/static/")

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS, *([] if static else [_NO_STORE])]
            await send(message)

        await self.app(scope, receive, with_headers)


@dataclass
class Visit:
    """One request from a signed-in person: their account, session, language and POSTed form."""

    request: HttpRequest
    user: UserRow
    session: ConsoleSession
    lang: str
    form: FormData | None = None

    @property
    def actor(self) -> Actor:
        return Actor("user", self.user.id, self.user.username, self.user.role)

    def field(self, name: str, default: str = "") -> str:
        """A POSTed form field (or a query parameter on a GET), stripped."""
        source = self.form if self.form is not None else self.request.query_params
        value = source.get(name, default)
        return value.strip() if isinstance(value, str) else default


Handler = Callable[[Visit], Awaitable[Response]]


def render(request: HttpRequest, name: str, lang: str, status: int = 200, **context) -> HTMLResponse:
    """A template rendered in `lang`, with what every page needs (translation, path, language switch)."""
    context.setdefault("visit", None)
    page = templates.get_template(name).render(
        _=translator(lang), lang=lang, path=request.url.path, other_lang="en" if lang == "zh" else "zh", **context
    )
    return HTMLResponse(page, status)


def refusal(request: HttpRequest, lang: str, status: int, message: str, visit: Visit | None = None, code: str = "") -> Response:
    """The page for anything refused: a sentence that says why, and the code when there is one."""
    return render(request, "refused.html", lang, status, message=message, code=code, visit=visit)


def same_origin(request: HttpRequest) -> bool:
    """False when the browser says the POST comes from another origin (a cross-site form).
    Under `Referrer-Policy: no-referrer` browsers send `Origin: null` even for our own forms,
    so then `Sec-Fetch-Site`, which they send regardless, decides."""
    origin = request.headers.get("origin")
    if origin not in (None, "null"):
        return origin == f"{request.url.scheme}://{request.url.netloc}"
    return request.headers.get("sec-fetch-site", "same-origin") == "same-origin"


async def read_form(request: HttpRequest) -> FormData:
    """A POSTed form; no file uploads and a bounded number of fields."""
    return await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)


class Console:
    """The router, services and session store every page uses."""

    def __init__(self, router: Router, services: Services):
        self.router, self.services = router, services
        http = services.config.http
        self.sessions = ConsoleSessions(http.console_idle_minutes * 60, http.console_max_hours * 3600)

    def visitor(self, request: HttpRequest) -> tuple[ConsoleSession, UserRow] | None:
        """The live session and its account, re-read now; ends the session of an account
        deactivated or given another role since it signed in."""
        token = request.cookies.get(COOKIE, "")
        session = self.sessions.get(token) if token else None
        if session is None:
            return None
        user = self.services.users.by_id(session.user_id)
        if user is None or not user.active or user.role != session.role:
            self.sessions.end(token)
            return None
        return session, user

    async def call(self, visit: Visit, message: Request) -> Record:
        """Run one request as the signed-in person, through the policy and its handler."""
        session = Session(f"console:{peer_of(visit.request)}", lambda event: None, visit.actor)
        return await self.router.call(session, message)

    def page(self, roles: Iterable[str], handler: Handler) -> Callable[[HttpRequest], Awaitable[Response]]:
        """An endpoint open to signed-in people with one of `roles`, checked as the module says."""
        roles = frozenset(roles)

        async def endpoint(request: HttpRequest) -> Response:
            lang = language(request)
            _ = translator(lang)
            found = self.visitor(request)
            if found is None:
                if request.method == "GET":
                    return RedirectResponse(f"/console/signin?next={quote(request.url.path)}", 303)
                return refusal(request, lang, 403, _("Your session has ended. Sign in again."))
            session, user = found
            visit = Visit(request, user, session, lang)
            if user.role not in roles:
                return refusal(request, lang, 403, _("This page is not for your role."), visit)
            if request.method == "POST":
                visit.form = await read_form(request)
                token = visit.form.get("csrf", "")
                if not same_origin(request) or not hmac.compare_digest(str(token), session.csrf):
                    return refusal(
                        request, lang, 403, _("The form was not sent from this console. Reload the page and try again."), visit
                    )
            try:
                return await handler(visit)
            except CorridorError as exc:
                return refusal(request, lang, status_of(exc), exc.message, visit, exc.code)

        return endpoint

    def show(self, visit: Visit, name: str, **context) -> HTMLResponse:
        """A page for the signed-in person."""
        return render(visit.request, name, visit.lang, visit=visit, **context)
