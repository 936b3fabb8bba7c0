"""A goal's form, generated from the engine's goal schema (``engine.labs.goal_kinds()``).

``GoalForm`` shows a kind picker (grouped: graph, settings, training, inspection, question,
composite) and one editor per field of the chosen kind, by the field's type:

    int, number   a line edit (empty: not set; a required one says so in its placeholder)
    text          a line edit
    texts         a checkable list when the values are known (layer types, methods, merges),
                  else a text box with one value per line (a question's options)
    choice        a drop-down
    bool          a check box
    goals         the child goals of "all" / "any", each its own GoalForm

``goal()`` returns the goal as a lab document writes it (fields left empty are left out, so the
engine's defaults apply); ``set_goal(doc)`` shows one.  Nothing is checked here: the author window
builds the lab with ``engine.labs.format.lab_from_dict``, whose sentence names what is wrong.
A value typed that is not a number is passed on as typed, so that sentence names it too.
"""
from __future__ import annotations

import dataclasses

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QFrame, QHBoxLayout, QLabel, QLineEdit,
                               QListWidget, QListWidgetItem, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget)

from engine.labs import goal_kinds

CATEGORY_TITLES = {"graph": "Network", "settings": "Settings", "training": "Training", "inspection": "Inspection",
                   "question": "Question", "composite": "Combine"}


def _known_values(kind: str, field: dict) -> list[str]:
    """Values a field takes that its schema does not list (the layer types, the training settings)."""
    if field.get("choices"):
        return list(field["choices"])
    if kind == "layer_count" and field["name"] == "layers":
        from engine.layers import REGISTRY
        return [spec.type for specs in REGISTRY.categories().values() for spec in specs]
    return []


def setting_names() -> list[str]:
    from engine.train_config import TrainConfig
    return [f.name for f in dataclasses.fields(TrainConfig)]


def _number(text: str, whole: bool):
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text.replace(",", "."))
    except ValueError:
        return text  # the lab's own check says what is wrong with it
    if whole and value.is_integer():
        return int(value)
    return value


class FieldEditor(QWidget):
    """One field's widget; ``value()`` is ``(given, value)``."""

    edited = Signal()

    def __init__(self, kind: str, field: dict, parent=None):
        super().__init__(parent)
        self.field = field
        self.kind = kind
        t = field["type"]
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.widget = None
        known = _known_values(kind, field)
        if kind == "setting" and field["name"] == "name":
            t, known = "choice", setting_names()
        self.type = t
        required = field.get("required")
        default = field.get("default")
        if kind == "choice" and field["name"] == "answer":
            # picked among the options typed above (kept in step by GoalForm), or typed: retyping an
            # option exactly had been the only way
            t = self.type = "option"
            w = QComboBox()
            w.setEditable(True)
            w.setInsertPolicy(QComboBox.NoInsert)
            w.lineEdit().setPlaceholderText("required: one of the options")
            w.currentTextChanged.connect(lambda *_a: self.edited.emit())
        elif t in ("int", "number", "text"):
            w = QLineEdit()
            if required:
                w.setPlaceholderText("required")
            elif default not in (None, ""):
                w.setPlaceholderText(f"default {default}")
            else:
                w.setPlaceholderText("optional")
            w.textChanged.connect(self.edited)
        elif t == "texts" and known:
            w = QListWidget()
            for name in known:
                item = QListWidgetItem(name)
                item.setFlags(Qt.ItemIsEnabled | Qt.ItemIsUserCheckable)
                item.setCheckState(Qt.Unchecked)
                w.addItem(item)
            w.setMaximumHeight(120 if len(known) > 6 else 22 * len(known) + 6)
            w.itemChanged.connect(lambda *_a: self.edited.emit())
        elif t == "texts":
            w = QPlainTextEdit()
            w.setPlaceholderText("one per line")
            w.setMaximumHeight(80)
            w.textChanged.connect(self.edited)
        elif t == "choice":
            w = QComboBox()
            if not required:
                w.addItem("(not set)", None)
            for name in known:
                w.addItem(name, name)
            w.currentIndexChanged.connect(lambda *_a: self.edited.emit())
        elif t == "bool":
            w = QCheckBox()
            w.setChecked(bool(default))
            w.toggled.connect(lambda *_a: self.edited.emit())
        else:  # goals
            w = ChildGoals()
            w.edited.connect(self.edited)
        self.widget = w
        lay.addWidget(w)
        self.setToolTip(field.get("help", ""))
        w.setToolTip(field.get("help", ""))

    def set_options(self, options: list[str]) -> None:
        """An "option" editor's list (the question's options), keeping what it shows."""
        w = self.widget
        text = w.currentText()
        w.blockSignals(True)
        try:
            w.clear()
            w.addItems(options)
            w.setEditText(text)
        finally:
            w.blockSignals(False)

    def value(self):
        w, t = self.widget, self.type
        if t == "option":
            v = w.currentText().strip()
            return bool(v), v
        if t in ("int", "number"):
            v = _number(w.text(), t == "int")
            return v is not None, v
        if t == "text":
            v = w.text().strip()
            return bool(v), v
        if t == "texts" and isinstance(w, QListWidget):
            v = [w.item(i).text() for i in range(w.count()) if w.item(i).checkState() == Qt.Checked]
            return bool(v), v
        if t == "texts":
            v = [line.strip() for line in w.toPlainText().splitlines() if line.strip()]
            return bool(v), v
        if t == "choice":
            v = w.currentData()
            return v is not None, v
        if t == "bool":
            v = w.isChecked()
            return v != bool(self.field.get("default")), v
        v = w.goals()
        return bool(v), v

    def set_value(self, value) -> None:
        w, t = self.widget, self.type
        if t == "option":
            w.setEditText("" if value is None else str(value))
        elif t in ("int", "number", "text"):
            w.setText("" if value is None else (f"{value:g}" if isinstance(value, float) else str(value)))
        elif t == "texts" and isinstance(w, QListWidget):
            values = set(value or [])
            for i in range(w.count()):
                w.item(i).setCheckState(Qt.Checked if w.item(i).text() in values else Qt.Unchecked)
        elif t == "texts":
            w.setPlainText("\n".join(value or []))
        elif t == "choice":
            i = w.findData(value)
            if i < 0 and value is not None:  # a value this app does not list: keep it, the check names it
                w.addItem(str(value), value)
                i = w.count() - 1
            w.setCurrentIndex(max(i, 0))
        elif t == "bool":
            w.setChecked(bool(value))
        else:
            w.set_goals(value or [])


class GoalForm(QWidget):
    """A goal: its kind and its fields.  ``edited`` after every change."""

    edited = Signal()

    def __init__(self, goal: dict | None = None, parent=None):
        super().__init__(parent)
        self.kinds = {k["kind"]: k for k in goal_kinds()}
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)
        self.kind_box = QComboBox()
        order = list(CATEGORY_TITLES)
        for k in sorted(self.kinds.values(), key=lambda k: order.index(k["category"])
                        if k["category"] in order else len(order)):
            self.kind_box.addItem(f"{CATEGORY_TITLES.get(k['category'], k['category'])} · {k['title']}", k["kind"])
        self.kind_box.setToolTip("What the student's project must show for this step to tick")
        lay.addWidget(self.kind_box)
        self.help = QLabel()
        self.help.setObjectName("Muted")
        self.help.setWordWrap(True)
        lay.addWidget(self.help)
        self.form_host = QWidget()
        self.form = QFormLayout(self.form_host)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        lay.addWidget(self.form_host)
        lay.addStretch(1)
        self.editors: dict[str, FieldEditor] = {}
        self._loading = False
        self.kind_box.currentIndexChanged.connect(self._kind_changed)
        self.set_goal(goal or {"kind": "hidden_layers", "at_least": 1})

    @property
    def kind(self) -> str:
        return self.kind_box.currentData()

    def _build(self, kind: str, values: dict) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        self.editors = {}
        fields = self.kinds[kind]["fields"]
        for f in fields:
            editor = FieldEditor(kind, f)
            editor.set_value(values.get(f["name"], f.get("default") if f["type"] == "bool" else None))
            editor.edited.connect(self._field_edited)
            label = QLabel(f["name"].replace("_", " ") + (" *" if f.get("required") else ""))
            label.setToolTip(f.get("help", ""))
            self.form.addRow(label, editor)
            self.editors[f["name"]] = editor
        if not fields:
            self.form.addRow(QLabel("This goal has no settings."))
        answer, options = self.editors.get("answer"), self.editors.get("options")
        if answer is not None and answer.type == "option" and options is not None:
            follow = lambda: answer.set_options(options.value()[1])  # noqa: E731
            options.edited.connect(follow)
            follow()
        self.help.setText(self._describe(kind))

    def _describe(self, kind: str) -> str:
        k = self.kinds[kind]
        required = [f["name"].replace("_", " ") for f in k["fields"] if f.get("required")]
        return (f"{k['title']}." + (f" Needs: {', '.join(required)} (marked *)." if required else "")
                + " Hover a field for what it means.")

    def _kind_changed(self, _index: int) -> None:
        if self._loading:
            return
        # a field name two kinds share may mean different things (at_least: layers, or parameters):
        # the new kind starts from its own defaults
        self._build(self.kind, {})
        self.edited.emit()

    def _field_edited(self) -> None:
        if not self._loading:
            self.edited.emit()

    def goal(self) -> dict:
        out = {"kind": self.kind}
        for name, editor in self.editors.items():
            given, value = editor.value()
            if given:
                out[name] = value
        return out

    def set_goal(self, goal: dict) -> None:
        self._loading = True
        try:
            kind = goal.get("kind") if goal.get("kind") in self.kinds else "hidden_layers"
            self.kind_box.setCurrentIndex(self.kind_box.findData(kind))
            self._build(kind, goal)
        finally:
            self._loading = False

    def set_field(self, name: str, value) -> None:
        """Set one field as the instructor would type it (tests, and 'Use the canvas' helpers)."""
        self.editors[name].set_value(value)


class ChildGoals(QWidget):
    """The goals an "all" / "any" goal combines: one GoalForm each, added and removed here."""

    edited = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.forms: list[GoalForm] = []
        self.lay = QVBoxLayout(self)
        self.lay.setContentsMargins(0, 0, 0, 0)
        self.add_button = QPushButton("Add a goal")
        self.add_button.clicked.connect(lambda: (self.add_goal({"kind": "no_problems"}), self.edited.emit()))
        self.lay.addWidget(self.add_button, 0, Qt.AlignLeft)

    def add_goal(self, goal: dict) -> GoalForm:
        frame = QFrame()
        frame.setFrameShape(QFrame.StyledPanel)
        fl = QVBoxLayout(frame)
        fl.setContentsMargins(6, 6, 6, 6)
        form = GoalForm(goal)
        form.edited.connect(self.edited)
        remove = QPushButton("Remove this goal")
        remove.clicked.connect(lambda: self._remove(frame, form))
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(remove)
        fl.addWidget(form)
        fl.addLayout(row)
        self.lay.insertWidget(self.lay.count() - 1, frame)
        self.forms.append(form)
        return form

    def _remove(self, frame, form) -> None:
        self.forms.remove(form)
        frame.setParent(None)
        frame.deleteLater()
        self.edited.emit()

    def goals(self) -> list[dict]:
        return [f.goal() for f in self.forms]

    def set_goals(self, goals: list[dict]) -> None:
        for form in list(self.forms):
            self._remove(form.parentWidget(), form)
        for g in goals:
            self.add_goal(g)
