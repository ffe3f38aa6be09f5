"""Messaging schema: conversations with a gap-free sequence, members, and messages; groups
(PostgreSQL's scripts where they differ are in `migrations_postgresql.py`)."""

from ...storage.migrations import Migration
from . import migrations_postgresql

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
        postgresql=migrations_postgresql.INITIAL,
    ),
    Migration(
        "messaging.0002_groups",
        """
        ALTER TABLE conversation_members ADD COLUMN joined_seq INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX conversation_members_conversation ON conversation_members (conversation_id);
        ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'text';
        ALTER TABLE messages ADD COLUMN mentions TEXT NOT NULL DEFAULT '';
        CREATE TABLE groups (
            conversation_id INTEGER PRIMARY KEY REFERENCES conversations (id),
            name TEXT NOT NULL,
            owner_id INTEGER NOT NULL REFERENCES users (id),
            welcome TEXT NOT NULL DEFAULT '',
            announcement TEXT NOT NULL DEFAULT '',
            announcement_by INTEGER REFERENCES users (id),
            announcement_ts REAL NOT NULL DEFAULT 0,
            announcement_version INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            dissolved_at REAL
        );
        CREATE TABLE group_admins (
            conversation_id INTEGER NOT NULL REFERENCES groups (conversation_id),
            user_id INTEGER NOT NULL REFERENCES users (id),
            PRIMARY KEY (conversation_id, user_id)
        ) WITHOUT ROWID;
        CREATE TABLE announcement_reads (
            conversation_id INTEGER NOT NULL REFERENCES groups (conversation_id),
            user_id INTEGER NOT NULL REFERENCES users (id),
            version INTEGER NOT NULL,
            PRIMARY KEY (conversation_id, user_id)
        ) WITHOUT ROWID;
        """,
        postgresql=migrations_postgresql.GROUPS,
    ),
    Migration(
        "messaging.0003_read_marks",
        """
        CREATE TABLE read_marks (
            user_id INTEGER NOT NULL REFERENCES users (id),
            conversation_id INTEGER NOT NULL REFERENCES conversations (id),
            seq INTEGER NOT NULL,
            PRIMARY KEY (user_id, conversation_id)
        ) WITHOUT ROWID;
        CREATE INDEX read_marks_conversation ON read_marks (conversation_id, seq);
        """,
        postgresql=migrations_postgresql.READ_MARKS,
    ),
    Migration(
        "messaging.0004_recall_edit",
        """
        ALTER TABLE messages ADD COLUMN ref INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE messages ADD COLUMN edited_at REAL;
        """,
        postgresql=migrations_postgresql.RECALL_EDIT,
    ),
    Migration(
        "messaging.0005_files",
        """
        ALTER TABLE messages ADD COLUMN file_sha256 TEXT;
        ALTER TABLE messages ADD COLUMN file TEXT NOT NULL DEFAULT '';
        CREATE INDEX messages_file ON messages (file_sha256) WHERE file_sha256 IS NOT NULL;
        """,
    ),
    Migration(
        "messaging.0006_department_groups",
        """
        ALTER TABLE groups ADD COLUMN department_id INTEGER;
        CREATE INDEX groups_department ON groups (department_id) WHERE department_id IS NOT NULL;
        """,
        postgresql=migrations_postgresql.DEPARTMENT_GROUPS,
    ),
    Migration(
        "messaging.0007_delivered_marks",
        """
        CREATE TABLE delivered_marks (
            user_id INTEGER NOT NULL REFERENCES users (id),
            conversation_id INTEGER NOT NULL REFERENCES conversations (id),
            seq INTEGER NOT NULL,
            PRIMARY KEY (user_id, conversation_id)
        ) WITHOUT ROWID;
        """,
        postgresql=migrations_postgresql.DELIVERED_MARKS,
    ),
)
