"""The samples behind a figure: a confusion cell's, or the most confidently wrong ones.

Images are thumbnails (the predicted class and its probability under each); tabular rows are a
table with the dataset's column names, in the data's own units (before standardisation), and
the predicted probabilities.  Selecting one and pressing "Explain" (or double-clicking it) asks
for it in the explain panel: ``explainRequested(index)``, an index into the evaluated split.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QFont, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QApplication, QHBoxLayout, QHeaderView, QLabel, QListWidget,
                               QListWidgetItem, QPushButton, QSizePolicy, QStackedWidget, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from gui.insight.widgets import display_array, image_rgb8, natural_range, pixmap

MAX_LISTED = 500  # a diagonal cell of a big test split holds thousands; the list says how many it leaves out
THUMB = 48
CAPTION_W = 76  # a thumbnail's caption is painted under it, so a list item's text is never cut short
LINE_H = 12


def captioned(picture: QPixmap, lines: list[str]) -> QPixmap:
    """``picture`` centred over ``lines`` of small text, on a transparent background."""
    out = QPixmap(CAPTION_W, picture.height() + LINE_H * len(lines))
    out.fill(Qt.transparent)
    p = QPainter(out)
    p.drawPixmap((CAPTION_W - picture.width()) // 2, 0, picture)
    font = QFont()
    font.setPixelSize(LINE_H - 2)
    p.setFont(font)
    p.setPen(QApplication.palette().color(QPalette.Text))
    for k, line in enumerate(lines):
        rect = QRect(0, picture.height() + k * LINE_H, CAPTION_W, LINE_H)
        p.drawText(rect, int(Qt.AlignHCenter | Qt.AlignVCenter), p.fontMetrics().elidedText(line, Qt.ElideRight,
                                                                                             CAPTION_W))
    p.end()
    return out


def _number(v: float) -> str:
    return f"{v:.4g}"


def _one_cell(shown, evaluation) -> bool:
    """Whether every listed sample has the same true and predicted class (one confusion cell)."""
    return len({(int(evaluation.y_true[i]), int(evaluation.y_pred[i])) for i in shown}) == 1


class SampleList(QWidget):
    sampleSelected = Signal(int)
    explainRequested = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(2)
        self.title = QLabel("")
        self.title.setWordWrap(True)
        col.addWidget(self.title)
        self.stack = QStackedWidget()
        self.thumbs = QListWidget()
        self.thumbs.setViewMode(QListWidget.IconMode)
        self.thumbs.setResizeMode(QListWidget.Adjust)
        self.thumbs.setMovement(QListWidget.Static)
        self.thumbs.setUniformItemSizes(True)
        self.thumbs.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table = QTableWidget(0, 0)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.empty = QLabel("")
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        self.empty.setStyleSheet("color: gray; padding: 6px;")
        for w in (self.empty, self.thumbs, self.table):
            self.stack.addWidget(w)
        col.addWidget(self.stack, 1)
        # its width comes from the panel's split, not from how many thumbnails it holds
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        row = QHBoxLayout()
        self.note = QLabel("")
        self.note.setStyleSheet("color: gray;")
        self.note.setWordWrap(True)
        row.addWidget(self.note, 1)
        self.explain_button = QPushButton("Explain this sample")
        self.explain_button.setToolTip("Open the selected sample in the Explain panel (or double-click it)")
        self.explain_button.setEnabled(False)
        self.explain_button.clicked.connect(self._explain_selected)
        row.addWidget(self.explain_button)
        col.addLayout(row)
        self.thumbs.itemSelectionChanged.connect(self._selection_changed)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.thumbs.itemDoubleClicked.connect(lambda _it: self._explain_selected())
        self.table.itemDoubleClicked.connect(lambda _it: self._explain_selected())
        self.listed: list[int] = []
        self.clear("")

    # ------------------------------------------------------------------ content
    def clear(self, text: str) -> None:
        self.listed = []
        self.title.setText("")
        self.note.setText("")
        self.thumbs.clear()
        self.table.setRowCount(0)
        self.empty.setText(text)
        self.stack.setCurrentWidget(self.empty)
        self.explain_button.setEnabled(False)

    def show_samples(self, title: str, indices: list[int], evaluation, dataset, empty_text: str = "") -> None:
        """List ``indices`` (of the evaluated split) with their labels and probabilities."""
        self.clear(empty_text or "No samples here.")
        self.title.setText(title)
        if not indices:
            return
        shown = list(indices[:MAX_LISTED])
        self.listed = shown
        if len(indices) > len(shown):
            self.note.setText(f"Showing the first {len(shown):,} of {len(indices):,}.")
        x, _ = dataset.split(evaluation.split_used)
        names = list(evaluation.class_names)
        probs = evaluation.probabilities
        if len(dataset.input_shape) == 3:
            self._fill_thumbs(shown, x, evaluation, names, probs, dataset)
        else:
            self._fill_table(shown, x, evaluation, names, probs, dataset)

    def _tooltip(self, i: int, evaluation, names: list[str], probs: np.ndarray) -> str:
        t, p = int(evaluation.y_true[i]), int(evaluation.y_pred[i])
        top = np.argsort(-probs[i])[:3]
        best = ", ".join(f"{names[k]} {probs[i, k]:.2f}" for k in top)
        return (f"Sample {i} of the {_split_title(evaluation.split_used)} split\ntrue: {names[t]}\n"
                f"predicted: {names[p]} (p = {probs[i, p]:.3f})\np(true class) = {probs[i, t]:.3f}\n"
                f"most likely: {best}")

    def _fill_thumbs(self, shown, x, evaluation, names, probs, dataset) -> None:
        batch = x[shown]
        pics = display_array(dataset, batch, batch=True)
        rng = natural_range(pics) or (float(np.min(pics)), float(np.max(pics)))  # one scale for all thumbnails
        same_cell = _one_cell(shown, evaluation)  # then the caption is just the probability
        size = QSize(CAPTION_W, THUMB + (1 if same_cell else 2) * LINE_H)
        self.thumbs.setIconSize(size)
        self.thumbs.setGridSize(size + QSize(8, 8))
        self.thumbs.setUpdatesEnabled(False)
        for k, i in enumerate(shown):
            p = int(evaluation.y_pred[i])
            lines = [f"#{i}  p {probs[i, p]:.2f}"] + ([] if same_cell else [f"→ {names[p]}"])
            item = QListWidgetItem(QIcon(captioned(pixmap(image_rgb8(pics[k], rng), THUMB), lines)), "")
            item.setData(Qt.UserRole, int(i))
            item.setToolTip(self._tooltip(i, evaluation, names, probs))
            item.setTextAlignment(Qt.AlignHCenter | Qt.AlignTop)
            self.thumbs.addItem(item)
        self.thumbs.setUpdatesEnabled(True)
        self.stack.setCurrentWidget(self.thumbs)

    def _fill_table(self, shown, x, evaluation, names, probs, dataset) -> None:
        rows = display_array(dataset, x[shown], batch=True).reshape(len(shown), -1)
        features = list(dataset.feature_names or [])
        if len(features) != rows.shape[1]:
            features = [f"x{j}" for j in range(rows.shape[1])]
        # one confusion cell: the title names the labels; without those two columns the probabilities
        # fit the panel's width at 1280x800 (they were scrolled out of sight)
        same_cell = _one_cell(shown, evaluation)
        labels = [] if same_cell else ["true", "predicted"]
        headers = ["sample", *labels, "p(predicted)", "p(true)"] + features
        self.table.setUpdatesEnabled(False)
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(shown))
        for r, i in enumerate(shown):
            t, p = int(evaluation.y_true[i]), int(evaluation.y_pred[i])
            cells = [str(i), *([] if same_cell else [names[t], names[p]]), f"{probs[i, p]:.3f}", f"{probs[i, t]:.3f}"]
            cells += [_number(v) for v in rows[r]]
            tip = self._tooltip(i, evaluation, names, probs)
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.UserRole, int(i))
                item.setToolTip(tip)
                if c >= 1 + len(labels):  # numbers
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.table.setItem(r, c, item)
        self.table.setUpdatesEnabled(True)
        self.stack.setCurrentWidget(self.table)

    # ------------------------------------------------------------------ selection
    def selected_index(self) -> int | None:
        if self.stack.currentWidget() is self.thumbs:
            items = self.thumbs.selectedItems()
        elif self.stack.currentWidget() is self.table:
            items = self.table.selectedItems()
        else:
            items = []
        return int(items[0].data(Qt.UserRole)) if items else None

    def select_index(self, index: int) -> bool:
        """Select the listed sample ``index`` (tests, keyboard); False when it is not listed."""
        if index not in self.listed:
            return False
        k = self.listed.index(index)
        if self.stack.currentWidget() is self.thumbs:
            self.thumbs.setCurrentRow(k)
        else:
            self.table.selectRow(k)
        return True

    def _selection_changed(self) -> None:
        i = self.selected_index()
        self.explain_button.setEnabled(i is not None)
        if i is not None:
            self.sampleSelected.emit(i)

    def _explain_selected(self) -> None:
        i = self.selected_index()
        if i is not None:
            self.explainRequested.emit(i)


def _split_title(split: str) -> str:
    return {"test": "test", "val": "validation", "train": "training"}.get(split, split)
