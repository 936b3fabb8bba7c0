"""Validation and shape inference.

`ShapeInference` watches nothing itself: call ``analyze()`` after edits and it
recomputes only the nodes whose type, params or input shapes changed (a cached
result per node, keyed on exactly what the shape rule reads), so re-analysis
after one edit on a large graph costs little more than a walk over the nodes.

Every problem is an `Issue` on a node or edge with one human sentence and, where
the engine knows one, a machine-applicable `Fix` ("insert Flatten before Linear 'fc1'").
"""
from __future__ import annotations

import graphlib
import re
from dataclasses import dataclass, field
from typing import Any


from engine.errors import LayerLabError, ShapeError
from engine.graph import Graph, Node
from engine.layers import REGISTRY
from engine.layers.io import resolve_loss
from engine.spec import AUTO, InferContext, Shape, fmt_shape, numel

BYTES_PER_VALUE = 4  # float32 activations


@dataclass(frozen=True)
class Fix:
    """A suggested repair.  kind "insert": put ``layer_type`` on edge ``edge_id``;
    kind "set_param": set ``key`` of ``node_id`` to ``value``; kind "remove": delete ``node_id``
    (a layer on its own, connected to nothing)."""

    label: str
    kind: str
    node_id: str
    edge_id: str | None = None
    layer_type: str | None = None
    key: str | None = None
    value: Any = None
    params: tuple = ()  # kind "insert": the new layer's settings, as (name, value) pairs


@dataclass(frozen=True)
class Issue:
    severity: str  # "error" | "warning"
    message: str
    node_id: str | None = None
    edge_id: str | None = None
    fix: Fix | None = None

    def __str__(self) -> str:
        return self.message + (f" Fix: {self.fix.label}." if self.fix else "")


@dataclass(frozen=True)
class NodeInfo:
    shape: Shape | None  # per-sample output shape (for Output: its input shape)
    in_shapes: tuple
    n_params: int = 0
    flops: int = 0
    issues: tuple[Issue, ...] = ()


@dataclass(frozen=True)
class Analysis:
    nodes: dict[str, NodeInfo]
    edge_shapes: dict[str, Shape | None]
    issues: tuple[Issue, ...]
    order: tuple[str, ...]  # topological order (empty if the graph has a cycle)
    total_params: int
    flops: int  # per sample, forward pass
    activation_bytes: int  # per sample, forward activations kept for backward

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def issues_for(self, node_id: str) -> list[Issue]:
        return [i for i in self.issues if i.node_id == node_id]


def _freeze(v):
    return tuple(v) if isinstance(v, (list, tuple)) else v


@dataclass
class ShapeInference:
    """Incremental analysis of one graph under one data context."""

    graph: Graph
    context: InferContext = field(default_factory=InferContext)
    _cache: dict[str, tuple[tuple, NodeInfo]] = field(default_factory=dict)
    _order_version: int = -1
    _order: tuple[str, ...] | None = None
    _cycle: list | None = None

    def set_context(self, context: InferContext) -> None:
        if context != self.context:
            self.context = context
            self._cache.clear()

    def _topology(self):
        # the standard library's graphlib, not networkx: shape inference runs as the editor opens,
        # and importing networkx would add about 0.2 s to every start
        if self._order_version != self.graph.structure_version:
            preds: dict[str, list[str]] = {n.id: [] for n in self.graph.nodes}
            for e in self.graph.edges:
                preds[e.dst].append(e.src)
            try:
                self._order, self._cycle = tuple(graphlib.TopologicalSorter(preds).static_order()), None
            except graphlib.CycleError as err:
                self._order, self._cycle = (), list(err.args[1][:-1])  # the cycle's nodes, each once
            self._order_version = self.graph.structure_version
        return self._order, self._cycle

    def analyze(self) -> Analysis:
        graph, ctx = self.graph, self.context
        order, cycle = self._topology()
        # Adjacency built once per analysis: per-node edge scans would make every analysis O(nodes x edges).
        in_edges: dict[str, list] = {}
        out_edges: dict[str, list] = {}
        for e in graph.edges:
            in_edges.setdefault(e.dst, []).append(e)
            out_edges.setdefault(e.src, []).append(e)
        issues: list[Issue] = _graph_issues(graph, cycle, out_edges)
        infos: dict[str, NodeInfo] = {}
        live = set()
        for nid in order:
            node = graph.node(nid)
            edges = in_edges.get(nid, [])
            in_shapes = tuple(infos[e.src].shape if e.src in infos else None for e in edges)
            # The edges are part of the key: a cached Fix names the incoming edge and its source node.
            key = (node.type, tuple((k, _freeze(v)) for k, v in node.params.items()), in_shapes, node.name,
                   tuple((e.id, e.src, e.dst_port) for e in edges))
            cached = self._cache.get(nid)
            if cached is not None and cached[0] == key:
                info = cached[1]
            else:
                info = _infer_node(graph, node, edges, in_shapes, ctx)
                self._cache[nid] = (key, info)
            infos[nid] = info
            live.add(nid)
            issues.extend(info.issues)
        for stale in set(self._cache) - live:
            del self._cache[stale]
        issues.extend(_context_issues(graph, infos, ctx, out_edges))
        edge_shapes = {e.id: infos[e.src].shape if e.src in infos else None for e in graph.edges}
        total = sum(i.n_params for i in infos.values())
        flops = sum(i.flops for i in infos.values())
        act = sum(numel(i.shape) for nid, i in infos.items()
                  if i.shape is not None and graph.node(nid).type != "Output") * BYTES_PER_VALUE
        return Analysis(infos, edge_shapes, tuple(issues), order, total, flops, act)


def analyze(graph: Graph, context: InferContext | None = None) -> Analysis:
    """One-shot analysis (no cache kept)."""
    return ShapeInference(graph, context or InferContext()).analyze()


def _label(node: Node) -> str:
    return f"{node.type} '{node.name}'"


def _infer_node(graph: Graph, node: Node, edges, in_shapes, ctx) -> NodeInfo:
    spec = REGISTRY.get(node.type)
    issues = []
    for port in spec.inputs:
        n = sum(1 for e in edges if e.dst_port == port.name)
        if n < port.min_edges:
            fix = None
            if n == 0:
                msg = f"{_label(node)} has no input; connect a layer to it."
                # on its own, deleting it loses nothing; but the Output (and the Input) are the graph's
                # ends, which a blank project has and needs: "delete it" was offered for its Output
                if not edges and not graph.out_edges(node.id) and node.type not in ("Input", "Output"):
                    fix = Fix(f"delete the unconnected {node.type} '{node.name}'", "remove", node.id)
            else:
                msg = f"{_label(node)} needs at least {port.min_edges} inputs to merge; it has {n}."
            issues.append(Issue("error", msg, node_id=node.id, fix=fix))
    if issues or any(s is None for s in in_shapes):
        return NodeInfo(None, in_shapes, issues=tuple(issues))
    try:
        shape = tuple(int(s) for s in spec.infer(node.params, in_shapes, ctx))
        n_params = int(spec.count_params(node.params, in_shapes, shape))
        flops = int(spec.flops(node.params, in_shapes, shape))
    except ShapeError as err:
        fix = _structured_fix(graph, node, edges, err.fix) or _projection_fix(graph, node, edges, in_shapes)
        issue = Issue("error", f"{_label(node)}: {err.message}", node_id=node.id, fix=fix)
        if issue.fix is None and err.fix:
            issue = Issue("error", f"{_label(node)}: {err.message} Try: {err.fix}.", node_id=node.id)
        return NodeInfo(None, in_shapes, issues=(issue,))
    if node.type == "Output":
        shape = in_shapes[0]
    return NodeInfo(shape, in_shapes, n_params, flops)


def _structured_fix(graph: Graph, node: Node, edges, hint: str | None) -> Fix | None:
    """Turn a spec's fix hint into something the editor can apply in one click."""
    if not hint:
        return None
    words = hint.split()
    if words[0] == "insert" and len(words) > 1 and words[1].rstrip(",") in REGISTRY and len(edges) == 1:
        layer = words[1].rstrip(",")
        if layer == "Reshape":  # "insert Reshape to 1, 28, 28 (...)": the spec worked the shape out
            target = re.match(r"insert Reshape to ([\d, ]+)", hint)
            if target is None:
                return None
            shape = tuple(int(v) for v in target.group(1).replace(" ", "").strip(",").split(","))
            return Fix(f"insert Reshape to {', '.join(map(str, shape))} before {_label(node)}", "insert", node.id,
                       edge_id=edges[0].id, layer_type=layer, params=(("shape", shape),))
        return Fix(f"insert {layer} before {_label(node)}", "insert", node.id, edge_id=edges[0].id, layer_type=layer)
    if hint == "set the last Linear's units to auto" and len(edges) == 1:
        src = graph.node(edges[0].src)
        if src.type == "Linear":
            return Fix(f"set units of Linear '{src.name}' to auto", "set_param", src.id, key="units", value=AUTO)
    return None


def _projection_fix(graph: Graph, node: Node, edges, in_shapes) -> Fix | None:
    """Branches of an Add or Multiply that differ in width only: a projection on a branch to the
    width of the main one, as a ResNet's shortcut does it (a Linear where the features differ, a
    1×1 convolution where the channels do).  The main branch is the one whose source comes after the
    others' (the skip's source feeds it); other differences (image sizes, ranks) have no one fix."""
    if node.type not in ("Add", "Multiply") or len(edges) != len(in_shapes):
        return None
    sources = [e.src for e in edges]
    main = next((j for j, a in enumerate(sources)
                 if not any(b != a and graph.reaches(a, b) for b in sources)), 0)
    target = tuple(in_shapes[main])
    odd = next((i for i, s in enumerate(in_shapes) if tuple(s) != target), None)
    if odd is None or len(in_shapes[odd]) != len(target):
        return None
    differ = [k for k, (a, b) in enumerate(zip(in_shapes[odd], target)) if a != b]
    if differ != [0]:
        return None
    if len(target) == 1:
        layer, params, what = "Linear", (("units", target[0]),), f"Linear ({target[0]} units)"
    elif len(target) in (2, 3):
        layer = "Conv1d" if len(target) == 2 else "Conv2d"
        params = (("out_channels", target[0]), ("kernel_size", 1), ("padding", 0))
        what = f"1×1 {layer} ({target[0]} channels)"
    else:
        return None
    src = graph.node(edges[odd].src)
    return Fix(f"insert a {what} after '{src.name}' to match {fmt_shape(target)}", "insert", node.id,
               edge_id=edges[odd].id, layer_type=layer, params=params)


def _graph_issues(graph: Graph, cycle, out_edges: dict[str, list]) -> list[Issue]:
    issues = []
    if cycle:
        names = " -> ".join(graph.node(n).name for n in cycle)
        issues.append(Issue("error", f"The graph has a cycle ({names}); data must flow one way.", node_id=cycle[0]))
    for kind in ("Input", "Output"):
        found = graph.nodes_of_type(kind)
        if not found:
            issues.append(Issue("error", f"The graph has no {kind} node; add one from the palette."))
        for extra in found[1:]:
            issues.append(Issue("error", f"The graph has more than one {kind} ('{extra.name}'); keep exactly one.",
                                node_id=extra.id))
    for node in graph.nodes:
        if node.spec.outputs and not out_edges.get(node.id):
            issues.append(Issue("warning", f"The output of {_label(node)} is not used.", node_id=node.id))
    return issues


def _context_issues(graph: Graph, infos: dict[str, NodeInfo], ctx: InferContext,
                    out_edges: dict[str, list]) -> list[Issue]:
    """Checks that look at a node's neighbours rather than its own shapes."""
    issues = []
    for node in graph.nodes:
        consumers = [graph.node(e.dst) for e in out_edges.get(node.id, ())]
        if node.type == "Linear" and node.params["units"] == AUTO and not any(c.type == "Output" for c in consumers):
            issues.append(Issue(
                "error", f"{_label(node)} has units 'auto', which only means something on the Linear that feeds "
                         "the Output; give it a number.", node_id=node.id,
                fix=Fix(f"set units of '{node.name}' to 64", "set_param", node.id, key="units", value=64)))
        if node.type == "Softmax" and any(c.type == "Output" and resolve_loss(c.params["loss"], ctx.task)
                                          == "cross_entropy" for c in consumers):
            issues.append(Issue(
                "warning", f"Softmax '{node.name}' feeds a cross-entropy Output, which applies softmax itself; "
                           "training will be slow.", node_id=node.id))
    return issues


def first_error_sentence(analysis: Analysis) -> str:
    errs = analysis.errors
    if not errs:
        return ""
    more = f" (and {len(errs) - 1} more problem{'s' if len(errs) > 2 else ''})" if len(errs) > 1 else ""
    return f"{errs[0]}{more}"


class GraphInvalid(LayerLabError):
    """Raised when compiling a graph that has errors."""

    def __init__(self, analysis: Analysis):
        super().__init__(f"The graph has errors: {first_error_sentence(analysis)}")
        self.analysis = analysis


__all__ = ["Analysis", "Fix", "GraphInvalid", "Issue", "NodeInfo", "ShapeInference", "analyze", "fmt_shape"]
