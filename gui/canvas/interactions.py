"""Mouse gestures on the canvas, kept out of the items and the scene.

``ConnectionDrag``: press on a port, drag a live preview pipe, release on another
port (or on a node: its first port that fits).  Every target under the cursor is
checked with ``graph.connection_problem``; a refused target turns red and its reason
is shown next to the cursor and in the status bar.

``MoveTracker``: remembers where the selected nodes were when a drag started and
turns the whole drag into one MoveNodesCommand on release.
"""
from __future__ import annotations

from PySide6.QtCore import QPointF
from PySide6.QtWidgets import QToolTip

from gui.canvas.edge_item import PreviewEdgeItem
from gui.canvas.node_item import NodeItem, PortItem
from gui.commands import move_nodes


class ConnectionDrag:
    def __init__(self, scene, port: PortItem):
        self.scene = scene
        self.port = port
        self.from_output = not port.is_input
        self.preview = PreviewEdgeItem(port.scenePos(), self.from_output)
        scene.addItem(self.preview)
        self.target: PortItem | None = None
        self.problem: str | None = None
        self._marked: list[PortItem] = []
        port.set_state("valid")

    # the connection this drag would make to ``target``: (src, dst, src_port, dst_port)
    def _ends(self, target: PortItem):
        if self.from_output:
            return self.port.node_id, target.node_id, self.port.name, target.name
        return target.node_id, self.port.node_id, target.name, self.port.name

    def _candidate(self, scene_pos: QPointF) -> tuple[PortItem | None, str | None]:
        """The port under the cursor (or the best port of the node under it) and why it is refused."""
        graph = self.scene.doc.graph
        node_under = None
        for item in self.scene.items(scene_pos):
            if isinstance(item, PortItem) and item is not self.port:
                if item.is_input == self.port.is_input:
                    side = "an input" if item.is_input else "an output"
                    return item, f"Connect an output to an input; this is {side} like the one you started from."
                return item, graph.connection_problem(*self._ends(item))
            if isinstance(item, NodeItem) and node_under is None:
                node_under = item
        if node_under is None or node_under is self.port.node_item:
            if node_under is self.port.node_item:
                return None, f"'{graph.node(node_under.node_id).name}' cannot feed itself."
            return None, None
        ports = list((node_under.inputs if self.from_output else node_under.outputs).values())
        if not ports:
            name = graph.node(node_under.node_id).name
            kind = graph.node(node_under.node_id).type
            return None, (f"'{name}' ({kind}) has no input; data enters the network there." if self.from_output
                          else f"'{name}' ({kind}) has no output to connect from.")
        first_problem = None
        for p in ports:
            problem = graph.connection_problem(*self._ends(p))
            if problem is None:
                return p, None
            first_problem = first_problem or (p, problem)
        return first_problem

    def move(self, scene_pos: QPointF, screen_pos=None) -> None:
        target, problem = self._candidate(scene_pos)
        for p in self._marked:
            p.set_state("")
        self._marked = []
        self.target, self.problem = target, problem
        if target is not None:
            target.set_state("invalid" if problem else "valid")
            self._marked.append(target)
            end = target.scenePos()
        else:
            end = scene_pos
        self.preview.set_end(end, "invalid" if problem else ("valid" if target is not None else ""))
        if problem:
            self.scene.statusMessage.emit(problem)
            if screen_pos is not None:
                QToolTip.showText(screen_pos, problem)
        elif target is not None:
            QToolTip.hideText()

    def finish(self, scene_pos: QPointF) -> str | None:
        """Connect if the target is valid; returns the refusal reason otherwise (None = connected/cancelled)."""
        self.move(scene_pos)
        target, problem = self.target, self.problem
        self.cancel()
        if problem:
            self.scene.last_refusal = problem
            self.scene.statusMessage.emit(f"Not connected: {problem}")
            return problem
        if target is None:
            return None
        refusal = self.scene.connect_ends(*self._ends(target))
        self.scene.last_refusal = refusal
        return refusal

    def cancel(self) -> None:
        for p in self._marked:
            p.set_state("")
        self.port.set_state("")
        if self.preview.scene() is not None:
            self.scene.removeItem(self.preview)
        QToolTip.hideText()


class MoveTracker:
    """Start positions of the selected nodes at mouse press; one move command at release."""

    def __init__(self, scene):
        self.scene = scene
        self.start: dict[str, QPointF] = {}

    def begin(self) -> None:
        self.start = {item.node_id: item.pos() for item in self.scene.selected_node_items()}

    def end(self) -> bool:
        start, self.start = self.start, {}
        positions = {}
        for nid, old in start.items():
            item = self.scene.nodes.get(nid)
            if item is not None and item.pos() != old:
                positions[nid] = (item.pos().x(), item.pos().y())
        if not positions:
            return False
        return move_nodes(self.scene.doc, positions)
