"""Weights of one layer: the matrix as a heatmap (conv: filters as an image grid), and its histogram over time."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel

from gui.views import (DIVERGING, SEQUENTIAL, LiveView, cursor_line, half_step_ceiling, make_image_plot, place_cursor,
                       set_scale, tile_images)


def weight_image(w: np.ndarray, kind: str, image_shape: tuple | None = None) -> np.ndarray:
    """A 2-D image of a layer's weights: the matrix itself, conv filters tiled into a grid, or -
    for a Linear that reads a flattened image - each unit's weights as an image template."""
    if image_shape is not None and w.ndim == 2:
        c, h, wd = image_shape
        return tile_images(w.reshape(w.shape[0], c, h, wd)[:, 0])  # grey images have one channel
    if kind == "conv" and w.ndim == 4:
        out_c, in_c, kh, kw = w.shape
        if in_c <= 3:  # first layers: one tile per filter, first input channel (grey images have one)
            return tile_images(w[:, 0])
        # deeper layers: rows = output filters, columns = input channels
        return tile_images(w.reshape(out_c * in_c, kh, kw), columns=in_c)
    if kind == "conv" and w.ndim == 3:  # Conv1d: (out, in, k)
        return w.reshape(w.shape[0], -1)
    if w.ndim == 2:
        return w
    flat = w.reshape(-1)
    side = int(np.ceil(np.sqrt(flat.size)))
    pad = np.full(side * side, np.nan, np.float32)
    pad[:flat.size] = flat
    return pad.reshape(side, side)


def shown_note(layer, w: np.ndarray) -> str:
    """What the picture leaves out, if anything: pooled matrices, filters beyond the first."""
    full = tuple(layer.weight_shape)
    if layer.image_shape is not None:
        side = "×".join(map(str, layer.image_shape[1:]))
        units = f"first {w.shape[0]} of {full[0]} units" if w.shape[0] < full[0] else f"{full[0]} units"
        return f" ({units}, each as a {side} image)"
    if layer.kind == "linear" and len(full) == 2 and tuple(w.shape) != full:
        return f" (pooled to {w.shape[0]}×{w.shape[1]})"
    if layer.kind == "conv" and len(full) >= 3:
        parts = [f"first {w.shape[0]} of {full[0]} filters"] if w.shape[0] < full[0] else []
        if w.shape[1] < full[1]:
            parts.append(f"first {w.shape[1]} of {full[1]} input channels")
        return f" ({', '.join(parts)})" if parts else ""
    return ""


class WeightsView(LiveView):
    title = "Weights"

    def __init__(self, parent=None):
        super().__init__(parent)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Layer"))
        self.layer_box = QComboBox()
        self.layer_box.setMinimumContentsLength(6)
        self.layer_box.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        bar.addWidget(self.layer_box, 1)
        self.stats = QLabel("")
        self.stats.setWordWrap(True)  # "64×784 (pooled …)" must not widen the window
        self._layout.addLayout(bar)
        self._layout.addWidget(self.stats)  # its own line: it wraps only when the dock is narrow

        self.matrix_plot, self.matrix_img = make_image_plot(axes=False)
        self.matrix_img.setColorMap(DIVERGING)
        # colour scales: which weight a colour stands for (blue negative, red positive), and how many
        # weights a histogram cell counts
        self.matrix_bar = self.colour_bar((-1.0, 1.0), DIVERGING, "weight")
        self.matrix_bar.setImageItem(self.matrix_img, insert_in=self.matrix_plot.getPlotItem())
        self._layout.addWidget(self.matrix_plot, 3)

        self.hist_plot, self.hist_img = make_image_plot("histogram over time")
        self.hist_img.setColorMap(SEQUENTIAL)
        self.hist_bar = self.colour_bar((0.0, 1.0), SEQUENTIAL, "log(1 + count)")
        self.hist_bar.setImageItem(self.hist_img, insert_in=self.hist_plot.getPlotItem())
        hp = self.hist_plot.getPlotItem()
        hp.invertY(False)
        hp.setLabel("bottom", "epoch")
        hp.setLabel("left", "weight")
        self.hist_cursor = cursor_line()
        hp.addItem(self.hist_cursor)
        self._layout.addWidget(self.hist_plot, 2)
        self.info = None
        self._levels: dict[str, float] = {}
        self._hist_y = None
        self.hist_plot.getPlotItem().enableAutoRange(y=False)
        self.layer_box.currentIndexChanged.connect(self._layer_changed)
        self._last_frame = None

    def time_plots(self) -> list:
        return [self.hist_plot]

    def reset(self, info) -> None:
        self.info = info
        self._last_frame = None  # a layer choice redraws the last frame: never another run's
        self.stats.setText("")
        current = self.layer_box.currentText()
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        names = [lay.name for lay in info.layers] if info else []
        self.layer_box.addItems(names)
        if current in names:
            self.layer_box.setCurrentText(current)
        self.layer_box.blockSignals(False)
        self._levels.clear()
        self._hist_y = None
        self.matrix_img.clear()
        self.hist_img.clear()
        applies = bool(names) or info is None
        self.show_message(None if applies else "This model has no layers with weights.", plots=applies)

    def _layer_changed(self, _i: int) -> None:
        if self._last_frame is not None:
            self.matrix_plot.getPlotItem().enableAutoRange()
            self.render(self._last_frame)

    def render(self, frame) -> None:
        self._last_frame = frame
        place_cursor(self.hist_cursor, frame.cursor)
        snap, info = frame.snapshot, self.info
        if info is None or snap is None:
            return
        name = self.layer_box.currentText()
        layer = info.layer(name)
        w = snap.weights.get(name)
        if layer is None or w is None:
            return
        img = weight_image(w, layer.kind, layer.image_shape)
        # images keep square pixels; a matrix fills the view (a 64 x 2 layer would be a sliver)
        self.matrix_plot.getPlotItem().setAspectLocked(layer.kind == "conv" or layer.image_shape is not None)
        r = self._levels.get(name)
        if r is None:  # fixed for the run so colours mean the same value over time
            r = self._levels[name] = max(float(np.nanmax(np.abs(img))) if np.isfinite(img).any() else 1.0, 1e-6) * 1.2
        set_scale(self.matrix_bar, (-r, r))
        self.matrix_img.setImage(img, autoLevels=False, levels=(-r, r))
        shape = "×".join(map(str, layer.weight_shape))
        self.stats.setText(f"{shape}{shown_note(layer, w)}   mean |w| {snap.weight_mag.get(name, 0.0):.3g}")
        self.stats.setToolTip("Matrices larger than the view are pooled: each cell shows the largest-magnitude "
                              "weight of its block. Conv layers with many filters show the first ones.")

        buf = frame.history.weight_hist.get(name)
        if buf is not None and len(buf) + (buf.last is not None) > 0:
            xs, rows = buf.arrays()
            dens = np.log1p(rows).T  # bins x time
            top = half_step_ceiling(float(dens.max()))
            set_scale(self.hist_bar, (0.0, top))
            self.hist_img.setImage(dens, autoLevels=False, levels=(0.0, top))
            lo, hi = layer.hist_range
            if self._hist_y != (lo, hi):
                self._hist_y = (lo, hi)
                self.hist_plot.getPlotItem().setYRange(lo, hi, padding=0)
            x0, x1 = float(xs[0]), float(xs[-1])
            width = max(x1 - x0, 1e-6)
            self.hist_img.setRect(pg.QtCore.QRectF(x0, lo, width, hi - lo))
        self.frames_drawn += 1
