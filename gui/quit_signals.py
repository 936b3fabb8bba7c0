"""Quit signals from outside the window: Ctrl+C in the terminal, ``kill``, a logout.

Python runs its signal handlers only between bytecodes, and Qt's event loop runs in C++, so a
plain handler would wait for the next Python slot: Ctrl+C did nothing, and SIGTERM's default
ended the process on the spot, losing unsaved work and leaving the training process's
semaphores behind (multiprocessing warned of them).  Here the C-level handler writes to a
socket (``signal.set_wakeup_fd``) that a ``QSocketNotifier`` watches, so the handlers run at once,
in the GUI thread, where they may touch widgets:

- SIGINT (Ctrl+C) closes the window as its close button does: unsaved work is asked about, and
  Cancel keeps the app open.  A second Ctrl+C, while that question is open, is the next case.
- SIGTERM and SIGHUP (``kill``, a logout, the terminal closed) ask nothing: unsaved work goes into
  the recovery file, which is kept and offered at the next start, and the app quits cleanly.
"""
from __future__ import annotations

import signal
import socket
import sys

from PySide6.QtCore import QObject, QSocketNotifier, QTimer
from PySide6.QtWidgets import QApplication

#: signals that end the session without asking (SIGHUP does not exist on Windows)
ENDING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class QuitSignals(QObject):
    """Installed for the app's lifetime; ``uninstall`` puts back what was there (tests)."""

    def __init__(self, window, quit=None, parent=None):
        super().__init__(parent)
        self.window = window
        # QApplication.exit ends a question's event loop too, not only the main one
        self._quit = quit or QApplication.instance().exit
        self._asking = False  # a Ctrl+C's question is open
        self._reader, self._writer = socket.socketpair()
        for sock in (self._reader, self._writer):
            sock.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno())
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, *ENDING)}
        self._notifier = QSocketNotifier(self._reader.fileno(), QSocketNotifier.Read, self)
        self._notifier.activated.connect(self._drain)

    def _drain(self, *_args) -> None:
        """Python has queued the handler when this runs; reading the bytes lets it run now."""
        try:
            while self._reader.recv(64):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _handle(self, signum, _frame) -> None:
        # the work runs from the event loop: a question asked inside a signal handler would nest
        # its event loop in it
        if signum == signal.SIGINT and not self._asking:
            QTimer.singleShot(0, self._close_asking)
        else:
            QTimer.singleShot(0, lambda: self._end(signal.Signals(signum).name))

    def _close_asking(self) -> None:
        self._asking = True
        try:
            self.window.close()  # asks about unsaved work, as the close button does; Cancel keeps it open
        finally:
            self._asking = False

    def _end(self, name: str) -> None:
        kept = self.window.end_without_asking()
        if sys.stderr is not None:  # none under pythonw
            sys.stderr.write(f"LayerLab: quit on {name}"
                             + (f"; unsaved work is kept in {kept}, offered at the next start.\n" if kept else ".\n"))
        self._quit(0)

    def uninstall(self) -> None:
        self._notifier.setEnabled(False)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(self._previous_fd)
        self._reader.close()
        self._writer.close()


def install_quit_signals(window) -> QuitSignals:
    return QuitSignals(window, parent=QApplication.instance())
