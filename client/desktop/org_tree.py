"""The org tree: departments and their people with presence dots, and a search box.

The tree is read from the profile's directory copy (`client/directory.py`), so it appears at
once and offline. A search asks the server, which also matches pinyin and initials of Chinese
names ("zs" finds 张三); without a connection it falls back to names and usernames in the copy."""

from __future__ import annotations

from collections import defaultdict

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from corridor.protocol.messages import Person

from ..directory import Branch, OrgTree
from .icons import presence_icon

USER = Qt.ItemDataRole.UserRole
SEARCH_DELAY_MS = 250  # wait for the typist to pause before asking the server
BOT_MARK = "🤖 "  # before a bot's name, so nobody takes a program's answers for a colleague's


class OrgTreeView(QWidget):
    """Org tree and search; `chosen(user)` when someone is activated (double-click or Enter)."""

    chosen = Signal(str)
    search_wanted = Signal(str)

    def __init__(self, me: str, parent=None):
        super().__init__(parent)
        self.me = me
        self.status: dict[str, str] = {}
        self._items: dict[str, list[QTreeWidgetItem]] = defaultdict(list)
        self._people: list[Person] = []
        self._shown_for = ""  # the query the results shown answer
        self._open_first = False  # Enter came before the answer: open its first match

        self.search = QLineEdit()
        self.search.setObjectName("search")
        self.search.setPlaceholderText(self.tr("Search people (name, pinyin, title)"))
        self.search.setClearButtonEnabled(True)
        self._timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._timer.timeout.connect(lambda: self.search_wanted.emit(self.search.text().strip()))
        self.search.textChanged.connect(self._typed)
        self.search.returnPressed.connect(self._enter)

        self.tree = QTreeWidget()
        self.tree.setObjectName("org_tree")
        self.tree.setHeaderHidden(True)
        self.tree.itemActivated.connect(self._activated)

        self.results = QTreeWidget()
        self.results.setObjectName("search_results")
        self.results.setHeaderHidden(True)
        self.results.setRootIsDecorated(False)
        self.results.itemActivated.connect(self._activated)
        self.results.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.search)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.results, 1)
        self.setFocusProxy(self.search)

    def _person_item(self, person: Person, parent: QTreeWidgetItem | QTreeWidget) -> QTreeWidgetItem:
        label = (BOT_MARK if person.bot else "") + person.display_name + (f" · {person.title}" if person.title else "")
        item = QTreeWidgetItem(parent, [label])
        item.setData(0, USER, person.user)
        tip = f"{person.user}  {person.email}".strip()
        item.setToolTip(0, self.tr("%s (a bot: a program answers)") % tip if person.bot else tip)
        item.setIcon(0, presence_icon(self.status.get(person.user, "offline")))
        self._items[person.user].append(item)
        return item

    def show_tree(self, tree: OrgTree, people: list[Person]) -> None:
        """Rebuild the tree from the directory copy."""
        self._people = [p for p in people if p.active]
        self.tree.clear()
        self._items.clear()

        def add(branch: Branch, parent: QTreeWidgetItem | QTreeWidget) -> None:
            item = QTreeWidgetItem(parent, [branch.department.name])
            for person in branch.people:
                self._person_item(person, item)
            for child in branch.children:
                add(child, item)

        for root in tree.roots:
            add(root, self.tree)
        if tree.unassigned:
            others = QTreeWidgetItem(self.tree, [self.tr("Not in a department")])
            for person in tree.unassigned:
                self._person_item(person, others)
        self.tree.expandToDepth(0)

    def users(self) -> list[str]:
        """Everyone shown in the tree."""
        return [p.user for p in self._people]

    def set_presence(self, user: str, status: str) -> None:
        """Update someone's presence dot everywhere they appear."""
        self.status[user] = status
        for item in self._items.get(user, ()):
            item.setIcon(0, presence_icon(status))

    def show_results(self, people: list[Person]) -> None:
        """Show search results (the tree comes back when the search box is cleared)."""
        self.results.clear()
        self._items = defaultdict(
            list, {u: [i for i in items if i.treeWidget() is self.tree] for u, items in self._items.items()}
        )
        for person in people:
            if person.active:
                self._person_item(person, self.results)
        self._shown_for = self.search.text().strip()
        open_first, self._open_first = self._open_first, False
        if self.results.topLevelItemCount():
            self.results.setCurrentItem(self.results.topLevelItem(0))
            if open_first:
                self._activated(self.results.topLevelItem(0))

    def local_search(self, query: str) -> list[Person]:
        """Offline search in the copy: name, username or title containing the query."""
        q = query.casefold()
        return [p for p in self._people if q in p.display_name.casefold() or q in p.user or q in p.title.casefold()]

    def _typed(self, text: str) -> None:
        searching = bool(text.strip())
        self._open_first = False
        self.tree.setVisible(not searching)
        self.results.setVisible(searching)
        if searching:
            self._timer.start()

    def _enter(self) -> None:
        item = self.results.currentItem()
        if item is not None and self._shown_for == self.search.text().strip():
            self._activated(item)
        else:
            # Typed and Enter at once, as a fast typist does: open the first match when the
            # answer comes, instead of making them press Enter again (or opening a stale one).
            self._open_first = True
            self._timer.stop()
            self.search_wanted.emit(self.search.text().strip())

    def _activated(self, item: QTreeWidgetItem) -> None:
        user = item.data(0, USER)
        if user and user != self.me:
            self.chosen.emit(user)
