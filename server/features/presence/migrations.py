"""Presence schema: each user's quiet hours (statuses themselves live in memory only).
The script runs on SQLite and PostgreSQL alike."""

from ...storage.migrations import Migration

MIGRATIONS = (
    Migration(
        "presence.0001_quiet_hours",
        """
        CREATE TABLE quiet_hours (
            user_id INTEGER PRIMARY KEY REFERENCES users (id),
            start_minute INTEGER NOT NULL CHECK (start_minute BETWEEN 0 AND 1439),
            end_minute INTEGER NOT NULL CHECK (end_minute BETWEEN 0 AND 1439 AND end_minute != start_minute),
            tz TEXT NOT NULL,
            days INTEGER NOT NULL CHECK (days BETWEEN 1 AND 127),
            urgent_from TEXT NOT NULL
        );
        """,
    ),
)
