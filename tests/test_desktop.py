"""The desktop window, driven offscreen against a real `corridor serve`.

Everything a user would do goes through the real widgets: the invite is pasted into the
first-run dialog, colleagues are found with the search box, messages are typed into the input
and sent with Enter, and what the test checks is what the window shows (the connection label,
the marks on messages, the unread badges). The other side of each conversation is a real CLI
client in its own process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest.importorskip("PySide6")
from PySide6.QtCore import Qt
from PySide6.QtGui import QInputMethodEvent
from PySide6.QtWidgets import QApplication

from corridor.client.desktop.app import Desktop
from corridor.client.desktop.chat_view import MARK, ChatView

from .cli_helpers import RunningServer, admin, employee, free_port, run

WAIT_MS = 20_000
PASSWORD = "long-enough-pw"


@pytest.fixture
def office(tmp_path: Path):
    """A server advertised on 127.0.0.1 (mDNS stays on this machine), with alice and carol
    enrolled on the CLI and an invite for bob, who will use the desktop."""
    data = tmp_path / "data"
    port = free_port()
    init = run("init", str(data), "--org", "Example Ltd", "--listen", f"127.0.0.1:{port}", "--json")
    assert init.returncode == 0, init.stderr
    server = RunningServer(data)
    servers = [server]
    try:
        department = admin(data, "department", "add", "工程部")["id"]
        alice = employee(data, tmp_path, "alice", "王丽")
        carol = employee(data, tmp_path, "carol", "Carol Chen")
        invite = admin(data, "user", "add", "bob", "--name", "李波")["invite"]
        for user in ("alice", "bob", "carol"):
            admin(data, "user", "set", user, "--department", str(department), "--title", "Engineer")
        yield {"data": data, "server": servers, "alice": alice, "carol": carol, "invite": invite}
    finally:
        for running in {server, *servers}:
            running.kill()  # also the one the test restarted


def cli(profile: str, *args: str) -> list[dict]:
    result = run(*args, "--profile", profile, "--json")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def type_chinese(widget, pinyin: str, text: str) -> None:
    """Type as a Chinese input method does: pinyin shown as preedit, then the characters
    committed (QTest's key clicks know only Latin-1 keys)."""
    QApplication.sendEvent(widget, QInputMethodEvent(pinyin, []))
    commit = QInputMethodEvent()
    commit.setCommitString(text)
    QApplication.sendEvent(widget, commit)


def texts(view: ChatView) -> list[str]:
    return [view.messages.item(row).text() for row in range(view.messages.count())]


def start_desktop(qtbot, profile: Path) -> Desktop:
    desktop = Desktop(profile, interfaces=["127.0.0.1"])
    ended = []
    desktop.start(lambda: ended.append(True))
    desktop.ended = ended
    return desktop


def stop_desktop(qtbot, desktop: Desktop) -> None:
    desktop.quit()
    qtbot.waitUntil(lambda: bool(desktop.ended), timeout=WAIT_MS)


def enroll_through_dialog(qtbot, desktop: Desktop, invite: str) -> None:
    qtbot.waitUntil(lambda: desktop.enroll_dialog is not None, timeout=WAIT_MS)
    dialog = desktop.enroll_dialog
    # The first run finds the company's server on the LAN by mDNS and recognises it.
    port = invite.split("/")[2].rpartition(":")[2]
    qtbot.waitUntil(
        lambda: any(f"Example Ltd — 127.0.0.1:{port}" in dialog.servers.item(i).text() for i in range(dialog.servers.count())),
        timeout=WAIT_MS,
    )
    qtbot.keyClicks(dialog.invite, invite)
    qtbot.waitUntil(lambda: "matches the invite" in (dialog.servers.currentItem() or dialog.invite).text(), timeout=WAIT_MS)
    qtbot.keyClicks(dialog.password, PASSWORD)
    qtbot.keyClicks(dialog.again, PASSWORD)
    dialog.buttons.accepted.emit()
    qtbot.waitUntil(lambda: desktop.window is not None, timeout=WAIT_MS)


def save_screenshot(window, tmp_path: Path) -> None:
    """The main window with this real conversation, as the README shows it: saved for every
    run, and into $CORRIDOR_SCREENSHOTS (docs/images) when set, which is how the committed
    picture was made."""
    window.tabs.setCurrentIndex(0)
    QApplication.processEvents()
    image = window.grab().toImage()
    assert image.width() >= 900 and not image.isNull()
    targets = [tmp_path / "desktop.png"]
    if os.environ.get("CORRIDOR_SCREENSHOTS"):
        targets.append(Path(os.environ["CORRIDOR_SCREENSHOTS"]) / "desktop.png")
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        assert image.save(str(target)), target


def online(desktop: Desktop) -> bool:
    return desktop.window is not None and desktop.window.connection.property("state") == "online"


def test_enroll_chat_unread_and_survive_a_restart(qtbot, office, tmp_path):
    desktop = start_desktop(qtbot, tmp_path / "bob-desktop")
    try:
        enroll_through_dialog(qtbot, desktop, office["invite"])
        window = desktop.window
        qtbot.waitUntil(lambda: online(desktop), timeout=WAIT_MS)
        assert "bob" in window.connection.text()

        # The org tree shows the department and its people; search finds alice by pinyin.
        qtbot.waitUntil(lambda: window.contacts.tree.topLevelItemCount() > 0, timeout=WAIT_MS)
        engineering = window.contacts.tree.topLevelItem(0)
        assert engineering.text(0) == "工程部"
        assert sorted(engineering.child(i).text(0) for i in range(engineering.childCount())) == [
            "Carol Chen · Engineer",
            "李波 · Engineer",
            "王丽 · Engineer",
        ]
        window.tabs.setCurrentIndex(1)
        qtbot.keyClicks(window.contacts.search, "wangli")
        qtbot.waitUntil(lambda: window.contacts.results.topLevelItemCount() == 1, timeout=WAIT_MS)
        assert window.contacts.results.topLevelItem(0).text(0).startswith("王丽")
        qtbot.keyClick(window.contacts.search, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: window.current_target() == "alice", timeout=WAIT_MS)

        # Typed and sent with Enter: marked sent once stored, and alice's client receives it.
        view = window.views["alice"]
        type_chinese(view.composer, "zhongwu", "中午")
        assert view.composer.toPlainText() == "中午"  # the IME's Enter confirmed a word, sent nothing
        type_chinese(view.composer, "yiqichifanma", "一起吃饭吗")
        qtbot.keyClick(view.composer, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: view.messages.count() == 1 and view.messages.item(0).data(MARK) == "sent", timeout=WAIT_MS)
        assert view.composer.toPlainText() == ""
        got = cli(office["alice"], "listen", "--count", "1", "--timeout", "15")
        assert [m["text"] for m in got if m.get("type") == "message"] == ["中午一起吃饭吗"]

        # Her client had it (and said so): delivered, not yet read.
        qtbot.waitUntil(lambda: view.messages.item(0).data(MARK) == "delivered", timeout=WAIT_MS)
        assert texts(view)[0].endswith("✓✓ delivered")

        # alice reads it: bob's message shows read; her answer appears in the open chat.
        cli(office["alice"], "read", "mark", "bob")
        qtbot.waitUntil(lambda: view.messages.item(0).data(MARK) == "read", timeout=WAIT_MS)
        cli(office["alice"], "send", "bob", "好的 12点见")
        qtbot.waitUntil(lambda: view.messages.count() == 2, timeout=WAIT_MS)
        assert texts(view)[1].startswith("王丽") and texts(view)[1].endswith("好的 12点见")
        save_screenshot(window, tmp_path)

        # carol writes while bob looks at alice's chat: an unread badge, cleared by opening it.
        cli(office["carol"], "send", "bob", "Standup moved to 10:30")
        qtbot.waitUntil(lambda: window.recent.unread("carol") == 1, timeout=WAIT_MS)
        assert "(1)" in window.tabs.tabText(0) and window.tray.unread == 1
        assert window.tray.last_notification == ("Carol Chen", "Carol Chen: Standup moved to 10:30")
        window.tabs.setCurrentIndex(0)
        item = next(
            window.recent.item(r) for r in range(window.recent.count()) if window.recent.item(r).text().startswith("Carol")
        )
        window.recent.chosen.emit(item.data(Qt.ItemDataRole.UserRole))
        qtbot.waitUntil(lambda: window.recent.unread("carol") == 0, timeout=WAIT_MS)
        assert window.tray.unread == 0 and "(" not in window.tabs.tabText(0)

        # The server restarts: the window says so, a message typed meanwhile waits and is sent.
        office["server"][0].stop()
        qtbot.waitUntil(lambda: window.connection.property("state") == "offline", timeout=WAIT_MS)
        window.open_conversation("alice")
        qtbot.keyClicks(view.composer, "Still on for lunch?")
        qtbot.keyClick(view.composer, Qt.Key.Key_Return)
        assert view.messages.item(view.messages.count() - 1).data(MARK) == "sending"
        office["server"][0] = RunningServer(office["data"])
        qtbot.waitUntil(lambda: online(desktop), timeout=WAIT_MS)
        qtbot.waitUntil(lambda: view.messages.item(view.messages.count() - 1).data(MARK) == "sent", timeout=WAIT_MS)
        got = cli(office["alice"], "listen", "--count", "2", "--timeout", "15")  # her own reply, then this
        assert [m["text"] for m in got if m.get("type") == "message" and m["sender"] == "bob"] == ["Still on for lunch?"]
        assert view.messages.count() == 3
    finally:
        stop_desktop(qtbot, desktop)
