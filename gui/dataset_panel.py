"""The dataset panel: pick a built-in dataset or import one, and see what it holds.

Choosing data is one undoable step (``Document.set_data_spec``); the Input node's
shape and the 'auto' units follow it through shape inference.  The preview shows
the first rows (in the data's original units) or an image grid with labels, a
scatter plot for 2-feature tables, and the class balance (or the target's
distribution for regression) as a small bar chart.
"""
from __future__ import annotations

import csv
import html
import os

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QFrame, QGridLayout, QHBoxLayout, QHeaderView,
                               QLabel, QMenu, QPushButton, QScrollArea, QSpinBox, QTableView, QTabWidget,
                               QVBoxLayout, QWidget)

from engine.data.params import SPLIT_DEFAULTS
from engine.errors import LayerLabError
from gui import dialogs, theme
from gui.lab_locks import data_refusal
from gui.wheel_guard import guard_wheel

PREVIEW_ROWS = 200
PREVIEW_IMAGES = 24
BAR_COLORS = ["#3b82f6", "#f97316", "#22c55e", "#e11d48", "#8b5cf6", "#14b8a6", "#f59e0b", "#64748b",
              "#ec4899", "#06b6d4"]


def builtin_datasets() -> list[dict]:
    from engine.data import list_builtin_datasets
    return list_builtin_datasets()


def raw_inputs(dataset, n: int) -> np.ndarray:
    """The first ``n`` training inputs in the data's own units (undoing the standardisation)."""
    x = dataset.x_train[:n]
    if dataset.normalization is not None:
        try:
            x = dataset.normalization.invert(x)
        except Exception:  # a mismatched saved normalisation: show the scaled values rather than nothing
            pass
    return x.detach().cpu().numpy()


def image_to_qimage(arr: np.ndarray) -> QImage:
    """A (C, H, W) float image in ~[0, 1] as a QImage (grey for 1 channel, RGB for 3)."""
    a = np.asarray(arr, dtype=np.float32)
    lo, hi = float(a.min()), float(a.max())
    if hi - lo > 1e-8 and (lo < -0.01 or hi > 1.01):
        a = (a - lo) / (hi - lo)
    a = np.clip(a * 255.0, 0, 255).astype(np.uint8)
    c, h, w = a.shape
    if c == 3:
        rgb = np.ascontiguousarray(np.transpose(a, (1, 2, 0)))
        img = QImage(rgb.data, w, h, 3 * w, QImage.Format_RGB888)
    else:
        grey = np.ascontiguousarray(a[0])
        img = QImage(grey.data, w, h, w, QImage.Format_Grayscale8)
    return img.copy()  # own the pixels: the numpy buffer goes away


class ArrayTableModel(QAbstractTableModel):
    def __init__(self, data: np.ndarray, columns: list[str], parent=None):
        super().__init__(parent)
        self.data_ = data
        self.columns = columns

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.data_)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index, role=Qt.DisplayRole):
        if role == Qt.DisplayRole:
            v = self.data_[index.row()][index.column()]
            return f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v)
        if role == Qt.TextAlignmentRole:
            return int(Qt.AlignRight | Qt.AlignVCenter)
        return None

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if role != Qt.DisplayRole:
            return None
        return self.columns[section] if orientation == Qt.Horizontal else str(section + 1)


class DatasetPanel(QWidget):
    def __init__(self, doc, parent=None):
        super().__init__(parent)
        self.doc = doc
        self.catalog = builtin_datasets()
        self._by_name = {d["name"]: d for d in self.catalog}
        self.combo = QComboBox()
        self.combo.setToolTip("The data the network learns from. The Input layer takes its shape from it.")
        self.combo.setProperty("freeTip", self.combo.toolTip())  # the tooltip when no lab locks the data
        for d in self.catalog:
            self.combo.addItem(f"{d['name']}  ({d['task']})", d["name"])
            self.combo.setItemData(self.combo.count() - 1, d["description"], Qt.ToolTipRole)
        self.combo.activated.connect(self._choose_builtin)
        self.combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(8)
        self.import_button = QPushButton("Import…")
        menu = QMenu(self.import_button)
        menu.addAction("CSV file…", self.import_csv)
        menu.addAction("Image folder (one sub-folder per class)…", self.import_image_folder)
        menu.addAction("IDX files (MNIST format)…", self.import_idx)
        menu.addAction("NumPy .npz file…", self.import_npz)
        self.import_button.setMenu(menu)
        self.import_button.setToolTip("Use your own data: a CSV table, a folder of images, IDX or .npz files.")
        self.import_button.setProperty("freeTip", self.import_button.toolTip())
        row = QHBoxLayout()
        row.addWidget(self.combo, 1)
        row.addWidget(self.import_button)

        self.description = QLabel()
        self.description.setWordWrap(True)
        self.description.setObjectName("Muted")
        self.lock_label = QLabel()  # a lab that fixes the data says so here; its controls are greyed
        self.lock_label.setWordWrap(True)
        self.lock_label.hide()
        self.error = QLabel()
        self.error.setObjectName("InlineError")
        self.error.setWordWrap(True)
        self.error.hide()
        self.params_host = QWidget()
        self.params_form = QFormLayout(self.params_host)
        self.params_form.setContentsMargins(0, 0, 0, 0)
        self.apply_button = QPushButton("Apply settings")
        self.apply_button.clicked.connect(self.apply_params)
        self.param_widgets: dict[str, QWidget] = {}
        self.split_host = QWidget()
        self.split_form = QFormLayout(self.split_host)
        self.split_form.setContentsMargins(0, 0, 0, 0)
        self.val_box = self._percent_box("Share of the data held out to validate on, every epoch")
        self.test_box = self._percent_box("Share held out for a final test, never used in training")
        self.split_seed_box = QSpinBox()
        self.split_seed_box.setRange(0, 1_000_000)
        self.split_seed_box.setToolTip("Which rows go to which split (the data itself stays the same)")
        self.stratify_box = QCheckBox("stratified")
        self.stratify_box.setToolTip("Keep each class's share the same in every split")
        self.standardize_box = QCheckBox("standardise inputs")
        self.standardize_box.setToolTip("Scale each input to mean 0 and spread 1, fitted on the training split only")
        self.split_form.addRow("validation", self.val_box)
        self.split_form.addRow("test", self.test_box)
        self.split_form.addRow("split seed", self.split_seed_box)
        self.split_form.addRow(self.stratify_box)
        self.split_form.addRow(self.standardize_box)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.RichText)

        self.balance_title = QLabel("Class balance (training split)")
        self.balance_title.setObjectName("Muted")
        self.balance = None  # pyqtgraph PlotWidget, created on first use
        self.balance_host = QVBoxLayout()
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.table = QTableView()
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
        self.table.horizontalHeader().setDefaultSectionSize(72)
        self.table.setMinimumWidth(80)
        self.tabs.setMinimumWidth(80)
        self.images = QWidget()
        self.images_grid = QGridLayout(self.images)
        self.images_grid.setSpacing(4)
        self.scatter = None

        inner = QWidget()
        lay = QVBoxLayout(inner)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.setSpacing(6)
        lay.addWidget(self.lock_label)
        lay.addLayout(row)
        lay.addWidget(self.description)
        lay.addWidget(self.params_host)
        split_title = QLabel("Split")
        split_title.setObjectName("Muted")
        lay.addWidget(split_title)
        lay.addWidget(self.split_host)
        lay.addWidget(self.apply_button, 0, Qt.AlignRight)
        lay.addWidget(self.error)
        lay.addWidget(self.summary)
        lay.addWidget(self.balance_title)
        lay.addLayout(self.balance_host)
        lay.addWidget(self.tabs, 1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setWidget(inner)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        guard_wheel(self)  # the panel scrolls: the wheel must not change a setting on the way
        doc.datasetChanged.connect(self.refresh)  # also emitted when a project is opened or created
        doc.labChanged.connect(self.refresh)
        theme.add_listener(self._on_theme)
        self.refresh()

    # ------------------------------------------------------------------ choosing data
    def _choose_builtin(self, index: int) -> None:
        name = self.combo.itemData(index)
        if name and name != self.doc.project.data.get("source"):
            self.use_spec({"source": name, **self._by_name[name]["params"]})

    def use_spec(self, spec: dict) -> bool:
        refusal = data_refusal(self.doc)
        if refusal:
            dialogs.show_error(self, "The lab fixes the data", refusal)
            self.refresh()
            return False
        ok = self.doc.set_data_spec(spec, parent=self)  # loads off the GUI thread (gui/busy.py)
        if not ok:
            self.refresh()  # put the combo back on the data in use
        return ok

    @staticmethod
    def _percent_box(tip: str) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setRange(0.0, 90.0)
        box.setDecimals(1)
        box.setSingleStep(5.0)
        box.setSuffix(" %")
        box.setToolTip(tip)
        return box

    def split_settings(self) -> dict:
        """The split keys of a data spec, as the form shows them."""
        return {"val_fraction": round(self.val_box.value() / 100.0, 4),
                "test_fraction": round(self.test_box.value() / 100.0, 4),
                "split_seed": int(self.split_seed_box.value()),
                "stratify": self.stratify_box.isChecked(),
                "standardize": self.standardize_box.isChecked()}

    def _show_split(self, spec: dict) -> None:
        values = {**SPLIT_DEFAULTS, **{k: spec[k] for k in SPLIT_DEFAULTS if k in spec}}
        self.val_box.setValue(100.0 * float(values["val_fraction"]))
        self.test_box.setValue(100.0 * float(values["test_fraction"]))
        self.split_seed_box.setValue(int(values["split_seed"]))
        self.stratify_box.setChecked(bool(values["stratify"]))
        self.standardize_box.setChecked(bool(values["standardize"]))
        ds = self.doc.data_view
        self.stratify_box.setEnabled(ds is None or ds.task == "classification")

    def apply_params(self) -> None:
        """Reload the data with the form's settings: one undoable step, or a sentence if they do not work.

        A refused Apply leaves the form as the user filled it, so only the wrong entry needs changing."""
        spec = dict(self.doc.project.data)
        params = self.param_settings()
        if spec.get("source") in self._by_name:
            spec.update(params)
        split = self.split_settings()
        held_out = split["val_fraction"] + split["test_fraction"]
        if held_out >= 1.0:  # said in the form's own terms (the engine's sentence names spec keys)
            dialogs.show_error(self, "Cannot split the data this way",
                               f"Validation and test together take {100 * held_out:.0f} % of the data, which "
                               "leaves nothing to train on. Keep their sum below 100 % (e.g. 20 % and 10 %).")
            # the two offending entries show the data in use again; every other entry stays as typed
            stored = {**SPLIT_DEFAULTS, **self.doc.project.data}
            self.val_box.setValue(100.0 * float(stored["val_fraction"]))
            self.test_box.setValue(100.0 * float(stored["test_fraction"]))
            return
        spec.update(split)
        if spec != self.doc.project.data and not self.use_spec(spec):
            self._show_params(params)  # use_spec put the form back on the data in use
            self._show_split(split)

    def param_settings(self) -> dict:
        """The generator's settings as the form shows them."""
        return {key: w.currentText() if isinstance(w, QComboBox) else w.value()
                for key, w in self.param_widgets.items()}

    def _show_params(self, values: dict) -> None:
        for key, value in values.items():
            w = self.param_widgets.get(key)
            if isinstance(w, QComboBox):
                w.setCurrentText(str(value))
            elif w is not None:
                w.setValue(value)

    def _start_dir(self) -> str:
        return os.path.dirname(self.doc.path) if self.doc.path else os.path.expanduser("~")

    def import_csv(self) -> bool:
        path = dialogs.get_open_path(self, "Import a CSV table", "CSV files (*.csv *.tsv *.txt);;All files (*)",
                                     self._start_dir())
        if not path:
            return False
        columns = csv_columns(path)
        if not columns:
            dialogs.show_error(self, "Cannot read the CSV", f"{path}: no columns found; is it a CSV table?")
            return False
        target = dialogs.get_item(self, "Target column", "Which column should the network predict?",
                                  columns, len(columns) - 1)
        if target is None:
            return False
        return self.use_spec({"source": "csv", "path": path, "target": target})

    def import_image_folder(self) -> bool:
        path = dialogs.get_directory(self, "Image folder: one sub-folder per class", self._start_dir())
        if not path:
            return False
        return self.use_spec({"source": "image_folder", "path": path, "size": [28, 28]})

    def import_idx(self) -> bool:
        images = dialogs.get_open_path(self, "IDX images file (e.g. train-images-idx3-ubyte)", "All files (*)",
                                       self._start_dir())
        if not images:
            return False
        labels = dialogs.get_open_path(self, "IDX labels file (e.g. train-labels-idx1-ubyte)", "All files (*)",
                                       os.path.dirname(images))
        if not labels:
            return False
        return self.use_spec({"source": "idx", "images": images, "labels": labels})

    def import_npz(self) -> bool:
        path = dialogs.get_open_path(self, "NumPy archive with arrays x and y", "NumPy archives (*.npz);;All files (*)",
                                     self._start_dir())
        if not path:
            return False
        return self.use_spec({"source": "npz", "path": path})

    # ------------------------------------------------------------------ showing data
    def refresh(self, *_args) -> None:
        spec = self.doc.project.data
        source = spec.get("source", "?")
        i = self.combo.findData(source)
        self.combo.blockSignals(True)
        if i >= 0:
            self.combo.setCurrentIndex(i)
        else:
            label = f"{source}: {os.path.basename(str(spec.get('path') or spec.get('images') or ''))}"
            j = self.combo.findData("__imported__")
            if j < 0:
                self.combo.addItem(label, "__imported__")
                j = self.combo.count() - 1
            self.combo.setItemText(j, label)
            self.combo.setCurrentIndex(j)
        self.combo.blockSignals(False)
        info = self._by_name.get(source)
        self.description.setText(info["description"] if info else f"Imported {source} data.")
        self._build_params(info, spec)
        self._show_split(spec)
        self._show_lock()
        ds = self.doc.data_view
        if self.doc.dataset_error:
            self.error.setText(f"✖ {self.doc.dataset_error}")
            self.error.show()
        else:
            self.error.hide()
        if ds is None:
            self.summary.setText("<i>No data loaded.</i>")
            self.tabs.clear()
            self._set_balance([], [])
            return
        s = ds.summary()
        counts = s["counts"]
        shape = "×".join(map(str, ds.input_shape))
        what = (f"{ds.n_outputs} classes" if ds.task == "classification"
                else f"{ds.n_outputs} target{'s' if ds.n_outputs != 1 else ''}")
        features = f"images {shape}" if ds.is_image else f"{ds.n_features} feature{'s' if ds.n_features != 1 else ''}"
        self.summary.setText(
            f"<b>{ds.name}</b> · {ds.task}<br>{features} → {what}<br>"
            f"train {counts['train']:,} · validation {counts['val']:,} · test {counts['test']:,}"
            + (" · standardised" if s.get("standardized") else "")
            + "".join(f"<br><i>Note: {html.escape(n)}</i>" for n in ds.notices))
        self.summary.setToolTip(f"Task: {ds.task_rule}." if ds.task_rule else "")
        if self.doc.data_pending:  # the arrays are in; the preview needs the tensors, which follow torch
            self.tabs.clear()
            self._set_balance([], [])
            self.summary.setText(self.summary.text() + "<br><i>Loading PyTorch… the preview follows.</i>")
            return
        self._show_balance(ds, s)
        self._show_preview(ds)

    def _build_params(self, info: dict | None, spec: dict) -> None:
        while self.params_form.rowCount():
            self.params_form.removeRow(0)
        self.param_widgets.clear()
        params = (info or {}).get("params") or {}
        for key, default in params.items():
            value = spec.get(key, default)
            if isinstance(default, bool):
                continue
            if isinstance(default, int):
                w = QSpinBox()
                w.setRange(0, 1_000_000)
                w.setValue(int(value))
            elif isinstance(default, float):
                w = QDoubleSpinBox()
                w.setRange(0.0, 1000.0)
                w.setDecimals(3)
                w.setSingleStep(0.05)
                w.setValue(float(value))
            elif isinstance(default, str):
                w = QComboBox()
                w.addItems(["cubic", "linear"] if key == "function" else [str(value)])
                w.setCurrentText(str(value))
            else:
                continue
            self.param_widgets[key] = w
            self.params_form.addRow(key.replace("_", " "), w)
        self.params_host.setVisible(bool(self.param_widgets))
        guard_wheel(self.params_host)

    def _show_lock(self) -> None:
        """Grey out every control that would change the data while a lab fixes it, saying why."""
        refusal = data_refusal(self.doc)
        for w in (self.combo, self.import_button, self.params_host, self.split_host, self.apply_button):
            w.setEnabled(refusal is None)
            w.setToolTip(refusal or w.property("freeTip") or "")
        self.lock_label.setText(f"<b>Locked:</b> {html.escape(refusal, quote=False)}" if refusal else "")
        self.lock_label.setVisible(refusal is not None)

    def _ensure_balance(self):
        if self.balance is None:
            import pyqtgraph as pg
            self.balance = pg.PlotWidget()
            self.balance.setMinimumHeight(110)
            self.balance.setMinimumWidth(80)
            self.balance.setMaximumHeight(130)
            self.balance.setMenuEnabled(False)
            self.balance.setMouseEnabled(False, False)
            self.balance.hideButtons()
            self.balance_host.addWidget(self.balance)
        return self.balance

    def _set_balance(self, names: list[str], values: list[float], title: str = "") -> None:
        if not names:
            if self.balance is not None:
                self.balance.hide()
            self.balance_title.hide()
            return
        import pyqtgraph as pg
        plot = self._ensure_balance()
        plot.show()
        self.balance_title.setText(title)
        self.balance_title.show()
        plot.clear()
        x = np.arange(len(values))
        brushes = [pg.mkBrush(BAR_COLORS[i % len(BAR_COLORS)]) for i in range(len(values))]
        plot.addItem(pg.BarGraphItem(x=x, height=np.asarray(values, dtype=float), width=0.7, brushes=brushes))
        axis = plot.getAxis("bottom")
        step = max(1, len(names) // 12)
        axis.setTicks([[(i, str(n)[:10]) for i, n in enumerate(names) if i % step == 0]])
        plot.setXRange(-0.6, len(values) - 0.4, padding=0)
        plot.setYRange(0, max(values) * 1.1 if len(values) and max(values) > 0 else 1, padding=0)

    def _show_balance(self, ds, s: dict) -> None:
        if ds.task == "classification":
            counts = s.get("class_counts", {}).get("train", {})
            self._set_balance(list(counts), list(counts.values()), "Class balance (training split)")
        else:
            y = ds.y_train[:, 0].detach().cpu().numpy() if ds.y_train.numel() else np.zeros(0)
            if len(y) == 0:
                self._set_balance([], [])
                return
            hist, edges = np.histogram(y, bins=12)
            self._set_balance([f"{e:.2g}" for e in edges[:-1]], hist.tolist(), "Target distribution (training split)")

    def _show_preview(self, ds) -> None:
        self.tabs.clear()
        n = min(PREVIEW_ROWS, ds.n_train)
        x = raw_inputs(ds, n)
        y = ds.y_train[:n].detach().cpu().numpy()
        if ds.task == "classification":
            labels = [ds.class_names[int(v)] if int(v) < len(ds.class_names) else str(int(v)) for v in y]
        else:
            labels = [", ".join(f"{t:.4g}" for t in np.atleast_1d(v)) for v in y]
        if ds.is_image:
            self._fill_images(x[:PREVIEW_IMAGES], labels[:PREVIEW_IMAGES])
            self.tabs.addTab(self.images, f"Images ({min(PREVIEW_IMAGES, n)} of {ds.n_train:,})")
        else:
            flat = x.reshape(len(x), -1)
            names = list(ds.feature_names) if len(ds.feature_names) == flat.shape[1] else \
                [f"x{i + 1}" for i in range(flat.shape[1])]
            rows = [list(map(float, r)) + [lab] for r, lab in zip(flat, labels)]
            self.table.setModel(ArrayTableModel(rows, names + ["target"], self.table))
            if flat.shape[1] == 2:
                self.tabs.addTab(self._scatter_widget(ds), "Scatter")
            self.tabs.addTab(self.table, f"Table (first {n} rows)")

    def _fill_images(self, x: np.ndarray, labels: list[str]) -> None:
        while self.images_grid.count():
            w = self.images_grid.takeAt(0).widget()
            if w is not None:
                w.hide()  # deleteLater alone leaves it painted until the event loop gets to it
                w.deleteLater()
        cols = 6
        for k, (img, lab) in enumerate(zip(x, labels)):
            cell = QWidget()
            v = QVBoxLayout(cell)
            v.setContentsMargins(0, 0, 0, 0)
            v.setSpacing(1)
            pic = QLabel()
            pm = QPixmap.fromImage(image_to_qimage(img)).scaled(40, 40, Qt.KeepAspectRatio, Qt.FastTransformation)
            pic.setPixmap(pm)
            pic.setAlignment(Qt.AlignCenter)
            text = QLabel(str(lab)[:8])
            text.setAlignment(Qt.AlignCenter)
            text.setObjectName("Muted")
            v.addWidget(pic)
            v.addWidget(text)
            self.images_grid.addWidget(cell, k // cols, k % cols)
        rows = (len(labels) + cols - 1) // cols
        for r in range(rows + 1):
            self.images_grid.setRowStretch(r, 0)
        self.images_grid.setRowStretch(rows, 1)  # keep the grid at the top of the tab

    def _scatter_widget(self, ds):
        import pyqtgraph as pg
        if self.scatter is None:
            self.scatter = pg.PlotWidget()
            self.scatter.setMinimumHeight(180)
            self.scatter.setMinimumWidth(80)
            self.scatter.setMenuEnabled(False)
            self.scatter.hideButtons()
            self.scatter.setAspectLocked(False)
        plot = self.scatter
        plot.clear()
        n = min(1000, ds.n_train)
        x = raw_inputs(ds, n).reshape(n, -1)
        y = ds.y_train[:n].detach().cpu().numpy()
        # one item per class with one brush: a brush per point costs ~0.2 s for 1000 points
        groups = np.unique(y.astype(np.int64)) if ds.task == "classification" else [None]
        for c in groups:
            keep = slice(None) if c is None else (y == c)
            colour = BAR_COLORS[(0 if c is None else int(c)) % len(BAR_COLORS)]
            plot.addItem(pg.ScatterPlotItem(x[keep, 0], x[keep, 1], size=5, pen=None, brush=pg.mkBrush(colour)))
        names = ds.feature_names if len(ds.feature_names) == 2 else ["x1", "x2"]
        plot.setLabel("bottom", names[0])
        plot.setLabel("left", names[1])
        return plot

    def _on_theme(self, t) -> None:
        from gui.views import restyle_plot  # lazy, as pyqtgraph is here

        for plot in (self.balance, self.scatter):
            if plot is not None:
                restyle_plot(plot, t)


def csv_columns(path: str, max_bytes: int = 65536) -> list[str]:
    """The column names of a CSV file (or col0, col1... when it has no header row)."""
    from engine.limits import open_regular
    try:
        with open_regular(path) as f:  # a FIFO or a device is refused, never opened (it would block)
            sample = f.read(max_bytes).decode("utf-8-sig", errors="replace")
    except (OSError, LayerLabError):
        return []
    lines = [ln for ln in sample.splitlines() if ln.strip()][:200]
    if not lines:
        return []
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines[:50]), delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = [r for r in csv.reader(lines, dialect) if r]
    if not rows:
        return []
    from engine.data.csv_import import detect_header
    width = len(rows[0])
    rows = [r for r in rows if len(r) == width]
    if detect_header(rows):
        return [c.strip() or f"col{j}" for j, c in enumerate(rows[0])]
    return [f"col{j}" for j in range(width)]
