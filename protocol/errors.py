"""The one catalogue of Corridor error codes, and the exception types that carry them.

Exceptions are named by whose fault the error is (h11's model): a `RemoteProtocolError` means
the peer sent bytes we cannot accept; a `LocalProtocolError` means our own code tried to send
something invalid. A request the server refuses travels as an error frame with a stable code;
`error_for_code()` turns that code back into the same exception class on the other side, so
server handlers and client callers raise and catch the same types.

Codes are stable strings and are never reused for another meaning. Each has a one-line meaning
below; `docs/protocol.md` lists them all (a test checks that).
"""

from __future__ import annotations

from dataclasses import dataclass


class CorridorError(Exception):
    """Base of every Corridor error: a stable `code` and a human-readable message."""

    code = "INTERNAL"

    def __init__(self, message: str = "", *, code: str | None = None, retry_after: float | None = None):
        super().__init__(message or CATALOGUE[code or self.code].meaning)
        if code is not None:
            self.code = code
        self.message = str(self)
        self.retry_after = retry_after


class ProtocolError(CorridorError):
    """The byte stream or a frame breaks the protocol; the connection cannot continue."""

    code = "BAD_FRAME"


class RemoteProtocolError(ProtocolError):
    """The peer sent something that breaks the protocol."""


class LocalProtocolError(ProtocolError):
    """Our own side tried to send something that breaks the protocol (a bug in the caller)."""


class RequestError(CorridorError):
    """The server refused one request; the connection stays usable."""

    code = "BAD_MESSAGE"


class AuthenticationError(RequestError):
    """Who you are could not be established (wrong credentials, bad invite, not logged in)."""

    code = "LOGIN_FAILED"


class PermissionDenied(RequestError):
    """You are known, but policy does not allow this action."""

    code = "FORBIDDEN"


class NotFound(RequestError):
    """What the request names does not exist (or is not visible to you)."""

    code = "NO_SUCH_USER"


class Conflict(RequestError):
    """The request conflicts with existing state."""

    code = "ALREADY_EXISTS"


class LimitExceeded(CorridorError):
    """A bound was hit (rate, size, queue, connections); `retry_after` may say when to retry."""

    code = "RATE_LIMITED"


class ServerUnavailable(CorridorError):
    """The server cannot serve now (shutting down, overloaded, internal fault); retry later."""

    code = "SHUTTING_DOWN"


@dataclass(frozen=True)
class ErrorSpec:
    """One catalogue entry: the exception class a code maps to and its one-line meaning."""

    code: str
    cls: type[CorridorError]
    meaning: str


_ENTRIES = [
    ErrorSpec("BAD_FRAME", RemoteProtocolError, "The bytes are not a valid frame (length prefix plus one msgpack map)."),
    ErrorSpec("FRAME_TOO_LARGE", RemoteProtocolError, "A frame's declared length is over the receiver's limit."),
    ErrorSpec("HELLO_REQUIRED", RemoteProtocolError, "The first request on a connection must be `hello`."),
    ErrorSpec("UNSUPPORTED_VERSION", RemoteProtocolError, "The two sides share no protocol version."),
    ErrorSpec("UNEXPECTED_RESPONSE", RemoteProtocolError, "A response names a request id that is not waiting for one."),
    ErrorSpec("BAD_MESSAGE", RequestError, "A field is missing, has the wrong type, or is out of range."),
    ErrorSpec("UNKNOWN_TYPE", RequestError, "The message type is not one this side knows."),
    ErrorSpec("NOT_AUTHENTICATED", AuthenticationError, "Only `hello`, `login` and `enroll` are allowed before login."),
    ErrorSpec("LOGIN_FAILED", AuthenticationError, "Unknown user, wrong password, or revoked device token (never says which)."),
    ErrorSpec("ALREADY_AUTHENTICATED", RequestError, "This connection has already logged in."),
    ErrorSpec("INVITE_INVALID", AuthenticationError, "The enrollment invite is unknown, already used or expired."),
    ErrorSpec("ACCOUNT_DISABLED", AuthenticationError, "An administrator deactivated this account or revoked this device."),
    ErrorSpec("WEAK_PASSWORD", RequestError, "The new password does not meet the password policy."),
    ErrorSpec("FORBIDDEN", PermissionDenied, "Policy does not allow this action for you."),
    ErrorSpec("NO_SUCH_USER", NotFound, "No active user has that name."),
    ErrorSpec("NO_SUCH_DEPARTMENT", NotFound, "No department has that id."),
    ErrorSpec("NO_SUCH_DEVICE", NotFound, "That user has no such device."),
    ErrorSpec("NO_SUCH_NOTICE", NotFound, "No notice with that id was sent to you (or, for its status, by you)."),
    ErrorSpec("NO_SUCH_MESSAGE", NotFound, "That conversation has no such message you may change."),
    ErrorSpec("TOO_LATE", RequestError, "The recall/edit window (`limits.recall_window`) has passed."),
    ErrorSpec("NO_SUCH_CONVERSATION", NotFound, "No conversation with that id has you as a member."),
    ErrorSpec("NO_SUCH_GROUP", NotFound, "No group with that id has you as a member (or it was dissolved)."),
    ErrorSpec("NO_SUCH_RULE", NotFound, "No policy rule of that kind (or retention rule) exists for that department."),
    ErrorSpec("NO_SUCH_HOLD", NotFound, "No legal hold with that id is in force."),
    ErrorSpec("NO_SUCH_INTEGRATION", NotFound, "No integration with that name is in force (never made, or revoked)."),
    ErrorSpec("NO_SUCH_FILE", NotFound, "No file with that id was sent where you can see it."),
    ErrorSpec("NO_SUCH_UPLOAD", NotFound, "No unfinished upload with that id is yours (it finished or failed)."),
    ErrorSpec(
        "BAD_FILE_NAME", RequestError, "A file name must be one safe path component (no separators, `..`, control characters)."
    ),
    ErrorSpec("BAD_FILE_ID", RequestError, "A file id is the 64 lowercase hex digits of its content's SHA-256."),
    ErrorSpec(
        "BAD_OFFSET", RequestError, "A chunk does not start at or before the upload's received offset (the message says it)."
    ),
    ErrorSpec("FILE_CORRUPT", RequestError, "The uploaded bytes do not hash to the announced SHA-256; the upload was discarded."),
    ErrorSpec("ALREADY_EXISTS", Conflict, "Something with that name already exists."),
    ErrorSpec("RATE_LIMITED", LimitExceeded, "Too many attempts; wait `retry_after` seconds."),
    ErrorSpec("FILE_TOO_LARGE", LimitExceeded, "The file is larger than `limits.max_file_bytes`."),
    ErrorSpec("QUOTA_EXCEEDED", LimitExceeded, "The file would take you past `limits.file_quota_bytes` of uploads."),
    ErrorSpec("GROUP_FULL", LimitExceeded, "The group would have more members than `limits.max_group_members`."),
    ErrorSpec("TOO_MANY_CONNECTIONS", LimitExceeded, "This address already has the maximum number of connections."),
    ErrorSpec("TOO_MANY_REQUESTS", LimitExceeded, "Too many requests in flight on this connection."),
    ErrorSpec("SLOW_CONSUMER", LimitExceeded, "The client did not read fast enough; it is disconnected and should resync."),
    ErrorSpec("TIMEOUT", LimitExceeded, "A deadline passed (handshake, login or idle time)."),
    ErrorSpec("SHUTTING_DOWN", ServerUnavailable, "The server is stopping; reconnect later."),
    ErrorSpec(
        "REAUTHENTICATE", ServerUnavailable, "Your role changed: the session ended; log in again (clients do it by themselves)."
    ),
    ErrorSpec(
        "STORAGE_FULL", ServerUnavailable, "The server's disk is full: the request stored nothing; retry once space is freed."
    ),
    ErrorSpec(
        "STORAGE_UNAVAILABLE",
        ServerUnavailable,
        "The server cannot reach its database just now: nothing was stored; retry shortly.",
    ),
    ErrorSpec("LDAP_UNAVAILABLE", ServerUnavailable, "The configured LDAP/AD server cannot be reached or refused the bind."),
    ErrorSpec("INTERNAL", ServerUnavailable, "An unexpected server fault; it is logged, and the request may be retried."),
    # Raised by the client library itself, never sent on the wire:
    ErrorSpec("CONNECTION_LOST", ServerUnavailable, "Client side: the connection failed or closed; the client reconnects."),
    ErrorSpec(
        "UNTRUSTED_SERVER", ServerUnavailable, "Client side: the server's certificate is not from the pinned organisation CA."
    ),
]

CATALOGUE: dict[str, ErrorSpec] = {spec.code: spec for spec in _ENTRIES}


def error_for_code(code: str, message: str = "", retry_after: float | None = None) -> CorridorError:
    """Rebuild the exception a peer's error frame stands for; unknown codes become `RequestError`."""
    spec = CATALOGUE.get(code)
    if spec is None:
        return RequestError(message or f"unknown error code {code}", code="BAD_MESSAGE")
    return spec.cls(message, code=code, retry_after=retry_after)


def make_error(code: str, message: str = "", retry_after: float | None = None) -> CorridorError:
    """Raise-ready exception for a catalogue code: `raise make_error("NO_SUCH_USER", "…")`."""
    spec = CATALOGUE[code]
    return spec.cls(message, code=code, retry_after=retry_after)


def single_exception(group: BaseExceptionGroup) -> BaseException:
    """The one exception inside nested single-member groups (what a caller expects to catch);
    the group itself when several things failed at once. Task nurseries wrap every error in a
    group; callers of a connection want the Corridor error inside it."""
    inner: BaseException = group
    while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
        inner = inner.exceptions[0]
    return inner
