"""The lab panel with the real training UI (issue 11, phase 2): a training run ticks a metric goal,
the views in front during the run count as opened, scrubbing the timeline is recorded, and the
lab's fixed settings stay greyed in the training panel whatever the run state.  One window (and
one training process) for the module.
"""
from __future__ import annotations

import time

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from engine.labs.progress import events  # noqa: E402
from gui import dialogs, theme  # noqa: E402
from gui.commands import InsertOnEdgeCommand, SetParamCommand  # noqa: E402
from gui.document import Document  # noqa: E402
from gui.lab_panel import MARK_MET, MARK_OPEN, install_lab_ui  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402
from gui.training import install_training_ui  # noqa: E402
from gui.training.panel import TrainingPanel  # noqa: E402


@pytest.fixture(scope="module")
def win(qapp, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("labtrain")
    mp.setenv("LAYERLAB_CONFIG_DIR", str(tmp / "config"))
    mp.setenv("LAYERLAB_RECOVERY_DIR", str(tmp / "recovery"))
    for name in ("show_error", "show_info"):
        mp.setattr(dialogs, name, lambda *a, **k: None)
    mp.setattr(dialogs, "ask_yes_no", lambda *a, **k: True)
    mp.setattr(dialogs, "ask_save_changes", lambda *a, **k: "discard")
    theme.apply_theme("light", persist=False)
    w = MainWindow(Document(), extensions=[install_training_ui, install_lab_ui], autosave=False)
    w.resize(1280, 800)
    w.show()
    deadline = time.monotonic() + 60
    while not w.training.worker.is_ready and time.monotonic() < deadline:
        qapp.processEvents()
        time.sleep(0.01)
    assert w.training.worker.is_ready
    yield w
    w._close_confirmed = True
    w.lab.shutdown()
    w.training.shutdown()
    w.close()
    w.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    mp.undo()


def settle(qtbot, w) -> None:
    w.document.flush()
    qtbot.waitUntil(lambda: not w.lab.busy, timeout=30_000)
    QApplication.processEvents()


def test_a_training_run_ticks_the_metric_goal_and_the_views_seen(qtbot, win):
    assert win.lab_actions.open_bundled("xor-hidden-layer")
    settle(qtbot, win)
    panel, doc, ctl = win.lab_panel, win.document, win.training
    assert panel.cards["solve"].mark.text() == MARK_OPEN
    # the lab fixes the seed and batch size: greyed, saying why, before and after a run
    assert not ctl.panel.seed_box.isEnabled() and not ctl.panel.batch_box.isEnabled()
    assert "The lab fixes the training setting 'seed'" in ctl.panel.seed_box.toolTip()
    assert ctl.panel.lr_box.isEnabled()
    assert "the lab fixes the seed and batch size" in ctl.panel.lock_note.text()
    # the student's network: a hidden layer of 16 with a ReLU
    edge = next(e.id for e in doc.graph.edges if e.src == "input1")
    doc.push(InsertOnEdgeCommand(doc, edge, "Linear"))
    hidden = next(n for n in doc.graph.nodes if n.type == "Linear" and n.id != "fc1")
    doc.push(SetParamCommand(doc, hidden.id, "units", 16))
    doc.push(InsertOnEdgeCommand(doc, next(e.id for e in doc.graph.edges if e.src == hidden.id), "ReLU"))
    settle(qtbot, win)
    assert panel.cards["add-hidden"].mark.text() == MARK_MET
    assert not [e for e in events(doc.project) if e.get("view") == "decision_boundary"]
    assert ctl.train()
    qtbot.waitUntil(lambda: not ctl.worker.busy, timeout=120_000)
    settle(qtbot, win)
    assert not ctl.panel.seed_box.isEnabled() and ctl.panel.lr_box.isEnabled()
    solve = panel.cards["solve"]
    assert solve.mark.text() == MARK_MET, solve.goal_label.text()
    # the decision boundary was in front while the run drew it: the student saw it
    assert {"kind": "view_opened", "view": "decision_boundary"} in events(doc.project)
    assert panel.cards["see-the-boundary"].mark.text() == MARK_MET
    # dragging the timeline back is an inspection the lab records
    assert {"kind": "timeline_scrubbed"} not in events(doc.project)
    ctl.timeline.slider.setValue(2)
    settle(qtbot, win)
    assert {"kind": "timeline_scrubbed"} in events(doc.project)
    ctl.timeline.go_live()


def test_a_view_raised_after_a_run_counts_as_opened(qtbot, win):
    ctl, doc = win.training, win.document
    assert not ctl.history.is_empty()
    assert {"kind": "view_opened", "view": "gradients"} not in events(doc.project)
    ctl.docks["gradients"].raise_()
    qtbot.waitUntil(lambda: {"kind": "view_opened", "view": "gradients"} in events(doc.project), timeout=5000)


def test_hidden_and_fixed_settings_in_the_training_panel(qapp):
    panel = TrainingPanel()
    panel.set_settings({"epochs": 60, "optimizer": "sgd", "lr": 0.05})
    panel.set_locks({"epochs": ("hidden", "The lab sets 'epochs'."), "optimizer": ("fixed", "The lab fixes it.")})
    panel.show()
    QApplication.processEvents()
    assert panel.epochs_box.isHidden() and panel.settings()["epochs"] == 60  # the lab's value is used
    assert not panel.optimizer_box.isEnabled() and panel.optimizer_box.toolTip() == "Locked: The lab fixes it."
    assert "the lab fixes the optimizer and sets the epochs for you" in panel.lock_note.text()
    panel.set_state("running")
    panel.set_state("idle")
    assert not panel.optimizer_box.isEnabled() and panel.lr_box.isEnabled()
    panel.set_locks({})
    assert not panel.epochs_box.isHidden() and panel.optimizer_box.isEnabled() and panel.lock_note.isHidden()
    panel.deleteLater()
