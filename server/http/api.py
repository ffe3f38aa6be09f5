"""The integration API (`/api/v1/…`): JSON over HTTPS for the company's own systems.

Each call names its integration with `Authorization: Bearer TOKEN`; the gate checks the token,
the source address and the rate, and gives the integration's actor (its bot account, limited to
its scopes). The call then becomes the same typed request a client would send and goes through
the router — so the policy module decides, and handlers store and archive it, exactly as for
any other caller. Lookups (presence, directory) are archived here, before their answer.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable

import trio
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from corridor.protocol.errors import CorridorError, make_error
from corridor.protocol.messages import DirectorySearch, NoticeSend, QueryPresence, Request, Send
from corridor.protocol.schema import Record

from ..features.integrations import IntegrationGate
from ..router import Router
from ..sessions import Actor, Session
from .errors import error_body, error_response
from .openapi import SPEC

MAX_BODY = 64 * 1024
MAX_BATCH = 100
Endpoint = Callable[[HttpRequest, Actor], Awaitable[Response]]


def peer_of(request: HttpRequest) -> str:
    """The caller's IP address as the socket saw it (no proxy headers are trusted)."""
    return request.client.host if request.client else ""


async def read_json(request: HttpRequest) -> dict:
    """The request body as a JSON object, at most MAX_BODY bytes; BAD_MESSAGE otherwise."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise make_error("BAD_MESSAGE", f"the body is larger than {MAX_BODY:,} bytes")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise make_error("BAD_MESSAGE", f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise make_error("BAD_MESSAGE", "the body must be a JSON object")
    return data


def _idempotency_key(request: HttpRequest) -> str:
    """The caller's key for a retry-safe send (`Idempotency-Key`), or a fresh one."""
    return request.headers.get("idempotency-key") or uuid.uuid4().hex


class Api:
    """The API's endpoints over one router and gate."""

    def __init__(self, router: Router, gate: IntegrationGate):
        self.router, self.gate = router, gate

    async def _call(self, request: HttpRequest, actor: Actor, message: Request) -> Record:
        return await self.router.call(Session(f"http:{peer_of(request)}", lambda event: None, actor), message)

    def _authenticated(self, endpoint: Endpoint) -> Callable[[HttpRequest], Awaitable[Response]]:
        async def handle(request: HttpRequest) -> Response:
            try:
                scheme, _, token = request.headers.get("authorization", "").partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    raise make_error("LOGIN_FAILED", "send the integration's token as 'Authorization: Bearer TOKEN'")
                actor = await self.gate.actor(token.strip(), peer_of(request))
                return await endpoint(request, actor)
            except CorridorError as exc:
                return error_response(exc)

        return handle

    async def notices(self, request: HttpRequest, actor: Actor) -> Response:
        """POST /api/v1/notices: a notice to departments and people, or to everyone."""
        body = await read_json(request)
        fields = {k: body[k] for k in ("title", "text", "departments", "users", "everyone") if k in body}
        message = NoticeSend.from_fields({"msg_id": _idempotency_key(request), **fields})
        sent = await self._call(request, actor, message)
        return JSONResponse(
            {"id": sent.id, "recipients": sent.recipients, "duplicate": sent.duplicate}, 200 if sent.duplicate else 201
        )

    async def notices_batch(self, request: HttpRequest, actor: Actor) -> Response:
        """POST /api/v1/notices/batch: up to MAX_BATCH notices in one call (a morning's approval
        reminders), each its own notice with its own outcome; all are stored in the same group
        commits, so the batch costs one round trip and few fsyncs."""
        body = await read_json(request)
        items = body.get("notices")
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
            raise make_error("BAD_MESSAGE", f"'notices' must be a list of 1 to {MAX_BATCH} notices")
        messages: list[NoticeSend | CorridorError] = []
        for index, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise make_error("BAD_MESSAGE", "a notice must be a JSON object")
                fields = {k: item[k] for k in ("title", "text", "departments", "users", "everyone") if k in item}
                messages.append(NoticeSend.from_fields({"msg_id": item.get("id") or uuid.uuid4().hex, **fields}))
            except CorridorError as exc:
                messages.append(make_error(exc.code, f"notices[{index}]: {exc.message}"))
        self.gate.charge(actor, len(items) - 1)
        outcomes: list[dict] = [{}] * len(messages)

        async def send(index: int, message: NoticeSend) -> None:
            try:
                sent = await self._call(request, actor, message)
                outcomes[index] = {"id": sent.id, "recipients": sent.recipients, "duplicate": sent.duplicate}
            except CorridorError as exc:
                outcomes[index] = error_body(exc)

        async with trio.open_nursery() as nursery:
            for index, message in enumerate(messages):
                if isinstance(message, CorridorError):
                    outcomes[index] = error_body(message)
                else:
                    nursery.start_soon(send, index, message)
        return JSONResponse({"results": outcomes})

    async def messages(self, request: HttpRequest, actor: Actor) -> Response:
        """POST /api/v1/messages: a 1:1 message from the integration's bot."""
        body = await read_json(request)
        fields = {k: body[k] for k in ("to", "text", "urgent") if k in body}
        sent = await self._call(request, actor, Send.from_fields({"msg_id": _idempotency_key(request), **fields}))
        answer = {
            "conversation": sent.conversation,
            "seq": sent.seq,
            "ts": sent.ts,
            "duplicate": sent.duplicate,
            "held": sent.held,
        }
        return JSONResponse(answer, 200 if sent.duplicate else 201)

    async def presence(self, request: HttpRequest, actor: Actor) -> Response:
        """GET /api/v1/presence?user=…&user=…: who is online, away, busy, on a break."""
        users = request.query_params.getlist("user")
        if not users:
            raise make_error("BAD_MESSAGE", "name at least one person: ?user=alice&user=bob")
        result = await self._call(request, actor, QueryPresence.from_fields({"users": users}))
        await self.gate.record_call(actor, "presence", {"users": users})
        return JSONResponse({"presence": [s.to_fields() for s in result.statuses]})

    async def directory(self, request: HttpRequest, actor: Actor) -> Response:
        """GET /api/v1/directory?q=…&limit=…: people by name, pinyin, username, title or department."""
        query = request.query_params.get("q", "")
        limit = request.query_params.get("limit", "20")
        if not limit.isdigit():
            raise make_error("BAD_MESSAGE", f"limit must be a whole number, not {limit!r}")
        result = await self._call(request, actor, DirectorySearch.from_fields({"query": query, "limit": int(limit)}))
        await self.gate.record_call(actor, "directory", {"q": query, "found": len(result.people)})
        return JSONResponse({"people": [p.to_fields() for p in result.people]})

    async def openapi(self, request: HttpRequest) -> Response:
        """GET /api/v1/openapi.json: this API's description (no token needed)."""
        return JSONResponse(SPEC)

    def routes(self) -> list[Route]:
        """The API's routes."""
        return [
            Route("/api/v1/openapi.json", self.openapi, methods=["GET"]),
            Route("/api/v1/notices", self._authenticated(self.notices), methods=["POST"]),
            Route("/api/v1/notices/batch", self._authenticated(self.notices_batch), methods=["POST"]),
            Route("/api/v1/messages", self._authenticated(self.messages), methods=["POST"]),
            Route("/api/v1/presence", self._authenticated(self.presence), methods=["GET"]),
            Route("/api/v1/directory", self._authenticated(self.directory), methods=["GET"]),
        ]
