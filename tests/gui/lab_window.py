"""What the lab GUI tests share: a main window with the lab UI (no training process), the modal
dialogs replaced by a log that answers as told, and waiting for the lab's live check."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QApplication

from gui import dialogs, theme
from gui.document import Document
from gui.lab_panel import install_lab_ui
from gui.main_window import MainWindow


class Dialogs:
    def __init__(self):
        self.errors: list[tuple[str, str]] = []
        self.infos: list[tuple[str, str]] = []
        self.open_path = ""
        self.save_path = ""
        self.student = {"name": "Ada Lovelace", "id": "s001"}


@pytest.fixture
def dlg(monkeypatch, tmp_path):
    log = Dialogs()
    monkeypatch.setenv("LAYERLAB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("LAYERLAB_RECOVERY_DIR", str(tmp_path / "recovery"))
    monkeypatch.setattr(dialogs, "show_error", lambda parent, title, text: log.errors.append((title, text)))
    monkeypatch.setattr(dialogs, "show_info", lambda parent, title, text: log.infos.append((title, text)))
    monkeypatch.setattr(dialogs, "ask_yes_no", lambda *a, **k: True)
    monkeypatch.setattr(dialogs, "ask_save_changes", lambda *a, **k: "discard")
    monkeypatch.setattr(dialogs, "get_open_path", lambda *a, **k: log.open_path)
    monkeypatch.setattr(dialogs, "get_save_path", lambda *a, **k: log.save_path)
    monkeypatch.setattr(dialogs, "get_student", lambda *a, **k: log.student)
    return log


def make_window(qtbot, document: Document | None = None) -> MainWindow:
    theme.apply_theme("light", persist=False)
    w = MainWindow(document or Document(), extensions=[install_lab_ui], autosave=False)
    w.resize(1280, 800)
    w.show()
    return w


def close(w) -> None:
    if getattr(w, "_test_closed", False):
        return
    w._test_closed = True
    w._close_confirmed = True
    w.lab.shutdown()
    w.close()
    w.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.DeferredDelete)


@pytest.fixture
def win(qtbot, dlg):
    w = make_window(qtbot)
    yield w
    close(w)


def settle(qtbot, w, timeout=30_000) -> None:
    """Let the document flush and the lab's check finish."""
    w.document.flush()
    qtbot.waitUntil(lambda: not w.lab.busy, timeout=timeout)
    QApplication.processEvents()
