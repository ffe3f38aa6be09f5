"""One side of a Corridor connection, without I/O: bytes in, typed events out.

Feed received bytes with `receive_data()` (b"" for end of stream), then call `next_event()`
until it returns `NEED_DATA`. It returns `Request`/`BadRequest` on the server side and
`Result`/`Failure`/`Push` on the client side. The `send_*` methods return the bytes to write.

The connection enforces the envelope rules: `hello` first; every request has an `id` and gets
exactly one response (the server cannot answer twice, the client refuses an answer to an id
it is not waiting for). Frame-level faults raise `RemoteProtocolError`; after that the
connection is dead and the caller should send `send_fatal()` and close.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import CorridorError, LocalProtocolError, RemoteProtocolError, RequestError, error_for_code
from .framing import DEFAULT_MAX_FRAME_BYTES, FrameDecoder, encode_frame
from .messages import EVENTS, REQUESTS, Event, Hello, Request
from .schema import Record

Role = Literal["client", "server"]
MAX_REQUEST_ID = 2**53


class _Sentinel:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA = _Sentinel("NEED_DATA")
CLOSED = _Sentinel("CLOSED")


@dataclass(frozen=True)
class ReceivedRequest:
    """A well-formed request received by the server."""

    id: int
    message: Request


@dataclass(frozen=True)
class BadRequest:
    """A request frame with a usable id whose type or fields are invalid: answer, keep going."""

    id: int
    error: CorridorError


@dataclass(frozen=True)
class Result:
    """The successful answer to one of our requests."""

    re: int
    message: Record


@dataclass(frozen=True)
class Failure:
    """An error answer to one of our requests, or (re=None) a connection-level error before a close."""

    re: int | None
    error: CorridorError


@dataclass(frozen=True)
class Push:
    """A server event."""

    message: Event


# (event, frame limit, encoded frame) of the latest push; the reference keeps the event alive,
# so an identity match can never be a different event at a reused address.
_last_push: tuple[object, int, bytes] = (None, 0, b"")


class Connection:
    """The protocol state of one connection, for one role."""

    def __init__(self, role: Role, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES):
        self.role = role
        self.max_frame_bytes = max_frame_bytes
        self._decoder = FrameDecoder(max_frame_bytes)
        self._eof = False
        self._error: RemoteProtocolError | None = None
        self._hello_seen = False
        self._next_id = 1
        self._pending: dict[int, type[Record]] = {}
        self._outstanding: set[int] = set()

    # -- receiving -------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; b"" means the peer closed its side. Never raises: a broken
        stream is reported by the next `next_event()`."""
        if self._error is not None:
            return
        if data:
            try:
                self._decoder.feed(data)
            except RemoteProtocolError as exc:
                self._error = exc
        else:
            self._eof = True

    def next_event(self):
        """The next event, `NEED_DATA`, or `CLOSED`; raises RemoteProtocolError on a broken stream."""
        if self._error is not None:
            raise self._error
        while True:
            try:
                frame = self._decoder.next_frame()
            except RemoteProtocolError as exc:
                self._error = exc
                raise
            if frame is None:
                if self._eof:
                    if self._decoder.buffered:
                        raise RemoteProtocolError("stream ended inside a frame", code="BAD_FRAME")
                    return CLOSED
                return NEED_DATA
            kind = frame.get("type")
            if not isinstance(kind, str):
                raise RemoteProtocolError("frame has no string 'type'", code="BAD_FRAME")
            event = self._server_event(kind, frame) if self.role == "server" else self._client_event(kind, frame)
            if event is not None:
                return event

    def _server_event(self, kind: str, frame: dict):
        request_id = frame.get("id")
        if not isinstance(request_id, int) or isinstance(request_id, bool) or not 0 < request_id < MAX_REQUEST_ID:
            raise RemoteProtocolError("request frame has no valid 'id'", code="BAD_FRAME")
        if request_id in self._outstanding:
            raise RemoteProtocolError(f"request id {request_id} is already in flight", code="BAD_FRAME")
        if not self._hello_seen and kind != Hello.TYPE:
            raise RemoteProtocolError("the first request must be 'hello'", code="HELLO_REQUIRED")
        self._outstanding.add(request_id)
        cls = REQUESTS.get(kind)
        if cls is None:
            # Quote at most 64 characters of it: echoing a type as long as the frame would make the
            # error frame longer than the limit, so the request could not be answered at all.
            shown = kind if len(kind) <= 64 else kind[:64] + "…"
            return BadRequest(request_id, RequestError(f"unknown request type '{shown}'", code="UNKNOWN_TYPE"))
        try:
            message = cls.from_fields(frame)
        except RequestError as exc:
            return BadRequest(request_id, exc)
        if cls is Hello:
            self._hello_seen = True
        return ReceivedRequest(request_id, message)

    def _client_event(self, kind: str, frame: dict):
        if kind in ("result", "error"):
            re = frame.get("re")
            if re is None and kind == "error":
                return Failure(None, self._error_from(frame))
            result_cls = self._pending.pop(re, None) if isinstance(re, int) else None
            if result_cls is None:
                raise RemoteProtocolError(f"response to unknown request id {re!r}", code="UNEXPECTED_RESPONSE")
            if kind == "error":
                return Failure(re, self._error_from(frame))
            return Result(re, self._validated(result_cls, frame))
        cls = EVENTS.get(kind)
        if cls is None:
            return None  # an event from a newer server: ignoring it keeps older clients working
        return Push(self._validated(cls, frame))

    @staticmethod
    def _validated(cls: type[Record], frame: dict) -> Record:
        try:
            return cls.from_fields(frame)
        except RequestError as exc:
            raise RemoteProtocolError(f"server sent an invalid '{frame.get('type')}': {exc}", code="BAD_MESSAGE") from None

    @staticmethod
    def _error_from(frame: dict) -> CorridorError:
        code, message, retry = frame.get("code"), frame.get("message", ""), frame.get("retry_after")
        if not isinstance(code, str) or not isinstance(message, str):
            raise RemoteProtocolError("error frame needs string 'code' and 'message'", code="BAD_FRAME")
        return error_for_code(code, message, retry if isinstance(retry, (int, float)) else None)

    # -- sending ---------------------------------------------------------------------------

    def _frame(self, payload: dict) -> bytes:
        return encode_frame(payload, self.max_frame_bytes)

    def send_request(self, message: Request) -> tuple[int, bytes]:
        """Client: frame a request; returns its id and the bytes to write."""
        if self.role != "client":
            raise LocalProtocolError("only clients send requests")
        if not self._hello_seen and not isinstance(message, Hello):
            raise LocalProtocolError("the first request must be 'hello'", code="HELLO_REQUIRED")
        self._hello_seen = True
        request_id = self._next_id
        self._next_id += 1
        data = self._frame({**message.to_fields(), "type": message.TYPE, "id": request_id})
        self._pending[request_id] = message.RESULT
        return request_id, data

    def forget(self, request_id: int) -> None:
        """Client: stop waiting for a request's answer (its caller gave up)."""
        self._pending.pop(request_id, None)

    def _answer(self, re: int, payload: dict) -> bytes:
        if self.role != "server":
            raise LocalProtocolError("only servers answer requests")
        if re not in self._outstanding:
            raise LocalProtocolError(f"request {re} has no answer pending")
        data = self._frame(payload)  # may raise: then the request still awaits its one answer
        self._outstanding.discard(re)
        return data

    def send_result(self, re: int, message: Record) -> bytes:
        """Server: the one successful answer to request `re`."""
        return self._answer(re, {**message.to_fields(), "type": "result", "re": re})

    def send_failure(self, re: int, error: CorridorError) -> bytes:
        """Server: the one error answer to request `re`."""
        return self._answer(re, _error_fields(error, re))

    def send_push(self, event: Event) -> bytes:
        """Server: frame an event. A message to a group is the same event for every member's
        connection, one after the other: the last frame is kept and reused for it."""
        global _last_push
        event_seen, limit, frame = _last_push
        if event_seen is not event or limit != self.max_frame_bytes:
            frame = self._frame({**event.to_fields(), "type": event.TYPE})
            _last_push = (event, self.max_frame_bytes, frame)
        return frame

    def send_fatal(self, error: CorridorError) -> bytes:
        """Server: a connection-level error frame (no `re`); the caller closes afterwards."""
        return self._frame(_error_fields(error, None))

    @property
    def in_flight(self) -> int:
        """Requests received and not yet answered (server) or sent and not answered (client)."""
        return len(self._outstanding) if self.role == "server" else len(self._pending)


def _error_fields(error: CorridorError, re: int | None) -> dict:
    fields = {"type": "error", "code": error.code, "message": error.message}
    if re is not None:
        fields["re"] = re
    if error.retry_after is not None:
        fields["retry_after"] = float(error.retry_after)
    return fields
