"""The sanity check as a grid: one row per method, one column per randomisation stage.

Column 0 is the trained model's map; each next column has re-initialised one more layer, from
the output side down (cascading).  Under every map: Spearman's rank correlation of its |values|
with the trained model's.  A method whose maps stay the same (rho near 1) while the model's
weights are destroyed is showing the input, not what the model learned.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from gui.insight.widgets import heat_rgb8, map_plane, pixmap

CELL_PX = 56
EXPLAIN = ("Each column re-initialises one more layer, from the output side. ρ: rank correlation with the "
           "trained model's map. A map that stays the same (ρ near 1) once the weights are gone shows the input, "
           "not the model.")
CONSTANT = " ρ = –: the map is constant (all zero), there is nothing to rank."


def rho_text(rho: float) -> str:
    return "ρ = –" if rho is None or not np.isfinite(rho) else f"ρ = {rho:.2f}"


class SanityGrid(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        self.caption = QLabel("")
        self.caption.setWordWrap(True)
        col.addWidget(self.caption)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.inner = QWidget()
        self.grid = QGridLayout(self.inner)
        self.grid.setSpacing(4)
        self.grid.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        self.scroll.setWidget(self.inner)
        col.addWidget(self.scroll, 1)
        self.result = None
        self.cells: dict[tuple[int, int], tuple[QLabel, QLabel]] = {}  # (method row, stage) -> (map, rho)

    def clear(self, text: str = "") -> None:
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.cells = {}
        self.result = None
        self.caption.setText(text)

    def set_result(self, result, titles: dict[str, str], target_name: str) -> None:
        self.clear()
        self.result = result
        constant = any(not np.isfinite(v) for st in result.stages for v in st.spearman.values())
        self.caption.setText(f"Sanity check for <b>{target_name}</b>. {EXPLAIN}" + (CONSTANT if constant else ""))
        header = QLabel("")
        self.grid.addWidget(header, 0, 0)
        for s, stage in enumerate(result.stages):
            text = "trained model" if stage.layer is None else f"+ {stage.layer} randomised"
            lab = QLabel(text)
            lab.setAlignment(Qt.AlignHCenter | Qt.AlignBottom)
            lab.setWordWrap(True)
            lab.setMaximumWidth(CELL_PX + 16)
            lab.setToolTip("Layers randomised so far: " + (", ".join(stage.randomized) or "none"))
            self.grid.addWidget(lab, 0, s + 1)
        for m, name in enumerate(result.methods):
            row = 1 + 2 * m
            title = QLabel(f"<b>{titles.get(name, name)}</b>")
            title.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
            title.setWordWrap(True)
            title.setMaximumWidth(96)
            self.grid.addWidget(title, row, 0)
            for s, stage in enumerate(result.stages):
                plane = map_plane(stage.maps[name])
                pic = QLabel()
                pm = pixmap(heat_rgb8(plane), CELL_PX)
                if plane.shape[0] == 1:  # a tabular map: one strip of features, made tall enough to see
                    pm = pm.scaled(CELL_PX, max(12, CELL_PX // 4), Qt.IgnoreAspectRatio, Qt.FastTransformation)
                pic.setPixmap(pm)
                pic.setFixedSize(pm.size())  # the grid scrolls rather than squash the maps
                rho = QLabel("original" if stage.layer is None else rho_text(stage.spearman[name]))
                rho.setToolTip("Spearman's rank correlation of |map| with the trained model's |map|")
                rho.setAlignment(Qt.AlignHCenter | Qt.AlignTop)
                self.grid.addWidget(pic, row, s + 1)
                self.grid.addWidget(rho, row + 1, s + 1)
                self.cells[(m, s)] = (pic, rho)
