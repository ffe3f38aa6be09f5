"""Archive schema: an append-only, hash-chained table of events, its search index, and the
retention rules and legal holds that decide when an entry's payload may be erased
(PostgreSQL's scripts where they differ are in `migrations_postgresql.py`)."""

import sqlite3

import msgpack

from corridor.protocol.archive_format import GENESIS, entry_hash, payload_digest

from ...storage.migrations import Migration
from ...storage.sql import dialect
from . import migrations_postgresql
from .store import index_txn

# The one change the archive allows: retention erasing the payload of a message, notice or
# upload (a tombstone keeps the hashes). Admin actions and audit records are never erased.
_GUARDS = (
    """CREATE TRIGGER archive_no_update BEFORE UPDATE ON archive
    WHEN OLD.kind NOT IN ('message', 'notice', 'file') OR NEW.payload IS NOT NULL OR OLD.payload IS NULL
        OR NEW.purged_at IS NULL
        OR NEW.seq IS NOT OLD.seq OR NEW.ts IS NOT OLD.ts OR NEW.actor IS NOT OLD.actor
        OR NEW.kind IS NOT OLD.kind OR NEW.conversation_id IS NOT OLD.conversation_id
        OR NEW.payload_hash IS NOT OLD.payload_hash OR NEW.prev_hash IS NOT OLD.prev_hash
        OR NEW.hash IS NOT OLD.hash
    BEGIN SELECT RAISE(ABORT, 'the archive is append-only: retention may only erase a payload'); END""",
    """CREATE TRIGGER archive_no_delete BEFORE DELETE ON archive
    BEGIN SELECT RAISE(ABORT, 'the archive is append-only'); END""",
)


def _index_existing(conn: sqlite3.Connection) -> None:
    """Index what was archived before the search index existed."""
    for seq, actor, kind, payload in conn.execute("SELECT seq, actor, kind, payload FROM archive ORDER BY seq").fetchall():
        index_txn(conn, seq, actor, kind, msgpack.unpackb(payload, raw=False))


def _rechain(conn: sqlite3.Connection) -> None:
    """Rewrite a format-1 chain (which hashed the payload bytes themselves) as format 2. Only
    development builds wrote format 1; their checkpoints sign format-1 hashes, so they go, and
    the server signs the new head when it starts. PostgreSQL archives start at format 2."""
    if dialect(conn) == "postgresql":
        return
    prev = GENESIS
    rows = conn.execute("SELECT seq, ts, actor, kind, conversation_id, payload FROM archive ORDER BY seq").fetchall()
    for seq, ts, actor, kind, conversation, payload in rows:
        body_hash = payload_digest(payload)
        digest = entry_hash(seq, ts, actor, kind, conversation, body_hash, prev)
        conn.execute(
            "INSERT INTO archive_v2 (seq, ts, actor, kind, conversation_id, payload, payload_hash, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, ts, actor, kind, conversation, payload, body_hash, prev, digest),
        )
        prev = digest
    conn.execute("DROP TABLE archive")
    conn.execute("ALTER TABLE archive_v2 RENAME TO archive")
    conn.execute("CREATE INDEX archive_conversation ON archive (conversation_id, seq)")
    conn.execute("CREATE INDEX archive_kind ON archive (kind, seq)")
    for guard in _GUARDS:
        conn.execute(guard)
    conn.execute("DROP TRIGGER archive_checkpoints_no_delete")
    conn.execute("DELETE FROM archive_checkpoints")
    conn.execute(
        "CREATE TRIGGER archive_checkpoints_no_delete BEFORE DELETE ON archive_checkpoints"
        " BEGIN SELECT RAISE(ABORT, 'archive checkpoints are append-only'); END"
    )


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
        postgresql=migrations_postgresql.INITIAL,
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
        postgresql=migrations_postgresql.CHECKPOINTS,
    ),
    Migration(
        "archive.0004_format_2",
        """
        CREATE TABLE archive_v2 (
            seq INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            actor TEXT NOT NULL,
            kind TEXT NOT NULL,
            conversation_id INTEGER,
            payload BLOB,
            payload_hash BLOB NOT NULL,
            prev_hash BLOB NOT NULL,
            hash BLOB NOT NULL,
            purged_at REAL
        );
        """,
        then=_rechain,
        postgresql=migrations_postgresql.FORMAT_2,
    ),
    Migration(
        "archive.0005_search",
        # Text is indexed segmented (text.py), so Chinese is searchable character by character.
        # `archive_people` names who an entry is about (sender, and a direct message's
        # recipient): the participant filter and an auditor's department scope join it.
        """
        CREATE VIRTUAL TABLE archive_text USING fts5 (body, tokenize = 'unicode61 remove_diacritics 2');
        CREATE TABLE archive_people (
            user_id INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (user_id, seq)
        ) WITHOUT ROWID;
        CREATE INDEX archive_people_seq ON archive_people (seq);
        CREATE INDEX archive_ts ON archive (ts);
        """,
        then=_index_existing,
        postgresql=migrations_postgresql.SEARCH,
    ),
    Migration(
        "archive.0006_index_behind",
        # Entries are indexed by a background pass (store.index_pending_txn), no longer in the
        # transaction that appends them; until this migration they were, so all are indexed.
        """
        CREATE TABLE archive_index_state (indexed_through INTEGER NOT NULL);
        INSERT INTO archive_index_state SELECT coalesce(max(seq), 0) FROM archive;
        """,
        postgresql=migrations_postgresql.INDEX_BEHIND,
    ),
)
