"""Starting the GUI: ``run_app(argv, project_path=None) -> exit code``.

Creates the QApplication, applies the saved theme, opens the given project (or
the default starter lab), offers to recover an autosave left by a crash, installs
optional extensions (the training UI, if ``gui.training`` provides
``install_training_ui``) and runs the event loop.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from engine.errors import LayerLabError
from engine.project import load_starter
from gui import dialogs, theme

APP_NAME = "LayerLab"


def default_extensions() -> list[Callable]:
    """``gui.training.install_training_ui`` when that package exists and defines it, and the export UI."""
    from gui.export_dialog import install_export_ui
    if importlib.util.find_spec("gui.training") is None:
        return [install_export_ui]
    try:
        module = importlib.import_module("gui.training")
    except Exception:
        traceback.print_exc()
        return [install_export_ui]
    fn = getattr(module, "install_training_ui", None)
    from gui.insight import install_insight_ui  # it needs the training controller, so it comes after it
    return ([fn, install_insight_ui] if callable(fn) else []) + [install_export_ui]


def create_application(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance()
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(list(argv or [APP_NAME]))
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    return app


def offer_recovery(window) -> bool:
    """If a previous session crashed, offer its autosave; returns True when one was recovered."""
    from gui.autosave import find_recoverable, load_recovered
    if window.autosaver is None:
        return False
    found = find_recoverable(window.autosaver.folder)
    if not found:
        return False
    latest, older = found[0], found[1:]
    for r in older:  # only the newest is offered; the rest are superseded
        r.discard()
    if not dialogs.ask_yes_no(window, "Recover unsaved work?",
                              f"LayerLab did not close properly last time. Recover {latest.describe()}?\n\n"
                              "Yes opens the recovered project (save it to keep it); No discards it."):
        latest.discard()
        return False
    try:
        project = load_recovered(latest)
    except LayerLabError as exc:
        dialogs.show_error(window, "Cannot recover", f"The autosave could not be read: {exc}")
        latest.discard()
        return False
    window.document.open_project(project, path=latest.original_path, modified=True)
    window.autosaver.adopt(latest)
    window.statusBar().showMessage("Recovered the autosaved project; save it to keep it.", 10000)
    return True


def build_window(project_path: str | None = None, extensions: list[Callable] | None = None):
    """The main window on ``project_path`` or the default starter lab (used by run_app and tests)."""
    from gui.document import Document
    from gui.main_window import MainWindow
    doc = Document(load_starter())
    window = MainWindow(doc, extensions=default_extensions() if extensions is None else extensions)
    if project_path:
        window.open_path(project_path, ask=False)
    return window


def _excepthook_for(window, previous):
    """An unexpected error in a slot must not lose work: autosave now, say so, keep running."""
    def hook(exc_type, exc, tb):
        traceback.print_exception(exc_type, exc, tb)
        try:
            saved = window.autosaver is not None and window.document.is_modified() and window.autosaver.save_now()
            window.statusBar().showMessage(
                "LayerLab hit an internal error (details on the console)"
                + ("; your work was autosaved." if saved else "."), 15000)
        except Exception:  # the window may be half torn down
            previous(exc_type, exc, tb)
    return hook


def run_app(argv: list[str], project_path: str | None = None) -> int:
    app = create_application(argv)
    theme.apply_theme(theme.saved_theme_name(), app, persist=False)
    try:
        window = build_window(project_path)
    except LayerLabError as exc:  # e.g. the bundled starter is missing from a broken install
        dialogs.show_error(None, APP_NAME, str(exc))
        return 2
    window.show()
    offer_recovery(window)
    previous = sys.excepthook
    sys.excepthook = _excepthook_for(window, previous)
    try:
        return app.exec()
    finally:
        sys.excepthook = previous


if __name__ == "__main__":
    sys.exit(run_app(sys.argv, sys.argv[1] if len(sys.argv) > 1 else None))
