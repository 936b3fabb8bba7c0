"""The node-graph editor, driven through its real widgets (offscreen, pytest-qt).

Covers issue 3's acceptance list: palette drag creates a node, port-to-port drag
creates an edge, undo/redo restore exactly equal documents, invalid connections are
refused with a reason, a shape mismatch shows the error state and its one-click fix
clears it, save/reopen round-trips, autosave recovery, the inspector refuses an
out-of-range value, and bad project files leave the document untouched.
"""
from __future__ import annotations

import json
import math
import os
import time
import zipfile

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QColor, QDragEnterEvent, QDragMoveEvent, QDropEvent, QImage, QKeySequence  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from engine.graph import COLUMN_STEP  # noqa: E402
from engine.project import load_starter  # noqa: E402
from gui import dialogs, theme  # noqa: E402
from gui.canvas.node_item import GRID, NodeItem  # noqa: E402
from gui.commands import (AddNodeCommand, ConnectCommand, RemoveNodeCommand, SetParamCommand,  # noqa: E402
                          auto_layout)
from gui.document import Document  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402


# ----------------------------------------------------------------------------- fixtures
class DialogLog:
    """Replaces every modal dialog: records what would have been shown, answers as told."""

    def __init__(self):
        self.errors: list[tuple[str, str]] = []
        self.infos: list[tuple[str, str]] = []
        self.yes_no = True
        self.save_changes = "discard"
        self.recover = "recover"
        self.save_path = ""
        self.open_path = ""
        self.questions: list[str] = []


@pytest.fixture
def dlg(monkeypatch, tmp_path):
    log = DialogLog()
    monkeypatch.setenv("LAYERLAB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("LAYERLAB_RECOVERY_DIR", str(tmp_path / "recovery"))
    monkeypatch.setattr(dialogs, "show_error", lambda parent, title, text: log.errors.append((title, text)))
    monkeypatch.setattr(dialogs, "show_info", lambda parent, title, text: log.infos.append((title, text)))

    def ask(parent, title, text):
        log.questions.append(text)
        return log.yes_no

    def ask_save(parent, name):
        log.questions.append(f"save {name}?")
        return log.save_changes

    def ask_recover(parent, description):
        log.questions.append(f"Recover {description}?")
        return log.recover

    monkeypatch.setattr(dialogs, "ask_yes_no", ask)
    monkeypatch.setattr(dialogs, "ask_save_changes", ask_save)
    monkeypatch.setattr(dialogs, "ask_recover", ask_recover)
    monkeypatch.setattr(dialogs, "get_save_path", lambda *a, **k: log.save_path)
    monkeypatch.setattr(dialogs, "get_open_path", lambda *a, **k: log.open_path)
    return log


@pytest.fixture
def window(qtbot, dlg):
    theme.apply_theme("light", persist=False)
    w = MainWindow(Document(load_starter()), extensions=[])
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    w.document.flush()
    yield w
    close_for_good(w)


def close_for_good(w) -> None:
    """Close without questions and delete now (a deleted window costs nothing in later tests)."""
    w._close_confirmed = True
    w.close()
    w.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.DeferredDelete)


def settle(window) -> None:
    QApplication.processEvents()
    window.document.flush()
    QApplication.processEvents()


def viewport_pos(window, scene_pos: QPointF) -> QPoint:
    return window.view.mapFromScene(scene_pos)


def drag(window, a: QPoint, b: QPoint) -> None:
    """Press at viewport point ``a``, move in steps, release at ``b``: the real mouse path."""
    vp = window.view.viewport()
    QTest.mousePress(vp, Qt.LeftButton, Qt.NoModifier, a)
    for k in range(1, 5):
        QTest.mouseMove(vp, a + (b - a) * (k / 4.0))
    QTest.mouseRelease(vp, Qt.LeftButton, Qt.NoModifier, b)
    settle(window)


def drag_ports(window, src_port, dst_port) -> None:
    drag(window, viewport_pos(window, src_port.scenePos()), viewport_pos(window, dst_port.scenePos()))


def cancel_busy_dialog() -> None:
    """Press Cancel on the busy dialog of a slow load (gui/busy.py), as a person would."""
    from PySide6.QtWidgets import QProgressDialog, QPushButton

    for d in QApplication.topLevelWidgets():
        if isinstance(d, QProgressDialog) and d.isVisible():
            next(b for b in d.findChildren(QPushButton) if "Cancel" in b.text()).click()


def input_linear_output(window):
    """A fresh document: Input, Output and one unconnected Linear(auto) 'fc1'."""
    doc = window.document
    doc.new(None)  # Input and Output only
    settle(window)
    doc.push(AddNodeCommand(doc, "Linear", {"units": "auto"}, (280, 0)))
    settle(window)
    return doc.graph


def node_by_name(window, name):
    return window.document.graph.node_by_name(name)


def item_of(window, name) -> NodeItem:
    return window.scene.nodes[node_by_name(window, name).id]


def break_cnn(window):
    """The CNN template with Conv2d -> Linear and no Flatten in between (a shape error)."""
    doc = window.document
    doc.new("cnn")
    settle(window)
    g = doc.graph
    for name in ("gap1", "flatten1"):
        doc.push(RemoveNodeCommand(doc, g.node_by_name(name).id))
    doc.push(ConnectCommand(doc, g.node_by_name("relu2").id, g.node_by_name("fc1").id))
    settle(window)
    return g.node_by_name("fc1")


# ----------------------------------------------------------------------------- acceptance
def test_palette_drag_creates_node(window):
    doc = window.document
    before = len(doc.graph.nodes)
    palette = window.palette
    item = palette.item_for("Linear")
    mime: QMimeData = palette.tree.mimeData([item])  # what the palette's drag carries
    vp = window.view.viewport()
    drop_at = QPoint(vp.width() // 2, vp.height() // 3)
    actions = Qt.CopyAction
    enter = QDragEnterEvent(drop_at, actions, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(vp, enter)
    assert enter.isAccepted()
    move = QDragMoveEvent(drop_at, actions, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(vp, move)
    assert move.isAccepted()
    drop = QDropEvent(QPointF(drop_at), actions, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(vp, drop)
    settle(window)
    assert len(doc.graph.nodes) == before + 1
    new = doc.graph.nodes[-1]
    assert new.type == "Linear" and new.name == "fc4"
    item = window.scene.nodes[new.id]
    assert item.sceneBoundingRect().contains(window.view.mapToScene(drop_at))  # dropped under the cursor
    assert doc.selected_node == new.id and window.inspector.node_id == new.id
    doc.undo_stack.undo()
    assert len(doc.graph.nodes) == before and new.id not in window.scene.nodes


def _palette_drag(window, type_name: str, at: QPoint, drop: bool = True):
    """A palette drag of ``type_name`` moved to ``at`` in the canvas viewport (and dropped there)."""
    palette = window.palette
    mime: QMimeData = palette.tree.mimeData([palette.item_for(type_name)])
    vp = window.view.viewport()
    QApplication.sendEvent(vp, QDragEnterEvent(at, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    QApplication.sendEvent(vp, QDragMoveEvent(at, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    if drop:
        QApplication.sendEvent(vp, QDropEvent(QPointF(at), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    settle(window)


def test_a_layer_dropped_on_a_connection_is_inserted_on_it(window):
    """A layer dropped on a connection landed beside it, unconnected; only the right-click menu spliced."""
    doc, g = window.document, window.document.graph
    fc1, relu = g.node_by_name("fc1"), g.node_by_name("relu1")
    edge = next(e for e in g.edges if e.src == fc1.id and e.dst == relu.id)
    item = window.scene.edges[edge.id]
    on_edge = window.view.mapFromScene(item._path.pointAtPercent(0.5))  # the middle of the pipe
    before = g.to_dict()
    _palette_drag(window, "Dropout", on_edge, drop=False)  # hovering: the connection is marked, and said
    assert item._drop_target
    assert "Drop to insert Dropout between 'fc1' and 'relu1'" in window.statusBar().currentMessage()
    mime = window.palette.tree.mimeData([window.palette.item_for("Dropout")])  # kept: the event does not own it
    QApplication.sendEvent(window.view.viewport(), QDragMoveEvent(QPoint(2, 2), Qt.CopyAction, mime,
                                                                  Qt.LeftButton, Qt.NoModifier))
    assert not item._drop_target  # moved off it
    _palette_drag(window, "Dropout", on_edge)
    new = doc.graph.nodes[-1]
    assert new.type == "Dropout" and doc.selected_node == new.id
    joined = {(e.src, e.dst) for e in doc.graph.edges if new.id in (e.src, e.dst)}
    assert joined == {(fc1.id, new.id), (new.id, relu.id)}
    assert not any(e.src == fc1.id and e.dst == relu.id for e in doc.graph.edges)
    # fc1 and relu1 sit close: centred on the drop it would hide both, so it goes in line after fc1
    # and the layers from relu1 on move right (it had gone a row below them)
    assert new.pos == (fc1.pos[0] + COLUMN_STEP, fc1.pos[1]) and relu.pos[0] == new.pos[0] + COLUMN_STEP
    rect = window.scene.nodes[new.id].sceneBoundingRect()
    assert not any(rect.intersects(it.sceneBoundingRect()) for nid, it in window.scene.nodes.items() if nid != new.id)
    assert doc.analysis.ok and "Inserted Dropout" in window.statusBar().currentMessage()
    doc.undo_stack.undo()  # one step back to the graph as it was
    settle(window)
    assert doc.graph.to_dict() == before
    # a layer with no input (Input) cannot go on a connection: it is added beside it
    _palette_drag(window, "Input", on_edge)
    assert doc.graph.nodes[-1].type == "Input" and len(doc.graph.edges) == len(before["edges"])


def test_the_keyboard_alone_walks_the_layers_and_connects_them(window, monkeypatch):
    """Connecting two layers took a mouse drag between their ports, and Tab reached no layer: no
    keyboard way to build a network.  Tab now walks the layers left to right (and past the last,
    moves on); Shift+F10 or the Menu key opens the selected layer's menu, which connects it."""
    from PySide6.QtGui import QContextMenuEvent

    from gui.commands import delete_items

    shown = []
    monkeypatch.setattr(dialogs, "exec_menu", lambda menu, pos: shown.append(menu))
    doc, view = window.document, window.view
    g = doc.graph
    relu2, fc3 = g.node_by_name("relu2"), g.node_by_name("fc3")
    delete_items(doc, [], [next(e.id for e in g.edges if e.src == relu2.id and e.dst == fc3.id)])
    settle(window)
    assert not doc.analysis.ok
    order = [n.id for n in sorted(g.nodes, key=lambda n: (n.pos[0], n.pos[1]))]
    view.setFocus()
    for k in range(order.index(relu2.id) + 1):
        QTest.keyClick(view, Qt.Key_Tab)
        assert doc.selected_node == order[k]
    assert window.statusBar().currentMessage() == "ReLU 'relu2' · Tab: next layer · Shift+F10: its menu"
    QTest.keyClick(view, Qt.Key_Tab, Qt.ShiftModifier)  # back one, and forward again
    assert doc.selected_node == order[order.index(relu2.id) - 1]
    QTest.keyClick(view, Qt.Key_Tab)
    QTest.keyClick(view, Qt.Key_F10, Qt.ShiftModifier)
    (menu,) = shown
    connect_to = next(a.menu() for a in menu.actions() if a.text() == "Connect output to")
    labels = [a.text() for a in connect_to.actions()]
    assert "Linear 'fc3'" in labels and "Linear 'fc1'" not in labels  # fc1 would close a loop
    next(a for a in connect_to.actions() if a.text() == "Linear 'fc3'").trigger()
    settle(window)
    assert any(e.src == relu2.id and e.dst == fc3.id for e in g.edges) and doc.analysis.ok
    # the Menu key asks at the middle of the view; the menu is the selected layer's all the same
    at = QPoint(3, 3)
    QApplication.sendEvent(view.viewport(), QContextMenuEvent(QContextMenuEvent.Keyboard, at,
                                                              view.viewport().mapToGlobal(at), Qt.NoModifier))
    # relu2's one input is taken now: the entry says why it offers nothing (it was greyed out mutely)
    assert len(shown) == 2 and any(a.text() == "Connect input from: no free port fits" for a in shown[1].actions())
    # past the last layer, Tab leaves the canvas with nothing selected
    for _ in range(len(order) - 1 - order.index(relu2.id)):
        QTest.keyClick(view, Qt.Key_Tab)
    assert doc.selected_node == order[-1]
    QTest.keyClick(view, Qt.Key_Tab)
    assert doc.selected_node == "" and window.statusBar().currentMessage() == ""


def test_palette_double_click_and_search(window, qtbot):
    doc = window.document
    window.palette.search.setText("conv")
    assert set(window.palette.visible_types()) == {"Conv1d", "Conv2d"}
    window.palette.search.setText("")
    item = window.palette.item_for("ReLU")
    window.palette.tree.scrollToItem(item)
    rect = window.palette.tree.visualItemRect(item)
    # Qt 6's mouseDClick alone does not count as a double-click on an item view; a click comes first, as for real
    QTest.mouseClick(window.palette.tree.viewport(), Qt.LeftButton, Qt.NoModifier, rect.center())
    QTest.mouseDClick(window.palette.tree.viewport(), Qt.LeftButton, Qt.NoModifier, rect.center())
    settle(window)
    assert doc.graph.nodes[-1].type == "ReLU"
    item = window.scene.nodes[doc.graph.nodes[-1].id]
    assert window.view.viewport().rect().intersects(window.view.mapFromScene(item.sceneBoundingRect()).boundingRect())


def test_port_drag_creates_edge(window):
    doc = window.document
    g = input_linear_output(window)
    inp, out, fc = g.node_by_name("input1"), g.node_by_name("output1"), g.node_by_name("fc1")
    window.view.fit_to_view()
    settle(window)
    drag_ports(window, window.scene.nodes[inp.id].outputs["out"], window.scene.nodes[fc.id].inputs["in"])
    assert [(e.src, e.dst) for e in g.edges] == [(inp.id, fc.id)]
    # the other way round: from an input port back to an output port
    drag_ports(window, window.scene.nodes[out.id].inputs["in"], window.scene.nodes[fc.id].outputs["out"])
    assert [(e.src, e.dst) for e in g.edges] == [(inp.id, fc.id), (fc.id, out.id)]
    assert len(window.scene.edges) == 2
    assert doc.analysis.ok  # Input -> Linear(auto) -> Output is a complete network on moons
    assert window.scene.nodes[fc.id].shape_text == "(2)"
    assert window.scene.preview_items() == []  # the preview pipe is gone


def test_zoomed_far_out_the_hovered_layer_shows_its_ports_and_connects(window):
    g = input_linear_output(window)
    inp, fc = window.scene.nodes[g.node_by_name("input1").id], window.scene.nodes[g.node_by_name("fc1").id]
    window.view.fit_to_view()
    window.view.set_zoom(0.2, inp.sceneBoundingRect().center())
    settle(window)
    port = inp.outputs["out"]
    assert not window.scene.port_detail and not port.isVisible()
    vp = window.view.viewport()
    QTest.mouseMove(vp, viewport_pos(window, inp.sceneBoundingRect().center()))
    settle(window)
    assert port.isVisible() and port.scale() == pytest.approx(5.0, rel=0.05)
    assert port.sceneBoundingRect().width() * window.view.zoom() >= 15  # big enough to grab on screen
    # drag from the revealed port to the other layer's body: its input is chosen
    drag(window, viewport_pos(window, port.scenePos()), viewport_pos(window, fc.sceneBoundingRect().center()))
    assert [(e.src, e.dst) for e in g.edges] == [(inp.node_id, fc.node_id)]
    QTest.mouseMove(vp, QPoint(2, 2))  # away from every layer: the ports hide again
    settle(window)
    assert not port.isVisible() and port.scale() == 1.0


def test_invalid_connection_is_refused_with_reason(window):
    doc = window.document
    g = doc.graph
    edges_before = g.to_dict()["edges"]
    inp, fc2 = g.node_by_name("input1"), g.node_by_name("fc2")
    drag_ports(window, item_of(window, "input1").outputs["out"], item_of(window, "fc2").inputs["in"])
    assert g.to_dict()["edges"] == edges_before
    assert window.scene.last_refusal == g.connection_problem(inp.id, fc2.id)
    assert "already has an input" in window.scene.last_refusal
    assert "already has an input" in window.statusBar().currentMessage()
    # a cycle is refused too
    drag_ports(window, item_of(window, "fc3").outputs["out"], item_of(window, "fc1").inputs["in"])
    assert g.to_dict()["edges"] == edges_before
    assert window.scene.last_refusal


def test_undo_redo_restore_exactly_equal_documents(window):
    doc = window.document
    g = doc.graph
    snapshots = [g.to_dict()]

    def step(fn):
        fn()
        settle(window)
        snapshots.append(g.to_dict())

    fc1 = g.node_by_name("fc1").id
    step(lambda: doc.push(SetParamCommand(doc, fc1, "units", 32)))
    step(lambda: doc.push(AddNodeCommand(doc, "Dropout", {"p": 0.3}, (200, 200))))
    drop = g.node_by_name("dropout1").id
    step(lambda: window.scene.select_only([fc1, g.node_by_name("relu1").id]) or window.scene.duplicate_selection())
    step(lambda: window.scene.select_only([drop]) or window.scene.delete_selection())
    step(lambda: window.scene.select_only([g.node_by_name("relu2").id]) or window.scene.delete_selection())
    step(lambda: auto_layout(doc))
    window.act_undo.trigger()  # undo the auto-layout: it leaves history
    settle(window)
    snapshots.pop()
    assert g.to_dict() == snapshots[-1]
    n = doc.undo_stack.index()
    assert n == len(snapshots) - 1
    for k in range(n, 0, -1):
        doc.undo_stack.undo()
        assert g.to_dict() == snapshots[k - 1]
    for k in range(1, n + 1):
        doc.undo_stack.redo()
        assert g.to_dict() == snapshots[k]
    # the scene mirrors the graph after all of it
    assert set(window.scene.nodes) == {x.id for x in g.nodes}
    assert set(window.scene.edges) == {e.id for e in g.edges}
    for node in g.nodes:
        assert window.scene.nodes[node.id].pos().toTuple() == node.pos


def test_shape_mismatch_shows_error_and_fix_clears_it(window, qtbot):
    doc = window.document
    fc = break_cnn(window)
    broken = doc.graph.to_dict()
    item = window.scene.nodes[fc.id]
    assert item.errors and "Linear" in item.errors[0].message
    assert item.fix_chip.isVisible() and "Flatten" in item.fix_chip.text
    assert "insert Flatten" in item.toolTip()
    assert window.problems.list.count() >= 1 and window.problems.fix_button.isEnabled()
    assert "cannot be compiled" in _code_text(window)
    # click the one-click fix under the node
    window.view.centerOn(item)
    settle(window)
    chip = item.fix_chip
    at = viewport_pos(window, chip.mapToScene(chip.boundingRect().center()))
    QTest.mouseClick(window.view.viewport(), Qt.LeftButton, Qt.NoModifier, at)
    settle(window)
    assert doc.analysis.ok, doc.analysis.issues
    assert not item.errors and not item.fix_chip.isVisible()
    assert [n.type for n in doc.graph.nodes].count("Flatten") == 1
    fixed = doc.graph.to_dict()
    doc.undo_stack.undo()
    settle(window)
    assert doc.graph.to_dict() == broken and window.scene.nodes[fc.id].errors
    doc.undo_stack.redo()
    settle(window)
    assert doc.graph.to_dict() == fixed and not window.scene.nodes[fc.id].errors


def _code_text(window) -> str:
    window.code_view.refresh()
    return window.code_view.text()


def test_save_reopen_round_trips(window, tmp_path, dlg):
    doc = window.document
    g = doc.graph
    doc.push(SetParamCommand(doc, g.node_by_name("fc1").id, "units", 48))
    settle(window)
    assert window.isWindowModified() and "[*]" in window.windowTitle()
    dlg.save_path = str(tmp_path / "mine")  # no suffix: .layerlab is added
    assert window.save()
    path = str(tmp_path / "mine.layerlab")
    assert os.path.exists(path) and zipfile.is_zipfile(path)
    assert not window.isWindowModified() and doc.path == path
    saved_graph, saved_data = g.to_dict(), dict(doc.project.data)

    other = MainWindow(Document(load_starter("iris-mlp")), extensions=[], autosave=False)
    try:
        assert other.open_path(path)
        assert other.document.graph.to_dict() == saved_graph
        assert other.document.project.data == saved_data
        assert not other.isWindowModified()
        assert other.document.analysis.total_params == doc.analysis.total_params
    finally:
        close_for_good(other)
    # plain .json works too
    assert window._save_to(str(tmp_path / "graph.json"))
    doc.new("mlp")
    assert window.open_path(str(tmp_path / "graph.json"))
    assert doc.graph.to_dict() == saved_graph


def test_autosave_recovery(window, qtbot, dlg, tmp_path):
    from gui.app import offer_recovery
    doc = window.document
    doc.push(SetParamCommand(doc, doc.graph.node_by_name("fc2").id, "units", 17))
    settle(window)
    edited = doc.graph.to_dict()
    saver = window.autosaver
    assert saver.save_if_needed() and os.path.exists(saver.path)
    assert not saver.save_if_needed()  # nothing changed since
    recovery_file = saver.path
    # a crash: the process dies holding nothing; the recovery file stays behind
    saver.timer.stop()
    saver.lock.unlock()
    # The dead session never cleans up: point it at a throwaway folder (never os.devnull: as root,
    # an atomic save or a cleanup there replaces or deletes the /dev/null device).
    saver.path = saver.meta_path = str(tmp_path / "dead-session-recovery")

    fresh = MainWindow(Document(load_starter()), extensions=[])
    try:
        assert fresh.document.graph.to_dict() != edited
        # left unanswered (closed, or the app ended while it was open), it is offered again
        dlg.recover = "later"
        assert not offer_recovery(fresh) and os.path.exists(recovery_file)
        dlg.recover = "recover"
        assert offer_recovery(fresh)
        assert dlg.questions and "Recover" in dlg.questions[-1]
        assert fresh.document.graph.to_dict() == edited
        assert fresh.document.is_modified() and fresh.isWindowModified()
        assert not os.path.exists(recovery_file)  # adopted as the new session's recovery file
        assert os.path.exists(fresh.autosaver.path)
        # a clean exit removes it, and nothing is offered next time
        fresh._close_confirmed = True
        fresh.close()
        assert not os.path.exists(fresh.autosaver.path)
        third = MainWindow(Document(load_starter()), extensions=[])
        assert not offer_recovery(third)
        close_for_good(third)
    finally:
        close_for_good(fresh)


def test_inspector_refuses_out_of_range_value(window):
    doc = window.document
    fc1 = doc.graph.node_by_name("fc1")
    window.scene.select_only([fc1.id])
    settle(window)
    insp = window.inspector
    assert insp.node_id == fc1.id
    spin = insp.editors["units"].widget
    depth = doc.undo_stack.count()
    spin.setFocus()
    spin.selectAll()
    QTest.keyClicks(spin, "0")
    QTest.keyClick(spin, Qt.Key_Return)
    settle(window)
    assert doc.graph.node(fc1.id).params["units"] == 64
    assert doc.undo_stack.count() == depth
    assert insp.error_label.isVisibleTo(insp) and "at least 1" in insp.error_label.text()
    assert spin.value() == 64  # the form shows the real value again
    # a valid value is one undoable step and clears the message
    spin.selectAll()
    QTest.keyClicks(spin, "128")
    QTest.keyClick(spin, Qt.Key_Return)
    settle(window)
    assert doc.graph.node(fc1.id).params["units"] == 128
    assert not insp.error_label.isVisibleTo(insp)
    assert item_of(window, "fc2").params_text == "8.3k params"
    doc.undo_stack.undo()
    settle(window)
    assert doc.graph.node(fc1.id).params["units"] == 64 and spin.value() == 64
    # a refusal's sentence also goes when the layer changes some other way (here: a redo)
    spin.selectAll()
    QTest.keyClicks(spin, "0")
    QTest.keyClick(spin, Qt.Key_Return)
    settle(window)
    assert insp.error_label.isVisibleTo(insp)
    doc.undo_stack.redo()
    settle(window)
    assert doc.graph.node(fc1.id).params["units"] == 128 and not insp.error_label.isVisibleTo(insp)


def test_inspector_widgets_follow_the_spec(window):
    doc = window.document
    doc.new("cnn")
    settle(window)
    conv = doc.graph.node_by_name("conv1")
    window.scene.select_only([conv.id])
    insp = window.inspector
    from PySide6.QtWidgets import QCheckBox, QComboBox, QSpinBox
    assert isinstance(insp.editors["out_channels"].widget, QSpinBox)
    assert isinstance(insp.editors["bias"].widget, QCheckBox)
    assert "filters" in insp.editors["out_channels"].toolTip()
    insp.editors["bias"].widget.setChecked(False)
    assert doc.graph.node(conv.id).params["bias"] is False
    out = doc.graph.node_by_name("output1")
    window.scene.select_only([out.id])
    combo = insp.editors["loss"].widget
    assert isinstance(combo, QComboBox)
    combo.activated.emit(combo.findText("mse"))
    assert doc.graph.node(out.id).params["loss"] == "mse"
    fc = doc.graph.node_by_name("fc1")
    window.scene.select_only([fc.id])
    units = insp.editors["units"]
    assert units.auto.isChecked() and not units.widget.isEnabled()
    units.auto.setChecked(False)
    assert doc.graph.node(fc.id).params["units"] == units.widget.value()
    insp.name_edit.setText("classifier")
    insp.name_edit.editingFinished.emit()
    assert doc.graph.node(fc.id).name == "classifier"
    insp.name_edit.setText("conv1")  # taken
    insp.name_edit.editingFinished.emit()
    assert doc.graph.node(fc.id).name == "classifier" and "already exists" in insp.error_label.text()


def test_bad_project_files_show_one_sentence_and_keep_the_document(window, tmp_path, dlg):
    doc = window.document
    before = doc.graph.to_dict()
    corrupt = tmp_path / "broken.layerlab"
    corrupt.write_bytes(b"PK\x03\x04 this is not really a zip")
    assert not window.open_path(str(corrupt))
    unknown = tmp_path / "future.json"
    g = load_starter().graph.to_dict()
    g["nodes"][1]["type"] = "QuantumLinear"
    unknown.write_text(json.dumps(g))
    assert not window.open_path(str(unknown))
    assert len(dlg.errors) == 2
    assert "corrupt" in dlg.errors[0][1] and "\n" not in dlg.errors[0][1]
    assert "QuantumLinear" in dlg.errors[1][1]
    assert doc.graph.to_dict() == before and doc.path is None and len(window.scene.nodes) == len(before["nodes"])


# ----------------------------------------------------------------------------- editing
def test_copy_paste_duplicate_keep_internal_edges(window):
    doc = window.document
    g = doc.graph
    ids = [g.node_by_name(n).id for n in ("fc1", "relu1", "fc2")]
    n_nodes, n_edges = len(g.nodes), len(g.edges)
    window.scene.select_only(ids)
    window.view.setFocus()
    assert window.scene.copy_selection()
    pasted = window.scene.paste()
    settle(window)
    assert len(pasted) == 3 and len(g.nodes) == n_nodes + 3 and len(g.edges) == n_edges + 2
    assert {g.node(i).name for i in pasted} == {"fc4", "relu3", "fc5"}
    assert set(window.scene.selected_node_ids()) == set(pasted)
    doc.undo_stack.undo()  # paste is one step
    assert len(g.nodes) == n_nodes and len(g.edges) == n_edges
    window.scene.select_only(ids)
    window.scene.cut_selection()
    assert len(g.nodes) == n_nodes - 3
    doc.undo_stack.undo()
    assert len(g.nodes) == n_nodes and len(g.edges) == n_edges
    window.scene.select_only(ids[:2])
    dup = window.scene.duplicate_selection()
    assert len(dup) == 2 and len(g.edges) == n_edges + 1


def test_keyboard_shortcuts_on_the_canvas(window):
    doc = window.document
    g = doc.graph
    n = len(g.nodes)
    window.scene.select_only([g.node_by_name("relu1").id])
    window.view.setFocus()
    QApplication.processEvents()
    QTest.keySequence(window.view, QKeySequence(QKeySequence.Delete))
    settle(window)
    assert len(g.nodes) == n - 1
    QTest.keySequence(window.view, QKeySequence(QKeySequence.Undo))
    settle(window)
    assert len(g.nodes) == n
    QTest.keySequence(window.view, QKeySequence(QKeySequence.Redo))
    settle(window)
    assert len(g.nodes) == n - 1


def test_double_click_on_empty_canvas_finds_and_adds_a_layer_there(window):
    doc = window.document
    window.view.fit_to_view()
    settle(window)
    empty = window.scene.nodes_rect().bottomRight() + QPointF(200, 150)
    vp_pos = viewport_pos(window, empty)
    n = len(doc.graph.nodes)
    QTest.mouseDClick(window.view.viewport(), Qt.LeftButton, Qt.NoModifier, vp_pos)
    popup = window.view._quick_add
    assert popup is not None and popup.isVisible()
    QTest.keyClicks(popup.edit, "batchnorm")
    assert popup.visible_types() == ["BatchNorm1d", "BatchNorm2d"]
    QTest.keyClick(popup.edit, Qt.Key_Down)  # the second match
    QTest.keyClick(popup.edit, Qt.Key_Return)
    settle(window)
    assert not popup.isVisible() and len(doc.graph.nodes) == n + 1
    node = doc.graph.nodes[-1]
    assert node.type == "BatchNorm2d"
    centre = window.scene.nodes[node.id].sceneBoundingRect().center()
    assert abs(centre.x() - empty.x()) <= GRID + 1 and abs(centre.y() - empty.y()) <= GRID + 10  # where clicked
    doc.undo_stack.undo()
    assert len(doc.graph.nodes) == n
    # Escape adds nothing; words match descriptions too
    window.view.quick_add_at(empty, window.view.viewport().mapToGlobal(vp_pos))
    QTest.keyClicks(popup.edit, "negative zero")
    assert "ReLU" in popup.visible_types()
    QTest.keyClick(popup.edit, Qt.Key_Escape)
    assert not popup.isVisible() and len(doc.graph.nodes) == n


def test_the_canvas_shows_when_it_has_the_keyboard(window, qtbot):
    """Nothing showed where the keys would go: the canvas now has an accent border while it has focus."""
    view = window.view
    window.activateWindow()
    view.setFocus()
    qtbot.waitUntil(view.hasFocus)
    selection = QColor(theme.current().selection)

    def border() -> QColor:
        view.viewport().repaint()
        return view.viewport().grab().toImage().pixelColor(1, view.viewport().height() // 2)

    assert border() == selection
    # scrolled (Tab brings a layer into view), the border is drawn anew: Qt had moved its pixels,
    # leaving a stray line inside the canvas where the right edge had been
    vp = view.viewport()
    view.horizontalScrollBar().setValue(view.horizontalScrollBar().value() + 30)
    QApplication.processEvents()
    shown = window.screen().grabWindow(window.winId()).toImage()  # what is on screen, not a fresh render
    at = vp.mapTo(window, QPoint(vp.width() - 2 - 30, vp.height() // 2))
    stray = shown.pixelColor(at.x(), at.y())
    assert stray != selection and border() == selection
    window.palette.search.setFocus()
    qtbot.waitUntil(lambda: not view.hasFocus())
    assert border() != selection


def test_add_layer_from_the_keyboard_goes_after_the_selected_layer(window):
    """The quick-add search opened on a double-click only, and its layer came unconnected."""
    doc, view, g = window.document, window.view, window.document.graph
    fc2, relu2 = g.node_by_name("fc2"), g.node_by_name("relu2")
    window.scene.select_only([fc2.id])
    before = g.to_dict()
    after_fc2 = g.downstream(relu2.id)
    at = {n.id: n.pos for n in g.nodes}
    view.fit_to_view()
    settle(window)
    assert view.shows_whole_graph()
    view.setFocus()
    QTest.keySequence(view, QKeySequence("Ctrl+K"))
    popup = view._quick_add
    assert popup is not None and popup.isVisible()
    QTest.keyClicks(popup.edit, "dropout")
    QTest.keyClick(popup.edit, Qt.Key_Return)
    settle(window)
    new = g.nodes[-1]
    assert new.type == "Dropout" and doc.selected_node == new.id
    # fc2 fed relu2 alone: the new layer goes on that connection
    assert {(e.src, e.dst) for e in g.edges if new.id in (e.src, e.dst)} == {(fc2.id, new.id), (new.id, relu2.id)}
    assert doc.analysis.ok
    rect = window.scene.nodes[new.id].sceneBoundingRect()
    assert not any(rect.intersects(item.sceneBoundingRect()) for nid, item in window.scene.nodes.items()
                   if nid != new.id)  # not on top of the layer that was there
    # in line with fc2 (it went a row below the chain), the layers after it moved right to make room
    assert new.pos == (fc2.pos[0] + COLUMN_STEP, fc2.pos[1])
    shift = relu2.pos[0] - at[relu2.id][0]
    assert shift > 0 and relu2.pos[0] >= new.pos[0] + COLUMN_STEP
    assert all(n.pos == (at[n.id][0] + shift, at[n.id][1]) for n in g.nodes if n.id in after_fc2)
    assert all(n.pos == at[n.id] for n in g.nodes if n.id in at and n.id not in after_fc2)
    settle(window)
    assert view.shows_whole_graph()  # the moved Output did not slide off the fitted canvas
    doc.undo_stack.undo()  # insert and room: one step
    settle(window)
    assert g.to_dict() == before
    doc.undo_stack.redo()
    settle(window)
    assert new.id in window.scene.nodes and relu2.pos[0] == at[relu2.id][0] + shift
    # from the Output (no output of its own) the layer is added, unconnected, and the status bar says why
    window.scene.select_only([g.nodes_of_type("Output")[0].id])
    QTest.keySequence(view, QKeySequence("Ctrl+K"))
    QTest.keyClicks(popup.edit, "relu")
    QTest.keyClick(popup.edit, Qt.Key_Return)
    settle(window)
    relu = g.nodes[-1]
    assert relu.type == "ReLU" and not g.in_edges(relu.id)
    assert "not connected" in window.statusBar().currentMessage()
    # from a layer that feeds nothing yet, the new one is fed by it: added and connected in one undo step
    window.scene.select_only([relu.id])
    before = g.to_dict()
    QTest.keySequence(view, QKeySequence("Ctrl+K"))
    QTest.keyClicks(popup.edit, "linear")
    QTest.keyClick(popup.edit, Qt.Key_Return)
    settle(window)
    fc = g.nodes[-1]
    assert fc.type == "Linear" and [e.src for e in g.in_edges(fc.id)] == [relu.id]
    doc.undo_stack.undo()
    settle(window)
    assert g.to_dict() == before


def test_an_in_line_insert_moves_a_parallel_layer_the_moved_ones_would_cover(window):
    """Only the layers the connection leads to moved; a parallel branch's layer level with them,
    where one of them landed, ended up under it."""
    doc, g = window.document, window.document.graph
    fc2, relu2 = g.node_by_name("fc2"), g.node_by_name("relu2")
    after = g.downstream(relu2.id)
    last = max((g.node(n) for n in after), key=lambda n: n.pos[0])
    shift = math.ceil((fc2.pos[0] + 2 * COLUMN_STEP - relu2.pos[0]) / GRID) * GRID
    # a side branch from relu1, ending where the last layer will land
    doc.push(AddNodeCommand(doc, "Linear", {"units": 4}, (last.pos[0] + shift, last.pos[1])))
    side = g.nodes[-1]
    doc.push(ConnectCommand(doc, g.node_by_name("relu1").id, side.id))
    settle(window)
    at = {n.id: n.pos for n in g.nodes}
    edge = next(e for e in g.edges if (e.src, e.dst) == (fc2.id, relu2.id))
    window.scene.insert_layer_on(edge.id, "Dropout")
    settle(window)
    assert side.pos == (at[side.id][0] + shift, at[side.id][1])
    assert all(n.pos == (at[n.id][0] + shift, at[n.id][1]) for n in g.nodes if n.id in after)
    rects = {nid: item.sceneBoundingRect() for nid, item in window.scene.nodes.items()}
    assert not [(a, b) for a in rects for b in rects if a < b and rects[a].intersects(rects[b])]
    left = [n for n in g.nodes if n.id in at and n.pos[0] < relu2.pos[0] - shift and n.id != side.id]
    assert left and all(n.pos == at[n.id] for n in left)  # nothing left of the gap moved
    doc.undo_stack.undo()
    settle(window)
    assert {n.id: n.pos for n in g.nodes} == at


def test_a_long_network_opens_readable_from_its_input_and_a_short_one_whole(window):
    """A 19-layer CNN opened fitted at 22 %: coloured blocks without a word on them."""
    from engine.graph import Graph
    from engine.project import Project
    from engine.templates import chain
    from gui.canvas.node_item import LOW_DETAIL
    from gui.canvas.view import OPEN_ZOOM

    view = window.view
    g = Graph()
    chain(g, [("Input", {})] + [("Linear", {"units": 8}), ("ReLU", {})] * 20 + [("Output", {})])
    window.document.open_project(Project(graph=g, data={"source": "moons"}))
    settle(window)
    assert abs(view.zoom() - OPEN_ZOOM) < 1e-6 and OPEN_ZOOM > LOW_DETAIL and not view.shows_whole_graph()
    shown = view.mapToScene(view.viewport().rect()).boundingRect()
    inp = window.scene.nodes[g.nodes_of_type("Input")[0].id].sceneBoundingRect()
    assert shown.contains(inp)  # read from its start
    window.view.fit_to_view()  # Fit to View still shows it all, however small
    assert view.shows_whole_graph() and view.zoom() < LOW_DETAIL
    window.document.new("mlp")
    settle(window)
    assert view.shows_whole_graph() and view.zoom() >= LOW_DETAIL


def test_arrow_keys_nudge_the_selection_and_a_run_of_nudges_undoes_at_once(window):
    doc = window.document
    a, b = item_of(window, "fc1"), item_of(window, "relu1")
    a.setSelected(True)
    b.setSelected(True)
    start = {n: doc.graph.node(n).pos for n in (a.node_id, b.node_id)}
    depth = doc.undo_stack.count()
    window.view.setFocus()
    for key in (Qt.Key_Right, Qt.Key_Right, Qt.Key_Down):
        QTest.keyClick(window.view, key)
    QTest.keyClick(window.view, Qt.Key_Left, Qt.ShiftModifier)  # five grid steps
    settle(window)
    for n, (x, y) in start.items():
        assert doc.graph.node(n).pos == (x + 2 * GRID - 5 * GRID, y + GRID)
    assert doc.undo_stack.count() == depth + 1  # one step, however many presses
    doc.undo_stack.undo()
    settle(window)
    assert {n: doc.graph.node(n).pos for n in start} == start
    assert item_of(window, "fc1").pos().x() == start[a.node_id][0]  # the canvas follows the graph
    a.setSelected(False)
    b.setSelected(False)
    before = doc.graph.to_dict()
    QTest.keyClick(window.view, Qt.Key_Right)  # nothing selected: arrows do not edit
    assert doc.graph.to_dict() == before


def test_rubber_band_and_drag_move_is_one_undo_step(window):
    doc = window.document
    window.view.fit_to_view()
    settle(window)
    vp = window.view.viewport()
    a, b = item_of(window, "fc1"), item_of(window, "relu1")
    rect = a.sceneBoundingRect().united(b.sceneBoundingRect()).adjusted(-25, -25, 25, 25)
    p0, p1 = viewport_pos(window, rect.topLeft()), viewport_pos(window, rect.bottomRight())
    QTest.mousePress(vp, Qt.LeftButton, Qt.NoModifier, p0)
    QTest.mouseMove(vp, (p0 + p1) / 2)
    QTest.mouseMove(vp, p1)
    QTest.mouseRelease(vp, Qt.LeftButton, Qt.NoModifier, p1)
    settle(window)
    assert set(window.scene.selected_node_ids()) == {a.node_id, b.node_id}
    before = doc.graph.to_dict()
    depth = doc.undo_stack.count()
    start = viewport_pos(window, a.mapToScene(40, 40))
    QTest.mousePress(vp, Qt.LeftButton, Qt.NoModifier, start)
    for k in range(1, 6):
        QTest.mouseMove(vp, start + QPoint(0, 12 * k))
    QTest.mouseRelease(vp, Qt.LeftButton, Qt.NoModifier, start + QPoint(0, 60))
    settle(window)
    assert doc.undo_stack.count() == depth + 1
    moved_a, moved_b = doc.graph.node(a.node_id).pos, doc.graph.node(b.node_id).pos
    assert moved_a[1] > 0 and moved_a[1] == moved_b[1] and moved_a[1] % 10 == 0  # snapped, both moved
    doc.undo_stack.undo()
    assert doc.graph.to_dict() == before


def test_auto_layout_is_one_undoable_step(window):
    doc = window.document
    doc.new("residual")
    settle(window)
    g = doc.graph
    for k, n in enumerate(g.nodes):  # scramble
        doc.graph.move(n.id, (k * 37.0 % 300, k * 53.0 % 400))
    doc.undo_stack.clear()
    scrambled = g.to_dict()
    window.act_layout.trigger()
    settle(window)
    assert doc.undo_stack.count() == 1
    xs = {n.name: n.pos[0] for n in g.nodes}
    assert xs["input1"] < xs["fc1"] < xs["add1"] < xs["output1"]
    assert len({n.pos for n in g.nodes}) == len(g.nodes)  # no overlaps
    doc.undo_stack.undo()
    assert g.to_dict() == scrambled


def test_edge_hover_tooltip_shows_shape_and_status_totals(window):
    doc = window.document
    edge = next(e for e in doc.graph.edges if doc.graph.node(e.src).name == "fc1")
    assert window.scene.edges[edge.id].toolTip() == "Tensor per sample: (64)"
    text = window.totals_label.text()
    assert "Params: 4,482" in text and "FLOPs" in text and "Activations" in text
    assert "ready to train" in window.state_label.text()


def test_ports_and_edges_light_up_under_the_mouse(window):
    window.view.fit_to_view()
    settle(window)
    vp = window.view.viewport()
    port = item_of(window, "fc1").outputs["out"]
    edge = next(iter(window.scene.edges.values()))
    for item, at in ((port, port.scenePos()), (edge, edge.mapToScene(edge._path.pointAtPercent(0.5)))):
        QTest.mouseMove(vp, viewport_pos(window, at))
        settle(window)
        assert item._hover, type(item).__name__
        QTest.mouseMove(vp, QPoint(2, 2))
        settle(window)
        assert not item._hover, type(item).__name__


def test_problems_click_selects_node(window):
    doc = window.document
    fc = break_cnn(window)
    lst = window.problems.list
    row = next(i for i in range(lst.count()) if lst.item(i).data(Qt.UserRole + 1).node_id == fc.id)
    rect = lst.visualItemRect(lst.item(row))
    QTest.mouseClick(lst.viewport(), Qt.LeftButton, Qt.NoModifier, rect.center())
    settle(window)
    assert window.scene.selected_node_ids() == [fc.id]
    assert doc.selected_node == fc.id
    window.problems.fix_button.click()
    settle(window)
    assert doc.analysis.ok


def test_code_view_shows_generated_code(window):
    text = _code_text(window)
    assert "def forward(self" in text and "self.fc1" in text
    window.code_view.show_reading("fx")
    assert "def forward(self" in _code_text(window)
    window.code_view.show_reading("class")
    doc = window.document
    doc.push(RemoveNodeCommand(doc, doc.graph.node_by_name("output1").id))
    settle(window)
    assert "no Output" in _code_text(window)


def test_code_view_class_is_the_model_and_runs(window):
    """The code view showed torch.fx's code only: no ``__init__`` (where are the layers made?) and
    ``; fc2 = fc1 = None`` on its lines.  Its default reading is now the model as a class a person
    would write; the test runs that text and checks it computes what the compiled module computes."""
    import torch

    doc = window.document
    text = _code_text(window)
    assert "def __init__(self):" in text and "self.fc1 = nn.Linear(" in text
    assert "# (batch, " in text and " = None" not in text
    namespace: dict = {}
    exec(compile(text, "<code view>", "exec"), namespace)  # the code a student reads, run as written
    name = text.split("\nclass ", 1)[1].split("(", 1)[0]
    cls = namespace[name]
    compiled = doc.compile()
    model = cls()
    model.load_state_dict(compiled.module.state_dict())
    x = torch.randn(5, *doc.dataset.input_shape)
    torch.testing.assert_close(model(x), compiled.module(x))
    # what trains is there too, without fx's clean-up lines
    window.code_view.show_reading("fx")
    fx = _code_text(window)
    assert "torch.fx" in fx and "def forward(self" in fx and "def __init__" not in fx
    assert " = None" not in fx


def test_fx_clean_up_lines_are_hidden_also_when_chained():
    from gui.code_view import readable

    code = "    fc2 = self.fc2(relu);  relu = None\n    add = fc2 + x;  fc2 = x = None\n    return add"
    assert readable(code) == "    fc2 = self.fc2(relu)\n    add = fc2 + x\n    return add"


def test_title_marks_changes_and_close_asks(window, dlg):
    doc = window.document
    assert "moons" not in window.windowTitle() or True
    assert not window.isWindowModified()
    doc.push(SetParamCommand(doc, doc.graph.node_by_name("fc1").id, "units", 8))
    assert window.isWindowModified()
    dlg.save_changes = "cancel"
    assert not window.close() and window.isVisible()
    doc.undo_stack.undo()
    assert not window.isWindowModified()  # back at the clean state


def test_dataset_choice_is_undoable_and_input_adapts(window, dlg):
    doc = window.document
    panel = window.dataset_panel
    assert doc.analysis.nodes[doc.graph.node_by_name("input1").id].shape == (2,)
    i = panel.combo.findData("iris")
    panel.combo.setCurrentIndex(i)
    panel.combo.activated.emit(i)
    settle(window)
    assert doc.project.data["source"] == "iris" and doc.context.input_shape == (4,)
    assert item_of(window, "input1").shape_text == "(4)"
    assert item_of(window, "fc3").shape_text == "(3)"  # units auto = 3 classes
    assert "iris" in panel.summary.text() and panel.table.model().rowCount() > 0
    doc.undo_stack.undo()
    settle(window)
    assert doc.project.data["source"] == "moons" and item_of(window, "input1").shape_text == "(2)"
    # bad data: a sentence, nothing changed
    assert not doc.set_data_spec({"source": "csv", "path": "/nonexistent.csv"})
    assert dlg.errors and "not found" in dlg.errors[-1][1]
    assert doc.project.data["source"] == "moons"


def test_slow_data_loads_keep_the_window_alive_and_can_be_cancelled(window, dlg, monkeypatch):
    from PySide6.QtCore import QTimer

    doc, panel = window.document, window.dataset_panel
    real = doc.load_data

    def slow(spec, *a, **k):  # a big image folder, say
        time.sleep(0.8)
        return real(spec, *a, **k)

    monkeypatch.setattr(doc, "load_data", slow)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(50)
    assert panel.use_spec({"source": "circles"})  # waits, but the event loop runs meanwhile
    timer.stop()
    assert doc.project.data["source"] == "circles" and len(ticks) >= 5

    QTimer.singleShot(500, cancel_busy_dialog)
    assert not panel.use_spec({"source": "xor"})
    assert doc.project.data["source"] == "circles" and not dlg.errors  # nothing changed, nothing to report
    assert panel.combo.currentData() == "circles"


def test_opening_a_project_whose_data_load_is_cancelled_opens_it_without_data(window, dlg, monkeypatch, tmp_path):
    from PySide6.QtCore import QTimer

    doc = window.document
    path = doc.save(str(tmp_path / "p.layerlab"))
    names = [n.name for n in doc.graph.nodes]
    real = doc.load_data
    monkeypatch.setattr(doc, "load_data", lambda *a, **k: (time.sleep(1.0), real(*a, **k))[1])

    QTimer.singleShot(500, cancel_busy_dialog)
    assert window.open_path(path, ask=False)
    assert doc.dataset is None and "cancelled" in doc.dataset_error
    assert [n.name for n in doc.graph.nodes] == names  # the graph is there; the data can be chosen again
    assert "cancelled" in window.statusBar().currentMessage()


def test_split_settings_reload_the_data_as_one_undoable_step(window, dlg):
    doc = window.document
    panel = window.dataset_panel
    n = len(doc.dataset.x_train) + len(doc.dataset.x_val) + len(doc.dataset.x_test)
    assert panel.val_box.value() == pytest.approx(20.0) and panel.stratify_box.isChecked()
    panel.val_box.setValue(30.0)
    panel.test_box.setValue(10.0)
    panel.split_seed_box.setValue(7)
    panel.apply_button.click()
    settle(window)
    spec = doc.project.data
    assert (spec["val_fraction"], spec["test_fraction"], spec["split_seed"]) == (0.3, 0.1, 7)
    counts = doc.dataset.summary()["counts"]
    assert (counts["val"], counts["test"], counts["train"]) == (round(0.3 * n), round(0.1 * n), n - round(0.4 * n))
    assert f"validation {counts['val']:,}" in panel.summary.text()
    doc.undo_stack.undo()
    settle(window)
    assert doc.project.data.get("val_fraction", 0.2) == 0.2 and panel.val_box.value() == pytest.approx(20.0)
    # settings that leave nothing to train on: a sentence, and the data stays as it was
    panel.val_box.setValue(90.0)
    panel.test_box.setValue(90.0)
    panel.apply_button.click()
    settle(window)
    assert dlg.errors and doc.project.data.get("val_fraction", 0.2) == 0.2
    assert "180 %" in dlg.errors[-1][1] and "below 100 %" in dlg.errors[-1][1]  # in the form's terms
    assert panel.val_box.value() == pytest.approx(20.0)  # the form shows the data in use again


def test_dataset_import_csv_with_target_chooser(window, tmp_path, monkeypatch):
    csv = tmp_path / "pets.csv"
    rows = ["weight,height,kind"] + [f"{w},{h},{'cat' if w < 6 else 'dog'}" for w, h in
                                     ((3, 20), (4, 25), (5, 23), (8, 50), (9, 55), (12, 60), (4.5, 22), (10, 58))]
    csv.write_text("\n".join(rows) + "\n")
    monkeypatch.setattr(dialogs, "get_open_path", lambda *a, **k: str(csv))
    seen = {}

    def choose(parent, title, label, items, current=0):
        seen["items"], seen["current"] = items, current
        return "kind"

    monkeypatch.setattr(dialogs, "get_item", choose)
    assert window.dataset_panel.import_csv()
    settle(window)
    assert seen["items"] == ["weight", "height", "kind"] and seen["current"] == 2
    doc = window.document
    assert doc.project.data["source"] == "csv" and doc.context.input_shape == (2,)
    assert "csv" in window.dataset_panel.combo.currentText()


def test_image_data_preview(window):
    doc = window.document
    doc.new("cnn")  # opens with the digits images
    settle(window)
    panel = window.dataset_panel
    assert doc.dataset.is_image
    assert panel.images_grid.count() > 0 and panel.tabs.count() == 1
    assert doc.analysis.ok


def test_overlay_tints_edges_and_shows_images(window):
    doc = window.document
    edge = doc.graph.edges[0]
    node = doc.graph.nodes[1]
    img = QImage(8, 8, QImage.Format_Grayscale8)
    img.fill(128)
    doc.overlayChanged.emit({"edge_colors": {edge.id: (255, 0, 0, 255)}, "node_images": {node.id: img}})
    assert window.scene.edges[edge.id].overlay_color.red() == 255
    assert window.scene.nodes[node.id].image is not None
    doc.overlayChanged.emit({})
    assert window.scene.edges[edge.id].overlay_color is None
    assert window.scene.nodes[node.id].image is None


def test_dark_theme_toggle_persists(window, dlg):
    from gui.recent import app_settings
    window.act_dark.trigger()
    assert theme.current().name == "dark"
    assert app_settings().value("ui/theme") == "dark"
    window.grab()  # paints without errors
    window.act_dark.trigger()
    assert theme.current().name == "light"


def test_weights_go_stale_when_the_structure_changes(window):
    import torch
    doc = window.document
    model = doc.compile().module
    seen = []
    doc.weightsChanged.connect(lambda: seen.append(doc.weights_stale))
    doc.set_weights({k: v.clone() for k, v in model.state_dict().items()})
    assert not doc.weights_stale and doc.is_modified()
    doc.push(SetParamCommand(doc, doc.graph.node_by_name("fc1").id, "units", 10))
    settle(window)
    assert doc.weights_stale
    doc.undo_stack.undo()
    settle(window)
    assert not doc.weights_stale
    assert isinstance(next(iter(doc.project.weights.values())), torch.Tensor)


def test_extensions_run_and_add_docks(qtbot, dlg):
    from PySide6.QtWidgets import QLabel
    calls = []

    def install(win):
        calls.append(win)
        win.add_dock(QLabel("training"), "Training")

    w = MainWindow(Document(load_starter()), extensions=[install], autosave=False)
    assert calls == [w] and w.extensions == [install]
    assert any(d.windowTitle() == "Training" for d in w.findChildren(type(w.inspector_dock)))
    close_for_good(w)


def test_zoom_to_cursor_and_pan(window):
    from PySide6.QtGui import QWheelEvent
    view = window.view
    vp = view.viewport()
    view.set_zoom(1.0)
    settle(window)
    at = QPointF(vp.width() * 0.3, vp.height() * 0.4)
    before = view.mapToScene(at.toPoint())
    wheel = QWheelEvent(at, vp.mapToGlobal(at), QPoint(), QPoint(0, 240), Qt.NoButton, Qt.NoModifier,
                        Qt.NoScrollPhase, False)
    QApplication.sendEvent(vp, wheel)
    assert view.zoom() > 1.3
    after = view.mapToScene(at.toPoint())
    assert abs(after.x() - before.x()) < 2 and abs(after.y() - before.y()) < 2  # the point under the cursor stays
    assert window.zoom_label.text() == f"{view.zoom() * 100:.0f}%"
    centre = view.visible_centre()
    p = QPoint(200, 200)
    QTest.mousePress(vp, Qt.MiddleButton, Qt.NoModifier, p)
    QTest.mouseMove(vp, p + QPoint(100, 50))
    QTest.mouseRelease(vp, Qt.MiddleButton, Qt.NoModifier, p + QPoint(100, 50))
    moved = view.visible_centre() - centre
    assert moved.x() < -30 and moved.y() < -15  # content followed the mouse
    assert window.document.undo_stack.count() == 0  # panning is not an edit
    view.fit_to_view()
    r = view.mapFromScene(window.scene.nodes_rect()).boundingRect()
    assert vp.rect().contains(r)


def test_dropping_a_connection_on_a_node_body_uses_its_free_port(window):
    doc = window.document
    doc.new(None)
    settle(window)
    g = doc.graph
    doc.push(AddNodeCommand(doc, "ReLU", {}, (280, 0)))
    window.view.fit_to_view()
    settle(window)
    relu = window.scene.nodes[g.node_by_name("relu1").id]
    vp = window.view.viewport()
    a = viewport_pos(window, item_of(window, "input1").outputs["out"].scenePos())
    b = viewport_pos(window, relu.mapToScene(NODE_CENTRE))
    QTest.mousePress(vp, Qt.LeftButton, Qt.NoModifier, a)
    QTest.mouseMove(vp, (a + b) / 2)
    QTest.mouseMove(vp, b)
    assert window.scene.preview_items() and window.scene.preview_items()[0].state == "valid"
    QTest.mouseRelease(vp, Qt.LeftButton, Qt.NoModifier, b)
    settle(window)
    assert [(g.node(e.src).name, g.node(e.dst).name, e.dst_port) for e in g.edges] == [("input1", "relu1", "in")]


NODE_CENTRE = QPointF(75, 40)


def test_insert_on_edge_redo_is_exact(window):
    from gui.commands import InsertOnEdgeCommand
    doc = window.document
    g = doc.graph
    before = g.to_dict()
    edge = next(e for e in g.edges if g.node(e.src).name == "fc1")
    doc.push(InsertOnEdgeCommand(doc, edge.id, "Dropout"))
    settle(window)
    after = g.to_dict()
    assert len(after["nodes"]) == len(before["nodes"]) + 1
    for _ in range(2):
        doc.undo_stack.undo()
        assert g.to_dict() == before
        doc.undo_stack.redo()
        assert g.to_dict() == after
    assert set(window.scene.nodes) == {n.id for n in g.nodes}


def test_spin_steps_merge_but_separate_edits_do_not(window, monkeypatch):
    import time

    import gui.commands as commands
    doc = window.document
    fc1 = doc.graph.node_by_name("fc1").id
    window.scene.select_only([fc1])
    spin = window.inspector.editors["units"].widget
    depth = doc.undo_stack.count()
    spin.stepUp()
    spin.stepUp()
    spin.stepUp()
    assert doc.graph.node(fc1).params["units"] == 67 and doc.undo_stack.count() == depth + 1
    clock = [time.monotonic() + 1000.0]
    monkeypatch.setattr(commands.time, "monotonic", lambda: clock[0])
    spin.stepUp()
    clock[0] += 5.0
    spin.stepUp()
    assert doc.undo_stack.count() == depth + 3
    doc.undo_stack.undo()
    assert doc.graph.node(fc1).params["units"] == 68


def test_import_npz_and_image_folder(window, tmp_path, monkeypatch):
    import numpy as np
    doc = window.document
    rng = np.random.default_rng(0)
    npz = tmp_path / "data.npz"
    np.savez(npz, x=rng.normal(size=(60, 5)).astype("float32"), y=rng.integers(0, 3, size=60))
    monkeypatch.setattr(dialogs, "get_open_path", lambda *a, **k: str(npz))
    assert window.dataset_panel.import_npz()
    settle(window)
    assert doc.context.input_shape == (5,) and doc.context.n_outputs == 3
    assert item_of(window, "input1").shape_text == "(5)"
    from PIL import Image
    for cls, value in (("dark", 30), ("light", 220)):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for k in range(6):
            Image.new("L", (12, 12), value + k).save(tmp_path / "imgs" / cls / f"{k}.png")
    monkeypatch.setattr(dialogs, "get_directory", lambda *a, **k: str(tmp_path / "imgs"))
    assert window.dataset_panel.import_image_folder()
    settle(window)
    assert doc.dataset.is_image and window.dataset_panel.images_grid.count() > 0
    assert "dark" in window.dataset_panel.summary.text() or doc.dataset.class_names == ["dark", "light"]
    # an MLP on images: the Linear after Input needs a Flatten, and the editor says so
    assert not doc.analysis.ok
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    settle(window)
    assert doc.project.data["source"] == "moons"


def test_recent_files_and_hints(window, tmp_path, dlg):
    from gui.recent import recent_files
    dlg.save_path = str(tmp_path / "a.layerlab")
    assert window.save_as()
    assert recent_files()[0] == str(tmp_path / "a.layerlab")
    window._fill_recent()
    assert [a.text() for a in window.recent_menu.actions()] == ["a.layerlab"]
    doc = window.document
    assert window.view._hint_kind() == ""
    doc.new(None)
    assert window.view._hint_kind() == "blank"
    doc.push(AddNodeCommand(doc, "Linear", {}, (200, 0)))
    assert window.view._hint_kind() == "unconnected"
    window.select_all()
    window.scene.delete_selection()
    assert window.view._hint_kind() == "empty" and not doc.graph.nodes
    window.grab()  # the hint paints


def test_run_app_opens_the_starter_lab_and_exits_cleanly(qtbot, dlg, monkeypatch, tmp_path):
    import gui.app as app_mod
    from PySide6.QtCore import QTimer
    monkeypatch.setattr(app_mod, "default_extensions", lambda: [])
    seen = {}

    def close_all():
        for w in QApplication.topLevelWidgets():
            if isinstance(w, MainWindow) and w.isVisible():
                seen.update(title=w.windowTitle(), nodes=len(w.document.graph.nodes), ok=w.document.analysis.ok,
                            recovery=w.autosaver.path)
                w.close()

    QTimer.singleShot(200, close_all)
    assert app_mod.run_app(["layerlab"]) == 0
    assert seen["nodes"] == 7 and seen["ok"] and "LayerLab" in seen["title"]
    assert not os.path.exists(seen["recovery"])
    assert dlg.questions == []  # nothing to recover after a clean start


def test_context_menus_offer_fix_and_insert(window, monkeypatch):
    from PySide6.QtGui import QContextMenuEvent
    doc = window.document
    fc = break_cnn(window)
    window.view.fit_to_view()
    settle(window)
    shown = []

    monkeypatch.setattr(dialogs, "exec_menu", lambda menu, pos: shown.append(menu))

    def menu_at(scene_pos):
        p = viewport_pos(window, scene_pos)
        vp = window.view.viewport()
        QApplication.sendEvent(vp, QContextMenuEvent(QContextMenuEvent.Mouse, p, vp.mapToGlobal(p)))
        return shown[-1]

    def actions(menu):
        out = {}
        for a in menu.actions():
            out[a.text()] = a
            if a.menu() is not None:
                out.update({f"{a.text()}/{b.text()}": b for b in a.menu().actions()})
        return out

    node_menu = actions(menu_at(window.scene.nodes[fc.id].mapToScene(NODE_CENTRE)))
    fix = next(a for t, a in node_menu.items() if t.startswith("Apply fix"))
    fix.trigger()
    settle(window)
    assert doc.analysis.ok
    edge = next(e for e in doc.graph.edges if doc.graph.node(e.dst).type == "Output")
    path_mid = window.scene.edges[edge.id]._path.pointAtPercent(0.5)
    edge_menu = actions(menu_at(path_mid))
    edge_menu["Insert layer here/Dropout"].trigger()
    settle(window)
    dropout = doc.graph.node(doc.graph.in_edges(doc.graph.node_by_name("output1").id)[0].src)
    assert dropout.type == "Dropout"
    # it went halfway between its ends, on top of both when they sat close; now in line, clear of them
    rect = window.scene.nodes[dropout.id].sceneBoundingRect()
    assert not any(rect.intersects(it.sceneBoundingRect()) for nid, it in window.scene.nodes.items() if nid != dropout.id)
    bg_menu = actions(menu_at(QPointF(-5000, -5000)))
    assert "Add layer/Core/Linear" not in bg_menu and "Add layer" in bg_menu and "Paste" in bg_menu


def test_open_and_save_as_start_in_the_last_files_folder_not_home(window, dlg, monkeypatch, tmp_path):
    """After New (no path), Open started in the home folder although the student's files were elsewhere."""
    folder = tmp_path / "lab_session"
    folder.mkdir()
    dlg.save_path = str(folder / "mine.layerlab")
    assert window.save_as()
    assert window.new_project()
    asked: list[str] = []
    monkeypatch.setattr(dialogs, "get_open_path", lambda parent, title, filters, directory="": asked.append(directory) or "")
    monkeypatch.setattr(dialogs, "get_save_path", lambda parent, title, filters, directory="": asked.append(directory) or "")
    window.open_dialog()
    window.save_as()
    assert asked[0] == str(folder) and os.path.dirname(asked[1]) == str(folder), asked
    # a project named with characters file systems refuse is offered under a name they take
    window.document.project.name = "Moons: why a hidden layer?"
    window.save_as()
    assert os.path.basename(asked[2]) == "Moons-why-a-hidden-layer.layerlab", asked


def test_a_layer_left_on_its_own_is_deleted_by_its_fix_chip_and_comes_back_on_undo(window, qtbot):
    from gui.commands import AddNodeCommand

    doc = window.document
    before = doc.graph.to_dict()
    doc.push(AddNodeCommand(doc, "ReLU", pos=(600.0, 300.0)))
    settle(window)
    (loose,) = [n for n in doc.graph.nodes if n.id not in {m["id"] for m in before["nodes"]}]
    item = window.scene.nodes[loose.id]
    assert item.fix_chip.isVisible() and item.fix_chip.text == "Fix: delete it"
    window.view.centerOn(item)
    settle(window)
    chip = item.fix_chip
    QTest.mouseClick(window.view.viewport(), Qt.LeftButton, Qt.NoModifier,
                     viewport_pos(window, chip.mapToScene(chip.boundingRect().center())))
    settle(window)
    assert not doc.graph.has_node(loose.id) and loose.id not in window.scene.nodes and doc.analysis.ok
    doc.undo_stack.undo()
    settle(window)
    assert doc.graph.has_node(loose.id) and loose.id in window.scene.nodes


def test_units_auto_shows_the_number_it_stands_for_and_keeps_it_when_unticked(window):
    """With "auto" ticked, the greyed units box read the layer's last manual value (64) beside Out: (2)."""
    doc = window.document
    doc.new("mlp")
    assert doc.set_data_spec({"source": "moons"})
    settle(window)
    fc = next(n for n in doc.graph.nodes if n.type == "Linear" and n.params["units"] == "auto")
    window.scene.select_only([fc.id])
    settle(window)
    units = window.inspector.editors["units"]
    assert units.auto.isChecked()
    assert units.widget.text() == "2" == str(doc.analysis.nodes[fc.id].shape[-1])
    assert doc.set_data_spec({"source": "blobs", "n_samples": 300, "noise": 1.0, "seed": 0, "n_classes": 4})
    settle(window)
    assert units.widget.text() == "4"  # follows the dataset, not the value it had
    units.auto.setChecked(False)
    settle(window)
    assert doc.graph.node(fc.id).params["units"] == 4 == doc.analysis.nodes[fc.id].shape[-1]
    doc.undo_stack.undo()
    settle(window)
    assert units.auto.isChecked() and units.widget.text() == "4" and not units.widget.isEnabled()
    units.show_resolved(None)  # no dataset gives a number: the box says so rather than guessing
    assert units.widget.text() == "?"
    units.auto.setChecked(False)
    assert units.widget.text() == "64" and units.widget.isEnabled()


def test_a_status_message_cut_by_the_bar_can_be_read_whole_on_hover(window):
    """At 1280 px long messages ran past the bar's free width and were cut, with no way to read them."""
    long = "Added ReLU 'relu9', not connected to 'output1': " + "a reason that goes on and on " * 8
    window.statusBar().showMessage(long)
    assert window.statusBar().toolTip() == long
    window.statusBar().clearMessage()
    assert window.statusBar().toolTip() == ""
