"""The canvas widget: zoom to the cursor, pan (middle drag or space + drag), fit, grid, drops.

Layers dragged from the palette arrive as ``LAYER_MIME`` drops and become one
AddNodeCommand at the drop point.  While the graph is empty (or nothing is
connected yet) a short hint in a free corner tells a first-time user what to do;
while training tints the edges, a legend says what the colours mean
(``gui/canvas/overlays.py``).
"""
from __future__ import annotations

import math

from PySide6.QtCore import QLineF, QPoint, QPointF, QRect, QRectF, Qt, Signal, Slot
from PySide6.QtGui import QColor, QContextMenuEvent, QPainter, QPen
from PySide6.QtWidgets import QFrame, QGraphicsView

from engine.errors import LayerLabError
from gui import dialogs, theme
from gui.mime import LAYER_MIME
from gui.canvas.node_item import GRID, LOW_DETAIL, NODE_W
from gui.canvas.overlays import MARGIN, CanvasHint, EdgeLegend, finite, legend_stops
from gui.canvas.scene import GraphScene

MIN_ZOOM, MAX_ZOOM = 0.05, 3.0
#: a project opens no smaller than this: layers show their type and shape from LOW_DETAIL (0.3) on,
#: but fitted at exactly 0.3 rounding painted them as plain blocks, and 0.4 reads at a glance
OPEN_ZOOM = 0.4
MAJOR = GRID * 10


class GraphView(QGraphicsView):
    zoomChanged = Signal(float)

    def __init__(self, scene: GraphScene, parent=None):
        super().__init__(scene, parent)
        self.graph_scene = scene
        self.show_grid = True
        self._pan_from: QPointF | None = None
        self._space = False
        self.setRenderHints(QPainter.Antialiasing | QPainter.TextAntialiasing | QPainter.SmoothPixmapTransform)
        self.setViewportUpdateMode(QGraphicsView.SmartViewportUpdate)
        self.setOptimizationFlags(QGraphicsView.DontSavePainterState)
        self.setTransformationAnchor(QGraphicsView.NoAnchor)  # set_zoom anchors by hand
        self.setResizeAnchor(QGraphicsView.AnchorViewCenter)
        self.setDragMode(QGraphicsView.RubberBandDrag)
        self.setRubberBandSelectionMode(Qt.IntersectsItemShape)
        self.setAcceptDrops(True)
        self.setFrameShape(QFrame.NoFrame)
        self.setFocusPolicy(Qt.StrongFocus)
        # Panning is middle-drag, space + drag or Shift + wheel; scroll bars over a 80k-wide scene only distract.
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setMouseTracking(True)
        self._quick_add = None
        self._quick_add_pos = QPointF()
        self._quick_add_after: str | None = None  # Add Layer's pick goes after this layer
        self.hint = CanvasHint(self)
        self.edge_legend = EdgeLegend(self)
        scene.doc.graphChanged.connect(self.place_overlays)
        scene.doc.overlayChanged.connect(self._show_edge_legend)
        scene.changed.connect(self._scene_changed)
        self.zoomChanged.connect(self._zoom_detail)
        theme.add_listener(self._on_theme)

    def _zoom_detail(self, z: float) -> None:
        self.graph_scene.zoom = z
        self.graph_scene.set_port_detail(z >= LOW_DETAIL)
        if self.hint.kind:
            self.place_overlays()

    def _hint_kind(self) -> str:
        g = self.graph_scene.doc.graph
        if not g.nodes:
            return "empty"
        if not g.edges:
            return "blank" if all(n.type in ("Input", "Output") for n in g.nodes) else "unconnected"
        return "few" if len(g.nodes) <= 2 else ""

    # ------------------------------------------------------------------ hint and legend
    def place_overlays(self, *_args) -> None:
        """The legend in the top-right corner; the hint (while the graph is trivial) in the first
        corner where it covers no node and not the legend, else hidden."""
        if self.scene() is None:  # the scene is being destroyed (it detaches itself first): no items to avoid
            return
        vp = self.viewport().geometry()
        legend = self.edge_legend
        if legend.isVisibleTo(self):
            legend.resize(legend.sizeHint())
            legend.move(vp.right() - legend.width() - MARGIN + 1, vp.top() + MARGIN)
        kind = self._hint_kind()
        hint = self.hint
        if kind != hint.kind:
            hint.set_kind(kind)
        if not kind:
            hint.hide()
            return
        if kind == "empty":
            width = max(120, min(620, vp.width() - 8 * MARGIN))
            size = hint.size_for(width)
            hint.setGeometry(QRect(vp.center() - QPoint(size.width() // 2, size.height() // 2), size))
            hint.show()
            hint.raise_()
            return
        size = hint.size_for(max(120, min(440, vp.width() - 2 * MARGIN)))
        taken = [self._item_rect(item) for item in self.graph_scene.nodes.values()]
        if legend.isVisibleTo(self):
            taken.append(legend.geometry())
        left, right = vp.left() + MARGIN, vp.right() - MARGIN - size.width() + 1
        top, bottom = vp.top() + MARGIN, vp.bottom() - MARGIN - size.height() + 1
        for x, y in ((left, bottom), (right, bottom), (left, top), (right, top)):
            box = QRect(QPoint(x, y), size)
            if vp.contains(box) and not any(box.intersects(r) for r in taken):
                hint.setGeometry(box)
                hint.show()
                hint.raise_()
                return
        hint.hide()  # every corner has a layer in it: the hint would hide one

    def _item_rect(self, item) -> QRect:
        """A node with its ports and fix chip, in view coordinates, with a margin."""
        scene_rect = item.mapRectToScene(item.boundingRect() | item.childrenBoundingRect())
        r = self.mapFromScene(scene_rect).boundingRect().translated(self.viewport().pos())
        return r.adjusted(-MARGIN, -MARGIN, MARGIN, MARGIN)

    def _scene_changed(self, _rects) -> None:
        if self.hint.kind:  # a node moved under the hint?
            self.place_overlays()

    def _show_edge_legend(self, overlay) -> None:
        """Show ``overlay["edge_legend"] = (lo, hi, label[, colour stops])`` (lo/hi: log10), or hide it."""
        legend = (overlay or {}).get("edge_legend")
        if not legend or len(legend) < 3 or not finite(legend[0], legend[1]):
            self.edge_legend.hide()
        else:
            lo, hi, label = legend[:3]
            stops = legend[3] if len(legend) > 3 and legend[3] else self._default_stops()
            self.edge_legend.set_legend(lo, hi, label, stops)
            self.edge_legend.show()
            self.edge_legend.raise_()
        self.place_overlays()

    @staticmethod
    def _default_stops():
        """The ramp the training overlay tints edges with (inferno, 0.15 to 0.95 of it)."""
        import pyqtgraph as pg
        return legend_stops(pg.colormap.get("inferno").getLookupTable(nPts=256, alpha=False))

    def _on_theme(self, _t) -> None:
        self.hint.restyle()
        self.edge_legend.update()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.place_overlays()

    def scrollContentsBy(self, dx: int, dy: int) -> None:
        super().scrollContentsBy(dx, dy)
        if self.hint.kind:
            self.place_overlays()
        if self.hasFocus():  # Qt moves the painted pixels, the focus border among them: draw it anew
            self.viewport().update()

    # ------------------------------------------------------------------ zoom
    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, z: float, anchor: QPointF | None = None) -> None:
        """Zoom to ``z``, keeping the scene point under the viewport position ``anchor`` (default: the centre)
        where it is.  Done by hand: AnchorUnderMouse follows the real cursor, not the event position."""
        z = min(MAX_ZOOM, max(MIN_ZOOM, z))
        factor = z / self.zoom()
        if abs(factor - 1.0) < 1e-9:
            return
        pos = anchor if anchor is not None else QPointF(self.viewport().rect().center())
        self.setTransformationAnchor(QGraphicsView.NoAnchor)
        before = self.mapToScene(pos.toPoint())
        self.scale(factor, factor)
        after = self.mapToScene(pos.toPoint())
        delta = after - before
        self.translate(delta.x(), delta.y())
        self.zoomChanged.emit(self.zoom())

    def zoom_by(self, factor: float) -> None:
        self.set_zoom(self.zoom() * factor)

    def zoom_in(self) -> None:
        self.set_zoom(self.zoom() * 1.25)

    def zoom_out(self) -> None:
        self.set_zoom(self.zoom() / 1.25)

    def reset_zoom(self) -> None:
        self.set_zoom(1.0)

    def fit_to_view(self, max_zoom: float = 1.0, min_zoom: float = MIN_ZOOM) -> None:
        """Show the whole graph, at most at ``max_zoom``.  Where that needs less than ``min_zoom``,
        show it at ``min_zoom`` from its left end (its Input), where a network is read from."""
        rect = self.graph_scene.nodes_rect()
        if rect.isNull():
            self.resetTransform()
            self.centerOn(0, 0)
            self.zoomChanged.emit(1.0)
            return
        rect = rect.adjusted(-16, -24, 16, 24)
        self.fitInView(rect, Qt.KeepAspectRatio)
        if self.zoom() > max_zoom:
            self.resetTransform()
            self.scale(max_zoom, max_zoom)
            self.centerOn(rect.center())
        elif self.zoom() < min_zoom:
            self.resetTransform()
            self.scale(min_zoom, min_zoom)
            half_width = self.viewport().width() / min_zoom / 2
            self.centerOn(min(rect.center().x(), rect.left() + half_width), rect.center().y())
        self.zoomChanged.emit(self.zoom())

    def fit_readable(self) -> None:
        """A project just opened: the whole graph if its layers can still be read, else as much
        of it as can, from the left (a 19-layer CNN fitted at 22 % was blocks without a word)."""
        self.fit_to_view(min_zoom=OPEN_ZOOM)

    def shows_whole_graph(self) -> bool:
        rect = self.graph_scene.nodes_rect()
        return not rect.isNull() and self.mapToScene(self.viewport().rect()).boundingRect().contains(rect)

    def visible_centre(self) -> QPointF:
        return self.mapToScene(self.viewport().rect().center())

    def wheelEvent(self, event) -> None:
        if event.modifiers() & (Qt.ShiftModifier | Qt.AltModifier):  # pan instead of zoom
            d = event.angleDelta()
            dx, dy = (d.y(), 0) if event.modifiers() & Qt.ShiftModifier else (d.x(), d.y())
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - dx // 2)
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - dy // 2)
            event.accept()
            return
        delta = event.angleDelta().y() or event.angleDelta().x()
        if not delta:
            return
        self.set_zoom(self.zoom() * math.pow(1.0015, delta), anchor=event.position())
        event.accept()

    # ------------------------------------------------------------------ panning
    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MiddleButton or (event.button() == Qt.LeftButton and self._space):
            self._pan_from = event.position()
            self.viewport().setCursor(Qt.ClosedHandCursor)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        if self._pan_from is not None:
            d = event.position() - self._pan_from
            self._pan_from = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - int(d.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - int(d.y()))
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        if self._pan_from is not None and event.button() in (Qt.MiddleButton, Qt.LeftButton):
            self._pan_from = None
            self.viewport().setCursor(Qt.OpenHandCursor if self._space else Qt.ArrowCursor)
            event.accept()
            return
        super().mouseReleaseEvent(event)

    # ------------------------------------------------------------------ quick add
    def mouseDoubleClickEvent(self, event) -> None:
        pos = event.position().toPoint()
        if event.button() == Qt.LeftButton and self.itemAt(pos) is None:  # empty canvas
            self.quick_add_at(self.mapToScene(pos), self.viewport().mapToGlobal(pos))
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def quick_add_at(self, scene_pos: QPointF, global_pos, after: str | None = None):
        """Open the quick-add search; the layer picked there is added at ``scene_pos`` (and goes after
        the layer ``after``, connected to it)."""
        from gui.canvas.quick_add import QuickAdd

        if self._quick_add is None:
            self._quick_add = QuickAdd(self)
            self._quick_add.chosen.connect(self._quick_add_chosen)
        self._quick_add_pos = scene_pos
        self._quick_add_after = after
        from gui.lab_locks import allowed_types
        self._quick_add.set_allowed(allowed_types(self.graph_scene.doc))
        self._quick_add.popup(global_pos)
        return self._quick_add

    def quick_add_after_selection(self):
        """Edit > Add Layer (Ctrl+K): the quick-add search beside the selected layer, whose pick goes
        after it; with no single layer selected, in the middle of the view."""
        ids = self.graph_scene.selected_node_ids()
        after = ids[0] if len(ids) == 1 else None
        if after is not None:
            rect = self.graph_scene.nodes[after].sceneBoundingRect()
            at = QPointF(rect.right() + GRID * 2 + NODE_W / 2, rect.center().y())
        else:
            at = self.mapToScene(self.viewport().rect().center())
        return self.quick_add_at(at, self.viewport().mapToGlobal(self.mapFromScene(at)), after=after)

    @Slot(str)
    def _quick_add_chosen(self, type_name: str) -> None:
        try:
            if self._quick_add_after is not None and self.graph_scene.doc.graph.has_node(self._quick_add_after):
                self.graph_scene.add_after(self._quick_add_after, type_name, self._quick_add_pos)
            else:
                self.graph_scene.add_layer(type_name, self._quick_add_pos)
        except LayerLabError as exc:
            self.graph_scene.statusMessage.emit(str(exc))
        self.setFocus()

    NUDGE = {Qt.Key_Left: (-1, 0), Qt.Key_Right: (1, 0), Qt.Key_Up: (0, -1), Qt.Key_Down: (0, 1)}

    def focusNextPrevChild(self, next: bool) -> bool:
        """Tab and Shift+Tab walk the layers, left to right; past the last one focus moves on."""
        if self.graph_scene.select_step(1 if next else -1):
            self.ensure_selection_visible()
            return True
        return super().focusNextPrevChild(next)

    def ensure_selection_visible(self) -> None:
        """Scroll to the selected layer only when it is not in sight already (a fitted graph scrolled
        sideways at every Tab, its first layer half off the left edge)."""
        ids = self.graph_scene.selected_node_ids()
        if not ids:
            return
        rect = self.graph_scene.nodes[ids[0]].sceneBoundingRect()
        if not self.mapToScene(self.viewport().rect()).boundingRect().contains(rect):
            self.ensureVisible(rect, 20, 20)

    def open_selection_menu(self) -> bool:
        """The selected layer's menu, below it (the Menu key or Shift+F10)."""
        ids = self.graph_scene.selected_node_ids()
        if len(ids) != 1:
            return False
        self.ensure_selection_visible()
        rect = self.graph_scene.nodes[ids[0]].sceneBoundingRect()
        at = self.viewport().mapToGlobal(self.mapFromScene(rect.bottomLeft()))
        dialogs.exec_menu(self.graph_scene.node_menu(ids[0]), at)
        return True

    def contextMenuEvent(self, event) -> None:
        # the Menu key: Qt sends it as a context-menu request at the middle of the view, where no
        # layer may be; it is meant for the selected one
        if event.reason() == QContextMenuEvent.Keyboard and self.open_selection_menu():
            event.accept()
            return
        super().contextMenuEvent(event)

    def keyPressEvent(self, event) -> None:
        if (event.key() == Qt.Key_F10 and event.modifiers() & Qt.ShiftModifier
                and self.open_selection_menu()):  # Shift+F10, as elsewhere: the selected layer's menu
            event.accept()
            return
        if event.key() == Qt.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.viewport().setCursor(Qt.OpenHandCursor)
            event.accept()
            return
        step = self.NUDGE.get(event.key())
        ids = self.graph_scene.selected_node_ids() if step and self.scene().focusItem() is None else []
        if ids:  # arrow keys nudge the selection by one grid step, five with Shift
            from gui.commands import nudge_nodes

            d = GRID * (5 if event.modifiers() & Qt.ShiftModifier else 1)
            nudge_nodes(self.graph_scene.doc, ids, step[0] * d, step[1] * d)
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:
        if event.key() == Qt.Key_Space and not event.isAutoRepeat():
            self._space = False
            self._pan_from = None
            self.viewport().setCursor(Qt.ArrowCursor)
            event.accept()
            return
        super().keyReleaseEvent(event)

    # ------------------------------------------------------------------ drops from the palette
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasFormat(LAYER_MIME):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        mime = event.mimeData()
        if not mime.hasFormat(LAYER_MIME):
            event.ignore()
            return
        type_name = bytes(mime.data(LAYER_MIME)).decode("utf-8")
        edge = self.graph_scene.splice_target(type_name, self.mapToScene(event.position().toPoint()))
        self.graph_scene.show_splice(edge, type_name)
        event.acceptProposedAction()

    def dragLeaveEvent(self, event) -> None:
        self.graph_scene.show_splice(None)
        super().dragLeaveEvent(event)

    def dropEvent(self, event) -> None:
        mime = event.mimeData()
        self.graph_scene.show_splice(None)
        if not mime.hasFormat(LAYER_MIME):
            event.ignore()
            return
        type_name = bytes(mime.data(LAYER_MIME)).decode("utf-8")
        pos = self.mapToScene(event.position().toPoint())
        edge = self.graph_scene.splice_target(type_name, pos)
        try:
            if edge is not None:  # dropped on a connection: the layer goes between its ends
                self.graph_scene.insert_layer_on(edge.edge_id, type_name, pos)
            else:
                self.graph_scene.add_layer(type_name, pos)
        except LayerLabError as exc:
            self.graph_scene.statusMessage.emit(str(exc))
            event.ignore()
            return
        event.acceptProposedAction()
        self.setFocus()

    # ------------------------------------------------------------------ painting
    # ------------------------------------------------------------------ keyboard focus, shown
    def focusInEvent(self, event) -> None:
        super().focusInEvent(event)
        self.viewport().update()

    def focusOutEvent(self, event) -> None:
        super().focusOutEvent(event)
        self.viewport().update()

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self.hasFocus():  # where the keys go: Tab, Delete, arrows and Ctrl+K act on the canvas
            painter = QPainter(self.viewport())
            painter.setPen(QPen(QColor(theme.current().selection), 2))
            painter.drawRect(self.viewport().rect().adjusted(1, 1, -1, -1))
            painter.end()

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:
        t = theme.current()
        painter.fillRect(rect, QColor(t.canvas))
        if not self.show_grid:
            return
        z = self.zoom()
        painter.setRenderHint(QPainter.Antialiasing, False)
        for step, color in ((GRID * 2, t.grid_minor), (MAJOR, t.grid_major)):
            if step * z < 9:
                continue
            left = math.floor(rect.left() / step) * step
            top = math.floor(rect.top() / step) * step
            lines = []
            x = left
            while x < rect.right():
                lines.append(QLineF(x, rect.top(), x, rect.bottom()))
                x += step
            y = top
            while y < rect.bottom():
                lines.append(QLineF(rect.left(), y, rect.right(), y))
                y += step
            painter.setPen(QPen(QColor(color), 0))
            painter.drawLines(lines)
