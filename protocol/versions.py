"""Protocol versions and their negotiation in `hello`."""

from __future__ import annotations

from collections.abc import Iterable

from .errors import RemoteProtocolError

SUPPORTED_VERSIONS: tuple[int, ...] = (1,)


def negotiate(ours: Iterable[int], theirs: Iterable[int]) -> int:
    """The highest version both sides speak; raises UNSUPPORTED_VERSION when there is none."""
    common = set(ours) & set(theirs)
    if not common:
        raise RemoteProtocolError(
            f"no common protocol version (we speak {sorted(ours)}, peer speaks {sorted(theirs)})",
            code="UNSUPPORTED_VERSION",
        )
    return max(common)
