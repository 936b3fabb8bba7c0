"""Fraction of dead ReLU units per ReLU node (zero for every probe sample), over time."""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QLabel

from gui.views import LiveView, cursor_line, make_plot, place_cursor, series_pen


class DeadReluView(LiveView):
    title = "Dead ReLUs"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.value_label = QLabel("")
        self.value_label.setWordWrap(True)
        self._layout.addWidget(self.value_label)
        self.plot = make_plot(left="dead fraction")
        self.plot.getPlotItem().setYRange(0, 1, padding=0.02)
        self.plot.getPlotItem().enableAutoRange(y=False)
        self.legend = self.plot.getPlotItem().addLegend(offset=(-8, 8), labelTextSize="8pt")
        self.cursor = cursor_line()
        self.plot.addItem(self.cursor)
        self._layout.addWidget(self.plot, 1)
        self._curves: dict[str, pg.PlotDataItem] = {}

    def time_plots(self) -> list:
        return [self.plot]

    def reset(self, info) -> None:
        for c in self._curves.values():
            self.plot.removeItem(c)
        self.legend.clear()
        self._curves.clear()
        relus = list(info.relu_nodes) if info else []
        for i, name in enumerate(relus):
            self._curves[name] = self.plot.plot(pen=series_pen(i), name=name, antialias=False)
        self.value_label.setText("")
        self.show_message(None if relus or info is None else "This model has no ReLU nodes.")

    def render(self, frame) -> None:
        place_cursor(self.cursor, frame.cursor)
        snap = frame.snapshot
        if snap is not None and snap.dead_relu:
            self.value_label.setText("   ".join(f"{k}: {v:.0%}" for k, v in snap.dead_relu.items()))
        for name, curve in self._curves.items():
            buf = frame.history.dead_relu.get(name)
            if buf is not None:
                curve.setData(*buf.arrays())
        self.frames_drawn += 1
