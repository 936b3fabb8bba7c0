"""Live training views: one pyqtgraph widget per file, all drawn the same way.

Every view is a ``LiveView``.  It builds its plot items once (``reset`` when a new run or
model changes what there is to show) and ``render(frame)`` updates them in place with
``setData`` / ``setImage(autoLevels=False, levels=...)``.  A ``Frame`` is what the training
controller's GUI timer hands out each tick: the newest snapshot (or, while the timeline is
scrubbed back, the snapshot of that epoch), the run's history, and a cursor.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from engine.snapshots import ProbeInfo, Snapshot
from gui import theme

theme.configure_plots()  # pyqtgraph loads with the views, not with the editor

# Class colours (Tableau 10): the boundary, the scatter points and the legend agree.
CLASS_COLORS = np.array([
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
], np.float32)

SERIES_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                 "#7f7f7f", "#bcbd22", "#17becf"]


def series_pen(i: int, width: float = 1.6, style=None) -> pg.QtGui.QPen:
    pen = pg.mkPen(SERIES_COLORS[i % len(SERIES_COLORS)], width=width)
    if style is not None:
        pen.setStyle(style)
    return pen


def class_color(i: int) -> tuple[int, int, int]:
    c = CLASS_COLORS[i % len(CLASS_COLORS)]
    return int(c[0]), int(c[1]), int(c[2])


DIVERGING = pg.colormap.get("CET-D1")  # blue - white - red: weights (sign matters)
SEQUENTIAL = pg.colormap.get("viridis")  # activations, histogram density


IDLE_MESSAGE = "This view comes alive when training starts."


@dataclass
class Frame:
    """What the views draw on one timer tick."""

    snapshot: Snapshot | None
    history: object  # gui.training.snapshots.RunHistory
    info: ProbeInfo | None
    cursor: float | None = None  # the epoch the timeline shows (None: live)
    selected_node: str | None = None  # fx name of the node chosen on the canvas


class LiveView(QWidget):
    """Base class: a title for the dock, a placeholder message, ``reset`` and ``render``."""

    title = "View"

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(2, 2, 2, 2)
        self._layout.setSpacing(2)
        self._message = QLabel("")
        self._message.setWordWrap(True)
        self._message.setStyleSheet("color: gray; padding: 6px;")
        self._message.hide()
        self._layout.addWidget(self._message)
        self.frames_drawn = 0
        self._colour_bars: list[tuple[pg.ColorBarItem, tuple[float, float], Any]] = []
        self.show_message(IDLE_MESSAGE)
        theme.add_listener(self._on_theme)  # held weakly: a closed view does not linger

    def _on_theme(self, t) -> None:
        for plot in self.findChildren(pg.PlotWidget):
            restyle_plot(plot, t)

    def show_message(self, text: str | None, *, plots: bool = True) -> None:
        """A line of text above the plot, e.g. why the view has nothing to show yet.

        ``plots=False`` hides the plots under it: the view does not apply to this model or data,
        and empty axes with a legend would look like a view that failed to draw."""
        self._message.setText(text or "")
        self._message.setVisible(bool(text))
        for plot in self.findChildren(pg.PlotWidget):
            plot.setVisible(plots)

    def set_epochs(self, epochs: int) -> None:
        """The run's length: time-series views fix their x axis to it (no axis redraw per frame)."""
        for plot in self.time_plots():
            plot.getPlotItem().setXRange(0, max(1, epochs), padding=0.01)
            plot.getPlotItem().enableAutoRange(x=False)

    def time_plots(self) -> list:
        """PlotWidgets whose x axis is the epoch."""
        return []

    def reset(self, info: ProbeInfo | None) -> None:  # pragma: no cover - interface
        """A new run: rebuild what depends on the model (layers, nodes, data)."""

    def colour_bar(self, values: tuple[float, float], cmap, label: str) -> pg.ColorBarItem:
        """A colour scale for an image of this view, which ``clear`` puts back to ``values``."""
        bar = pg.ColorBarItem(values=values, colorMap=cmap, label=label, width=12, interactive=False,
                              colorMapMenu=False)
        self._colour_bars.append((bar, values, cmap))
        return bar

    def clear(self) -> None:
        """Nothing to show: no run, or one that no longer belongs to the open project.

        Axes and colour scales go back to a fresh view's too: emptied plots had kept the last
        run's epoch count, loss range and colour scales."""
        self.reset(None)
        boxes = [plot.getPlotItem().getViewBox() for plot in self.findChildren(pg.PlotWidget)]
        for box in boxes:  # linked axes would follow one another by pixel, not to (0, 1)
            box.blockLink(True)
        for box in boxes:  # autorange stays as it was (images use it)
            box.setRange(xRange=(0, 1), yRange=(0, 1), padding=0, disableAutoRange=False)
        for box in boxes:
            box.blockLink(False)
        for bar, values, cmap in self._colour_bars:
            set_scale(bar, values, cmap)
        self.show_message(IDLE_MESSAGE)

    def render(self, frame: Frame) -> None:  # pragma: no cover - interface
        """Update the plot items in place from ``frame``."""


class LiveCurve(pg.PlotDataItem):
    """A curve that ignores ``setData(x, y)`` when it already shows exactly these values.

    Views redraw every frame, but epoch series (validation loss, metrics) change only when an
    epoch ends: an unchanged curve then costs two array comparisons instead of a rebuild and a
    repaint.  Any other call (style keywords, clearing with no data) always goes through."""

    def __init__(self, *args, **kwargs):
        self._shown: tuple[np.ndarray, np.ndarray] | None = None  # before PlotDataItem calls setData
        super().__init__(*args, **kwargs)
        # The legend draws a curve's marker from its scatter item, which pyqtgraph styles only when
        # the first points arrive: until then (an empty or a failed run) the marker came out in
        # pyqtgraph's default navy and grey.
        self.scatter.setPen(self.opts["symbolPen"], update=False)
        self.scatter.setBrush(self.opts["symbolBrush"], update=False)
        self.scatter.setSize(self.opts["symbolSize"], update=False)

    def setData(self, *args, **kwargs) -> None:
        if len(args) == 2 and not kwargs:
            x, y = np.asarray(args[0]), np.asarray(args[1])
            shown = self._shown
            if shown is not None and shown[0].shape == x.shape and shown[1].shape == y.shape \
                    and np.array_equal(shown[0], x) and np.array_equal(shown[1], y):
                return
            self._shown = (x.copy(), y.copy())
        else:
            self._shown = None
        super().setData(*args, **kwargs)


def add_curve(plot: pg.PlotWidget, **opts) -> LiveCurve:
    """A ``LiveCurve`` in ``plot`` (``opts`` as for ``PlotWidget.plot``; a name adds a legend entry)."""
    curve = LiveCurve(**opts)
    plot.getPlotItem().addItem(curve)
    return curve


class PerSeriesView(LiveView):
    """One curve per named series (a layer, a ReLU node) over epochs, with a legend and the timeline cursor."""

    def __init__(self, plot: pg.PlotWidget, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot = plot
        self.legend = add_legend(plot)
        self.cursor = cursor_line()
        plot.addItem(self.cursor)
        self._curves: dict[str, LiveCurve] = {}

    def time_plots(self) -> list:
        return [self.plot]

    def _reset_curves(self, names) -> None:
        """Drop the last run's curves and make one per name, in a stable colour order."""
        for c in self._curves.values():
            self.plot.removeItem(c)
        self.legend.clear()
        self._curves = {name: add_curve(self.plot, pen=series_pen(i), name=name, antialias=False)
                        for i, name in enumerate(names)}


class SparseLogAxis(pg.AxisItem):
    """A y axis whose log mode labels only 1, 2 and 5 times a power of ten: pyqtgraph labels every
    minor tick (0.06, 0.07, 0.08 ...) when the range spans less than a decade, and they collide.

    A range too narrow for two such labels (a loss that stays between 0.3 and 0.45) gets evenly
    spaced values instead, so the axis never shows ticks without numbers."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._linear_places: int | None = None  # decimals of the even ticks, when the range needs them

    def logTickValues(self, minVal, maxVal, size, stdTicks):
        ticks = super().logTickValues(minVal, maxVal, size, stdTicks)
        labelled = [v for _spacing, values in ticks for v in values if _is_one_two_five(v)]
        self._linear_places = None
        if len(labelled) >= 2 or not (math.isfinite(minVal) and math.isfinite(maxVal)) or maxVal <= minVal:
            return ticks
        lo, hi = 10.0 ** minVal, 10.0 ** maxVal
        step = _nice_step((hi - lo) / 4)
        values = np.arange(math.ceil(lo / step) * step, hi * (1 + 1e-9), step)  # within [lo, hi], all > 0
        self._linear_places = max(0, -math.floor(math.log10(step)))
        return [(None, list(np.log10(values)))]

    def tickStrings(self, values, scale, spacing):
        if self.logMode and self._linear_places is not None:
            return [f"{10 ** v:.{self._linear_places}f}" for v in values]
        strings = super().tickStrings(values, scale, spacing)
        if not self.logMode:
            return strings
        return [s if _is_one_two_five(v) else "" for v, s in zip(values, strings)]


def _is_one_two_five(log_value: float) -> bool:
    mant = 10 ** (log_value - np.floor(log_value + 1e-9))
    return min(abs(mant - m) for m in (1, 2, 5, 10)) < 0.05


def _nice_step(x: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten that is at least ``x``."""
    base = 10.0 ** math.floor(math.log10(x))
    return next(base * m for m in (1, 2, 5, 10) if base * m >= x * (1 - 1e-9))


def restyle_plot(w: pg.PlotWidget, t) -> None:
    """Give an existing plot theme ``t``'s frame colours: background, axes, title, legend text.

    pyqtgraph reads its configured colours only when an item is made, so after a theme switch
    every plot already on screen is restyled here (the data colours stay as they are)."""
    w.setBackground(t.base)
    pi = w.getPlotItem()
    for side in ("left", "bottom", "right", "top"):
        axis = pi.getAxis(side)
        axis.setPen(t.subtext)
        axis.setTextPen(t.subtext)
    if pi.titleLabel.text:
        pi.titleLabel.setText(pi.titleLabel.text, color=t.subtext)
    if pi.legend is not None:
        pi.legend.setLabelTextColor(t.text)  # the subtext grey was faint on the dark theme
        pi.legend.setBrush(legend_brush(t))


#: opacity (0-255) of a legend's background: curves that pass under it stay visible, its text readable
LEGEND_ALPHA = 190


def legend_brush(t) -> pg.QtGui.QBrush:
    colour = QColor(t.base)
    colour.setAlpha(LEGEND_ALPHA)
    return pg.mkBrush(colour)


def add_legend(plot: pg.PlotWidget, offset=(-8, 8)) -> pg.LegendItem:
    """A legend in a plot's corner, on a half-opaque background of the plot's own colour: its
    text sat directly over the curves and points that ran under it (the loss curves, the moons)."""
    t = theme.current()
    return plot.getPlotItem().addLegend(offset=offset, labelTextSize="8pt", brush=legend_brush(t),
                                        labelTextColor=t.text)


#: pixels kept free at a plot's top (and an axis-less image plot's bottom) for half a tick label
LABEL_ROOM = 7


class PanelPlot(pg.PlotWidget):
    """A plot for a scrolling panel (Evaluation, Explain): it prefers a modest size, not its last.

    A QGraphicsView prefers the size of its scene, and pyqtgraph keeps the scene at the view's
    own size, so a plot preferred whatever height it had last.  In a scroll area that sizes its
    panel to the preferred height, the panel kept its first tall layout: at 1280x800 the
    Evaluation panel stood 120 px taller than its dock, the confusion matrix's class axis below
    the fold."""

    PREFERRED = QSize(240, 180)

    def sizeHint(self) -> QSize:
        return self.PREFERRED.expandedTo(self.minimumSize())


def make_plot(title: str | None = None, left: str | None = None, bottom: str | None = "epoch",
              log_axis: bool = False, widget: type[pg.PlotWidget] = pg.PlotWidget) -> pg.PlotWidget:
    """A plot in LayerLab's style; ``widget=PanelPlot`` for one in a scrolling panel."""
    w = widget(axisItems={"left": SparseLogAxis("left")} if log_axis else None)
    w.setMenuEnabled(False)
    pi = w.getPlotItem()
    pi.hideButtons()
    # No grid: grid lines belong to the axis items, so with a grid every curve update repaints
    # the axes' text too - the most expensive part of a pyqtgraph frame.
    if title:
        pi.setTitle(title, size="9pt")
    if left:
        pi.setLabel("left", left)
    if bottom:
        pi.setLabel("bottom", bottom)
    for side in ("left", "bottom"):
        pi.getAxis(side).enableAutoSIPrefix(False)
    # room above the top tick: a label at the very top of the range (an empty plot's 1.0, a colour
    # bar's maximum) is centred on its tick, and half of it was cut by the widget's edge
    pi.layout.setContentsMargins(1, LABEL_ROOM, 1, 1)
    w.setMinimumSize(160, 120)
    return w


def make_image_plot(title: str | None = None, axes: bool = True) -> tuple[pg.PlotWidget, pg.ImageItem]:
    w = make_plot(title, bottom=None)
    pi = w.getPlotItem()
    if not axes:  # pixel indices of a tiled image mean nothing to a reader
        pi.hideAxis("left")
        pi.hideAxis("bottom")
        pi.layout.setContentsMargins(1, LABEL_ROOM, 1, LABEL_ROOM)  # a colour bar's minimum, at the bottom edge
    img = pg.ImageItem(axisOrder="row-major")
    pi.addItem(img)
    pi.setAspectLocked(False)
    pi.invertY(True)
    return w, img


def set_scale(bar: pg.ColorBarItem, levels: tuple[float, float], cmap=None) -> None:
    """Point a colour bar (and the image it drives) at ``levels`` and ``cmap``, but only when they
    change: every change redraws the bar's axis and re-renders the image, and doing that each frame
    cost the Weights and Activations views three quarters of their painting time."""
    if cmap is not None and bar.colorMap() is not cmap:
        bar.setColorMap(cmap)
    if tuple(bar.levels()) != tuple(levels):
        bar.setLevels(levels)


def half_step_ceiling(value: float) -> float:
    """``value`` rounded up to a multiple of 0.5: a growing colour scale (log counts) that moves a
    dozen times in a run instead of every frame."""
    return max(0.5, math.ceil(value * 2.0) / 2.0)


def cursor_line() -> pg.InfiniteLine:
    line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(QColor(120, 120, 120), width=1,
                                                                     style=pg.QtCore.Qt.DashLine))
    line.hide()
    return line


def place_cursor(line: pg.InfiniteLine, cursor: float | None) -> None:
    if cursor is None:
        line.hide()
    else:
        line.setValue(cursor)
        line.show()


def tile_images(maps: np.ndarray, columns: int | None = None, gap: int = 1) -> np.ndarray:
    """(N, H, W) -> one (rows*(H+gap)-gap, cols*(W+gap)-gap) image, NaN in the gaps."""
    n, h, w = maps.shape
    if columns is None:
        columns = int(np.ceil(np.sqrt(n * h / max(w, 1))))
    columns = max(1, min(columns, n))
    rows = int(np.ceil(n / columns))
    out = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap), np.nan, np.float32)
    for i in range(n):
        r, c = divmod(i, columns)
        out[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = maps[i]
    return out


def finite_abs_max(a: np.ndarray, default: float = 1.0) -> float:
    a = np.asarray(a)
    if a.size == 0:
        return default
    m = np.nanmax(np.abs(np.where(np.isfinite(a), a, np.nan))) if np.isfinite(a).any() else default
    return float(m) if m > 0 else default


class StickyRange:
    """Sets a plot's y range with hysteresis: it grows at once when data leaves it, but shrinks
    only when the data fills less than ``shrink_below`` of it.  A range that stays put means the
    axis (ticks and text) is not redrawn with every frame."""

    def __init__(self, plot: pg.PlotWidget, log: bool = False, margin: float = 0.08, shrink_below: float = 0.45):
        self.pi = plot.getPlotItem()
        self.pi.enableAutoRange(y=False)
        self.log = log
        self.margin = margin
        self.shrink_below = shrink_below
        self.range: tuple[float, float] | None = None

    def reset(self) -> None:
        self.range = None

    def update(self, *arrays: np.ndarray) -> None:
        vals = [np.asarray(a, np.float64).ravel() for a in arrays if a is not None and len(a)]
        if not vals:
            return
        v = np.concatenate(vals)
        v = v[np.isfinite(v)]
        if self.log:
            v = v[v > 0]
            if not v.size:
                return
            v = np.log10(v)
        if not v.size:
            return
        lo, hi = float(v.min()), float(v.max())
        if hi - lo < 1e-12:
            pad = max(abs(hi) * 0.05, 0.05 if self.log else 1e-6)
            lo, hi = lo - pad, hi + pad
        if self.range is not None:
            r0, r1 = self.range
            inside = lo >= r0 and hi <= r1
            if inside and (hi - lo) >= self.shrink_below * (r1 - r0):
                return
        pad = (hi - lo) * self.margin
        self.range = (lo - pad, hi + pad)
        self.pi.setYRange(*self.range, padding=0)

    def set_log(self, log: bool) -> None:
        self.log = log
        self.range = None
