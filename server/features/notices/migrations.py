"""Notices schema: broadcast notices and, per recipient, whether they read it
(PostgreSQL's script is in `migrations_postgresql.py`)."""

from ...storage.migrations import Migration
from . import migrations_postgresql

MIGRATIONS = (
    Migration(
        "notices.0001_initial",
        """
        CREATE TABLE notices (
            id INTEGER PRIMARY KEY,
            sender_id INTEGER NOT NULL REFERENCES users (id),
            device_id INTEGER NOT NULL,
            msg_id TEXT NOT NULL,
            title TEXT NOT NULL,
            text TEXT NOT NULL,
            targets TEXT NOT NULL,
            recipients INTEGER NOT NULL,
            read_count INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            UNIQUE (device_id, msg_id)
        );
        CREATE INDEX notices_sender ON notices (sender_id, created_at);
        CREATE TABLE notice_recipients (
            notice_id INTEGER NOT NULL REFERENCES notices (id),
            user_id INTEGER NOT NULL REFERENCES users (id),
            read_at REAL,
            PRIMARY KEY (notice_id, user_id)
        ) WITHOUT ROWID;
        CREATE INDEX notice_recipients_user ON notice_recipients (user_id, notice_id);
        """,
        postgresql=migrations_postgresql.INITIAL,
    ),
)
