"""The broadcast notices inbox: company announcements, the latest first, unread in bold."""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QSplitter, QTextBrowser, QVBoxLayout, QWidget

from corridor.protocol.messages import NoticeInfo

NOTICE = Qt.ItemDataRole.UserRole


class NoticesView(QWidget):
    """List and text of notices; `opened(id)` when an unread one is read."""

    opened = Signal(int)

    def __init__(self, names: dict[str, str], parent=None):
        super().__init__(parent)
        self.names = names
        self._items: dict[int, QListWidgetItem] = {}
        self.list = QListWidget()
        self.list.setObjectName("notices")
        self.list.currentItemChanged.connect(self._show)
        self.text = QTextBrowser()
        self.text.setObjectName("notice_text")
        self.text.setOpenLinks(False)  # nothing is fetched from outside the premises
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.list)
        splitter.addWidget(self.text)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

    def add(self, notice: NoticeInfo) -> None:
        """Show a notice (once, however often it arrives), the latest on top."""
        if notice.id in self._items:
            return
        item = QListWidgetItem()
        item.setData(NOTICE, notice)
        when = dt.datetime.fromtimestamp(notice.ts).strftime("%m-%d %H:%M")
        item.setText(f"{notice.title}\n{self.names.get(notice.sender, notice.sender)}  {when}")
        self._items[notice.id] = item
        row = 0
        while row < self.list.count() and self.list.item(row).data(NOTICE).ts > notice.ts:
            row += 1
        self.list.insertItem(row, item)
        self._bold(item, not notice.read)

    def unread(self) -> int:
        """How many notices are not read yet."""
        return sum(1 for item in self._items.values() if item.font().bold())

    @staticmethod
    def _bold(item: QListWidgetItem, bold: bool) -> None:
        font = QFont(item.font())
        font.setBold(bold)
        item.setFont(font)

    def _show(self, item: QListWidgetItem | None) -> None:
        if item is None:
            return
        notice: NoticeInfo = item.data(NOTICE)
        self.text.setPlainText(f"{notice.title}\n\n{notice.text}")
        if item.font().bold():
            self._bold(item, False)
            self.opened.emit(notice.id)
