"""The presence feature's SQL: reading and replacing users' quiet hours.

`days` is a bit set (bit 0 = Monday … bit 6 = Sunday); `urgent_from` a JSON array of usernames.
The SQL runs on SQLite and on PostgreSQL alike (docs/architecture.md, "Storage backends").
"""

from __future__ import annotations

import json
import sqlite3

from ...storage.sql import each, listed
from .quiet_hours import Schedule


def _schedule(row: tuple) -> Schedule:
    start, end, tz, days, urgent_from = row
    return Schedule(start, end, tz, frozenset(d for d in range(7) if days >> d & 1), frozenset(json.loads(urgent_from)))


def quiet_hours_of(conn: sqlite3.Connection, user_ids: list[int]) -> dict[int, Schedule]:
    """The quiet hours of those of these users who have set some."""
    rows = conn.execute(
        f"SELECT user_id, start_minute, end_minute, tz, days, urgent_from FROM quiet_hours WHERE user_id IN ({each(conn)})",
        (listed(conn, user_ids),),
    )
    return {row[0]: _schedule(row[1:]) for row in rows}


def set_quiet_hours_txn(conn: sqlite3.Connection, user_id: int, schedule: Schedule | None) -> None:
    """Replace the user's quiet hours (None clears them)."""
    if schedule is None:
        conn.execute("DELETE FROM quiet_hours WHERE user_id = ?", (user_id,))
        return
    conn.execute(
        "INSERT INTO quiet_hours (user_id, start_minute, end_minute, tz, days, urgent_from) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET start_minute = excluded.start_minute, end_minute = excluded.end_minute,"
        " tz = excluded.tz, days = excluded.days, urgent_from = excluded.urgent_from",
        (
            user_id,
            schedule.start,
            schedule.end,
            schedule.tz,
            sum(1 << day for day in schedule.days),
            json.dumps(sorted(schedule.urgent_from)),
        ),
    )
