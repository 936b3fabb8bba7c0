"""Canvas items as a drag moves them: a node snaps to the grid, and its edges follow it (both run
through NodeItem.itemChange); tooltips are built when asked for, with the current state."""
from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QPointF  # noqa: E402

from engine.project import load_starter  # noqa: E402
from gui.canvas.node_item import GRID  # noqa: E402
from gui.canvas.scene import GraphScene  # noqa: E402
from gui.document import Document  # noqa: E402


@pytest.fixture
def scene(qapp):
    doc = Document(load_starter())
    s = GraphScene(doc)
    yield s
    s.clear()


def test_a_dragged_node_snaps_to_the_grid_and_its_edges_follow(scene):
    edge = next(iter(scene.edges.values()))
    node = edge.src_item
    before = edge.boundingRect()
    node.setPos(QPointF(node.pos().x() + 123.4, node.pos().y() + 56.7))  # as a mouse drag moves it
    assert node.pos().x() % GRID == 0 and node.pos().y() % GRID == 0
    start = edge._path.pointAtPercent(0.0)
    port = node.port_pos(edge.src_port, False)
    assert (start.x(), start.y()) == pytest.approx((port.x(), port.y()))
    assert edge.boundingRect() != before
    scene.snap_to_grid = False
    node.setPos(QPointF(node.pos().x() + 3.3, node.pos().y()))
    assert node.pos().x() % GRID == pytest.approx(3.3)


def test_tooltips_say_the_current_state_when_read(scene):
    item = next(i for i in scene.nodes.values() if i.spec.type == "Linear")
    assert item.spec.description in item.toolTip()
    assert "Output shape per sample" in item.toolTip()
    port = next(iter(item.inputs.values()))
    assert "drag here from another layer" in port.toolTip()
    edge = next(iter(scene.edges.values()))
    assert edge.toolTip().startswith("Tensor per sample: (")
    item.set_lock("Locked by the lab: keep this layer.")
    assert "Locked by the lab" in item.toolTip()


def test_a_shape_badge_shows_the_whole_shape_zoomed_out_as_well(qapp):
    """Zoomed out (the big badge font), a conv layer's badge read "→ (32, 28, …": its last size hidden."""
    from PySide6.QtGui import QFontMetricsF

    from gui.canvas.node_item import NODE_W, font

    doc = Document(load_starter("fashion-cnn"))
    doc.flush()
    sc = GraphScene(doc)
    conv = next(n for n in doc.graph.nodes if n.type == "Conv2d")
    item = sc.nodes[conv.id]
    assert item.shape_text == "(32, 28, 28)"
    zoomed_in, zoomed_out = QFontMetricsF(font("badge")), QFontMetricsF(font("badge_big"))
    assert item.badge_label(zoomed_in) == "→ (32, 28, 28)"
    label = item.badge_label(zoomed_out)
    assert label == "→ 32×28×28" and zoomed_out.horizontalAdvance(label) + 12 <= NODE_W - 14  # whole, in the node
