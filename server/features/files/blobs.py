"""File contents on disk, stored once by their SHA-256, and uploads in progress.

Layout under the data dir's `files/`:

    sha256/ab/abcdef…    a content, named by its full hash (the first two digits spread the
                         contents over 256 directories)
    thumbnails/ab/abc…   the JPEG thumbnail of an image content
    uploads/17.part      the bytes received so far for upload 17

No path is ever built from anything a client sent but an upload's integer id and a file id that
`check_file_id` accepted (64 hex digits), and every path is checked to resolve inside the store,
so no request can name a file outside it. Names are metadata in the database only.

An upload's progress is the size of its `.part` file: nothing is written to the database per
chunk. When the last byte arrives the part is fsynced, hashed and compared with the announced
hash, then renamed to its content path and the directory fsynced — only after that does the
database record the file, so a stored file always has its content. A crash before the rename
leaves the part (the client resumes it); after the rename and before the commit, the content
exists unrecorded and the next upload of it simply renames over it with the same bytes.

Every method does blocking I/O: call them from a worker thread.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from corridor.protocol.files import check_file_id

from ...storage.durable import fsync_dir

HASH_BLOCK = 1024 * 1024


class BlobStore:
    """The content-addressed store of one data dir."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        for part in ("sha256", "thumbnails", "uploads"):
            (self.root / part).mkdir(mode=0o700, parents=True, exist_ok=True)

    def _inside(self, path: Path) -> Path:
        # Defence in depth: ids are validated already, but a path that resolves outside the store
        # (a symlink planted in the data dir, say) is refused rather than followed.
        if not path.resolve().is_relative_to(self.root):
            raise ValueError(f"{path} is outside the file store")
        return path

    def content_path(self, file_id: str) -> Path:
        """Where a content lives."""
        check_file_id(file_id)
        return self._inside(self.root / "sha256" / file_id[:2] / file_id)

    def thumbnail_path(self, file_id: str) -> Path:
        """Where an image content's thumbnail lives."""
        check_file_id(file_id)
        return self._inside(self.root / "thumbnails" / file_id[:2] / f"{file_id}.jpg")

    def part_path(self, upload: int) -> Path:
        """Where an upload's bytes so far are."""
        return self._inside(self.root / "uploads" / f"{int(upload)}.part")

    def received(self, upload: int) -> int:
        """How many bytes of the upload are here."""
        try:
            return self.part_path(upload).stat().st_size
        except FileNotFoundError:
            return 0

    def write_at(self, upload: int, offset: int, data: bytes) -> int:
        """Write a chunk at `offset` of the upload, unless it would leave a hole (`offset` past
        what was received) or was written already; returns the bytes received before it when it
        would leave a hole, and the bytes received after it otherwise."""
        fd = os.open(self.part_path(upload), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            received = os.fstat(fd).st_size
            if offset > received or offset + len(data) <= received:
                return received
            os.pwrite(fd, data, offset)
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    def seal(self, upload: int, file_id: str) -> bool:
        """Make a complete upload a stored content if it hashes to `file_id` (durably: file and
        directory fsynced); a part that does not match is deleted. True if it matched."""
        part = self.part_path(upload)
        digest = hashlib.sha256()
        part.touch(mode=0o600)  # an empty file never had a chunk to create it
        with open(part, "rb+") as f:
            os.fsync(f.fileno())
            while block := f.read(HASH_BLOCK):
                digest.update(block)
        if digest.hexdigest() != file_id:
            part.unlink(missing_ok=True)
            return False
        target = self.content_path(file_id)
        target.parent.mkdir(mode=0o700, exist_ok=True)
        os.replace(part, target)
        fsync_dir(target.parent)
        return True

    def discard(self, upload: int) -> None:
        """Forget an upload's bytes."""
        self.part_path(upload).unlink(missing_ok=True)

    def remove(self, file_id: str) -> None:
        """Delete a content and its thumbnail (retention; the database forgot it first)."""
        self.content_path(file_id).unlink(missing_ok=True)
        self.thumbnail_path(file_id).unlink(missing_ok=True)

    def read(self, file_id: str, offset: int, length: int, *, thumbnail: bool = False) -> bytes:
        """Up to `length` bytes of a content (or of its thumbnail) from `offset`."""
        path = self.thumbnail_path(file_id) if thumbnail else self.content_path(file_id)
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(length)

    def size(self, file_id: str, *, thumbnail: bool = False) -> int:
        """A content's (or its thumbnail's) size in bytes."""
        return (self.thumbnail_path(file_id) if thumbnail else self.content_path(file_id)).stat().st_size
