"""The evaluation's curves: ROC (binary tasks), the reliability diagram, and for regression the
predicted-vs-actual scatter and the residuals.  Each plot is built once and updated in place."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QWidget

from gui.views import PanelPlot, make_plot, series_pen

GUIDE = pg.mkPen((150, 150, 150), width=1, style=Qt.DashLine)
MAX_POINTS = 5000  # a scatter of more points says nothing more and draws slowly


def _unit_square(plot: pg.PlotWidget) -> None:
    """Axes fixed to [0, 1] x [0, 1]: rates and probabilities (auto-range would zoom on the data)."""
    pi = plot.getPlotItem()
    pi.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.02)
    pi.disableAutoRange()
    pi.setMouseEnabled(False, False)


def _title(plot: pg.PlotWidget, text: str) -> None:
    plot.getPlotItem().setTitle(text, size="9pt")


class ClassificationCurves(QWidget):
    """ROC with its AUC (binary tasks) beside the reliability diagram."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.roc_plot = make_plot("ROC", left="true positive rate", bottom="false positive rate", widget=PanelPlot)
        _unit_square(self.roc_plot)
        self.roc_plot.plot([0, 1], [0, 1], pen=GUIDE)
        self.roc_curve = self.roc_plot.plot(pen=series_pen(0, 2.0))
        self.roc_text = pg.TextItem("", anchor=(1, 1), color=(80, 80, 80))
        self.roc_text.setPos(0.98, 0.02)
        self.roc_plot.addItem(self.roc_text)
        row.addWidget(self.roc_plot, 1)
        self.rel_plot = make_plot("Reliability", left="accuracy", bottom="confidence (top class)", widget=PanelPlot)
        _unit_square(self.rel_plot)
        self.rel_note = pg.TextItem("under the line: over-confident", anchor=(0, 0), color=(110, 110, 110))
        self.rel_note.setPos(0.02, 0.98)
        self.rel_plot.addItem(self.rel_note)
        self.rel_plot.plot([0, 1], [0, 1], pen=GUIDE)
        self.rel_bars = pg.BarGraphItem(x=[], height=[], width=0.1, brush=pg.mkBrush(31, 119, 180, 150),
                                        pen=pg.mkPen(31, 119, 180))
        self.rel_plot.addItem(self.rel_bars)
        self.rel_points = self.rel_plot.plot(pen=None, symbol="o", symbolSize=6, symbolBrush=pg.mkBrush("#ff7f0e"),
                                             symbolPen=None)
        row.addWidget(self.rel_plot, 1)

    def clear(self) -> None:
        self.roc_curve.setData([], [])
        self.roc_text.setText("")
        _title(self.roc_plot, "ROC")
        self.rel_bars.setOpts(x=[], height=[])
        self.rel_points.setData([], [])
        _title(self.rel_plot, "Reliability")

    def set_evaluation(self, ev) -> None:
        roc = ev.roc
        if roc is not None and roc.get("auc") is not None:
            self.roc_curve.setData(np.asarray(roc["fpr"]), np.asarray(roc["tpr"]))
            positive = ev.class_names[roc.get("positive_class", 1)] if len(ev.class_names) > 1 else "1"
            _title(self.roc_plot, f"ROC, positive class '{positive}'")
            self.roc_text.setText(f"AUC = {roc['auc']:.3f}")
        else:
            self.roc_curve.setData([], [])
            _title(self.roc_plot, "ROC: " + roc["note"] if roc is not None and roc.get("note")
                   else "ROC curves are drawn for two-class tasks")
            self.roc_text.setText(f"one-vs-rest AUC = {ev.roc_auc_ovr:.3f}" if ev.roc_auc_ovr is not None else "")
        rel = ev.reliability or {}
        edges = np.asarray(rel.get("bin_edges", []), dtype=np.float64)
        bins = np.asarray(rel.get("bins", []), dtype=int)
        if edges.size > 1 and bins.size:
            width = float(edges[1] - edges[0])
            centres = edges[bins] + width / 2.0
            acc = np.asarray(rel["accuracy"], dtype=np.float64)
            self.rel_bars.setOpts(x=centres, height=acc, width=width * 0.9)
            self.rel_points.setData(np.asarray(rel["mean_confidence"]), acc)
            _title(self.rel_plot, f"Reliability · ECE {rel.get('ece', float('nan')):.3f}")
        else:
            self.rel_bars.setOpts(x=[], height=[])
            self.rel_points.setData([], [])


class RegressionPlots(QWidget):
    """Predicted against actual (the diagonal is perfect), and the residuals against the prediction."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.scatter_plot = make_plot("Predicted vs actual", left="predicted", bottom="actual", widget=PanelPlot)
        self.diagonal = self.scatter_plot.plot(pen=GUIDE)
        self.scatter = self.scatter_plot.plot(pen=None, symbol="o", symbolSize=4, symbolPen=None,
                                              symbolBrush=pg.mkBrush(31, 119, 180, 150))
        row.addWidget(self.scatter_plot, 1)
        self.residual_plot = make_plot("Residuals (actual − predicted)", left="residual", bottom="predicted",
                                       widget=PanelPlot)
        self.residual_plot.addItem(pg.InfiniteLine(pos=0, angle=0, pen=GUIDE))
        self.residuals = self.residual_plot.plot(pen=None, symbol="o", symbolSize=4, symbolPen=None,
                                                 symbolBrush=pg.mkBrush(255, 127, 14, 150))
        row.addWidget(self.residual_plot, 1)

    def clear(self) -> None:
        for item in (self.diagonal, self.scatter, self.residuals):
            item.setData([], [])

    def set_evaluation(self, ev, target: int = 0) -> None:
        actual = np.asarray(ev.actual)[:, target]
        predicted = np.asarray(ev.predicted)[:, target]
        residual = np.asarray(ev.residuals)[:, target]
        if actual.size > MAX_POINTS:  # an even subsample: the cloud's shape stays
            keep = np.linspace(0, actual.size - 1, MAX_POINTS).astype(int)
            actual, predicted, residual = actual[keep], predicted[keep], residual[keep]
        both = np.concatenate([actual, predicted]) if actual.size else np.zeros(1)
        lo, hi = float(np.min(both)), float(np.max(both))
        self.diagonal.setData([lo, hi], [lo, hi])
        self.scatter.setData(actual, predicted)
        self.residuals.setData(predicted, residual)
