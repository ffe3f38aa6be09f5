"""The line under a 1:1 chat's title: the colleague's presence, or "typing…" for a while
after they typed."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer

from .chat_view import TYPING_SHOWN, ChatView


class PeerStatus(QObject):
    """Keeps each open 1:1 chat's peer line true to presence and typing events."""

    def __init__(self, views: dict[str, ChatView], status: dict[str, str], parent: QObject):
        super().__init__(parent)
        self.views, self.status = views, status  # shared with the window and the org tree
        self._typing: dict[str, QTimer] = {}

    def text(self, status: str) -> str:
        """A presence status as the reader sees it."""
        return {
            "online": self.tr("online"),
            "away": self.tr("away"),
            "busy": self.tr("busy"),
            "break": self.tr("on a break"),
        }.get(status, self.tr("offline"))

    def current(self, user: str) -> str:
        """What the peer line of a chat with `user` says now, typing aside."""
        return self.text(self.status.get(user, "offline"))

    def presence(self, user: str, status: str, text: str) -> None:
        """A presence change; "typing…" stays until it times out."""
        if user in self.views and user not in self._typing:
            self.views[user].set_peer_status(self.text(status) + (f" — {text}" if text else ""))

    def typing(self, user: str) -> None:
        """The colleague is typing to me."""
        if user not in self.views:
            return
        self.views[user].set_peer_status(self.tr("typing…"))
        timer = self._typing.get(user)
        if timer is None:
            timer = self._typing[user] = QTimer(self, singleShot=True, interval=int(TYPING_SHOWN * 1000))
            timer.timeout.connect(lambda: self._typing_over(user))
        timer.start()

    def _typing_over(self, user: str) -> None:
        self._typing.pop(user, None)
        self.views[user].set_peer_status(self.current(user))
