"""Files in chats: thumbnails of pictures, fetched once into the profile, and downloads of
what the reader double-clicks, into their Downloads folder (or the one chosen in Settings)."""

from __future__ import annotations

from pathlib import Path

import platformdirs
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QStatusBar

from corridor.protocol.messages import ChatMessage, FileRef

from .chat_view import ChatView
from .local_store import LocalStore
from .session import Session


class Files(QObject):
    """Fetches thumbnails and downloads for the window's chats."""

    def __init__(self, session: Session, store: LocalStore, status: QStatusBar, parent: QObject):
        super().__init__(parent)
        self.session, self.store, self.status = session, store, status

    def downloads(self) -> Path:
        """Where downloads go: the folder chosen in Settings, else the system's Downloads."""
        return Path(self.store.setting("downloads") or platformdirs.user_downloads_dir())

    def thumbnail(self, view: ChatView, message: ChatMessage) -> None:
        """Show a picture's thumbnail in its chat, from the cache or fetched into it."""
        if message.kind != "file" or message.file is None or not message.file.thumbnail:
            return
        cache = self.session.profile.path / "thumbnails"
        cache.mkdir(exist_ok=True)
        path = cache / f"{message.file.id}.jpg"
        if path.exists():
            view.set_thumbnail(message.seq, path)
        else:
            self.session.fetch_file(message.file.id, path, lambda p: view.set_thumbnail(message.seq, p), thumbnail=True)

    def download(self, target: str, file: FileRef) -> None:
        """Save a file from a chat into the downloads folder, telling the reader where."""
        downloads = self.downloads()
        downloads.mkdir(parents=True, exist_ok=True)
        self.status.showMessage(self.tr("Downloading %s…") % file.name)
        self.session.fetch_file(file.id, downloads, lambda path: self.status.showMessage(self.tr("Saved %s") % path, 10_000))
