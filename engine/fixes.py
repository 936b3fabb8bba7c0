"""Applying the engine's suggested fixes to a graph, as one undoable unit."""
from __future__ import annotations

from typing import Callable

from engine.graph import Graph
from engine.validate import Fix


def insert_on_edge(graph: Graph, edge_id: str, layer_type: str, params: dict | None = None,
                   pos: tuple[float, float] | None = None) -> Callable[[], None]:
    """Put a new ``layer_type`` node on an edge (at ``pos``, else halfway between its ends); returns a
    function that undoes it exactly."""
    edge = graph.edge(edge_id)
    a, b = graph.node(edge.src), graph.node(edge.dst)
    removal = graph.disconnect(edge_id)
    if pos is None:
        pos = ((a.pos[0] + b.pos[0]) / 2, (a.pos[1] + b.pos[1]) / 2)
    node = graph.add_node(layer_type, params, pos)
    first = graph.connect(edge.src, node.id, edge.src_port, "in")
    # The second edge takes the old edge's place, so a Concat keeps its input order.
    second = graph.connect(node.id, edge.dst, "out", edge.dst_port, index=removal.index)

    def undo() -> None:
        graph.disconnect(second.id)
        graph.disconnect(first.id)
        graph.remove_node(node.id)
        graph.restore_edge(removal)

    return undo


def apply_fix(graph: Graph, fix: Fix) -> Callable[[], None]:
    """Apply ``fix``; returns a function that restores the graph exactly."""
    if fix.kind == "insert":
        return insert_on_edge(graph, fix.edge_id, fix.layer_type, dict(fix.params) or None)
    if fix.kind == "set_param":
        old = graph.set_param(fix.node_id, fix.key, fix.value)
        return lambda: graph.set_param(fix.node_id, fix.key, old)
    if fix.kind == "remove":
        removal = graph.remove_node(fix.node_id)
        return lambda: graph.restore_node(removal)
    raise ValueError(f"unknown fix kind {fix.kind!r}")
