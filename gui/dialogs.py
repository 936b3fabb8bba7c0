"""Every modal dialog the editor opens goes through these functions.

Tests replace them with ``monkeypatch.setattr(gui.dialogs, "show_error", ...)``, so
callers must look them up on the module (``dialogs.show_error(...)``), never import
the functions by name.
"""
from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox, QWidget


def show_error(parent: QWidget | None, title: str, text: str) -> None:
    """One clear sentence in a modal box (bad file, bad data...)."""
    QMessageBox.warning(parent, title, text)


def show_info(parent: QWidget | None, title: str, text: str) -> None:
    QMessageBox.information(parent, title, text)


def ask_yes_no(parent: QWidget | None, title: str, text: str) -> bool:
    answer = QMessageBox.question(parent, title, text, QMessageBox.Yes | QMessageBox.No, QMessageBox.Yes)
    return answer == QMessageBox.Yes


def ask_stop_run(parent: QWidget | None) -> bool:
    """A run is in progress and the project is about to go away: stop it (keeping its weights) or not."""
    box = QMessageBox(QMessageBox.Question, "Training is running",
                      "A training run is in progress. Stop it and keep the weights it has reached?",
                      QMessageBox.NoButton, parent)
    stop = box.addButton("Stop and keep the weights", QMessageBox.AcceptRole)
    box.addButton(QMessageBox.Cancel)
    box.setDefaultButton(stop)
    box.exec()
    return box.clickedButton() is stop


def ask_save_changes(parent: QWidget | None, name: str) -> str:
    """'save', 'discard' or 'cancel' for a document with unsaved changes."""
    box = QMessageBox(QMessageBox.Warning, "Unsaved changes",
                      f"“{name}” has unsaved changes. Save them before closing?",
                      QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, parent)
    box.setDefaultButton(QMessageBox.Save)
    answer = box.exec()
    return {QMessageBox.Save: "save", QMessageBox.Discard: "discard"}.get(answer, "cancel")


def get_open_path(parent: QWidget | None, title: str, filters: str, directory: str = "") -> str:
    """A chosen existing file, or '' when cancelled."""
    path, _ = QFileDialog.getOpenFileName(parent, title, directory, filters)
    return path


def get_save_path(parent: QWidget | None, title: str, filters: str, directory: str = "") -> str:
    path, _ = QFileDialog.getSaveFileName(parent, title, directory, filters)
    return path


def get_directory(parent: QWidget | None, title: str, directory: str = "") -> str:
    return QFileDialog.getExistingDirectory(parent, title, directory)


def exec_menu(menu, screen_pos) -> None:
    """Show a context menu modally (tests replace this to inspect and trigger its actions)."""
    menu.exec(screen_pos)


def get_item(parent: QWidget | None, title: str, label: str, items: list[str], current: int = 0) -> str | None:
    """One of ``items``, or None when cancelled."""
    item, ok = QInputDialog.getItem(parent, title, label, items, current, False)
    return item if ok else None
