"""Fraction of dead ReLU units per ReLU node (zero for every probe sample), over time."""
from __future__ import annotations

from PySide6.QtWidgets import QLabel

from gui.views import PerSeriesView, make_plot, place_cursor


class DeadReluView(PerSeriesView):
    title = "Dead ReLUs"

    def __init__(self, parent=None):
        super().__init__(make_plot(left="dead fraction"), parent)
        self.value_label = QLabel("")
        self.value_label.setWordWrap(True)
        self._layout.addWidget(self.value_label)
        self.plot.getPlotItem().setYRange(0, 1, padding=0.02)
        self.plot.getPlotItem().enableAutoRange(y=False)
        self._layout.addWidget(self.plot, 1)

    def reset(self, info) -> None:
        relus = list(info.relu_nodes) if info else []
        self._reset_curves(relus)
        self.value_label.setText("")
        applies = bool(relus) or info is None
        self.show_message(None if applies else "This model has no ReLU nodes.", plots=applies)

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
