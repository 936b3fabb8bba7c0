"""The lab in the app (issue 11, phase 2), driven through the real window offscreen: the lab panel
ticks as the student edits, locks refuse with their reason (undo included), the palette offers
the lab's layers only, progress survives save and re-open, and metric checks leave the window
responsive.  The window here has the lab UI without the training UI (no training process): the
run-driven parts are in test_lab_training.py.
"""
from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QElapsedTimer, QPointF, Qt, QTimer  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication, QMenu  # noqa: E402

import lab_support  # noqa: E402
from engine.labs import load_bundled_lab, new_project_from_lab  # noqa: E402
from engine.labs.format import lab_from_dict  # noqa: E402
from engine.labs.progress import answers, events, revealed_hints, ticked  # noqa: E402
from gui import dialogs  # noqa: E402
from gui.commands import (AddNodeCommand, InsertOnEdgeCommand, RemoveNodeCommand, RenameCommand,  # noqa: E402
                          SetParamCommand)
from gui.lab_locks import LabLocked  # noqa: E402
from gui.lab_panel import MARK_CHECKING, MARK_MET, MARK_OPEN  # noqa: E402
from lab_window import close, dlg, make_window, settle, win  # noqa: E402,F401  (dlg, win: fixtures)

XOR = "xor-hidden-layer"


def open_lab(qtbot, w, lab_id=XOR):
    assert w.lab_actions.open_bundled(lab_id)
    settle(qtbot, w)
    return w.lab.lab


def node_by_name(w, name):
    return w.document.graph.node_by_name(name)


# ----------------------------------------------------------------------------- opening and ticking
def test_opening_a_bundled_lab_shows_its_steps_and_locks_in_force(qtbot, win):
    lab = open_lab(qtbot, win)
    assert win.document.lab is lab and win.document.project.lab["id"] == XOR
    panel = win.lab_panel
    assert win.lab_dock.isVisible() and panel.title.text().startswith("1 · The first neuron")
    assert list(panel.cards) == [s.id for s in lab.steps]
    # the starter already keeps within the budget: that step is ticked, the others are not
    assert panel.cards["keep-it-small"].mark.text() == MARK_MET
    assert panel.cards["add-hidden"].mark.text() == MARK_OPEN
    assert panel.summary.text().startswith("1 of 5 steps done")
    # the first step not done is open; its question is asked in the panel, not as a sentence
    assert panel.open_step == "single-neuron" and panel.cards["single-neuron"].is_open
    assert len(panel.cards["single-neuron"].questions) == 1
    # the panel starts at the top (the introduction); it opened scrolled past it to the first step
    QApplication.processEvents()
    assert panel.scroll.verticalScrollBar().value() == 0
    panel.open("keep-it-small")  # a later step is brought into view
    QApplication.processEvents()
    header = panel.cards["keep-it-small"].header
    top = header.mapTo(panel.scroll.viewport(), header.rect().topLeft()).y()
    assert 0 <= top and top + header.height() <= panel.scroll.viewport().height()
    panel.open("single-neuron")
    # what the lab fixes is one folded line until opened
    assert panel.locks_label.isHidden() and not panel.locks_button.isHidden()
    panel.locks_button.click()
    assert not panel.locks_label.isHidden()
    assert "the layers input1, output1" in panel.locks_label.text() and "The data and its split" in \
        panel.locks_label.text()
    # the intro's picture (a data: URI in the lab) reached the text document
    assert panel.intro.document().toHtml().count("<img") == 1
    assert not panel.intro.document().resource(3, next(iter(panel.pictures))).isNull()


def test_no_lab_widens_its_panel_past_the_dock_even_with_a_larger_font(qtbot, dlg):
    """A choice's options were radio buttons, whose text does not wrap: a long option made the panel
    wider than its dock, and it slid sideways (no scroll bar to bring it back), cutting every line's
    start.  Options wrap now; checked for every bundled lab's every step, at this machine's font and
    at 11 pt (a desktop's larger default), in a window made after the font was set."""
    from PySide6.QtWidgets import QRadioButton

    from engine.labs.format import list_labs
    from gui.lab_panel import OptionRow

    font = QApplication.font()
    for points in (font.pointSizeF(), 11.0):
        larger = QApplication.font()
        larger.setPointSizeF(points)
        QApplication.setFont(larger)
        w = make_window(qtbot)
        try:
            panel = w.lab_panel
            bar = panel.scroll.horizontalScrollBar()
            for lab_id in [entry["id"] for entry in list_labs()]:
                open_lab(qtbot, w, lab_id)
                assert panel.font().pointSizeF() == points
                for step_id, card in panel.cards.items():
                    panel.open(step_id)
                    QApplication.processEvents()
                    width = panel.scroll.viewport().width()
                    assert panel.scroll.widget().minimumSizeHint().width() <= width, (lab_id, step_id, points)
                    for box in card.questions:
                        for button in box.findChildren(QRadioButton):
                            button.setFocus()  # focus scrolled the panel to the (too wide) button
                    QApplication.processEvents()
                    assert bar.maximum() == 0 and bar.value() == 0, (lab_id, step_id, points)
                    # ... and nothing is cut instead: a wrapped title or option gets the height it needs
                    for _ in range(3):
                        QApplication.processEvents()
                    for label in [card.title] + [r.label for b in card.questions for r in b.findChildren(OptionRow)]:
                        assert label.height() >= label.heightForWidth(label.width()), (lab_id, step_id, label.text())
            # an option is picked by a click on its text too, and the answer is the option's text
            open_lab(qtbot, w, XOR)
            box = panel.cards["single-neuron"].questions[0]
            row = box.findChildren(OptionRow)[1]
            QTest.mouseClick(row.label, Qt.LeftButton)
            assert row.button.isChecked() and box.value() == box.question.options[1]
        finally:
            close(w)
            QApplication.setFont(font)


def test_a_step_ticks_when_an_edit_meets_its_goal(qtbot, win):
    open_lab(qtbot, win)
    panel = win.lab_panel
    card = panel.cards["add-hidden"]
    panel.open("add-hidden")
    assert "Add a hidden layer: the network has none yet" in card.goal_label.text()
    doc = win.document
    edge = next(e.id for e in doc.graph.edges if e.src == "input1")
    doc.push(InsertOnEdgeCommand(doc, edge, "Linear"))  # the hidden layer, not yet activated
    settle(qtbot, win)
    assert card.mark.text() == MARK_OPEN
    assert "activation layer" in card.goal_label.text()  # what is still missing, in its own words
    hidden = next(n for n in doc.graph.nodes if n.type == "Linear" and n.id != "fc1")
    edge = next(e.id for e in doc.graph.edges if e.src == hidden.id)
    doc.push(InsertOnEdgeCommand(doc, edge, "ReLU"))
    settle(qtbot, win)
    assert card.mark.text() == MARK_MET
    assert "add-hidden" in ticked(doc.project)  # saved with the project
    assert panel.open_step == "single-neuron"  # on to the first step still to do
    doc.undo_stack.undo()
    settle(qtbot, win)
    assert card.mark.text() == MARK_OPEN and "add-hidden" not in ticked(doc.project)


# ----------------------------------------------------------------------------- locks
def test_a_locked_node_refuses_deletion_with_its_reason_and_undo_cannot_remove_it(qtbot, win):
    open_lab(qtbot, win)
    doc, scene = win.document, win.scene
    scene.select_only(["input1"])
    win.act_delete.trigger()
    assert doc.graph.has_node("input1")
    shown = win.statusBar().currentMessage()
    assert shown == "'input1' is locked by the lab: the Input takes its shape from the lab's data."
    assert doc.undo_stack.count() == 0
    with pytest.raises(LabLocked, match="locked by the lab"):
        RemoveNodeCommand(doc, "input1")
    # delete everything: the unlocked layer goes, the locked ones stay; undo and redo keep them
    win.select_all()
    win.act_delete.trigger()
    assert {n.id for n in doc.graph.nodes} == {"input1", "output1"}
    assert "'output1' is locked" in win.statusBar().currentMessage()
    for _ in range(3):
        doc.undo_stack.undo()
        assert doc.graph.has_node("fc1") and doc.graph.has_node("input1")
        doc.undo_stack.redo()
        assert {n.id for n in doc.graph.nodes} == {"input1", "output1"}
    while doc.undo_stack.canUndo():
        doc.undo_stack.undo()
    assert {"input1", "output1"} <= {n.id for n in doc.graph.nodes}
    # the canvas draws them locked, and says why when hovered
    item = scene.nodes["input1"]
    assert item.lock_text and "Locked by the lab" in item.toolTip()
    assert scene.nodes["fc1"].lock_text is None


def test_a_locked_node_refuses_edits_in_the_inspector_and_the_commands(qtbot, win):
    # lab 3 locks the whole network: only its training settings change
    lab = open_lab(qtbot, win, "loss-learning-rate-optimizers")
    doc, scene, inspector = win.document, win.scene, win.inspector
    scene.select_only(["fc1"])
    assert inspector.node_id == "fc1"
    assert not inspector.form_host.isEnabled()
    assert not inspector.lock_label.isHidden()
    reason = lab.locks.nodes["fc1"].reason
    assert "'fc1' is locked by the lab" in inspector.lock_label.text()
    assert reason[1:] in inspector.lock_label.text()
    before = dict(doc.graph.node("fc1").params)
    with pytest.raises(LabLocked, match="'fc1' is locked by the lab"):
        SetParamCommand(doc, "fc1", "units", 3)
    with pytest.raises(LabLocked):
        RenameCommand(doc, "fc1", "first")
    assert not inspector.commit("units", 3)  # the form refuses too, saying why
    assert "locked by the lab" in inspector.error_label.text()
    assert doc.graph.node("fc1").params == before and doc.undo_stack.count() == 0
    # lab 1 locks only the Output's deletion: its settings still change
    open_lab(qtbot, win)
    scene.select_only(["output1"])
    assert inspector.form_host.isEnabled() and inspector.lock_label.isHidden()
    assert inspector.commit("loss", "mse")
    assert doc.graph.node("output1").params["loss"] == "mse"
    with pytest.raises(LabLocked):
        RemoveNodeCommand(doc, "output1")


def test_locks_end_when_a_project_without_a_lab_opens(qtbot, win):
    open_lab(qtbot, win)
    assert win.act_new.trigger() is None
    settle(qtbot, win)
    assert win.document.lab is None and not win.lab_dock.isVisible()
    win.scene.select_only([win.document.graph.nodes[0].id])
    win.act_delete.trigger()
    assert len(win.document.graph.nodes) == 1
    assert win.palette.visible_types() == [t for t in win.palette._items]  # every layer type again


def test_locks_coming_into_force_clear_the_undo_history(qtbot, win, dlg, tmp_path):
    """A project that names a lab LayerLab cannot find is edited, then its lab file is located:
    undo must not reach back past the locks."""
    doc_ = load_bundled_lab(XOR).to_dict()
    doc_["id"] = "xor-copy"
    lab_path = tmp_path / "xor-copy.json"
    lab_path.write_text(json.dumps(doc_), encoding="utf-8")
    win.open_project(new_project_from_lab(lab_from_dict(doc_)))
    settle(qtbot, win)
    assert win.document.lab is None and win.lab.missing == ("xor-copy", doc_["title"])
    assert win.lab_dock.isVisible() and win.lab_panel.missing_box.isVisible()
    assert "cannot find" in win.lab_panel.missing_label.text()
    doc = win.document
    doc.push(AddNodeCommand(doc, "Conv2d", {}, (0, 300)))  # allowed: no lab is known yet
    assert doc.undo_stack.count() == 1
    dlg.open_path = str(lab_path)
    assert win.lab_actions.locate_lab()
    settle(qtbot, win)
    assert win.document.lab is not None and win.document.lab.id == "xor-copy"
    assert doc.undo_stack.count() == 0 and doc.is_modified()
    assert win.lab_panel.cards and win.lab_panel.missing_box.isHidden()
    # a file of another lab is refused with a sentence
    other = tmp_path / "other.json"
    other.write_text(json.dumps(load_bundled_lab("regression-metrics").to_dict()), encoding="utf-8")
    dlg.open_path = str(other)
    assert not win.lab_actions.locate_lab()
    assert "was made from the lab 'xor-copy'" in dlg.errors[-1][1]


def test_the_palette_and_quick_add_offer_only_the_labs_layers(qtbot, win, monkeypatch):
    from gui.palette import SHORT_PALETTE_PX

    QApplication.processEvents()  # without a lab the palette has the left column: the hint line shows
    assert win.palette.height() >= SHORT_PALETTE_PX and not win.palette.hint.isHidden()
    lab = open_lab(qtbot, win)
    allowed = list(lab.locks.palette)
    shown = win.palette.visible_types()
    assert sorted(shown) == sorted(allowed)
    assert win.palette.allowed_note.isVisible() and "offers these layers only" in win.palette.allowed_note.text()
    # under the Lab panel the palette's dock is short: its list gets the room, the hint line waits
    # (it had left one row of the list, at 1280x800 with a desktop font); the search box still says it
    QApplication.processEvents()
    assert win.palette.height() < SHORT_PALETTE_PX and win.palette.hint.isHidden()
    assert win.palette.hint.text() in win.palette.search.toolTip()
    quick = win.view.quick_add_at(QPointF(0, 0), win.view.mapToGlobal(win.view.rect().center()))
    assert sorted(quick.visible_types()) == sorted(allowed)
    quick.edit.setText("conv")
    assert quick.visible_types() == []
    quick.close()
    # the canvas's context menu lists the same
    menus = []
    monkeypatch.setattr(dialogs, "exec_menu", lambda menu, pos: menus.append(menu))

    class Ev:
        def scenePos(self):
            return QPointF(-2000, -2000)

        def screenPos(self):
            return win.view.mapToGlobal(win.view.rect().center())

    win.scene.contextMenuEvent(Ev())
    add = next(a.menu() for a in menus[0].actions() if a.menu() is not None and a.text() == "Add layer")
    offered = [b.text() for a in add.actions() if isinstance(a.menu(), QMenu) for b in a.menu().actions()]
    assert sorted(offered) == sorted(allowed)
    # and a layer from elsewhere is refused with the lab's sentence
    with pytest.raises(LabLocked, match="palette has no Conv2d"):
        win.scene.add_layer("Conv2d", QPointF(0, 200))
    assert not win.document.graph.nodes_of_type("Conv2d")


def test_the_dataset_panel_is_read_only_in_a_lab(qtbot, win):
    open_lab(qtbot, win)
    panel = win.dataset_panel
    assert not panel.combo.isEnabled() and not panel.apply_button.isEnabled()
    assert "The lab fixes the data" in panel.combo.toolTip()
    assert "The lab fixes the data" in panel.lock_label.text()
    assert not panel.use_spec({"source": "moons"})
    assert win.document.project.data["source"] == "xor"


# ----------------------------------------------------------------------------- progress
def test_progress_survives_save_and_reopen(qtbot, win, dlg, tmp_path):
    open_lab(qtbot, win)
    panel = win.lab_panel
    doc = win.document
    # answer the first question in its box, reveal a hint, meet a step by editing
    box = panel.cards["single-neuron"].questions[0]
    box.choose("About 75%: three quadrants right")
    box.check_button.click()
    settle(qtbot, win)
    assert "is not right" in panel.cards["single-neuron"].goal_label.text()
    box.choose("About 50%: no better than guessing")
    box.check_button.click()
    settle(qtbot, win)
    assert panel.cards["single-neuron"].mark.text() == MARK_MET
    panel.open("add-hidden")
    panel.cards["add-hidden"].hint_button.click()
    assert revealed_hints(doc.project, "add-hidden") == 1
    assert len(panel.cards["add-hidden"].hint_views) == 1
    assert "Hint 1" in panel.cards["add-hidden"].hint_views[0].toPlainText()
    assert panel.cards["add-hidden"].hint_button.text() == "Show a hint (1 of 2 left)"
    win.lab.record("view_opened", view="decision_boundary")
    settle(qtbot, win)
    assert panel.cards["see-the-boundary"].mark.text() == MARK_MET
    assert doc.is_modified()
    path = str(tmp_path / "work.layerlab")
    assert win._save_to(path)
    ticks = ticked(doc.project)
    assert set(ticks) == {"single-neuron", "see-the-boundary", "keep-it-small"}
    close(win)

    fresh = make_window(qtbot)
    try:
        assert fresh.open_path(path, ask=False)
        # the saved ticks show at once, before the check confirms them
        panel = fresh.lab_panel
        assert {sid for sid, c in panel.cards.items() if c.mark.text() == MARK_MET} == set(ticks)
        settle(qtbot, fresh)
        assert {sid for sid, c in panel.cards.items() if c.mark.text() == MARK_MET} == set(ticks)
        project = fresh.document.project
        assert answers(project) == {"single-neuron": "About 50%: no better than guessing"}
        assert revealed_hints(project, "add-hidden") == 1
        assert {"kind": "view_opened", "view": "decision_boundary"} in events(project)
        box = panel.cards["single-neuron"].questions[0]
        assert box.value() == "About 50%: no better than guessing"
        assert len(panel.cards["add-hidden"].hint_views) == 1
        assert not fresh.document.is_modified()  # re-checking what was saved changes nothing
    finally:
        close(fresh)


def test_a_number_question_takes_a_decimal_comma(qtbot, win):
    open_lab(qtbot, win, "loss-learning-rate-optimizers")
    panel = win.lab_panel
    card = panel.cards["chance-loss"]
    box = card.questions[0]
    assert box.edit is not None
    q = box.question
    box.choose(f"{q.answer:.3f}".replace(".", ","))
    box.edit.returnPressed.emit()
    settle(qtbot, win)
    assert card.mark.text() == MARK_MET
    assert answers(win.document.project)["chance-loss"] == pytest.approx(round(q.answer, 3))


# ----------------------------------------------------------------------------- responsiveness
def test_the_window_stays_responsive_while_a_metric_goal_is_checked(qtbot, win, monkeypatch):
    """A metric goal's forward pass runs off the GUI thread; meanwhile the window paints and the
    step says "checking…".  The measurement is made slow here (a sleep before the real one) so
    the test does not depend on how loaded the machine is."""
    import engine.labs.check as check

    real = check.measure

    def slow(*args, **kwargs):
        time.sleep(1.2)
        return real(*args, **kwargs)

    monkeypatch.setattr(check, "measure", slow)
    project = lab_support.trained_solution(XOR)
    win.open_project(project)
    card = win.lab_panel.cards["solve"]
    gaps = []
    clock = QElapsedTimer()
    clock.start()
    last = [0]
    seen_checking = []

    def tick():
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now
        seen_checking.append(card.mark.text() == MARK_CHECKING)

    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(tick)
    timer.start()
    qtbot.waitUntil(lambda: win.lab.report is not None, timeout=30_000)
    timer.stop()
    assert clock.elapsed() >= 1000
    # a blocked event loop would show one gap as long as the measurement (1.2 s); a shared, busy
    # machine may delay a tick now and then, but it keeps ticking while the check runs
    assert max(gaps[1:]) < 1000, f"the event loop stalled for {max(gaps[1:])} ms"
    assert sum(seen_checking) >= 10, "the training step did not say it was being checked while it was"
    settle(qtbot, win)
    assert card.mark.text() == MARK_MET
    assert "Test accuracy" in card.goal_label.text() or win.lab_panel.open_step != "solve"


# ----------------------------------------------------------------------------- explanations
def test_the_explain_panels_signals_tick_inspection_goals(qtbot, win):
    """The insight panels (gui/insight, another extension) emit attributionRun(str) and
    sanityCheckRun(list) on ``window.insight.explain``; the lab records them whenever that
    extension is installed (here: after the lab UI, as a stand-in with the same signals)."""
    from PySide6.QtCore import QObject, Signal

    class Explain(QObject):
        attributionRun = Signal(str)
        sanityCheckRun = Signal(list)

    class Insight:
        explain = Explain()
        evaluation_dock = explain_dock = None

    open_lab(qtbot, win, "explaining-predictions")
    win.insight = Insight()
    win.lab_recorder.connect_sources()
    panel = win.lab_panel
    assert panel.cards["saliency"].mark.text() == MARK_OPEN
    win.insight.explain.attributionRun.emit("occlusion")
    settle(qtbot, win)
    assert panel.cards["second-method"].mark.text() == MARK_MET
    assert panel.cards["saliency"].mark.text() == MARK_OPEN
    panel.open("saliency")
    assert "you ran: occlusion" in panel.cards["saliency"].goal_label.text()
    win.insight.explain.attributionRun.emit("saliency")
    win.insight.explain.sanityCheckRun.emit(["saliency", "gradcam"])
    settle(qtbot, win)
    assert panel.cards["saliency"].mark.text() == MARK_MET and panel.cards["sanity"].mark.text() == MARK_MET
    assert {"kind": "sanity_check_run", "method": "gradcam"} in events(win.document.project)
    # the autosave copy keeps the lab record (progress survives a crash too)
    assert win.document.snapshot().lab == win.document.project.lab


def test_pasting_a_layer_the_palette_does_not_offer_is_refused(qtbot, win):
    from PySide6.QtWidgets import QApplication

    from gui.commands import copy_fragment
    from engine.graph import Graph

    open_lab(qtbot, win)
    g = Graph()
    g.add_node("Conv2d", {}, (0, 0), "conv1")
    QApplication.clipboard().setText(json.dumps(copy_fragment(g, [n.id for n in g.nodes])))
    assert win.scene.paste() == []
    assert "palette has no Conv2d" in win.statusBar().currentMessage()
    assert not win.document.graph.nodes_of_type("Conv2d") and win.document.undo_stack.count() == 0
