"""Things drawn over the canvas at a fixed place on screen: the first-steps hint and the edge legend.

They are small child widgets of the view, not paint calls in ``drawForeground``: a text fixed to
the viewport, painted with the scene, was copied along when the canvas scrolled and left a second
hint behind; widgets of the view (not of its viewport, whose children scroll with the scene) stay
put and never need the scene to repaint.  Both let the mouse through to the canvas.

``CanvasHint`` says what to do next while the graph is trivial and goes once it is not; the view
puts it in a corner no node covers (or hides it).  ``EdgeLegend`` explains the training overlay's
edge tints: the colour ramp and the range of values it spans, fed by the overlay dict's optional
``"edge_legend": (lo, hi, label)`` (``lo``/``hi`` are log10 of the smallest and largest value).
"""
from __future__ import annotations

import math

from PySide6.QtCore import QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QLinearGradient, QPainter
from PySide6.QtWidgets import QLabel, QWidget

from gui import theme

HINTS = {
    "empty": ("Your canvas is empty.\n\n"
              "Drag layers from the palette on the left and drop them here (or double-click a layer there, "
              "or double-click the canvas to search). A network starts with Input and ends with Output. "
              "Connect layers by dragging from an output dot (right side) to an input dot (left side)."),
    "blank": ("Drag layers from the palette into the space between Input and Output (or double-click the "
              "canvas to search), then connect them: drag from a layer's right-hand dot to the next "
              "layer's left-hand dot."),
    "unconnected": ("Connect the layers: drag from the dot on the right of a layer to the dot on the left "
                    "of the next one. Try Input → Linear → ReLU → Linear → Output."),
    "few": ("Add layers between Input and Output from the palette, then connect them by dragging from a "
            "layer's right-hand dot to the next layer's left-hand dot."),
}
MARGIN = 12  # from the viewport's edges and from the nodes


def _mouse_transparent(w: QWidget) -> None:
    w.setAttribute(Qt.WA_TransparentForMouseEvents)
    w.setFocusPolicy(Qt.NoFocus)


class CanvasHint(QLabel):
    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self.kind = ""
        self.setWordWrap(True)
        self.setObjectName("CanvasHint")
        _mouse_transparent(self)
        self.hide()
        self.restyle()

    def restyle(self) -> None:
        t = theme.current()
        canvas = QColor(t.canvas)
        self.setStyleSheet(f"QLabel#CanvasHint {{ color: {t.hint_text}; padding: 6px 10px; border-radius: 6px;"
                           f" background: rgba({canvas.red()}, {canvas.green()}, {canvas.blue()}, 225); }}")

    def set_kind(self, kind: str) -> None:
        self.kind = kind
        if kind:
            self.setText(HINTS[kind])
            f = QFont(self.font())
            f.setPointSizeF(11.5 if kind == "empty" else 10.0)
            self.setFont(f)
            self.setAlignment(Qt.AlignCenter if kind == "empty" else Qt.AlignLeft | Qt.AlignVCenter)

    def size_for(self, width: int) -> QSize:
        return QSize(width, self.heightForWidth(width))


def fmt_power(log10_value: float) -> str:
    """log10 -> a short number for the legend's ends: -3 -> '0.001', -5.2 -> '6.3e-06'."""
    v = 10.0 ** log10_value
    return f"{v:.2g}" if 1e-3 <= v < 1e4 else f"{v:.1e}"


class EdgeLegend(QWidget):
    """A colour ramp, its label and the values at its ends ("gradient norm  0.001 ▬▬▬ 0.4")."""

    BAR_W, BAR_H = 120, 10

    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self.lo = self.hi = 0.0
        self.label = ""
        self.stops: list[tuple[int, int, int]] = []
        _mouse_transparent(self)
        self.hide()

    def set_legend(self, lo: float, hi: float, label: str, stops) -> None:
        self.lo, self.hi, self.label = float(lo), float(hi), str(label)
        self.stops = [tuple(int(c) for c in s[:3]) for s in stops]
        self.setToolTip(f"Edge colours: {self.label}, log scale from {fmt_power(self.lo)} to {fmt_power(self.hi)}")
        self.resize(self.sizeHint())
        self.update()

    def texts(self) -> tuple[str, str]:
        return fmt_power(self.lo), fmt_power(self.hi)

    def sizeHint(self) -> QSize:
        fm = QFontMetrics(self.font())
        lo, hi = self.texts()
        top = fm.horizontalAdvance(f"edges: {self.label} (log scale)")
        bottom = fm.horizontalAdvance(lo) + fm.horizontalAdvance(hi) + self.BAR_W + 16
        return QSize(max(top, bottom) + 16, 2 * fm.height() + 12)

    def paintEvent(self, event) -> None:
        t = theme.current()
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        canvas = QColor(t.canvas)
        canvas.setAlpha(225)
        p.setPen(QColor(t.node_border))
        p.setBrush(canvas)
        p.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 6, 6)
        fm = QFontMetrics(self.font())
        p.setPen(QColor(t.text))
        p.drawText(QRect(8, 4, self.width() - 16, fm.height()), Qt.AlignLeft | Qt.AlignVCenter,
                   f"edges: {self.label} (log scale)")
        lo, hi = self.texts()
        y = 8 + fm.height()
        p.drawText(QRect(8, y, fm.horizontalAdvance(lo), fm.height()), Qt.AlignVCenter, lo)
        x0 = 8 + fm.horizontalAdvance(lo) + 6
        bar = QRectF(x0, y + (fm.height() - self.BAR_H) / 2, self.BAR_W, self.BAR_H)
        grad = QLinearGradient(bar.topLeft(), bar.topRight())
        n = max(len(self.stops) - 1, 1)
        for i, rgb in enumerate(self.stops):
            grad.setColorAt(i / n, QColor(*rgb))
        p.setPen(Qt.NoPen)
        p.setBrush(grad)
        p.drawRect(bar)
        p.setPen(QColor(t.text))
        p.drawText(QRect(int(bar.right()) + 6, y, fm.horizontalAdvance(hi) + 2, fm.height()), Qt.AlignVCenter, hi)
        p.end()


def legend_stops(lut, lo_t: float = 0.15, hi_t: float = 0.95, n: int = 8) -> list[tuple[int, int, int]]:
    """Colour stops of ``lut`` (N x 3) between the fractions the edge tints use."""
    size = len(lut)
    return [tuple(int(c) for c in lut[min(size - 1, int((lo_t + (hi_t - lo_t) * k / (n - 1)) * (size - 1)))])
            for k in range(n)]


def finite(*values) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
