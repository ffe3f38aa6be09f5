"""Signing in and out of the console, and choosing its language.

A sign-in checks the password with `Credentials.verify` — the same Argon2id hashes and the same
per-account and per-address throttle as protocol logins, so guessing here counts there. Only IT
admins, department admins and auditors get a session; anyone else is told so and gets none.
The sign-in form carries a random token that must match a cookie set with it (a CSRF check
before there is a session: another site cannot sign a browser into an account of its choosing).
"""

from __future__ import annotations

import hmac
import math
import secrets

from starlette.requests import Request as HttpRequest
from starlette.responses import RedirectResponse, Response

from corridor.protocol.errors import CorridorError

from ..api import peer_of
from .i18n import LANG_COOKIE, LANGUAGES, language, translator
from .sessions import CONSOLE_ROLES
from .web import COOKIE, Console, Visit, read_form, refusal, render, same_origin

SIGNIN_COOKIE = "corridor_console_signin"
_COOKIE_RULES = {"path": "/console", "secure": True, "httponly": True, "samesite": "strict"}


def _local(target: str) -> str:
    """Where to go after signing in: a console path, never another site."""
    return target if target.startswith("/console/") and not target.startswith("//") else "/console/"


class SignIn:
    """The sign-in, sign-out and language endpoints."""

    def __init__(self, console: Console):
        self.console = console

    async def form(self, request: HttpRequest, message: str = "", status: int = 200) -> Response:
        """GET /console/signin: the form, with a fresh pre-session CSRF token."""
        token = secrets.token_urlsafe(32)
        lang = language(request)
        page = render(
            request, "signin.html", lang, status, token=token, message=message, next=request.query_params.get("next", "")
        )
        page.set_cookie(SIGNIN_COOKIE, token, max_age=3600, **_COOKIE_RULES)
        return page

    async def submit(self, request: HttpRequest) -> Response:
        """POST /console/signin: check the password and the role, then start a session."""
        lang = language(request)
        _ = translator(lang)
        form = await read_form(request)
        expected = request.cookies.get(SIGNIN_COOKIE, "")
        if not same_origin(request) or not expected or not hmac.compare_digest(str(form.get("csrf", "")), expected):
            return refusal(request, lang, 403, _("The form was not sent from this console. Reload the page and try again."))
        username, password = str(form.get("username", "")).strip(), str(form.get("password", ""))
        try:
            user = await self.console.services.credentials.verify(username, password, peer_of(request))
        except CorridorError as exc:
            if exc.code == "RATE_LIMITED":
                wait = math.ceil(exc.retry_after or 60)
                return await self.form(request, _("Too many failed sign-ins. Try again in {seconds} seconds.", seconds=wait), 429)
            return await self.form(request, _("Wrong username or password."), 401)
        if user.role not in CONSOLE_ROLES:
            return refusal(request, lang, 403, _("The console is for IT admins and auditors."))
        session = self.console.sessions.start(user.id, user.role)
        answer = RedirectResponse(_local(str(form.get("next", ""))), 303)
        answer.set_cookie(COOKIE, session.token, **_COOKIE_RULES)
        answer.delete_cookie(SIGNIN_COOKIE, path="/console")
        return answer

    async def signout(self, visit: Visit) -> Response:
        """POST /console/signout: end the session."""
        self.console.sessions.end(visit.session.token)
        answer = RedirectResponse("/console/signin", 303)
        answer.delete_cookie(COOKIE, path="/console")
        return answer

    async def choose_language(self, request: HttpRequest) -> Response:
        """GET /console/lang/{lang}?next=…: remember the language and go back."""
        chosen = request.path_params["lang"]
        answer = RedirectResponse(_local(request.query_params.get("next", "")), 303)
        if chosen in LANGUAGES:
            answer.set_cookie(LANG_COOKIE, chosen, max_age=365 * 86400, **_COOKIE_RULES)
        return answer
