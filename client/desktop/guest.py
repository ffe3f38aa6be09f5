"""Trio inside Qt's event loop (trio's *guest mode*).

Qt owns the main thread: widgets must be touched from it, and its event loop must keep
running for the window to repaint. Trio's guest mode lets both share that thread: trio runs
its tasks in short ticks that it asks us to schedule with `run_sync_soon_threadsafe`, and waits
for I/O in a helper thread of its own. We schedule each tick by posting a Qt event to an object
on the main thread, so trio code and widget code never run at the same time and need no locks.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import outcome
import trio
from PySide6.QtCore import QCoreApplication, QEvent, QObject

log = logging.getLogger("corridor.desktop")
_TICK = QEvent.Type(QEvent.registerEventType())


class _Tick(QEvent):
    def __init__(self, fn: Callable[[], object]):
        super().__init__(_TICK)
        self.fn = fn


class _Runner(QObject):
    """Runs posted trio ticks on the Qt thread."""

    def event(self, event: QEvent) -> bool:
        if event.type() == _TICK:
            event.fn()
            return True
        return super().event(event)


def start_trio(main: Callable[[], Awaitable[object]], done: Callable[[outcome.Outcome], None]) -> None:
    """Start `main()` as trio's guest on the running (or about to run) Qt event loop; `done`
    gets its outcome on the Qt thread when it ends."""
    runner = _Runner()

    def post(fn: Callable[[], object]) -> None:
        QCoreApplication.postEvent(runner, _Tick(fn))

    def finished(result: outcome.Outcome) -> None:
        runner.deleteLater()
        done(result)

    # The runner must live as long as trio does: it is kept alive by the closures above.
    trio.lowlevel.start_guest_run(
        main, run_sync_soon_threadsafe=post, done_callback=finished, host_uses_signal_set_wakeup_fd=False
    )


class Tasks:
    """Starts trio tasks from Qt code.

    A Qt slot run by a click is not inside one of trio's ticks, where trio's own calls work;
    `TrioToken.run_sync_soon` is the one trio call made for that, so every start goes
    through it. A task that fails with anything but cancellation is logged and reported to
    `on_error`: one broken request must not close the window."""

    def __init__(self, nursery: trio.Nursery, on_error: Callable[[BaseException], None]):
        self._nursery = nursery
        self._token = trio.lowlevel.current_trio_token()
        self._on_error = on_error

    def start(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        """Run `fn(*args)` as a trio task, soon."""

        async def guarded() -> None:
            try:
                await fn(*args)
            except Exception as exc:  # reported, and the window keeps working
                log.exception("a background task failed")
                self._on_error(exc)

        def spawn() -> None:
            if not self._nursery.cancel_scope.cancel_called:
                self._nursery.start_soon(guarded)

        try:
            self._token.run_sync_soon(spawn)
        except trio.RunFinishedError:
            pass  # the window is closing: nothing more will run

    def call(self, fn: Callable[[], object]) -> None:
        """Run a plain function inside trio (to set a trio.Event from Qt code, say)."""
        try:
            self._token.run_sync_soon(fn)
        except trio.RunFinishedError:
            pass
