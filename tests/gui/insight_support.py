"""Shared by the insight GUI tests: the real main window with the training and insight UIs, driven
as a person drives it (docks raised to be seen, buttons clicked, cells clicked with the mouse)."""
from __future__ import annotations

import time

import numpy as np
import torch
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QScrollArea

from engine.project import load_starter
from gui import dialogs, theme
from gui.document import Document
from gui.insight import install_insight_ui
from gui.main_window import MainWindow
from gui.training import install_training_ui


def quiet_dialogs(mp) -> None:
    """No modal dialog may wait for a click in a test."""
    for name in ("show_error", "show_info"):
        mp.setattr(dialogs, name, lambda *a, **k: None)
    mp.setattr(dialogs, "ask_yes_no", lambda *a, **k: True)
    mp.setattr(dialogs, "ask_save_changes", lambda *a, **k: "discard")
    mp.setattr(dialogs, "ask_stop_run", lambda *a, **k: True)


def make_window(qapp, starter: str = "iris-mlp", extensions=None, install_later=()):
    """The window on ``starter`` with the training and insight UIs (or ``extensions``; and
    ``install_later`` once it is shown, as the app installs what needs torch), its training process
    ready."""
    torch.set_num_threads(1)
    theme.apply_theme("light", persist=False)
    w = MainWindow(Document(load_starter(starter)), autosave=False,
                   extensions=extensions if extensions is not None else [install_training_ui, install_insight_ui])
    w.resize(1280, 800)
    w.show()
    if install_later:
        QApplication.processEvents()
        w.install_extensions(install_later)
    deadline = time.monotonic() + 60
    while not w.training.worker.is_ready and time.monotonic() < deadline:
        qapp.processEvents()
        time.sleep(0.01)
    assert w.training.worker.is_ready
    return w


def close(w) -> None:
    w.insight.shutdown()
    for panel in (w.insight.evaluation, w.insight.explain):
        panel.runner.wait(10)
    w._close_confirmed = True
    if getattr(w, "lab", None) is not None:
        w.lab.shutdown()
    w.training.shutdown()
    w.close()
    w.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.DeferredDelete)


def settings(ctl, **values) -> None:
    base = {"device": "auto", "loss": "auto", "optimizer": "adam", "lr": 0.01, "batch_size": 16, "epochs": 3,
            "schedule": "none", "seed": 0}
    ctl.panel.set_settings({**base, **values})


def train(qtbot, w, timeout=60_000, **values) -> None:
    ctl = w.training
    settings(ctl, **values)
    assert ctl.train()
    qtbot.waitUntil(lambda: not ctl.worker.busy, timeout=timeout)
    ctl.flush_frame()


def fresh_weights(w) -> None:
    """Seeded initial weights: a model to evaluate without training (a confusion matrix is one)."""
    assert w.training.reset_weights()


def raise_dock(qtbot, dock) -> None:
    dock.raise_()
    QApplication.processEvents()
    panel = dock.widget().widget() if isinstance(dock.widget(), QScrollArea) else dock.widget()
    qtbot.waitUntil(lambda: panel.isVisible() and not panel.visibleRegion().isEmpty(),
                    timeout=5000)


def wait_evaluated(qtbot, panel, epoch="any", timeout=30_000):
    """Wait until the panel shows an evaluation (of ``epoch``'s weights when given; None = current)."""
    def done():
        ev = panel.evaluation
        return ev is not None and not panel.runner.busy and (epoch == "any" or ev.epoch == epoch)
    qtbot.waitUntil(done, timeout=timeout)
    return panel.evaluation


def wait_idle(qtbot, panel, timeout=30_000) -> None:
    qtbot.waitUntil(lambda: not panel.runner.busy, timeout=timeout)


def click_cell(view, row: int, col: int) -> None:
    """A real left click in the middle of confusion cell (row, col)."""
    vb = view.plot.getPlotItem().getViewBox()
    scene_pt = vb.mapViewToScene(QPointF(col + 0.5, row + 0.5))
    pt = view.plot.mapFromScene(scene_pt)
    QTest.mouseClick(view.plot.viewport(), Qt.LeftButton, Qt.NoModifier, QPoint(int(pt.x()), int(pt.y())))
    QApplication.processEvents()


def predictions(ready, x: torch.Tensor) -> np.ndarray:
    """The model's predicted classes, computed here (not by the code under test)."""
    with torch.no_grad():
        out = ready.module(x)
    return (out[:, 0] > 0).long().numpy() if out.shape[1] == 1 else out.argmax(1).numpy()
