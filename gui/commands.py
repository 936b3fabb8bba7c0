"""Undoable edits.  Each command calls one graph method in ``redo`` and its exact inverse in ``undo``.

Commands check their input in the constructor (so a refused edit raises before it
is pushed and the stack never holds a half-done command).  Compound edits (delete a
selection, paste, auto-layout) are macros built from these, see the helpers at the
bottom.  The canvas never edits items itself: it pushes a command, the graph
notifies, and the scene mirrors the change.
"""
from __future__ import annotations

import copy
import time
from typing import Any, Callable, Iterable

from PySide6.QtGui import QUndoCommand

from engine.errors import GraphError
from engine.fixes import apply_fix
from engine.graph import EdgeRemoval, Graph, GraphEvent, NodeRemoval
from engine.layers import REGISTRY
from engine.validate import Fix
from gui import lab_locks
from gui.lab_locks import refuse

MERGE_PARAM_ID = 1001
MERGE_WINDOW_S = 1.0


class GraphCommand(QUndoCommand):
    def __init__(self, doc, text: str, parent: QUndoCommand | None = None):
        super().__init__(text, parent)
        self.doc = doc
        self.graph: Graph = doc.graph


class AddNodeCommand(GraphCommand):
    """graph.add_node  <->  graph.remove_node / graph.restore_node (same id, name, place)."""

    def __init__(self, doc, type_name: str, params: dict | None = None, pos=(0.0, 0.0),
                 name: str | None = None, node_id: str | None = None):
        spec = REGISTRY.get(type_name)  # GraphError for an unknown type
        spec.coerce_params(params, where=name or type_name)  # ParamError before anything changes
        refuse(lab_locks.layer_refusal(doc, type_name))
        super().__init__(doc, f"Add {type_name}")
        self.type_name, self.params, self.pos, self.name = type_name, dict(params or {}), tuple(pos), name
        self.node_id = node_id
        self._removal: NodeRemoval | None = None

    def redo(self) -> None:
        if self._removal is None:
            node = self.graph.add_node(self.type_name, self.params, self.pos, self.name, self.node_id)
            self.node_id = node.id
        else:
            self.graph.restore_node(self._removal)

    def undo(self) -> None:
        self._removal = self.graph.remove_node(self.node_id)


class RemoveNodeCommand(GraphCommand):
    """graph.remove_node  <->  graph.restore_node (its edges come back in their old order)."""

    def __init__(self, doc, node_id: str):
        node = doc.graph.node(node_id)
        refuse(lab_locks.delete_refusal(doc, node_id))
        super().__init__(doc, f"Delete {node.name}")
        self.node_id = node_id
        self._removal: NodeRemoval | None = None

    def redo(self) -> None:
        self._removal = self.graph.remove_node(self.node_id)

    def undo(self) -> None:
        self.graph.restore_node(self._removal)


class ConnectCommand(GraphCommand):
    """graph.connect  <->  graph.disconnect / graph.restore_edge (same id, same place in the order)."""

    def __init__(self, doc, src: str, dst: str, src_port: str = "out", dst_port: str = "in",
                 edge_id: str | None = None):
        problem = doc.graph.connection_problem(src, dst, src_port, dst_port)
        if problem:
            raise GraphError(problem)
        g = doc.graph
        super().__init__(doc, f"Connect {g.node(src).name} → {g.node(dst).name}")
        self.args = (src, dst, src_port, dst_port)
        self.edge_id = edge_id
        self._removal: EdgeRemoval | None = None

    def redo(self) -> None:
        if self._removal is None:
            self.edge_id = self.graph.connect(*self.args, edge_id=self.edge_id).id
        else:
            self.graph.restore_edge(self._removal)

    def undo(self) -> None:
        self._removal = self.graph.disconnect(self.edge_id)


class DisconnectCommand(GraphCommand):
    """graph.disconnect  <->  graph.restore_edge."""

    def __init__(self, doc, edge_id: str):
        e = doc.graph.edge(edge_id)
        super().__init__(doc, f"Disconnect {doc.graph.node(e.src).name} → {doc.graph.node(e.dst).name}")
        self.edge_id = edge_id
        self._removal: EdgeRemoval | None = None

    def redo(self) -> None:
        self._removal = self.graph.disconnect(self.edge_id)

    def undo(self) -> None:
        self.graph.restore_edge(self._removal)


class SetParamCommand(GraphCommand):
    """graph.set_param  <->  graph.set_param with the old value.

    ``merge=True`` lets consecutive changes of the same parameter (spin-box arrows)
    collapse into one undo step."""

    def __init__(self, doc, node_id: str, key: str, value: Any, merge: bool = False):
        node = doc.graph.node(node_id)
        refuse(lab_locks.edit_refusal(doc, node_id))
        self.value = node.spec.param(key).coerce(value, where=f"'{node.name}'")  # ParamError refuses it
        self.old = node.params[key]
        super().__init__(doc, f"Set {node.name}.{key} = {_fmt(self.value)}")
        self.node_id, self.key, self.merge = node_id, key, merge
        self.stamp = time.monotonic()

    def id(self) -> int:
        return MERGE_PARAM_ID if self.merge else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        """Arrow-key / spin-button bursts on one parameter become one step; separate edits stay separate."""
        if not isinstance(other, SetParamCommand) or not other.merge:
            return False
        if (other.node_id, other.key) != (self.node_id, self.key) or other.stamp - self.stamp > MERGE_WINDOW_S:
            return False
        self.stamp = other.stamp
        self.value = other.value
        self.setText(other.text())
        if self.value == self.old:
            self.setObsolete(True)
        return True

    def redo(self) -> None:
        self.graph.set_param(self.node_id, self.key, self.value)

    def undo(self) -> None:
        self.graph.set_param(self.node_id, self.key, self.old)


class RenameCommand(GraphCommand):
    """graph.rename  <->  graph.rename with the old name."""

    def __init__(self, doc, node_id: str, name: str):
        from engine.graph import to_identifier
        g = doc.graph
        node = g.node(node_id)
        refuse(lab_locks.edit_refusal(doc, node_id))
        new = to_identifier(name)
        clash = g.node_by_name(new)
        if clash is not None and clash.id != node_id:
            raise GraphError(f"A node named '{new}' already exists; names must be unique.")
        super().__init__(doc, f"Rename {node.name} → {new}")
        self.node_id, self.new, self.old = node_id, new, node.name

    def redo(self) -> None:
        self.graph.rename(self.node_id, self.new)

    def undo(self) -> None:
        self.graph.rename(self.node_id, self.old)


class MoveNodesCommand(GraphCommand):
    """graph.move for each dragged node  <->  graph.move back.  One drag = one command."""

    def __init__(self, doc, moves: dict[str, tuple[tuple[float, float], tuple[float, float]]], text: str = ""):
        n = len(moves)
        super().__init__(doc, text or (f"Move {doc.graph.node(next(iter(moves))).name}" if n == 1
                                       else f"Move {n} layers"))
        self.moves = {k: (tuple(map(float, o)), tuple(map(float, p))) for k, (o, p) in moves.items()}

    def redo(self) -> None:
        for nid, (_old, new) in self.moves.items():
            self.graph.move(nid, new)

    def undo(self) -> None:
        for nid, (old, _new) in self.moves.items():
            self.graph.move(nid, old)


class NudgeNodesCommand(MoveNodesCommand):
    """Arrow-key moves: a run of nudges of the same selection is one undo step (Qt merges them)."""

    ID = 0x4E55  # "NU"

    def id(self) -> int:
        return self.ID

    def mergeWith(self, other) -> bool:
        if not isinstance(other, NudgeNodesCommand) or other.moves.keys() != self.moves.keys():
            return False
        self.moves = {k: (self.moves[k][0], other.moves[k][1]) for k in self.moves}
        return True


class RecordedCommand(GraphCommand):
    """Runs an engine function that edits the graph and returns its own undo function
    (``engine.fixes.apply_fix``, ``insert_on_edge``).

    The first redo runs the function and records what it did (ids, order); undo calls
    the returned function; a later redo replays the recording, so the graph comes
    back with the very same ids and the returned undo function stays valid."""

    def __init__(self, doc, text: str, fn: Callable[[Graph], Callable[[], None]]):
        super().__init__(doc, text)
        self._fn = fn
        self._undo_fn: Callable[[], None] | None = None
        self._ops: list[tuple] | None = None

    def redo(self) -> None:
        if self._ops is None:
            ops: list[tuple] = []
            unsubscribe = self.graph.subscribe(lambda ev: ops.append(self._record(ev)))
            try:
                self._undo_fn = self._fn(self.graph)
            finally:
                unsubscribe()
            self._ops = ops
        else:
            for op in self._ops:
                self._replay(op)

    def undo(self) -> None:
        self._undo_fn()

    def _record(self, ev: GraphEvent) -> tuple:
        g = self.graph
        if ev.kind == "node_added":
            return ("node_added", copy.deepcopy(g.node(ev.node_id)), [n.id for n in g.nodes].index(ev.node_id))
        if ev.kind == "edge_added":
            return ("edge_added", g.edge(ev.edge_id), [e.id for e in g.edges].index(ev.edge_id))
        if ev.kind == "edge_removed":
            return ("edge_removed", ev.edge_id)
        if ev.kind == "node_removed":
            return ("node_removed", ev.node_id)
        if ev.kind == "param_changed":
            return ("param_changed", ev.node_id, ev.key, ev.new)
        if ev.kind == "node_moved":
            return ("node_moved", ev.node_id, ev.new)
        if ev.kind == "node_renamed":
            return ("node_renamed", ev.node_id, ev.new)
        raise GraphError(f"cannot record a '{ev.kind}' edit")

    def _replay(self, op: tuple) -> None:
        g, kind = self.graph, op[0]
        if kind == "node_added":
            g.restore_node(NodeRemoval(node=op[1], index=op[2], edges=()))
        elif kind == "edge_added":
            e = op[1]
            g.connect(e.src, e.dst, e.src_port, e.dst_port, edge_id=e.id, index=op[2])
        elif kind == "edge_removed":
            g.disconnect(op[1])
        elif kind == "node_removed":
            g.remove_node(op[1])
        elif kind == "param_changed":
            g.set_param(op[1], op[2], op[3])
        elif kind == "node_moved":
            g.move(op[1], op[2])
        elif kind == "node_renamed":
            g.rename(op[1], op[2])


class ApplyFixCommand(RecordedCommand):
    """One click on "Fix": ``engine.fixes.apply_fix`` as one undo step."""

    def __init__(self, doc, fix: Fix):
        refuse(lab_locks.fix_refusal(doc, fix))
        super().__init__(doc, f"Fix: {fix.label}", lambda g: apply_fix(g, fix))
        self.fix = fix


def can_splice(layer_type: str) -> bool:
    """Whether a ``layer_type`` node can sit on a connection: it has the "in" and "out" ports a splice uses."""
    if layer_type not in REGISTRY:
        return False
    spec = REGISTRY.get(layer_type)
    return spec.input_port("in") is not None and spec.output_port("out") is not None


class InsertOnEdgeCommand(RecordedCommand):
    def __init__(self, doc, edge_id: str, layer_type: str, pos: tuple[float, float] | None = None):
        from engine.fixes import insert_on_edge
        doc.graph.edge(edge_id)
        REGISTRY.get(layer_type)
        refuse(lab_locks.layer_refusal(doc, layer_type))
        super().__init__(doc, f"Insert {layer_type}", lambda g: insert_on_edge(g, edge_id, layer_type, pos=pos))


class SetDataSpecCommand(QUndoCommand):
    """Switch the project's data: the spec, the loaded dataset and the saved normalisation travel together."""

    def __init__(self, doc, spec: dict, dataset):
        refuse(lab_locks.data_refusal(doc))
        super().__init__(f"Use dataset {spec.get('source', '?')}")
        self.doc = doc
        self.new = (copy.deepcopy(spec), dataset, None)
        self.old = (copy.deepcopy(doc.project.data), doc.dataset, copy.deepcopy(doc.project.normalization))

    def redo(self) -> None:
        self.doc.apply_data(*self.new)

    def undo(self) -> None:
        self.doc.apply_data(*self.old)


def _fmt(v) -> str:
    if isinstance(v, tuple):
        return ", ".join(map(str, v))
    return str(v)


# ---------------------------------------------------------------------------- compound edits (macros)
def delete_items(doc, node_ids: Iterable[str], edge_ids: Iterable[str] = ()) -> list[str]:
    """Delete nodes (with their edges) and loose edges as one undo step.  Nodes the lab locks stay
    (their connections too); returns the sentences that say why (empty: everything went)."""
    node_ids = [n for n in dict.fromkeys(node_ids) if doc.graph.has_node(n)]
    kept = [(n, lab_locks.delete_refusal(doc, n)) for n in node_ids]
    refusals = [why for _n, why in kept if why]
    node_ids = [n for n, why in kept if not why]
    edge_ids = [e for e in dict.fromkeys(edge_ids) if doc.graph.has_edge(e)
                and doc.graph.edge(e).src not in node_ids and doc.graph.edge(e).dst not in node_ids]
    if not node_ids and not edge_ids:
        return refusals
    n = len(node_ids) + len(edge_ids)
    stack = doc.undo_stack
    if n == 1:
        stack.push(RemoveNodeCommand(doc, node_ids[0]) if node_ids else DisconnectCommand(doc, edge_ids[0]))
        return refusals
    stack.beginMacro(f"Delete {n} items")
    try:
        for e in edge_ids:
            stack.push(DisconnectCommand(doc, e))
        for nid in node_ids:
            stack.push(RemoveNodeCommand(doc, nid))
    finally:
        stack.endMacro()
    return refusals


FRAGMENT_FORMAT = "layerlab.fragment"


def copy_fragment(graph: Graph, node_ids: Iterable[str]) -> dict:
    """The selected nodes and the edges between them, as a JSON-able clipboard document."""
    ids = [n.id for n in graph.nodes if n.id in set(node_ids)]
    doc = graph.to_dict()
    return {"format": FRAGMENT_FORMAT, "version": 1,
            "nodes": [n for n in doc["nodes"] if n["id"] in ids],
            "edges": [e for e in doc["edges"] if e["src"] in ids and e["dst"] in ids]}


def paste_fragment(doc, fragment: dict, offset=(30.0, 30.0), text: str = "Paste") -> list[str]:
    """Add a copied fragment (fresh ids and names, internal edges kept) as one undo step; returns the new ids."""
    if not isinstance(fragment, dict) or fragment.get("format") != FRAGMENT_FORMAT:
        raise GraphError("The clipboard does not hold LayerLab layers.")
    nodes = fragment.get("nodes") or []
    for nd in nodes:
        REGISTRY.get(nd["type"])  # unknown type: refuse before changing anything
        refuse(lab_locks.layer_refusal(doc, nd["type"]))  # and a type the lab's palette does not offer
    stack = doc.undo_stack
    mapping: dict[str, str] = {}
    stack.beginMacro(f"{text} {len(nodes)} layer{'s' if len(nodes) != 1 else ''}")
    try:
        for nd in nodes:
            pos = (float(nd["pos"][0]) + offset[0], float(nd["pos"][1]) + offset[1])
            cmd = AddNodeCommand(doc, nd["type"], nd.get("params") or {}, pos,
                                 name=doc.graph.unique_name(nd.get("name") or nd["type"]))
            stack.push(cmd)
            mapping[nd["id"]] = cmd.node_id
        for ed in fragment.get("edges") or []:
            if ed["src"] in mapping and ed["dst"] in mapping:
                stack.push(ConnectCommand(doc, mapping[ed["src"]], mapping[ed["dst"]],
                                          ed.get("src_port", "out"), ed.get("dst_port", "in")))
    finally:
        stack.endMacro()
    return list(mapping.values())


def move_nodes(doc, positions: dict[str, tuple[float, float]], text: str = "") -> bool:
    """Push one MoveNodesCommand for the nodes whose position actually changes."""
    moves = {}
    for nid, pos in positions.items():
        old = doc.graph.node(nid).pos
        new = (float(pos[0]), float(pos[1]))
        if old != new:
            moves[nid] = (old, new)
    if not moves:
        return False
    doc.undo_stack.push(MoveNodesCommand(doc, moves, text))
    return True


def nudge_nodes(doc, node_ids: list[str], dx: float, dy: float) -> bool:
    """Move these nodes by (dx, dy); repeated nudges of one selection undo as one step."""
    if not node_ids:
        return False
    moves = {}
    for nid in node_ids:
        x, y = doc.graph.node(nid).pos
        moves[nid] = ((x, y), (x + dx, y + dy))
    n = len(moves)
    text = f"Move {doc.graph.node(node_ids[0]).name}" if n == 1 else f"Move {n} layers"
    doc.undo_stack.push(NudgeNodesCommand(doc, moves, text))
    return True


def auto_layout(doc) -> bool:
    """Lay the graph out in layers (columns follow the data flow) as one undo step."""
    from engine.layout import layered_layout
    positions = layered_layout(doc.graph)
    if not positions:
        return False
    return move_nodes(doc, positions, "Auto-layout")
