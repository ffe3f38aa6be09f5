"""Setting my quiet hours: a daily window in which I am on a break (the server holds messages
and the tray stays silent), in this computer's time zone."""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import QTime, Signal
from PySide6.QtWidgets import QCheckBox, QDialog, QDialogButtonBox, QFormLayout, QTimeEdit, QVBoxLayout

DEFAULT = ("22:00", "08:00")


def local_zone() -> str:
    """This computer's IANA time zone name, or "" to let the server use its own."""
    zone = dt.datetime.now().astimezone().tzinfo
    key = getattr(zone, "key", "")
    return key if "/" in key or key == "UTC" else ""


class QuietHoursDialog(QDialog):
    """Turn quiet hours on (from, until) or off; `chosen(start, end, tz)` ("" start: off)."""

    chosen = Signal(str, str, str)

    def __init__(self, current, parent=None):
        super().__init__(parent)
        self.setObjectName("quiet_hours_dialog")
        self.setWindowTitle(self.tr("Quiet hours"))
        hours = current.quiet_hours
        self.enabled = QCheckBox(self.tr("Every day, be on a break"))
        self.enabled.setChecked(hours is not None)
        start, end = (hours.start, hours.end) if hours is not None else DEFAULT
        self.start = QTimeEdit(QTime.fromString(start, "HH:mm"))
        self.end = QTimeEdit(QTime.fromString(end, "HH:mm"))
        for edit in (self.start, self.end):
            edit.setDisplayFormat("HH:mm")
        form = QFormLayout()
        form.addRow(self.enabled)
        form.addRow(self.tr("From"), self.start)
        form.addRow(self.tr("Until"), self.end)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def _accept(self) -> None:
        if self.enabled.isChecked():
            self.chosen.emit(self.start.time().toString("HH:mm"), self.end.time().toString("HH:mm"), local_zone())
        else:
            self.chosen.emit("", "", "")
        self.accept()
