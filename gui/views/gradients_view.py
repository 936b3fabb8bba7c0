"""Gradient norm per layer over time (log scale): vanishing gradients sink, exploding ones shoot up."""
from __future__ import annotations

import numpy as np

from gui.views import PerSeriesView, StickyRange, make_plot, place_cursor


class GradientsView(PerSeriesView):
    title = "Gradient norms"

    def __init__(self, parent=None):
        super().__init__(make_plot(left="‖gradient‖ per layer", log_axis=True), parent)
        self.plot.getPlotItem().setLogMode(y=True)
        self.plot.getPlotItem().getAxis("left").enableAutoSIPrefix(False)
        self._layout.addWidget(self.plot, 1)
        self.y_range = StickyRange(self.plot, log=True)

    def reset(self, info) -> None:
        self._reset_curves([layer.name for layer in info.layers] if info is not None else [])
        self.y_range.reset()
        applies = bool(self._curves) or info is None
        self.show_message(None if applies else "This model has no layers with weights.", plots=applies)

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
