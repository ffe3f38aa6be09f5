"""The client profile directory: pinned CA, device credential, outbox and sync cursors.

Everything a client must not lose lives here, so a crash loses nothing: a message is in the
outbox before it is sent and leaves it only once the server acknowledged it; the cursor of each
conversation only moves forward, after the application received that message. The directory
is private to its user (0700, the database 0600) because it holds the device token.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from corridor.protocol.errors import make_error

PROFILE_ENV = "CORRIDOR_PROFILE"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS credential (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    tls_host TEXT NOT NULL,
    org TEXT NOT NULL,
    user TEXT NOT NULL,
    device_id INTEGER NOT NULL,
    device_token TEXT NOT NULL,
    ca_sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id TEXT NOT NULL UNIQUE,
    recipient TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (
    conversation INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL
);
"""


def default_profile_dir() -> Path:
    """`$CORRIDOR_PROFILE`, else the platform's per-user config dir."""
    return Path(os.environ.get(PROFILE_ENV) or platformdirs.user_config_dir("corridor"))


def open_private_db(path: Path, schema: str) -> sqlite3.Connection:
    """Open (creating it mode 0600) a profile database and apply its `schema`.

    Autocommit mode: every statement commits by itself unless the caller executes `BEGIN`
    (sqlite3's `with db:` alone does not open a transaction then). WAL and a busy timeout let
    several commands use one profile at once."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA busy_timeout=5000")
    db.executescript(schema)
    return db


@dataclass(frozen=True)
class Credential:
    """Where the server is, whom it must prove to be, and who we are to it."""

    host: str
    port: int
    tls_host: str
    org: str
    user: str
    device_id: int
    device_token: str
    ca_sha256: str


@dataclass(frozen=True)
class OutboxEntry:
    msg_id: str
    recipient: str
    text: str


class Profile:
    """One profile directory, opened."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._db = open_private_db(self.path / "profile.sqlite", _SCHEMA)

    def close(self) -> None:
        """Close the profile database."""
        self._db.close()

    # -- credential ------------------------------------------------------------------------

    @property
    def ca_path(self) -> Path:
        return self.path / "ca.pem"

    def save_enrollment(self, credential: Credential, ca_pem: str) -> None:
        """Store the pinned CA and the device credential, replacing any earlier enrollment."""
        tmp = self.ca_path.with_suffix(".tmp")
        tmp.write_text(ca_pem)
        tmp.replace(self.ca_path)
        # One statement, so a crash leaves either the old credential or the new one.
        self._db.execute(
            "INSERT OR REPLACE INTO credential VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                credential.host,
                credential.port,
                credential.tls_host,
                credential.org,
                credential.user,
                credential.device_id,
                credential.device_token,
                credential.ca_sha256,
            ),
        )

    def credential(self) -> Credential:
        """The enrolled credential; NOT_AUTHENTICATED with advice if this profile never enrolled."""
        row = self._db.execute(
            "SELECT host, port, tls_host, org, user, device_id, device_token, ca_sha256 FROM credential WHERE id = 1"
        ).fetchone()
        if row is None or not self.ca_path.exists():
            raise make_error("NOT_AUTHENTICATED", f"profile {self.path} is not enrolled; run 'corridor enroll INVITE' first")
        return Credential(*row)

    def ca_pem(self) -> str:
        """The pinned organisation CA."""
        return self.ca_path.read_text()

    # -- outbox ----------------------------------------------------------------------------

    def outbox_add(self, msg_id: str, recipient: str, text: str) -> None:
        """Remember a message before sending it."""
        self._db.execute(
            "INSERT OR IGNORE INTO outbox (msg_id, recipient, text, created_at) VALUES (?, ?, ?, ?)",
            (msg_id, recipient, text, time.time()),
        )

    def outbox_remove(self, msg_id: str) -> None:
        """Forget a message the server acknowledged."""
        self._db.execute("DELETE FROM outbox WHERE msg_id = ?", (msg_id,))

    def outbox(self) -> list[OutboxEntry]:
        """Unacknowledged messages, oldest first."""
        return [OutboxEntry(*row) for row in self._db.execute("SELECT msg_id, recipient, text FROM outbox ORDER BY position")]

    # -- cursors ---------------------------------------------------------------------------

    def cursors(self) -> dict[int, int]:
        """The last sequence number the application received, per conversation."""
        return dict(self._db.execute("SELECT conversation, seq FROM cursors"))

    def advance_cursor(self, conversation: int, seq: int) -> None:
        """Move a conversation's cursor forward (never back: several processes may share a profile)."""
        self._db.execute(
            "INSERT INTO cursors (conversation, seq) VALUES (?, ?) ON CONFLICT (conversation) DO UPDATE SET seq = max(seq, excluded.seq)",
            (conversation, seq),
        )
