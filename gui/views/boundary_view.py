"""The decision boundary of a classifier on 2-D data, with the training and validation points."""
from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtWidgets import QGraphicsItem, QLabel

from gui.views import CLASS_COLORS, LiveView, class_color, make_plot

UPSAMPLE = 5  # the grid is computed coarse (cheap for training) and smoothed here, in the GUI


def _interp_matrix(n: int, factor: int) -> np.ndarray:
    """(n*f-f+1, n) linear-interpolation weights: upsampling a grid is two small matrix products."""
    m = (n - 1) * factor + 1
    pos = np.linspace(0, n - 1, m)
    i0 = np.floor(pos).astype(int).clip(0, max(n - 2, 0))
    frac = pos - i0
    out = np.zeros((m, n), np.float32)
    out[np.arange(m), i0] = 1 - frac
    if n > 1:
        out[np.arange(m), i0 + 1] += frac
    return out


_MATS: dict[tuple[int, int], np.ndarray] = {}


def upsample_bilinear(a: np.ndarray, factor: int) -> np.ndarray:
    """(H, W, C) -> (H*f-f+1, W*f-f+1, C) by separable linear interpolation."""
    h, w = a.shape[:2]
    for n in (h, w):
        if (n, factor) not in _MATS:
            _MATS[(n, factor)] = _interp_matrix(n, factor)
    ry, rx = _MATS[(h, factor)], _MATS[(w, factor)]
    c = a.shape[2]
    rows = (ry @ a.astype(np.float32).reshape(h, w * c)).reshape(-1, w, c)  # (H', W, C)
    return (rows.transpose(0, 2, 1) @ rx.T).transpose(0, 2, 1)  # (H', W', C)


def boundary_rgb(probs: np.ndarray) -> np.ndarray:
    """(H, W, C) class probabilities -> (H, W, 3) uint8: class colours mixed by probability,
    washed out towards white where the model is unsure."""
    c = probs.shape[-1]
    colors = CLASS_COLORS[np.arange(c) % len(CLASS_COLORS)]
    rgb = probs @ colors
    conf = probs.max(-1, keepdims=True)
    certainty = (conf - 1.0 / c) / (1.0 - 1.0 / c) if c > 1 else np.ones_like(conf)
    mix = 0.25 + 0.45 * np.clip(certainty, 0, 1)  # how much colour vs white
    out = rgb * mix + 255.0 * (1 - mix)
    return np.nan_to_num(out, nan=200.0).clip(0, 255).astype(np.uint8)


def key_html(names, max_classes: int = 10) -> str:
    """The key above the plane: each class's dot in its colour and its name, then the validation
    points' ring.  Outside the plane, it covers no data (a legend inside sat on a moon's tip: at the
    docked size it took half the plane's width, and every corner of the moons holds points)."""
    parts = [f"<span style='color:rgb{class_color(i)}'>●</span>&nbsp;{html.escape(str(n))}"
             for i, n in enumerate(names[:max_classes])]
    if len(names) > max_classes:
        parts.append(f"(+{len(names) - max_classes} more)")
    parts.append("○&nbsp;validation")
    return " &nbsp; ".join(parts)


def data_extent(info) -> tuple[float, float, float, float]:
    """The boundary grid's extent (in the model's standardised inputs) in the data's units."""
    x0, x1, y0, y1 = info.grid_extent
    (a, c), (b, d) = info.in_data_units(np.array([[x0, y0], [x1, y1]]))
    return float(a), float(b), float(c), float(d)


class BoundaryView(LiveView):
    title = "Decision boundary"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = make_plot(bottom="x₁", left="x₂")
        pi = self.plot.getPlotItem()
        pi.setAspectLocked(False)
        self.img = pg.ImageItem(axisOrder="row-major")
        pi.addItem(self.img)
        self.train_pts = pg.ScatterPlotItem(size=5, pen=pg.mkPen(255, 255, 255, 160, width=0.6))
        self.val_pts = pg.ScatterPlotItem(size=7, brush=pg.mkBrush(0, 0, 0, 0), symbol="o")
        pi.addItem(self.train_pts)
        pi.addItem(self.val_pts)
        for pts in (self.train_pts, self.val_pts):  # static between runs: repaint as a cached pixmap
            pts.setCacheMode(QGraphicsItem.DeviceCoordinateCache)
        self.key = QLabel()
        self.key.setTextFormat(Qt.RichText)
        self.key.setWordWrap(True)  # many classes wrap, they do not widen the dock
        self.key.hide()
        self._layout.addWidget(self.key)
        self._layout.addWidget(self.plot, 1)
        self.info = None
        self._shown = None  # (points, class names) drawn now: a new run on the same data keeps them

    def reset(self, info) -> None:
        self.info = info
        pi = self.plot.getPlotItem()
        self.img.clear()
        if info is None or info.grid_extent is None:
            self.train_pts.setData([])
            self.val_pts.setData([])
            self.key.clear()  # the last run's class names go with its points
            self.key.hide()
            self._shown = None
            self.show_message(None if info is None else
                              "The decision boundary is drawn for classification data with two input features.",
                              plots=info is None)
            return
        self.show_message(None)
        x0, x1, y0, y1 = data_extent(info)
        (xt, yt), (xv, yv) = info.train_xy, info.val_xy
        xt, xv = info.in_data_units(xt), info.in_data_units(xv)
        names = tuple(info.class_names or (str(i) for i in range(info.n_outputs)))
        points = (xt, yt, xv, yv)
        if self._shown is not None and self._shown[1] == names and all(
                np.array_equal(a, b) for a, b in zip(points, self._shown[0])):
            # the same data as the last run: styling a thousand points again took 0.3 s of the
            # GUI thread at every start of a run
            pi.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
            return
        self._shown = (points, names)
        # One brush (pen) object per class, shared by its points: pyqtgraph renders a symbol per
        # distinct object, and a new one per point took ~0.3 s of the GUI thread for moons.
        n_classes = int(max(yt.max(initial=0), yv.max(initial=0))) + 1
        brushes = [pg.mkBrush(*class_color(c)) for c in range(n_classes)]
        pens = [pg.mkPen(*class_color(c), width=1.6) for c in range(n_classes)]
        self.train_pts.setData(xt[:, 0], xt[:, 1], brush=[brushes[int(c)] for c in yt])
        self.val_pts.setData(xv[:, 0], xv[:, 1], pen=[pens[int(c)] for c in yv])
        self.key.setText(key_html(names))
        self.key.show()
        pi.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)

    def render(self, frame) -> None:
        snap = frame.snapshot
        if snap is None or snap.boundary is None:
            return
        x0, x1, y0, y1 = data_extent(self.info)
        rgb = boundary_rgb(snap.boundary.astype(np.float32))
        smooth = upsample_bilinear(rgb.astype(np.float32), UPSAMPLE).clip(0, 255).astype(np.uint8)
        self.img.setImage(smooth, autoLevels=False, levels=(0, 255), rect=QRectF(x0, y0, x1 - x0, y1 - y0))
        self.frames_drawn += 1
