"""What a file is on the wire: its id (the SHA-256 of its content), a name that is safe to save
under, and the reference a `file` message carries.

A file's name travels only as metadata: the server stores content by its hash and never builds a
path from a name, and a client saves under a name only after `check_file_name` accepted it. So
the one rule lives here, pure, for both sides: a name is a single path component, never `.` or
`..`, with no separator, drive colon or control character, that any desktop file system can hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from .errors import make_error
from .schema import Bound, Record

CHUNK_BYTES = 512 * 1024  # the most one `file_chunk` or `file_get` carries: half of a frame
MAX_NAME_BYTES = 255  # what ext4, NTFS and APFS allow for one component
FILE_ID = re.compile(r"^[0-9a-f]{64}$")
_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
# Names Windows maps to devices whatever the extension ("nul.txt" opens NUL).
_DEVICES = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))})

FileId = Annotated[str, Bound(min_len=64, max_len=64)]
FileName = Annotated[str, Bound(min_len=1, max_len=MAX_NAME_BYTES)]


def check_file_id(file_id: str) -> str:
    """The id if it is a lowercase hex SHA-256; otherwise `BAD_FILE_ID`."""
    if not FILE_ID.match(file_id):
        raise make_error("BAD_FILE_ID", f"{file_id[:80]!r} is not a file id (64 lowercase hex digits of SHA-256)")
    return file_id


def check_file_name(name: str) -> str:
    """The name if it is one safe path component; otherwise `BAD_FILE_NAME` saying why."""
    why = _name_problem(name)
    if why:
        raise make_error("BAD_FILE_NAME", f"file name {name[:80]!r} refused: {why}")
    return name


def _name_problem(name: str) -> str:
    if not name or name.strip() != name:
        return "it is empty or starts or ends with a space"
    if len(name.encode()) > MAX_NAME_BYTES:
        return f"it is longer than {MAX_NAME_BYTES} bytes"
    if name in (".", "..") or name.endswith("."):
        return "it is a relative path or ends with a dot"
    if match := _FORBIDDEN.search(name):
        return f"it contains {match.group()!r} (no path separators, colons, wildcards or control characters)"
    if name.split(".")[0].lower() in _DEVICES:
        return "it is a device name on Windows"
    return ""


@dataclass(frozen=True)
class FileRef(Record):
    """The file a `file` message carries: `id` (SHA-256 of the content, hex), the `name` the
    sender gave it, its `size` in bytes, a `mime` type guessed from the name, and for images
    their pixel size and whether a thumbnail can be fetched (`file_get` with `thumbnail`)."""

    id: FileId
    name: FileName
    size: int
    mime: str = "application/octet-stream"
    width: int = 0
    height: int = 0
    thumbnail: bool = False
