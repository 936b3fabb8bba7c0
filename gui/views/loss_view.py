"""Loss and the epoch metrics, with log scale and smoothing.

The train and validation curves are the engine's epoch records (one point per epoch, the
epoch's mean training loss), so two identical seeded runs draw identical curves and a re-opened
project draws what the run drew.  While a run goes on, the train curve ends at the running loss
of the epoch in progress, and a faint line shows the per-snapshot losses ("live"), smoothed.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSlider

from engine.smoothing import smooth_ema
from gui import theme
from gui.views import (LiveCurve, LiveView, StickyRange, add_curve, add_legend, cursor_line, make_plot, place_cursor,
                       series_pen)

# Epoch metrics drawn in the lower plot, in this order when present; any other numeric key too.
MAX_SYMBOLS = 60
# Markers drawn with the same pen and brush objects every frame: pyqtgraph keys its cache of
# rendered symbols by object identity, so a pen or brush made anew (what None or a colour tuple
# becomes) re-renders every marker at every frame.
_NO_PEN = pg.mkPen(None)
_SKIP = {"epoch", "lr", "time_s", "elapsed_s", "samples_per_s", "step", "steps", "samples"}


LEFT_AXIS_WIDTH = 52  # px: room for the label and ticks such as 0.005 or 1e-05


def per_point_weight(per_step: float, x: np.ndarray, steps_per_epoch: int) -> float:
    """The smoothing weight for a live loss curve whose points (at epochs ``x``) each average the
    steps since the one before.

    The slider's weight is per training step.  Applied per point, a fast run (moons: 25 steps
    between points) lagged epochs behind its per-epoch curve, though each point already averages
    its steps; a slow run (a step per point) was smoothed as much as asked.  The median gap
    in steps stands for the curve's spacing."""
    if per_step <= 0 or len(x) < 2:
        return per_step
    steps = float(np.median(np.diff(x))) * steps_per_epoch
    return per_step ** max(1.0, steps)


def raw_pen(t) -> pg.QtGui.QPen:
    """The faint per-snapshot line: fainter on white than on the dark theme, where 70/255 was lost."""
    return pg.mkPen((31, 119, 180, 150 if t.name == "dark" else 70), width=1)


def values_at(cursor: float | None, train: tuple, val: tuple) -> str:
    """The header's figures: the last ones, or, while the timeline shows an earlier epoch, that
    epoch's (scrubbed back, the header had kept the latest run's)."""
    parts = []
    for name, (x, y) in (("train", train), ("val", val)):
        if cursor is not None:
            keep = x <= cursor + 1e-9
            x, y = x[keep], y[keep]
        if len(y):
            parts.append(f"{name} {y[-1]:.4g}")
    prefix = f"epoch {cursor:g}:  " if cursor is not None and parts else ""
    return prefix + "   ".join(parts)


class LossView(LiveView):
    title = "Loss"

    def __init__(self, parent=None):
        super().__init__(parent)
        bar = QHBoxLayout()
        self.log_box = QCheckBox("Log")
        self.log_box.setToolTip("Logarithmic loss axis")
        self.log_box.setChecked(True)
        self.log_box.toggled.connect(self._set_log)
        bar.addWidget(self.log_box)
        bar.addSpacing(12)
        bar.addWidget(QLabel("Smooth"))
        self.smooth_slider = QSlider(Qt.Horizontal)
        self.smooth_slider.setRange(0, 99)
        self.smooth_slider.setValue(60)
        self.smooth_slider.setFixedWidth(80)
        self.smooth_slider.setToolTip("Exponential moving average of the training loss over its steps (0 = raw)")
        bar.addWidget(self.smooth_slider)
        self.value_label = QLabel("")
        self.value_label.setWordWrap(True)  # a long line must not widen the window (it wraps only when narrow)
        self.value_label.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        bar.addWidget(self.value_label, 1)
        self._layout.addLayout(bar)

        self.loss_plot = make_plot(left="loss", log_axis=True)
        add_legend(self.loss_plot)
        self.raw_curve = add_curve(self.loss_plot, pen=raw_pen(theme.current()), name="train (live)", antialias=False)
        self.train_curve = add_curve(self.loss_plot, pen=series_pen(0), name="train", antialias=False)
        self.val_curve = add_curve(self.loss_plot, pen=series_pen(1), name="validation", symbol="o", symbolSize=5,
                                   symbolBrush=pg.mkBrush("#ff7f0e"), symbolPen=_NO_PEN, antialias=False)
        self.loss_cursor = cursor_line()
        self.loss_plot.addItem(self.loss_cursor)
        self._layout.addWidget(self.loss_plot, 3)

        self.metric_plot = make_plot(left="metric")
        add_legend(self.metric_plot, offset=(-8, -8))
        self.metric_plot.setXLink(self.loss_plot)
        self.metric_cursor = cursor_line()
        self.metric_plot.addItem(self.metric_cursor)
        self._layout.addWidget(self.metric_plot, 2)
        self._metric_curves: dict[str, LiveCurve] = {}
        self._last_frame = None
        self._symbols = True
        for plot in (self.loss_plot, self.metric_plot):
            left = plot.getPlotItem().getAxis("left")
            left.enableAutoSIPrefix(False)
            # One fixed width for both: the stacked epoch axes line up, and the x link (which
            # aligns by pixel) gives both plots the same epochs whatever their tick labels are.
            left.setWidth(LEFT_AXIS_WIDTH)
        self.loss_range = StickyRange(self.loss_plot, log=True)
        self.metric_range = StickyRange(self.metric_plot)
        self._set_log(True)

    def _on_theme(self, t) -> None:
        super()._on_theme(t)
        self.raw_curve.setPen(raw_pen(t))

    def _set_log(self, on: bool) -> None:
        self.loss_plot.getPlotItem().setLogMode(y=on)
        self.loss_range.set_log(on)
        if self._last_frame is not None:
            self.render(self._last_frame)

    def time_plots(self) -> list:
        return [self.loss_plot, self.metric_plot]

    def reset(self, info) -> None:
        self._last_frame = None  # the Log box redraws the last frame: never another run's
        for c in (self.raw_curve, self.train_curve, self.val_curve):
            c.setData([], [])
        self._symbols = True
        self.val_curve.setSymbol("o")
        self.loss_range.reset()
        self.metric_range.reset()
        # the metric curves go with their legend entries: the next run may have other metrics
        # (mse after accuracy), made when its first epoch ends
        for c in self._metric_curves.values():
            self.metric_plot.removeItem(c)
        self._metric_curves.clear()
        self.value_label.setText("")

    def _metric_curve(self, key: str) -> LiveCurve:
        c = self._metric_curves.get(key)
        if c is None:
            i = len(self._metric_curves)
            style = Qt.DashLine if key.startswith("train") else None
            pen = series_pen(i + 2, style=style)
            c = add_curve(self.metric_plot, pen=pen, name=key.replace("_", " "),
                          symbol="o" if self._symbols else None, symbolSize=4, symbolPen=_NO_PEN,
                          symbolBrush=pg.mkBrush(pen.color()), antialias=False)
            self._metric_curves[key] = c
        return c

    def render(self, frame) -> None:
        self._last_frame = frame
        place_cursor(self.loss_cursor, frame.cursor)
        place_cursor(self.metric_cursor, frame.cursor)
        h = frame.history
        log = self.log_box.isChecked()

        def drawable(x, y):
            keep = np.isfinite(y) & (y > 0 if log else True)  # log axes cannot show 0 or negatives
            return x[keep], y[keep]

        rx, ry = drawable(*h.loss.arrays())
        ry = smooth_ema(ry, per_point_weight(self.smooth_slider.value() / 100.0, rx, h.steps_per_epoch))
        self.raw_curve.setData(rx, ry)
        tx, ty = drawable(*h.epoch_series("train_loss"))
        live = frame.snapshot
        if frame.cursor is None and h.running and live is not None and live.train_loss is not None:
            now = live.epoch + h.x_offset  # the epoch in progress: its running loss ends the curve
            if now > (tx[-1] if len(tx) else 0.0) + 1e-9:
                tx, ty = drawable(np.append(tx, now), np.append(ty, live.train_loss))
        self.train_curve.setData(tx, ty)
        vx, vy = drawable(*h.epoch_series("val_loss"))
        self.val_curve.setData(vx, vy)
        few = len(vx) <= MAX_SYMBOLS  # markers are costly to paint and unreadable when dense
        if few != self._symbols:
            self._symbols = few
            self.val_curve.setSymbol("o" if few else None)
            for c in self._metric_curves.values():
                c.setSymbol("o" if few else None)
        metric_values = []
        for key in h.metric_keys():
            if key in _SKIP or "loss" in key:
                continue
            mx, my = h.epoch_series(key)
            self._metric_curve(key).setData(mx, my)
            metric_values.append(my)
        self.loss_range.update(ry, ty, vy)
        self.metric_range.update(*metric_values)
        self.value_label.setText(values_at(frame.cursor, (tx, ty), (vx, vy)))
        self.frames_drawn += 1
