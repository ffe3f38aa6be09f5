"""The archive schema's PostgreSQL scripts, where they differ from SQLite's in `migrations.py`:
BIGINT keys, BYTEA for BLOB, DOUBLE PRECISION for REAL (single precision would lose minutes of
a timestamp), guards as PL/pgSQL trigger functions, and a pg_trgm index instead of FTS5.

No server ever wrote format 1 (docs/archive.md, "The hash chain") to PostgreSQL, so a
PostgreSQL archive starts at format 2: `INITIAL` makes the format-2 table and `archive.0004`
has nothing to do there."""

INITIAL = """
CREATE TABLE archive (
    seq BIGINT PRIMARY KEY,
    ts DOUBLE PRECISION NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    conversation_id BIGINT,
    payload BYTEA,
    payload_hash BYTEA NOT NULL,
    prev_hash BYTEA NOT NULL,
    hash BYTEA NOT NULL,
    purged_at DOUBLE PRECISION
);
CREATE INDEX archive_conversation ON archive (conversation_id, seq);
-- The one change the archive allows, as SQLite's trigger: retention erasing the payload of a
-- message, notice or upload (a tombstone keeps the hashes).
CREATE FUNCTION archive_erase_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.kind NOT IN ('message', 'notice', 'file') OR NEW.payload IS NOT NULL OR OLD.payload IS NULL
        OR NEW.purged_at IS NULL
        OR (NEW.seq, NEW.ts, NEW.actor, NEW.kind, NEW.conversation_id, NEW.payload_hash, NEW.prev_hash, NEW.hash)
            IS DISTINCT FROM
            (OLD.seq, OLD.ts, OLD.actor, OLD.kind, OLD.conversation_id, OLD.payload_hash, OLD.prev_hash, OLD.hash)
    THEN
        RAISE EXCEPTION 'the archive is append-only: retention may only erase a payload';
    END IF;
    RETURN NEW;
END $$;
CREATE FUNCTION archive_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;
CREATE TRIGGER archive_no_update BEFORE UPDATE ON archive FOR EACH ROW EXECUTE FUNCTION archive_erase_only();
CREATE TRIGGER archive_no_delete BEFORE DELETE ON archive FOR EACH ROW EXECUTE FUNCTION archive_append_only();
-- TRUNCATE fires no DELETE trigger: without this it would empty the archive unchecked.
CREATE TRIGGER archive_no_truncate BEFORE TRUNCATE ON archive FOR EACH STATEMENT EXECUTE FUNCTION archive_append_only();
"""

CHECKPOINTS = """
CREATE TABLE archive_checkpoints (
    seq BIGINT PRIMARY KEY,
    hash BYTEA NOT NULL,
    ts DOUBLE PRECISION NOT NULL,
    signature BYTEA NOT NULL
);
CREATE TRIGGER archive_checkpoints_no_update BEFORE UPDATE ON archive_checkpoints
    FOR EACH ROW EXECUTE FUNCTION archive_append_only();
CREATE TRIGGER archive_checkpoints_no_delete BEFORE DELETE ON archive_checkpoints
    FOR EACH ROW EXECUTE FUNCTION archive_append_only();
CREATE TRIGGER archive_checkpoints_no_truncate BEFORE TRUNCATE ON archive_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION archive_append_only();
"""

# Format 2 from the start (see above): only the migration's record is written.
FORMAT_2 = "SELECT 1"

# The text index holds each entry's tokens (text.token_line) and a term is a `LIKE '% … %'`
# pattern, which a trigram GIN index answers. pg_trgm ships with PostgreSQL (contrib) and is a
# trusted extension: the database's owner may create it.
SEARCH = """
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE TABLE archive_text (
    seq BIGINT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE INDEX archive_text_trigrams ON archive_text USING gin (body gin_trgm_ops);
CREATE TABLE archive_people (
    user_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (user_id, seq)
);
CREATE INDEX archive_people_seq ON archive_people (seq);
CREATE INDEX archive_ts ON archive (ts);
"""

INDEX_BEHIND = """
CREATE TABLE archive_index_state (indexed_through BIGINT NOT NULL);
INSERT INTO archive_index_state SELECT coalesce(max(seq), 0) FROM archive;
"""
