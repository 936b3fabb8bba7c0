"""An attribution map drawn over its input, in the form that fits the data.

* Images: the input in grey with the map as a second ImageItem over it, its colour running from
  transparent (no effect) to strong, an opacity slider, and a colour bar in the map's units.
  A signed map paints evidence for the target red and against it blue.
* Tabular rows: one signed horizontal bar per feature, named from the data's header with the
  sample's value (in the data's units), the largest effects on top.
* 2-feature data: beside the bars, the gradient field - arrows showing where the target class's
  probability rises fastest - over the probability map and its 0.5 contour, with the sample marked.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QSlider, QStackedWidget, QVBoxLayout, QWidget

from gui.insight.widgets import image_rgb8, natural_range, picture_plot
from gui.views import CLASS_COLORS, PanelPlot, make_plot

MAX_BARS = 15  # more names than this do not fit a dock's height; the caption says how many are left out
POSITIVE = (230, 40, 30)
NEGATIVE = (30, 90, 230)

# the map's colours: transparent where it is zero, so the image shows through
SIGNED_MAP = pg.ColorMap([0.0, 0.5, 1.0], [(*NEGATIVE, 255), (255, 255, 255, 0), (*POSITIVE, 255)])
UNSIGNED_MAP = pg.ColorMap([0.0, 0.35, 1.0], [(255, 40, 0, 0), (255, 60, 0, 170), (255, 255, 40, 255)])
#: how far the plane's colour goes from white at p = 0 or 1, pale so the arrows and points read over it
FIELD_TINT = 0.6
NOT_TARGET = (150, 150, 150)  # p low, with more than two classes: "some other class"
FIELD_BARS_HEIGHT = 110  # px: two bars and their axis under the input plane
FIELD_MIN_HEIGHT = 220  # px: below this the plane is a strip; the Explain panel scrolls instead


def field_lut(target: int, n_classes: int) -> np.ndarray:
    """(256, 3) uint8 colours for p(target) from 0 to 1: white at 0.5, the target class's colour
    (as in the Decision boundary view and on the points) towards 1, and towards 0 the other
    class's colour (two classes) or grey.  A fixed red-blue map had painted the upper moon's
    region red around its blue points."""
    high = CLASS_COLORS[target % len(CLASS_COLORS)].astype(np.float64)
    low = (CLASS_COLORS[(1 - target) % len(CLASS_COLORS)].astype(np.float64) if n_classes == 2
           else np.asarray(NOT_TARGET, np.float64))
    p = np.linspace(0.0, 1.0, 256)[:, None]
    colour = np.where(p >= 0.5, high, low)
    mix = FIELD_TINT * np.abs(2 * p - 1)
    return np.round(colour * mix + 255.0 * (1 - mix)).astype(np.uint8)


def signed_plane(values: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W): channels summed (their shares add up), or one of them when all are
    the same (Grad-CAM copies its map into every channel)."""
    a = np.asarray(values, dtype=np.float64)
    if a.ndim == 3:
        return a[0] if a.shape[0] == 1 or np.allclose(a, a[:1]) else a.sum(0)
    return a


class ImageAttribution(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(2)
        self.plot = picture_plot()
        pi = self.plot.getPlotItem()
        self.base = pg.ImageItem(axisOrder="row-major")
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.overlay.setZValue(5)
        pi.addItem(self.base)
        pi.addItem(self.overlay)
        self.colorbar = pg.ColorBarItem(values=(-1.0, 1.0), colorMap=SIGNED_MAP, width=12, interactive=False,
                                        colorMapMenu=False, label="attribution")
        self.colorbar.setImageItem(self.overlay, insert_in=pi)
        col.addWidget(self.plot, 1)
        row = QHBoxLayout()
        row.addWidget(QLabel("Opacity"))
        self.opacity = QSlider(Qt.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(75)
        self.opacity.setToolTip("How strongly the map covers the image (0: the image alone)")
        self.opacity.valueChanged.connect(lambda v: self.overlay.setOpacity(v / 100.0))
        row.addWidget(self.opacity, 1)
        self.legend = QLabel("")
        self.legend.setWordWrap(True)
        row.addWidget(self.legend, 2)
        col.addLayout(row)
        self.overlay.setOpacity(0.75)
        self.plane: np.ndarray | None = None

    def set_map(self, image: np.ndarray, values: np.ndarray, target_name: str, signed: bool | None = None) -> None:
        self.base.setImage(image_rgb8(image, natural_range(image)), levels=(0, 255))
        plane = signed_plane(values)
        self.plane = plane
        peak = float(np.max(np.abs(plane))) if plane.size else 0.0
        peak = peak if peak > 0 else 1.0
        signed = bool(plane.min() < 0) if signed is None else signed
        h, w = plane.shape
        if signed:
            self.colorbar.setColorMap(SIGNED_MAP)
            levels = (-peak, peak)
            self.legend.setText(f"<span style='color:rgb{POSITIVE}'>red</span>: raises the score of "
                                f"<b>{target_name}</b>; <span style='color:rgb{NEGATIVE}'>blue</span>: lowers it")
        else:
            self.colorbar.setColorMap(UNSIGNED_MAP)
            levels = (0.0, peak)
            self.legend.setText(f"yellow: where the score of <b>{target_name}</b> is most sensitive or its "
                                "evidence lies")
        self.overlay.setImage(plane, autoLevels=False, levels=levels)
        self.colorbar.setLevels(levels)
        # after setImage: an ImageItem's rect is a transform computed from the image it holds
        self.base.setRect(QRectF(0, 0, w, h))
        self.overlay.setRect(QRectF(0, 0, w, h))
        self.plot.getPlotItem().setRange(xRange=(0, w), yRange=(0, h), padding=0.0)

    def clear(self) -> None:
        self.base.clear()
        self.overlay.clear()
        self.plane = None
        self.legend.setText("")


class FeatureBars(QWidget):
    """Signed horizontal bars, one per named feature, the largest magnitude on top."""

    def __init__(self, title: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        self.axis = pg.AxisItem("left")
        self.plot = PanelPlot(axisItems={"left": self.axis})
        self.plot.setMenuEnabled(False)
        pi = self.plot.getPlotItem()
        pi.hideButtons()
        pi.setMouseEnabled(False, False)
        pi.invertY(True)
        if title:
            pi.setTitle(title, size="9pt")
        pi.getAxis("bottom").enableAutoSIPrefix(False)  # "0.02", not "20" with a cut-off "(m)"
        pi.addItem(pg.InfiniteLine(pos=0, angle=90, pen=pg.mkPen((140, 140, 140))))
        self.bars = pg.BarGraphItem(x0=[], y=[], width=[], height=0.7)
        pi.addItem(self.bars)
        self.errors = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), pen=pg.mkPen((60, 60, 60), width=1.5))
        pi.addItem(self.errors)
        col.addWidget(self.plot, 1)
        self.names: list[str] = []
        self.shown: list[int] = []

    def set_bars(self, labels: list[str], values: np.ndarray, errors: np.ndarray | None = None,
                 x_label: str = "", order: str = "abs", limit: int = MAX_BARS, colours=None) -> int:
        """Draw ``values`` named by ``labels``; returns how many were left out (past ``limit``)."""
        v = np.asarray(values, dtype=np.float64)
        key = -np.abs(v) if order == "abs" else -v
        idx = np.argsort(key, kind="stable")[:limit]
        self.shown = [int(i) for i in idx]
        self.names = [labels[i] for i in idx]
        ys = np.arange(len(idx), dtype=np.float64)
        if colours is None:
            colours = [POSITIVE if v[i] >= 0 else NEGATIVE for i in idx]
        brushes = [pg.mkBrush(*c, 210) for c in colours]
        self.bars.setOpts(x0=np.zeros(len(idx)), y=ys, width=v[idx], height=0.7, brushes=brushes,
                          pens=[pg.mkPen(None)] * len(idx))
        if errors is not None:
            e = np.asarray(errors, dtype=np.float64)[idx]
            self.errors.setData(x=v[idx], y=ys, left=e, right=e, beam=0.25)
            self.errors.show()
        else:
            self.errors.hide()
        self.axis.setTicks([[(float(y), name) for y, name in zip(ys, self.names)], []])
        # room for the longest name ("od280/od315_of_diluted_wines"): pyqtgraph's own guess cuts it
        fm = QFontMetrics(self.axis.style["tickFont"] or QFont())
        self.axis.setWidth(min(max((fm.horizontalAdvance(n) for n in self.names), default=20) + 16, 320))
        pi = self.plot.getPlotItem()
        pi.setLabel("bottom", x_label)
        lo = min(0.0, float(np.min(v[idx] - (0 if errors is None else np.asarray(errors)[idx])))) if len(idx) else 0
        hi = max(0.0, float(np.max(v[idx] + (0 if errors is None else np.asarray(errors)[idx])))) if len(idx) else 1
        pad = 0.05 * (hi - lo if hi > lo else 1.0)
        pi.setRange(xRange=(lo - pad, hi + pad), yRange=(-0.6, max(len(idx), 1) - 0.4), padding=0.0)
        return max(0, len(v) - len(idx))

    def clear(self) -> None:
        self.bars.setOpts(x0=[], y=[], width=[], brushes=None, pens=None)
        self.errors.hide()
        self.axis.setTicks([[], []])
        self.names, self.shown = [], []


class GradientFieldPlot(QWidget):
    """The target's probability over the 2-D input, its 0.5 contour, arrows up its gradient."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        self.plot = make_plot(bottom="x₁", left="x₂", widget=PanelPlot)
        pi = self.plot.getPlotItem()
        pi.setMouseEnabled(False, False)
        pi.disableAutoRange()  # the grid's extent, not the arrows', sets the view
        self.img = pg.ImageItem(axisOrder="row-major")
        pi.addItem(self.img)
        # row-major like the image (rows follow y): pyqtgraph's default would draw the contour transposed
        self.contour = pg.IsocurveItem(level=0.5, pen=pg.mkPen((20, 20, 20), width=2), axisOrder="row-major")
        self.contour.setParentItem(self.img)
        self.arrows = pg.PlotDataItem(pen=pg.mkPen((25, 25, 25, 230), width=1.3), connect="pairs")
        pi.addItem(self.arrows)
        # outlined like the Decision boundary view's, so a point stays visible on its own class's tint
        self.points = pg.ScatterPlotItem(size=5, pen=pg.mkPen(255, 255, 255, 160, width=0.6))
        pi.addItem(self.points)
        self.sample = pg.ScatterPlotItem(size=16, symbol="star", pen=pg.mkPen("k", width=1.5),
                                         brush=pg.mkBrush(255, 230, 0))
        self.sample.setZValue(10)
        pi.addItem(self.sample)
        col.addWidget(self.plot, 1)
        self.field = None

    def set_field(self, field, sample_xy, points=None, labels=None, title: str = "", target: int = 0,
                  n_classes: int = 2) -> None:
        self.field = field
        self.img.setLookupTable(field_lut(target, n_classes))
        xs, ys, value = np.asarray(field.xs), np.asarray(field.ys), np.asarray(field.value)
        x0, x1, y0, y1 = float(xs[0]), float(xs[-1]), float(ys[0]), float(ys[-1])
        n = len(xs)
        dx, dy = (x1 - x0) / max(n - 1, 1), (y1 - y0) / max(n - 1, 1)
        self.img.setImage(value, autoLevels=False, levels=(0.0, 1.0))
        self.img.setRect(QRectF(x0 - dx / 2, y0 - dy / 2, x1 - x0 + dx, y1 - y0 + dy))
        self.contour.setData(value)  # in the image's pixel coordinates, drawn through its transform
        self.arrows.setData(*self._arrows(field, dx, dy, every=max(1, n // 16)))
        if points is not None and len(points):
            colours = [pg.mkBrush(*CLASS_COLORS[int(c) % len(CLASS_COLORS)].astype(int), 180) for c in labels]
            self.points.setData(x=points[:, 0], y=points[:, 1], brush=colours)
        else:
            self.points.clear()
        self.sample.setData(x=[float(sample_xy[0])], y=[float(sample_xy[1])])
        pi = self.plot.getPlotItem()
        pi.setTitle(title, size="9pt")
        pi.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.0)

    @staticmethod
    def _arrows(field, dx: float, dy: float, every: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """Line segments (pairs) for an arrow at every ``every``-th grid point.

        The arrows follow the gradient in grid cells (so they cross the contour at right angles
        on the drawn grid whatever the axes' units); the longest spans 1.6 thinned cells."""
        xs, ys, g = np.asarray(field.xs), np.asarray(field.ys), np.asarray(field.gradient)
        gy, gx = np.meshgrid(np.arange(0, len(ys), every), np.arange(0, len(xs), every), indexing="ij")
        px, py = xs[gx].ravel(), ys[gy].ravel()
        cu, cw = g[gy, gx, 0].ravel() * dx, g[gy, gx, 1].ravel() * dy  # change per grid cell
        mag = np.hypot(cu, cw)
        top = float(mag.max()) if mag.size else 0.0
        if top <= 0:
            return np.zeros(0), np.zeros(0)
        keep = mag > 0.02 * top  # flat regions get no arrow rather than a dot
        px, py, cu, cw, mag = px[keep], py[keep], cu[keep], cw[keep], mag[keep]
        s = 1.6 * every / top
        tx, ty = px + s * cu * dx, py + s * cw * dy
        ang = np.arctan2(cw, cu)
        head = 0.4 * every * np.clip(mag / top, 0.3, 1.0)
        xs_, ys_ = [px, tx], [py, ty]
        for turn in (np.pi - 0.45, np.pi + 0.45):  # two strokes back from the tip
            xs_ += [tx, tx + head * np.cos(ang + turn) * dx]
            ys_ += [ty, ty + head * np.sin(ang + turn) * dy]
        return np.stack(xs_, 1).reshape(-1), np.stack(ys_, 1).reshape(-1)

    def clear(self) -> None:
        self.img.clear()
        self.contour.setData(None)
        self.arrows.setData([], [])
        self.points.clear()
        self.sample.clear()


class AttributionView(QWidget):
    """Shows one attribution; ``mode`` is "image", "tabular", "field" (2-D data) or "" (nothing)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(2)
        self.caption = QLabel("")
        self.caption.setWordWrap(True)
        self.caption.setTextFormat(Qt.RichText)
        col.addWidget(self.caption)
        self.stack = QStackedWidget()
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        self.message.setStyleSheet("color: gray; padding: 8px;")
        self.image = ImageAttribution()
        self.bars = FeatureBars()
        field_page = QWidget()
        # the plane above its two bars: side by side in the Explain dock at 1280x800, the plane was a
        # narrow strip and the bars' axis ran its ticks together ("0024") and cut its label
        fr = QVBoxLayout(field_page)
        fr.setContentsMargins(0, 0, 0, 0)
        self.field = GradientFieldPlot()
        self.field.setMinimumHeight(FIELD_MIN_HEIGHT)
        self.field_bars = FeatureBars()
        self.field_bars.setFixedHeight(FIELD_BARS_HEIGHT)
        fr.addWidget(self.field, 1)
        fr.addWidget(self.field_bars)
        self.field_page = field_page
        for w in (self.message, self.image, self.bars, field_page):
            self.stack.addWidget(w)
        col.addWidget(self.stack, 1)
        self.mode = ""
        self.clear("")

    def _show_page(self, page: QWidget) -> None:
        """``page`` in front, and only its minimum size counts: a stack's minimum is its largest
        page's, and the plane's height made the image page scroll too."""
        for i in range(self.stack.count()):
            w = self.stack.widget(i)
            w.setSizePolicy(QSizePolicy.Preferred if w is page else QSizePolicy.Ignored,
                            QSizePolicy.Preferred if w is page else QSizePolicy.Ignored)
        self.stack.setCurrentWidget(page)

    def clear(self, text: str) -> None:
        self.mode = ""
        self.caption.setText("")
        self.message.setText(text)
        self._show_page(self.message)
        self.image.clear()
        self.bars.clear()
        self.field.clear()
        self.field_bars.clear()

    def show_image(self, image: np.ndarray, values: np.ndarray, target_name: str, caption: str,
                   signed: bool | None = None) -> None:
        self.mode = "image"
        self.caption.setText(caption)
        self.image.set_map(image, values, target_name, signed)
        self._show_page(self.image)

    def show_bars(self, names: list[str], values: np.ndarray, feature_values: np.ndarray, target_name: str,
                  caption: str) -> None:
        self.mode = "tabular"
        labels = [f"{n} = {v:.4g}" for n, v in zip(names, feature_values)]
        left = self.bars.set_bars(labels, values, x_label=f"→ raises the score of {target_name}")
        self.caption.setText(caption + (f" The {left} features with the smallest effect are not drawn."
                                        if left else ""))
        self._show_page(self.bars)

    def show_field(self, field, sample_xy, names: list[str], values: np.ndarray, feature_values: np.ndarray,
                   target_name: str, caption: str, points=None, labels=None, target: int = 0,
                   n_classes: int = 2) -> None:
        """The plane ``field`` with the sample at ``sample_xy``, and the bars of its attribution;
        the plane, the points and the bars in the same units (the data's, as the boundary view's)."""
        self.mode = "field"
        self.caption.setText(caption)
        self.field.set_field(field, sample_xy, points, labels, f"p({target_name})", target, n_classes)
        self.field.plot.getPlotItem().setLabel("bottom", names[0] if names else "x₁")
        self.field.plot.getPlotItem().setLabel("left", names[1] if len(names) > 1 else "x₂")
        labels_ = [f"{n} = {v:.3g}" for n, v in zip(names, feature_values)]
        self.field_bars.set_bars(labels_, values, x_label="attribution")
        self._show_page(self.field_page)

