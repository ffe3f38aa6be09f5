"""Messaging schema: conversations with a gap-free sequence, members, and messages."""

from ...storage.migrations import Migration

MIGRATIONS = (
    Migration(
        "messaging.0001_initial",
        """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            direct_key TEXT UNIQUE,
            last_seq INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL
        );
        CREATE TABLE conversation_members (
            user_id INTEGER NOT NULL REFERENCES users (id),
            conversation_id INTEGER NOT NULL REFERENCES conversations (id),
            PRIMARY KEY (user_id, conversation_id)
        ) WITHOUT ROWID;
        CREATE TABLE messages (
            conversation_id INTEGER NOT NULL REFERENCES conversations (id),
            seq INTEGER NOT NULL,
            sender_id INTEGER NOT NULL REFERENCES users (id),
            device_id INTEGER NOT NULL,
            recipient_id INTEGER REFERENCES users (id),
            msg_id TEXT NOT NULL,
            text TEXT NOT NULL,
            ts REAL NOT NULL,
            PRIMARY KEY (conversation_id, seq)
        ) WITHOUT ROWID;
        CREATE UNIQUE INDEX messages_idempotency ON messages (device_id, msg_id);
        """,
    ),
)
