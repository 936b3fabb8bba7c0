"""A node on the canvas: a projection of one graph node plus its latest analysis.

The item only paints.  It never changes the graph: the scene pushes commands and
calls ``set_*`` here when the document tells it something changed.  Painting is
cached per item (DeviceCoordinateCache) and drops to a plain coloured block when
zoomed far out, so a 500-node graph repaints quickly.
"""
from __future__ import annotations

import functools
import html

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QCursor, QFont, QFontMetricsF, QImage, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem

from engine.graph import Node
from engine.layers.io import resolve_loss
from engine.spec import AUTO, LayerSpec, fmt_shape
from engine.validate import Fix, Issue, NodeInfo
from gui import theme

NODE_W = 150.0
NODE_H = 68.0
HEADER_H = 24.0
RADIUS = 7.0
PORT_R = 5.5
GRID = 10.0
IMAGE_SIZE = 56.0
LOW_DETAIL = 0.3  # below this zoom, nodes paint as plain blocks
MID_DETAIL = 0.8  # below this zoom, nodes show type, shape and parameter count in large type

_fonts: dict[str, QFont] = {}


# point size and boldness per text role; the *_big roles are for the zoomed-out overview
_FONT_ROLES: dict[str, tuple[float, bool]] = {
    "title": (10.0, True), "small": (8.0, False), "badge": (8.5, True), "chip": (10.5, True),
    "title_big": (13.5, True), "badge_big": (13.0, True), "small_big": (12.0, False),
}


def font(kind: str) -> QFont:
    f = _fonts.get(kind)
    if f is None:
        size, bold = _FONT_ROLES.get(kind, (8.5, False))
        f = QFont()
        f.setPointSizeF(size)
        f.setBold(bold)
        _fonts[kind] = f
    return f


def human_count(n: int) -> str:
    if n < 1000:
        return str(n)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            v = n / div
            return f"{v:.1f}{suffix}" if v < 100 else f"{v:.0f}{suffix}"
    return str(n)


def short_fix_label(fix: Fix) -> str:
    if fix.kind == "insert" and fix.layer_type:
        return f"insert {fix.layer_type}"
    if fix.kind == "set_param":
        return f"set {fix.key} to {fix.value}"
    if fix.kind == "remove":
        return "delete it"
    return fix.label.split(" before ")[0]


def param_summary(node: Node, spec: LayerSpec, task: str | None, data_caption: str) -> str:
    if node.type == "Input":
        return data_caption or "no dataset chosen"
    if node.type == "Output":
        loss = node.params.get("loss", "auto")
        resolved = resolve_loss(loss, task)
        return f"loss: {resolved}"
    parts = []
    for p in spec.params:
        if p.kind == "bool":
            continue
        v = node.params[p.name]
        if p.kind == "ints":
            v = "×".join(str(x) for x in v)
        elif v == AUTO:
            v = "auto"
        elif p.kind == "float":
            v = f"{v:g}"
        # "stride: same as kernel", never "stride 0"
        parts.append(f"{p.title}: {p.zero_text}" if p.zero_text and v == 0 else f"{p.title} {v}")
        if len(parts) == 2:
            break
    if len(parts) == 2 and QFontMetricsF(font("body")).horizontalAdvance(" · ".join(parts)) > NODE_W - 18:
        parts = parts[:1]  # one setting in full beats two cut off
    return " · ".join(parts) if parts else spec.category.lower()


class LazyToolTip:
    """A tooltip whose text is built when it is first needed (the mouse enters the item, or someone
    calls ``toolTip()``), not when the item is made or changed: building and setting the tooltips
    of a 500-layer project's nodes and ports took a fifth of opening it."""

    _tip_dirty = True

    def _tooltip_text(self) -> str:
        raise NotImplementedError

    def invalidate_tooltip(self) -> None:
        self._tip_dirty = True

    def _apply_tooltip(self) -> None:
        if self._tip_dirty:
            self._tip_dirty = False
            QGraphicsItem.setToolTip(self, self._tooltip_text())

    def toolTip(self) -> str:
        self._apply_tooltip()
        return QGraphicsItem.toolTip(self)

    def hoverEnterEvent(self, event) -> None:  # before Qt's tooltip event reads the text
        self._apply_tooltip()
        super().hoverEnterEvent(event)


class HoverHighlight:
    """Mixin for canvas items drawn highlighted under the mouse: ``_hover`` and a repaint on enter/leave."""

    _hover = False

    def hoverEnterEvent(self, event) -> None:
        self._hover = True
        self.update()

    def hoverLeaveEvent(self, event) -> None:
        self._hover = False
        self.update()


# PySide6's enums are Python enum members (singletons): ``is`` against these is the cheapest test
_POSITION_CHANGE = QGraphicsItem.GraphicsItemChange.ItemPositionChange
_POSITION_HAS_CHANGED = QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged

@functools.cache
def _cross_cursor() -> QCursor:
    """One shared QCursor for every port (a new one per port cost 1,000 allocations on open)."""
    return QCursor(Qt.CrossCursor)


class PortItem(LazyToolTip, HoverHighlight, QGraphicsItem):
    """An input (left edge) or output (right edge) port.  Drag from one to connect."""

    def __init__(self, node_item: "NodeItem", name: str, is_input: bool, multi: bool, index: int, count: int):
        super().__init__(node_item)
        self.node_item = node_item
        self.name = name
        self.is_input = is_input
        self.multi = multi
        self.state = ""  # "", "valid", "invalid"
        y = NODE_H * (index + 1) / (count + 1)
        self.setPos(0.0 if is_input else NODE_W, y)
        self.setAcceptHoverEvents(True)
        self.setCursor(_cross_cursor())

    def _tooltip_text(self) -> str:
        if self.is_input:
            return (f"Input “{self.name}”: accepts several connections (they are merged in order)." if self.multi
                    else f"Input “{self.name}”: drag here from another layer's output.")
        return f"Output “{self.name}”: drag from here to another layer's input."

    @property
    def node_id(self) -> str:
        return self.node_item.node_id

    _RECT = QRectF(-10, -12, 20, 24)

    def boundingRect(self) -> QRectF:
        return self._RECT

    def shape(self) -> QPainterPath:
        p = QPainterPath()
        p.addEllipse(QPointF(0, 0), 10, 10)
        return p

    def set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.update()

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        lod = QStyleOptionGraphicsItem.levelOfDetailFromTransform(painter.worldTransform())
        if lod < LOW_DETAIL:
            return
        t = theme.current()
        color = self.node_item.category_color
        if self.state == "valid":
            color = QColor(t.ok)
        elif self.state == "invalid":
            color = QColor(t.error)
        r = PORT_R + (1.5 if (self._hover or self.state) else 0.0)
        painter.setPen(QPen(color, 2.0))
        painter.setBrush(QBrush(color if (self._hover or self.state == "valid") else QColor(t.port_fill)))
        if self.multi:
            painter.drawRoundedRect(QRectF(-r, -r * 1.7, 2 * r, 3.4 * r), r, r)
        else:
            painter.drawEllipse(QPointF(0, 0), r, r)


class FixChip(HoverHighlight, QGraphicsItem):
    """A small "Fix: insert Flatten" button under a node in error; one click applies the engine's fix."""

    def __init__(self, node_item: "NodeItem"):
        super().__init__(node_item)
        self.node_item = node_item
        self.fix: Fix | None = None
        self.text = ""
        self._w = 0.0
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.PointingHandCursor)
        self.setZValue(3)
        self.setVisible(False)

    def set_fix(self, fix: Fix | None) -> None:
        self.prepareGeometryChange()
        self.fix = fix
        self.setVisible(fix is not None)
        if fix is not None:
            self.text = f"Fix: {short_fix_label(fix)}"
            self._w = QFontMetricsF(font("chip")).horizontalAdvance(self.text) + 18
            self.setToolTip(f"Click to {fix.label} (one undo step).")

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, self._w, 24)

    def mousePressEvent(self, event) -> None:
        event.accept()

    def mouseReleaseEvent(self, event) -> None:
        if self.fix is not None and self.boundingRect().contains(event.pos()):
            scene = self.scene()
            if scene is not None:
                scene.apply_fix(self.fix)
        event.accept()

    def paint(self, painter: QPainter, option, widget=None) -> None:
        if self.fix is None:
            return
        t = theme.current()
        painter.setRenderHint(QPainter.Antialiasing)
        base = QColor(t.highlight)
        if self._hover:
            base = base.darker(115)
        painter.setPen(Qt.NoPen)
        painter.setBrush(base)
        painter.drawRoundedRect(self.boundingRect(), 12, 12)
        painter.setPen(QColor("#ffffff"))
        painter.setFont(font("chip"))
        painter.drawText(self.boundingRect(), Qt.AlignCenter, self.text)


class NodeItem(LazyToolTip, QGraphicsItem):
    def __init__(self, node: Node, spec: LayerSpec):
        super().__init__()
        self.node_id = node.id
        self.spec = spec
        self.category_color = theme.category_color(spec.category)
        self.name = node.name
        self.summary = ""
        self.shape_text = ""
        self.compact_shape = ""  # "32×28×28": the badge's text where "(32, 28, 28)" does not fit
        self.params_text = ""
        self.errors: list[Issue] = []
        self.warnings: list[Issue] = []
        self.image: QImage | None = None
        self.lock_text: str | None = None  # why the lab locks this layer (None: not locked)
        self._state_key = None
        self._syncing = False
        self.setFlags(QGraphicsItem.ItemIsMovable | QGraphicsItem.ItemIsSelectable
                      | QGraphicsItem.ItemSendsGeometryChanges)
        self.setCacheMode(QGraphicsItem.DeviceCoordinateCache)
        self.setAcceptHoverEvents(True)
        self.edges: list = []  # EdgeItems attached to this node (kept by the scene)
        self.inputs = {p.name: PortItem(self, p.name, True, p.multi, i, len(spec.inputs))
                       for i, p in enumerate(spec.inputs)}
        self.outputs = {p.name: PortItem(self, p.name, False, False, i, len(spec.outputs))
                        for i, p in enumerate(spec.outputs)}
        self._fix_chip: FixChip | None = None  # made for the first fix (most layers never have one)
        self.sync_pos(node.pos)

    @property
    def fix_chip(self) -> FixChip:
        """The "Fix: …" button under the layer (hidden while there is no fix)."""
        if self._fix_chip is None:
            self._fix_chip = FixChip(self)
            self._layout_children()
        return self._fix_chip

    # ------------------------------------------------------------------ model -> item
    def sync_pos(self, pos) -> None:
        self._syncing = True
        try:
            self.setPos(QPointF(float(pos[0]), float(pos[1])))
        finally:
            self._syncing = False

    def set_text(self, name: str, summary: str) -> None:
        if (name, summary) != (self.name, self.summary):
            self.name, self.summary = name, summary
            self.invalidate_tooltip()
            self.update()

    def set_state(self, info: NodeInfo | None, issues: list[Issue]) -> None:
        key = (id(info), tuple(issues))
        if key == self._state_key:
            return
        self._state_key = key
        self.errors = [i for i in issues if i.severity == "error"]
        self.warnings = [i for i in issues if i.severity != "error"]
        shape = info.shape if info is not None else None
        self.shape_text = fmt_shape(shape) if shape is not None else "?"
        self.compact_shape = "×".join(str(d) for d in shape) if shape else self.shape_text
        self.params_text = f"{human_count(info.n_params)} params" if (info is not None and shape is not None) else ""
        fix = next((i.fix for i in self.errors if i.fix is not None), None)
        if fix is not None or self._fix_chip is not None:
            self.fix_chip.set_fix(fix)
        self._layout_children()
        self.invalidate_tooltip()
        self.update()

    def set_lock(self, text: str | None) -> None:
        """Draw the layer locked (a padlock and a dashed double border) and say why in its tooltip."""
        if text != self.lock_text:
            self.lock_text = text
            self.invalidate_tooltip()
            self.update()

    def set_image(self, image: QImage | None) -> None:
        if image is None and self.image is None:
            return
        if (image is None) != (self.image is None):
            self.prepareGeometryChange()
        self.image = image
        self._layout_children()
        self.update()

    def set_port_detail(self, visible: bool) -> None:
        """Ports are hidden when zoomed far out: a thousand invisible dots still cost paint calls."""
        for p in (*self.inputs.values(), *self.outputs.values()):
            p.setScale(1.0)
            p.setVisible(visible)

    # Zoomed far out, the hovered layer still shows its ports, at their usual size on screen, so a
    # connection can start there (and end on any layer's body: the drag picks its best port).
    def hoverEnterEvent(self, event) -> None:
        scene = self.scene()
        if scene is not None and not scene.port_detail:
            scale = 1.0 / max(getattr(scene, "zoom", 1.0), 1e-3)
            for p in (*self.inputs.values(), *self.outputs.values()):
                p.setScale(scale)
                p.setVisible(True)
        super().hoverEnterEvent(event)

    def hoverLeaveEvent(self, event) -> None:
        scene = self.scene()
        if scene is not None and not scene.port_detail:
            self.set_port_detail(False)
        super().hoverLeaveEvent(event)

    def refresh_theme(self) -> None:
        self.category_color = theme.category_color(self.spec.category)
        self.update()
        for p in (*self.inputs.values(), *self.outputs.values()):
            p.update()

    def _layout_children(self) -> None:
        y = NODE_H + 6 + (IMAGE_SIZE + 6 if self.image is not None else 0)
        if self._fix_chip is not None:
            self._fix_chip.setPos(0, y)

    def _tooltip_text(self) -> str:
        lines = [f"<b>{self.spec.type}</b> &nbsp;<i>{self.name}</i>", self.spec.description]
        if self.shape_text and self.shape_text != "?":
            lines.append(f"Output shape per sample: <b>{self.shape_text}</b> · {self.params_text}")
        t = theme.current()
        for issue in self.errors:
            lines.append(f"<span style='color:{t.error}'>✖ {issue.message}</span>")
            if issue.fix is not None:
                lines.append(f"<b>Fix:</b> {issue.fix.label} (click the blue button under the node, "
                             "or right-click → Apply fix).")
        for issue in self.warnings:
            lines.append(f"<span style='color:{t.warning}'>⚠ {issue.message}</span>")
        if self.lock_text:
            lines.append(f"<b>{html.escape(self.lock_text, quote=False)}</b>")
        return "<br>".join(lines)

    # ------------------------------------------------------------------ geometry
    def port_pos(self, name: str, is_input: bool) -> QPointF:
        port = (self.inputs if is_input else self.outputs).get(name)
        if port is None:
            return self.scenePos() + QPointF(0 if is_input else NODE_W, NODE_H / 2)
        return port.scenePos()

    # room around the body for the corner marks (error top right, padlock top left)
    _RECT = QRectF(-14, -14, NODE_W + 26, NODE_H + 18)
    _RECT_IMAGE = QRectF(-14, -14, NODE_W + 26, NODE_H + IMAGE_SIZE + 6 + 18)

    def boundingRect(self) -> QRectF:
        return self._RECT if self.image is None else self._RECT_IMAGE

    def shape(self) -> QPainterPath:
        p = QPainterPath()
        p.addRoundedRect(QRectF(0, 0, NODE_W, NODE_H), RADIUS, RADIUS)
        return p

    def itemChange(self, change, value):
        # Qt calls this for every change (17 kinds for a new node with its ports): only two matter,
        # and QGraphicsItem's own itemChange returns the value unchanged, so the rest return at once
        if change is _POSITION_CHANGE:
            if not self._syncing:
                scene = self.scene()
                if scene is not None and getattr(scene, "snap_to_grid", False):
                    return QPointF(round(value.x() / GRID) * GRID, round(value.y() / GRID) * GRID)
        elif change is _POSITION_HAS_CHANGED:
            for e in self.edges:
                e.update_path()
        return value

    # ------------------------------------------------------------------ painting
    def _paint_lock(self, painter: QPainter, t, full: bool) -> None:
        """A locked layer: a dashed second border, and a padlock on the header's top-left corner."""
        ink = QColor(t.node_subtext)
        if not (self.errors or self.isSelected()):
            painter.setPen(QPen(ink, 1.3, Qt.DashLine))
            painter.setBrush(Qt.NoBrush)
            painter.drawRoundedRect(QRectF(0, 0, NODE_W, NODE_H).adjusted(-3.5, -3.5, 3.5, 3.5),
                                    RADIUS + 2, RADIUS + 2)
        r = 9.0 if full else 12.0
        centre = QPointF(1.0, -1.0)
        painter.setPen(QPen(QColor(t.node_fill), 1.5))
        painter.setBrush(ink)
        painter.drawEllipse(centre, r, r)
        # the padlock: a shackle (an arch) over a body (a rounded block)
        s = r / 9.0
        body = QRectF(centre.x() - 4.2 * s, centre.y() - 0.6 * s, 8.4 * s, 5.8 * s)
        shackle = QRectF(centre.x() - 2.7 * s, centre.y() - 5.2 * s, 5.4 * s, 7.0 * s)
        painter.setBrush(Qt.NoBrush)
        painter.setPen(QPen(QColor("#ffffff"), 1.5 * s))
        painter.drawArc(shackle, 0, 180 * 16)
        painter.drawLine(QPointF(shackle.left(), shackle.center().y()), QPointF(shackle.left(), body.top()))
        painter.drawLine(QPointF(shackle.right(), shackle.center().y()), QPointF(shackle.right(), body.top()))
        painter.setPen(Qt.NoPen)
        painter.setBrush(QColor("#ffffff"))
        painter.drawRoundedRect(body, 1.2 * s, 1.2 * s)

    def badge_label(self, metrics: QFontMetricsF) -> str:
        """The output-shape badge's text: "→ (32, 28, 28)", or "→ 32×28×28" where that does not fit
        the node (zoomed out, the badge had read "→ (32, 28, …" and hid the shape's end)."""
        text = f"→ {self.shape_text}"
        if metrics.horizontalAdvance(text) + 12 > NODE_W - 14:
            text = f"→ {self.compact_shape}"
        return text

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        """Three levels of detail: a plain block when far out; type, shape and parameter count
        in large type at overview zoom (so a whole network stays readable at 1280x800); and
        everything (name, settings) from MID_DETAIL up."""
        t = theme.current()
        rect = QRectF(0, 0, NODE_W, NODE_H)
        selected = self.isSelected()
        error = bool(self.errors)
        lod = QStyleOptionGraphicsItem.levelOfDetailFromTransform(painter.worldTransform())
        if lod < LOW_DETAIL:
            painter.setPen(QPen(QColor(t.error if error else (t.selection if selected else t.node_border)),
                                3.0 / max(lod, 0.05) if (error or selected) else 0))
            painter.setBrush(QColor(t.node_fill))
            painter.drawRect(rect)
            painter.fillRect(QRectF(0, 0, NODE_W, HEADER_H), self.category_color)
            return
        full = lod >= MID_DETAIL
        painter.setRenderHint(QPainter.Antialiasing)
        # soft shadow, body, category-coloured header
        painter.setPen(Qt.NoPen)
        painter.setBrush(QColor(0, 0, 0, 28 if t.name == "light" else 70))
        painter.drawRoundedRect(rect.translated(1.5, 2.5), RADIUS, RADIUS)
        body = QPainterPath()
        body.addRoundedRect(rect, RADIUS, RADIUS)
        painter.fillPath(body, QColor(t.node_fill))
        header = QPainterPath()
        header.addRoundedRect(QRectF(0, 0, NODE_W, HEADER_H + RADIUS), RADIUS, RADIUS)
        painter.save()
        painter.setClipRect(QRectF(0, 0, NODE_W, HEADER_H))
        painter.fillPath(header, self.category_color)
        painter.restore()
        title_font = font("title" if full else "title_big")
        tfm = QFontMetricsF(title_font)
        title_rect = QRectF(9, 0, NODE_W - 18, HEADER_H)
        painter.setFont(title_font)
        painter.setPen(QColor("#ffffff"))
        painter.drawText(title_rect, Qt.AlignVCenter | Qt.AlignLeft,
                         tfm.elidedText(self.spec.type, Qt.ElideRight, NODE_W - 18))
        if full:  # the node's name: it names the submodule in the generated code
            used = tfm.horizontalAdvance(self.spec.type) + 8
            painter.setFont(font("small"))
            painter.setPen(QColor(255, 255, 255, 215))
            name = QFontMetricsF(font("small")).elidedText(self.name, Qt.ElideRight, max(0.0, NODE_W - 18 - used))
            painter.drawText(title_rect, Qt.AlignVCenter | Qt.AlignRight, name)
            painter.setFont(font("body"))
            painter.setPen(QColor(t.node_subtext))
            fm = QFontMetricsF(font("body"))
            painter.drawText(QRectF(9, HEADER_H + 3, NODE_W - 18, 17), Qt.AlignVCenter | Qt.AlignLeft,
                             fm.elidedText(self.summary, Qt.ElideRight, NODE_W - 18))
            badge_font, small_font, badge_h = font("badge"), font("small"), 17.0
            badge_y = HEADER_H + 22
        else:
            badge_font, small_font, badge_h = font("badge_big"), font("small_big"), 24.0
            badge_y = HEADER_H + (NODE_H - HEADER_H - badge_h) / 2
        # output-shape badge and parameter count
        bfm = QFontMetricsF(badge_font)
        badge_text = self.badge_label(bfm)
        bw = min(bfm.horizontalAdvance(badge_text) + 12, NODE_W - 14)
        badge = QRectF(7, badge_y, bw, badge_h)
        painter.setPen(Qt.NoPen)
        painter.setBrush(QColor(t.error) if error else QColor(t.badge_fill))
        painter.drawRoundedRect(badge, badge_h / 2, badge_h / 2)
        painter.setFont(badge_font)
        painter.setPen(QColor("#ffffff") if error else QColor(t.badge_text))
        painter.drawText(badge, Qt.AlignCenter, bfm.elidedText(badge_text, Qt.ElideRight, bw - 8))
        if self.params_text:
            painter.setFont(small_font)
            painter.setPen(QColor(t.node_subtext))
            room = NODE_W - badge.right() - 12
            sfm = QFontMetricsF(small_font)
            text = self.params_text
            if not full or sfm.horizontalAdvance(text) > room:
                text = text.split(" ")[0]  # "4.2k params" -> "4.2k" next to a wide shape badge
            if sfm.horizontalAdvance(text) <= room:
                painter.drawText(QRectF(badge.right() + 4, badge.top(), room + 4, badge_h),
                                 Qt.AlignVCenter | Qt.AlignRight, text)
        # outline: error (red), selection or plain
        if error:
            pen = QPen(QColor(t.error), 2.6 if full else 3.2)
        elif selected:
            pen = QPen(QColor(t.selection), 2.4 if full else 3.0)
        else:
            pen = QPen(QColor(t.node_border), 1.0)
        painter.setPen(pen)
        painter.setBrush(Qt.NoBrush)
        painter.drawRoundedRect(rect, RADIUS, RADIUS)
        if error and selected:
            painter.setPen(QPen(QColor(t.selection), 1.2, Qt.DashLine))
            painter.drawRoundedRect(rect.adjusted(-3.5, -3.5, 3.5, 3.5), RADIUS + 2, RADIUS + 2)
        if self.lock_text:
            self._paint_lock(painter, t, full)
        # corner mark: ! for an error, a dot for a warning
        if error or self.warnings:
            c = QColor(t.error if error else t.warning)
            centre = QPointF(NODE_W - 1, -1)
            painter.setPen(QPen(QColor(t.node_fill), 1.5))
            painter.setBrush(c)
            painter.drawEllipse(centre, 8 if error else 5, 8 if error else 5)
            if error:
                painter.setPen(QColor("#ffffff"))
                painter.setFont(font("badge"))
                painter.drawText(QRectF(centre.x() - 8, centre.y() - 8, 16, 16), Qt.AlignCenter, "!")
        if self.image is not None:
            target = QRectF(NODE_W / 2 - IMAGE_SIZE / 2, NODE_H + 6, IMAGE_SIZE, IMAGE_SIZE)
            painter.drawImage(target, self.image)
            painter.setPen(QPen(QColor(t.node_border), 1.0))
            painter.setBrush(Qt.NoBrush)
            painter.drawRect(target)
