"""Login throttling with a controlled clock."""

import pytest

from corridor.protocol.errors import LimitExceeded
from corridor.server.features.accounts.throttle import LoginThrottle


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_delay_grows_after_the_free_failures_and_success_resets():
    clock = Clock()
    throttle = LoginThrottle(per_hour=100, clock=clock)
    for _ in range(3):
        throttle.check("account:alice")
        throttle.failed("account:alice")
    throttle.check("account:alice")
    throttle.failed("account:alice")  # the 4th failure costs 0.5 s
    with pytest.raises(LimitExceeded) as info:
        throttle.check("account:alice")
    assert info.value.retry_after == pytest.approx(0.5)
    clock.now += 0.5
    throttle.check("account:alice")
    throttle.failed("account:alice")  # the 5th costs 1 s
    clock.now += 0.9
    with pytest.raises(LimitExceeded):
        throttle.check("account:alice")
    throttle.succeeded("account:alice")
    throttle.check("account:alice")


def test_an_account_takes_at_most_per_hour_failures():
    clock = Clock()
    throttle = LoginThrottle(per_hour=10, clock=clock)
    for _ in range(10):
        clock.now += 120  # slow guessing stays under the delay, not under the hourly cap
        throttle.check("account:bob")
        throttle.failed("account:bob")
    clock.now += 120
    with pytest.raises(LimitExceeded, match="too many failed logins"):
        throttle.check("account:bob")
    clock.now += 3600
    throttle.check("account:bob")


def test_addresses_get_more_free_failures_than_accounts():
    throttle = LoginThrottle(per_hour=100, clock=Clock())
    for i in range(10):
        throttle.failed(f"account:user{i}", "address:10.0.0.5")
    throttle.check("address:10.0.0.5")
    throttle.failed("address:10.0.0.5")
    with pytest.raises(LimitExceeded):
        throttle.check("address:10.0.0.5")
