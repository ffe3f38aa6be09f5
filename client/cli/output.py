"""How every CLI command reports results and errors: the one mapping from error types to
messages and exit codes, and `--json` output for scripts.

Exit codes: 0 ok · 1 refused by the server · 2 bad usage or input · 3 not authenticated or
not allowed · 4 not found · 5 server unreachable or untrusted · 6 a limit was hit ·
7 timed out waiting.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from corridor.protocol.errors import (
    AuthenticationError,
    CorridorError,
    LimitExceeded,
    NotFound,
    PermissionDenied,
    ServerUnavailable,
)

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_UNREACHABLE = 5
EXIT_LIMIT = 6
EXIT_TIMEOUT = 7

_EXIT_BY_TYPE = (
    (AuthenticationError, EXIT_AUTH),
    (PermissionDenied, EXIT_AUTH),
    (NotFound, EXIT_NOT_FOUND),
    (ServerUnavailable, EXIT_UNREACHABLE),
    (LimitExceeded, EXIT_LIMIT),
)
_USAGE_CODES = {"BAD_MESSAGE", "WEAK_PASSWORD", "UNKNOWN_TYPE", "BAD_FILE_NAME", "BAD_FILE_ID"}


def exit_code(error: CorridorError) -> int:
    """The documented exit code for an error."""
    if error.code in _USAGE_CODES:
        return EXIT_USAGE
    if error.code == "TIMEOUT":
        return EXIT_TIMEOUT
    for cls, code in _EXIT_BY_TYPE:
        if isinstance(error, cls):
            return code
    return EXIT_REFUSED


def emit(data: dict[str, Any], as_json: bool, text: str | None) -> None:
    """Print one result: a JSON object with `--json`, else the human line (if any)."""
    if as_json:
        print(json.dumps(data, ensure_ascii=False), flush=True)
    elif text is not None:
        print(text, flush=True)


def fail(command: str, code: str, message: str, as_json: bool, status: int) -> int:
    """Report an error on stderr (and as JSON on stdout with `--json`); returns the exit code."""
    print(f"corridor {command}: {message} [{code}]", file=sys.stderr)
    if as_json:
        print(json.dumps({"ok": False, "error": {"code": code, "message": message}}), flush=True)
    return status


def report(command: str, error: CorridorError, as_json: bool) -> int:
    """Report a typed Corridor error; returns its exit code."""
    return fail(command, error.code, error.message, as_json, exit_code(error))


def human_size(size: int) -> str:
    """1536 → '1.5 KiB'."""
    value, unit = float(size), "bytes"
    for bigger in ("KiB", "MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
