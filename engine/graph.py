"""The graph document: the single source of truth for a network.

Nodes have uuid ids, a layer type, a unique readable name (it becomes the
submodule name in generated code), params and a canvas position.  Edges join an
output port to an input port; a ``multi`` input port (Add, Concat, Multiply)
takes several edges, in the order the edges are listed.

Every mutating method has an exact inverse, so the GUI's undo stack can be
built on them:

    add_node        <-> remove_node / restore_node
    connect         <-> disconnect (the returned EdgeRemoval restores order)
    set_param       <-> set_param with the returned old value
    move, rename    <-> the same call with the returned old value

Observers are plain callables receiving a frozen ``GraphEvent``.
"""
from __future__ import annotations

import copy
import keyword
import math
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from engine.errors import GraphError, ParamError, ProjectFileError, quote
from engine.layers import REGISTRY
from engine.reserved_names import RESERVED_NAMES
from engine.spec import LayerSpec
from engine.versioning import migrate

if TYPE_CHECKING:
    import networkx as nx

GRAPH_FORMAT = "layerlab.graph"
GRAPH_VERSION = 1
# x from one layer to the next in a row: the templates, auto-layout and an insert in line
COLUMN_STEP = 190.0


@dataclass
class Node:
    id: str
    type: str
    name: str
    params: dict[str, Any]
    pos: tuple[float, float] = (0.0, 0.0)

    @property
    def spec(self) -> LayerSpec:
        return REGISTRY.get(self.type)


@dataclass(frozen=True)
class Edge:
    id: str
    src: str
    dst: str
    src_port: str = "out"
    dst_port: str = "in"


@dataclass(frozen=True)
class GraphEvent:
    """What changed. kind: node_added, node_removed, edge_added, edge_removed,
    param_changed, node_moved, node_renamed, reset."""

    kind: str
    node_id: str | None = None
    edge_id: str | None = None
    key: str | None = None
    old: Any = None
    new: Any = None


@dataclass(frozen=True)
class NodeRemoval:
    """Everything ``restore_node`` needs to undo ``remove_node`` exactly."""

    node: Node
    index: int
    edges: tuple[tuple[int, Edge], ...]


@dataclass(frozen=True)
class EdgeRemoval:
    edge: Edge
    index: int


_IDENT = re.compile(r"[^0-9a-zA-Z_]")


_RESERVED = RESERVED_NAMES


def to_identifier(name: str) -> str:
    """A node name usable as a Python identifier (it names a submodule in generated code)."""
    s = _IDENT.sub("_", name.strip()) or "layer"
    if s[0].isdigit():
        s = "_" + s
    while keyword.iskeyword(s) or s in _RESERVED:
        s += "_"
    return s


def _name_taken(name: str) -> GraphError:
    return GraphError(f"A node named '{name}' already exists; names must be unique.")


@dataclass
class Graph:
    _nodes: dict[str, Node] = field(default_factory=dict)
    _edges: dict[str, Edge] = field(default_factory=dict)
    _observers: list[Callable[[GraphEvent], None]] = field(default_factory=list, repr=False, compare=False)
    # Bumped on every structural change (nodes/edges), so analyses can cache the topological order.
    structure_version: int = field(default=0, compare=False)

    # ----------------------------------------------------------------- queries
    @property
    def nodes(self) -> list[Node]:
        return list(self._nodes.values())

    @property
    def edges(self) -> list[Edge]:
        return list(self._edges.values())

    def node(self, node_id: str) -> Node:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise GraphError(f"No node with id {node_id}.") from None

    def edge(self, edge_id: str) -> Edge:
        try:
            return self._edges[edge_id]
        except KeyError:
            raise GraphError(f"No edge with id {edge_id}.") from None

    def has_node(self, node_id: str) -> bool:
        return node_id in self._nodes

    def has_edge(self, edge_id: str) -> bool:
        return edge_id in self._edges

    def node_by_name(self, name: str) -> Node | None:
        return next((n for n in self._nodes.values() if n.name == name), None)

    def nodes_of_type(self, type_name: str) -> list[Node]:
        return [n for n in self._nodes.values() if n.type == type_name]

    def in_edges(self, node_id: str, port: str | None = None) -> list[Edge]:
        return [e for e in self._edges.values() if e.dst == node_id and (port is None or e.dst_port == port)]

    def out_edges(self, node_id: str, port: str | None = None) -> list[Edge]:
        return [e for e in self._edges.values() if e.src == node_id and (port is None or e.src_port == port)]

    def to_networkx(self) -> nx.MultiDiGraph:
        import networkx as nx  # only the layout and lab checks need it: not at start-up

        g = nx.MultiDiGraph()
        g.add_nodes_from(self._nodes)
        g.add_edges_from((e.src, e.dst, e.id) for e in self._edges.values())
        return g

    def unique_name(self, base: str, exclude: str | None = None) -> str:
        base = to_identifier(base)
        taken = {n.name for n in self._nodes.values() if n.id != exclude}
        if base not in taken:
            return base
        stem = base.rstrip("0123456789") or base
        k = 1
        while f"{stem}{k}" in taken:
            k += 1
        return f"{stem}{k}"

    # ----------------------------------------------------------------- observers
    def subscribe(self, callback: Callable[[GraphEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` after every change; returns an unsubscribe function."""
        self._observers.append(callback)
        return lambda: self._observers.remove(callback) if callback in self._observers else None

    def _emit(self, event: GraphEvent) -> None:
        for cb in list(self._observers):
            cb(event)

    # ----------------------------------------------------------------- nodes
    def add_node(self, type_name: str, params: dict | None = None, pos=(0.0, 0.0),
                 name: str | None = None, node_id: str | None = None, *, check_name: bool = True) -> Node:
        """``check_name`` False: the caller has checked that ``name`` is new (a whole document at once)."""
        spec = REGISTRY.get(type_name)
        if node_id is not None and node_id in self._nodes:
            raise GraphError(f"A node with id {node_id} already exists.")
        if check_name and name is not None and self.node_by_name(to_identifier(name)):
            raise _name_taken(name)
        nid = node_id or uuid.uuid4().hex
        x, y = float(pos[0]), float(pos[1])
        if not (math.isfinite(x) and math.isfinite(y)):
            raise GraphError(f"The position of node '{name or type_name}' must be two finite numbers.")
        node = Node(id=nid, type=type_name, name=to_identifier(name) if name else self.unique_name(f"{spec.prefix}1"),
                    params=spec.coerce_params(params, where=name or type_name), pos=(x, y))
        self._nodes[nid] = node
        self.structure_version += 1
        self._emit(GraphEvent("node_added", node_id=nid))
        return node

    def remove_node(self, node_id: str) -> NodeRemoval:
        node = self.node(node_id)
        edge_list = list(self._edges.values())
        removed_edges = tuple((i, e) for i, e in enumerate(edge_list) if node_id in (e.src, e.dst))
        for _, e in reversed(removed_edges):
            self.disconnect(e.id)
        index = list(self._nodes).index(node_id)
        del self._nodes[node_id]
        self.structure_version += 1
        self._emit(GraphEvent("node_removed", node_id=node_id, old=node))
        return NodeRemoval(node=copy.deepcopy(node), index=index, edges=removed_edges)

    def restore_node(self, removal: NodeRemoval) -> Node:
        """Exact inverse of remove_node: same id, name, params, position, order and edges."""
        node = copy.deepcopy(removal.node)
        if node.id in self._nodes:
            raise GraphError(f"A node with id {node.id} already exists.")
        items = list(self._nodes.items())
        items.insert(removal.index, (node.id, node))
        self._nodes = dict(items)
        self.structure_version += 1
        self._emit(GraphEvent("node_added", node_id=node.id))
        for index, e in removal.edges:
            self._insert_edge(e, index)
        return node

    def set_param(self, node_id: str, key: str, value: Any) -> Any:
        """Set one param (coerced and range-checked); returns the old value."""
        node = self.node(node_id)
        new = node.spec.param(key).coerce(value, where=f"'{node.name}'")
        old = node.params[key]
        if new == old:
            return old
        node.params[key] = new
        self._emit(GraphEvent("param_changed", node_id=node_id, key=key, old=old, new=new))
        return old

    def move(self, node_id: str, pos) -> tuple[float, float]:
        node = self.node(node_id)
        old = node.pos
        node.pos = (float(pos[0]), float(pos[1]))
        self._emit(GraphEvent("node_moved", node_id=node_id, old=old, new=node.pos))
        return old

    def rename(self, node_id: str, name: str) -> str:
        node = self.node(node_id)
        new = to_identifier(name)
        clash = self.node_by_name(new)
        if clash is not None and clash.id != node_id:
            raise _name_taken(new)
        old = node.name
        node.name = new
        self._emit(GraphEvent("node_renamed", node_id=node_id, old=old, new=new))
        return old

    # ----------------------------------------------------------------- edges
    def connection_problem(self, src: str, dst: str, src_port: str = "out", dst_port: str = "in",
                           check_cycle: bool = True) -> str | None:
        """Why src.src_port -> dst.dst_port cannot be connected, or None if it can."""
        if src not in self._nodes or dst not in self._nodes:
            return "Both ends of a connection must be nodes of this graph."
        a, b = self._nodes[src], self._nodes[dst]
        if src == dst:
            return f"'{a.name}' cannot feed itself."
        if a.spec.output_port(src_port) is None:
            return f"'{a.name}' ({a.type}) has no output port '{src_port}'."
        port = b.spec.input_port(dst_port)
        if port is None:
            return f"'{b.name}' ({b.type}) has no input port '{dst_port}'."
        existing = self.in_edges(dst, dst_port)
        if any(e.src == src and e.src_port == src_port for e in existing):
            return f"'{a.name}' already feeds '{b.name}'."
        if existing and not port.multi:
            return (f"'{b.name}' already has an input ('{self._nodes[existing[0].src].name}'); "
                    f"use Add or Concat to merge branches.")
        if check_cycle and self.reaches(dst, src):
            return f"Connecting '{a.name}' to '{b.name}' would create a cycle."
        return None

    def find_cycle(self) -> list[str]:
        """Node ids along a cycle of the connections (first repeated at the end), or [] if there is none."""
        import graphlib

        preds: dict[str, set[str]] = {n: set() for n in self._nodes}
        for e in self._edges.values():
            preds[e.dst].add(e.src)
        try:
            graphlib.TopologicalSorter(preds).prepare()
        except graphlib.CycleError as err:
            return list(err.args[1])
        return []

    def reaches(self, start: str, goal: str) -> bool:
        """Whether data flows from node ``start`` to node ``goal`` (or they are the same node)."""
        return goal in self.downstream(start)

    def downstream(self, start: str) -> set[str]:
        """Node ``start`` and every node its data flows to."""
        succ: dict[str, list[str]] = {}
        for e in self._edges.values():
            succ.setdefault(e.src, []).append(e.dst)
        seen, stack = {start}, [start]
        while stack:
            for m in succ.get(stack.pop(), ()):
                if m not in seen:
                    seen.add(m)
                    stack.append(m)
        return seen

    def connect(self, src: str, dst: str, src_port: str = "out", dst_port: str = "in",
                edge_id: str | None = None, index: int | None = None, check_cycle: bool = True) -> Edge:
        problem = self.connection_problem(src, dst, src_port, dst_port, check_cycle)
        if problem:
            raise GraphError(problem)
        if edge_id is not None and edge_id in self._edges:
            raise GraphError(f"An edge with id {edge_id} already exists.")
        edge = Edge(id=edge_id or uuid.uuid4().hex, src=src, dst=dst, src_port=src_port, dst_port=dst_port)
        self._insert_edge(edge, index)
        return edge

    def _insert_edge(self, edge: Edge, index: int | None) -> None:
        if index is None or index >= len(self._edges):
            self._edges[edge.id] = edge
        else:  # an undo puts an edge back where it was: the order of a multi-input port's edges matters
            items = list(self._edges.items())
            items.insert(index, (edge.id, edge))
            self._edges = dict(items)
        self.structure_version += 1
        self._emit(GraphEvent("edge_added", edge_id=edge.id))

    def disconnect(self, edge_id: str) -> EdgeRemoval:
        edge = self.edge(edge_id)
        index = list(self._edges).index(edge_id)
        del self._edges[edge_id]
        self.structure_version += 1
        self._emit(GraphEvent("edge_removed", edge_id=edge_id, old=edge))
        return EdgeRemoval(edge=edge, index=index)

    def restore_edge(self, removal: EdgeRemoval) -> Edge:
        e = removal.edge
        return self.connect(e.src, e.dst, e.src_port, e.dst_port, edge_id=e.id, index=removal.index)

    # ----------------------------------------------------------------- documents
    def to_dict(self) -> dict:
        return {
            "format": GRAPH_FORMAT,
            "version": GRAPH_VERSION,
            "nodes": [
                {"id": n.id, "type": n.type, "name": n.name,
                 "params": {k: n.spec.param(k).to_json(v) for k, v in n.params.items()},
                 "pos": [n.pos[0], n.pos[1]]}
                for n in self._nodes.values()
            ],
            "edges": [
                {"id": e.id, "src": e.src, "src_port": e.src_port, "dst": e.dst, "dst_port": e.dst_port}
                for e in self._edges.values()
            ],
        }

    @classmethod
    def from_dict(cls, doc: Any) -> "Graph":
        """Build a graph from a document, migrating old versions; bad documents raise ProjectFileError."""
        doc = migrate_graph_doc(doc)
        g = cls()
        names: set[str] = set()  # one set for the document instead of a scan of the nodes per node
        try:
            for nd in doc["nodes"]:
                if nd["type"] not in REGISTRY:
                    raise ProjectFileError(
                        f"The graph uses an unknown layer type {quote(nd['type'])} (node {quote(nd.get('name', nd['id']))}); "
                        "it may come from a newer LayerLab.")
                name = nd.get("name")
                if name is not None and to_identifier(name) in names:
                    raise _name_taken(name)
                node = g.add_node(nd["type"], nd.get("params") or {}, tuple(nd.get("pos", (0, 0))), name, nd["id"],
                                  check_name=False)
                names.add(node.name)
            for ed in doc["edges"]:  # one cycle check for the whole document instead of one walk per edge
                g.connect(ed["src"], ed["dst"], ed.get("src_port", "out"), ed.get("dst_port", "in"), ed["id"],
                          check_cycle=False)
            cycle = g.find_cycle()
            if cycle:
                names = " -> ".join(g._nodes[n].name for n in cycle)
                raise GraphError(f"its connections form a cycle ({names}); a network must flow one way.")
        except ProjectFileError:
            raise
        except (GraphError, ParamError, KeyError, TypeError, ValueError, IndexError, AttributeError,
                OverflowError) as exc:
            detail = exc.message if isinstance(exc, (GraphError, ParamError)) else f"missing or bad field {str(exc)[:60]}"
            if len(detail) > 200:  # names and ids from the file can be long: a sentence, not a dump
                detail = detail[:200] + "…"
            raise ProjectFileError(f"The graph document is invalid: {detail}") from None
        return g

    def replace_with(self, other: "Graph", take: bool = False) -> None:
        """Take over another graph's content (open / revert) and tell observers to rebuild.
        ``take``: ``other`` is thrown away after this (a graph just read from a file), so its nodes
        move here instead of being copied."""
        self._nodes = other._nodes if take else copy.deepcopy(other._nodes)
        self._edges = dict(other._edges)
        if take:
            other._nodes, other._edges = {}, {}
        self.structure_version += 1
        self._emit(GraphEvent("reset"))

    def copy(self) -> "Graph":
        return Graph.from_dict(self.to_dict())

    def __eq__(self, other) -> bool:
        return isinstance(other, Graph) and self.to_dict() == other.to_dict()


# Migrations: version N -> N+1, applied in order.  Add one function per format change.
GRAPH_MIGRATIONS: dict[int, Callable[[dict], dict]] = {}


def migrate_graph_doc(doc: Any) -> dict:
    return migrate(doc, GRAPH_FORMAT, GRAPH_VERSION, GRAPH_MIGRATIONS, "graph")
