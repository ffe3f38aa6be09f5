"""One conversation: its history (older pages load as you scroll up), the marks on my own
messages, the input, and files dropped on it.

Messages are kept by `seq`, the conversation's own order, so a message that arrives twice
(a live push and a sync) or out of order still shows once and in place; a message I typed
stays at the bottom, marked as sending, until the server's copy with the same `msg_id`
replaces it."""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import time
from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QDragEnterEvent, QDropEvent, QIcon, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from corridor.protocol.messages import ChatMessage

from .composer import TYPING_EVERY, Composer
from .session import is_group

SEQ = Qt.ItemDataRole.UserRole
MSG_ID = Qt.ItemDataRole.UserRole + 1
MARK = Qt.ItemDataRole.UserRole + 2  # "sending", "sent", "delivered", "read", "failed" on my own messages
FILE = Qt.ItemDataRole.UserRole + 3
MESSAGE = Qt.ItemDataRole.UserRole + 4  # the ChatMessage as it stands now
HIDDEN_KINDS = ("recall", "edit")  # changes to other messages: applied to them, not shown
THUMBNAIL = QSize(160, 160)
TYPING_SHOWN = 6.0


def human_size(size: int) -> str:
    """1536 → '1.5 KiB'."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


class ChatView(QWidget):
    """The right-hand pane for one conversation (`target`: a username or `#GROUP`)."""

    send_requested = Signal(str, str)  # target, text
    files_dropped = Signal(str, list)  # target, [Path]
    older_wanted = Signal(str, int)  # target, oldest seq shown
    info_wanted = Signal(str)  # target (a group)
    file_wanted = Signal(str, object)  # target, FileRef
    typing = Signal(str)  # target

    def __init__(self, target: str, title: str, me: str, names: dict[str, str], parent=None):
        super().__init__(parent)
        self.target, self.me, self.names = target, me, names
        self.conversation: int | None = None
        self.peer_read = 0  # 1:1: the other person has read up to here…
        self.peer_delivered = 0  # …and has it on a device up to here
        self._seqs: list[int] = []
        self._items: dict[int, QListWidgetItem] = {}
        self._pending: dict[str, QListWidgetItem] = {}
        self._complete = False  # the oldest message has been loaded
        self._loading = False
        self._asked = False  # a page of history has been asked for
        self._last_typing = 0.0
        self.setAcceptDrops(True)

        self.title = QLabel(f"<b>{title}</b>")
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.status = QLabel()
        self.status.setObjectName("peer_status")
        header = QHBoxLayout()
        header.addWidget(self.title)
        header.addWidget(self.status, 1)
        if is_group(target):
            info = QPushButton(self.tr("Group info"))
            info.setObjectName("group_info")
            info.clicked.connect(lambda: self.info_wanted.emit(self.target))
            header.addWidget(info)

        self.messages = QListWidget()
        self.messages.setObjectName("messages")
        self.messages.setWordWrap(True)
        self.messages.setIconSize(THUMBNAIL)
        self.messages.setSelectionMode(QListWidget.SelectionMode.SingleSelection)
        self.messages.verticalScrollBar().valueChanged.connect(self._scrolled)
        self.messages.itemActivated.connect(self._activated)

        self.progress = QProgressBar()
        self.progress.setObjectName("transfer")
        self.progress.hide()

        self.composer = Composer()
        self.composer.setPlaceholderText(self.tr("Type a message — Enter sends, Shift+Enter adds a line; drop files here"))
        self.composer.submitted.connect(lambda text: self.send_requested.emit(self.target, text))
        self.composer.typed.connect(self._typed)

        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(self.messages, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.composer)
        self.setFocusProxy(self.composer)

    # -- showing messages -------------------------------------------------------------------

    def _name(self, user: str) -> str:
        return self.names.get(user, user)

    def _line(self, message: ChatMessage) -> str:
        when = dt.datetime.fromtimestamp(message.ts).strftime("%m-%d %H:%M")
        if message.kind == "recalled":
            body = self.tr("(message recalled)")
        elif message.kind == "file" and message.file is not None:
            body = f"📎 {message.file.name} ({human_size(message.file.size)})"
        else:
            body = message.text
        if message.edited:
            body += " " + self.tr("(edited)")
        if message.kind in ("system", "welcome"):
            return f"— {body} —"
        return f"{self._name(message.sender)}  {when}\n{body}"

    def _decorate(self, item: QListWidgetItem, message: ChatMessage) -> None:
        text = self._line(message)
        mark = item.data(MARK)
        if message.sender == self.me and message.kind not in ("system", "welcome"):
            mark = self._peer_mark(message.seq) or mark or "sent"
            if mark == "failed":
                mark = "sent"
            item.setData(MARK, mark)
            text += "  " + self._mark_text(mark)
        item.setText(text)
        if message.kind in ("system", "welcome"):
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter)
            item.setForeground(QBrush(QColor("#777777")))
        item.setData(FILE, message.file if message.kind == "file" else None)

    def _mark_text(self, mark: str) -> str:
        return {
            "sending": "🕓 " + self.tr("sending"),
            "sent": "✓ " + self.tr("sent"),
            "delivered": "✓✓ " + self.tr("delivered"),
            "read": "✓✓ " + self.tr("read"),
        }.get(mark, "⚠ " + self.tr("not sent"))

    def add(self, message: ChatMessage) -> QListWidgetItem | None:
        """Show a message from the server (live, synced or from history) in its place."""
        if self.conversation is None:
            self.conversation = message.conversation
        if message.kind in HIDDEN_KINDS:
            original = self._items.get(message.ref)
            if original is not None:
                if message.kind == "recall":
                    updated = dataclasses.replace(original.data(MESSAGE), kind="recalled", text="", file=None)
                else:
                    updated = dataclasses.replace(original.data(MESSAGE), text=message.text, edited=message.ts)
                original.setData(MESSAGE, updated)
                self._decorate(original, updated)
            return None
        if message.seq in self._items:
            return self._items[message.seq]
        item = self._pending.pop(message.msg_id, None)
        if item is not None:
            self.messages.takeItem(self.messages.row(item))
        else:
            item = QListWidgetItem()
        item.setData(SEQ, message.seq)
        item.setData(MSG_ID, message.msg_id)
        item.setData(MESSAGE, message)
        self._decorate(item, message)
        row = bisect.bisect(self._seqs, message.seq)
        self._seqs.insert(row, message.seq)
        self._items[message.seq] = item
        at_bottom = self._at_bottom()
        self.messages.insertItem(row, item)
        if at_bottom and row == len(self._seqs) - 1:
            self.messages.scrollToBottom()
        return item

    def add_pending(self, msg_id: str, text: str) -> None:
        """Show a message I just typed, before the server has it."""
        item = QListWidgetItem()
        item.setData(MSG_ID, msg_id)
        item.setData(MARK, "sending")
        when = dt.datetime.now().strftime("%m-%d %H:%M")
        item.setText(f"{self._name(self.me)}  {when}\n{text}  {self._mark_text('sending')}")
        self._pending[msg_id] = item
        self.messages.addItem(item)
        self.messages.scrollToBottom()

    def set_mark(self, msg_id: str, mark: str, why: str = "") -> None:
        """Update the mark of one of my messages (still pending or already shown)."""
        item = self._pending.get(msg_id)
        if item is None:
            item = next((i for i in self._items.values() if i.data(MSG_ID) == msg_id), None)
        if item is None:
            return
        if mark == "sent" and item.data(MARK) in ("delivered", "read"):
            return
        item.setData(MARK, mark)
        message = item.data(MESSAGE)
        if message is not None:
            self._decorate(item, message)
        else:
            head, _, _ = item.text().rpartition("  ")
            item.setText(f"{head}  {self._mark_text(mark)}" + (f" ({why})" if why else ""))

    def _peer_mark(self, seq: int) -> str | None:
        if is_group(self.target):
            return None
        if seq <= self.peer_read:
            return "read"
        return "delivered" if seq <= self.peer_delivered else None

    def peer_read_up_to(self, seq: int) -> None:
        """The other person (1:1) has read up to `seq`: mark my messages up to it read."""
        if seq > self.peer_read:
            self.peer_read = seq
            self._redecorate_mine(seq)

    def peer_delivered_up_to(self, seq: int) -> None:
        """A device of the other person (1:1) has my messages up to `seq`: mark them delivered."""
        if seq > self.peer_delivered:
            self.peer_delivered = seq
            self._redecorate_mine(seq)

    def _redecorate_mine(self, seq: int) -> None:
        for message_seq in self._seqs[: bisect.bisect(self._seqs, seq)]:
            item = self._items[message_seq]
            message = item.data(MESSAGE)
            if message.sender == self.me:
                self._decorate(item, message)

    def last_seq(self) -> int:
        """The newest message shown (0 for none)."""
        return self._seqs[-1] if self._seqs else 0

    def last_own_seq(self) -> int:
        """My newest message shown (0 for none)."""
        return next((s for s in reversed(self._seqs) if self._items[s].data(MESSAGE).sender == self.me), 0)

    def set_thumbnail(self, seq: int, path: Path) -> None:
        """Show an image's thumbnail on its message."""
        item = self._items.get(seq)
        pixmap = QPixmap(str(path))
        if item is not None and not pixmap.isNull():
            item.setIcon(QIcon(pixmap))

    def show_progress(self, done: int, total: int) -> None:
        """Progress of a file being sent; hidden when it is complete."""
        self.progress.setVisible(done < total)
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)

    def set_peer_status(self, text: str) -> None:
        """What the header says about the other person (presence, typing)."""
        self.status.setText(text)

    # -- history ----------------------------------------------------------------------------

    def loaded(self, messages: tuple[ChatMessage, ...], limit: int) -> None:
        """A page of history arrived."""
        self._loading = False
        if len(messages) < limit:
            self._complete = True
        keep = self.messages.verticalScrollBar().maximum() - self.messages.verticalScrollBar().value()
        for message in messages:
            self.add(message)
        # Older messages go above what the reader is looking at, which must stay where it was.
        # The list lays out its new rows later, so the scroll range is stale until it is told to.
        self.messages.doItemsLayout()
        bar = self.messages.verticalScrollBar()
        bar.setValue(bar.maximum() - keep)

    def want_older(self) -> None:
        """Ask for the page before the oldest message shown."""
        if self._complete or self._loading:
            return
        self._loading = self._asked = True
        self.older_wanted.emit(self.target, self._seqs[0] if self._seqs else 0)

    def history_asked(self) -> bool:
        """Whether history has been asked for: messages that arrived live are not all of it."""
        return self._asked

    def _scrolled(self, value: int) -> None:
        if value == self.messages.verticalScrollBar().minimum():
            self.want_older()

    def _at_bottom(self) -> bool:
        bar = self.messages.verticalScrollBar()
        return bar.value() >= bar.maximum() - 4

    # -- input ------------------------------------------------------------------------------

    def _typed(self) -> None:
        if not is_group(self.target) and time.monotonic() - self._last_typing > TYPING_EVERY:
            self._last_typing = time.monotonic()
            self.typing.emit(self.target)

    def _activated(self, item: QListWidgetItem) -> None:
        file = item.data(FILE)
        if file is not None:
            self.file_wanted.emit(self.target, file)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        files = [p for p in paths if p.is_file()]
        if files:
            self.files_dropped.emit(self.target, files)
            event.acceptProposedAction()
