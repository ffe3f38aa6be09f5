"""Files schema: stored contents by hash, and uploads (finished or under way) per user
(PostgreSQL's script is in `migrations_postgresql.py`)."""

from ...storage.migrations import Migration
from . import migrations_postgresql

MIGRATIONS = (
    Migration(
        "files.0001_initial",
        """
        CREATE TABLE files (
            sha256 TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            width INTEGER NOT NULL DEFAULT 0,
            height INTEGER NOT NULL DEFAULT 0,
            thumbnail INTEGER NOT NULL DEFAULT 0,
            stored_at REAL NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE uploads (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users (id),
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            started_at REAL NOT NULL,
            completed_at REAL
        );
        CREATE UNIQUE INDEX uploads_open ON uploads (user_id, sha256) WHERE completed_at IS NULL;
        CREATE INDEX uploads_user ON uploads (user_id, sha256);
        """,
        postgresql=migrations_postgresql.INITIAL,
    ),
)
