"""The confusion matrix as a heatmap: true classes down, predicted classes across, one click per cell.

Counts or row-normalised (each row divided by the number of samples of that true class), class
names on both axes, the value written in each cell when the cell is wide enough for it, a colour
bar, and the clicked cell outlined.  ``cellClicked(true, predicted)`` says which cell was chosen.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QComboBox, QSizePolicy, QVBoxLayout, QWidget

from gui.insight.widgets import NamesAxis
from gui.views import PanelPlot

CMAP = pg.colormap.get("viridis")  # dark = few samples, bright = many
LABEL_PX = (12, 11, 10, 9, 8)  # font sizes tried for the value in each cell


class _CellImage(pg.ImageItem):
    """The matrix; a left click reports the cell under the mouse."""

    clicked = None  # set by the view: callable(row, col)

    def mouseClickEvent(self, ev):
        if ev.button() != Qt.LeftButton or self.image is None or self.clicked is None:
            return
        pos = ev.pos()  # item coordinates are cell indices (x = column, y = row)
        row, col = int(np.floor(pos.y())), int(np.floor(pos.x()))
        n_rows, n_cols = self.image.shape[:2]
        if 0 <= row < n_rows and 0 <= col < n_cols:
            ev.accept()
            self.clicked(row, col)


class ConfusionMatrixView(QWidget):
    cellClicked = Signal(int, int)  # (true class, predicted class)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(2)
        # the counts / row % switch, for the panel to place (beside the samples, so the matrix keeps the height)
        self.mode_box = QComboBox()
        self.mode_box.addItem("counts", "counts")
        self.mode_box.addItem("row %", "normalized")
        self.mode_box.setToolTip("counts: how many samples of each true class got each prediction.\n"
                                 "row %: each row divided by its total, the share of that true class given each "
                                 "prediction (the diagonal is the recall).")
        self.controls = self.mode_box

        self.left_axis = NamesAxis("left")
        self.bottom_axis = NamesAxis("bottom")
        small = QFont()
        small.setPixelSize(11)
        for axis in (self.left_axis, self.bottom_axis):
            axis.setStyle(tickFont=small, tickLength=4)  # towards the names: inside the cells they read as minus signs
        self.plot = PanelPlot(axisItems={"left": self.left_axis, "bottom": self.bottom_axis})
        self.plot.setMenuEnabled(False)
        pi = self.plot.getPlotItem()
        pi.hideButtons()
        pi.setMouseEnabled(False, False)
        pi.setLabel("left", "true class")
        pi.setLabel("bottom", "predicted class")
        pi.invertY(True)
        pi.setAspectLocked(True)
        self.img = _CellImage(axisOrder="row-major")
        self.img.clicked = self._clicked
        pi.addItem(self.img)
        self.colorbar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=CMAP, width=10, interactive=False,
                                        colorMapMenu=False)
        self.colorbar.axis.setStyle(tickFont=small)
        self.colorbar.setImageItem(self.img, insert_in=pi)
        self.selection = pg.QtWidgets.QGraphicsRectItem()
        self.selection.setPen(pg.mkPen(QColor(255, 64, 64), width=3, cosmetic=True))
        self.selection.setZValue(20)
        self.selection.hide()
        pi.addItem(self.selection)
        self.plot.setMinimumSize(220, 200)
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)  # the panel's split decides its width
        self.plot.setToolTip("Rows: the true class; columns: the predicted one. Click a cell to list its samples.")
        col.addWidget(self.plot, 1)
        pi.getViewBox().sigResized.connect(self._place_labels)
        self.mode_box.currentIndexChanged.connect(lambda _i: self._draw())

        self.counts: np.ndarray | None = None
        self.normalized: np.ndarray | None = None
        self.names: list[str] = []
        self.selected: tuple[int, int] | None = None
        self._labels: list[pg.TextItem] = []

    # ------------------------------------------------------------------ data
    @property
    def mode(self) -> str:
        return self.mode_box.currentData()

    def set_mode(self, mode: str) -> None:
        self.mode_box.setCurrentIndex(self.mode_box.findData(mode))

    def set_matrix(self, counts: np.ndarray, normalized: np.ndarray, names: list[str]) -> None:
        self.counts = np.asarray(counts)
        self.normalized = np.asarray(normalized, dtype=np.float64)
        self.names = [str(n) for n in names]
        self.left_axis.set_names(self.names)
        self.bottom_axis.set_names(self.names)
        k = len(self.names)
        for label in self._labels:
            self.plot.removeItem(label)
        self._labels = []
        for r in range(k):
            for c in range(k):
                t = pg.TextItem("", anchor=(0.5, 0.5))
                t.setPos(c + 0.5, r + 0.5)
                t.setZValue(10)
                self.plot.addItem(t)
                self._labels.append(t)
        self.select(None)
        self._draw()
        self.img.setRect(QRectF(0, 0, k, k))  # after setImage: the rect is a transform of the image held
        self.plot.getPlotItem().setRange(xRange=(0, k), yRange=(0, k), padding=0.0)

    def clear(self) -> None:
        self.counts = self.normalized = None
        self.names = []
        self.img.clear()
        for label in self._labels:
            self.plot.removeItem(label)
        self._labels = []
        self.left_axis.set_names([])
        self.bottom_axis.set_names([])
        self.select(None)

    def values(self) -> np.ndarray | None:
        return self.counts if self.mode == "counts" else self.normalized

    def _draw(self) -> None:
        data = self.values()
        if data is None:
            return
        data = np.asarray(data, dtype=np.float64)
        top = float(data.max()) if data.size and data.max() > 0 else 1.0
        self.img.setImage(data, autoLevels=False, levels=(0.0, top))
        self.colorbar.setLevels((0.0, top))
        self.colorbar.axis.setLabel("samples" if self.mode == "counts" else "share of the true class")
        for r in range(data.shape[0]):
            for c in range(data.shape[1]):
                v = data[r, c]
                text = f"{int(self.counts[r, c])}" if self.mode == "counts" else f"{100.0 * v:.0f}%"
                label = self._labels[r * data.shape[1] + c]
                # viridis is dark at the bottom: white text there, black on the bright end
                label.setColor(QColor(20, 20, 20) if v / top > 0.6 else QColor(250, 250, 250))
                label.setText(text)
        self._place_labels()

    def _place_labels(self, *_args) -> None:
        """Counts only where they fit: a 10x10 matrix in a small dock has no room for '1000'."""
        if self.counts is None or not self._labels:
            return
        k = len(self.names)
        vb = self.plot.getPlotItem().getViewBox()
        cell_px = vb.width() / max(k, 1) if vb.width() > 0 else 0.0
        cell_px = min(cell_px, vb.height() / max(k, 1)) if vb.height() > 0 else cell_px
        texts = [t.toPlainText() for t in self._labels]
        show, font = False, QFont()
        for px in LABEL_PX:  # the largest font the widest value fits in, or none below 8 px
            font.setPixelSize(px)
            fm = pg.QtGui.QFontMetrics(font)
            if cell_px >= max(fm.horizontalAdvance(t) for t in texts) + 3 and cell_px >= fm.height():
                show = True
                break
        for t in self._labels:
            if show:
                t.setFont(font)
            t.setVisible(show)

    # ------------------------------------------------------------------ selection
    def _clicked(self, row: int, col: int) -> None:
        self.select((row, col))
        self.cellClicked.emit(row, col)

    def select(self, cell: tuple[int, int] | None) -> None:
        self.selected = cell
        if cell is None:
            self.selection.hide()
            return
        r, c = cell
        self.selection.setRect(QRectF(c, r, 1, 1))
        self.selection.show()

    def labels_shown(self) -> bool:
        return bool(self._labels) and self._labels[0].isVisible()

    def cell_text(self, row: int, col: int) -> str:
        return self._labels[row * len(self.names) + col].toPlainText()
