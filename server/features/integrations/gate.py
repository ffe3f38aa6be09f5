"""Who an HTTP API call comes from: the integration its token names, checked against its
source allowlist and its rate.

Tokens are 256-bit random and stored hashed (like device tokens), so a lookup is one index hit;
the rows found are cached until an admin rotates or revokes a token (through any serve process:
the change is announced and every process drops its cache). The rate is a token bucket
per integration holding ten seconds' worth of calls, so a burst (a morning batch of approval
reminders) passes and a runaway script is held to its rate. When each integration was last used
is written once a minute, not once a call.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

from corridor.protocol.errors import make_error

from ...services import Services
from ...sessions import Actor
from ..accounts.tokens import digest
from . import store

BURST_SECONDS = 10.0


@dataclass
class _Bucket:
    tokens: float
    at: float


class IntegrationGate:
    """Turns a bearer token and a peer address into the integration's actor, or refuses."""

    def __init__(self, services: Services):
        self.services = services
        self._rows: dict[bytes, store.IntegrationRow] = {}
        self._buckets: dict[int, _Bucket] = {}
        self._by_user: dict[int, store.IntegrationRow] = {}  # by bot account: for `charge`
        self._used: dict[int, float] = {}
        services.sessions.cluster.on_change("integrations", self._forget_here)

    def forget(self) -> None:
        """Drop cached tokens (after one was rotated or revoked), here and in the other processes."""
        self._rows.clear()
        self.services.sessions.cluster.changed("integrations")

    async def _forget_here(self, ids: frozenset[int] | None) -> None:
        self._rows.clear()

    async def actor(self, token: str, peer: str) -> Actor:
        """The actor for a call with `token` from address `peer`. LOGIN_FAILED for an unknown,
        rotated or revoked token (or a deactivated bot); FORBIDDEN from an address outside the
        allowlist; RATE_LIMITED over the integration's rate."""
        key = digest(token)
        row = self._rows.get(key)
        if row is None:
            row = await self.services.db.read(lambda conn: store.by_token(conn, key))
            if row is None:
                raise make_error("LOGIN_FAILED", "unknown or revoked integration token")
            self._rows[key] = row
        bot = self.services.users.by_id(row.user_id)
        if bot is None or not bot.active:
            raise make_error("LOGIN_FAILED", "unknown or revoked integration token")
        if row.allow_from and not _allowed(peer, row.allow_from):
            raise make_error("FORBIDDEN", f"integration '{row.name}' may not call from {peer}")
        self._take(row, 1)
        self._used[row.id] = self.services.clock()
        self._by_user[row.user_id] = row
        return Actor("user", row.user_id, row.name, "user", row.device_id, scopes=frozenset(row.scopes))

    def charge(self, actor: Actor, calls: int) -> None:
        """Count `calls` more calls for the integration acting as `actor` (the other items of
        a batch): RATE_LIMITED, and none of them run, if its rate does not allow them all."""
        self._take(self._by_user[actor.user_id], calls)

    def _take(self, row: store.IntegrationRow, calls: int) -> None:
        now = time.monotonic()
        rate = row.rate_per_minute / 60.0
        capacity = max(1.0, rate * BURST_SECONDS)
        bucket = self._buckets.get(row.id)
        if bucket is None:
            bucket = self._buckets[row.id] = _Bucket(capacity, now)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if calls > capacity:
            raise make_error(
                "RATE_LIMITED", f"integration '{row.name}' may make at most {int(capacity)} calls at once (its rate's burst)"
            )
        if bucket.tokens < calls:
            wait = (calls - bucket.tokens) / rate
            raise make_error(
                "RATE_LIMITED", f"integration '{row.name}' is limited to {row.rate_per_minute} calls a minute", retry_after=wait
            )
        bucket.tokens -= calls

    async def record_call(self, actor: Actor, call: str, details: dict) -> None:
        """Archive a lookup an integration made (its answer goes out only after this commits)."""
        now = self.services.clock()
        await self.services.db.write(lambda conn: store.call_txn(conn, actor=actor.username, call=call, details=details, now=now))

    async def record_use(self) -> None:
        """Store when each integration was last used (a periodic chore)."""
        if self._used:
            used, self._used = self._used, {}
            await self.services.db.write(lambda conn: store.touch_txn(conn, used))


def _allowed(peer: str, allow_from: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(network) for network in allow_from)
