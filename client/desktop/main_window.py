"""The main window: contacts, chats and notices on the left, the open conversation on the
right, my status at the top, the connection always in the status bar.

The window holds no network code: it asks `Session` for things and draws what its signals
bring. Each conversation is a `ChatView`, made the first time a message for it arrives or it is
opened, and kept (hidden) while the window lives, so switching back is instant and its unread
count and marks stay right."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QTabWidget,
)

from corridor.protocol.messages import ChatMessage, DeliveredEvent, MessageEvent, NoticeInfo, ReadEvent

from ..directory import Directory
from .chat_view import ChatView
from .conversations import RecentList
from .files import Files
from .group_info import GroupInfoDialog
from .i18n import LANGUAGES
from .local_store import LocalStore, Recent
from .my_status import StatusToolbar
from .notices_view import NoticesView
from .org_tree import OrgTreeView
from .peer_status import PeerStatus
from .session import Session, group_id, group_target, is_group
from .tray import Tray

HISTORY_PAGE = 50


class MainWindow(QMainWindow):
    """Corridor's main window for one signed-in profile."""

    closed = Signal()
    language_chosen = Signal(str)

    def __init__(self, session: Session, store: LocalStore):
        super().__init__()
        self.session, self.store = session, store
        self.me = session.me
        self.names: dict[str, str] = {}
        self.groups: dict[int, str] = {}
        self.views: dict[str, ChatView] = {}
        self._pending: dict[str, str] = {}  # msg_id → target, until the server answers
        self._unread_notices = 0
        self._groups_asked = False  # my groups were asked for again and have not come yet
        self.setObjectName("main_window")
        self.resize(1000, 680)

        self.tray = Tray(self)
        self.tray.show_window.connect(self._raise)
        self.tray.quit_wanted.connect(self.quit)

        self.recent = RecentList()
        self.recent.chosen.connect(self.open_conversation)
        self.contacts = OrgTreeView(self.me)
        self.contacts.chosen.connect(self.open_conversation)
        self.contacts.search_wanted.connect(self._search)
        self.notices = NoticesView(self.names)
        self.notices.opened.connect(self._notice_opened)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("tabs")
        self.tabs.addTab(self.recent, self.tr("Chats"))
        self.tabs.addTab(self.contacts, self.tr("Contacts"))
        self.tabs.addTab(self.notices, self.tr("Notices"))

        self.stack = QStackedWidget()
        placeholder = QLabel(self.tr("Choose a colleague in Contacts, or a conversation in Chats."))
        placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stack.addWidget(placeholder)
        splitter = QSplitter()
        splitter.addWidget(self.tabs)
        splitter.addWidget(self.stack)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([320, 680])
        self.setCentralWidget(splitter)

        self.my_status = StatusToolbar(session, self.tray, self)
        self.presence = self.my_status.presence
        self.addToolBar(self.my_status)
        self._build_menu()
        self.peers = PeerStatus(self.views, self.contacts.status, self)
        self.files = Files(session, store, self.statusBar(), self)
        self.connection = QLabel()
        self.connection.setObjectName("connection")
        self.statusBar().addPermanentWidget(self.connection)
        self._wire(session)
        self._show_link(session.state, "")
        self._load_local()
        self._update_title()

    # -- building ---------------------------------------------------------------------------

    def _build_menu(self) -> None:
        settings = self.menuBar().addMenu(self.tr("&Settings"))
        language = settings.addMenu(self.tr("Language"))
        current = self.store.setting("language")
        for code, name in LANGUAGES.items():
            action = language.addAction(name or self.tr("System language"))
            action.setCheckable(True)
            action.setChecked(code == current)
            action.triggered.connect(lambda checked=False, code=code: self.language_chosen.emit(code))
        settings.addSeparator()
        settings.addAction(self.tr("Quit"), QKeySequence.StandardKey.Quit, self.quit)

        # Keyboard use throughout: every part of the window is a shortcut away.
        shortcuts = [("Ctrl+F", self._focus_search)]
        shortcuts += [(f"Ctrl+{n + 1}", lambda n=n: self.tabs.setCurrentIndex(n)) for n in range(self.tabs.count())]
        for keys, slot in shortcuts:
            action = QAction(self)
            action.setShortcut(QKeySequence(keys))
            action.triggered.connect(slot)
            self.addAction(action)

    def _wire(self, session: Session) -> None:
        session.link_changed.connect(self._show_link)
        session.logged_in.connect(self._logged_in)
        session.message.connect(self._message)
        session.sent.connect(self._sent)
        session.failed.connect(self._failed)
        session.presence.connect(self._presence)
        session.read.connect(self._read)
        session.delivered.connect(self._delivered)
        session.typing.connect(self.peers.typing)
        session.notice.connect(self._notice)
        session.unread.connect(self._unread)
        session.directory_changed.connect(self._load_directory)
        session.groups_changed.connect(self._groups)
        session.progress.connect(self._progress)
        session.error.connect(lambda why: self.statusBar().showMessage(why, 10_000))

    def _load_local(self) -> None:
        self._load_directory()
        for recent in self.store.recent():
            self.recent.upsert(recent)

    def _load_directory(self) -> None:
        with Directory(self.session.profile) as directory:
            people = directory.people()
            self.contacts.show_tree(directory.tree(), people)
        self.names.update({p.user: p.display_name for p in people})
        self.session.watch(self.contacts.users())

    # -- connection -------------------------------------------------------------------------

    def _show_link(self, state: str, why: str) -> None:
        text = {
            "connecting": "◌ " + self.tr("Connecting…"),
            "online": "● " + self.tr("Connected as %s") % self.me,
            "offline": "○ " + self.tr("Offline — reconnecting"),
            "failed": "✕ " + self.tr("Signed out"),
        }[state]
        if why and state != "online":
            text += f" ({why})"
        self.connection.setText(text)
        self.connection.setProperty("state", state)
        if state == "failed":
            QMessageBox.warning(self, "Corridor", self.tr("The server refused this device: %s") % why)

    def _logged_in(self, login) -> None:
        self.names[self.me] = login.display_name
        # Only the read ones: the unread ones come as events (the library sends them on each
        # connection), and this answer can overtake a live notice, which must still pop up.
        self.session.notices(lambda result: [self._notice(n, notify=False) for n in reversed(result.notices) if n.read])
        self.my_status.logged_in()

    # -- conversations ----------------------------------------------------------------------

    def title_of(self, target: str) -> str:
        """A conversation's name: the group's, or the person's display name."""
        if is_group(target):
            return self.groups.get(group_id(target)) or self.recent.title(target) or target
        return self.names.get(target, target)

    def view(self, target: str) -> ChatView:
        """The conversation's view, made on first use."""
        view = self.views.get(target)
        if view is None:
            view = ChatView(target, self.title_of(target), self.me, self.names)
            view.send_requested.connect(self._send)
            view.files_dropped.connect(self._send_files)
            view.older_wanted.connect(self._older)
            view.info_wanted.connect(self._group_info)
            view.file_wanted.connect(self.files.download)
            view.typing.connect(self.session.typing_to)
            if not is_group(target):
                view.set_peer_status(self.peers.current(target))
            for entry in self.session.profile.outbox():
                if entry.recipient == target:
                    view.add_pending(entry.msg_id, entry.text)
                    self._pending[entry.msg_id] = target
            self.views[target] = view
            self.stack.addWidget(view)
        return view

    def current_target(self) -> str | None:
        """The conversation on screen, if any."""
        widget = self.stack.currentWidget()
        return widget.target if isinstance(widget, ChatView) else None

    def open_conversation(self, target: str) -> None:
        """Show a conversation (loading its latest messages) and mark it read."""
        view = self.view(target)
        self.stack.setCurrentWidget(view)
        if not view.history_asked():
            # Even with messages that came live: the conversation's earlier ones are not shown
            # yet, and a list too short to scroll would never ask for them.
            view.want_older()
        elif not is_group(target) and view.last_own_seq():
            self._ask_receipts(view)
        view.setFocus()
        self._seen(view)

    def _ask_receipts(self, view: ChatView) -> None:
        seq = view.last_own_seq()
        if seq and view.conversation:

            def show(receipt) -> None:
                if receipt.read:
                    view.peer_read_up_to(seq)
                elif receipt.delivered:
                    view.peer_delivered_up_to(seq)

            self.session.read_receipts(view.conversation, seq, show)

    def _seen(self, view: ChatView) -> None:
        """The reader has this conversation in front of them: it is read."""
        if self.recent.unread(view.target) or self.recent.title(view.target) is None:
            self.recent.set_unread(view.target, 0)
            self._update_title()
        if view.conversation and view.last_seq():
            self.session.mark_read(view.conversation, view.last_seq())

    def _looking_at(self, target: str) -> bool:
        return self.current_target() == target and self.isVisible() and not self.isMinimized() and self.isActiveWindow()

    def _target_of(self, message: ChatMessage) -> str:
        if not message.recipient:
            return group_target(message.conversation)
        return message.recipient if message.sender == self.me else message.sender

    def _preview(self, message: ChatMessage) -> str:
        if message.kind == "file" and message.file is not None:
            return "📎 " + message.file.name
        if message.kind == "recall":
            return self.tr("(message recalled)")
        return message.text

    def _message(self, event: MessageEvent) -> None:
        target = self._target_of(event)
        if is_group(target) and group_id(target) not in self.groups and not self._groups_asked:
            self._groups_asked = True  # once until the answer, however many of its messages come
            self.session.groups()  # a group I was added to since connecting: learn its name
        view = self.view(target)
        view.add(event)
        self._pending.pop(event.msg_id, None)
        self.files.thumbnail(view, event)
        recent = Recent(target, event.conversation, self.title_of(target), self._preview(event), event.ts)
        self.store.touch(recent)
        self.recent.upsert(recent)
        if event.sender == self.me:
            return
        if self._looking_at(target):
            self._seen(view)
            return
        self.recent.set_unread(target, self.recent.unread(target) + 1)
        self._update_title()
        if event.kind not in ("system", "welcome", "recall", "edit"):
            self.tray.notify(self.title_of(target), f"{self.names.get(event.sender, event.sender)}: {self._preview(event)}")

    def _older(self, target: str, oldest: int) -> None:
        view = self.views[target]
        self.session.history(target, oldest or None, lambda result: self._history(view, result), HISTORY_PAGE)

    def _history(self, view: ChatView, result) -> None:
        view.loaded(result.messages, HISTORY_PAGE)
        for message in result.messages:
            self.files.thumbnail(view, message)
        if result.messages:
            last = result.messages[-1]
            recent = Recent(view.target, last.conversation, self.title_of(view.target), self._preview(last), last.ts)
            self.store.touch(recent)
            self.recent.upsert(recent)
        if view is self.stack.currentWidget():
            self._seen(view)
            if not is_group(view.target):
                self._ask_receipts(view)

    def _unread(self, result) -> None:
        for count in result.conversations:
            target = self.recent.target_of(count.conversation)
            if target is not None:
                view = self.views.get(target)
                if view is not None and self._looking_at(target):
                    self._seen(view)
                else:
                    self.recent.set_unread(target, count.unread)
        self._update_title()

    def _read(self, event: ReadEvent) -> None:
        target = self.recent.target_of(event.conversation)
        if target is None:
            return
        if event.user == self.me:  # read on another of my devices
            view = self.views.get(target)
            if view is None or event.seq >= view.last_seq():
                self.recent.set_unread(target, 0)
                self._update_title()
        elif target in self.views:
            self.views[target].peer_read_up_to(event.seq)

    def _delivered(self, event: DeliveredEvent) -> None:
        target = self.recent.target_of(event.conversation)
        if target in self.views:
            self.views[target].peer_delivered_up_to(event.seq)

    def _groups(self, result) -> None:
        self._groups_asked = False
        for group in result.groups:
            self.groups[group.id] = group.name
            target = group_target(group.id)
            if target in self.views:
                self.views[target].title.setText(f"<b>{group.name}</b>")
            renamed = self.recent.rename(target, group.name)
            if renamed is not None:
                self.store.touch(renamed)

    # -- sending ----------------------------------------------------------------------------

    def _send(self, target: str, text: str) -> None:
        msg_id = self.session.send_text(target, text)
        self._pending[msg_id] = target
        self.views[target].add_pending(msg_id, text)

    def _send_files(self, target: str, paths: list[Path]) -> None:
        for path in paths:
            msg_id = self.session.send_file(target, path)
            self._pending[msg_id] = target
            self.views[target].add_pending(msg_id, "📎 " + path.name)

    def _sent(self, msg_id: str, result) -> None:
        target = self._pending.pop(msg_id, None)
        if target in self.views:
            self.views[target].set_mark(msg_id, "sent")
        for view in self.views.values():
            if result.conversation == view.conversation:
                view.set_mark(msg_id, "sent")

    def _failed(self, msg_id: str, why: str) -> None:
        target = self._pending.pop(msg_id, None)
        if target in self.views:
            self.views[target].set_mark(msg_id, "failed", why)
            self.views[target].progress.hide()  # a file that failed half-way sends no more progress
        self.statusBar().showMessage(why, 10_000)

    def _progress(self, msg_id: str, done: int, total: int) -> None:
        target = self._pending.get(msg_id)
        if target in self.views:
            self.views[target].show_progress(done, total)

    # -- people, groups, notices ------------------------------------------------------------

    def _presence(self, user: str, status: str, text: str) -> None:
        self.contacts.set_presence(user, status)
        self.recent.set_presence(user, status)
        self.peers.presence(user, status, text)

    def _search(self, query: str) -> None:
        if not query:
            return
        if self.session.client is None:
            self.contacts.show_results(self.contacts.local_search(query))
            return
        self.session.search(query, lambda people: self._found(query, people))

    def _found(self, query: str, people) -> None:
        if self.contacts.search.text().strip() == query:
            self.contacts.show_results(people)
            self.names.update({p.user: p.display_name for p in people})
            self.session.watch([p.user for p in people])

    def _group_info(self, target: str) -> None:
        def show(info) -> None:
            dialog = GroupInfoDialog(info, self.names, self.contacts.status, self)
            dialog.open()

        self.session.group_info(group_id(target), show)

    def _notice(self, notice: NoticeInfo, notify: bool = True) -> None:
        if notice.id in self.notices._items:
            return
        self.notices.add(notice)
        self._update_title()
        if notify and not notice.read:
            self.tray.notify(self.tr("Notice: %s") % notice.title, notice.text[:200])

    def _notice_opened(self, notice: int) -> None:
        self.session.notice_seen(notice)
        self._update_title()

    def _update_title(self) -> None:
        notices = self.notices.unread()
        self.tabs.setTabText(2, self.tr("Notices") + (f" ({notices})" if notices else ""))
        chats = self.recent.total_unread()
        self.tabs.setTabText(0, self.tr("Chats") + (f" ({chats})" if chats else ""))
        unread = chats + notices
        self.tray.set_unread(unread)
        self.setWindowTitle(f"Corridor — {self.names.get(self.me, self.me)}" + (f" ({unread})" if unread else ""))

    # -- window -----------------------------------------------------------------------------

    def _focus_search(self) -> None:
        self.tabs.setCurrentIndex(1)
        self.contacts.search.setFocus()
        self.contacts.search.selectAll()

    def _raise(self) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.ActivationChange and self.isActiveWindow():
            view = self.stack.currentWidget()
            if isinstance(view, ChatView):
                self._seen(view)

    def quit(self) -> None:
        """Close the window and end the program."""
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.tray.hide()
        super().closeEvent(event)
        self.closed.emit()
