"""Files: chunked, resumable uploads checked by SHA-256, contents stored once by hash, downloads
with resume, thumbnails for images. Sending a file is a message (see `messaging`)."""

from corridor.protocol.messages import FileChunk, FileGet, FileInfo, FileUpload

from ...services import Services
from ...sessions import CHATTERS, MEMBERS
from ..base import Feature, Route
from .blobs import BlobStore
from .handlers import FileHandlers
from .migrations import MIGRATIONS

__all__ = ["MIGRATIONS", "feature"]


def feature(services: Services) -> Feature:
    """Open the data dir's file store and wire the file handlers."""
    handlers = FileHandlers(services, BlobStore(services.config.files_dir))
    return Feature(
        name="files",
        actions={"file.upload": CHATTERS, "file.read": MEMBERS},
        routes=(
            Route(FileUpload, handlers.file_upload, "file.upload"),
            Route(FileChunk, handlers.file_chunk, "file.upload"),
            Route(FileGet, handlers.file_get, "file.read"),
            Route(FileInfo, handlers.file_info, "file.read"),
        ),
    )
