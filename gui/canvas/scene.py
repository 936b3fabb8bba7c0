"""The scene mirrors the document's graph.

Items are created, moved, renamed and removed only in response to graph events
(``Document.graphEvent``), and their badges / error outlines follow
``Document.analysisChanged``.  User gestures become commands pushed on the undo
stack; the resulting graph event then updates the items.  Nothing here writes the
model and the view separately.
"""
from __future__ import annotations

import json
import math

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QApplication, QGraphicsScene, QMenu

from engine.errors import LayerLabError
from engine.graph import COLUMN_STEP, GraphEvent
from engine.layers import REGISTRY
from engine.validate import Analysis, Fix
from gui import dialogs, lab_locks, theme
from gui.canvas.edge_item import EdgeItem
from gui.canvas.interactions import ConnectionDrag, MoveTracker
from gui.canvas.node_item import GRID, NODE_H, NODE_W, NodeItem, PortItem, param_summary
from gui.commands import (AddNodeCommand, ApplyFixCommand, ConnectCommand, InsertOnEdgeCommand, MoveNodesCommand,
                          can_splice, copy_fragment, delete_items, paste_fragment)

SCENE_EXTENT = 40000.0
QUICK_INSERT = ("ReLU", "Dropout", "BatchNorm1d", "Flatten", "Linear")


class GraphScene(QGraphicsScene):
    statusMessage = Signal(str)

    def __init__(self, doc, parent=None):
        super().__init__(parent)
        self.doc = doc
        self.nodes: dict[str, NodeItem] = {}
        self.edges: dict[str, EdgeItem] = {}
        self._splice: EdgeItem | None = None  # the edge a palette drag would drop its layer onto
        self.snap_to_grid = True
        self.last_refusal: str | None = None
        self._drag: ConnectionDrag | None = None
        self._mover = MoveTracker(self)
        self._overlay_edges: set[str] = set()
        self._overlay_nodes: set[str] = set()
        self._paste_count = 0
        self.port_detail = True
        self.zoom = 1.0  # the view's, for items that keep a size on screen (ports revealed when zoomed out)
        self.setSceneRect(QRectF(-SCENE_EXTENT, -SCENE_EXTENT, 2 * SCENE_EXTENT, 2 * SCENE_EXTENT))
        self.setItemIndexMethod(QGraphicsScene.NoIndex)
        doc.graphEvent.connect(self._on_graph_event)
        doc.analysisChanged.connect(self._on_analysis)
        doc.datasetChanged.connect(self._refresh_captions)
        doc.overlayChanged.connect(self.set_overlay)
        doc.labChanged.connect(self._refresh_locks)
        self.selectionChanged.connect(self._on_selection)
        self._unlisten_theme = theme.add_listener(self.refresh_theme)
        self.rebuild()

    # ------------------------------------------------------------------ model -> items
    def rebuild(self) -> None:
        self._cancel_drag()
        for item in list(self.edges.values()) + list(self.nodes.values()):
            self.removeItem(item)
        self.nodes.clear()
        self.edges.clear()
        for node in self.doc.graph.nodes:
            self._add_node_item(node.id)
        for edge in self.doc.graph.edges:
            self._add_edge_item(edge.id)
        self._on_analysis(self.doc.analysis)

    def _caption(self, node) -> str:
        task = self.doc.context.task
        if node.type == "Input":
            ds = self.doc.data_view
            if ds is not None:
                return f"{ds.name} · {ds.n_train + ds.n_val + ds.n_test} samples"
            return "no data loaded" if self.doc.dataset_error else "no dataset chosen"
        return param_summary(node, node.spec, task, "")

    def _add_node_item(self, node_id: str) -> NodeItem:
        node = self.doc.graph.node(node_id)
        item = NodeItem(node, REGISTRY.get(node.type))
        item.set_text(node.name, self._caption(node))
        item.set_lock(self._lock_text(node_id))
        if not self.port_detail:
            item.set_port_detail(False)
        self.addItem(item)
        self.nodes[node_id] = item
        return item

    def _add_edge_item(self, edge_id: str) -> EdgeItem:
        e = self.doc.graph.edge(edge_id)
        src, dst = self.nodes[e.src], self.nodes[e.dst]
        item = EdgeItem(e.id, src, dst, e.src_port, e.dst_port)
        src.edges.append(item)
        dst.edges.append(item)
        self.addItem(item)
        self.edges[edge_id] = item
        if self.doc._analysis is not None and not self.doc._analysis_dirty:
            item.set_shape_text(self.doc._analysis.edge_shapes.get(edge_id))
        return item

    def _on_graph_event(self, ev: GraphEvent) -> None:
        k = ev.kind
        if k == "node_added":
            self._add_node_item(ev.node_id)
        elif k == "node_removed":
            item = self.nodes.pop(ev.node_id, None)
            if item is not None:
                self.removeItem(item)
        elif k == "edge_added":
            self._add_edge_item(ev.edge_id)
        elif k == "edge_removed":
            item = self.edges.pop(ev.edge_id, None)
            if item is not None:
                for n in (item.src_item, item.dst_item):
                    if item in n.edges:
                        n.edges.remove(item)
                self.removeItem(item)
        elif k == "node_moved":
            item = self.nodes.get(ev.node_id)
            if item is not None:
                item.sync_pos(ev.new)
        elif k in ("param_changed", "node_renamed"):
            item = self.nodes.get(ev.node_id)
            if item is not None:
                node = self.doc.graph.node(ev.node_id)
                item.set_text(node.name, self._caption(node))
        elif k == "reset":
            self.rebuild()

    def _lock_text(self, node_id: str) -> str | None:
        """What a locked layer's tooltip says (None: not locked)."""
        lock = lab_locks.node_lock(self.doc, node_id)
        if lock is None:
            return None
        allowed = "You can move it" + (", and change its settings" if not lock.edit else "") + \
                  (", and delete it" if not lock.delete else "")
        barred = [w for w, on in (("deleted", lock.delete), ("changed", lock.edit)) if on]
        return f"Locked by the lab: {lock.reason} It cannot be {' or '.join(barred)}. {allowed}."

    def _refresh_locks(self, *_args) -> None:
        for nid, item in self.nodes.items():
            item.set_lock(self._lock_text(nid))

    def _refresh_captions(self, *_args) -> None:
        for nid, item in self.nodes.items():
            node = self.doc.graph.node(nid)
            item.set_text(node.name, self._caption(node))

    def _on_analysis(self, analysis: Analysis) -> None:
        by_node: dict[str, list] = {}
        for issue in analysis.issues:
            if issue.node_id is not None:
                by_node.setdefault(issue.node_id, []).append(issue)
        for nid, item in self.nodes.items():
            item.set_state(analysis.nodes.get(nid), by_node.get(nid, []))
        shapes = analysis.edge_shapes
        for eid, item in self.edges.items():
            item.set_shape_text(shapes.get(eid))
        if self.doc.context.task is not None:  # Output caption shows the resolved loss
            for node in self.doc.graph.nodes_of_type("Output"):
                item = self.nodes.get(node.id)
                if item is not None:
                    item.set_text(node.name, self._caption(node))

    def refresh_theme(self, _theme=None) -> None:
        for item in self.nodes.values():
            item._state_key = None
            item.refresh_theme()
        self._on_analysis(self.doc.analysis)
        for item in self.edges.values():
            item.update()
        self.update()

    def set_port_detail(self, visible: bool) -> None:
        if visible != self.port_detail:
            self.port_detail = visible
            for item in self.nodes.values():
                item.set_port_detail(visible)

    # ------------------------------------------------------------------ overlays (training)
    def set_overlay(self, overlay: dict) -> None:
        overlay = overlay or {}
        colors = overlay.get("edge_colors") or {}
        images = overlay.get("node_images") or {}
        for eid in self._overlay_edges - set(colors):
            item = self.edges.get(eid)
            if item is not None:
                item.set_overlay_color(None)
        for eid, rgba in colors.items():
            item = self.edges.get(eid)
            if item is not None:
                item.set_overlay_color(rgba if isinstance(rgba, QColor) else QColor(*[int(c) for c in rgba]))
        for nid in self._overlay_nodes - set(images):
            item = self.nodes.get(nid)
            if item is not None:
                item.set_image(None)
        for nid, img in images.items():
            item = self.nodes.get(nid)
            if item is not None and isinstance(img, QImage):
                item.set_image(img)
        self._overlay_edges, self._overlay_nodes = set(colors), set(images)

    # ------------------------------------------------------------------ selection
    def selected_node_items(self) -> list[NodeItem]:
        return [i for i in self.selectedItems() if isinstance(i, NodeItem)]

    def selected_node_ids(self) -> list[str]:
        order = {n.id: k for k, n in enumerate(self.doc.graph.nodes)}
        return sorted((i.node_id for i in self.selected_node_items()), key=lambda n: order.get(n, 0))

    def selected_edge_ids(self) -> list[str]:
        return [i.edge_id for i in self.selectedItems() if isinstance(i, EdgeItem)]

    def _on_selection(self) -> None:
        ids = self.selected_node_ids()
        self.doc.set_selected_node(ids[0] if len(ids) == 1 and not self.selected_edge_ids() else "")

    def select_only(self, node_ids=(), edge_ids=()) -> None:
        self.blockSignals(True)
        try:
            self.clearSelection()
            for nid in node_ids:
                if nid in self.nodes:
                    self.nodes[nid].setSelected(True)
            for eid in edge_ids:
                if eid in self.edges:
                    self.edges[eid].setSelected(True)
        finally:
            self.blockSignals(False)
        self._on_selection()
        self.selectionChanged.emit()

    def preview_items(self) -> list:
        """Connection previews currently shown (empty unless a port drag is in progress)."""
        from gui.canvas.edge_item import PreviewEdgeItem
        return [i for i in self.items() if isinstance(i, PreviewEdgeItem)]

    def nodes_rect(self) -> QRectF:
        rect = QRectF()
        for item in self.nodes.values():
            rect = rect.united(item.sceneBoundingRect())
        return rect

    # ------------------------------------------------------------------ editing helpers
    def _node_corner(self, scene_pos: QPointF, centred: bool = True) -> tuple[float, float]:
        x, y = scene_pos.x(), scene_pos.y()
        if centred:
            x, y = x - NODE_W / 2, y - NODE_H / 2
        if self.snap_to_grid:
            x, y = round(x / GRID) * GRID, round(y / GRID) * GRID
        return x, y

    def add_layer(self, type_name: str, scene_pos: QPointF, centred: bool = True) -> str:
        """Add a layer (one undo step) with its centre (or top-left) at ``scene_pos``; returns its id."""
        cmd = AddNodeCommand(self.doc, type_name, {}, self._node_corner(scene_pos, centred))
        self.doc.push(cmd)
        self.select_only([cmd.node_id])
        self.statusMessage.emit(f"Added {type_name} '{self.doc.graph.node(cmd.node_id).name}'. "
                                "Drag from its right-hand port to connect it.")
        return cmd.node_id

    def add_after(self, node_id: str, type_name: str, scene_pos: QPointF) -> str | None:
        """A new layer after ``node_id``: on its one outgoing connection when it has one (as a drop
        there does), else fed by it; unconnected when neither fits (the status bar says why)."""
        g = self.doc.graph
        out = g.out_edges(node_id)
        if len(out) == 1 and can_splice(type_name):  # the next layer sits where a new one would go
            return self.insert_layer_on(out[0].id, type_name)  # in line, the layers after it moved right
        stack = self.doc.undo_stack
        stack.beginMacro(f"Add {type_name} after '{g.node(node_id).name}'")  # one undo step, connection and all
        try:
            new = self.add_layer(type_name, scene_pos)
            problem = g.connection_problem(node_id, new) if g.node(node_id).spec.outputs else "it has no output"
            if problem is None:
                self.connect_ends(node_id, new)
        finally:
            stack.endMacro()
        if problem is not None:
            self.statusMessage.emit(f"Added {type_name} '{g.node(new).name}', not connected to "
                                    f"'{g.node(node_id).name}': {problem}")
        return new

    def splice_target(self, type_name: str, scene_pos: QPointF) -> EdgeItem | None:
        """The connection a ``type_name`` layer dropped at ``scene_pos`` goes onto: the edge there, when
        no node covers it and the layer has the one input and output a splice needs."""
        if not can_splice(type_name):
            return None
        for item in self.items(scene_pos):  # topmost first
            if isinstance(item, EdgeItem):
                return item
            if isinstance(item.topLevelItem(), NodeItem):
                return None
        return None

    def show_splice(self, edge: EdgeItem | None, type_name: str = "") -> None:
        """Mark ``edge`` as the one a drop of a ``type_name`` layer would split (None: no edge), and
        say so in the status bar when the target changes."""
        if edge is not None and edge is not self._splice:
            g = self.doc.graph
            e = g.edge(edge.edge_id)
            self.statusMessage.emit(f"Drop to insert {type_name} between '{g.node(e.src).name}' "
                                    f"and '{g.node(e.dst).name}'.")
        if self._splice is not None and self._splice is not edge and self._splice.scene() is self:
            self._splice.set_drop_target(False)
        self._splice = edge
        if edge is not None:
            edge.set_drop_target(True)

    def _below_ends(self, edge_id: str) -> QPointF:
        """Between a connection's two layers, a row below them: a centre where a new layer covers neither."""
        edge = self.doc.graph.edge(edge_id)
        a, b = self.nodes[edge.src], self.nodes[edge.dst]
        ra, rb = a.sceneBoundingRect(), b.sceneBoundingRect()
        overhang = a.pos().y() - ra.top()  # badges and chips reach above and below the body
        y = max(ra.bottom(), rb.bottom()) + GRID * 2 + overhang + NODE_H / 2
        return QPointF((ra.center().x() + rb.center().x()) / 2, y)

    def insert_layer_on(self, edge_id: str, type_name: str, scene_pos: QPointF | None = None) -> str | None:
        """Insert a layer on a connection, centred at ``scene_pos`` (None: in line after its source);
        one undo step.  Where it would cover a layer (a drop between two close layers hid both), the
        layers the connection leads to move right to make room in line, as Blender's auto-offset
        does; where that cannot clear it, it goes a row below the connection's ends.  Returns its id,
        or None when the lab refuses it (the status bar says why)."""
        g = self.doc.graph
        edge = g.edge(edge_id)
        src, dst = g.node(edge.src).name, g.node(edge.dst).name
        corner, moves = (self._node_corner(scene_pos), {}) if scene_pos is not None else (None, {})
        if corner is None or self._covers(corner):
            corner, moves = self._room_in_line(edge_id)
            if self._covers(corner, moves):
                corner, moves = self._node_corner(self._below_ends(edge_id)), {}
        before = {n.id for n in g.nodes}
        try:
            insert = InsertOnEdgeCommand(self.doc, edge_id, type_name, corner)
        except LayerLabError as exc:
            self.statusMessage.emit(str(exc))
            return None
        # a view that showed the whole graph keeps showing it when layers move right to make room
        # (the Output had slid off a fitted canvas's edge)
        whole = [v for v in self.views() if moves and hasattr(v, "shows_whole_graph") and v.shows_whole_graph()]
        stack = self.doc.undo_stack
        stack.beginMacro(insert.text())
        try:
            if moves:
                self.doc.push(MoveNodesCommand(self.doc, moves, f"Make room for {type_name}"))
            self.doc.push(insert)
        finally:
            stack.endMacro()
        for view in whole:
            if not view.shows_whole_graph():
                view.fit_to_view(max_zoom=view.zoom())  # out just enough, never in
        node_id = next(n.id for n in g.nodes if n.id not in before)
        self.select_only([node_id])
        self.statusMessage.emit(f"Inserted {type_name} '{g.node(node_id).name}' between '{src}' and '{dst}'.")
        return node_id

    def _covers(self, corner: tuple[float, float], moves: dict | None = None) -> bool:
        """Whether a new layer at ``corner`` would cover a layer (where ``moves`` has put them)."""
        spot = QRectF(corner[0], corner[1], NODE_W, NODE_H)
        for nid, item in self.nodes.items():
            rect = item.sceneBoundingRect()
            if moves and nid in moves:
                (ox, oy), (nx, ny) = moves[nid]
                rect.translate(nx - ox, ny - oy)
            if spot.intersects(rect):
                return True
        return False

    def _room_in_line(self, edge_id: str) -> tuple[tuple[float, float], dict]:
        """A corner one column after the connection's source, level with it, and the moves that
        shift the layers it leads to (from its destination on, those not left of it) right far
        enough to clear that spot, with any other layer right of it that they would then cover."""
        g = self.doc.graph
        edge = g.edge(edge_id)
        a, b = g.node(edge.src).pos, g.node(edge.dst).pos
        corner = (a[0] + COLUMN_STEP, a[1])
        shift = math.ceil((corner[0] + COLUMN_STEP - b[0]) / GRID) * GRID
        if shift <= 0:
            return corner, {}
        movable = {n.id for n in g.nodes if n.pos[0] >= b[0] - GRID / 2}
        moves = {}
        for nid in g.downstream(edge.dst) & movable:
            x, y = g.node(nid).pos
            moves[nid] = ((x, y), (x + shift, y))
        # a layer the moved ones would now cover (a parallel branch's, level with them) moves too
        pushed = True
        while pushed:
            moved = [self.nodes[nid].sceneBoundingRect().translated(shift, 0) for nid in moves]
            pushed = False
            for nid in sorted(movable - moves.keys()):
                if any(self.nodes[nid].sceneBoundingRect().intersects(r) for r in moved):
                    x, y = g.node(nid).pos
                    moves[nid] = ((x, y), (x + shift, y))
                    pushed = True
        return corner, moves

    def apply_fix(self, fix: Fix) -> None:
        try:
            self.doc.push(ApplyFixCommand(self.doc, fix))
        except LayerLabError as exc:
            self.statusMessage.emit(str(exc))
            return
        self.statusMessage.emit(f"Applied fix: {fix.label}.")

    def delete_selection(self) -> None:
        """Delete what is selected; a layer the lab locks stays, and the status bar says why."""
        refusals = delete_items(self.doc, self.selected_node_ids(), self.selected_edge_ids())
        if refusals:
            self.last_refusal = " ".join(refusals)
            self.statusMessage.emit(self.last_refusal)

    def copy_selection(self) -> bool:
        ids = self.selected_node_ids()
        if not ids:
            return False
        fragment = copy_fragment(self.doc.graph, ids)
        # Plain text, not a QMimeData built here: the clipboard would own a Python-made object, and
        # Qt's exit-time clean-up deletes it after Python has gone (SIGSEGV on quit after a copy).
        QApplication.clipboard().setText(json.dumps(fragment, indent=1))
        self._paste_count = 0
        return True

    def cut_selection(self) -> None:
        deletable = [n for n in self.selected_node_ids() if not lab_locks.delete_refusal(self.doc, n)]
        if not deletable and not self.selected_edge_ids():
            self.copy_selection()
            self.delete_selection()  # deletes nothing; says why
            return
        if self.copy_selection():
            self.doc.undo_stack.beginMacro("Cut")
            try:
                self.delete_selection()
            finally:
                self.doc.undo_stack.endMacro()

    def paste(self) -> list[str]:
        mime = QApplication.clipboard().mimeData()
        if mime is None:
            return []
        raw = mime.text().encode()
        try:
            fragment = json.loads(raw.decode() or "null")
        except (UnicodeDecodeError, ValueError):
            fragment = None
        if not isinstance(fragment, dict):
            self.statusMessage.emit("The clipboard does not hold LayerLab layers.")
            return []
        self._paste_count += 1
        return self._paste_fragment(fragment, 30.0 * self._paste_count, "Paste")

    def duplicate_selection(self) -> list[str]:
        ids = self.selected_node_ids()
        if not ids:
            return []
        return self._paste_fragment(copy_fragment(self.doc.graph, ids), 30.0, "Duplicate")

    def _paste_fragment(self, fragment: dict, offset: float, text: str) -> list[str]:
        try:
            new_ids = paste_fragment(self.doc, fragment, (offset, offset), text)
        except (LayerLabError, KeyError, TypeError, ValueError) as exc:
            self.statusMessage.emit(f"Cannot paste: {exc}")
            return []
        self.select_only(new_ids)
        return new_ids

    # ------------------------------------------------------------------ mouse
    def _port_at(self, pos: QPointF) -> PortItem | None:
        for item in self.items(pos):
            if isinstance(item, PortItem):
                return item
        return None

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.LeftButton:
            port = self._port_at(event.scenePos())
            if port is not None:
                self._drag = ConnectionDrag(self, port)
                event.accept()
                return
        super().mousePressEvent(event)
        if event.button() == Qt.LeftButton:
            self._mover.begin()

    def mouseMoveEvent(self, event) -> None:
        if self._drag is not None:
            self._drag.move(event.scenePos(), event.screenPos())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        if self._drag is not None and event.button() == Qt.LeftButton:
            drag, self._drag = self._drag, None
            try:
                drag.finish(event.scenePos())
            except LayerLabError as exc:
                self.last_refusal = str(exc)
                self.statusMessage.emit(str(exc))
            event.accept()
            return
        super().mouseReleaseEvent(event)
        if event.button() == Qt.LeftButton:
            self._mover.end()

    def _cancel_drag(self) -> None:
        if self._drag is not None:
            self._drag.cancel()
            self._drag = None

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key_Escape and self._drag is not None:
            self._cancel_drag()
            event.accept()
            return
        super().keyPressEvent(event)

    # ------------------------------------------------------------------ context menus
    def contextMenuEvent(self, event) -> None:
        item = next((i for i in self.items(event.scenePos()) if isinstance(i, (NodeItem, EdgeItem))), None)
        if item is None:
            item = next((i.parentItem() for i in self.items(event.scenePos())
                         if isinstance(i.parentItem(), NodeItem)), None)
        if isinstance(item, NodeItem):
            if not item.isSelected():
                self.select_only([item.node_id])
            dialogs.exec_menu(self.node_menu(item.node_id), event.screenPos())
            return
        menu = QMenu()
        if isinstance(item, EdgeItem):
            self.select_only(edge_ids=[item.edge_id])
            sub = menu.addMenu("Insert layer here")
            allowed = lab_locks.allowed_types(self.doc)
            for t in [t for t in QUICK_INSERT if allowed is None or t in allowed]:
                sub.addAction(t, lambda t=t, e=item.edge_id: self.insert_layer_on(e, t))
            sub.setEnabled(bool(sub.actions()))
            menu.addAction("Delete connection", self.delete_selection)
        else:
            pos = event.scenePos()
            add = menu.addMenu("Add layer")
            allowed = lab_locks.allowed_types(self.doc)
            for category, specs in REGISTRY.categories().items():
                specs = [s for s in specs if allowed is None or s.type in allowed]
                if not specs:
                    continue
                cat = add.addMenu(category)
                for spec in specs:
                    cat.addAction(spec.type, lambda t=spec.type: self.add_layer(t, pos))
            menu.addAction("Paste", self.paste)
        dialogs.exec_menu(menu, event.screenPos())

    def node_menu(self, node_id: str) -> QMenu:
        """A layer's actions: its fixes, connecting it (what the mouse does by dragging between ports,
        here for the keyboard too), duplicate, copy, delete."""
        menu = QMenu()
        item = self.nodes[node_id]
        fixes = [i.fix for i in item.errors if i.fix is not None]
        for fix in fixes:
            menu.addAction(f"Apply fix: {fix.label}", lambda f=fix: self.apply_fix(f))
        if fixes:
            menu.addSeparator()
        for title, ends in (("Connect output to", self.connectable(node_id, downstream=True)),
                            ("Connect input from", self.connectable(node_id, downstream=False))):
            # greyed out with no reason, the entry looked broken: say why there is nothing to pick
            sub = menu.addMenu(title if ends else f"{title}: no free port fits")
            for label, (src, dst, sp, dp) in ends:
                sub.addAction(label, lambda e=(src, dst, sp, dp): self.connect_ends(*e))
            sub.setEnabled(bool(ends))
        menu.addSeparator()
        menu.addAction("Duplicate", self.duplicate_selection)
        menu.addAction("Copy", self.copy_selection)
        menu.addAction("Delete", self.delete_selection)
        return menu

    def connectable(self, node_id: str, downstream: bool) -> list[tuple[str, tuple[str, str, str, str]]]:
        """The connections ``node_id`` can take: to the layers its output may feed (``downstream``) or
        from those that may feed it, left to right on the canvas, as (label, (src, dst, src_port, dst_port))."""
        g = self.doc.graph
        me = g.node(node_id)
        found = []
        for other in self._left_to_right():
            if other.id == node_id:
                continue
            src, dst = (me, other) if downstream else (other, me)
            for sp in src.spec.outputs:
                for dp in dst.spec.inputs:
                    if g.connection_problem(src.id, dst.id, sp.name, dp.name) is None:
                        port = f" ({dp.name})" if len(dst.spec.inputs) > 1 else ""
                        found.append((f"{other.type} '{other.name}'{port}", (src.id, dst.id, sp.name, dp.name)))
        return found

    def _left_to_right(self) -> list:
        """The layers in the order the keyboard walks and the Connect menus list them."""
        return sorted(self.doc.graph.nodes, key=lambda n: (n.pos[0], n.pos[1]))

    def connect_ends(self, src: str, dst: str, src_port: str = "out", dst_port: str = "in") -> str | None:
        """Connect as one undo step and say so in the status bar; returns the refusal (None: connected)."""
        try:
            cmd = ConnectCommand(self.doc, src, dst, src_port, dst_port)
            self.doc.push(cmd)
        except LayerLabError as exc:
            self.statusMessage.emit(f"Not connected: {exc}")
            return str(exc)
        self.statusMessage.emit("Connected " + cmd.text().removeprefix("Connect ") + ".")
        return None

    def select_step(self, step: int) -> bool:
        """Select the layer after (``step`` 1) or before (-1) the selected one, left to right on the
        canvas; False past either end (nothing is selected then), so Tab can move on to other widgets."""
        order = [n.id for n in self._left_to_right()]
        ids = self.selected_node_ids()
        if not order:
            return False
        if ids and ids[0] in order:
            k = order.index(ids[0]) + step
        else:
            k = 0 if step > 0 else len(order) - 1
        if not 0 <= k < len(order):
            self.select_only([])
            self.statusMessage.emit("")  # it spoke of the layer selected last
            return False
        self.select_only([order[k]])
        node = self.doc.graph.node(order[k])
        # short: the status bar cut the longer sentence mid-word at 1280 px
        self.statusMessage.emit(f"{node.type} '{node.name}' · Tab: next layer · Shift+F10: its menu")
        return True

