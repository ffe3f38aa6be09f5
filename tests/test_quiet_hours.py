"""Quiet hours through the real server: inside them a user is on a break (messages held, senders
told, urgent ones from allowed people through, watchers see `break`); when the window ends the
held messages arrive; the settings are stored; bad input names its field. The server's wall
clock is moved (`services.clock`), running at real speed, so a window's end comes in seconds."""

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import trio

from corridor.client.client import Client
from corridor.protocol.errors import RequestError
from corridor.protocol.messages import (
    DAYS,
    MessageEvent,
    PresenceEvent,
    QuietHours,
    QuietHoursGet,
    QuietHoursResult,
    QuietHoursSet,
)
from corridor.server.features.presence.quiet_hours import Schedule, local_zone

from .conftest import serve_with

ZONE = "Asia/Shanghai"  # no daylight saving: the local times below are exact


def clock_at(server, hour: int, minute: int, second: int) -> datetime:
    """From now on the server's wall clock reads today's HH:MM:SS in ZONE and runs at real
    speed; returns that moment."""
    moment = datetime.now(ZoneInfo(ZONE)).replace(hour=hour, minute=minute, second=second, microsecond=0)
    offset = moment.timestamp() - time.time()
    server.services.clock = lambda: time.time() + offset
    return moment


async def next_presence(client: Client, user: str) -> tuple[str, str]:
    """The next presence change of `user` that `client` hears."""
    async for event in client.events():
        if isinstance(event, PresenceEvent) and event.user == user:
            return event.status, event.text
    raise AssertionError("events ended")


async def presence_until(client: Client, user: str, status: str) -> str:
    """Wait until `user` shows `status` to `client`; returns the status text."""
    while (change := await next_presence(client, user))[0] != status:
        pass
    return change[1]


async def messages(client: Client, count: int) -> list[MessageEvent]:
    """The next `count` messages `client` receives."""
    received = []
    async for event in client.events():
        if isinstance(event, MessageEvent):
            received.append(event)
            if len(received) == count:
                return received
    raise AssertionError("events ended")


async def test_quiet_hours_hold_messages_let_urgent_ones_through_and_deliver_the_rest_when_they_end(org):
    alice, bob, carol = [await org.user(n) for n in ("alice", "bob", "carol")]
    now = clock_at(org.server, 7, 59, 52)  # eight seconds before bob's quiet hours end
    window_end = now.replace(hour=8, minute=0, second=0).timestamp()
    with trio.fail_after(30):
        async with Client.open(bob) as b, Client.open(alice, receive=False) as a, Client.open(carol) as c:
            assert await c.query_presence(["bob"]) == {"bob": "online"}

            result = await b.request(QuietHoursSet(start="22:00", end="08:00", tz=ZONE, urgent_from=("Alice",)))
            assert result == QuietHoursResult(
                quiet_hours=QuietHours(start="22:00", end="08:00", tz=ZONE, days=DAYS, urgent_from=("alice",)),
                active=True,
                until=window_end,
            )
            assert await next_presence(c, "bob") == ("break", "quiet hours until 08:00")
            assert (await c.send("bob", "when you are back")).held
            assert (await a.send("bob", "not urgent")).held
            assert not (await a.send("bob", "the server room is flooding", urgent=True)).held
            # The urgent one comes at once, after the earlier one of its conversation.
            assert [m.text for m in await messages(b, 2)] == ["not urgent", "the server room is flooding"]

            (late,) = await messages(b, 1)
            assert late.text == "when you are back"
            assert org.server.services.clock() >= window_end  # held until the window ended, not before
            assert await next_presence(c, "bob") == ("online", "")
            assert not (await c.send("bob", "good morning")).held
            assert not (await b.request(QuietHoursGet())).active


async def test_a_status_chosen_during_quiet_hours_overrides_them_for_the_rest_of_the_window(org):
    bob, carol = await org.user("bob"), await org.user("carol")
    clock_at(org.server, 23, 0, 0)
    with trio.fail_after(20):
        async with Client.open(bob, receive=False) as b, Client.open(carol) as c:
            await b.set_presence("busy", "deep work")  # chosen before the window: the window wins
            assert await c.query_presence(["bob"]) == {"bob": "busy"}
            assert (await b.request(QuietHoursSet(start="22:00", end="08:00", tz=ZONE))).active
            assert await presence_until(c, "bob", "break") == "deep work"  # bob's own text stays
            assert (await c.send("bob", "are you there?")).held

            await b.set_presence("online")  # chosen inside the window
            assert await next_presence(c, "bob") == ("online", "")
            assert not (await c.send("bob", "ah, you are")).held
            assert (await b.request(QuietHoursGet())).active  # still inside the window, overridden


async def test_quiet_hours_are_stored_apply_at_login_and_follow_their_days(data_dir, tmp_path):
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            org = await serve_with(nursery, data_dir, tmp_path)
            bob, carol = await org.user("bob"), await org.user("carol")
            today = DAYS[clock_at(org.server, 12, 30, 0).weekday()]
            async with Client.open(bob, receive=False) as b:
                stored = await b.request(QuietHoursSet(start="12:00", end="13:30", tz=ZONE, days=(today,)))
            assert stored.active
            org.server.stop()

        async with trio.open_nursery() as nursery:
            org = await serve_with(nursery, data_dir, tmp_path)
            moment = clock_at(org.server, 12, 30, 0)
            async with Client.open(carol, address=org.address) as c:
                assert await c.query_presence(["bob"]) == {"bob": "offline"}
                async with Client.open(bob, address=org.address, receive=False) as b:
                    assert await presence_until(c, "bob", "break") == "quiet hours until 13:30"
                    assert (await c.send("bob", "lunch?")).held
                    assert await b.request(QuietHoursGet()) == stored

                    tomorrow = DAYS[(moment + timedelta(days=1)).weekday()]
                    later = await b.request(QuietHoursSet(start="12:00", end="13:30", tz=ZONE, days=(tomorrow,)))
                    assert not later.active and later.quiet_hours.days == (tomorrow,)
                    assert await next_presence(c, "bob") == ("online", "")
                    assert not (await c.send("bob", "never mind")).held
            org.server.stop()


async def test_bad_quiet_hours_are_refused_naming_the_field(org):
    bob = await org.user("bob")
    with trio.fail_after(20):
        async with Client.open(bob, receive=False) as b:
            for request, field in [
                (QuietHoursSet(start="25:00", end="08:00"), "start"),
                (QuietHoursSet(start="22:00", end="8"), "end"),
                (QuietHoursSet(start="22:00", end="08:00", tz="Mars/Olympus_Mons"), "tz"),
                (QuietHoursSet(start="22:00", end="08:00", tz="localtime"), "tz"),
                (QuietHoursSet(start="22:00", end="08:00", days=("someday",)), "days[0]"),
            ]:
                with pytest.raises(RequestError) as info:
                    await b.request(request)
                assert info.value.code == "BAD_MESSAGE" and f"field '{field}'" in info.value.message, info.value
            assert await b.request(QuietHoursGet()) == QuietHoursResult()

            kept = await b.request(QuietHoursSet(start="22:00", end="06:00"))
            assert kept.quiet_hours.tz == local_zone()  # the server's own zone by default
            assert await b.request(QuietHoursSet(start="09:00", end="09:00")) == QuietHoursResult()  # clears
            await b.request(QuietHoursSet(start="22:00", end="06:00"))
            assert await b.request(QuietHoursSet(off=True)) == QuietHoursResult()
            assert await b.request(QuietHoursGet()) == QuietHoursResult()


def at(text: str, zone: str = ZONE) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def test_a_window_starts_on_its_days_and_may_cross_midnight():
    mondays = Schedule(22 * 60, 8 * 60, ZONE, frozenset({0}), frozenset())
    monday_night = mondays.window(at("2030-01-07 23:00"))  # 2030-01-07 is a Monday
    assert (monday_night.active, monday_night.until) == (True, at("2030-01-08 08:00"))
    assert mondays.window(at("2030-01-08 07:59")).active  # still Monday's window on Tuesday
    tuesday_night = mondays.window(at("2030-01-08 23:00"))
    assert (tuesday_night.active, tuesday_night.boundary) == (False, at("2030-01-14 22:00"))


def test_a_window_over_a_clock_change_lasts_what_the_clock_says():
    berlin = Schedule(1 * 60, 4 * 60, "Europe/Berlin", frozenset(range(7)), frozenset())
    spring = berlin.window(at("2030-03-31 01:30", "Europe/Berlin"))  # clocks go 02:00 → 03:00
    assert spring.active and spring.until - at("2030-03-31 01:00", "Europe/Berlin") == 2 * 3600
