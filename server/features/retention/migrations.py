"""Retention schema: how long the archive keeps content, and the legal holds that override it."""

from ...storage.migrations import Migration
from . import migrations_postgresql

MIGRATIONS = (
    Migration(
        "retention.0001_initial",
        # department_id NULL is the rule for everyone no department rule covers; the partial
        # index allows only one of those.
        """
        CREATE TABLE retention_rules (
            department_id INTEGER UNIQUE REFERENCES departments (id),
            days INTEGER NOT NULL CHECK (days > 0),
            set_by TEXT NOT NULL,
            set_at REAL NOT NULL
        );
        CREATE UNIQUE INDEX retention_global ON retention_rules ((department_id IS NULL)) WHERE department_id IS NULL;
        CREATE TABLE legal_holds (
            id INTEGER PRIMARY KEY,
            user_id INTEGER REFERENCES users (id),
            conversation_id INTEGER REFERENCES conversations (id),
            reason TEXT NOT NULL,
            placed_by TEXT NOT NULL,
            placed_at REAL NOT NULL,
            released_by TEXT,
            released_at REAL,
            CHECK ((user_id IS NULL) != (conversation_id IS NULL))
        );
        CREATE INDEX legal_holds_active ON legal_holds (id) WHERE released_at IS NULL;
        """,
        postgresql=migrations_postgresql.INITIAL,
    ),
)
