"""Integrations schema: one row per integration, bound to its bot account and to a device of
that account (what its notices and messages are idempotent by). PostgreSQL's script is in
`migrations_postgresql.py`."""

from ...storage.migrations import Migration
from . import migrations_postgresql

MIGRATIONS = (
    Migration(
        "integrations.0001_initial",
        """
        CREATE TABLE integrations (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            user_id INTEGER NOT NULL REFERENCES users (id),
            device_id INTEGER NOT NULL REFERENCES devices (id),
            token_hash BLOB NOT NULL UNIQUE,
            scopes TEXT NOT NULL,
            allow_from TEXT NOT NULL,
            rate_per_minute INTEGER NOT NULL,
            created_at REAL NOT NULL,
            last_used REAL NOT NULL DEFAULT 0,
            revoked_at REAL
        );
        """,
        postgresql=migrations_postgresql.INITIAL,
    ),
)
