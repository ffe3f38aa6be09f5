"""The files feature's SQL: stored contents, uploads, and who may see a file.

Who may see a file is applied in SQL like every visibility rule: a user sees a content they
uploaded themselves, or one carried by a `file` message they can see — in a conversation they
are a member of, after the point they joined. A recalled message no longer carries its file
(`messages.file_sha256` is cleared), so recalling takes a file away from those who had only
that message. These queries read the messaging tables; they are the one place that does.
The SQL runs on SQLite and on PostgreSQL alike (docs/architecture.md, "Storage backends").
"""

from __future__ import annotations

import mimetypes
import sqlite3
from dataclasses import dataclass

from corridor.protocol.errors import make_error
from corridor.protocol.files import FileRef, check_file_id

from ..archive.store import append_txn
from .thumbnails import Picture

_VISIBLE_MESSAGE = (
    "SELECT m.text FROM messages m JOIN conversation_members c"
    " ON c.conversation_id = m.conversation_id AND c.user_id = ?"
    " WHERE m.file_sha256 = ? AND m.seq > c.joined_seq ORDER BY m.ts DESC LIMIT 1"
)


@dataclass(frozen=True)
class Upload:
    id: int
    user_id: int
    sha256: str
    size: int
    complete: bool


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int
    width: int
    height: int
    thumbnail: bool

    def ref(self, name: str) -> FileRef:
        """This content as a message carries it, under `name`."""
        mime = mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"
        return FileRef(
            id=self.sha256,
            name=name,
            size=self.size,
            mime=mime,
            width=self.width,
            height=self.height,
            thumbnail=self.thumbnail,
        )


def stored(conn: sqlite3.Connection, file_id: str) -> StoredFile | None:
    """A stored content's record."""
    row = conn.execute("SELECT sha256, size, width, height, thumbnail FROM files WHERE sha256 = ?", (file_id,)).fetchone()
    return StoredFile(row[0], row[1], row[2], row[3], bool(row[4])) if row else None


def _uploaded_by(conn: sqlite3.Connection, user_id: int, file_id: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM uploads WHERE user_id = ? AND sha256 = ? AND completed_at IS NOT NULL", (user_id, file_id)
        ).fetchone()
        is not None
    )


def visible_name(conn: sqlite3.Connection, user_id: int, file_id: str) -> str | None:
    """The name of the latest `file` message carrying the content that the user can see; "" if
    they see it only as its uploader; None if they may not see it."""
    row = conn.execute(_VISIBLE_MESSAGE, (user_id, file_id)).fetchone()
    if row:
        return row[0]
    return "" if _uploaded_by(conn, user_id, file_id) else None


def visible(conn: sqlite3.Connection, user_id: int, file_id: str) -> StoredFile:
    """The content if the user may see it; `NO_SUCH_FILE` otherwise (also for one that exists)."""
    found = stored(conn, check_file_id(file_id))
    if found is None or visible_name(conn, user_id, file_id) is None:
        raise make_error("NO_SUCH_FILE", f"no file {file_id} that you can see")
    return found


def attachment(conn: sqlite3.Connection, user_id: int, file_id: str, name: str) -> FileRef:
    """The reference a message of the user's carries for `file_id` under `name`; refused unless
    they may see the content (their finished upload, or a file sent to them)."""
    return visible(conn, user_id, file_id).ref(name)


def used_bytes(conn: sqlite3.Connection, user_id: int, besides: str = "") -> int:
    """The user's quota use: the sizes of the distinct contents they finished uploading, and
    of their unfinished uploads but the one of `besides` (so that many uploads left 99 % done
    cannot get round the quota)."""
    (used,) = conn.execute(
        "SELECT coalesce(sum(size), 0) FROM (SELECT DISTINCT sha256, size FROM uploads"
        " WHERE user_id = ? AND (completed_at IS NOT NULL OR sha256 != ?)) AS contents",
        (user_id, besides),
    ).fetchone()
    return used


def _check_room(conn: sqlite3.Connection, user_id: int, file_id: str, size: int, max_bytes: int, quota: int) -> None:
    if size > max_bytes:
        raise make_error("FILE_TOO_LARGE", f"the file has {size:,} bytes; the most allowed is {max_bytes:,}")
    if _uploaded_by(conn, user_id, file_id):
        return  # the same content again costs nothing more
    used = used_bytes(conn, user_id, besides=file_id)
    if used + size > quota:
        raise make_error(
            "QUOTA_EXCEEDED",
            f"you have uploaded {used:,} of your {quota:,} bytes (unfinished uploads count); this file needs {size:,}",
        )


def expire_uploads_txn(conn: sqlite3.Connection, user_id: int, started_before: float) -> list[int]:
    """Forget the user's unfinished uploads begun before `started_before`; returns their ids,
    whose bytes the caller deletes after the commit."""
    rows = conn.execute(
        "DELETE FROM uploads WHERE user_id = ? AND completed_at IS NULL AND started_at < ? RETURNING id",
        (user_id, started_before),
    ).fetchall()
    return [row[0] for row in rows]


def open_upload_txn(
    conn: sqlite3.Connection, *, user_id: int, file_id: str, size: int, now: float, max_bytes: int, quota: int
) -> Upload:
    """The user's unfinished upload of this content, or a new one (within the size limit and
    their quota); a content they can already see needs none and comes back complete (id 0)."""
    found = stored(conn, file_id)
    if found is not None and found.size == size and visible_name(conn, user_id, file_id) is not None:
        return Upload(0, user_id, file_id, size, True)
    row = conn.execute(
        "SELECT id, size FROM uploads WHERE user_id = ? AND sha256 = ? AND completed_at IS NULL", (user_id, file_id)
    ).fetchone()
    if row and row[1] == size:
        return Upload(row[0], user_id, file_id, size, False)
    if row:  # the same hash announced with another size: one of the two is wrong; start afresh
        conn.execute("DELETE FROM uploads WHERE id = ?", (row[0],))
    _check_room(conn, user_id, file_id, size, max_bytes, quota)
    (upload,) = conn.execute(
        "INSERT INTO uploads (user_id, sha256, size, started_at) VALUES (?, ?, ?, ?) RETURNING id", (user_id, file_id, size, now)
    ).fetchone()
    return Upload(upload, user_id, file_id, size, False)


def open_upload(conn: sqlite3.Connection, user_id: int, upload: int) -> Upload:
    """One of the user's unfinished uploads; `NO_SUCH_UPLOAD` for anything else."""
    row = conn.execute(
        "SELECT sha256, size FROM uploads WHERE id = ? AND user_id = ? AND completed_at IS NULL", (upload, user_id)
    ).fetchone()
    if row is None:
        raise make_error("NO_SUCH_UPLOAD", f"upload {upload} is not an unfinished upload of yours")
    return Upload(upload, user_id, row[0], row[1], False)


def complete_txn(
    conn: sqlite3.Connection,
    upload: Upload,
    picture: Picture,
    *,
    actor: str,
    now: float,
    max_bytes: int,
    quota: int,
) -> None:
    """Record a sealed upload: the content (once, whoever stored it first), the upload finished,
    and an archive entry naming the content's hash. The quota is checked again, since the
    user may have finished other uploads meanwhile."""
    _check_room(conn, upload.user_id, upload.sha256, upload.size, max_bytes, quota)
    conn.execute(
        "INSERT INTO files (sha256, size, width, height, thumbnail, stored_at) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (sha256) DO NOTHING",
        (upload.sha256, upload.size, picture.width, picture.height, int(picture.thumbnail), now),
    )
    conn.execute("UPDATE uploads SET completed_at = ? WHERE id = ?", (now, upload.id))
    append_txn(
        conn,
        ts=now,
        actor=actor,
        kind="file",
        conversation=None,
        payload={"sha256": upload.sha256, "size": upload.size, "upload": upload.id},
    )


def discard_txn(conn: sqlite3.Connection, upload: int) -> None:
    """Forget an unfinished upload (its bytes did not match its hash, or did not fit)."""
    conn.execute("DELETE FROM uploads WHERE id = ? AND completed_at IS NULL", (upload,))


def forget_unreferenced_txn(conn: sqlite3.Connection, file_ids: set[str], uploaded_before: float) -> list[str]:
    """Of these contents, forget those no message refers to any more and nobody uploaded since
    `uploaded_before` (an upload may be about to be sent); returns the ids whose bytes may go."""
    gone = []
    for file_id in sorted(file_ids):
        if conn.execute("SELECT 1 FROM messages WHERE file_sha256 = ? LIMIT 1", (file_id,)).fetchone():
            continue
        if conn.execute(
            "SELECT 1 FROM uploads WHERE sha256 = ? AND started_at >= ? LIMIT 1", (file_id, uploaded_before)
        ).fetchone():
            continue
        if conn.execute("DELETE FROM files WHERE sha256 = ?", (file_id,)).rowcount:
            gone.append(file_id)
    return gone
