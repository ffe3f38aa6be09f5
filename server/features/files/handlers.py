"""Uploading, downloading and describing files. Sending one is a message (`send`/`group_send`
with `file`), so it is delivered, held on breaks, recalled and archived like any other."""

from __future__ import annotations

import trio

from corridor.protocol.errors import CorridorError, make_error
from corridor.protocol.files import FileRef, check_file_id
from corridor.protocol.messages import FileChunk, FileData, FileGet, FileInfo, FileUpload, UploadResult

from ...services import Services
from ...sessions import Session
from . import store
from .blobs import BlobStore
from .thumbnails import make_thumbnail

# An upload still unfinished this long after it began is dropped when its owner next starts one (so it stops
# counting against their quota and its bytes leave the disk); resuming it starts it afresh.
UPLOAD_TTL = 7 * 24 * 3600.0
# Chunks of one upload are written one at a time (two devices of a user may resume the same
# upload at once); a fixed set of locks keeps that bounded whatever uploads are abandoned.
LOCK_STRIPES = 64


class FileHandlers:
    """Request handlers of the files feature."""

    def __init__(self, services: Services, blobs: BlobStore):
        self.services = services
        self.blobs = blobs
        self._locks = [trio.Lock() for _ in range(LOCK_STRIPES)]

    def _limits(self) -> dict:
        limits = self.services.config.limits
        return {"max_bytes": limits.max_file_bytes, "quota": limits.file_quota_bytes}

    async def file_upload(self, session: Session, msg: FileUpload) -> UploadResult:
        """Start or resume an upload: the answer says from which offset to send."""
        file_id, me, now = check_file_id(msg.sha256), session.actor, self.services.clock()

        # Its own write: what expired stays forgotten even if this upload is then refused.
        expired = await self.services.db.write(lambda conn: store.expire_uploads_txn(conn, me.user_id, now - UPLOAD_TTL))
        for stale in expired:
            await trio.to_thread.run_sync(self.blobs.discard, stale)
        upload = await self.services.db.write(
            lambda conn: store.open_upload_txn(
                conn, user_id=me.user_id, file_id=file_id, size=msg.size, now=now, **self._limits()
            )
        )
        if upload.complete:
            return UploadResult(upload=upload.id, offset=upload.size, size=upload.size, complete=True)
        async with self._locks[upload.id % LOCK_STRIPES]:
            received = await trio.to_thread.run_sync(self.blobs.received, upload.id)
            if received >= upload.size:  # every byte came, but the server stopped before sealing
                return await self._finish(session, upload)
        return UploadResult(upload=upload.id, offset=received, size=upload.size, complete=False)

    async def file_chunk(self, session: Session, msg: FileChunk) -> UploadResult:
        """Write a chunk; the one that completes the upload is answered once the file is stored."""
        me = session.actor
        upload = await self.services.db.read(lambda conn: store.open_upload(conn, me.user_id, msg.upload))
        end = msg.offset + len(msg.data)
        if end > upload.size:
            raise make_error("BAD_MESSAGE", f"the chunk ends at byte {end:,}, past the file's {upload.size:,}")
        async with self._locks[upload.id % LOCK_STRIPES]:
            # One trip to a worker thread per chunk: a resent chunk is not written again.
            received = await trio.to_thread.run_sync(self.blobs.write_at, upload.id, msg.offset, msg.data)
            if msg.offset > received:
                raise make_error("BAD_OFFSET", f"upload {upload.id} has {received:,} bytes; send from there")
            if received >= upload.size:
                return await self._finish(session, upload)
        return UploadResult(upload=upload.id, offset=received, size=upload.size, complete=False)

    async def _finish(self, session: Session, upload: store.Upload) -> UploadResult:
        if not await trio.to_thread.run_sync(self.blobs.seal, upload.id, upload.sha256):
            await self.services.db.write(lambda conn: store.discard_txn(conn, upload.id))
            raise make_error("FILE_CORRUPT", f"the bytes received do not hash to {upload.sha256}; upload it again")
        picture = await trio.to_thread.run_sync(
            make_thumbnail, self.blobs.content_path(upload.sha256), self.blobs.thumbnail_path(upload.sha256)
        )
        actor, now = session.actor.username, self.services.clock()
        try:
            await self.services.db.write(
                lambda conn: store.complete_txn(conn, upload, picture, actor=actor, now=now, **self._limits())
            )
        except CorridorError as exc:
            if exc.code == "QUOTA_EXCEEDED":  # other uploads finished meanwhile: this one no longer fits
                await self.services.db.write(lambda conn: store.discard_txn(conn, upload.id))
            raise
        return UploadResult(upload=upload.id, offset=upload.size, size=upload.size, complete=True)

    async def file_get(self, session: Session, msg: FileGet) -> FileData:
        """Bytes of a file I can see, or of its thumbnail, from an offset."""
        me = session.actor
        found = await self.services.db.read(lambda conn: store.visible(conn, me.user_id, msg.file))
        if msg.thumbnail and not found.thumbnail:
            raise make_error("NO_SUCH_FILE", f"file {msg.file} has no thumbnail (it is not an image)")
        size = found.size
        if msg.thumbnail:
            size = await trio.to_thread.run_sync(lambda: self.blobs.size(msg.file, thumbnail=True))
        if msg.offset > size:
            raise make_error("BAD_OFFSET", f"file {msg.file} has {size:,} bytes; offset {msg.offset:,} is past its end")
        data = await trio.to_thread.run_sync(lambda: self.blobs.read(msg.file, msg.offset, msg.length, thumbnail=msg.thumbnail))
        return FileData(offset=msg.offset, size=size, data=data)

    async def file_info(self, session: Session, msg: FileInfo) -> FileRef:
        """A file I can see, under the name of the latest message that showed it to me."""
        me = session.actor

        def read(conn):
            found = store.visible(conn, me.user_id, msg.file)
            return found.ref(store.visible_name(conn, me.user_id, msg.file) or msg.file)

        return await self.services.db.read(read)
