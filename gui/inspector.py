"""The inspector: a form generated from the selected layer's spec.

int -> QSpinBox, float -> QDoubleSpinBox, bool -> QCheckBox, choice -> QComboBox,
units -> spin box + "auto" check box, ints -> QLineEdit ("1, 8, 8"), json -> QLineEdit ("[1]").  Tooltips
come from ``Param.help`` and the spec's description.  The widgets accept any
number so that an out-of-range value is refused by the engine's own check, with
its sentence shown under the form ("units of 'fc1' must be at least 1; got 0.").
Every accepted change is one SetParamCommand (spin-box arrow steps merge).
"""
from __future__ import annotations

import html
import json

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QFrame, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QScrollArea, QSpinBox, QVBoxLayout, QWidget)

from engine.errors import LayerLabError
from engine.layers import REGISTRY
from engine.spec import AUTO, LayerSpec, Param, fmt_shape
from gui.canvas.node_item import human_count
from gui.commands import ApplyFixCommand, RenameCommand, SetParamCommand
from gui.lab_locks import edit_refusal
from gui.wheel_guard import guard_wheel

BIG = 2_000_000_000


def _tip(param: Param) -> str:
    lines = [f"<b>{param.title}</b>", param.help or ""]
    rng = []
    if param.min is not None:
        rng.append(f"at least {Param._fmt(param.min)}")
    if param.max is not None:
        rng.append(f"at most {Param._fmt(param.max)}")
    if rng:
        lines.append("Allowed: " + " and ".join(rng) + ".")
    if param.kind == "choice":
        lines.append("Choices: " + ", ".join(map(str, param.choices)))
    lines.append(f"Default: {param.to_json(param.default)}")
    return "<br>".join(x for x in lines if x)


class _ZeroTextSpinBox(QSpinBox):
    """Shows a parameter's ``zero_text`` for 0 ("same as kernel"), and takes it back as 0.

    Not ``setSpecialValueText``: that names the minimum, and the inspector's boxes take any
    number so that the engine refuses a bad one with its sentence."""

    def __init__(self, zero_text: str):
        super().__init__()
        self.zero_text = zero_text

    def textFromValue(self, value: int) -> str:
        return self.zero_text if value == 0 else super().textFromValue(value)

    def valueFromText(self, text: str) -> int:
        return 0 if text.strip() == self.zero_text else super().valueFromText(text)

    def validate(self, text, pos):
        if text.strip() == self.zero_text:
            return QValidator.Acceptable, text, pos
        if text and self.zero_text.startswith(text.strip()) and not text.strip().lstrip("-").isdigit():
            return QValidator.Intermediate, text, pos
        return super().validate(text, pos)


class ParamEditor(QWidget):
    """One parameter's widget.  ``committed(value, merge)`` when the user changes it."""

    committed = Signal(object, bool)

    def __init__(self, param: Param, parent=None):
        super().__init__(parent)
        self.param = param
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(6)
        k = param.kind
        self.auto: QCheckBox | None = None
        if k in ("int", "units"):
            w = _ZeroTextSpinBox(param.zero_text) if param.zero_text else QSpinBox()
            w.setRange(-BIG, BIG)
            w.setKeyboardTracking(False)
            w.setAccelerated(True)
            w.valueChanged.connect(lambda v: self._emit(v, True))
            self.widget = w
            lay.addWidget(w, 1)
            if k == "units":
                # while "auto" is ticked the box shows the number it stands for (the dataset's
                # classes or targets), "?" where no dataset gives one; never a stale number
                w.setSpecialValueText("?")
                self.auto = QCheckBox("auto")
                self.auto.setToolTip("auto = as many as the dataset has classes (or regression targets). "
                                     "Use it on the last Linear before the Output.")
                self.auto.toggled.connect(self._auto_toggled)
                lay.addWidget(self.auto)
        elif k == "float":
            w = QDoubleSpinBox()
            w.setRange(-1e9, 1e9)
            w.setDecimals(4)
            w.setSingleStep(0.05 if (param.max is not None and param.max <= 1) else 0.1)
            w.setKeyboardTracking(False)
            w.valueChanged.connect(lambda v: self._emit(v, True))
            self.widget = w
            lay.addWidget(w, 1)
        elif k == "bool":
            w = QCheckBox()
            w.toggled.connect(lambda v: self._emit(v, False))
            self.widget = w
            lay.addWidget(w, 1)
        elif k == "choice":
            w = QComboBox()
            w.addItems([str(c) for c in param.choices])
            w.activated.connect(lambda i: self._emit(param.choices[i], False))
            self.widget = w
            lay.addWidget(w, 1)
        else:  # ints, json
            w = QLineEdit()
            w.setPlaceholderText("e.g. [1]" if k == "json" else "e.g. 1, 8, 8")
            w.editingFinished.connect(lambda: self._emit(w.text(), False))
            self.widget = w
            lay.addWidget(w, 1)
        self.setToolTip(_tip(param))
        self.widget.setToolTip(_tip(param))
        self._value = None
        self._resolved: int | None = None  # what "auto" comes to: the dataset's classes or targets

    def _emit(self, value, merge: bool) -> None:
        if self.auto is not None and self.auto.isChecked():
            return
        if self.param.kind == "ints" and self._value is not None and value.replace(" ", "") == \
                ", ".join(map(str, self._value)).replace(" ", ""):
            return
        if self.param.kind == "json" and self._value is not None and value.strip() == json.dumps(self._value):
            return
        self.committed.emit(value, merge)

    def _auto_toggled(self, on: bool) -> None:
        self.widget.setEnabled(not on)
        if not on:  # unticked: keep the number auto showed, so the model does not change under the user
            self.widget.blockSignals(True)
            self.widget.setValue(self._manual_units())
            self.widget.blockSignals(False)
        self.committed.emit(AUTO if on else self.widget.value(), False)

    def _manual_units(self) -> int:
        if self._resolved is not None:
            return self._resolved
        default = self.param.default
        return int(default) if default != AUTO else 64

    def show_resolved(self, units: int | None) -> None:
        """Tell a units editor what "auto" comes to now (None: unknown, e.g. no dataset)."""
        self._resolved = units
        if self.auto is not None and self.auto.isChecked():
            self._show_auto()

    def _show_auto(self) -> None:
        w = self.widget
        w.blockSignals(True)
        w.setValue(self._resolved if self._resolved is not None else w.minimum())  # the minimum reads "?"
        w.blockSignals(False)

    def set_value(self, value) -> None:
        """Show ``value`` without emitting a commit."""
        self._value = value
        w = self.widget
        blockers = [w] + ([self.auto] if self.auto is not None else [])
        for b in blockers:
            b.blockSignals(True)
        try:
            k = self.param.kind
            if k == "units":
                is_auto = value == AUTO
                self.auto.setChecked(is_auto)
                w.setEnabled(not is_auto)
                if not is_auto:
                    w.setValue(int(value))
                else:
                    self._show_auto()
            elif k == "int":
                w.setValue(int(value))
            elif k == "float":
                w.setValue(float(value))
            elif k == "bool":
                w.setChecked(bool(value))
            elif k == "choice":
                w.setCurrentIndex(list(self.param.choices).index(value))
            elif k == "json":
                w.setText(json.dumps(value))
            else:
                w.setText(", ".join(str(v) for v in value))
        finally:
            for b in blockers:
                b.blockSignals(False)


class Inspector(QWidget):
    """Shows and edits the node the document says is selected (``Document.selectedNodeChanged``)."""

    def __init__(self, doc, parent=None):
        super().__init__(parent)
        self.doc = doc
        self.node_id = ""
        self.editors: dict[str, ParamEditor] = {}
        self.name_edit: QLineEdit | None = None

        self.empty = QLabel(
            "<b>No layer selected.</b><br><br>Click a layer on the canvas to see and change its settings here."
            "<br><br><b>Build a network:</b><ol style='margin-left:-20px'>"
            "<li>Drag <i>Linear</i> from the palette onto the canvas.</li>"
            "<li>Drag from <i>Input</i>'s right-hand dot to the Linear's left-hand dot.</li>"
            "<li>Add <i>ReLU</i>, another <i>Linear</i> (units: auto) and connect them to <i>Output</i>.</li>"
            "</ol>Shapes and parameter counts appear on every layer as you go.")
        self.empty.setWordWrap(True)
        self.empty.setTextFormat(Qt.RichText)
        self.empty.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        self.empty.setObjectName("Muted")

        self.title = QLabel()
        self.title.setObjectName("Heading")
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.description.setObjectName("Muted")
        self.form_host = QWidget()
        self.form = QFormLayout(self.form_host)
        self.form.setContentsMargins(0, 4, 0, 4)
        self.form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        # a layer the lab locks: why its settings cannot change (the form shows them, greyed)
        self.lock_label = QLabel()
        self.lock_label.setWordWrap(True)
        self.lock_label.hide()
        self.error_label = QLabel()
        self.error_label.setObjectName("InlineError")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.issues_label = QLabel()
        self.issues_label.setWordWrap(True)
        self.issues_label.setTextFormat(Qt.RichText)
        self.fix_button = QPushButton()
        self.fix_button.setObjectName("FixButton")
        self.fix_button.setCursor(Qt.PointingHandCursor)
        self.fix_button.clicked.connect(self._apply_fix)
        self.fix_button.hide()
        self._fix = None

        self.details = QWidget()
        d = QVBoxLayout(self.details)
        d.setContentsMargins(0, 0, 0, 0)
        d.setSpacing(6)
        # problems first: with the inspector sharing the column with the dataset panel they must not scroll away
        for w in (self.title, self.description, self.lock_label, self.issues_label, self.fix_button, self.form_host,
                  self.error_label, self._line(), self.info):
            d.addWidget(w)
        d.addStretch(1)

        inner = QWidget()
        lay = QVBoxLayout(inner)
        lay.setContentsMargins(10, 8, 10, 8)
        lay.addWidget(self.empty)
        lay.addWidget(self.details)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setWidget(inner)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self._inner = inner
        self.setMinimumHeight(self._height_of_a_linear())

        doc.selectedNodeChanged.connect(self.show_node)
        doc.graphEvent.connect(self._on_graph_event)
        doc.analysisChanged.connect(self._refresh_info)
        doc.projectReplaced.connect(self._on_project_replaced)
        doc.labChanged.connect(self._on_project_replaced)
        self.show_node(doc.selected_node)

    def _height_of_a_linear(self, width: int = 260) -> int:
        """How tall the inspector must be to edit a Linear without scrolling (at ``width`` px).

        The window gives the inspector little room beside the dataset and training panels;
        this minimum keeps the most common form (name, units, bias, shapes) whole."""
        spec = REGISTRY.get("Linear")
        self._build_form(spec, "fc1", {p.name: p.default for p in spec.params})
        self.info.setText("<b>In:</b> (2) &nbsp; <b>Out:</b> (64)<br><b>Parameters:</b> 192 &nbsp; <b>FLOPs:</b> 384")
        self.issues_label.hide()
        # not shown yet, so no layout has looked at the new form: polish (the style sheet sets the
        # fonts) and drop every cached size hint
        for w in (self._inner, *self._inner.findChildren(QWidget)):
            w.ensurePolished()
            w.updateGeometry()
        height = self._inner.heightForWidth(width)
        if height < 0:
            height = self._inner.sizeHint().height()
        self.show_node("")
        return height

    @staticmethod
    def _line() -> QFrame:
        f = QFrame()
        f.setFrameShape(QFrame.HLine)
        f.setFrameShadow(QFrame.Sunken)
        return f

    # ------------------------------------------------------------------ building the form
    def show_node(self, node_id: str) -> None:
        self.node_id = node_id if node_id and self.doc.graph.has_node(node_id) else ""
        self.error_label.hide()
        while self.form.rowCount():
            self.form.removeRow(0)
        self.editors.clear()
        self.name_edit = None
        if not self.node_id:
            self.details.hide()
            self.empty.show()
            return
        node = self.doc.graph.node(self.node_id)
        self._build_form(node.spec, node.name, node.params)
        guard_wheel(self.form_host)  # the inspector scrolls: the wheel must not change a setting on the way
        locked = edit_refusal(self.doc, self.node_id)
        self.form_host.setEnabled(locked is None)
        self.form_host.setToolTip(locked or "")
        self.lock_label.setText(f"<b>Locked:</b> {html.escape(locked, quote=False)}" if locked else "")
        self.lock_label.setVisible(locked is not None)
        self._refresh_info()

    def _build_form(self, spec: LayerSpec, name: str, params: dict) -> None:
        self.empty.hide()
        self.details.show()
        self.title.setText(spec.type)
        self.title.setToolTip(spec.description)
        self.description.setText(spec.description)
        self.name_edit = QLineEdit(name)
        self.name_edit.setToolTip("The layer's name; it becomes the attribute name in the generated PyTorch code "
                                  "(self.<name>). Letters, digits and _ only.")
        self.name_edit.editingFinished.connect(self._rename)
        self.form.addRow(self._label("name", self.name_edit.toolTip()), self.name_edit)
        for param in spec.params:
            editor = ParamEditor(param)
            editor.set_value(params[param.name])
            editor.committed.connect(lambda v, merge, key=param.name: self.commit(key, v, merge))
            self.editors[param.name] = editor
            self.form.addRow(self._label(param.title, _tip(param)), editor)
        if not spec.params:
            note = QLabel("This layer has no settings.")
            note.setObjectName("Muted")
            self.form.addRow(note)

    @staticmethod
    def _label(text: str, tip: str) -> QLabel:
        lab = QLabel(text)
        lab.setToolTip(tip)
        return lab

    # ------------------------------------------------------------------ edits
    def commit(self, key: str, value, merge: bool = False) -> bool:
        """Apply one parameter change as an undoable command; a refused value shows its sentence."""
        if not self.node_id or not self.doc.graph.has_node(self.node_id):
            return False
        try:
            cmd = SetParamCommand(self.doc, self.node_id, key, value, merge=merge)
        except LayerLabError as exc:
            self.show_error(str(exc))
            self.editors[key].set_value(self.doc.graph.node(self.node_id).params[key])
            return False
        self.error_label.hide()
        if cmd.value != cmd.old:
            self.doc.push(cmd)
        return True

    def _rename(self) -> None:
        if self.name_edit is None or not self.node_id or not self.doc.graph.has_node(self.node_id):
            return
        node = self.doc.graph.node(self.node_id)
        text = self.name_edit.text().strip()
        if text == node.name:
            return
        if not text:
            self.show_error("A layer needs a name.")
            self.name_edit.setText(node.name)
            return
        try:
            cmd = RenameCommand(self.doc, self.node_id, text)
        except LayerLabError as exc:
            self.show_error(str(exc))
            self.name_edit.setText(node.name)
            return
        self.error_label.hide()
        self.doc.push(cmd)

    def show_error(self, text: str) -> None:
        self.error_label.setText(f"✖ {text}")
        self.error_label.show()

    def _apply_fix(self) -> None:
        if self._fix is not None:
            try:
                self.doc.push(ApplyFixCommand(self.doc, self._fix))
            except LayerLabError as exc:  # e.g. the fix would change a layer the lab locks
                self.show_error(str(exc))

    # ------------------------------------------------------------------ model -> form
    def _on_graph_event(self, ev) -> None:
        if not self.node_id:
            return
        if ev.kind in ("node_removed", "reset") and not self.doc.graph.has_node(self.node_id):
            self.show_node("")
        elif ev.node_id == self.node_id:
            # a refused entry's sentence is about that attempt: any change to the layer since (an
            # accepted value, a Fix, an undo, an edit on the canvas) makes it stale
            self.error_label.hide()
            node = self.doc.graph.node(self.node_id)
            if ev.kind == "param_changed" and ev.key in self.editors:
                self.editors[ev.key].set_value(node.params[ev.key])
            elif ev.kind == "node_renamed" and self.name_edit is not None:
                self.name_edit.setText(node.name)

    def _on_project_replaced(self) -> None:
        self.show_node(self.doc.selected_node)

    def _refresh_info(self, *_args) -> None:
        if not self.node_id or not self.doc.graph.has_node(self.node_id):
            return
        a = self.doc.analysis
        info = a.nodes.get(self.node_id)
        for editor in self.editors.values():
            if editor.param.kind == "units":  # what resolve_units gives "auto" in this context
                editor.show_resolved(self.doc.context.n_outputs)
        if info is not None and info.shape is not None:
            ins = ", ".join(fmt_shape(s) for s in info.in_shapes) or "—"
            self.info.setText(f"<b>In:</b> {ins} &nbsp; <b>Out:</b> {fmt_shape(info.shape)}<br>"
                              f"<b>Parameters:</b> {info.n_params:,} &nbsp; <b>FLOPs:</b> {human_count(info.flops)}")
        else:
            self.info.setText("<b>Out:</b> unknown until the problem below is fixed.")
        issues = a.issues_for(self.node_id)
        if issues:
            from gui import theme
            t = theme.current()
            rows = []
            for i in issues:
                color = t.error if i.severity == "error" else t.warning
                mark = "✖" if i.severity == "error" else "⚠"
                rows.append(f"<span style='color:{color}'>{mark} {i.message}</span>")
            self.issues_label.setText("<br>".join(rows))
            self.issues_label.show()
        else:
            self.issues_label.hide()
        self._fix = next((i.fix for i in issues if i.severity == "error" and i.fix is not None), None)
        if self._fix is not None:
            self.fix_button.setText(f"Fix: {self._fix.label}")
            self.fix_button.setToolTip("Applies the suggested repair as one undoable step.")
            self.fix_button.show()
        else:
            self.fix_button.hide()
