"""The rough edges a new user hit (issue 12's smaller items), each done as a user does it.

Quick-add picks the best match; the wheel scrolls a panel instead of changing the setting
under the cursor; out-of-range training settings are refused with a sentence; the XOR data
takes n = 4 and a failed Apply keeps the form; pooling shows "same as kernel"; a Conv2d after
flat features is told what fits its values; one canvas hint at a time, never over a node;
the window fits 1280x800 with whole tab titles and never grows past it; colour scales and
the edge legend; Help > Quick Start.
"""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("pytestqt")

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QImage, QPainter, QWheelEvent  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication, QDockWidget, QScrollArea, QTabBar  # noqa: E402

from engine.project import load_starter  # noqa: E402
from gui import dialogs, theme  # noqa: E402
from gui.commands import DisconnectCommand  # noqa: E402
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
    ("batch", "BatchNorm1d", "Input"),  # a prefix before a description ("a batch of samples")
    ("mul", "Multiply", "SelfAttention"),  # ... before "Multi-head self-attention"
    ("layer", "LayerNorm", "Linear"),  # ... before "a fully connected layer"
    ("out", "Output", "Dropout"),  # a prefix, then a word of the name ("Drop|out"), then descriptions
    ("norm", "BatchNorm1d", "Dropout"),  # a word of the name ("Batch|Norm") before descriptions
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


def test_no_docked_panel_is_wider_than_its_dock_with_a_larger_font(trainer):
    """At a larger font (a desktop's default of 11 pt and up), the Training panel was wider than its
    dock (the timeline's two buttons side by side, the settings' labels beside their fields); it
    never scrolls sideways, so a click in a field slid it over, cutting "Train" to "rain".  Rows
    stack and fields go under their labels now; checked in every dock, raised in turn, in a window
    made after the font was set (as a desktop's font is, before the app starts)."""
    from gui.responsive_row import ResponsiveRow

    font = QApplication.font()
    for points in (11.0, 13.0):
        larger = QApplication.font()
        larger.setPointSizeF(points)
        QApplication.setFont(larger)
        w = MainWindow(Document(load_starter()), extensions=[lambda win: install_training_ui(win, mode="thread")],
                       autosave=False)
        try:
            w.resize(1280, 800)
            w.show()
            settle()
            assert w.training.panel.font().pointSizeF() == points
            for dock in w.findChildren(QDockWidget):
                if dock.isHidden():
                    continue
                dock.raise_()
                settle()
                for area in dock.findChildren(QScrollArea):
                    if not area.isVisible() or area.widget() is None or \
                            area.horizontalScrollBarPolicy() != Qt.ScrollBarAlwaysOff:
                        continue
                    width = area.viewport().width()
                    assert area.widget().minimumSizeHint().width() <= width, (dock.windowTitle(), points)
                    assert area.horizontalScrollBar().maximum() == 0, (dock.windowTitle(), points)
            rows = w.training.panel.findChildren(ResponsiveRow) + w.training.timeline.findChildren(ResponsiveRow)
            assert len(rows) == 2 and all(r.width() >= r.minimumSizeHint().width() for r in rows)
        finally:
            _close(w)
            QApplication.setFont(font)
            settle()


# ----------------------------------------------------------------------------- 3. out-of-range settings
def type_into(box, text: str) -> None:
    """Click into a spin box, replace its text and press Enter, as a person does."""
    from PySide6.QtWidgets import QLineEdit
    edit = box.findChild(QLineEdit)
    box.setFocus()
    box.selectAll()
    QTest.keyClicks(edit, text)
    QTest.keyClick(edit, Qt.Key_Return)
    settle()


def test_an_out_of_range_learning_rate_is_refused_with_a_sentence_not_clamped(trainer):
    panel = trainer.training.panel
    trainer.training.docks["panel"].raise_()
    panel.set_settings({"lr": 0.01, "epochs": 5, "batch_size": 32})
    edits = []
    panel.settingsEdited.connect(edits.append)
    try:
        type_into(panel.lr_box, "1e6")
        assert panel.lr_box.value() == pytest.approx(0.01) and panel.lr_box.text() == "0.01"
        assert panel.settings()["lr"] == pytest.approx(0.01) and not [e for e in edits if e["lr"] != 0.01]
        note = panel.settings_error
        assert note.isVisible() and "Learning rate 1e6 is out of range" in note.text()
        assert "100" in note.text() and "stays at 0.01" in note.text()
        # a good value is taken and the sentence goes
        type_into(panel.lr_box, "0.05")
        assert panel.lr_box.value() == pytest.approx(0.05) and not note.isVisible()
        # the same for whole numbers: never silently clamped, never a swallowed key
        type_into(panel.epochs_box, "1000000")
        assert panel.epochs_box.value() == 5 and note.isVisible()
        assert "Epochs 1000000 is out of range: use 1 to 100,000" in note.text()
        type_into(panel.batch_box, "0")
        assert panel.batch_box.value() == 32 and "Batch size 0 is out of range" in note.text()
        type_into(panel.batch_box, "2.5")
        assert panel.batch_box.value() == 32 and "whole number" in note.text()
        type_into(panel.lr_box, "fast")
        assert panel.lr_box.value() == pytest.approx(0.05) and "must be a number" in note.text()
        # a project file's value the panel cannot hold is brought into range, and the panel says so
        panel.set_settings({"lr": 1e6})
        assert panel.lr_box.value() == 100 and note.isVisible() and "stored learning rate 1,000,000" in note.text()
    finally:
        panel.settingsEdited.disconnect(edits.append)
        panel.set_settings({"lr": 0.01})
        trainer.view.setFocus()
    assert not panel.settings_error.isVisible()


# ----------------------------------------------------------------------------- 4. XOR and a failed Apply
def test_xor_takes_four_samples_and_a_failed_apply_keeps_the_form(trainer, qtbot):
    doc, data = trainer.document, trainer.dataset_panel
    trainer.dataset_dock.raise_()
    depth = doc.undo_stack.index()
    data.combo.setCurrentIndex(data.combo.findData("xor"))
    data.combo.activated.emit(data.combo.currentIndex())
    qtbot.waitUntil(lambda: doc.project.data["source"] == "xor", timeout=10_000)
    settle()
    n, noise = data.param_widgets["n_samples"], data.param_widgets["noise"]
    n.setValue(3)
    noise.setValue(0.05)
    data.val_box.setValue(10.0)
    errors = len(trainer.said.errors)
    data.apply_button.click()
    settle()
    assert trainer.said.errors[errors:] and "'n_samples' must be at least 4, got 3" in trainer.said.errors[-1][1]
    assert doc.project.data["n_samples"] == 1000  # nothing changed ...
    # ... and the form (rebuilt for the data in use) still holds what the user typed, so only the
    # wrong entry needs changing
    n, noise = data.param_widgets["n_samples"], data.param_widgets["noise"]
    assert n.value() == 3 and noise.value() == pytest.approx(0.05) and data.val_box.value() == pytest.approx(10.0)
    # a split that leaves nothing to train on puts back those two entries only
    data.split_seed_box.setValue(7)
    data.val_box.setValue(90.0)
    data.test_box.setValue(90.0)
    data.apply_button.click()
    settle()
    assert "leaves nothing to train on" in trainer.said.errors[-1][1]
    assert data.val_box.value() == pytest.approx(20.0) and data.test_box.value() == pytest.approx(0.0)
    assert data.split_seed_box.value() == 7 and n.value() == 3 and noise.value() == pytest.approx(0.05)
    data.split_seed_box.setValue(0)
    data.val_box.setValue(0.0)
    n.setValue(4)
    data.apply_button.click()
    qtbot.waitUntil(lambda: doc.project.data.get("n_samples") == 4, timeout=10_000)
    settle()
    ds = doc.dataset
    assert ds.n_train == 4 and len(trainer.said.errors) == errors + 2
    assert "train 4" in data.summary.text()
    while doc.undo_stack.index() > depth:
        doc.undo_stack.undo()
    settle()
    assert doc.project.data["source"] == "moons"


# ----------------------------------------------------------------------------- 5. pooling stride
def test_pooling_says_same_as_kernel_instead_of_stride_0(editor):
    from gui.commands import AddNodeCommand
    doc = editor.document
    doc.new("cnn")
    settle()
    doc.push(AddNodeCommand(doc, "MaxPool2d", {}, (600, 300)))
    doc.flush()
    settle()
    pool = doc.graph.nodes[-1]
    item = editor.scene.nodes[pool.id]
    assert "stride 0" not in item.summary
    editor.scene.select_only([pool.id])
    settle()
    box = editor.inspector.editors["stride"].widget
    assert box.text() == "same as kernel"
    box.stepBy(1)  # stride 1 reads as a number again, on the node too
    settle()
    doc.flush()
    assert doc.graph.node(pool.id).params["stride"] == 1 and box.text() == "1"
    assert item.summary == "kernel size 2 · stride 1"
    box.stepBy(-1)
    settle()
    doc.flush()
    assert doc.graph.node(pool.id).params["stride"] == 0 and box.text() == "same as kernel"
    assert "stride 0" not in item.summary
    # the file keeps the spec's meaning: 0 = the kernel size
    assert doc.graph.to_dict()["nodes"][-1]["params"]["stride"] == 0


# ----------------------------------------------------------------------------- 6. conv after flat features
def test_a_conv_after_two_features_suggests_an_mlp_not_an_impossible_reshape(editor):
    from gui.commands import AddNodeCommand, ConnectCommand
    doc = editor.document
    doc.new(None)  # Input (moons: 2 features) and Output
    settle()
    doc.push(AddNodeCommand(doc, "Conv2d", {}, (280, 0)))
    settle()
    conv = doc.graph.nodes[-1]
    doc.push(ConnectCommand(doc, doc.graph.node_by_name("input1").id, conv.id))
    doc.flush()
    settle()
    editor.scene.select_only([conv.id])
    settle()
    said = editor.inspector.issues_label.text() + " ".join(
        editor.problems.list.item(i).text() for i in range(editor.problems.list.count()))
    assert "2 values per sample do not form a square image" in said and "Linear layers (an MLP)" in said
    assert "1, 8, 8" not in said and "Reshape" not in said
    assert not editor.inspector.fix_button.isVisible()


# ----------------------------------------------------------------------------- 7. one hint, never on a node
def _hint_rect(window):
    return window.view.hint.geometry()


def _node_rects(window):
    return [window.view._item_rect(i).adjusted(12, 12, -12, -12) for i in window.scene.nodes.values()]


def test_one_canvas_hint_at_a_time_never_over_a_node_and_gone_when_the_graph_is_built(editor):
    from gui.canvas.overlays import CanvasHint
    from gui.commands import AddNodeCommand
    doc, view = editor.document, editor.view
    assert not view.hint.isVisible()  # the starter network needs no hint
    doc.new(None)
    settle()
    assert view.hint.isVisible() and "between Input and Output" in view.hint.text()
    doc.push(AddNodeCommand(doc, "Linear", {}, (200, 0)))
    settle()
    assert view.hint.kind == "unconnected" and view.hint.isVisible()
    hints = [w for w in view.findChildren(CanvasHint) if w.isVisible()]
    assert hints == [view.hint]  # one hint, whatever changed
    vp = view.viewport().geometry()
    for _ in range(3):  # pan the canvas: the hint stays in a free corner (it was painted with the scene)
        view.horizontalScrollBar().setValue(view.horizontalScrollBar().value() - 120)
        view.verticalScrollBar().setValue(view.verticalScrollBar().value() + 90)
        settle()
        if view.hint.isVisible():
            assert vp.contains(_hint_rect(editor))
            assert not any(_hint_rect(editor).intersects(r) for r in _node_rects(editor))
    # a node dragged into the hint's corner pushes the hint to another corner (or hides it)
    view.fit_to_view()
    settle()
    corner = view.mapToScene(QPoint(vp.left() + 30, vp.bottom() - 40))
    item = editor.scene.nodes[doc.graph.node_by_name("fc1").id]
    item.setPos(corner)
    settle()
    assert not view.hint.isVisible() or not any(_hint_rect(editor).intersects(r) for r in _node_rects(editor))
    view.grab()  # paints without a hint of its own under the nodes
    editor.document.undo_stack.undo()
    doc.new("mlp")
    settle()
    assert not view.hint.isVisible() and view.hint.kind == ""


# ----------------------------------------------------------------------------- 9. colour scales, legend
def test_the_activation_heatmap_has_a_colour_scale_with_its_value_range(trainer, qtbot):
    import numpy as np
    ctl = trainer.training
    run_to_end(qtbot, ctl, epochs=1)
    view = ctl.views["activations"]
    ctl.docks["activations"].raise_()
    settle()
    ctl.flush_frame()
    settle()
    assert view.frames_drawn > 0
    lo, hi = view.colorbar.levels()
    assert (lo, hi) == pytest.approx(tuple(view.img.levels))  # the bar shows what the image uses
    a = np.asarray(view._last_frame.snapshot.activations[view.node_box.currentText()], np.float32)
    assert lo <= float(a.min()) and float(a.max()) <= hi
    assert view.colorbar.isVisible() and view.colorbar.getAxis("left").labelText == "activation"


def test_the_edge_tints_get_a_legend_from_the_overlay(editor):
    view, doc = editor.view, editor.document
    assert not view.edge_legend.isVisible()
    doc.set_overlay({"edge_colors": {}, "node_images": {}, "edge_legend": (-3.0, -0.5, "gradient norm")})
    settle()
    legend = view.edge_legend
    assert legend.isVisible() and legend.texts() == ("0.001", "0.32")
    assert legend.label == "gradient norm" and len(legend.stops) >= 2
    vp = view.viewport().geometry()
    assert vp.contains(legend.geometry()) and legend.geometry().top() - vp.top() < 30  # a corner of the canvas
    assert not any(legend.geometry().intersects(r) for r in _node_rects(editor))
    img = view.grab().toImage()
    g = legend.geometry()
    left = img.pixelColor(g.left() + g.width() // 2 - 40, g.bottom() - 10)
    right = img.pixelColor(g.left() + g.width() // 2 + 40, g.bottom() - 10)
    assert left.lightness() < right.lightness()  # dark (low) to bright (high), like the tints
    doc.set_overlay({})  # the run's overlay goes: the legend goes with it
    settle()
    assert not legend.isVisible()


# ----------------------------------------------------------------------------- 10. quick start
def test_quick_start_mentions_training_in_the_names_the_window_uses(trainer):
    text = trainer.quick_start_text()
    ctl = trainer.training
    assert "press Train" in text and ctl.panel.train_button.text() == "Train"
    assert trainer.act_train.text() in text and trainer.act_train.shortcut().toString() in text
    assert trainer.act_add_layer.shortcut().toString() in text and "Shift+F10" in text  # the keyboard's way
    for view in ctl.views.values():
        assert view.title in text, f"Quick Start does not name the {view.title} view"
    docks = {d.windowTitle() for d in trainer.findChildren(QDockWidget)}
    for panel in ("Dataset", "Layers", "Inspector", "Training"):
        assert f"{panel} panel" in text or f"{panel} palette" in text or panel in text
        assert panel in docks
    assert "Timeline" in text and f"\"{ctl.timeline.restore_button.text()}\"" in text
    assert ctl.panel.reset_button.text() in text
    editor_only = MainWindow(Document(load_starter()), extensions=[], autosave=False)
    try:
        assert "Train" not in editor_only.quick_start_text()  # no training UI, no talk of it
    finally:
        _close(editor_only)


def test_the_palette_search_highlights_and_adds_the_best_match_too(editor):
    palette, doc = editor.palette, editor.document
    palette.search.setText("sigmoid")
    assert palette.tree.currentItem().text(0) == "Sigmoid" and "SiLU" in palette.visible_types()
    n = len(doc.graph.nodes)
    QTest.keyClick(palette.search, Qt.Key_Return)
    settle()
    doc.flush()
    assert len(doc.graph.nodes) == n + 1 and doc.graph.nodes[-1].type == "Sigmoid"
    palette.search.setText("")
    # and the longest layer name is shown whole
    item = palette.item_for("AdaptiveAvgPool2d")
    palette.tree.scrollToItem(item)
    rect = palette.tree.visualItemRect(item)
    assert rect.right() <= palette.tree.viewport().width()
    assert palette.tree.sizeHintForColumn(0) <= palette.tree.viewport().width()


# ----------------------------------------------------------------------------- the status bar during a run
def test_the_status_bar_says_training_or_paused_during_a_run_not_ready_to_train(trainer, qtbot):
    ctl, label = trainer.training, trainer.state_label
    shown: list[str] = []
    set_text = label.setText
    label.setText = lambda text: (shown.append(text), set_text(text))  # every text the bar showed
    try:
        ctl.panel.set_settings({"device": "cpu", "loss": "auto", "optimizer": "adam", "lr": 0.01, "batch_size": 32,
                                "epochs": 3, "schedule": "none", "seed": 0})
        assert ctl.train(start_paused=True)
        qtbot.waitUntil(lambda: ctl.worker.state == "paused", timeout=60_000)
        assert "paused" in label.text() and "ready" not in label.text()
        ctl.worker.resume()
        qtbot.waitUntil(lambda: not ctl.worker.busy, timeout=60_000)
        settle()
    finally:
        del label.setText
    assert any("training" in t and "ready" not in t for t in shown)
    assert "ready to train" in label.text()  # the run is over: the graph's state again


def test_an_edit_that_breaks_the_graph_during_a_run_shows_beside_the_run_state(editor):
    editor.set_run_state("running")
    assert "training" in editor.state_label.text() and "error" not in editor.state_label.text()
    doc = editor.document
    doc.push(DisconnectCommand(doc, next(e.id for e in doc.graph.edges if doc.graph.node(e.src).name == "fc1")))
    doc.flush()
    text = editor.state_label.text()
    assert "training" in text and "error" in text, text
    editor.set_run_state("idle")
    assert "training" not in editor.state_label.text() and "error" in editor.state_label.text()


def _cut_tick_labels(plot_widget, axis) -> list[str]:
    """The tick labels of ``axis`` that the plot widget's edge cuts (any part outside the view)."""
    visible = plot_widget.mapToScene(plot_widget.viewport().rect()).boundingRect()
    return [text for rect, text in _tick_labels(axis) if not visible.contains(rect)]


def _tick_labels(axis) -> list:
    """(scene rect, text) of each tick label ``axis`` draws (as its paint() lays them out)."""
    image = QImage(8, 8, QImage.Format_ARGB32)
    painter = QPainter(image)  # the layout needs an active painter for the font metrics
    try:
        texts = axis.generateDrawSpecs(painter)[2]
    finally:
        painter.end()
    return [(axis.mapRectToScene(rect), text) for rect, _flags, text in texts if text]


def test_no_tick_label_is_cut_by_the_plot_edge_in_an_empty_view(trainer):
    """An empty plot's top label (1.0) and a colour bar's ends sit at the edge of the plot: half of
    each was cut off before the plots kept room for them."""
    ctl = trainer.training
    trainer.document.new()  # every view empty, as in a fresh window (earlier tests trained)
    ctl.docks["loss"].raise_()
    ctl.docks["activations"].raise_()
    settle()
    loss = ctl.views["loss"]
    for plot in (loss.loss_plot, loss.metric_plot):
        axis = plot.getPlotItem().getAxis("left")
        assert _tick_labels(axis) and not _cut_tick_labels(plot, axis)
    act = ctl.views["activations"]
    bar_axis = act.colorbar.axis
    labels = [t for _r, t in _tick_labels(bar_axis)]
    assert labels and not _cut_tick_labels(act.colorbar.getViewWidget(), bar_axis), labels


@pytest.mark.parametrize("lo, hi", [(0.30, 0.45), (0.041, 0.049), (0.6, 1.5), (0.02, 0.9)])
def test_the_log_loss_axis_always_labels_two_ticks_and_they_read_true(qapp, lo, hi):
    """Log axes label only 1-2-5 ticks (minor labels collide); a loss that stays between 0.3 and
    0.45 then got ticks without a single number."""
    import math

    from gui.views import make_plot

    w = make_plot(left="loss", log_axis=True)
    w.resize(300, 200)
    pi = w.getPlotItem()
    pi.setLogMode(y=True)
    pi.setYRange(math.log10(lo), math.log10(hi), padding=0)
    w.show()
    settle()
    labels = _tick_labels(pi.getAxis("left"))
    values = [float(t) for _r, t in labels]
    assert len(values) >= 2, labels
    assert all(lo * 0.999 <= v <= hi * 1.001 for v in values), values
    # each label sits where its value is: higher values higher up (smaller scene y)
    ys = [r.center().y() for r, _t in sorted(labels, key=lambda rt: float(rt[1]))]
    assert ys == sorted(ys, reverse=True)
    w.deleteLater()


def test_the_training_buttons_stay_where_they_are_when_a_run_starts_and_pauses(trainer, qtbot):
    """A click aimed at Pause just after Train used to land on Stop: the run's status sentence
    appeared above the buttons and pushed them down a line or two."""
    ctl = trainer.training
    trainer.document.open_project(load_starter())  # a graph that trains, whatever earlier tests left
    ctl.docks["panel"].raise_()
    settle()
    ctl.panel.show_status("")  # idle, no sentence yet (as at start-up)
    settle()

    def where():
        return {b.text(): b.mapTo(trainer, b.rect().topLeft()) for b in
                (ctl.panel.train_button, ctl.panel.pause_button, ctl.panel.stop_button)}

    idle = where()
    ctl.panel.set_settings({"device": "cpu", "loss": "auto", "optimizer": "adam", "lr": 0.01, "batch_size": 32,
                            "epochs": 300, "schedule": "none", "seed": 0})
    assert ctl.train(start_paused=True)
    qtbot.waitUntil(lambda: ctl.panel.status_label.text().startswith("Training"), timeout=60_000)
    settle()
    assert where() == idle, ctl.panel.status_label.text()
    ctl.worker.resume()
    qtbot.waitUntil(lambda: "ETA" in ctl.panel.progress_label.text(), timeout=60_000)
    ctl.worker.stop()
    qtbot.waitUntil(lambda: not ctl.worker.busy, timeout=60_000)
    settle()
    # a stopped run's progress line says where it stopped, not when it will finish
    line = ctl.panel.progress_label.text()
    assert line.startswith("Stopped · epoch ") and "ETA" not in line and "samples/s" not in line, line


def test_momentum_is_editable_only_for_sgd(trainer):
    panel = trainer.training.panel
    panel.set_settings({"optimizer": "adam"})
    assert not panel.momentum_box.isEnabled()  # it changes nothing under Adam
    panel.set_settings({"optimizer": "sgd"})
    assert panel.momentum_box.isEnabled()
    panel.set_state("running")
    assert not panel.momentum_box.isEnabled()  # no setting changes during a run
    panel.set_state("idle")
    panel.set_locks({"momentum": ("fixed", "the lab compares momenta")})
    assert not panel.momentum_box.isEnabled()
    panel.set_locks({})
    panel.set_settings({"optimizer": "adam"})


def test_a_run_that_continues_the_last_says_where_the_curves_are(trainer):
    """Training again goes on from the last run's epochs: the progress read "epoch 2/400" while the
    curves stood at 232."""
    from engine.events import Progress

    ctl = trainer.training
    ctl.history.x_offset, ctl.epochs, ctl._last_progress = 230, 400, 0.0
    try:
        ctl._on_progress(Progress(epoch=2, step=60, total_steps=12_000, train_loss=0.1, samples_per_s=900.0,
                                  eta_s=30.0))
        assert ctl.panel.progress_label.text().startswith("epoch 2/400 (232 in all) · step 60/12,000")
        ctl.history.x_offset, ctl._last_progress = 0, 0.0
        ctl._on_progress(Progress(epoch=2, step=60, total_steps=12_000, train_loss=0.1, samples_per_s=900.0,
                                  eta_s=30.0))
        assert ctl.panel.progress_label.text().startswith("epoch 2/400 · step 60")  # a first run: no "in all"
    finally:
        ctl.history.x_offset = 0


def test_train_in_the_toolbar_and_on_f5_starts_a_run_and_is_off_during_it(trainer, qtbot):
    """A first-time student looked for Train in the menus and the toolbar; the panel's button was
    behind the Dataset tab."""
    ctl, act = trainer.training, trainer.act_train
    trainer.document.open_project(load_starter())
    assert act in trainer.toolbar.actions() and act.shortcut().toString() == "F5" and act.isEnabled()
    trainer.dataset_dock.raise_()  # the Training panel behind the Dataset tab
    ctl.panel.set_settings({"device": "cpu", "loss": "auto", "optimizer": "adam", "lr": 0.01, "batch_size": 32,
                            "epochs": 300, "schedule": "none", "seed": 0})
    settle()
    act.trigger()  # (F5 goes to the same action; whether the window has the keyboard is Qt's affair)
    assert ctl.worker.busy and not act.isEnabled()
    assert not ctl.docks["panel"].widget().visibleRegion().isEmpty()  # the panel came to the front
    ctl.worker.stop()
    qtbot.waitUntil(lambda: not ctl.worker.busy, timeout=60_000)
    assert act.isEnabled()


def _legend_backgrounds(views) -> list:
    import pyqtgraph as pg

    return [(key, p.getPlotItem().legend.opts["brush"].color())
            for key, view in views.items() for p in view.findChildren(pg.PlotWidget)
            if p.getPlotItem().legend is not None]


def test_legends_sit_on_a_veil_of_the_plot_colour_over_the_curves_that_pass_under_them(trainer):
    """The loss plot's 'validation' label sat on the validation curve, the moons' legend on the
    points: the text was hard to read where data ran under it."""
    import pyqtgraph as pg
    from gui.views import LEGEND_ALPHA

    ctl = trainer.training
    trainer.document.new()
    ctl.docks["loss"].raise_()
    settle()
    plot = ctl.views["loss"].metric_plot
    legend = plot.getPlotItem().legend
    legend.addItem(pg.PlotDataItem(), "a label long enough to cross")  # an empty plot's legend has no rows
    box = plot.getPlotItem().getViewBox()
    box.setRange(xRange=(0, 10), yRange=(-1, 1), padding=0)
    settle()
    # a curve straight through the legend's middle, across the whole plot
    rect = plot.mapFromScene(legend.mapRectToScene(legend.boundingRect())).boundingRect()
    y = box.mapSceneToView(plot.mapToScene(rect.center())).y()
    line = pg.PlotDataItem([0, 10], [y, y], pen=pg.mkPen("#ff0000", width=3), antialias=False)
    plot.addItem(line)
    settle()
    try:
        image = plot.grab().toImage()
        row = rect.center().y()
        pure = [x for x in range(image.width()) if image.pixelColor(x, row).name() == "#ff0000"]
        assert [x for x in pure if x < rect.left()], "the curve is drawn left of the legend"
        assert not [x for x in pure if rect.left() + 2 < x < rect.right() - 2]
    finally:
        plot.removeItem(line)
        legend.removeItem("a label long enough to cross")
    backgrounds = _legend_backgrounds(ctl.views)
    assert {k for k, _c in backgrounds} >= {"loss", "regression", "gradients", "dead_relu"}  # the boundary's key is above it
    for t in ("dark", "light"):
        theme.apply_theme(t, persist=False)
        for key, colour in _legend_backgrounds(ctl.views):
            assert colour.alpha() == LEGEND_ALPHA and colour.name() == theme.current().base, (t, key)
        # the legend's text in the theme's text colour (its grey was faint on the dark theme), and the
        # faint live loss line less faint there
        legend = ctl.views["loss"].loss_plot.getPlotItem().legend
        assert pg.mkColor(legend.opts["labelTextColor"]).name() == theme.current().text
        alpha = ctl.views["loss"].raw_curve.opts["pen"].color().alpha()
        assert alpha == (150 if t == "dark" else 70)


def test_fit_to_view_from_the_toolbar_and_ctrl_0_shows_the_whole_network(editor, qtbot):
    """The action passed triggered()'s checked=False as fit_to_view's max_zoom: the canvas was
    scaled by 0 (empty, zoom 0 %), and the next Zoom In divided by zero."""
    view = editor.view
    view.zoom_by(0.2)  # far out, as after much wheeling
    settle()
    for press in (editor.act_fit.trigger,
                  lambda: QTest.keyClick(view.viewport(), Qt.Key_0, Qt.ControlModifier)):
        view.setFocus()
        view.zoom_by(3.0)
        settle()
        press()
        settle()
        assert 0.05 < view.zoom() <= 1.0
        shown = view.mapToScene(view.viewport().rect()).boundingRect()
        assert shown.contains(editor.scene.nodes_rect())
    before = view.zoom()
    editor.act_zoom_in.trigger()
    assert view.zoom() > before
    grid = editor.act_grid.isChecked()
    editor.act_grid.trigger()  # a checkable action's slot still gets its state
    assert editor.act_grid.isChecked() != grid
    editor.act_grid.trigger()
