"""Layered auto-layout (the editor's Arrange, and imported graphs): columns follow the data flow,
rows are ordered to keep edges short.

Columns come from the longest path from a source (networkx topological
generations would put a skip connection's target too early, so each node's column
is one more than its furthest predecessor's).  Within a column, nodes are ordered
by the mean row of their neighbours (barycentre sweeps), the usual Sugiyama recipe
without dummy nodes, which is plenty for hand-built networks.
"""
from __future__ import annotations

import networkx as nx

from engine.graph import Graph

COLUMN_STEP = 190.0
ROW_STEP = 110.0


def layered_layout(graph: Graph, column_step: float = COLUMN_STEP, row_step: float = ROW_STEP,
                   sweeps: int = 4) -> dict[str, tuple[float, float]]:
    """New top-left positions for every node; the first column starts at x = 0 and rows centre on y = 0."""
    nodes = graph.nodes
    if not nodes:
        return {}
    g = nx.DiGraph()
    g.add_nodes_from(n.id for n in nodes)
    g.add_edges_from((e.src, e.dst) for e in graph.edges)
    try:
        order = list(nx.topological_sort(g))
    except nx.NetworkXUnfeasible:  # a cycle (the editor shows it as an error); drop back-edges
        order = [n.id for n in sorted(nodes, key=lambda n: (n.pos[0], n.pos[1]))]
        rank = {nid: i for i, nid in enumerate(order)}
        g.remove_edges_from([(u, v) for u, v in list(g.edges) if rank[u] >= rank[v]])
        order = list(nx.topological_sort(g))
    layer: dict[str, int] = {}
    for nid in order:
        layer[nid] = max((layer[p] + 1 for p in g.predecessors(nid)), default=0)
    n_layers = max(layer.values()) + 1
    columns: list[list[str]] = [[] for _ in range(n_layers)]
    pos = {n.id: n.pos for n in nodes}
    for nid in order:
        columns[layer[nid]].append(nid)
    for col in columns:
        col.sort(key=lambda nid: (pos[nid][1], pos[nid][0]))
    row = {nid: float(i) for col in columns for i, nid in enumerate(col)}

    def barycentre(nid: str, neighbours) -> float:
        ns = list(neighbours(nid))
        return sum(row[m] for m in ns) / len(ns) if ns else row[nid]

    for sweep in range(sweeps):
        forward = sweep % 2 == 0
        seq = columns[1:] if forward else columns[-2::-1]
        for col in seq:
            key = {nid: barycentre(nid, g.predecessors if forward else g.successors) for nid in col}
            col.sort(key=lambda nid: (key[nid], row[nid]))
            for i, nid in enumerate(col):
                row[nid] = float(i)
    out: dict[str, tuple[float, float]] = {}
    for c, col in enumerate(columns):
        k = len(col)
        for i, nid in enumerate(col):
            out[nid] = (c * column_step, (i - (k - 1) / 2.0) * row_step)
    return out
