"""The message input: several lines, Enter sends, Shift+Enter starts a new line.

An input method (Chinese pinyin, for one) composes text before committing it, and its Enter
confirms the candidate: Qt delivers that as an input-method event, not a key press, so it can
never send a half-typed message."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QPlainTextEdit

TYPING_EVERY = 4.0  # seconds between typing notices while the user keeps typing


class Composer(QPlainTextEdit):
    """Multi-line input that emits `submitted(text)` on Enter."""

    submitted = Signal(str)
    typed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("composer")
        self.setTabChangesFocus(True)  # Tab moves on to the next control, as keyboard users expect
        self.setMaximumHeight(110)
        self.textChanged.connect(self._changed)

    def _changed(self) -> None:
        if self.toPlainText():
            self.typed.emit()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if enter and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            text = self.toPlainText().strip("\n")
            if text.strip():
                self.submitted.emit(text)
                self.clear()
            return
        super().keyPressEvent(event)
