"""`corridor desktop`: the window's life, from the first-run enrollment to quitting.

Qt runs the main thread's event loop; everything on the network side runs as trio's guest in
it (`guest.py`). `Desktop.start()` returns at once, which is what lets tests drive a real
window: they pump Qt's loop (pytest-qt) while the desktop runs, and `run()` is just
`start()` plus Qt's `exec()` for the real program."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import outcome
import trio
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QApplication, QDialog, QMessageBox

from corridor.protocol.errors import CorridorError

from ..profile import Profile
from . import i18n
from .enroll_dialog import EnrollDialog
from .guest import Tasks, start_trio
from .icons import app_icon
from .local_store import LocalStore
from .main_window import MainWindow
from .session import Session
from .style import STYLE_SHEET

log = logging.getLogger("corridor.desktop")


def is_enrolled(profile: Profile) -> bool:
    """Whether the profile holds a device credential."""
    try:
        profile.credential()
    except CorridorError:
        return False
    return True


class Desktop(QObject):
    """One running desktop client for a profile directory."""

    def __init__(self, profile_dir: Path, *, interfaces: list[str] | None = None, discover: bool = True):
        super().__init__()
        self.profile = Profile(profile_dir)
        self.store = LocalStore(self.profile)
        self.interfaces, self.discover = interfaces, discover
        self.enroll_dialog: EnrollDialog | None = None
        self.window: MainWindow | None = None
        self.session: Session | None = None
        self.language = ""
        self.outcome: outcome.Outcome | None = None
        self._done: Callable[[], None] = lambda: None
        self._tasks: Tasks | None = None
        self._quit: trio.Event | None = None

    def start(self, done: Callable[[], None] | None = None) -> None:
        """Show the first window and run in the background of Qt's event loop; `done` is
        called when the desktop has ended (window closed, or enrollment cancelled)."""
        app = QApplication.instance()
        app.setWindowIcon(app_icon())
        app.setStyleSheet(STYLE_SHEET)
        app.setQuitOnLastWindowClosed(False)  # trio ends first, then it quits Qt (_finished)
        self.language = i18n.install(self.store.setting("language"))
        self._done = done or (lambda: None)
        start_trio(self._main, self._finished)

    async def _main(self) -> None:
        self._quit = trio.Event()
        async with trio.open_nursery() as nursery:
            self._tasks = Tasks(nursery, self._failed_task)
            if not is_enrolled(self.profile) and not await self._enroll():
                return
            self.session = Session(self.profile, self._tasks, interfaces=self.interfaces, discover=self.discover)
            self._open_window()
            nursery.start_soon(self.session.run)
            await self._quit.wait()
            nursery.cancel_scope.cancel()

    async def _enroll(self) -> bool:
        finished = trio.Event()
        self.enroll_dialog = EnrollDialog(self.profile, self._tasks, self.interfaces)
        self.enroll_dialog.finished.connect(lambda _: self._tasks.call(finished.set))
        self.enroll_dialog.show()
        await finished.wait()
        accepted = self.enroll_dialog.result() == QDialog.DialogCode.Accepted
        self.enroll_dialog.deleteLater()
        self.enroll_dialog = None
        return accepted

    def _open_window(self) -> None:
        self.window = MainWindow(self.session, self.store)
        self.window.closed.connect(self.quit)
        self.window.language_chosen.connect(self.switch_language)
        self.window.show()

    def switch_language(self, choice: str) -> None:
        """Store the language setting and redraw the window in it."""
        self.store.set_setting("language", choice)
        self.language = i18n.install(choice)
        old = self.window
        old.closed.disconnect(self.quit)
        self._open_window()
        self.window.setGeometry(old.geometry())
        old.close()
        old.deleteLater()

    def quit(self) -> None:
        """End the desktop (the outbox keeps anything not yet sent)."""
        if self.enroll_dialog is not None:
            self.enroll_dialog.reject()
        if self._tasks is not None and self._quit is not None:
            self._tasks.call(self._quit.set)

    def _failed_task(self, exc: BaseException) -> None:
        if self.window is not None:
            self.window.statusBar().showMessage(f"{type(exc).__name__}: {exc}", 10_000)

    def _finished(self, result: outcome.Outcome) -> None:
        self.outcome = result
        if isinstance(result, outcome.Error):
            log.error("the desktop stopped on an error", exc_info=result.error)
            QMessageBox.critical(None, "Corridor", f"Corridor stopped: {result.error!r}")
        if self.window is not None:
            self.window.close()
        self.store.close()
        self.profile.close()
        self._done()


def run(profile_dir: Path, *, interfaces: list[str] | None = None, discover: bool = True) -> int:
    """Run the desktop until its window is closed; returns the exit code."""
    app = QApplication.instance() or QApplication(["corridor"])
    app.setApplicationName("Corridor")
    desktop = Desktop(profile_dir, interfaces=interfaces, discover=discover)
    desktop.start(app.quit)
    app.exec()
    return 1 if isinstance(desktop.outcome, outcome.Error) else 0
