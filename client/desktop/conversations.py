"""The recent conversations list: the latest first, each with its unread badge."""

from __future__ import annotations

import dataclasses
import datetime as dt

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QListWidget, QListWidgetItem

from .icons import presence_icon
from .local_store import Recent
from .session import is_group

TARGET = Qt.ItemDataRole.UserRole
UNREAD = Qt.ItemDataRole.UserRole + 1
PREVIEW = 60


class RecentList(QListWidget):
    """Conversations by their latest message; `chosen(target)` when one is opened."""

    chosen = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("recent")
        self._items: dict[str, QListWidgetItem] = {}
        self._recent: dict[str, Recent] = {}
        self.itemActivated.connect(lambda item: self.chosen.emit(item.data(TARGET)))
        self.itemClicked.connect(lambda item: self.chosen.emit(item.data(TARGET)))

    def _render(self, target: str) -> None:
        item, recent = self._items[target], self._recent[target]
        unread = item.data(UNREAD) or 0
        when = dt.datetime.fromtimestamp(recent.last_ts).strftime("%m-%d %H:%M") if recent.last_ts else ""
        badge = f"  ({unread})" if unread else ""
        preview = recent.last_text.replace("\n", " ")
        preview = preview if len(preview) <= PREVIEW else preview[: PREVIEW - 1] + "…"
        item.setText(f"{recent.title}{badge}   {when}\n{preview}")
        font = QFont(item.font())
        font.setBold(bool(unread))
        item.setFont(font)

    def upsert(self, recent: Recent) -> None:
        """Add or update a conversation and move it to where its latest message puts it."""
        item = self._items.get(recent.target)
        old = self._recent.get(recent.target)
        if old is not None and old.last_ts > recent.last_ts:
            recent = Recent(recent.target, recent.conversation or old.conversation, recent.title, old.last_text, old.last_ts)
        if item is None:
            item = QListWidgetItem()
            item.setData(TARGET, recent.target)
            item.setData(UNREAD, 0)
            self._items[recent.target] = item
        else:
            self.takeItem(self.row(item))
        self._recent[recent.target] = recent
        row = 0
        while row < self.count() and self._recent[self.item(row).data(TARGET)].last_ts > recent.last_ts:
            row += 1
        self.insertItem(row, item)
        self._render(recent.target)

    def set_unread(self, target: str, unread: int) -> None:
        """Set a conversation's badge (0 clears it)."""
        if target in self._items:
            self._items[target].setData(UNREAD, unread)
            self._render(target)

    def rename(self, target: str, title: str) -> Recent | None:
        """Give a conversation its current title; returns it so updated, or None when the list
        does not have it or the title was already right."""
        recent = self._recent.get(target)
        if recent is None or recent.title == title:
            return None
        self._recent[target] = dataclasses.replace(recent, title=title)
        self._render(target)
        return self._recent[target]

    def unread(self, target: str) -> int:
        """The badge a conversation shows."""
        item = self._items.get(target)
        return (item.data(UNREAD) or 0) if item is not None else 0

    def total_unread(self) -> int:
        """The sum of every badge (what the tray shows)."""
        return sum(item.data(UNREAD) or 0 for item in self._items.values())

    def title(self, target: str) -> str | None:
        """A known conversation's title."""
        recent = self._recent.get(target)
        return recent.title if recent else None

    def target_of(self, conversation: int) -> str | None:
        """The conversation with this id, if the list has it."""
        return next((t for t, r in self._recent.items() if r.conversation == conversation), None)

    def set_presence(self, user: str, status: str) -> None:
        """Show a 1:1 peer's presence on their conversation."""
        if user in self._items and not is_group(user):
            self._items[user].setIcon(presence_icon(status))
