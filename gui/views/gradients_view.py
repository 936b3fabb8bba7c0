"""Gradient norm per layer over time (log scale): vanishing gradients sink, exploding ones shoot up."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from gui.views import LiveView, StickyRange, cursor_line, make_plot, place_cursor, series_pen


class GradientsView(LiveView):
    title = "Gradient norms"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = make_plot(left="‖gradient‖ per layer", log_axis=True)
        self.plot.getPlotItem().setLogMode(y=True)
        self.legend = self.plot.getPlotItem().addLegend(offset=(-8, 8), labelTextSize="8pt")
        self.plot.getPlotItem().getAxis("left").enableAutoSIPrefix(False)
        self.cursor = cursor_line()
        self.plot.addItem(self.cursor)
        self._layout.addWidget(self.plot, 1)
        self._curves: dict[str, pg.PlotDataItem] = {}
        self.y_range = StickyRange(self.plot, log=True)

    def time_plots(self) -> list:
        return [self.plot]

    def reset(self, info) -> None:
        for c in self._curves.values():
            self.plot.removeItem(c)
        self.legend.clear()
        self._curves.clear()
        self.y_range.reset()
        if info is not None:
            for i, layer in enumerate(info.layers):
                self._curves[layer.name] = self.plot.plot(pen=series_pen(i), name=layer.name, antialias=False)
        self.show_message(None if self._curves or info is None else "This model has no layers with weights.")

    def render(self, frame) -> None:
        place_cursor(self.cursor, frame.cursor)
        shown = []
        for name, curve in self._curves.items():
            buf = frame.history.grad_norms.get(name)
            if buf is None:
                continue
            x, y = buf.arrays()
            ok = np.isfinite(y) & (y > 0)
            curve.setData(x[ok], y[ok])
            shown.append(y[ok])
        self.y_range.update(*shown)
        self.frames_drawn += 1
