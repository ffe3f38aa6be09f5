"""What the desktop remembers between runs, in `PROFILE/desktop.sqlite`: the recent
conversations (so the list is there before the server answers, and offline) and the window's
settings (language, notifications).

It is a convenience copy: the messages themselves stay on the server, and the sync cursors and
outbox that make delivery exact live in the profile (`profile.py`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..profile import Profile, open_private_db

_SCHEMA = """
CREATE TABLE IF NOT EXISTS recent (
    target TEXT PRIMARY KEY,
    conversation INTEGER,
    title TEXT NOT NULL,
    last_text TEXT NOT NULL,
    last_ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
RECENT_LIMIT = 200


@dataclass(frozen=True)
class Recent:
    """A conversation in the recent list: `target` is a username or `#GROUP`."""

    target: str
    conversation: int | None
    title: str
    last_text: str
    last_ts: float


class LocalStore:
    """The desktop's own small database in a profile."""

    def __init__(self, profile: Profile):
        self._db = open_private_db(profile.path / "desktop.sqlite", _SCHEMA)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def recent(self) -> list[Recent]:
        """Conversations, the latest first."""
        rows = self._db.execute(
            "SELECT target, conversation, title, last_text, last_ts FROM recent ORDER BY last_ts DESC LIMIT ?", (RECENT_LIMIT,)
        )
        return [Recent(*row) for row in rows]

    def touch(self, recent: Recent) -> None:
        """Record a conversation's latest message (an older one than the stored one keeps the
        stored text: history loaded while scrolling must not push a conversation up)."""
        self._db.execute(
            "INSERT INTO recent (target, conversation, title, last_text, last_ts) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (target) DO UPDATE SET title = excluded.title,"
            " conversation = coalesce(excluded.conversation, conversation),"
            " last_text = CASE WHEN excluded.last_ts >= last_ts THEN excluded.last_text ELSE last_text END,"
            " last_ts = max(last_ts, excluded.last_ts)",
            (recent.target, recent.conversation, recent.title, recent.last_text, recent.last_ts),
        )

    def setting(self, key: str, default: str = "") -> str:
        """A stored setting, or `default`."""
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_setting(self, key: str, value: str) -> None:
        """Store a setting."""
        self._db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))
