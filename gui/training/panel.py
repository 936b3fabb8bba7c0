"""The training panel: settings, run controls, progress, and the sentence of the last failure.

The panel only shows and collects; ``TrainingController`` decides.  Its settings round-trip
through ``settings()`` / ``set_settings()`` as a plain dict of ``TrainConfig`` keys (plus
``loss: "auto"``, resolved from the graph's Output node when a run starts).
"""
from __future__ import annotations

import math
import re

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout, QGroupBox,
                               QLabel, QProgressBar, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from engine.train_config import LOSSES, OPTIMIZERS, SCHEDULES
from gui.responsive_row import ResponsiveRow
from gui.wheel_guard import guard_wheel

DEFAULTS = {"device": "auto", "loss": "auto", "optimizer": "adam", "lr": 1e-3, "batch_size": 32, "epochs": 10,
            "schedule": "none", "seed": 0, "momentum": 0.9, "weight_decay": 0.0, "early_stopping_patience": 0}


def _listed(words: list[str]) -> str:
    """'seed', 'seed and batch size', 'seed, batch size and loss'."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def format_duration(seconds: float) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _number_text(value: float) -> str:
    """100,000 / 0.01 / 1e-7: how a limit reads in a sentence."""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return re.sub(r"e([+-])0*(\d)", lambda m: f"e{m.group(1).replace('+', '')}{m.group(2)}", f"{value:g}")


class _RangeRefusal:
    """Spin boxes that refuse a typed value outside their range with a sentence, never clamp it.

    Qt clamps a typed 1e6 to the maximum without a word (or swallows the key).  Here the text
    stays as typed until Enter or focus-out; then ``refused(sentence)`` is emitted and the box
    keeps its previous value.  ``setValue`` from code still clamps: see ``TrainingPanel.set_settings``.
    """

    label = "This setting"
    hint = ""  # e.g. typical values, appended to the sentence
    whole = False  # whole numbers only

    def parse(self, text: str) -> float | None:
        try:
            value = float(text.strip().replace(",", "").replace("_", ""))
        except ValueError:
            return None
        return value if math.isfinite(value) else None

    def in_range(self, value: float) -> bool:
        return self.minimum() <= value <= self.maximum() and (not self.whole or float(value).is_integer())

    def validate(self, text, pos):
        value = self.parse(text)
        if value is None or not self.in_range(value):
            return QValidator.Intermediate, text, pos  # not Acceptable: Qt would clamp it
        return QValidator.Acceptable, text, pos

    def fixup(self, text):
        # Qt calls this when Enter or focus-out meets a text validate() did not accept; the box
        # then goes back to its previous value (an empty field just does, without a word)
        if text.strip():
            self.refused.emit(self.refusal(text))
        return text

    def refusal(self, text: str) -> str:
        """The sentence for a typed ``text`` the box does not take: what, the allowed range, what stays."""
        value = self.parse(text)
        kept = f" It stays at {self.textFromValue(self.value())}."
        if value is None:
            return f"{self.label} must be a number; “{text.strip()}” is not one.{kept}"
        if self.whole and not float(value).is_integer():
            return f"{self.label} must be a whole number; got {text.strip()}.{kept}"
        return (f"{self.label} {text.strip()} is out of range: use {_number_text(self.minimum())} to "
                f"{_number_text(self.maximum())}{self.hint}.{kept}")


class _IntBox(_RangeRefusal, QSpinBox):
    refused = Signal(str)
    whole = True

    def __init__(self, label: str, low: int, high: int):
        super().__init__()
        self.label = label
        self.setRange(low, high)
        self.setKeyboardTracking(False)  # the value changes on Enter, not at each digit on the way

    def valueFromText(self, text: str) -> int:
        value = self.parse(text)
        return int(value) if value is not None and self.in_range(value) else self.value()


class _LogSpinBox(_RangeRefusal, QDoubleSpinBox):
    """A learning-rate box: steps multiply by ~2 (1e-3 -> 2e-3 -> 5e-3 ...), shows 4 significant digits."""

    refused = Signal(str)
    label = "Learning rate"
    hint = " (typical: 0.001 for Adam, 0.01 to 0.1 for SGD)"

    def __init__(self):
        super().__init__()
        self.setDecimals(8)
        self.setRange(1e-7, 100.0)
        self.setKeyboardTracking(False)

    def textFromValue(self, value: float) -> str:
        return f"{value:.4g}"

    def valueFromText(self, text: str) -> float:
        value = self.parse(text)
        return value if value is not None and self.in_range(value) else self.value()

    def stepBy(self, steps: int) -> None:
        v = self.value()
        for _ in range(abs(steps)):
            mant = v / 10 ** math.floor(math.log10(v))
            if steps > 0:
                v = v * (2.5 if round(mant) == 2 else 2.0)
            else:
                v = v / (2.5 if round(mant) == 5 else 2.0)
        self.setValue(float(f"{v:.3g}"))


class _FloatBox(_RangeRefusal, QDoubleSpinBox):
    refused = Signal(str)

    def __init__(self, label: str, low: float, high: float, decimals: int, step: float):
        super().__init__()
        self.label = label
        self.setDecimals(decimals)
        self.setRange(low, high)
        self.setSingleStep(step)
        self.setKeyboardTracking(False)

    def textFromValue(self, value: float) -> str:
        return f"{value:.{self.decimals()}f}".rstrip("0").rstrip(".") if value else "0"

    def valueFromText(self, text: str) -> float:
        value = self.parse(text)
        return value if value is not None and self.in_range(value) else self.value()


class _PatienceBox(_IntBox):
    """Early stopping's patience in epochs; 0 reads "off"."""

    def __init__(self):
        super().__init__("Early stopping patience", 0, 100000)

    def parse(self, text: str) -> float | None:
        return 0.0 if text.strip().lower() == "off" else super().parse(text)

    def textFromValue(self, value: int) -> str:
        return "off" if value == 0 else str(value)


def _combo() -> QComboBox:
    box = QComboBox()
    box.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(6)
    return box


class TrainingPanel(QWidget):
    trainClicked = Signal()
    pauseClicked = Signal()
    resumeClicked = Signal()
    stopClicked = Signal()
    stepClicked = Signal()
    resetClicked = Signal()
    retryClicked = Signal(int)  # the new batch size
    settingsEdited = Signal(dict)
    overlayToggled = Signal(bool)
    overlayModeChanged = Signal(str)  # "grad" | "weight"
    exportCsvClicked = Signal()
    exportTensorBoardClicked = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 6, 6, 6)

        box = QGroupBox("Settings")
        form = QFormLayout(box)
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        # a narrow dock (larger system fonts) puts a field under its label rather than widening the
        # panel past the dock, which then slid sideways, cutting the start of every line
        form.setRowWrapPolicy(QFormLayout.WrapLongRows)
        self.device_box = _combo()
        self.device_box.addItem("Auto (CPU)", "auto")
        self.device_box.addItem("CPU", "cpu")
        self.device_box.addItem("CUDA (no GPU found)", "cuda")
        self._cuda_name: str | None = None
        self.set_cuda(None)
        form.addRow("Device", self.device_box)
        self.loss_box = _combo()
        self.loss_box.addItem("auto (by Output)", "auto")
        self.loss_box.setItemData(0, "The loss the Output node names (its loss setting), else the task's usual one", Qt.ToolTipRole)
        for name in LOSSES:
            self.loss_box.addItem(name, name)
        form.addRow("Loss", self.loss_box)
        self.optimizer_box = _combo()
        for name in OPTIMIZERS:
            self.optimizer_box.addItem(name, name)
        form.addRow("Optimizer", self.optimizer_box)
        self.lr_box = _LogSpinBox()
        form.addRow("Learning rate", self.lr_box)
        self.batch_box = _IntBox("Batch size", 1, 65536)
        form.addRow("Batch size", self.batch_box)
        self.epochs_box = _IntBox("Epochs", 1, 100000)
        form.addRow("Epochs", self.epochs_box)
        self.schedule_box = _combo()
        for name in SCHEDULES:
            self.schedule_box.addItem(name, name)
        form.addRow("Schedule", self.schedule_box)
        self.seed_box = _IntBox("Seed", 0, 2**31 - 1)
        self.seed_box.setToolTip("The same seed gives the same initial weights and the same batch order")
        form.addRow("Seed", self.seed_box)
        # regularisation and SGD's momentum (labs 3, 4 and 9 are about them)
        self.momentum_box = _FloatBox("Momentum", 0.0, 0.999, 3, 0.05)
        self.momentum_box.setToolTip("SGD only: how much of the last step carries into the next (0 = plain SGD)")
        form.addRow("Momentum", self.momentum_box)
        self.weight_decay_box = _FloatBox("Weight decay", 0.0, 1.0, 5, 0.0001)
        self.weight_decay_box.setToolTip("Pulls every weight towards 0 a little each step (L2 regularisation); "
                                         "0 = off, typical 0.0001 to 0.01")
        form.addRow("Weight decay", self.weight_decay_box)
        self.patience_box = _PatienceBox()
        self.patience_box.setToolTip("Stop when the validation loss has not improved for this many epochs in a "
                                     "row (off = train every epoch)")
        form.addRow("Early stopping", self.patience_box)
        self._form = form
        self._labels = {"device": "Device", "loss": "Loss", "optimizer": "Optimizer", "lr": "Learning rate",
                        "batch_size": "Batch size", "epochs": "Epochs", "schedule": "Schedule", "seed": "Seed",
                        "momentum": "Momentum", "weight_decay": "Weight decay",
                        "early_stopping_patience": "Early stopping"}
        # a lab's fixed and hidden settings: name -> ("fixed" | "hidden", the sentence why)
        self._locks: dict[str, tuple[str, str]] = {}
        self.lock_note = QLabel("")
        self.lock_note.setWordWrap(True)
        self.lock_note.hide()
        form.addRow(self.lock_note)
        # a refused entry says why here, under the form, until that setting changes
        self.settings_error = QLabel("")
        self.settings_error.setObjectName("InlineError")
        self.settings_error.setWordWrap(True)
        self.settings_error.hide()
        form.addRow(self.settings_error)
        self._refused_by = None
        for w in (self.lr_box, self.batch_box, self.epochs_box, self.seed_box, self.momentum_box,
                  self.weight_decay_box, self.patience_box):
            w.refused.connect(lambda text, w=w: self._refuse(w, text))
            w.valueChanged.connect(lambda _v, w=w: self._accepted(w))

        grid = QGridLayout()
        self.train_button = QPushButton("Train")
        self.train_button.setDefault(True)
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.stop_button = QPushButton("Stop")
        self.step_button = QPushButton("Step")
        self.step_button.setToolTip("Train on one batch, then pause")
        self.reset_button = QPushButton("Reset weights")
        self.reset_button.setToolTip("Fresh initial weights from the seed (the same seed gives the same weights)")
        for i, b in enumerate((self.train_button, self.pause_button, self.resume_button)):
            grid.addWidget(b, 0, i)
        grid.addWidget(self.step_button, 1, 0)
        grid.addWidget(self.stop_button, 1, 1)
        grid.addWidget(self.reset_button, 2, 0, 1, 3)
        for b in (self.train_button, self.pause_button, self.resume_button, self.stop_button, self.step_button):
            b.setMinimumWidth(60)
        outer.addLayout(grid)

        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setFormat("")
        outer.addWidget(self.progress_bar)
        self.progress_label = QLabel("")
        self.progress_label.setStyleSheet("color: gray;")
        self.progress_label.setWordWrap(True)  # a long line must not widen the dock
        outer.addWidget(self.progress_label)

        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        outer.addWidget(self.status_label)
        self.retry_button = QPushButton("")
        self.retry_button.setMinimumWidth(60)
        self.retry_button.hide()
        outer.addWidget(self.retry_button)
        # The buttons come first, the run's progress and sentence under them, then the settings: at
        # 1280x800 the dock's lower half is below the fold, and nothing above the buttons may change
        # height (a sentence appearing when a run starts pushed them down, so a click meant for
        # Pause landed on Stop).
        outer.addWidget(box)
        self._retry_batch = 0
        self.retry_button.clicked.connect(lambda: self.retryClicked.emit(self._retry_batch))

        canvas_box = QGroupBox("On the canvas")
        cl = QVBoxLayout(canvas_box)  # one row each: side by side they squeezed the mode's name
        self.overlay_check = QCheckBox("Show while training")
        self.overlay_check.setToolTip("Tint the edges and show activation thumbnails on the canvas while training")
        self.overlay_check.setChecked(True)
        cl.addWidget(self.overlay_check)
        self.overlay_mode = _combo()
        self.overlay_mode.addItem("edges: gradient norm", "grad")
        self.overlay_mode.addItem("edges: weight size", "weight")
        cl.addWidget(self.overlay_mode)
        outer.addWidget(canvas_box)
        self.overlay_check.toggled.connect(self.overlayToggled)
        self.overlay_mode.currentIndexChanged.connect(lambda _i: self.overlayModeChanged.emit(self.overlay_mode.currentData()))

        self.csv_button = QPushButton("CSV…")
        self.csv_button.setToolTip("The run's metrics, one row per epoch")
        self.tb_button = QPushButton("TensorBoard…")
        self.tb_button.setToolTip("Event files that TensorBoard opens (tensorboard --logdir FOLDER)")
        outer.addWidget(ResponsiveRow([QLabel("Export run:"), self.csv_button, self.tb_button]))
        outer.addStretch(1)

        self.train_button.clicked.connect(self.trainClicked)
        self.pause_button.clicked.connect(self.pauseClicked)
        self.resume_button.clicked.connect(self.resumeClicked)
        self.stop_button.clicked.connect(self.stopClicked)
        self.step_button.clicked.connect(self.stepClicked)
        self.reset_button.clicked.connect(self.resetClicked)
        self.csv_button.clicked.connect(self.exportCsvClicked)
        self.tb_button.clicked.connect(self.exportTensorBoardClicked)
        self.state = "idle"
        for w in (self.device_box, self.loss_box, self.optimizer_box, self.schedule_box):
            w.currentIndexChanged.connect(self._edited)
        self.optimizer_box.currentIndexChanged.connect(lambda _i: self._enable_settings())
        for w in (self.lr_box, self.batch_box, self.epochs_box, self.seed_box, self.momentum_box,
                  self.weight_decay_box, self.patience_box):
            w.valueChanged.connect(self._edited)
        self._loading = False
        guard_wheel(self)  # the panel scrolls in its dock: the wheel must not change a setting on the way
        self.set_settings({})
        self.set_state("idle")
        self.set_has_run(False)

    # ------------------------------------------------------------------ settings
    def set_cuda(self, name: str | None) -> None:
        """Show the GPU's name (or that there is none) in the device choices."""
        self._cuda_name = name
        model = self.device_box.model()
        i_cuda = self.device_box.findData("cuda")
        self.device_box.setItemText(0, f"Auto ({'CUDA: ' + name if name else 'CPU'})")
        self.device_box.setItemText(i_cuda, f"CUDA: {name}" if name else "CUDA (no GPU found)")
        item = model.item(i_cuda)
        if item is not None:
            item.setEnabled(bool(name))

    def settings(self) -> dict:
        return {
            "device": self.device_box.currentData(),
            "loss": self.loss_box.currentData(),
            "optimizer": self.optimizer_box.currentData(),
            "lr": float(self.lr_box.value()),
            "batch_size": int(self.batch_box.value()),
            "epochs": int(self.epochs_box.value()),
            "schedule": self.schedule_box.currentData(),
            "seed": int(self.seed_box.value()),
            "momentum": float(self.momentum_box.value()),
            "weight_decay": float(self.weight_decay_box.value()),
            "early_stopping_patience": int(self.patience_box.value()),
        }

    def set_settings(self, values: dict) -> None:
        """Show ``values`` (a project's stored settings); one the panel cannot hold is brought into
        range, and the panel says so."""
        v = {**DEFAULTS, **{k: x for k, x in (values or {}).items() if x is not None}}
        self._loading = True
        changed = []
        try:
            for box, key in ((self.device_box, "device"), (self.loss_box, "loss"),
                             (self.optimizer_box, "optimizer"), (self.schedule_box, "schedule")):
                i = box.findData(v[key])
                box.setCurrentIndex(i if i >= 0 else 0)
            for box, key in ((self.lr_box, "lr"), (self.batch_box, "batch_size"), (self.epochs_box, "epochs"),
                             (self.seed_box, "seed"), (self.momentum_box, "momentum"),
                             (self.weight_decay_box, "weight_decay"), (self.patience_box, "early_stopping_patience")):
                value = float(v[key]) if isinstance(box, QDoubleSpinBox) else int(v[key])
                box.setValue(value)
                if not box.minimum() <= value <= box.maximum():
                    changed.append(f"{box.label.lower()} {_number_text(v[key])} is out of range "
                                   f"({_number_text(box.minimum())} to {_number_text(box.maximum())}), "
                                   f"so it is set to {box.textFromValue(box.value())}")
        finally:
            self._loading = False
        self._refused_by = None
        self._show_settings_error(("The stored " + "; the ".join(changed) + ".") if changed else "")

    def _refuse(self, box, sentence: str) -> None:
        self._refused_by = (box, box.value())
        self._show_settings_error(sentence)

    def _accepted(self, box) -> None:
        """A new value in the box that refused an entry clears its sentence (Qt re-emits the kept
        value right after a refusal: that one does not)."""
        if self._loading or self._refused_by is None:
            return
        refused_box, kept = self._refused_by
        if box is refused_box and box.value() != kept:
            self._refused_by = None
            self._show_settings_error("")

    def _show_settings_error(self, text: str) -> None:
        self.settings_error.setText(f"✖ {text}" if text else "")
        self.settings_error.setVisible(bool(text))

    def _edited(self, *_args) -> None:
        if not self._loading:
            self.settingsEdited.emit(self.settings())

    # ------------------------------------------------------------------ state
    def set_state(self, state: str) -> None:
        """"starting" | "idle" | "running" | "paused" | "stopping": which buttons make sense."""
        idle = state in ("idle", "starting")
        self.train_button.setEnabled(idle)
        self.pause_button.setEnabled(state == "running")
        self.resume_button.setEnabled(state == "paused")
        self.stop_button.setEnabled(state in ("running", "paused"))
        self.step_button.setEnabled(state in ("paused", "idle", "starting"))
        self.reset_button.setEnabled(idle)
        self.state = state
        self._enable_settings()

    def _enable_settings(self) -> None:
        """Settings are editable when no run is on, the lab does not fix them, and they apply: momentum
        is SGD's only (it stayed editable under Adam, where it changes nothing)."""
        idle = self.state in ("idle", "starting")
        sgd = self.optimizer_box.currentData() == "sgd"
        for key, w in self.setting_widgets().items():
            w.setEnabled(idle and self._locks.get(key, ("",))[0] != "fixed" and (key != "momentum" or sgd))

    def setting_widgets(self) -> dict:
        """Each setting's widget, by its TrainConfig name."""
        return {"device": self.device_box, "loss": self.loss_box, "optimizer": self.optimizer_box,
                "lr": self.lr_box, "batch_size": self.batch_box, "epochs": self.epochs_box,
                "schedule": self.schedule_box, "seed": self.seed_box, "momentum": self.momentum_box,
                "weight_decay": self.weight_decay_box, "early_stopping_patience": self.patience_box}

    def set_locks(self, locks: dict[str, tuple[str, str]]) -> None:
        """A lab's locked settings: name -> ("fixed" | "hidden", the sentence why).  A fixed setting
        is shown greyed with the sentence as its tooltip; a hidden one is not shown (the lab's value
        is used).  ``{}`` unlocks everything."""
        self._locks = dict(locks)
        free_tips = {"seed": "The same seed gives the same initial weights and the same batch order"}
        for key, w in self.setting_widgets().items():
            mode, why = self._locks.get(key, ("", ""))
            if w.property("freeTip") is None:
                w.setProperty("freeTip", w.toolTip() or free_tips.get(key, ""))
            w.setToolTip(f"Locked: {why}" if mode else w.property("freeTip"))
            self._form.setRowVisible(w, mode != "hidden")
        fixed = [self._labels[k].lower() for k, (m, _w) in self._locks.items() if m == "fixed" and k in self._labels]
        hidden = [self._labels[k].lower() for k, (m, _w) in self._locks.items() if m == "hidden" and k in self._labels]
        parts = ([f"fixes the {_listed(fixed)}"] if fixed else []) + \
                ([f"sets the {_listed(hidden)} for you"] if hidden else [])
        self.lock_note.setText(f"<b>Locked:</b> the lab {' and '.join(parts)}, so every student's run is comparable."
                               if parts else "")
        self.lock_note.setVisible(bool(parts))
        self.set_state(self.state)

    def set_has_run(self, has: bool) -> None:
        self.csv_button.setEnabled(has)
        self.tb_button.setEnabled(has)

    def set_progress(self, fraction: float, text: str) -> None:
        self.progress_bar.setValue(int(round(1000 * max(0.0, min(1.0, fraction)))))
        self.progress_bar.setFormat(f"{100 * fraction:.0f}%")
        self.progress_label.setText(text)

    def show_status(self, text: str, error: bool = False) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet("color: #d1242f;" if error else "")

    def offer_retry(self, batch_size: int | None) -> None:
        if batch_size and batch_size >= 1:
            self._retry_batch = int(batch_size)
            self.retry_button.setText(f"Retry with batch size {batch_size}")
            self.retry_button.show()
        else:
            self.retry_button.hide()
