"""Edges: cubic pipes from an output port to an input port, and the live preview while dragging."""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFontMetricsF, QPainter, QPainterPath, QPainterPathStroker, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem

from engine.spec import fmt_shape
from gui import theme
from gui.canvas.node_item import LOW_DETAIL, HoverHighlight, LazyToolTip, font


def pipe_path(a: QPointF, b: QPointF) -> QPainterPath:
    """A horizontal-tangent cubic from a to b (loops around when b lies left of a)."""
    dx = b.x() - a.x()
    bend = max(40.0, abs(dx) * 0.5) if dx >= 0 else max(80.0, -dx * 0.5 + 60.0)
    path = QPainterPath(a)
    path.cubicTo(QPointF(a.x() + bend, a.y()), QPointF(b.x() - bend, b.y()), b)
    return path


_stroker = QPainterPathStroker()
_stroker.setWidth(12.0)

_pens: dict = {}


def _pen(color: QColor, width: float, cosmetic: bool) -> QPen:
    """Pens are cached: painting 500 edges should not build 500 QPen objects per frame."""
    key = (color.rgba(), width, cosmetic)
    pen = _pens.get(key)
    if pen is None:
        pen = QPen(color, 0 if cosmetic else width, Qt.SolidLine, Qt.RoundCap)
        _pens[key] = pen
    return pen


_colors: dict = {}


def _color(name: str) -> QColor:
    c = _colors.get(name)
    if c is None:
        c = _colors[name] = QColor(name)
    return c


class EdgeItem(LazyToolTip, HoverHighlight, QGraphicsItem):
    def __init__(self, edge_id: str, src_item, dst_item, src_port: str, dst_port: str):
        super().__init__()
        self.edge_id = edge_id
        self.src_item, self.dst_item = src_item, dst_item
        self.src_port, self.dst_port = src_port, dst_port
        self.shape_text = ""
        self.overlay_color: QColor | None = None
        self._drop_target = False  # a palette drag would insert its layer here
        self._path = QPainterPath()
        self._shape = QPainterPath()
        self._rect = QRectF()
        self.setZValue(-1)
        self.setFlag(QGraphicsItem.ItemIsSelectable)
        self.setAcceptHoverEvents(True)
        self.update_path()

    def update_path(self) -> None:
        a = self.src_item.port_pos(self.src_port, False)
        b = self.dst_item.port_pos(self.dst_port, True)
        self.prepareGeometryChange()
        self._path = pipe_path(a, b)
        self._shape = QPainterPath()  # built lazily: hit tests are rarer than moves
        mid = self._path.pointAtPercent(0.5)
        label = QRectF(mid.x() - 70, mid.y() - 12, 140, 24)  # room for the shape pill shown on hover
        self._rect = self._path.boundingRect().adjusted(-8, -8, 8, 8).united(label)

    def set_shape_text(self, shape) -> None:
        text = fmt_shape(shape) if shape is not None else "?"
        if text != self.shape_text:
            self.shape_text = text
            self.invalidate_tooltip()
            self.update()

    def _tooltip_text(self) -> str:
        if not self.shape_text:  # not analysed yet
            return ""
        return (f"Tensor per sample: {self.shape_text}" if self.shape_text != "?" else
                "Shape unknown: a layer upstream has a problem.")

    def set_overlay_color(self, color: QColor | None) -> None:
        if color != self.overlay_color:
            self.overlay_color = color
            self.update()

    def set_drop_target(self, on: bool) -> None:
        if on != self._drop_target:
            self._drop_target = on
            self.update()

    def boundingRect(self) -> QRectF:
        return self._rect

    def shape(self) -> QPainterPath:
        if self._shape.isEmpty():
            self._shape = _stroker.createStroke(self._path)
        return self._shape

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        t = theme.current()
        lod = QStyleOptionGraphicsItem.levelOfDetailFromTransform(painter.worldTransform())
        if self.isSelected():
            color, width = _color(t.selection), 3.0
        elif self._drop_target:
            color, width = _color(t.edge_hover), 5.0
        elif self._hover:
            color, width = _color(t.edge_hover), 3.0
        elif self.overlay_color is not None:
            color, width = self.overlay_color, 3.0
        else:
            color, width = _color(t.edge), 2.0
        if lod < LOW_DETAIL:
            painter.setPen(_pen(color, width, True))
            painter.drawPath(self._path)
            return
        painter.setRenderHint(QPainter.Antialiasing)
        painter.setPen(_pen(color, width, False))
        painter.setBrush(Qt.NoBrush)
        painter.drawPath(self._path)
        # arrowhead into the input port
        end = self._path.pointAtPercent(1.0)
        head = QPolygonF([end + QPointF(-9, -4.5), end + QPointF(-2, 0), end + QPointF(-9, 4.5)])
        painter.setPen(Qt.NoPen)
        painter.setBrush(QBrush(color))
        painter.drawPolygon(head)
        if self._hover and self.shape_text:
            mid = self._path.pointAtPercent(0.5)
            fm = QFontMetricsF(font("badge"))
            w = fm.horizontalAdvance(self.shape_text) + 14
            pill = QRectF(mid.x() - w / 2, mid.y() - 10, w, 20)
            painter.setBrush(QColor(t.edge_hover))
            painter.drawRoundedRect(pill, 10, 10)
            painter.setPen(QColor("#ffffff"))
            painter.setFont(font("badge"))
            painter.drawText(pill, Qt.AlignCenter, self.shape_text)


class PreviewEdgeItem(QGraphicsItem):
    """The dashed pipe that follows the cursor while a connection is dragged."""

    def __init__(self, anchor: QPointF, from_output: bool):
        super().__init__()
        self.anchor = anchor
        self.from_output = from_output
        self.state = ""
        self._path = QPainterPath()
        self._rect = QRectF()
        self.setZValue(10)
        self.setAcceptedMouseButtons(Qt.NoButton)
        self.set_end(anchor)

    def set_end(self, end: QPointF, state: str = "") -> None:
        self.prepareGeometryChange()
        self.state = state
        a, b = (self.anchor, end) if self.from_output else (end, self.anchor)
        self._path = pipe_path(a, b)
        self._rect = self._path.boundingRect().adjusted(-6, -6, 6, 6)
        self.update()

    def set_drop_target(self, on: bool) -> None:
        if on != self._drop_target:
            self._drop_target = on
            self.update()

    def boundingRect(self) -> QRectF:
        return self._rect

    def paint(self, painter: QPainter, option, widget=None) -> None:
        t = theme.current()
        color = QColor({"valid": t.ok, "invalid": t.error}.get(self.state, t.edge_hover))
        painter.setRenderHint(QPainter.Antialiasing)
        painter.setPen(QPen(color, 2.5, Qt.DashLine, Qt.RoundCap))
        painter.setBrush(Qt.NoBrush)
        painter.drawPath(self._path)
