"""My status in the toolbar: the presence choice and quiet hours, and what they mean for the
tray, which stays silent on a break or in quiet hours."""

from __future__ import annotations

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QComboBox, QLabel, QToolBar, QWidget

from .quiet_hours import QuietHoursDialog
from .session import Session
from .tray import Tray

STATUSES = ("online", "away", "busy", "break", "offline")


class StatusToolbar(QToolBar):
    """The toolbar with my presence and the quiet-hours dialog."""

    def __init__(self, session: Session, tray: Tray, parent: QWidget):
        super().__init__(parent)
        self.setWindowTitle(self.tr("Status"))
        self.session, self.tray = session, tray
        self.status = "online"
        self._quiet_active = False
        self.setObjectName("toolbar")
        self.setMovable(False)
        self.addWidget(QLabel(self.tr("My status") + " "))
        self.presence = QComboBox()
        self.presence.setObjectName("presence")
        labels = {
            "online": self.tr("Online"),
            "away": self.tr("Away"),
            "busy": self.tr("Busy"),
            "break": self.tr("On a break"),
            "offline": self.tr("Appear offline"),
        }
        for status in STATUSES:
            self.presence.addItem(labels[status], status)
        self.presence.activated.connect(lambda index: self.set_status(self.presence.itemData(index)))
        self.addWidget(self.presence)
        quiet = QAction(self.tr("Quiet hours…"), self)
        quiet.triggered.connect(self._quiet_hours)
        self.addAction(quiet)

    def set_status(self, status: str) -> None:
        """Set my presence; a break also silences notifications."""
        self.status = status
        self.presence.setCurrentIndex(STATUSES.index(status))
        self._silence()
        self.session.set_presence(status)

    def logged_in(self) -> None:
        """A new connection: ask whether quiet hours are on, and keep the status I chose."""
        self.session.quiet_hours(self._quiet_state)
        if self.status != "online":
            self.session.set_presence(self.status)

    def _silence(self) -> None:
        self.tray.quiet = self.status == "break" or self._quiet_active

    def _quiet_state(self, result) -> None:
        self._quiet_active = bool(result.active)
        self._silence()

    def _quiet_hours(self) -> None:
        def show(result) -> None:
            dialog = QuietHoursDialog(result, self.parentWidget())
            dialog.chosen.connect(lambda start, end, tz: self.session.set_quiet_hours(start, end, tz, self._quiet_state))
            dialog.open()

        self.session.quiet_hours(show)
