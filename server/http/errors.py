"""The one mapping from Corridor's typed errors to HTTP: a status by whose fault it is, and
one JSON shape, `{"error": {"code": …, "message": …}}`, with `Retry-After` when there is a wait."""

from __future__ import annotations

import math

from starlette.responses import JSONResponse

from corridor.protocol.errors import (
    AuthenticationError,
    Conflict,
    CorridorError,
    LimitExceeded,
    NotFound,
    PermissionDenied,
    RequestError,
    ServerUnavailable,
)

# Most specific first: NotFound and the others are RequestErrors too.
_STATUS = (
    (AuthenticationError, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (Conflict, 409),
    (RequestError, 400),
    (LimitExceeded, 429),
    (ServerUnavailable, 503),
)
_BY_CODE = {"FILE_TOO_LARGE": 413, "INTERNAL": 500}


def status_of(error: CorridorError) -> int:
    """The HTTP status for a Corridor error."""
    if error.code in _BY_CODE:
        return _BY_CODE[error.code]
    return next((status for cls, status in _STATUS if isinstance(error, cls)), 500)


def error_body(error: CorridorError) -> dict:
    """The JSON form of an error (also each failed item of a batch)."""
    return {"error": {"code": error.code, "message": error.message}}


def error_response(error: CorridorError) -> JSONResponse:
    """The JSON answer for a refused call."""
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    if status_of(error) == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="corridor"'
    return JSONResponse(error_body(error), status_of(error), headers=headers)
