"""Layered auto-layout (the editor's Arrange, and imported graphs): columns follow the data flow,
and every edge stays in sight.

1. Columns come from the longest path from a source (networkx topological generations would
   put a skip connection's target too early, so each node's column is one more than its
   furthest predecessor's).
2. An edge that spans several columns (a skip connection) gets a lane: a placeholder in every
   column it passes, at its source's height.  Without one a residual's skip ran straight behind
   the nodes of its block, where it could not be seen, and a click meant for the edge in front
   of it landed on it.
3. Column by column, the lanes are placed first, then each node as near as it can get to the
   mean height of its predecessors (where a skip arrives, to its lane's height), a row step from
   everything else in the column: a chain stays on one line, a skip runs straight along its lane,
   and the block it jumps over takes a row of its own.
"""
from __future__ import annotations

import networkx as nx

from engine.graph import COLUMN_STEP, Graph

ROW_STEP = 110.0


def layered_layout(graph: Graph, column_step: float = COLUMN_STEP,
                   row_step: float = ROW_STEP) -> dict[str, tuple[float, float]]:
    """New top-left positions for every node; the first column starts at x = 0 and the rows
    centre on y = 0."""
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
    column: dict[str, int] = {}
    for nid in order:
        column[nid] = max((column[p] + 1 for p in g.predecessors(nid)), default=0)

    # the layered graph: a long edge runs through one placeholder per column it passes
    h = nx.DiGraph()
    h.add_nodes_from(order)
    lanes_in: list[list[str]] = [[] for _ in range(max(column.values()) + 1)]
    for u, v in g.edges:
        prev = u
        for c in range(column[u] + 1, column[v]):
            lane = f"\0{u}>{v}@{c}"  # no node id starts with NUL
            lanes_in[c].append(lane)
            h.add_edge(prev, lane)
            prev = lane
        h.add_edge(prev, v)
    nodes_in: list[list[str]] = [[] for _ in lanes_in]
    for nid in order:
        nodes_in[column[nid]].append(nid)
    placed_pos = {n.id: n.pos for n in nodes}  # ties go by where the person had put the nodes

    y: dict[str, float] = {}
    for lanes, col_nodes in zip(lanes_in, nodes_in):
        taken: list[float] = []

        def nearest_free(want: float) -> float:
            """The height nearest ``want`` a row step from everything placed in this column."""
            candidates = [want] + [t + d for t in taken for d in (-row_step, row_step)]
            ok = [c for c in candidates if all(abs(c - t) >= row_step - 1e-9 for t in taken)]
            return min(ok, key=lambda c: (abs(c - want), c))

        shared: dict[str, float] = {}  # lanes of one source share their height: they leave it as one
        for lane in sorted(lanes, key=lambda d: y[next(iter(h.predecessors(d)))]):
            src = next(iter(h.predecessors(lane)))
            source = src.split(">")[0] if src.startswith("\0") else src
            if source not in shared:
                shared[source] = nearest_free(y[src])
                taken.append(shared[source])
            y[lane] = shared[source]

        def wanted(nid: str) -> float:
            preds = list(h.predecessors(nid))
            arriving = [p for p in preds if p.startswith("\0")]
            if arriving:  # where a skip arrives: on its lane
                return y[arriving[0]]
            return sum(y[p] for p in preds) / len(preds) if preds else 0.0

        for nid in sorted(col_nodes, key=lambda n: (wanted(n), placed_pos[n][1], placed_pos[n][0])):
            y[nid] = nearest_free(wanted(nid))
            taken.append(y[nid])
    heights = [y[nid] for nid in order]
    mid = (min(heights) + max(heights)) / 2.0
    return {nid: (column[nid] * column_step, y[nid] - mid) for nid in order}
