"""Archive schema: an append-only, hash-chained table of events."""

from ...storage.migrations import Migration

MIGRATIONS = (
    Migration(
        "archive.0001_initial",
        """
        CREATE TABLE archive (
            seq INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            actor TEXT NOT NULL,
            kind TEXT NOT NULL,
            conversation_id INTEGER,
            payload BLOB NOT NULL,
            prev_hash BLOB NOT NULL,
            hash BLOB NOT NULL
        );
        CREATE INDEX archive_conversation ON archive (conversation_id, seq);
        CREATE TRIGGER archive_no_update BEFORE UPDATE ON archive
            BEGIN SELECT RAISE(ABORT, 'the archive is append-only'); END;
        CREATE TRIGGER archive_no_delete BEFORE DELETE ON archive
            BEGIN SELECT RAISE(ABORT, 'the archive is append-only'); END;
        """,
    ),
    Migration(
        "archive.0002_kind_index",
        # The admin log reads one kind of entry among millions of messages.
        "CREATE INDEX archive_kind ON archive (kind, seq);",
    ),
    Migration(
        "archive.0003_checkpoints",
        """
        CREATE TABLE archive_checkpoints (
            seq INTEGER PRIMARY KEY,
            hash BLOB NOT NULL,
            ts REAL NOT NULL,
            signature BLOB NOT NULL
        );
        CREATE TRIGGER archive_checkpoints_no_update BEFORE UPDATE ON archive_checkpoints
            BEGIN SELECT RAISE(ABORT, 'archive checkpoints are append-only'); END;
        CREATE TRIGGER archive_checkpoints_no_delete BEFORE DELETE ON archive_checkpoints
            BEGIN SELECT RAISE(ABORT, 'archive checkpoints are append-only'); END;
        """,
    ),
)
