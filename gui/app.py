"""Starting the GUI: ``run_app(argv, project_path=None) -> exit code``.

Creates the QApplication, applies the saved theme, opens the given project (or
the default starter lab), offers to recover an autosave left by a crash, installs
the parts beyond the editor (training, evaluation/explain, export, labs; see
``default_extensions``) and runs the event loop.
"""
from __future__ import annotations

import os
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


def install_training(window) -> None:
    """The training panel, the timeline and the live views (gui/training)."""
    from gui.training import install_training_ui

    install_training_ui(window)


def install_export(window) -> None:
    """File > Export… and File > Import model… (gui/export_dialog.py)."""
    from gui.export_dialog import install_export_ui

    install_export_ui(window)


def install_insight(window) -> None:
    """The Evaluation and Explain panels (gui/insight); they use the training controller, so they come after it."""
    from gui.insight import install_insight_ui

    install_insight_ui(window)


def install_lab(window) -> None:
    """The Lab panel, File > Labs / Open lab / Submit lab, and instructor mode (gui/lab_panel.py)."""
    from gui.lab_panel import install_lab_ui

    install_lab_ui(window)


def default_extensions() -> list[Callable]:
    """The parts of the window beyond the editor; each imports its modules when it is installed."""
    return [install_training, install_insight, install_export, install_lab]


def paint_on_one_thread() -> None:
    """Keep Qt's painting on the GUI thread: no helper threads for large fills and images.

    Qt splits big fills and image draws over a thread pool of its own, one thread per core,
    and the GUI thread waits for them.  On a machine with few cores, those threads run on the
    core that trains: profiled during a live run on 2 cores, the GUI thread spent a quarter of
    its busy time waiting for them, and the trainer lost 4-6 % to them (bench/live_views.py,
    docs/BENCHMARKS.md).  The views are small enough to paint on one thread.  Qt reads the
    variable once, when the pool is first wanted, so this runs before the application exists."""
    os.environ.setdefault("QT_NO_GUI_THREADPOOL", "1")


def create_application(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance()
    if app is None:
        paint_on_one_thread()
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
    answer = dialogs.ask_recover(window, latest.describe())
    if answer != "recover":
        if answer == "discard":  # unanswered, it is offered again at the next start
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


class StartupProbe:
    """For bench/startup.py: with LAYERLAB_STARTUP_PROBE=FILE, the app writes when its window was first
    painted and when it was ready to train (time.monotonic(), comparable across processes), then quits."""

    def __init__(self, window, path: str):
        from PySide6.QtCore import QObject

        self.window, self.path = window, path
        self.times: dict[str, float] = {}

        class PaintWatch(QObject):
            def eventFilter(watch, obj, event):  # noqa: N805 - the filter object, not the probe
                from PySide6.QtCore import QEvent

                if event.type() == QEvent.Paint and "window_painted" not in self.times:
                    from PySide6.QtCore import QTimer

                    QTimer.singleShot(0, lambda: self.mark("window_painted"))  # after this paint is done
                return False

        self._watch = PaintWatch(window)
        window.view.viewport().installEventFilter(self._watch)  # the canvas: the last big part to paint

    @classmethod
    def from_environment(cls, window):
        import os

        path = os.environ.get("LAYERLAB_STARTUP_PROBE")
        return cls(window, path) if path else None

    def mark(self, what: str) -> None:
        import time

        self.times.setdefault(what, time.monotonic())
        if {"window_painted", "ready_to_train"} <= set(self.times):
            import json

            with open(self.path, "w") as f:
                json.dump(self.times, f)
            QApplication.instance().quit()

    def loaded(self) -> None:
        training = getattr(self.window, "training", None)
        if training is None:
            self.mark("ready_to_train")
            return
        worker = training.worker
        if worker.is_ready:
            self.mark("ready_to_train")
        else:
            worker.ready.connect(lambda _info: self.mark("ready_to_train"))


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


LOADING_MESSAGE = "Loading PyTorch… the editor works already; training, the code and the data preview follow."


def run_app(argv: list[str], project_path: str | None = None) -> int:
    """The editor is on screen before torch has loaded (it needs none of it); torch loads in the
    background (gui/torch_loader.py), and the parts that need it are installed when it is in."""
    from gui.quit_signals import install_quit_signals
    from gui.torch_loader import TorchLoader, set_loader

    from PySide6.QtCore import QTimer

    app = create_application(argv)
    theme.apply_theme(theme.saved_theme_name(), app, persist=False)
    loader = TorchLoader(app)  # started once the window is painted: until then it has the CPU to itself
    set_loader(loader)
    try:
        window = build_window(project_path, extensions=[])
    except LayerLabError as exc:  # e.g. the bundled starter is missing from a broken install
        dialogs.show_error(None, APP_NAME, str(exc))
        return 2
    install_quit_signals(window)  # Ctrl+C closes as the window's close button does; SIGTERM keeps unsaved work
    window.show()
    window.statusBar().showMessage(LOADING_MESSAGE)
    probe = StartupProbe.from_environment(window)
    QTimer.singleShot(0, loader.start)  # after the first paint: the event loop paints before timers fire

    def torch_in() -> None:
        window.install_extensions(default_extensions())
        window.statusBar().showMessage(f"PyTorch loaded in {loader.seconds:.1f} s.", 4000)
        if probe is not None:
            probe.loaded()

    loader.when_loaded(torch_in)
    loader.failed.connect(lambda err: dialogs.show_error(window, APP_NAME, f"PyTorch could not be loaded ({err}); "
                                                          "the editor works, but nothing can be trained."))
    # asked from the event loop, so that a quit signal while it is open ends the app too
    QTimer.singleShot(0, lambda: offer_recovery(window))
    previous = sys.excepthook
    sys.excepthook = _excepthook_for(window, previous)
    try:
        return app.exec()
    finally:
        sys.excepthook = previous


if __name__ == "__main__":
    sys.exit(run_app(sys.argv, sys.argv[1] if len(sys.argv) > 1 else None))
