"""The rough edges a new user hit (issue 12's smaller items), each done as a user does it.

Quick-add picks the best match; the wheel scrolls a panel instead of changing the setting
under the cursor; out-of-range training settings are refused with a sentence; the XOR data
takes n = 4 and a failed Apply keeps the form; pooling shows "same as kernel"; a Conv2d after
flat features is told what fits its values; one canvas hint at a time, never over a node;
the window fits 1280x800 with whole tab titles and never grows past it; colour scales and
the edge legend; Help > Quick Start.
"""
from __future__ import annotations

import time

import pytest
import torch

pytest.importorskip("pytestqt")

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QWheelEvent  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication, QDockWidget, QScrollArea, QTabBar  # noqa: E402

from engine.project import load_starter  # noqa: E402
from gui import dialogs, theme  # noqa: E402
from gui.document import Document  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402
from gui.training import install_training_ui  # noqa: E402

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- fixtures and helpers
class Said:
    """Every dialog the app would have shown, answered with Yes / Discard."""

    def __init__(self):
        self.errors: list[tuple[str, str]] = []
        self.infos: list[tuple[str, str]] = []


def _silence_dialogs(mp: pytest.MonkeyPatch, tmp) -> Said:
    said = Said()
    mp.setenv("LAYERLAB_CONFIG_DIR", str(tmp / "config"))
    mp.setenv("LAYERLAB_RECOVERY_DIR", str(tmp / "recovery"))
    mp.setattr(dialogs, "show_error", lambda parent, title, text: said.errors.append((title, text)))
    mp.setattr(dialogs, "show_info", lambda parent, title, text: said.infos.append((title, text)))
    mp.setattr(dialogs, "ask_yes_no", lambda *a, **k: True)
    mp.setattr(dialogs, "ask_save_changes", lambda *a, **k: "discard")
    return said


def _close(w) -> None:
    w._close_confirmed = True
    w.close()
    w.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.DeferredDelete)


def settle() -> None:
    for _ in range(3):
        QApplication.processEvents()


@pytest.fixture
def said(monkeypatch, tmp_path) -> Said:
    return _silence_dialogs(monkeypatch, tmp_path)


@pytest.fixture
def editor(qtbot, said):
    """The editor alone (no training UI), at 1280x800."""
    theme.apply_theme("light", persist=False)
    w = MainWindow(Document(load_starter()), extensions=[], autosave=False)
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    w.document.flush()
    yield w
    _close(w)


@pytest.fixture(scope="module")
def trainer(qapp, tmp_path_factory):
    """The whole app (the training UI in thread mode: no subprocess to start) at 1280x800."""
    mp = pytest.MonkeyPatch()
    said = _silence_dialogs(mp, tmp_path_factory.mktemp("polish"))
    theme.apply_theme("light", persist=False)
    w = MainWindow(Document(load_starter()), extensions=[lambda win: install_training_ui(win, mode="thread")],
                   autosave=False)
    w.said = said
    w.resize(1280, 800)
    w.show()
    settle()
    yield w
    if not w.training._shut:
        _close(w)
    mp.undo()


def wheel(widget, steps: int = -1) -> QWheelEvent:
    """One notch of the mouse wheel over ``widget`` (negative: towards the user, i.e. scroll down)."""
    centre = QPointF(widget.rect().center())
    event = QWheelEvent(centre, QPointF(widget.mapToGlobal(widget.rect().center())), QPoint(0, 0),
                        QPoint(0, 120 * steps), Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)
    return event


def scroll_area_of(widget) -> QScrollArea:
    p = widget.parentWidget()
    while not isinstance(p, QScrollArea):
        p = p.parentWidget()
    return p


def run_to_end(qtbot, ctl, **settings) -> None:
    base = {"device": "cpu", "loss": "auto", "optimizer": "adam", "lr": 0.01, "batch_size": 32, "epochs": 2,
            "schedule": "none", "seed": 0}
    ctl.panel.set_settings({**base, **settings})
    assert ctl.train()
    qtbot.waitUntil(lambda: not ctl.worker.busy, timeout=60_000)
    ctl.flush_frame()
    settle()


# ----------------------------------------------------------------------------- 1. quick add
def _open_quick_add(window):
    window.view.fit_to_view()
    settle()
    empty = window.scene.nodes_rect().bottomRight() + QPointF(200, 150)
    vp = window.view.mapFromScene(empty)
    QTest.mouseDClick(window.view.viewport(), Qt.LeftButton, Qt.NoModifier, vp)
    popup = window.view._quick_add
    assert popup is not None and popup.isVisible()
    return popup


def test_quick_add_sigmoid_and_enter_adds_sigmoid_the_best_match_first(editor):
    doc = editor.document
    popup = _open_quick_add(editor)
    QTest.keyClicks(popup.edit, "sigmoid")
    shown = popup.visible_types()
    # SiLU matches through its description ("x times sigmoid(x)"): it stays, below the exact name
    assert shown[0] == "Sigmoid" and "SiLU" in shown[1:]
    assert popup.list.currentItem().text() == "Sigmoid"  # the highlighted row is the top row
    assert popup.list.visualItemRect(popup.list.currentItem()).top() <= \
        min(popup.list.visualItemRect(popup.list.item(i)).top() for i in range(popup.list.count())
            if not popup.list.item(i).isHidden())
    n = len(doc.graph.nodes)
    QTest.keyClick(popup.edit, Qt.Key_Return)
    settle()
    doc.flush()
    assert not popup.isVisible() and len(doc.graph.nodes) == n + 1
    assert doc.graph.nodes[-1].type == "Sigmoid"


@pytest.mark.parametrize("typed, first, before", [
    ("relu", "ReLU", "LeakyReLU"),  # the exact name, then a name that contains it
    ("conv", "Conv1d", "SelfAttention"),  # prefixes before description matches
    ("norm", "BatchNorm1d", "Dropout"),  # a word of the name ("Batch|Norm") before descriptions
    ("linear", "Linear", "GELU"),
])
def test_quick_add_ranks_names_before_descriptions(editor, typed, first, before):
    popup = _open_quick_add(editor)
    QTest.keyClicks(popup.edit, typed)
    shown = popup.visible_types()
    assert shown[0] == first and popup.list.currentItem().text() == first
    if before in shown:
        assert shown.index(first) < shown.index(before)
    QTest.keyClick(popup.edit, Qt.Key_Escape)


# ----------------------------------------------------------------------------- 2. the wheel
def test_the_wheel_scrolls_the_training_panel_and_leaves_its_settings_alone(trainer):
    panel = trainer.training.panel
    trainer.training.docks["panel"].raise_()
    settle()
    bar = scroll_area_of(panel).verticalScrollBar()
    assert bar.maximum() > 0, "the panel should scroll at 1280x800 (the test needs it to)"
    bar.setValue(0)
    trainer.view.setFocus()  # the canvas has the focus, as after building a network
    settle()
    for box, read in ((panel.optimizer_box, panel.optimizer_box.currentIndex),
                      (panel.schedule_box, panel.schedule_box.currentIndex),
                      (panel.lr_box, panel.lr_box.value), (panel.epochs_box, panel.epochs_box.value)):
        before, top = read(), bar.value()
        wheel(box, -1)
        settle()
        assert read() == before, f"the wheel changed {box.__class__.__name__} under the cursor"
        assert bar.value() > top or bar.value() == bar.maximum(), "the wheel should scroll the panel"
        bar.setValue(0)
    # a box the user clicked into takes the wheel as usual
    panel.epochs_box.setFocus()
    settle()
    before = panel.epochs_box.value()
    wheel(panel.epochs_box, 1)
    assert panel.epochs_box.value() == before + 1


def test_the_wheel_leaves_inspector_and_dataset_fields_alone(trainer):
    doc = trainer.document
    trainer.scene.select_only([doc.graph.node_by_name("fc1").id])
    settle()
    units = trainer.inspector.editors["units"].widget
    trainer.view.setFocus()
    before = units.value()
    wheel(units, 1)
    assert units.value() == before and doc.graph.node_by_name("fc1").params["units"] == before
    trainer.dataset_dock.raise_()
    settle()
    combo = trainer.dataset_panel.combo
    index = combo.currentIndex()
    wheel(combo, -1)
    assert combo.currentIndex() == index and doc.project.data["source"] == "moons"
    seed = trainer.dataset_panel.split_seed_box
    value = seed.value()
    wheel(seed, 1)
    assert seed.value() == value


# ----------------------------------------------------------------------------- 8. layout
def _shown_tab_bars(window) -> list[QTabBar]:
    return [b for b in window.findChildren(QTabBar, options=Qt.FindDirectChildrenOnly) if b.isVisible()]


def _full_tab_widths(titles: list[str]) -> list[int]:
    """How wide each tab is with its whole title, in the same style (a bar that never elides)."""
    ref = QTabBar()
    ref.setElideMode(Qt.ElideNone)
    ref.setExpanding(False)
    for t in titles:
        ref.addTab(t)
    ref.ensurePolished()
    widths = [ref.tabRect(i).width() for i in range(ref.count())]
    ref.deleteLater()
    return widths


def assert_tab_titles_whole(window) -> None:
    bars = _shown_tab_bars(window)
    assert bars, "the docks should be tabbed"
    for bar in bars:
        titles = [bar.tabText(i) for i in range(bar.count())]
        for i, need in enumerate(_full_tab_widths(titles)):
            assert bar.tabRect(i).width() >= need - 1, f"tab {titles[i]!r} is cut: {titles}"
    # no two bars drawn over each other (Qt left stale bars of intermediate tab groups visible)
    rects = [(b, b.geometry()) for b in bars]
    for i, (a, ra) in enumerate(rects):
        for b, rb in rects[i + 1:]:
            assert not ra.intersects(rb), (f"tab bars overlap: {[a.tabText(k) for k in range(a.count())]} and "
                                           f"{[b.tabText(k) for k in range(b.count())]}")
    # every group of tabbed docks shows its tabs, once
    groups = set()
    for d in window.findChildren(QDockWidget):
        if d.isVisible() and not d.isFloating() and window.tabifiedDockWidgets(d):
            groups.add(frozenset([d.windowTitle(), *(t.windowTitle() for t in window.tabifiedDockWidgets(d))]))
    shown = [frozenset(b.tabText(i) for i in range(b.count())) for b in bars]
    assert sorted(map(sorted, shown)) == sorted(map(sorted, groups))


def test_at_1280x800_every_tab_title_is_whole_and_the_inspector_edits_a_linear_without_scrolling(trainer):
    trainer.resize(1280, 800)
    settle()
    assert_tab_titles_whole(trainer)
    trainer.scene.select_only([trainer.document.graph.node_by_name("fc1").id])
    settle()
    scroll = trainer.inspector.findChild(QScrollArea)
    assert trainer.inspector.editors.keys() >= {"units", "bias"}
    assert scroll.verticalScrollBar().maximum() == 0, "the inspector must show a Linear's form whole"
    assert trainer.inspector.height() >= 180
    trainer.resize(1920, 1080)
    settle()
    assert_tab_titles_whole(trainer)
    trainer.resize(1280, 800)
    settle()


def test_the_window_never_grows_past_a_1280_screen_whatever_view_is_raised(trainer, qtbot):
    """A 784-feature input made the Weights view's caption ("64×784 (pooled …) mean |w| …")
    so wide that the window grew to 1309 px (1324 in the issue) while it trained."""
    w, ctl = trainer, trainer.training
    w.resize(1280, 800)
    assert w.document.set_data_spec({"source": "blobs", "n_samples": 300, "noise": 1.0, "seed": 0,
                                     "n_classes": 3, "n_features": 784})
    settle()
    run_to_end(qtbot, ctl, epochs=1)
    for key, dock in ctl.docks.items():
        dock.raise_()
        settle()
        ctl.flush_frame()
        settle()
        assert w.width() <= 1280 and w.minimumSizeHint().width() <= 1280, \
            f"the {key} view made the window {w.width()} px wide (minimum {w.minimumSizeHint().width()})"
    assert ctl.views["weights"].frames_drawn > 0 and "784" in ctl.views["weights"].stats.text()
    assert_tab_titles_whole(w)
    w.document.undo_stack.undo()  # back to the moons
    settle()
