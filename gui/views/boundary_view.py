"""The decision boundary of a classifier on 2-D data, with the training and validation points."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QGraphicsItem

from gui.views import CLASS_COLORS, LiveView, add_legend, class_color, make_plot

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


# Where the legend may go, in the order it is preferred when the corners hold as many points:
# (x, y) as pyqtgraph anchors count, 0 the left or top edge, 1 the right or bottom one.
CORNERS = ((1, 0), (0, 0), (1, 1), (0, 1))
LEGEND_OFFSET = 8  # px from the corner


def emptiest_corner(xy: np.ndarray, extent: tuple[float, float, float, float],
                    size: tuple[float, float]) -> tuple[int, int]:
    """The corner whose legend-sized patch (``size``: fractions of the plot's width and height)
    covers the fewest of the points ``xy`` (N, 2) in ``extent`` (x0, x1, y0, y1; y grows up).
    A legend fixed top-right covered a moon's tip; this is matplotlib's ``loc="best"`` for corners."""
    x0, x1, y0, y1 = extent
    fx = (xy[:, 0] - x0) / max(x1 - x0, 1e-12)
    from_top = (y1 - xy[:, 1]) / max(y1 - y0, 1e-12)
    w, h = size

    def covered(corner) -> int:
        cx, cy = corner
        in_x = fx >= 1 - w if cx else fx <= w
        in_y = from_top >= 1 - h if cy else from_top <= h
        return int(np.count_nonzero(in_x & in_y))

    return min(CORNERS, key=covered)  # min keeps the first of equals: top-right unless another is emptier


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
        add_legend(self.plot)
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
            if pi.legend is not None:  # the last run's class names go with its points
                pi.legend.clear()
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
        legend = pi.legend
        if legend is not None:
            legend.clear()
            for i, name in enumerate(names[:10]):
                legend.addItem(pg.ScatterPlotItem(brush=pg.mkBrush(*class_color(i)), pen=None, size=8), str(name))
            legend.addItem(pg.ScatterPlotItem(brush=pg.mkBrush(0, 0, 0, 0), pen=pg.mkPen(90, 90, 90), size=8),
                           "validation")
            self._place_legend(np.concatenate([xt, xv]), (x0, x1, y0, y1))
        pi.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)

    def _place_legend(self, xy: np.ndarray, extent) -> None:
        legend = self.plot.getPlotItem().legend
        box, plane = legend.boundingRect(), self.plot.getPlotItem().getViewBox().boundingRect()
        if plane.width() > 50 and plane.height() > 50:
            size = (min(1.0, (box.width() + LEGEND_OFFSET) / plane.width()),
                    min(1.0, (box.height() + LEGEND_OFFSET) / plane.height()))
        else:  # not laid out yet (a hidden tab): the legend's usual share of the view
            size = (0.35, 0.35)
        cx, cy = emptiest_corner(xy, extent, size)
        legend.anchor(itemPos=(cx, cy), parentPos=(cx, cy),
                      offset=(-LEGEND_OFFSET if cx else LEGEND_OFFSET, -LEGEND_OFFSET if cy else LEGEND_OFFSET))

    def render(self, frame) -> None:
        snap = frame.snapshot
        if snap is None or snap.boundary is None:
            return
        x0, x1, y0, y1 = data_extent(self.info)
        rgb = boundary_rgb(snap.boundary.astype(np.float32))
        smooth = upsample_bilinear(rgb.astype(np.float32), UPSAMPLE).clip(0, 255).astype(np.uint8)
        self.img.setImage(smooth, autoLevels=False, levels=(0, 255), rect=QRectF(x0, y0, x1 - x0, y1 - y0))
        self.frames_drawn += 1
