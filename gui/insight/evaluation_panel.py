"""The Evaluation panel: how the model does on held-out data, and which samples it gets wrong.

It evaluates the model the ``ModelSource`` names (the current weights, or the timeline's epoch)
with ``engine.explain.evaluate`` on a worker thread: after a run ends, when the timeline is
scrubbed (debounced: dragging across 30 epochs evaluates where the slider stops), when the
panel comes into sight with something new to show, and when the user presses Evaluate.  What it
shows always belongs to that model: any change clears it first and says why.

Tabs: Summary (the split's figures and the per-class table), Confusion matrix (click a cell to
list its samples, or list the most confidently wrong ones), Curves (ROC for two classes, the
reliability diagram); regression: Summary and Predicted vs actual (with the residuals).
"""
from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QHeaderView, QLabel, QPushButton, QSizePolicy, QTableWidget,
                               QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget)

from gui.insight.confusion_view import ConfusionMatrixView
from gui.insight.curves import ClassificationCurves, RegressionPlots
from gui.insight.jobs import JobRunner
from gui.insight.model_source import ModelCache, ModelSource, ModelSpec
from gui.insight.sample_list import SampleList
from gui.insight.widgets import JobBar, follow_theme, format_fraction, percent, restyle_plots

SPLITS = (("test", "test split"), ("val", "validation split"), ("train", "training split"))
SPLIT_TITLES = {"test": "test", "val": "validation", "train": "training"}
DEBOUNCE_MS = 250  # a slider dragged across the timeline evaluates where it stops


class EvaluationPanel(QWidget):
    evaluated = Signal(object)  # the engine's Evaluation now shown
    explainRequested = Signal(str, int)  # (split, sample index): show this sample in the explain panel

    def __init__(self, source: ModelSource, parent: QWidget | None = None):
        super().__init__(parent)
        self.source = source
        self.runner = JobRunner("layerlab-evaluate", self)
        self.cache = ModelCache()
        self.evaluation = None  # engine.explain.Evaluation shown now
        self.spec: ModelSpec | None = None  # the model it describes
        self._pending = True  # something new to show once the panel is in sight

        col = QVBoxLayout(self)
        col.setContentsMargins(4, 4, 4, 4)
        col.setSpacing(3)
        top = QHBoxLayout()
        self.model_label = QLabel("")
        self.model_label.setWordWrap(True)
        top.addWidget(self.model_label, 1)
        self.split_box = QComboBox()
        for key, text in SPLITS:
            self.split_box.addItem(text, key)
        self.split_box.setToolTip("The data the model is evaluated on. The test split is data it never saw while "
                                  "training; without one, the validation split is used and labelled so.")
        top.addWidget(self.split_box)
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.setToolTip("Evaluate the model the timeline shows (the current weights, or a "
                                        "scrubbed epoch)")
        top.addWidget(self.evaluate_button)
        self.job_bar = JobBar()
        top.addWidget(self.job_bar)
        col.addLayout(top)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        # summary
        summary = QWidget()
        sc = QVBoxLayout(summary)
        sc.setContentsMargins(2, 2, 2, 2)
        self.figures_label = QLabel("")
        self.figures_label.setWordWrap(True)
        self.figures_label.setTextFormat(Qt.RichText)
        sc.addWidget(self.figures_label)
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        sc.addWidget(self.table, 1)
        self.tabs.addTab(summary, "Summary")
        # confusion matrix and its samples
        self.confusion_page = QWidget()
        page_row = QHBoxLayout(self.confusion_page)
        page_row.setContentsMargins(0, 0, 0, 0)
        self.confusion = ConfusionMatrixView()
        page_row.addWidget(self.confusion, 12)  # the matrix gets the larger share
        right = QWidget()
        rc = QVBoxLayout(right)
        rc.setContentsMargins(2, 0, 0, 0)
        rc.setSpacing(2)
        row = QHBoxLayout()
        self.wrong_button = QPushButton("Most confidently wrong")
        self.wrong_button.setToolTip("The mistakes the model was surest about: often mislabelled data, or the "
                                     "classes it confuses")
        row.addWidget(self.wrong_button)
        rc.addLayout(row)
        self.samples = SampleList()
        rc.addWidget(self.samples, 1)
        right.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        page_row.addWidget(right, 8)
        self.confusion_index = self.tabs.addTab(self.confusion_page, "Confusion matrix")
        self.curves = ClassificationCurves()
        self.curves_index = self.tabs.addTab(self.curves, "ROC and calibration")
        self.regression = RegressionPlots()
        self.regression_index = self.tabs.addTab(self.regression, "Predicted vs actual")
        # the counts / row % switch sits in the tab bar's corner: no height taken from the matrix
        corner = QWidget()
        cr = QHBoxLayout(corner)
        cr.setContentsMargins(0, 0, 2, 0)
        cr.addWidget(QLabel("Matrix"))
        cr.addWidget(self.confusion.controls)
        self.tabs.setCornerWidget(corner, Qt.TopRightCorner)
        self.tabs.currentChanged.connect(lambda i: corner.setVisible(i == self.confusion_index))
        corner.setVisible(self.tabs.currentIndex() == self.confusion_index)
        col.addWidget(self.tabs, 1)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: gray; padding: 8px;")
        self.message.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        col.addWidget(self.message, 1)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._auto_evaluate)
        self.evaluate_button.clicked.connect(self.evaluate)
        self._chosen_split = SPLITS[0][0]
        self.split_box.activated.connect(self._split_chosen)
        self.job_bar.cancelClicked.connect(self.cancel)
        self.confusion.cellClicked.connect(self.show_cell)
        self.wrong_button.clicked.connect(self.show_confidently_wrong)
        self.samples.explainRequested.connect(self._explain)
        self.runner.started.connect(self.job_bar.running)
        self.runner.progress.connect(self.job_bar.set_progress)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)
        source.changed.connect(self._on_model_changed)
        source.document.datasetChanged.connect(lambda _ds: self._offer_splits())
        self._offer_splits()
        follow_theme(self)
        self._show_nothing(self._idle_sentence())

    def _on_theme(self, t) -> None:
        restyle_plots(self, t)

    def _split_chosen(self, _index: int) -> None:
        self._chosen_split = self.split_box.currentData()
        self.evaluate()

    def _offer_splits(self) -> None:
        """Only the splits the data has: with no test split, "test split" stayed selected while the
        figures were the validation split's."""
        ds = self.source.document.dataset
        model = self.split_box.model()
        for i, (key, text) in enumerate(SPLITS):
            has = ds is None or int(ds.split(key)[0].shape[0]) > 0  # as the Explain panel counts them
            model.item(i).setEnabled(has)
            model.item(i).setText(text if has else f"{text} (none in this data)")
        chosen = next(i for i, (key, _t) in enumerate(SPLITS) if key == self._chosen_split)
        if model.item(chosen).isEnabled():  # the person's choice, once the data has it again
            self.split_box.setCurrentIndex(chosen)
        elif not model.item(self.split_box.currentIndex()).isEnabled():
            self.split_box.setCurrentIndex(next((i for i in range(len(SPLITS)) if model.item(i).isEnabled()), 0))

    # ------------------------------------------------------------------ when to evaluate
    def _idle_sentence(self) -> str:
        spec = self.source.spec()
        if isinstance(spec, str):
            return spec
        return f"Press Evaluate to evaluate {spec.label} on held-out data."

    @Slot(str, bool)
    def _on_model_changed(self, reason: str, auto: bool) -> None:
        """Another model: its results go at once (visible or not), with the reason."""
        self.runner.cancel()
        self._debounce.stop()
        had = self.evaluation is not None
        spec = self.source.spec()
        if isinstance(spec, str):
            self._show_nothing(spec if not had else f"{reason} {spec}")
            self._pending = False
            return
        if auto:
            self._pending = True
            self._show_nothing(f"{reason} Evaluating {spec.label}…" if self._in_sight() else
                               f"{reason} The evaluation of {spec.label} runs when this panel is shown.")
            self._debounce.start()
        else:
            self._pending = False
            self._show_nothing(f"{reason} Press Evaluate to evaluate {spec.label}.")

    def came_into_sight(self) -> None:
        """The dock was raised or shown: evaluate what changed while it was hidden."""
        if self._pending and not self.runner.busy:
            self._debounce.start()

    def _in_sight(self) -> bool:
        """Visible on screen (a background dock tab is "visible" to Qt, with an empty region)."""
        return self.isVisible() and not self.visibleRegion().isEmpty()

    def _auto_evaluate(self) -> None:
        if self._pending and self._in_sight():
            self.evaluate()

    @Slot()
    def evaluate(self) -> bool:
        """Evaluate the model the source names on the chosen split; False when there is none."""
        self._pending = False
        self._debounce.stop()
        spec = self.source.spec()
        if isinstance(spec, str):
            self.runner.cancel()
            self._show_nothing(spec)
            return False
        split = self.split_box.currentData()
        cache = self.cache

        def work(cancel, progress):
            from engine.explain import evaluate

            ready = cache.get(spec)
            return evaluate(ready, split=split, cancel=cancel, progress=progress)

        self.runner.submit(f"Evaluating {spec.label} on the {SPLIT_TITLES[split]} split", work, (spec, split))
        return True

    @Slot()
    def cancel(self) -> None:
        self.runner.cancel()

    # ------------------------------------------------------------------ outcomes
    def _on_finished(self, tag, result) -> None:
        spec, _split = tag
        if not self.runner.busy:  # (a job waiting to start keeps its progress bar)
            self.job_bar.done("")
        if self.source.is_current(spec):  # else the model changed while it ran: already cleared, and said why
            self.show_evaluation(spec, result)

    def _on_failed(self, tag, sentence: str) -> None:
        spec, _split = tag
        if not self.runner.busy:
            self.job_bar.done("")
        if self.source.is_current(spec):
            self._show_nothing(sentence, error=True)

    def _on_cancelled(self, tag) -> None:
        if not self.runner.busy:
            self.job_bar.done("Cancelled." if self.evaluation is None else "")

    # ------------------------------------------------------------------ drawing
    def _show_nothing(self, text: str, error: bool = False) -> None:
        self.evaluation = None
        self.spec = None
        self.tabs.hide()
        self.message.setText(text)
        self.message.setStyleSheet(("color: #c62828;" if error else "color: gray;") + " padding: 8px;")
        self.message.show()
        self.model_label.setText("")
        self.figures_label.setText("")
        self.table.setRowCount(0)
        self.confusion.clear()
        self.samples.clear("")
        self.curves.clear()
        self.regression.clear()

    def show_evaluation(self, spec: ModelSpec, ev) -> None:
        self.evaluation, self.spec = ev, spec
        self.message.hide()
        self.tabs.show()
        where = f"the {SPLIT_TITLES[ev.split_used]} split ({ev.n_samples:,} samples)"
        headline = (f": accuracy <b>{percent(ev.accuracy)}</b>" if ev.task == "classification" else
                    f": R² <b>{'–' if ev.r2 is None else f'{ev.r2:.3f}'}</b>")
        self.model_label.setText(f"<b>{spec.label.capitalize()}</b> on {where}{headline}"
                                 + (f"<br><i>{ev.note}</i>" if ev.note else ""))
        classification = ev.task == "classification"
        self.tabs.setTabVisible(self.confusion_index, classification)
        self.tabs.setTabVisible(self.curves_index, classification)
        self.tabs.setTabVisible(self.regression_index, not classification)
        if classification:
            self._show_classification(ev)
        else:
            self._show_regression(ev)
        self.evaluated.emit(ev)

    def _show_classification(self, ev) -> None:
        bits = [f"Accuracy <b>{percent(ev.accuracy)}</b>",
                f"macro F1 {format_fraction(ev.macro_avg['f1'])}",
                f"weighted F1 {format_fraction(ev.weighted_avg['f1'])}"]
        if ev.roc is not None and ev.roc.get("auc") is not None:
            bits.append(f"ROC AUC {ev.roc['auc']:.3f}")
        elif ev.roc_auc_ovr is not None:
            bits.append(f"one-vs-rest AUC {ev.roc_auc_ovr:.3f}")
        if ev.reliability:
            bits.append(f"calibration error (ECE) {ev.reliability['ece']:.3f}")
        self.figures_label.setText(" · ".join(bits))
        headers = ["class", "precision", "recall", "F1", "support"]
        rows = [(r["name"], r) for r in ev.per_class]
        rows += [("macro average", ev.macro_avg), ("weighted average", ev.weighted_avg)]
        self._fill_table(headers, [[name, format_fraction(r["precision"]), format_fraction(r["recall"]),
                                    format_fraction(r["f1"]), f"{r['support']:,}"] for name, r in rows],
                         bold_from=len(ev.per_class))
        self.confusion.set_matrix(ev.confusion_matrix, ev.confusion_normalized, ev.class_names)

        self.samples.clear("Click a cell of the matrix to list the samples in it, or press "
                           "'Most confidently wrong'.")
        self.curves.set_evaluation(ev)

    def _show_regression(self, ev) -> None:
        r2 = "–" if ev.r2 is None else f"{ev.r2:.3f}"
        self.figures_label.setText(f"MSE <b>{ev.mse:.4g}</b> · MAE {ev.mae:.4g} · R² <b>{r2}</b> "
                                   "(1 is perfect, 0 is no better than predicting the mean)")
        headers = ["target", "MSE", "MAE", "R²"]
        rows = [[f"output {j}", f"{t['mse']:.4g}", f"{t['mae']:.4g}", "–" if t["r2"] is None else f"{t['r2']:.3f}"]
                for j, t in enumerate(ev.per_target)]
        self._fill_table(headers, rows)
        self.regression.set_evaluation(ev)

    def _fill_table(self, headers: list[str], rows: list[list[str]], bold_from: int | None = None) -> None:
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(rows))
        for r, cells in enumerate(rows):
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c > 0:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                if bold_from is not None and r >= bold_from:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(r, c, item)

    # ------------------------------------------------------------------ samples
    @Slot(int, int)
    def show_cell(self, true: int, predicted: int) -> None:
        """List exactly the samples of confusion cell (``true``, ``predicted``)."""
        ev = self.evaluation
        if ev is None or ev.task != "classification":
            return
        self.confusion.select((true, predicted))
        names = ev.class_names
        indices = ev.samples_in_cell(true, predicted)
        what = "correct" if true == predicted else "mistaken"
        title = (f"<b>True {names[true]}, predicted {names[predicted]}</b>: {len(indices):,} {what} "
                 f"sample{'s' if len(indices) != 1 else ''} (p: the probability of {names[predicted]})")
        self.samples.show_samples(title, indices, ev, self.spec.dataset, "No sample fell in this cell.")

    @Slot()
    def show_confidently_wrong(self) -> None:
        ev = self.evaluation
        if ev is None or ev.task != "classification":
            return
        self.confusion.select(None)
        indices = [w["index"] for w in ev.confidently_wrong]
        self.samples.show_samples(f"<b>Most confidently wrong</b>: the {len(indices)} mistakes made with the highest "
                                  "probability (true → predicted)", indices, ev, self.spec.dataset,
                                  "The model made no mistakes on this split.")

    def _explain(self, index: int) -> None:
        if self.evaluation is not None:
            self.explainRequested.emit(self.evaluation.split_used, int(index))
