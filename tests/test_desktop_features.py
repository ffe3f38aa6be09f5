"""The rest of what the desktop promises, each checked in the window a user sees: files dropped
on a chat and images with thumbnails, history that loads as you scroll up, broadcast notices, a
break that silences notifications, group information, and the keyboard.

One server serves the whole module (starting one per test would cost more than the tests);
bob's profile is enrolled on the CLI once, so each test starts the desktop straight into its
main window. Each test talks to bob from a colleague of its own, so what one leaves behind (a
conversation, an unread badge) is not what the next one checks."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from PIL import Image

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest.importorskip("PySide6")
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QPushButton

from corridor.client.desktop.chat_view import MARK, SEQ, ChatView
from corridor.client.desktop.group_info import GroupInfoDialog

from .cli_helpers import RunningServer, admin, employee, free_port, run
from .test_desktop import WAIT_MS, cli, online, start_desktop, stop_desktop, texts


@pytest.fixture(scope="module")
def office(tmp_path_factory):
    """A server with bob (enrolled on the CLI, for the desktop) and his colleagues, all in one
    department; alice may send notices to it."""
    tmp = tmp_path_factory.mktemp("office")
    data = tmp / "data"
    port = free_port()
    init = run("init", str(data), "--org", "Example Ltd", "--listen", f"127.0.0.1:{port}", "--json")
    assert init.returncode == 0, init.stderr
    # Not advertised: profiles here are enrolled and connect to the saved address, and a second
    # "Example Ltd" on the LAN would confuse the discovery that test_desktop.py checks.
    config = data / "corridor.toml"
    config.write_text(config.read_text().replace("advertise = true", "advertise = false"))
    server = RunningServer(data)
    try:
        department = admin(data, "department", "add", "工程部")["id"]
        people = {
            "bob": "李波",
            "alice": "王丽",
            "carol": "Carol Chen",
            "dave": "Dave Du",
            "erin": "Erin Eng",
            "frank": "Frank Fu",
        }
        profiles = {user: employee(data, tmp, user, name) for user, name in people.items()}
        for user in people:
            admin(data, "user", "set", user, "--department", str(department), "--title", "Engineer")
        admin(data, "policy", "set", "broadcast", "--department", str(department), "--allow", "user:alice")
        yield {"data": data, "department": department, **profiles}
    finally:
        server.kill()


@contextlib.contextmanager
def bobs_window(qtbot, office):
    """bob's desktop window, shown, active and online; closed at the end."""
    desktop = start_desktop(qtbot, Path(office["bob"]))
    try:
        qtbot.waitUntil(lambda: online(desktop), timeout=WAIT_MS)
        desktop.window.activateWindow()
        qtbot.waitUntil(lambda: desktop.window.isActiveWindow(), timeout=WAIT_MS)
        yield desktop.window
    finally:
        stop_desktop(qtbot, desktop)


def drop_files(view: ChatView, *paths: Path) -> None:
    """Drag files from a file manager and drop them on the chat, as Qt delivers it."""
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    where = QPointF(view.messages.geometry().center())
    with warnings.catch_warnings():  # Qt 6 has only this constructor, which PySide flags as deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        enter = QDragEnterEvent(
            where.toPoint(), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
        )
    QApplication.sendEvent(view, enter)
    assert enter.isAccepted()
    drop = QDropEvent(where, Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view, drop)
    assert drop.isAccepted()


def sent_by_library(profile: str, to: str, texts: list[str]) -> None:
    """Many messages at once through the client library (a `corridor send` per message would
    take a fifth of a second each)."""
    script = (
        "import sys, trio\n"
        "from corridor.client.client import Client\n"
        "from corridor.client.profile import Profile\n"
        "async def main():\n"
        "    async with Client.open(Profile(sys.argv[1]), discover=False) as client:\n"
        "        for text in sys.argv[3:]:\n"
        "            await client.send(sys.argv[2], text)\n"
        "trio.run(main)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, profile, to, *texts], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_dropped_file_is_sent_with_progress_and_an_image_shows_its_thumbnail(qtbot, office, tmp_path):
    payload = tmp_path / "report.bin"
    payload.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several chunks, so progress moves
    picture = tmp_path / "img.png"
    Image.radial_gradient("L").resize((800, 600)).convert("RGB").save(picture)

    with bobs_window(qtbot, office) as window:
        window.open_conversation("alice")
        view = window.views["alice"]
        seen = []  # (value, visible) each time the bar moves
        view.progress.valueChanged.connect(lambda value: seen.append((value, not view.progress.isHidden())))
        drop_files(view, payload)
        qtbot.waitUntil(lambda: view.messages.count() == 1 and "📎 report.bin (3.0 MiB)" in texts(view)[0], timeout=WAIT_MS)
        assert view.messages.item(0).data(MARK) == "sent" and texts(view)[0].endswith("✓ sent")
        assert any(visible and 0 < value < payload.stat().st_size for value, visible in seen), seen
        assert view.progress.isHidden()

        got = cli(office["alice"], "file", "get", "bob", str(view.messages.item(0).data(SEQ)), "--out", str(tmp_path / "got"))
        assert got
        assert (tmp_path / "got").read_bytes() == payload.read_bytes()

        # alice sends a picture: it shows with its thumbnail once that has been fetched.
        cli(office["alice"], "file", "send", "bob", str(picture))
        qtbot.waitUntil(lambda: view.messages.count() == 2, timeout=WAIT_MS)
        assert "📎 img.png" in texts(view)[1]
        qtbot.waitUntil(lambda: not view.messages.item(1).icon().isNull(), timeout=WAIT_MS)
        size = view.messages.item(1).icon().availableSizes()[0]
        assert max(size.width(), size.height()) <= 320 and size.width() > size.height()


def test_history_loads_as_you_scroll_up(qtbot, office):
    lines = [f"note {n:03}" for n in range(1, 71)]
    sent_by_library(office["dave"], "bob", lines)
    # bob had them on this device and read them before: they come from history, not as new.
    cli(office["bob"], "listen", "--count", str(len(lines)), "--timeout", "20")
    cli(office["bob"], "read", "mark", "dave")

    with bobs_window(qtbot, office) as window:
        # One more arrives live before bob opens the chat: the ones before it still load.
        lines.append("note 071")
        cli(office["dave"], "send", "bob", lines[-1])
        qtbot.waitUntil(lambda: window.recent.unread("dave") == 1, timeout=WAIT_MS)
        window.open_conversation("dave")
        view = window.views["dave"]
        qtbot.waitUntil(lambda: view.messages.count() == 51, timeout=WAIT_MS)
        assert texts(view)[-1].endswith("note 071") and texts(view)[0].endswith("note 021")
        bar = view.messages.verticalScrollBar()
        assert bar.maximum() > 0 and bar.value() == bar.maximum()  # the latest is what shows

        bar.setValue(0)
        qtbot.waitUntil(lambda: view.messages.count() == 71, timeout=WAIT_MS)
        assert [t.rpartition("\n")[2] for t in texts(view)] == lines
        seqs = [view.messages.item(r).data(SEQ) for r in range(view.messages.count())]
        assert seqs == sorted(set(seqs))
        assert bar.value() > 0  # what the reader was looking at stayed in view

        # Scrolling to the top again asks for nothing more: there is nothing older.
        bar.setValue(bar.maximum())
        bar.setValue(0)
        qtbot.wait(300)
        assert view.messages.count() == 71


def test_a_notice_is_announced_shown_and_read(qtbot, office):
    with bobs_window(qtbot, office) as window:
        before = window.notices.list.count()
        sent = cli(
            office["alice"],
            "notice",
            "send",
            "Fire drill",
            "Friday at 10:00, meet in the car park.",
            "--department",
            str(office["department"]),
        )[0]
        qtbot.waitUntil(lambda: window.notices.list.count() == before + 1, timeout=WAIT_MS)
        assert window.tabs.tabText(2).endswith("(1)")
        assert window.tray.last_notification == ("Notice: Fire drill", "Friday at 10:00, meet in the car park.")
        assert window.tray.unread == 1 and window.windowTitle().endswith("(1)")

        window.tabs.setCurrentIndex(2)
        window.notices.list.setCurrentRow(0)
        assert window.notices.text.toPlainText() == "Fire drill\n\nFriday at 10:00, meet in the car park."
        assert "(" not in window.tabs.tabText(2) and window.tray.unread == 0

        def read_by_bob() -> bool:
            inbox = cli(office["bob"], "notice", "inbox")
            return any(n.get("id") == sent["id"] and n.get("read") for n in inbox)

        qtbot.waitUntil(read_by_bob, timeout=WAIT_MS)


def test_a_break_shows_to_others_and_silences_notifications(qtbot, office):
    with bobs_window(qtbot, office) as window:
        window.presence.activated.emit(window.presence.findData("break"))
        assert window.presence.currentData() == "break"

        def status_of_bob() -> str:
            return next((s.get("status") for s in cli(office["erin"], "status", "show", "bob") if s.get("user") == "bob"), "")

        qtbot.waitUntil(lambda: status_of_bob() == "break", timeout=WAIT_MS)
        before = window.tray.last_notification
        cli(office["erin"], "send", "bob", "are you there?")
        cli(office["erin"], "send", "bob", "the build is red", "--urgent")
        qtbot.wait(500)
        assert window.tray.last_notification == before
        assert window.recent.unread("erin") == 0  # held by the server until the break ends

        window.presence.activated.emit(window.presence.findData("online"))
        qtbot.waitUntil(lambda: status_of_bob() == "online", timeout=WAIT_MS)
        qtbot.waitUntil(lambda: window.recent.unread("erin") == 2, timeout=WAIT_MS)  # what was held
        cli(office["erin"], "send", "bob", "fixed it")
        qtbot.waitUntil(lambda: window.tray.last_notification == ("Erin Eng", "Erin Eng: fixed it"), timeout=WAIT_MS)
        assert window.recent.unread("erin") == 3


def test_a_new_group_shows_by_name_with_its_info(qtbot, office):
    with bobs_window(qtbot, office) as window:
        group = cli(office["frank"], "group", "create", "Release crew", "--member", "bob", "--member", "carol")[0]
        cli(office["frank"], "group", "announce", str(group["id"]), "Freeze on Thursday")
        target = f"#{group['id']}"

        def row():
            return next(
                (
                    window.recent.item(r)
                    for r in range(window.recent.count())
                    if window.recent.item(r).data(Qt.ItemDataRole.UserRole) == target
                ),
                None,
            )

        qtbot.waitUntil(lambda: row() is not None and row().text().startswith("Release crew"), timeout=WAIT_MS)
        window.recent.chosen.emit(target)
        view = window.views[target]
        assert view.title.text() == "<b>Release crew</b>"
        button = view.findChild(QPushButton, "group_info")
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: window.findChild(GroupInfoDialog) is not None, timeout=WAIT_MS)
        dialog = window.findChild(GroupInfoDialog)
        assert dialog.announcement.text().startswith("Freeze on Thursday\n— Frank Fu, ")
        members = sorted(dialog.members.item(r).text() for r in range(dialog.members.count()))
        assert members == ["Carol Chen", "Frank Fu (owner)", "李波"]
        dialog.reject()


def test_the_keyboard_finds_a_colleague_and_lands_in_the_input(qtbot, office):
    with bobs_window(qtbot, office) as window:
        window.tabs.setCurrentIndex(0)
        qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
        assert window.tabs.currentIndex() == 1 and QApplication.focusWidget() is window.contacts.search

        # Typed and Enter at once, before the server has answered: the first match opens.
        qtbot.keyClicks(window.contacts.search, "carol")
        qtbot.keyClick(window.contacts.search, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: window.current_target() == "carol", timeout=WAIT_MS)
        assert QApplication.focusWidget() is window.views["carol"].composer
        qtbot.keyClicks(window.views["carol"].composer, "hello")
        qtbot.keyClick(window.views["carol"].composer, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: window.views["carol"].messages.item(0).data(MARK) == "sent", timeout=WAIT_MS)
