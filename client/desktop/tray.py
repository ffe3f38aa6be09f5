"""The tray icon: the unread count on the icon, a notification when something arrives.

Notifications are the one thing a break must silence: the server already holds messages while
I am on a break, and the few that still arrive (urgent ones, from people I allowed) are shown
in the window but do not pop up. Where the desktop has no tray (some Linux sessions, and
offscreen tests), the icon is simply not shown; the count still drives the window title."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from .icons import app_icon


class Tray(QObject):
    """Unread count and notifications; `show_window` when the icon is clicked."""

    show_window = Signal()
    quit_wanted = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.unread = 0
        self.quiet = False
        self.last_notification: tuple[str, str] | None = None
        self.icon = QSystemTrayIcon(app_icon())
        menu = QMenu()
        menu.addAction(self.tr("Open Corridor"), self.show_window.emit)
        menu.addAction(self.tr("Quit"), self.quit_wanted.emit)
        self._menu = menu
        self.icon.setContextMenu(menu)
        self.icon.activated.connect(lambda reason: self.show_window.emit())
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.icon.show()
        self.set_unread(0)

    def set_unread(self, unread: int) -> None:
        """Show how many messages and notices are unread."""
        self.unread = unread
        self.icon.setIcon(app_icon(unread))
        self.icon.setToolTip(self.tr("Corridor — %n unread", "", unread) if unread else "Corridor")

    def notify(self, title: str, body: str) -> bool:
        """Pop up a notification, unless I am on a break; returns whether it was shown."""
        if self.quiet:
            return False
        self.last_notification = (title, body)
        if self.icon.isVisible() and QSystemTrayIcon.supportsMessages():
            self.icon.showMessage(title, body, app_icon(), 8000)
        return True

    def hide(self) -> None:
        """Take the icon off the tray (on quit)."""
        self.icon.hide()
