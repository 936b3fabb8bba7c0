"""The learning rate over the run (schedules: step, cosine, one-cycle, plateau)."""
from __future__ import annotations

from PySide6.QtWidgets import QLabel

from gui.views import LiveView, StickyRange, add_curve, cursor_line, make_plot, place_cursor, series_pen


class LRView(LiveView):
    title = "Learning rate"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.value_label = QLabel("")
        self._layout.addWidget(self.value_label)
        self.plot = make_plot(left="learning rate")
        self.curve = add_curve(self.plot, pen=series_pen(4), antialias=False)
        self.plot.getPlotItem().getAxis("left").enableAutoSIPrefix(False)
        self.cursor = cursor_line()
        self.plot.addItem(self.cursor)
        self._layout.addWidget(self.plot, 1)
        self.y_range = StickyRange(self.plot)

    def time_plots(self) -> list:
        return [self.plot]

    def reset(self, info) -> None:
        self.curve.setData([], [])
        self.y_range.reset()
        self.value_label.setText("")

    def render(self, frame) -> None:
        place_cursor(self.cursor, frame.cursor)
        x, y = frame.history.lr.arrays()
        self.curve.setData(x, y)
        self.y_range.update(y)
        if len(y):
            self.value_label.setText(f"lr = {y[-1]:.3g}")
        self.frames_drawn += 1
