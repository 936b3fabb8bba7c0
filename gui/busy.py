"""Run slow work (loading a big image folder) off the GUI thread, with a progress dialog.

``run_busy`` is called like a plain function and returns its result, so callers stay simple;
meanwhile the window keeps painting.  Work that ends within ``quiet_ms`` shows nothing at all;
longer work shows a modal, cancellable "busy" dialog.  A cancelled job's (daemon) thread runs to
its end in the background and its result is dropped.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from PySide6.QtCore import QEventLoop, QObject, Qt, Signal
from PySide6.QtWidgets import QProgressDialog, QWidget


class Cancelled(Exception):
    """The user pressed Cancel."""


class _Job(QObject):
    """``fn`` on a daemon thread (a QThread still running at exit would abort the process, and a
    cancelled load may outlive the window); ``done`` reaches the GUI thread queued."""

    done = Signal()

    def __init__(self, fn: Callable[[], Any]):
        super().__init__()
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="layerlab-busy", daemon=True)

    def _run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the GUI thread as is
            self.error = e
        try:
            self.done.emit()
        except RuntimeError:  # a cancelled job outlived its QObject (the app is closing): nobody waits
            pass

    @property
    def finished(self) -> bool:
        return not self.thread.is_alive()


def run_busy(parent: QWidget | None, text: str, fn: Callable[[], Any], quiet_ms: int = 300) -> Any:
    """``fn()`` on a worker thread; its result, or its exception re-raised here, or ``Cancelled``."""
    job = _Job(fn)
    job.thread.start()
    job.thread.join(quiet_ms / 1000.0)
    if job.finished:  # quick work: no dialog, no flicker
        return _outcome(job)
    dialog = QProgressDialog(text, "Cancel", 0, 0, parent)  # 0..0: a busy indicator
    dialog.setWindowTitle("Please wait")
    dialog.setWindowModality(Qt.WindowModal)
    dialog.setMinimumDuration(0)
    loop = QEventLoop()
    job.done.connect(loop.quit, Qt.QueuedConnection)
    dialog.canceled.connect(loop.quit)
    dialog.show()
    if not job.finished:
        loop.exec()
    cancelled = dialog.wasCanceled() and not job.finished
    dialog.close()
    dialog.deleteLater()
    if cancelled:
        raise Cancelled  # the thread runs to its end on its own; its result is dropped
    job.thread.join()
    return _outcome(job)


def _outcome(job: _Job) -> Any:
    if job.error is not None:
        raise job.error
    return job.result
