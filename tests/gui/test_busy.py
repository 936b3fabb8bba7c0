"""gui/busy.py: slow work off the GUI thread, with a cancellable dialog only when it is slow."""
from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QProgressDialog, QPushButton

from gui import busy


def _dialogs() -> list[QProgressDialog]:
    return [w for w in QApplication.topLevelWidgets() if isinstance(w, QProgressDialog) and w.isVisible()]


def test_quick_work_returns_its_result_without_a_dialog(qapp):
    seen = []
    QTimer.singleShot(0, lambda: seen.append(_dialogs()))
    assert busy.run_busy(None, "x", lambda: 6 * 7) == 42
    assert not _dialogs()


def test_slow_work_shows_a_dialog_and_the_event_loop_keeps_running(qapp):
    ticks, shown = [], []
    timer = QTimer()
    timer.timeout.connect(lambda: (ticks.append(time.perf_counter()), shown.append(bool(_dialogs()))))
    timer.start(50)
    try:
        assert busy.run_busy(None, "Loading…", lambda: time.sleep(0.8) or "done", quiet_ms=100) == "done"
    finally:
        timer.stop()
    assert len(ticks) >= 8  # the GUI thread was not blocked while the work ran
    assert any(shown) and not _dialogs()


def test_errors_come_back_to_the_caller(qapp):
    def boom():
        time.sleep(0.2)
        raise ValueError("bad data")

    with pytest.raises(ValueError, match="bad data"):
        busy.run_busy(None, "x", boom, quiet_ms=50)


def test_cancel_returns_at_once_and_drops_the_result(qapp):
    def press_cancel():  # the dialog's own Cancel button, as a person would
        for d in _dialogs():
            next(b for b in d.findChildren(QPushButton) if "Cancel" in b.text()).click()

    QTimer.singleShot(300, press_cancel)
    t0 = time.perf_counter()
    with pytest.raises(busy.Cancelled):
        busy.run_busy(None, "x", lambda: time.sleep(2.0), quiet_ms=50)
    assert time.perf_counter() - t0 < 1.5
    assert any(t.name == "layerlab-busy" and t.daemon for t in threading.enumerate())  # left to finish
