"""The fitted curve of a 1-D regression, over the training and validation points."""
from __future__ import annotations

import pyqtgraph as pg

from gui.views import LiveView, add_legend, make_plot, series_pen


class RegressionView(LiveView):
    title = "Fitted curve"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = make_plot(bottom="x", left="y")
        pi = self.plot.getPlotItem()
        add_legend(self.plot)
        self.train_pts = pg.ScatterPlotItem(size=4, brush=pg.mkBrush(31, 119, 180, 110), pen=None, name="train")
        self.val_pts = pg.ScatterPlotItem(size=6, brush=pg.mkBrush(0, 0, 0, 0), pen=pg.mkPen(255, 127, 14, 200),
                                          name="validation")
        pi.addItem(self.train_pts)
        pi.addItem(self.val_pts)
        self.curve = self.plot.plot(pen=series_pen(3, width=2.5), name="model", antialias=True)
        self._layout.addWidget(self.plot, 1)
        self.info = None
        self._curve_x = None

    def reset(self, info) -> None:
        self.info = info
        self.curve.setData([], [])
        if info is None or info.curve_x is None:
            self.train_pts.setData([])
            self.val_pts.setData([])
            self.show_message(None if info is None else
                              "The fitted curve is drawn for regression data with one input feature.",
                              plots=info is None)
            return
        self.show_message(None)
        (xt, yt), (xv, yv) = info.train_xy, info.val_xy
        self._curve_x = info.in_data_units(info.curve_x)  # the model's inputs are standardised
        self.train_pts.setData(info.in_data_units(xt[:, 0]), yt.reshape(len(yt), -1)[:, 0])
        self.val_pts.setData(info.in_data_units(xv[:, 0]), yv.reshape(len(yv), -1)[:, 0])

    def render(self, frame) -> None:
        snap, info = frame.snapshot, self.info
        if snap is None or snap.curve is None or info is None or info.curve_x is None:
            return
        self.curve.setData(self._curve_x, snap.curve[:, 0])
        self.frames_drawn += 1
