"""Facts about a graph's structure that lab goals ask about: its weighted layers, hidden layers,
depth and skip connections.  Pure functions of the graph document (no data, no shapes).

A *weighted layer* is one that learns a transformation (Linear, convolutions, recurrent layers,
attention, Embedding); normalisation layers hold parameters too but do not count towards depth.
"""
from __future__ import annotations

from functools import lru_cache

from engine.graph import Graph
from engine.layers import REGISTRY
from engine.spec import _zero

MERGE_TYPES = ("Add", "Concat")


@lru_cache(maxsize=1)
def weighted_types() -> frozenset[str]:
    return frozenset(s.type for s in REGISTRY if s.count_params is not _zero and s.category != "Normalization")


@lru_cache(maxsize=1)
def activation_types() -> tuple[str, ...]:
    return tuple(s.type for s in REGISTRY if s.category == "Activation" and s.type != "Softmax")


def _successors(graph: Graph) -> dict[str, list[str]]:
    succ: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    for e in graph.edges:
        succ[e.src].append(e.dst)
    return succ


def _reaches_output_directly(graph: Graph, start: str, succ: dict[str, list[str]]) -> bool:
    """Whether the Output can be reached from ``start`` through weight-free layers only."""
    weighted = weighted_types()
    seen, stack = set(), list(succ.get(start, ()))
    while stack:
        nid = stack.pop()
        if nid in seen:
            continue
        seen.add(nid)
        node = graph.node(nid)
        if node.type == "Output":
            return True
        if node.type not in weighted:
            stack.extend(succ.get(nid, ()))
    return False


def _reaches_output(graph: Graph, start: str, succ: dict[str, list[str]]) -> bool:
    seen, stack = set(), [start]
    while stack:
        nid = stack.pop()
        if nid in seen:
            continue
        seen.add(nid)
        if graph.node(nid).type == "Output":
            return True
        stack.extend(succ.get(nid, ()))
    return False


def hidden_layers(graph: Graph) -> list[str]:
    """Names of the weighted layers that feed the Output only through another weighted layer
    (the last Linear before the Output is not hidden; a layer that reaches no Output is not counted)."""
    succ = _successors(graph)
    weighted = weighted_types()
    return [n.name for n in graph.nodes if n.type in weighted and _reaches_output(graph, n.id, succ)
            and not _reaches_output_directly(graph, n.id, succ)]


def depth(graph: Graph) -> int:
    """The most weighted layers on one path from the Input to the Output (0 when none connects them)."""
    try:
        import networkx as nx

        order = list(nx.topological_sort(graph.to_networkx()))
    except Exception:  # a cycle: the graph has a problem of its own, and no depth
        return 0
    weighted = weighted_types()
    best: dict[str, int] = {}
    for n in graph.nodes_of_type("Input"):
        best[n.id] = 0
    preds: dict[str, list[str]] = {}
    for e in graph.edges:
        preds.setdefault(e.dst, []).append(e.src)
    for nid in order:
        if nid in best and graph.node(nid).type == "Input":
            continue
        reached = [best[p] for p in preds.get(nid, ()) if p in best]
        if reached:
            best[nid] = max(reached) + (1 if graph.node(nid).type in weighted else 0)
    return max((best[n.id] for n in graph.nodes_of_type("Output") if n.id in best), default=0)


def skip_connections(graph: Graph, merge_types: tuple[str, ...] = MERGE_TYPES) -> list[str]:
    """Names of the merge nodes (Add, Concat) where one input bypasses at least one node that feeds
    another of its inputs: a path that skips part of the network."""
    preds: dict[str, list[str]] = {}
    for e in graph.edges:
        preds.setdefault(e.dst, []).append(e.src)

    def ancestors(nid: str) -> set[str]:
        seen, stack = set(), list(preds.get(nid, ()))
        while stack:
            p = stack.pop()
            if p not in seen:
                seen.add(p)
                stack.extend(preds.get(p, ()))
        return seen

    found = []
    for node in graph.nodes:
        if node.type not in merge_types:
            continue
        sources = preds.get(node.id, [])
        if any(a != b and a in ancestors(b) for a in sources for b in sources):
            found.append(node.name)
    return found


def count_types(graph: Graph, types) -> int:
    wanted = set(types)
    return sum(1 for n in graph.nodes if n.type in wanted)
