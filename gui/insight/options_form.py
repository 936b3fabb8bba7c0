"""A form built from a method's options schema (``engine.explain.Method.schema()``).

One field per option: a spin box for ints and floats (bounded by the schema's min / max), a
check box for booleans, a combo box for choices; the option's help is the field's tooltip.
``values()`` returns only what differs from the defaults, so the engine fills in the rest.
"""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QLabel, QSpinBox, QWidget

from gui.wheel_guard import guard_wheel

LABELS = {"n_steps": "steps", "nt_samples": "noisy copies", "nt_type": "combine", "n_samples": "samples",
          "n_baselines": "baselines", "perturbations_per_eval": "per model call", "blur_sigma": "blur σ",
          "abs": "absolute value", "relu": "positive only"}
INT_LIMIT = 2**31 - 1


def _label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " "))


class OptionsForm(QWidget):
    edited = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.form = QFormLayout(self)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.form.setVerticalSpacing(2)
        self.fields: dict[str, QWidget] = {}
        self.schema: list[dict] = []

    def set_schema(self, schema: list[dict]) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        self.fields = {}
        self.schema = list(schema)
        for opt in self.schema:
            w = self._field(opt)
            w.setToolTip(opt.get("help", ""))
            label = QLabel(_label(opt["name"]))
            label.setToolTip(opt.get("help", ""))
            self.form.addRow(label, w)
            self.fields[opt["name"]] = w
        if not self.schema:
            self.form.addRow(QLabel("No options."))
        guard_wheel(self)

    def _field(self, opt: dict) -> QWidget:
        kind, default = opt["kind"], opt["default"]
        if kind == "bool":
            w = QCheckBox()
            w.setChecked(bool(default))
            w.toggled.connect(lambda _v: self.edited.emit())
        elif kind == "choice":
            w = QComboBox()
            w.addItems([str(c) for c in opt.get("choices", [])])
            w.setCurrentText(str(default))
            w.currentIndexChanged.connect(lambda _i: self.edited.emit())
        elif kind == "int":
            w = QSpinBox()
            lo = int(opt["min"]) if opt.get("min") is not None else -INT_LIMIT
            hi = int(opt["max"]) if opt.get("max") is not None else INT_LIMIT
            w.setRange(max(lo, -INT_LIMIT), min(hi, INT_LIMIT))
            w.setValue(int(default))
            if opt["name"] in ("window", "stride"):
                w.setSpecialValueText("auto")  # 0 means "pick one for this data"
            w.valueChanged.connect(lambda _v: self.edited.emit())
        else:
            w = QDoubleSpinBox()
            w.setDecimals(3)
            w.setRange(float(opt["min"]) if opt.get("min") is not None else -1e9,
                       float(opt["max"]) if opt.get("max") is not None else 1e9)
            w.setSingleStep(0.05 if (opt.get("max") or 10) <= 1 else 0.5)
            w.setValue(float(default))
            w.valueChanged.connect(lambda _v: self.edited.emit())
        return w

    def values(self) -> dict:
        """The options that differ from their defaults."""
        out = {}
        for opt in self.schema:
            w = self.fields[opt["name"]]
            if isinstance(w, QCheckBox):
                v = w.isChecked()
            elif isinstance(w, QComboBox):
                v = w.currentText()
            else:
                v = w.value()
            if v != opt["default"]:
                out[opt["name"]] = v
        return out

    def set_value(self, name: str, value) -> None:
        w = self.fields[name]
        if isinstance(w, QCheckBox):
            w.setChecked(bool(value))
        elif isinstance(w, QComboBox):
            w.setCurrentText(str(value))
        else:
            w.setValue(value)
