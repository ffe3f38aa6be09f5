"""Enrollment invites: one copy-pasteable string with the address, CA fingerprint and token.

    corridor://HOST:PORT/enroll?token=TOKEN&ca=sha256:HEX

The CA fingerprint is what the client pins; the address is only where to try first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit

from .errors import RequestError

_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


def _bad(why: str) -> RequestError:
    return RequestError(f"not a valid Corridor invite: {why}", code="BAD_MESSAGE")


@dataclass(frozen=True)
class Invite:
    """A parsed invite."""

    host: str
    port: int
    token: str
    ca_sha256: str

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"corridor://{host}:{self.port}/enroll?token={quote(self.token, safe='')}&ca=sha256:{self.ca_sha256}"


def parse_invite(text: str) -> Invite:
    """Parse an invite string; raises RequestError(BAD_MESSAGE) saying what is wrong."""
    try:
        # An argument with bytes that are not UTF-8 arrives with surrogates in it; such a token
        # or host could be neither sent nor looked up, so it is refused here, by name.
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad("it holds bytes that are not UTF-8 text") from None
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as exc:
        raise _bad(str(exc)) from None
    if parts.scheme != "corridor" or parts.path != "/enroll":
        raise _bad("it must start with corridor:// and have the path /enroll")
    if not parts.hostname or port is None:
        raise _bad("it must name a host and a port")
    query = parse_qs(parts.query)
    token = query.get("token", [""])[0]
    ca = query.get("ca", [""])[0]
    if not token:
        raise _bad("the token is missing")
    if not ca.startswith("sha256:") or not _FINGERPRINT.match(ca[7:]):
        raise _bad("the CA fingerprint must be sha256: followed by 64 hex digits")
    return Invite(parts.hostname, port, token, ca[7:])
