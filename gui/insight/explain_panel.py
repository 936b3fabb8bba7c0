"""The Explain panel: why the model answers what it answers, for one sample or over the data.

A sample (split and index, or one sent from the evaluation panel) and a target class (default:
the class the model predicts) are shared by four pages:

* Attribution - a method from ``engine.explain.methods_for`` (the ones that do not fit this model
  greyed out, their reason as tooltip), its options as a form built from its schema, the layer
  for Grad-CAM; the map drawn over the input (``AttributionView``), IG's completeness delta said.
* Feature importance (tabular data) - permutation importance with error bars, or mean |SHAP|.
* Sanity check - the maps of a few methods as the model's layers are randomised (``SanityGrid``).
* Activation maximisation - the input a class score or a unit responds to most.

Everything that runs the model runs on the panel's ``JobRunner`` thread, with a progress bar and
Cancel; the window stays responsive.  The model is the one the ``ModelSource`` names; when it
changes, what is shown goes (with the reason), and a quick attribution that was on screen is
recomputed for the new model (so scrubbing the timeline shows Grad-CAM at that epoch).

Signals for other parts of the app (the lab panel records them as inspection events):
``attributionRun(method)`` when an attribution map is shown, ``sanityCheckRun(methods)`` when a
sanity-check grid is shown.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton,
                               QScrollArea, QSpinBox, QTabWidget, QVBoxLayout, QWidget)

from gui.insight.attribution_view import AttributionView, FeatureBars
from gui.insight.jobs import JobRunner
from gui.insight.model_source import ModelCache, ModelSource, ModelSpec
from gui.insight.options_form import OptionsForm
from gui.insight.sanity_view import SanityGrid
from gui.insight.widgets import (JobBar, display_array, follow_theme, image_rgb8, natural_range, picture_plot, pixmap,
                                 restyle_plots)
from gui.wheel_guard import guard_wheel

SPLIT_TITLES = {"test": "test", "val": "validation", "train": "training"}
SANITY_METHODS = ("saliency", "input_x_gradient", "integrated_gradients", "smoothgrad", "gradcam", "guided_gradcam")
SANITY_DEFAULT = ("saliency", "integrated_gradients", "gradcam")
DEBOUNCE_MS = 250
CONTROLS_WIDTH = 250
FIELD_GRID = 49  # points per side of the 2-D gradient field (an arrow on every third)
HINTS = {  # what each page says before it has something to show
    "attribution": "Choose a method and press Explain: the map is drawn over the sample.",
    "importance": "Press Compute importance: how much each column matters to the model, over the test split.",
    "sanity": "Tick the methods and press Run the check: their maps as the model's layers are randomised.",
    "actmax": "Choose a class (or a unit) and press Find the input: the input it responds to most.",
}


@dataclass
class ModelInfo:
    """What the panel's menus need to know about the model (worked out on the job thread)."""

    methods: list[dict]
    layers: list[str]  # Grad-CAM's candidates, the default last
    units: dict[str, int]  # layer -> its number of units (channels), for activation maximisation
    input_shape: tuple


@dataclass
class AttributionOutcome:
    attribution: Any
    probabilities: np.ndarray | None  # the model's class probabilities for the sample
    output: np.ndarray  # the model's raw outputs
    gradient_field: Any = None  # engine.explain.GradientField, for 2-feature data
    points: np.ndarray | None = None
    labels: np.ndarray | None = None


@dataclass
class Request:
    """What was asked, so a changed model can be asked the same again."""

    kind: str  # "attribution" | "importance" | "sanity" | "actmax"
    params: dict = field(default_factory=dict)


IMAGE_ONLY_OPTIONS = {"patch", "blur_sigma"}  # options that mean something for images only


def fitting_options(schema: list[dict], input_shape: tuple) -> list[dict]:
    """A method's options without those that do not apply to this data (KernelSHAP's patch size and
    IG's blurred baseline on tabular rows): a field that can only be refused is noise in a form."""
    if len(input_shape) == 3:
        return schema
    out = []
    for opt in schema:
        if opt["name"] in IMAGE_ONLY_OPTIONS:
            continue
        if opt["kind"] == "choice" and "blurred" in opt.get("choices", ()):
            opt = {**opt, "choices": [c for c in opt["choices"] if c != "blurred"]}
        out.append(opt)
    return out


def _controls(parent_layout: QHBoxLayout, width: int = CONTROLS_WIDTH) -> tuple[QWidget, QVBoxLayout]:
    """A fixed-width scrollable column of controls on the left of a page."""
    box = QWidget()
    col = QVBoxLayout(box)
    col.setContentsMargins(0, 0, 4, 0)
    col.setSpacing(4)
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QScrollArea.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    scroll.setWidget(box)
    scroll.setFixedWidth(width)
    parent_layout.addWidget(scroll)
    return box, col


class ExplainPanel(QWidget):
    attributionRun = Signal(str)  # the method's name, when its map is shown
    sanityCheckRun = Signal(list)  # the methods' names, when the sanity-check grid is shown

    def __init__(self, source: ModelSource, parent: QWidget | None = None):
        super().__init__(parent)
        self.source = source
        self.runner = JobRunner("layerlab-explain", self)
        self.cache = ModelCache()
        self.info: ModelInfo | None = None
        self.info_spec: ModelSpec | None = None
        self.last: Request | None = None  # the last request whose result is (or was) on screen
        self.outcome: AttributionOutcome | None = None
        self.importance = None
        self.sanity = None
        self.actmax = None
        self._pending = True  # model information to fetch once the panel is in sight
        self._rerun: Request | None = None  # asked again when the new model's information is in

        col = QVBoxLayout(self)
        col.setContentsMargins(4, 4, 4, 4)
        col.setSpacing(3)
        col.addLayout(self._sample_row())
        self.job_bar = JobBar()
        col.addWidget(self.job_bar)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self._attribution_page(), "Attribution")
        self.importance_index = self.tabs.addTab(self._importance_page(), "Feature importance")
        self.tabs.addTab(self._sanity_page(), "Sanity check")
        self.actmax_index = self.tabs.addTab(self._actmax_page(), "What a class looks for")
        col.addWidget(self.tabs, 1)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        self.message.setStyleSheet("color: gray; padding: 8px;")
        col.addWidget(self.message, 1)
        guard_wheel(self)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._prepare_if_in_sight)
        self.runner.started.connect(self.job_bar.running)
        self.runner.progress.connect(self.job_bar.set_progress)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)
        self.runner.busyChanged.connect(self._update_buttons)
        self.job_bar.cancelClicked.connect(self.runner.cancel)
        source.changed.connect(self._on_model_changed)
        follow_theme(self)
        document = source.document
        document.datasetChanged.connect(lambda _ds: self._fill_splits())
        self._fill_splits()
        self._clear_results()
        self._show_unavailable_or_wait()

    def _on_theme(self, t) -> None:
        restyle_plots(self, t)

    # ------------------------------------------------------------------ building the panel
    def _sample_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(QLabel("Sample"))
        self.split_box = QComboBox()
        self.split_box.setToolTip("Which split the sample comes from")
        row.addWidget(self.split_box)
        self.index_box = QSpinBox()
        self.index_box.setToolTip("The sample's index in that split (the evaluation panel's lists use the same)")
        self.index_box.setMinimumWidth(70)
        row.addWidget(self.index_box)
        self.preview = QLabel()
        self.preview.setFixedSize(32, 32)
        self.preview.setScaledContents(False)
        row.addWidget(self.preview)
        self.sample_label = QLabel("")
        self.sample_label.setWordWrap(True)
        row.addWidget(self.sample_label, 1)
        row.addWidget(QLabel("Target"))
        self.target_box = QComboBox()
        self.target_box.setToolTip("The class (or output) the explanation is about; by default the class the "
                                   "model predicts for this sample")
        self.target_box.setMinimumContentsLength(12)
        row.addWidget(self.target_box)
        self.split_box.currentIndexChanged.connect(self._split_changed)
        self.index_box.valueChanged.connect(lambda _v: self._sample_changed())
        return row

    def _attribution_page(self) -> QWidget:
        page = QWidget()
        row = QHBoxLayout(page)
        row.setContentsMargins(0, 2, 0, 0)
        _box, c = _controls(row)
        form = self.method_form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        self.method_box = QComboBox()
        self.method_box.setToolTip("How the map is computed; methods that do not fit this model are greyed out "
                                   "(hover them to see why)")
        form.addRow("Method", self.method_box)
        self.layer_box = QComboBox()
        self.layer_box.setToolTip("The convolutional node whose feature maps Grad-CAM weighs (the last one sees "
                                  "the most, the first one the finest detail)")
        form.addRow("Layer", self.layer_box)
        c.addLayout(form)
        self.method_help = QLabel("")
        self.method_help.setWordWrap(True)
        self.method_help.setStyleSheet("color: gray;")
        c.addWidget(self.method_help)
        group = QGroupBox("Options")
        gl = QVBoxLayout(group)
        gl.setContentsMargins(4, 4, 4, 4)
        self.options = OptionsForm()
        gl.addWidget(self.options)
        c.addWidget(group)
        self.run_button = QPushButton("Explain")
        self.run_button.setToolTip("Compute the map for this sample and target")
        c.addWidget(self.run_button)
        c.addStretch(1)
        self.view = AttributionView()
        row.addWidget(self.view, 1)
        self.method_box.currentIndexChanged.connect(self._method_changed)
        self.run_button.clicked.connect(lambda: self.run_attribution())
        return page

    def _importance_page(self) -> QWidget:
        page = QWidget()
        row = QHBoxLayout(page)
        row.setContentsMargins(0, 2, 0, 0)
        _box, c = _controls(row)
        form = QFormLayout()
        self.importance_kind = QComboBox()
        self.importance_kind.addItem("Permutation importance", "permutation")
        self.importance_kind.addItem("Mean |SHAP value|", "mean_abs_shap")
        self.importance_kind.setToolTip("Permutation: how much the score drops when one column is shuffled. "
                                        "Mean |SHAP|: the average size of each feature's KernelSHAP share.")
        form.addRow("Measure", self.importance_kind)
        self.repeats_box = QSpinBox()
        self.repeats_box.setRange(1, 100)
        self.repeats_box.setValue(10)
        self.repeats_box.setToolTip("Permutation: shuffles per column (the error bars are their spread)")
        form.addRow("Repeats", self.repeats_box)
        self.rows_box = QSpinBox()
        self.rows_box.setRange(5, 1000)
        self.rows_box.setValue(50)
        self.rows_box.setToolTip("Mean |SHAP|: how many rows of the split are explained and averaged")
        form.addRow("Rows", self.rows_box)
        c.addLayout(form)
        self.importance_button = QPushButton("Compute importance")
        c.addWidget(self.importance_button)
        c.addStretch(1)
        right = QWidget()
        rc = QVBoxLayout(right)
        rc.setContentsMargins(0, 0, 0, 0)
        self.importance_caption = QLabel("")
        self.importance_caption.setWordWrap(True)
        rc.addWidget(self.importance_caption)
        self.importance_bars = FeatureBars()
        rc.addWidget(self.importance_bars, 1)
        row.addWidget(right, 1)
        self.importance_button.clicked.connect(self.run_importance)
        self.importance_kind.currentIndexChanged.connect(self._importance_kind_changed)
        self._importance_kind_changed()
        return page

    def _sanity_page(self) -> QWidget:
        page = QWidget()
        row = QHBoxLayout(page)
        row.setContentsMargins(0, 2, 0, 0)
        _box, c = _controls(row, 190)  # check boxes only: the grid gets the room
        c.addWidget(QLabel("Methods to check"))
        self.sanity_checks: dict[str, QCheckBox] = {}
        for name in SANITY_METHODS:
            box = QCheckBox(name)
            box.setChecked(name in SANITY_DEFAULT)
            self.sanity_checks[name] = box
            c.addWidget(box)
        self.sanity_button = QPushButton("Run the check")
        self.sanity_button.setToolTip("Randomise the layers one by one from the output side and recompute each "
                                      "method's map for this sample (Adebayo et al. 2018)")
        c.addWidget(self.sanity_button)
        c.addStretch(1)
        self.sanity_grid = SanityGrid()
        row.addWidget(self.sanity_grid, 1)
        self.sanity_button.clicked.connect(self.run_sanity)
        return page

    def _actmax_page(self) -> QWidget:
        page = QWidget()
        row = QHBoxLayout(page)
        row.setContentsMargins(0, 2, 0, 0)
        _box, c = _controls(row)
        form = QFormLayout()
        self.actmax_what = QComboBox()
        self.actmax_what.addItem("a class's score", "class")
        self.actmax_what.addItem("a unit of a layer", "unit")
        form.addRow("Maximise", self.actmax_what)
        self.actmax_class = QComboBox()
        self.actmax_class_label = QLabel("Class")
        form.addRow(self.actmax_class_label, self.actmax_class)
        self.actmax_layer = QComboBox()
        form.addRow("Layer", self.actmax_layer)
        self.actmax_unit = QSpinBox()
        self.actmax_unit.setToolTip("Which channel (conv layers) or unit of the layer")
        form.addRow("Unit", self.actmax_unit)
        self.actmax_steps = QSpinBox()
        self.actmax_steps.setRange(10, 5000)
        self.actmax_steps.setValue(200)
        self.actmax_steps.setToolTip("Gradient-ascent steps on the input")
        form.addRow("Steps", self.actmax_steps)
        c.addLayout(form)
        self.actmax_button = QPushButton("Find the input")
        self.actmax_button.setToolTip("Start from faint noise and change the input step by step so the chosen "
                                      "score grows (kept smooth and within the data's range)")
        c.addWidget(self.actmax_button)
        c.addStretch(1)
        right = QWidget()
        rc = QVBoxLayout(right)
        rc.setContentsMargins(0, 0, 0, 0)
        self.actmax_caption = QLabel("")
        self.actmax_caption.setWordWrap(True)
        rc.addWidget(self.actmax_caption)
        self.actmax_plot = picture_plot()
        pi = self.actmax_plot.getPlotItem()
        self.actmax_img = pg.ImageItem(axisOrder="row-major")
        pi.addItem(self.actmax_img)
        self.actmax_bar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=pg.colormap.get("CET-L1"), width=12,
                                          interactive=False, colorMapMenu=False, label="input value")
        self.actmax_bar.setImageItem(self.actmax_img, insert_in=pi)
        self.actmax_bars = FeatureBars()
        rc.addWidget(self.actmax_plot, 1)
        rc.addWidget(self.actmax_bars, 1)
        self.actmax_bars.hide()
        row.addWidget(right, 1)
        self.actmax_what.currentIndexChanged.connect(self._actmax_what_changed)
        self.actmax_layer.currentIndexChanged.connect(self._actmax_layer_changed)
        self.actmax_button.clicked.connect(self.run_actmax)
        self._actmax_what_changed()
        return page

    # ------------------------------------------------------------------ the sample
    @property
    def dataset(self):
        return self.source.document.dataset

    def _fill_splits(self) -> None:
        ds = self.dataset
        current = self.split_box.currentData()
        self.split_box.blockSignals(True)
        self.split_box.clear()
        if ds is not None:
            for key in ("test", "val", "train"):
                n = int(ds.split(key)[0].shape[0])
                if n:
                    self.split_box.addItem(f"{SPLIT_TITLES[key]} ({n:,})", key)
        i = self.split_box.findData(current)
        self.split_box.setCurrentIndex(i if i >= 0 else 0)
        self.split_box.blockSignals(False)
        self._split_changed()
        self._fill_targets()

    def _split_changed(self, *_args) -> None:
        ds, split = self.dataset, self.split_box.currentData()
        n = int(ds.split(split)[0].shape[0]) if ds is not None and split else 0
        self.index_box.blockSignals(True)
        self.index_box.setRange(0, max(0, n - 1))
        self.index_box.blockSignals(False)
        self._sample_changed()

    def _fill_targets(self) -> None:
        ds = self.dataset
        self.target_box.blockSignals(True)
        self.target_box.clear()
        self.actmax_class.clear()
        if ds is not None and ds.task == "classification":
            self.target_box.addItem("the predicted class", None)
            for k, name in enumerate(ds.class_names):
                self.target_box.addItem(f"{k}: {name}", k)
                self.actmax_class.addItem(f"{k}: {name}", k)
        elif ds is not None:
            for k in range(int(ds.n_outputs)):
                self.target_box.addItem(f"output {k}", k)
                self.actmax_class.addItem(f"output {k}", k)
        # a regression model has outputs, not classes (its tab had offered "Class: output 0")
        classes = ds is None or ds.task == "classification"
        self.tabs.setTabText(self.actmax_index, "What a class looks for" if classes else "What raises an output")
        self.actmax_class_label.setText("Class" if classes else "Output")
        self.actmax_what.setItemText(0, "a class's score" if classes else "an output")
        self.target_box.blockSignals(False)

    def set_sample(self, split: str, index: int) -> bool:
        """Show sample ``index`` of ``split`` (from the evaluation panel); False if there is no such sample."""
        i = self.split_box.findData(split)
        if i < 0:
            return False
        self.split_box.setCurrentIndex(i)
        if not 0 <= index <= self.index_box.maximum():
            return False
        self.index_box.setValue(int(index))
        self.target_box.setCurrentIndex(0)
        self._sample_changed()
        return True

    def sample(self):
        """(split, index, x) of the chosen sample, or None."""
        ds, split = self.dataset, self.split_box.currentData()
        if ds is None or not split:
            return None
        x = ds.split(split)[0]
        i = self.index_box.value()
        if not 0 <= i < x.shape[0]:
            return None
        return split, i, x[i]

    def _sample_changed(self) -> None:
        s = self.sample()
        ds = self.dataset
        self.preview.clear()
        if s is None:
            self.sample_label.setText("no samples in this split" if ds is not None else "")
            return
        split, i, x = s
        y = ds.split(split)[1][i]
        if ds.task == "classification":
            k = int(y)
            truth = f"true class: <b>{ds.class_names[k] if k < len(ds.class_names) else k}</b>"
        else:
            truth = "actual: " + ", ".join(f"{float(v):.4g}" for v in np.atleast_1d(y.numpy()))
        self.sample_label.setText(truth)
        if len(ds.input_shape) == 3:
            img = display_array(ds, x)
            self.preview.setPixmap(pixmap(image_rgb8(img, natural_range(img)), 32))

    def target(self):
        return self.target_box.currentData()

    def target_name(self, target: int) -> str:
        ds = self.dataset
        if ds is not None and ds.task == "classification" and 0 <= target < len(ds.class_names):
            return str(ds.class_names[target])
        return f"output {target}"

    # ------------------------------------------------------------------ the model
    @Slot(str, bool)
    def _on_model_changed(self, reason: str, auto: bool) -> None:
        self.runner.cancel()
        self.info = self.info_spec = None
        if not self.source.same_project:  # another project, data or graph: an earlier request means nothing
            self.last = None
        rerun = self.last if (self.last is not None and self.last.kind == "attribution"
                              and not self.last.params.get("long")) else None
        self._clear_results(reason, rerun is not None and auto)
        self._rerun = rerun if auto else None
        self._pending = True
        self._show_unavailable_or_wait()
        self._debounce.start()

    def came_into_sight(self) -> None:
        if self._pending:
            self._debounce.start()

    def _in_sight(self) -> bool:
        return self.isVisible() and not self.visibleRegion().isEmpty()

    def _prepare_if_in_sight(self) -> None:
        if self._pending and self._in_sight():
            self.prepare()

    def _show_unavailable_or_wait(self) -> bool:
        """The whole panel says why there is nothing to explain; True when a model is there."""
        spec = self.source.spec()
        if isinstance(spec, str):
            self.tabs.hide()
            self.message.setText(spec)
            self.message.show()
            self._update_buttons()
            return False
        self.message.hide()
        self.tabs.show()
        self._update_buttons()
        return True

    def prepare(self) -> bool:
        """Find out which methods, layers and units the model has (on the job thread)."""
        self._pending = False
        if not self._show_unavailable_or_wait():
            return False
        spec = self.source.spec()
        cache = self.cache

        def work(cancel, progress):
            import torch

            from engine.explain import layer_choices, methods_for
            from engine.explain.base import subject
            from engine.explain.taps import output_shapes

            ready = cache.get(spec)
            # Loading Captum and scikit-learn's solvers holds the interpreter for a moment (their C
            # parts initialise); better now, as the panel opens, than halfway through the first map.
            for name in ("captum.attr", "sklearn.linear_model"):
                importlib.import_module(name)

            subj = subject(ready)
            probe = torch.zeros((1, *subj.input_shape))
            units = {n: int(s[0]) for n, s in output_shapes(subj, probe).items() if s}
            return ModelInfo(methods_for(ready), layer_choices(ready), units, tuple(spec.dataset.input_shape))

        self.runner.submit("Looking at the model", work, ("prepare", spec))
        return True

    def _apply_info(self, spec: ModelSpec, info: ModelInfo) -> None:
        self.info, self.info_spec = info, spec
        current = self.method_box.currentData()
        self.method_box.blockSignals(True)
        self.method_box.clear()
        model = self.method_box.model()
        first_ok = None
        for k, m in enumerate(info.methods):
            self.method_box.addItem(m["title"] + ("" if m["supported"] else "  (does not fit)"), m["name"])
            item = model.item(k) if isinstance(model, QStandardItemModel) else None
            if item is not None:
                item.setToolTip(m["description"] if m["supported"] else m["reason"])
                if not m["supported"]:
                    item.setEnabled(False)
            if m["supported"] and first_ok is None:
                first_ok = k
        keep = self.method_box.findData(current)
        if keep < 0 or not info.methods[keep]["supported"]:
            keep = first_ok if first_ok is not None else 0
        self.method_box.setCurrentIndex(keep)
        self.method_box.blockSignals(False)
        self._method_changed()
        for box in (self.layer_box, self.actmax_layer):
            was = box.currentText()
            box.blockSignals(True)
            box.clear()
            names = info.layers if box is self.layer_box else list(info.units)
            box.addItems(names)
            if was in names:
                box.setCurrentText(was)
            elif box is self.layer_box and names:
                box.setCurrentIndex(len(names) - 1)  # the last spatial layer: Grad-CAM's usual choice
            box.blockSignals(False)
        self._actmax_layer_changed()
        supported = {m["name"] for m in info.methods if m["supported"]}
        for name, box in self.sanity_checks.items():
            method = next((m for m in info.methods if m["name"] == name), None)
            box.setText(method["title"] if method else name)
            box.setEnabled(name in supported)
            box.setToolTip("" if name in supported else (method or {}).get("reason", ""))
            if name not in supported:
                box.setChecked(False)
        tabular = len(info.input_shape) == 1
        self.tabs.setTabEnabled(self.importance_index, tabular)
        self.tabs.setTabToolTip(self.importance_index, "" if tabular else
                                "Feature importance is for tabular data (one value per named column); for "
                                "images use an attribution map.")
        self._update_buttons()
        rerun, self._rerun = self._rerun, None
        if rerun is not None:
            self.run_attribution(rerun.params)

    def _title(self, method: str) -> str:
        """A method's title ("Integrated Gradients") from the model's method list, or its name."""
        return next((m["title"] for m in (self.info.methods if self.info else []) if m["name"] == method), method)

    def _method(self) -> dict | None:
        if self.info is None:
            return None
        name = self.method_box.currentData()
        return next((m for m in self.info.methods if m["name"] == name), None)

    def _method_changed(self, *_args) -> None:
        m = self._method()
        if m is None:
            self.options.set_schema([])
            self.method_help.setText("")
            return
        self.options.set_schema(fitting_options(m["options"], self.info.input_shape))
        self.method_help.setText(m["description"] if m["supported"] else m["reason"])
        self.layer_box.setEnabled(bool(m["needs_layer"]))
        self.method_form.setRowVisible(self.layer_box, bool(m["needs_layer"]))  # only Grad-CAM's have one
        self._update_buttons()

    def _update_buttons(self, *_args) -> None:
        ready = self.info is not None and self.source.is_current(self.info_spec)
        m = self._method()
        self.run_button.setEnabled(ready and m is not None and m["supported"])
        self.importance_button.setEnabled(ready and self.info is not None and len(self.info.input_shape) == 1)
        self.sanity_button.setEnabled(ready)
        self.actmax_button.setEnabled(ready)

    def _importance_kind_changed(self, *_args) -> None:
        perm = self.importance_kind.currentData() == "permutation"
        self.repeats_box.setEnabled(perm)
        self.rows_box.setEnabled(not perm)

    def _actmax_what_changed(self, *_args) -> None:
        unit = self.actmax_what.currentData() == "unit"
        self.actmax_class.setEnabled(not unit)
        self.actmax_layer.setEnabled(unit)
        self.actmax_unit.setEnabled(unit)

    def _actmax_layer_changed(self, *_args) -> None:
        n = (self.info.units.get(self.actmax_layer.currentText(), 1) if self.info is not None else 1)
        self.actmax_unit.setRange(0, max(0, n - 1))

    # ------------------------------------------------------------------ jobs
    def _spec_or_say(self) -> ModelSpec | None:
        spec = self.source.spec()
        if isinstance(spec, str):
            self._show_unavailable_or_wait()
            return None
        return spec

    def run_attribution(self, params: dict | None = None) -> bool:
        """Explain the chosen sample with the chosen method (``params`` replays an earlier request)."""
        spec = self._spec_or_say()
        s = self.sample()
        if spec is None or s is None:
            return False
        split, index, x = s
        if params is None:
            m = self._method()
            if m is None or not m["supported"]:
                return False
            params = {"method": m["name"], "options": self.options.values(),
                      "layer": self.layer_box.currentText() if m["needs_layer"] and self.layer_box.count() else None,
                      "target": self.target(), "long": bool(m["long"])}
        params = {**params, "split": split, "index": index}
        cache = self.cache
        two_d = tuple(spec.dataset.input_shape) == (2,) and spec.dataset.task == "classification"

        def work(cancel, progress):
            import torch

            from engine.explain import attribute, gradient_field
            from engine.explain.base import class_probabilities

            ready = cache.get(spec)
            with torch.no_grad():
                out = ready.module(x.unsqueeze(0).to(ready.device)).float().cpu()
            probs = class_probabilities(out)[0].numpy() if spec.dataset.task == "classification" else None
            a = attribute(ready, x, params["target"], params["method"], layer=params["layer"], cancel=cancel,
                          progress=(lambda f: progress(0.9 * f)) if two_d else progress, **params["options"])
            outcome = AttributionOutcome(a, probs, out[0].numpy())
            if two_d:
                k = int(a.target) if out.shape[1] > 1 else 1
                outcome.gradient_field = gradient_field(ready, n=FIELD_GRID, target=k, cancel=cancel)
                pts, labels = spec.dataset.x_test, spec.dataset.y_test
                if pts.shape[0] == 0:
                    pts, labels = spec.dataset.x_val, spec.dataset.y_val
                outcome.points, outcome.labels = pts[:500].numpy(), labels[:500].numpy()
            return outcome

        self.runner.submit(f"{self._title(params['method'])} for sample {index}", work,
                           ("attribution", spec, Request("attribution", params)))
        return True

    def run_importance(self) -> bool:
        spec = self._spec_or_say()
        if spec is None:
            return False
        kind = self.importance_kind.currentData()
        repeats, rows = self.repeats_box.value(), self.rows_box.value()
        cache = self.cache

        def work(cancel, progress):
            from engine.explain import mean_abs_shap, permutation_importance

            ready = cache.get(spec)
            if kind == "permutation":
                return permutation_importance(ready, split="test", n_repeats=repeats, cancel=cancel, progress=progress)
            return mean_abs_shap(ready, split="test", n_rows=rows, cancel=cancel, progress=progress)

        what = "Permutation importance" if kind == "permutation" else "Mean |SHAP|"
        self.runner.submit(what, work, ("importance", spec, Request("importance", {"kind": kind})))
        return True

    def sanity_methods(self) -> list[str]:
        return [n for n, box in self.sanity_checks.items() if box.isChecked() and box.isEnabled()]

    def run_sanity(self) -> bool:
        spec = self._spec_or_say()
        s = self.sample()
        methods = self.sanity_methods()
        if spec is None or s is None:
            return False
        if not methods:
            self.job_bar.say("Tick at least one method to check.", error=True)
            return False
        split, index, x = s
        target = self.target()
        layer = self.layer_box.currentText() if "gradcam" in methods and self.layer_box.count() else None
        cache = self.cache

        def work(cancel, progress):
            from engine.explain import sanity_check

            ready = cache.get(spec)
            return sanity_check(ready, x, target, methods, layer=layer, cancel=cancel, progress=progress)

        self.runner.submit(f"Sanity check of {len(methods)} method{'s' if len(methods) > 1 else ''}", work,
                           ("sanity", spec, Request("sanity", {"methods": methods, "split": split, "index": index})))
        return True

    def run_actmax(self) -> bool:
        spec = self._spec_or_say()
        if spec is None:
            return False
        unit_mode = self.actmax_what.currentData() == "unit"
        kwargs = ({"layer": self.actmax_layer.currentText(), "unit": self.actmax_unit.value()} if unit_mode
                  else {"target": self.actmax_class.currentData() if self.actmax_class.count() else 0})
        steps = self.actmax_steps.value()
        cache = self.cache

        def work(cancel, progress):
            from engine.explain import activation_maximization

            ready = cache.get(spec)
            return activation_maximization(ready, steps=steps, cancel=cancel, progress=progress, **kwargs)

        self.runner.submit("Activation maximisation", work, ("actmax", spec, Request("actmax", dict(kwargs))))
        return True

    # ------------------------------------------------------------------ outcomes
    def _on_finished(self, tag, result) -> None:
        kind, spec = tag[0], tag[1]
        if not self.runner.busy:  # (a job waiting to start keeps its progress bar)
            self.job_bar.done("")
        if not self.source.is_current(spec):  # an older model's: the change already cleared and said why
            return
        if kind == "prepare":
            self._apply_info(spec, result)
            return
        request = tag[2]
        self.last = request
        if kind == "attribution":
            self._show_attribution(request, result)
        elif kind == "importance":
            self._show_importance(result)
        elif kind == "sanity":
            self._show_sanity(request, result)
        elif kind == "actmax":
            self._show_actmax(result)

    def _on_failed(self, tag, sentence: str) -> None:
        if not self.runner.busy:
            self.job_bar.done(sentence if self.source.is_current(tag[1]) else "", error=True)

    def _on_cancelled(self, _tag) -> None:
        if not self.runner.busy:
            self.job_bar.done("Cancelled; nothing changed.")

    def _clear_results(self, reason: str = "", rerunning: bool = False) -> None:
        """Every page back to its hint; ``reason`` says why what was there went."""
        self.outcome = self.importance = self.sanity = self.actmax = None
        lead = f"{reason} " if reason else ""
        again = "Explaining the same sample again for this model…"
        self.view.clear(lead + (again if rerunning else HINTS["attribution"]))
        self.importance_caption.setText(lead + HINTS["importance"])
        self.importance_bars.clear()
        self.sanity_grid.clear(lead + HINTS["sanity"])
        self.actmax_caption.setText(lead + HINTS["actmax"])
        self.actmax_img.clear()
        self.actmax_bars.clear()

    def _show_attribution(self, request: Request, outcome: AttributionOutcome) -> None:
        self.outcome = outcome
        a = outcome.attribution
        ds = self.source.document.dataset
        p = request.params
        split, index = p["split"], p["index"]
        x = ds.split(split)[0][index]
        target = int(a.target)
        title = self._title(a.method)
        name = self.target_name(target)
        bits = [f"<b>{title}</b> of sample {index} ({SPLIT_TITLES[split]} split) for <b>{name}</b>"]
        y = ds.split(split)[1][index]
        if outcome.probabilities is not None:
            probs = outcome.probabilities
            pred = int(np.argmax(probs))
            bits.append(f"predicted {self.target_name(pred)} (p = {probs[pred]:.2f}), true {self.target_name(int(y))}")
            if p.get("target") is None:
                bits[0] += " (the predicted class)"
        else:
            actual = float(np.atleast_1d(y.numpy())[target])
            bits.append(f"output {float(outcome.output[target]):.4g}, actual {actual:.4g}")
        if a.layer:
            bits.append(f"layer {a.layer}")
        caption = " · ".join(bits) + "."
        if a.delta is not None:
            total = float(np.sum(a.values))
            change = total - float(a.delta)
            rel = float(a.relative_delta) if a.relative_delta is not None else float("nan")
            caption += (f"<br>Completeness: the map adds up to {total:.4g}; the score rose by {change:.4g} from the "
                        f"baseline. Delta {float(a.delta):.2g} ({100 * rel:.2f} %"
                        + (": close enough" if rel <= 0.05 else ": large; use more steps") + ").")
        if not np.any(np.asarray(a.values)):
            caption += ("<br><b>The map is zero everywhere.</b> "
                        + (f"At {a.layer}, no feature map carries positive evidence for {name} on average; "
                           "untick 'positive only' to see the negative evidence, or try another layer, Saliency "
                           "or Integrated Gradients." if a.method == "gradcam" else
                           "Nothing in this input moves the score (a dead or saturated path); try another method."))
        shape = tuple(ds.input_shape)
        if len(shape) == 3:
            self.view.show_image(display_array(ds, x), a.values, name, caption)
        else:
            names = list(a.feature_names) or [f"x{j}" for j in range(int(np.prod(shape)))]
            raw = display_array(ds, x).reshape(-1)
            values = np.asarray(a.values, dtype=np.float64).reshape(-1)
            if outcome.gradient_field is not None:
                n_classes = int(ds.n_outputs)
                low = (f"{self.target_name(1 - target)}'s colour" if n_classes == 2 else "grey")
                caption += (f"<br>Left: p({name}) over the input plane (in {name}'s colour where high, {low} "
                            "where low); the arrows point where it rises fastest, the black line is p = 0.5; the "
                            "star is this sample.")
                field, points = outcome.gradient_field, outcome.points
                norm = getattr(ds, "normalization", None)
                if norm is not None:  # drawn in the data's units, as the decision boundary is
                    field = field.in_units(norm.units(2))
                    points = display_array(ds, points, batch=True) if points is not None else None
                self.view.show_field(field, raw, names, values, raw, name, caption, points, outcome.labels,
                                     target, n_classes)
            else:
                self.view.show_bars(names, values, raw, name, caption)
        self.attributionRun.emit(a.method)

    def _show_importance(self, fi) -> None:
        self.importance = fi
        if fi.kind == "permutation":
            what = "accuracy" if fi.scoring == "accuracy" else "R²"
            axis = f"{what} lost"
            caption = (f"<b>Permutation importance</b> on the {SPLIT_TITLES.get(fi.split_used, fi.split_used)} split: "
                       f"how much the {what} ({fi.baseline_score:.3f} unshuffled) falls when one column is shuffled, "
                       f"over {fi.details.get('n_repeats', '?')} shuffles; the whiskers are ±1 standard deviation. "
                       "Near zero or below: the model does not rely on that column.")
        else:
            axis = fi.scoring
            caption = (f"<b>Mean |SHAP value|</b> over {len(fi.details.get('rows', []))} rows of the "
                       f"{SPLIT_TITLES.get(fi.split_used, fi.split_used)} split: the average size of each feature's "
                       "share in the predicted class's probability; the whiskers are ±1 standard deviation.")
        if fi.note:
            caption += f" <i>{fi.note}</i>"
        left = self.importance_bars.set_bars(list(fi.names), fi.importance, fi.std, x_label=axis, order="value",
                                             colours=[(31, 119, 180)] * len(fi.names))
        if left:
            caption += f" The {left} least important features are not drawn."
        self.importance_caption.setText(caption)

    def _show_sanity(self, request: Request, result) -> None:
        self.sanity = result
        titles = {name: self._title(name) for name in result.methods}
        self.sanity_grid.set_result(result, titles, self.target_name(int(result.target)))
        self.sanityCheckRun.emit(list(result.methods))

    def _show_actmax(self, am) -> None:
        self.actmax = am
        ds = self.source.document.dataset
        lo, hi = am.data_range
        caption = (f"What <b>{am.objective}</b> responds to most: an input optimised to raise it (from "
                   f"{am.start_value:.3g} to {am.final_value:.3g} in {len(am.trace)} steps), kept smooth and within "
                   "the data's range. It shows what the model looks for, not a real sample.")
        self.actmax_caption.setText(caption)
        image = np.asarray(am.image)
        if image.ndim == 3:
            self.actmax_bars.hide()
            self.actmax_plot.show()
            shown = display_array(ds, am.image)
            plane = shown[0] if shown.shape[0] == 1 else shown.mean(0)
            lo, hi = float(plane.min()), float(plane.max())
            self.actmax_img.setImage(plane, autoLevels=False, levels=(lo, hi if hi > lo else lo + 1))
            self.actmax_bar.setLevels((lo, hi if hi > lo else lo + 1))
            self.actmax_plot.getPlotItem().setRange(xRange=(0, plane.shape[1]), yRange=(0, plane.shape[0]),
                                                    padding=0.0)
        else:
            self.actmax_plot.hide()
            self.actmax_bars.show()
            raw = display_array(ds, am.image).reshape(-1)
            names = list(ds.feature_names) if len(ds.feature_names) == raw.size else [f"x{j}" for j in range(raw.size)]
            self.actmax_bars.set_bars(names, am.image.reshape(-1), x_label="input value (standardised)",
                                      order="value", colours=[(31, 119, 180)] * raw.size)

