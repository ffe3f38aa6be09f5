"""Quiet hours: a daily window, in the user's time zone, during which they are on a break.

Pure schedule arithmetic, no I/O but reading the time zone database: parsing and checking a
`quiet_hours_set` request, and, for a moment in time, whether it is inside a window, when that
window ends and when the next change comes. A window starts on each of its `days` at `start` and
ends at `end` the same day, or the next day when `end` is not after `start` (22:00-08:00).
"""

from __future__ import annotations

import functools
import os
import re
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from corridor.protocol.errors import make_error
from corridor.protocol.messages import DAYS, QuietHours, QuietHoursSet

_CLOCK_TIME = re.compile(r"(\d{1,2}):(\d{2})")
MINUTES_PER_DAY = 24 * 60
# Enough days to reach back to a window that began yesterday and forward to next week's only day.
_LOOK_BEHIND, _LOOK_AHEAD = 1, 7


# Files some systems keep among the zones that are no zone of their own (`localtime` is
# whatever the host is set to, and would change with it).
_NOT_ZONES = frozenset({"localtime", "posixrules"})


@functools.cache
def _zones() -> frozenset[str]:
    # Read once: walking the time zone database takes tens of milliseconds.
    return frozenset(zoneinfo.available_timezones()) - _NOT_ZONES


def known_zone(name: str) -> bool:
    """Whether `name` is an IANA time zone of this server's database (e.g. `Asia/Shanghai`)."""
    return name in _zones()


@functools.cache
def local_zone() -> str:
    """The server's own time zone as an IANA name: `$TZ`, else what `/etc/localtime` links to,
    else `/etc/timezone`, else UTC (looked up once per process)."""
    candidates = [os.environ.get("TZ", "").removeprefix(":")]
    try:
        candidates.append(os.path.realpath("/etc/localtime").partition("/zoneinfo/")[2])
        candidates.append(Path("/etc/timezone").read_text().strip())
    except OSError:
        pass
    return next((name for name in candidates if known_zone(name)), "UTC")


def _minutes(value: str, field: str) -> int:
    match = _CLOCK_TIME.fullmatch(value)
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise make_error("BAD_MESSAGE", f"field '{field}' must be a time of day HH:MM (00:00 to 23:59), not {value!r}")
    return int(match[1]) * 60 + int(match[2])


def clock_time(minutes: int) -> str:
    """Minutes after midnight as `HH:MM`."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class Window:
    """Where a schedule stands at one moment: `active` inside a window since `since` until
    `until`; `boundary` is the next moment this changes (the window's end, or the next one's
    start)."""

    active: bool
    until: float
    boundary: float
    since: float = 0.0


@dataclass(frozen=True)
class Schedule:
    """One user's quiet hours: `start` and `end` in minutes after midnight in `tz`, the week
    days (0 = Monday) on which a window starts, and who may still reach them urgently."""

    start: int
    end: int
    tz: str
    days: frozenset[int]
    urgent_from: frozenset[str]

    @classmethod
    def from_request(cls, msg: QuietHoursSet, default_tz: str) -> Schedule | None:
        """The schedule a request asks for, or None when it clears them (`off`, or `start` equal
        to `end`). Raises BAD_MESSAGE naming the field."""
        if msg.off:
            return None
        start, end = _minutes(msg.start, "start"), _minutes(msg.end, "end")
        if start == end:
            return None
        tz = msg.tz or default_tz
        if not known_zone(tz):
            raise make_error("BAD_MESSAGE", f"field 'tz' must be an IANA time zone such as Asia/Shanghai, not {tz!r}")
        days = frozenset(DAYS.index(day) for day in msg.days) or frozenset(range(7))
        return cls(start, end, tz, days, frozenset(name.lower() for name in msg.urgent_from))

    def to_wire(self) -> QuietHours:
        """The protocol's form: times as HH:MM, days by name in week order, names sorted."""
        return QuietHours(
            start=clock_time(self.start),
            end=clock_time(self.end),
            tz=self.tz,
            days=tuple(DAYS[day] for day in sorted(self.days)),
            urgent_from=tuple(sorted(self.urgent_from)),
        )

    def _spans(self, now: float) -> list[tuple[float, float]]:
        """The windows around `now` as (start, end) timestamps, in order. Local times that a
        daylight-saving change skips or repeats count with the offset before the change, so the
        windows keep their order and never overlap."""
        zone = zoneinfo.ZoneInfo(self.tz)
        today = datetime.fromtimestamp(now, zone).date()
        spans = []
        for offset in range(-_LOOK_BEHIND, _LOOK_AHEAD + 1):
            day = today + timedelta(days=offset)
            if day.weekday() in self.days:
                finish_day = day + timedelta(days=int(self.end <= self.start))
                spans.append((_at(day, self.start, zone), _at(finish_day, self.end, zone)))
        return spans

    def window(self, now: float) -> Window:
        """Whether `now` is inside a window, until when, and when that next changes."""
        for begin, finish in self._spans(now):
            if begin <= now < finish:
                return Window(True, finish, finish, begin)
            if begin > now:
                return Window(False, 0.0, begin)
        # Every schedule has a day, so a window starts within the week looked at.
        raise AssertionError(f"no quiet hours window within a week of {now}")


def _at(day: date, minutes: int, zone: zoneinfo.ZoneInfo) -> float:
    return datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=zone).timestamp()
