"""Accounts schema: users, one-time invites, and devices with their tokens (PostgreSQL's
scripts where they differ are in `migrations_postgresql.py`)."""

from ...storage.migrations import Migration
from . import migrations_postgresql

MIGRATIONS = (
    Migration(
        "accounts.0001_initial",
        """
        CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            username TEXT NOT NULL UNIQUE,
            display_name TEXT NOT NULL,
            role TEXT NOT NULL,
            password_hash TEXT,
            active INTEGER NOT NULL DEFAULT 1,
            created_at REAL NOT NULL
        );
        CREATE TABLE invites (
            token_hash BLOB PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users (id),
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            used_at REAL
        );
        CREATE TABLE devices (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users (id),
            name TEXT NOT NULL,
            token_hash BLOB NOT NULL UNIQUE,
            created_at REAL NOT NULL,
            revoked_at REAL
        );
        CREATE INDEX devices_user ON devices (user_id);
        """,
        postgresql=migrations_postgresql.INITIAL,
    ),
    Migration(
        "accounts.0002_source",
        # Where an account comes from: 'local' (made here), 'csv' (bulk import) or 'ldap'. An
        # LDAP sync deactivates only accounts it made, never local ones.
        "ALTER TABLE users ADD COLUMN source TEXT NOT NULL DEFAULT 'local';",
    ),
    Migration(
        "accounts.0003_bots",
        # A bot is an account a program uses: no password, device tokens only; the directory
        # shows it as a bot.
        "ALTER TABLE users ADD COLUMN bot INTEGER NOT NULL DEFAULT 0;",
    ),
)
