"""Auto-layout keeps every edge in sight: a skip connection never runs behind the nodes it jumps."""
from __future__ import annotations

import pytest

from engine.graph import Graph
from engine.layout import COLUMN_STEP, ROW_STEP, layered_layout
from engine.templates import TEMPLATES, chain

NODE_W, NODE_H = 150.0, 68.0  # gui.canvas.node_item's node size (the engine does not import the GUI)


def skip_and_concat() -> Graph:
    """Input -> fc1 -> relu1 -> fc2 -> Add(fc2, fc1) -> Concat(add1, relu1) -> fc3 -> Output, the
    graph whose two skips auto-layout had hidden behind fc2 and Add."""
    g = Graph()
    inp, fc1, relu1, fc2 = chain(g, [("Input", {}), ("Linear", {"units": 64}), ("ReLU", {}),
                                    ("Linear", {"units": 64})])
    add = g.add_node("Add", {})
    g.connect(fc2.id, add.id)
    g.connect(fc1.id, add.id)
    cat = g.add_node("Concat", {})
    g.connect(add.id, cat.id)
    g.connect(relu1.id, cat.id)
    chain(g, [("Linear", {"units": 10}), ("Output", {})], start=cat)
    return g


def hidden_edges(graph: Graph, placed: dict) -> list[str]:
    """Edges whose straight line from port to port crosses a node other than their own two."""
    def crosses(x0, y0, x1, y1, box) -> bool:
        bx0, by0 = box
        for k in range(1, 40):  # points along the segment, strictly inside the span
            t = k / 40
            x, y = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
            if bx0 < x < bx0 + NODE_W and by0 < y < by0 + NODE_H:
                return True
        return False

    out = []
    for e in graph.edges:
        (ux, uy), (vx, vy) = placed[e.src], placed[e.dst]
        x0, y0, x1, y1 = ux + NODE_W, uy + NODE_H / 2, vx, vy + NODE_H / 2
        if any(crosses(x0, y0, x1, y1, placed[n.id]) for n in graph.nodes if n.id not in (e.src, e.dst)):
            out.append(f"{graph.node(e.src).name}->{graph.node(e.dst).name}")
    return out


@pytest.mark.parametrize("make", [skip_and_concat, *[t[1] for t in TEMPLATES.values()]],
                         ids=["skip_and_concat", *TEMPLATES])
def test_no_edge_runs_behind_a_node_and_nodes_keep_their_distance(make):
    graph = make()
    placed = layered_layout(graph)
    assert set(placed) == {n.id for n in graph.nodes}
    assert hidden_edges(graph, placed) == []
    boxes = sorted(placed.values())
    for i, (x, y) in enumerate(boxes):
        for x2, y2 in boxes[i + 1:]:
            assert abs(x - x2) >= COLUMN_STEP - 1e-6 or abs(y - y2) >= ROW_STEP - 1e-6


def test_a_chain_stays_on_one_line_and_columns_follow_the_data_flow():
    g = Graph()
    nodes = chain(g, [("Input", {}), ("Linear", {"units": 8}), ("ReLU", {}), ("Linear", {"units": 2}),
                      ("Output", {})])
    placed = layered_layout(g)
    assert [placed[n.id] for n in nodes] == [(i * COLUMN_STEP, 0.0) for i in range(5)]
    graph = skip_and_concat()
    placed = layered_layout(graph)
    for e in graph.edges:
        assert placed[e.dst][0] > placed[e.src][0]


def test_every_starter_is_laid_out_with_no_edge_behind_a_node():
    from engine.project import list_starters, load_starter

    names = [s["name"] for s in list_starters()]
    assert len(names) >= 8
    for name in names:
        graph = load_starter(name).graph
        assert hidden_edges(graph, layered_layout(graph)) == [], name
