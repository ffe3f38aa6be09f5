"""Sending and fetching files: chunked, resumable, checked by SHA-256 end to end.

Upload: the file is hashed first; `file_upload` names the content by that hash and the server
answers with the offset it already has (0 for a new upload, further on for one interrupted
earlier — by a dropped connection, or by a process that was stopped), so resuming is simply
asking again. The server checks the hash when the last byte arrives; then a `send`/`group_send`
with `file` delivers it like a message.

Download: bytes go to `NAME.part` beside the target, which is where a later download resumes;
the target appears (by rename) only once the whole file hashes to its id, so a file under its
real name is always complete and the one that was sent.

Both directions keep a window of `WINDOW` chunk requests in flight (`_Window`) instead of one
round trip per chunk. That needs no help from the server: it handles a connection's requests
in order, and every chunk names its offset, so a chunk the server cannot place is refused
(`BAD_OFFSET`) and a repeated one is not written twice. Answers are taken oldest first, so the
`.part` of a download only ever grows by the next contiguous chunk. When the oldest answer is an
error a retry may cure (above all a dropped link), the requests behind it are dropped and it is
sent again alone through `Client.request()`, which waits out the reconnect as it does for any
idempotent request; the window then refills from where that answer says the transfer is.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path

import trio

from corridor.protocol.errors import CorridorError, make_error
from corridor.protocol.files import CHUNK_BYTES, FileRef, check_file_id, check_file_name
from corridor.protocol.messages import (
    FileChunk,
    FileGet,
    FileInfo,
    FileUpload,
    GroupSend,
    Request,
    Send,
    SendResult,
    UploadResult,
)
from corridor.protocol.schema import Record

from .client import GROUP_PREFIX, RETRYABLE, Client
from .transport import Answer

Progress = Callable[[int, int], None]  # (bytes done, total)
HASH_BLOCK = 1024 * 1024
# Chunks in flight per transfer: 4 MiB of 512 KiB chunks covers the round trip on a LAN, stays
# far below the server's queue of requests per connection (`max_in_flight`, 64) and bounds what
# a transfer holds in memory.
WINDOW = 8


def _digest(path: Path):
    """(SHA-256 object, size) of what a file holds now; blocking."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(HASH_BLOCK):
            digest.update(block)
        return digest, f.tell()


def hash_file(path: Path) -> tuple[str, int]:
    """(SHA-256 hex, size) of a file; blocking."""
    digest, size = _digest(path)
    return digest.hexdigest(), size


def _read_at(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


class _Window:
    """Idempotent requests written ahead of their answers, answered oldest first."""

    def __init__(self, client: Client):
        self.client = client
        self._sent: deque[tuple[Request, Answer]] = deque()

    def __len__(self) -> int:
        return len(self._sent)

    async def send(self, request: Request) -> None:
        """Write a request behind the others."""
        self._sent.append((request, await self.client.submit(request)))

    async def answer(self) -> Record:
        """The oldest request's result. If it failed in a way a retry may cure, the newer ones
        are dropped (their answers are ignored as they arrive) and it is sent again alone."""
        request, answer = self._sent.popleft()
        try:
            return await answer
        except CorridorError as exc:
            if exc.code not in RETRYABLE:
                raise
            self.clear()
            return await self.client.request(request)

    def clear(self) -> None:
        """Forget every request in flight."""
        self._sent.clear()


async def _send_chunks(client: Client, path: Path, state: UploadResult, progress: Progress | None) -> None:
    window, size, sent = _Window(client), state.size, state.offset
    while not state.complete:
        while len(window) < WINDOW and sent < size:
            data = await trio.to_thread.run_sync(_read_at, path, sent, min(CHUNK_BYTES, size - sent))
            if not data:
                raise make_error("FILE_CORRUPT", f"{path} got shorter while it was sent; send it again")
            await window.send(FileChunk(upload=state.upload, offset=sent, data=data))
            sent += len(data)
        state = await window.answer()
        if progress:
            progress(state.offset, size)
        if not window:  # nothing in flight (drained, or dropped for a resend): go on from the server's offset
            sent = state.offset


async def upload(client: Client, path: Path, progress: Progress | None = None) -> tuple[str, int]:
    """Put a file's content on the server (resuming whatever it already has); returns its
    (id, size)."""
    file_id, size = await trio.to_thread.run_sync(hash_file, path)
    while True:
        state = await client.request(FileUpload(sha256=file_id, size=size))
        if progress:
            progress(state.offset, size)  # where this attempt starts: further on when resuming
        try:
            await _send_chunks(client, path, state, progress)
        except CorridorError as exc:
            if exc.code in ("BAD_OFFSET", "NO_SUCH_UPLOAD"):
                continue  # another device of mine moved the upload on, or finished it: ask again
            if exc.code == "FILE_CORRUPT":
                raise make_error("FILE_CORRUPT", f"{path} changed while it was sent; send it again") from None
            raise
        return file_id, size


async def send_file(
    client: Client, to: str, path: Path, *, name: str | None = None, msg_id: str | None = None, progress: Progress | None = None
) -> SendResult:
    """Upload a file and send it to a user, or to a group named `#ID`; returns once the message
    is stored durably. `name` defaults to the file's own name."""
    name = check_file_name(name or path.name)
    file_id, _ = await upload(client, path, progress)
    msg_id = msg_id or uuid.uuid4().hex
    if to.startswith(GROUP_PREFIX):
        request = GroupSend(group=int(to[len(GROUP_PREFIX) :]), msg_id=msg_id, text=name, file=file_id)
    else:
        request = Send(to=to.lower(), msg_id=msg_id, text=name, file=file_id)
    return await client.request(request)


async def file_info(client: Client, file_id: str) -> FileRef:
    """What a file I can see is, under the name it was last sent to me with."""
    return await client.request(FileInfo(file=check_file_id(file_id)))


def _target(dest: Path, info: FileRef, thumbnail: bool) -> Path:
    if not dest.is_dir():
        return dest
    # The name comes from another person (through the server): it is checked before it becomes
    # a path, so a name like "../../.bashrc" can never write outside `dest`.
    name = check_file_name(info.name)
    if thumbnail:
        name = f"{Path(name).stem}.thumbnail.jpg"
    return dest / name


async def download(
    client: Client,
    file_id: str,
    dest: Path,
    *,
    thumbnail: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Fetch a file (or its thumbnail) into `dest` — a directory (then under the file's name)
    or a file path — resuming a partial download left there; returns the path written."""
    info = await file_info(client, file_id)
    target = _target(dest, info, thumbnail)
    if target.exists() and not overwrite:
        raise make_error("ALREADY_EXISTS", f"{target} already exists; it was left as it is")
    part = target.with_name(target.name + ".part")
    # The hash grows with the bytes written, from what an earlier run left in the part, so
    # checking the whole file at the end costs no second pass over it.
    digest, offset = await trio.to_thread.run_sync(_digest, part) if part.exists() else (hashlib.sha256(), 0)
    size = None  # known from the first answer (a thumbnail's size is not in `info`)
    window, sent = _Window(client), offset
    with open(part, "ab") as out:
        while size is None or offset < size:
            # One request until the size is known, then a window of them up to the end.
            while not window or (size is not None and len(window) < WINDOW and sent < size):
                await window.send(FileGet(file=info.id, offset=sent, thumbnail=thumbnail))
                sent += CHUNK_BYTES
            chunk = await window.answer()
            size = chunk.size
            if chunk.offset != offset:  # an answer before it came up short: what was sent ahead is misplaced
                window.clear()
            else:
                if offset > size or (not chunk.data and offset < size):
                    raise make_error("FILE_CORRUPT", f"{part} does not match the file on the server; delete it and retry")
                await trio.to_thread.run_sync(out.write, chunk.data)
                digest.update(chunk.data)
                offset += len(chunk.data)
                if progress:
                    progress(offset, size)
            if not window:
                sent = offset
        await trio.to_thread.run_sync(out.flush)
        await trio.to_thread.run_sync(os.fsync, out.fileno())
    if not thumbnail and digest.hexdigest() != info.id:
        part.unlink()
        raise make_error("FILE_CORRUPT", f"the downloaded bytes do not hash to {info.id}; download it again")
    os.replace(part, target)
    return target
