"""Slowing down password guessing, per account and per address.

After a few free failures (3 per account; 10 per address, since an office NAT or terminal
server puts many people behind one address) each further failure pushes the next allowed attempt back
exponentially (0.5 s, 1 s, 2 s … capped at 60 s); an attempt before that time is refused at
once with RATE_LIMITED and `retry_after`, so parallel guesses gain nothing. An account takes
at most `per_hour` failures an hour. Only password and invite attempts are throttled: device
tokens are never throttled, so an attacker hammering a name cannot lock its owner's enrolled
devices out. State is in memory and bounded (oldest keys are dropped first).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from corridor.protocol.errors import make_error

log = logging.getLogger("corridor.auth")

FREE_FAILURES = {"account": 3, "address": 10}
BASE_DELAY = 0.5
MAX_DELAY = 60.0
HOUR = 3600.0
MAX_KEYS = 100_000


@dataclass
class _Record:
    failures: deque = field(default_factory=deque)
    next_allowed: float = 0.0


class LoginThrottle:
    """Failure bookkeeping for keys such as `account:alice` and `address:10.0.0.5`."""

    def __init__(self, per_hour: int, clock: Callable[[], float] = time.monotonic):
        self.per_hour = per_hour
        self._clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def _record(self, key: str) -> _Record:
        record = self._records.get(key)
        if record is None:
            record = self._records[key] = _Record()
            if len(self._records) > MAX_KEYS:
                self._records.popitem(last=False)
        now = self._clock()
        while record.failures and record.failures[0] < now - HOUR:
            record.failures.popleft()
        return record

    def check(self, *keys: str) -> None:
        """Raise RATE_LIMITED if any key must wait before its next attempt."""
        now = self._clock()
        for key in keys:
            record = self._record(key)
            if key.startswith("account:") and len(record.failures) >= self.per_hour:
                wait = record.failures[0] + HOUR - now
                raise make_error("RATE_LIMITED", "too many failed logins for this account; try later", retry_after=wait)
            if now < record.next_allowed:
                raise make_error(
                    "RATE_LIMITED", "too many failed attempts; wait before retrying", retry_after=record.next_allowed - now
                )

    def failed(self, *keys: str) -> None:
        """Count one failure against each key and push its next allowed attempt back."""
        now = self._clock()
        for key in keys:
            record = self._record(key)
            record.failures.append(now)
            extra = len(record.failures) - FREE_FAILURES[key.partition(":")[0]]
            if extra > 0:
                record.next_allowed = now + min(BASE_DELAY * 2 ** (extra - 1), MAX_DELAY)
                if extra == 1 or len(record.failures) == self.per_hour:
                    log.warning("throttling %s after %d failures in the last hour", key, len(record.failures))

    def succeeded(self, *keys: str) -> None:
        """Forget the failures of these keys (a correct password proves the guesser is gone)."""
        for key in keys:
            self._records.pop(key, None)
