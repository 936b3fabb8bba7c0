"""Instructor mode: author a lab from the open project (File > New lab from this project…) or
change a lab file (File > Edit a lab file…).

The window edits a lab *document* (the dict docs/LABS.md describes) and its pictures; after every
change the engine builds the lab from it (``engine.labs.format.lab_from_dict``) and the bottom line
says whether it is ready or, in the engine's sentence, what is wrong.  Three tabs:

* **Lab**: id, title, description, author, the introduction in markdown with a live preview, and
  the starter: the network, data and training settings, taken from the canvas (again on request);
* **Steps**: add, remove and reorder steps; each step's title, points, instructions (markdown,
  live preview, pictures), hints, and its goal, a form generated from the goal schema
  (gui/goal_form.py);
* **Locks**: layers that cannot be deleted or changed (select them on the canvas, then "Lock"),
  the palette's allow-list, the fixed data split, and fixed or hidden training settings.

"Try as a student" opens a new project from the draft, as a student would get it; "Save lab…"
writes a ``.json`` lab, or a ``.layerlab-lab`` bundle when it holds pictures.
"""
from __future__ import annotations

import copy
import os
import re

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDialog, QDoubleSpinBox, QFormLayout,
                               QHBoxLayout, QHeaderView, QLabel, QLineEdit, QListWidget, QListWidgetItem,
                               QPlainTextEdit, QPushButton, QScrollArea, QSplitter, QTableWidget, QTableWidgetItem,
                               QTabWidget, QVBoxLayout, QWidget)

from engine.errors import LayerLabError
from engine.labs import save_lab
from engine.labs.format import (BUNDLE_SUFFIX, LAB_FORMAT, LAB_VERSION, MAX_PICTURE_BYTES, PICTURES, NodeLock,
                                lab_from_dict, lab_warnings)
from gui import dialogs
from gui.goal_form import GoalForm
from gui.markdown_view import MarkdownView

LAB_SAVE_FILTERS = f"LayerLab lab (*.json);;LayerLab lab bundle with pictures (*{BUNDLE_SUFFIX})"
PICTURE_FILTERS = "Pictures (*.png *.jpg *.jpeg *.gif)"
HINT_SEPARATOR = "---"
VALIDATE_MS = 200
#: training settings an instructor may fix or hide (the bookkeeping ones are left out)
LOCKABLE_SETTINGS = ("optimizer", "lr", "momentum", "weight_decay", "batch_size", "epochs", "seed", "loss",
                     "schedule", "early_stopping_patience", "grad_clip", "nesterov", "device")
SETTING_MODES = (("free", "students choose"), ("fixed", "fixed (shown, greyed)"), ("hidden", "hidden (lab's value)"))
_PICTURE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")


def slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (s or "my-lab")[:64].strip("-") or "my-lab"


def draft_from_project(project) -> dict:
    """A new lab document whose starter is ``project``: its graph, data and settings."""
    data = copy.deepcopy(project.data or {})
    if not data.get("test_fraction") and data.get("source") != "idx":
        data["test_fraction"] = 0.2  # goals are measured on a test split the student never trains on
    name = project.name if project.name and project.name != "Untitled" else "My lab"
    return {
        "format": LAB_FORMAT, "version": LAB_VERSION, "id": slug(name), "title": name,
        "description": "", "author": "",
        "introduction": f"# {name}\n\nWhat the student learns in this lab, and how.",
        "data": data, "starter": project.graph.to_dict(),
        "training": {k: v for k, v in (project.training or {}).items() if k != "device"},
        "locks": {"nodes": [], "data": True},
        "steps": [new_step(1)],
    }


def new_step(n: int) -> dict:
    return {"id": f"step-{n}", "title": f"Step {n}", "instructions": "What to do in this step.", "hints": [],
            "goal": {"kind": "hidden_layers", "at_least": 1}, "points": 1}


class MarkdownEditor(QWidget):
    """Markdown on the left, as the student will see it on the right; "Insert picture…"."""

    edited = Signal()

    def __init__(self, author: "LabAuthor", placeholder: str = "", parent=None):
        super().__init__(parent)
        self.author = author
        self.edit = QPlainTextEdit()
        self.edit.setPlaceholderText(placeholder)
        self.preview = MarkdownView()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.preview)
        scroll.setMinimumWidth(200)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        seen = QLabel("As the student sees it:")
        seen.setObjectName("Muted")
        rl.addWidget(seen)
        rl.addWidget(scroll, 1)
        split = QSplitter(Qt.Horizontal)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.edit, 1)
        picture = QPushButton("Insert picture…")
        picture.setToolTip("A PNG, JPEG or GIF goes into the lab itself (the lab is then saved as a bundle)")
        picture.clicked.connect(self.insert_picture)
        ll.addWidget(picture, 0, Qt.AlignLeft)
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([1, 1])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(split)
        self.edit.textChanged.connect(self._changed)

    def text(self) -> str:
        return self.edit.toPlainText()

    def set_text(self, text: str) -> None:
        self.edit.blockSignals(True)
        self.edit.setPlainText(text)
        self.edit.blockSignals(False)
        self.refresh()

    def refresh(self) -> None:
        self.preview.set_markdown(self.text(), self.author.resources())

    def _changed(self) -> None:
        self.refresh()
        self.edited.emit()

    def insert_picture(self) -> bool:
        path = dialogs.get_open_path(self, "Insert a picture", PICTURE_FILTERS, self.author.start_dir())
        if not path:
            return False
        url = self.author.add_picture(path)
        if url is None:
            return False
        caption = os.path.splitext(os.path.basename(path))[0]
        self.edit.insertPlainText(f"\n![{caption}]({url})\n")
        return True


class LabAuthor(QDialog):
    """The instructor's window; ``document()`` is the lab being written, ``lab()`` the engine's Lab."""

    def __init__(self, window, actions, lab=None):
        super().__init__(window, Qt.Window)
        self.window = window
        self.actions = actions
        self.setWindowTitle("Lab author — LayerLab")
        self.path: str | None = None
        if lab is not None:
            self.doc = lab.to_dict()
            self.pictures = dict(lab.pictures)
        else:
            self.doc = draft_from_project(window.document.project)
            self.pictures = {}
        self.problem = ""
        self._loading = False
        self._step_index = -1
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(VALIDATE_MS)
        self._timer.timeout.connect(self.validate)

        self.heading = QLabel()
        self.heading.setWordWrap(True)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_lab_tab(), "Lab")
        self.tabs.addTab(self._build_steps_tab(), "Steps")
        self.tabs.addTab(self._build_locks_tab(), "Locks")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.try_button = QPushButton("Try as a student")
        self.try_button.setToolTip("Open a new project from this lab, as a student gets it (locks and all)")
        self.try_button.clicked.connect(self.try_as_student)
        self.save_button = QPushButton("Save lab…")
        self.save_button.clicked.connect(self.save_dialog)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        buttons.addWidget(self.try_button)
        buttons.addWidget(self.save_button)
        buttons.addWidget(close)
        lay = QVBoxLayout(self)
        lay.addWidget(self.heading)
        lay.addWidget(self.tabs, 1)
        lay.addLayout(buttons)
        self.resize(1000, 700)
        origin = (f"from the lab “{lab.title}”" if lab is not None
                  else "with the network on the canvas as its starter")
        self.heading.setText(f"<b>Instructor mode</b>: writing a lab {_escape(origin)}. Students get the starter, "
                             "the data and the settings of the <i>Lab</i> tab, the <i>Steps</i> in order, and the "
                             "<i>Locks</i>.")
        self.load_document()

    # ------------------------------------------------------------------ the Lab tab
    def _build_lab_tab(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        form = QFormLayout()
        self.id_edit = QLineEdit()
        self.id_edit.setToolTip("Names the lab in projects and submissions: lower case, digits and - . _; "
                                "never change it once students have the lab")
        self.title_edit = QLineEdit()
        self.description_edit = QLineEdit()
        self.description_edit.setPlaceholderText("one line for lists")
        self.author_edit = QLineEdit()
        for label, w in (("Id", self.id_edit), ("Title", self.title_edit), ("Description", self.description_edit),
                         ("Author", self.author_edit)):
            form.addRow(label, w)
            w.textChanged.connect(self.changed)
        lay.addLayout(form)
        lay.addWidget(QLabel("<b>Introduction</b> (markdown; the student reads it first)"))
        self.intro_editor = MarkdownEditor(self, "# Title\n\nWhat this lab is about.")
        self.intro_editor.edited.connect(self.changed)
        lay.addWidget(self.intro_editor, 1)
        self.starter_label = QLabel()
        self.starter_label.setWordWrap(True)
        self.starter_label.setObjectName("Muted")
        take = QPushButton("Take the network, data and settings from the canvas")
        take.setToolTip("The starter becomes the project open in the window now (node locks on layers that "
                        "are gone are dropped)")
        take.clicked.connect(self.take_starter_from_canvas)
        row = QHBoxLayout()
        row.addWidget(self.starter_label, 1)
        row.addWidget(take)
        lay.addLayout(row)
        return page

    # ------------------------------------------------------------------ the Steps tab
    def _build_steps_tab(self) -> QWidget:
        page = QWidget()
        lay = QHBoxLayout(page)
        left = QVBoxLayout()
        self.step_list = QListWidget()
        self.step_list.setTextElideMode(Qt.ElideRight)
        self.step_list.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.step_list.currentRowChanged.connect(self._show_step)
        left.addWidget(self.step_list, 1)
        row = QHBoxLayout()
        for text, slot, tip in (("Add", self.add_step, "A new step after the selected one"),
                                ("Remove", self.remove_step, "Remove the selected step"),
                                ("↑", lambda: self.move_step(-1), "Move the step up"),
                                ("↓", lambda: self.move_step(1), "Move the step down")):
            b = QPushButton(text)
            b.setToolTip(tip)
            b.clicked.connect(slot)
            row.addWidget(b)
        left.addLayout(row)
        holder = QWidget()
        holder.setLayout(left)
        holder.setMaximumWidth(260)
        lay.addWidget(holder)

        editor = QWidget()
        el = QVBoxLayout(editor)
        el.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
        self.step_id_edit = QLineEdit()
        self.step_title_edit = QLineEdit()
        self.points_box = QDoubleSpinBox()
        self.points_box.setRange(0, 1000)
        self.points_box.setDecimals(1)
        form.addRow("Id", self.step_id_edit)
        form.addRow("Title", self.step_title_edit)
        form.addRow("Points", self.points_box)
        el.addLayout(form)
        el.addWidget(QLabel("<b>Instructions</b> (markdown)"))
        self.instructions_editor = MarkdownEditor(self, "What to do in this step.")
        self.instructions_editor.setMinimumHeight(130)
        el.addWidget(self.instructions_editor, 2)
        el.addWidget(QLabel(f"<b>Hints</b>, revealed one at a time (separate hints with a line of "
                            f"<code>{HINT_SEPARATOR}</code>)"))
        self.hints_edit = QPlainTextEdit()
        self.hints_edit.setMaximumHeight(80)
        el.addWidget(self.hints_edit)
        el.addWidget(QLabel("<b>Goal</b>: when the step ticks"))
        self.goal_form = GoalForm()
        goal_scroll = QScrollArea()
        goal_scroll.setWidgetResizable(True)
        goal_scroll.setWidget(self.goal_form)
        goal_scroll.setMinimumHeight(220)
        el.addWidget(goal_scroll, 3)
        for w in (self.step_id_edit, self.step_title_edit):
            w.textChanged.connect(self._step_edited)
        self.points_box.valueChanged.connect(self._step_edited)
        self.instructions_editor.edited.connect(self._step_edited)
        self.hints_edit.textChanged.connect(self._step_edited)
        self.goal_form.edited.connect(self._step_edited)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(editor)
        lay.addWidget(scroll, 1)
        return page

    # ------------------------------------------------------------------ the Locks tab
    def _build_locks_tab(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        lay.addWidget(QLabel("<b>Locked layers</b>: students can move them, not delete or change them"))
        self.node_table = QTableWidget(0, 4)
        self.node_table.setHorizontalHeaderLabels(["Layer", "No delete", "No change", "Why (shown to the student)"])
        self.node_table.horizontalHeader().setSectionResizeMode(3, QHeaderView.Stretch)
        self.node_table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.node_table.verticalHeader().hide()
        self.node_table.itemChanged.connect(self._locks_edited)
        lay.addWidget(self.node_table, 1)
        row = QHBoxLayout()
        lock = QPushButton("Lock the layers selected on the canvas")
        lock.clicked.connect(self.lock_selected_nodes)
        unlock = QPushButton("Unlock the selected rows")
        unlock.clicked.connect(self.unlock_selected_rows)
        row.addWidget(lock)
        row.addWidget(unlock)
        row.addStretch(1)
        lay.addLayout(row)
        columns = QHBoxLayout()
        palette_col = QVBoxLayout()
        self.palette_check = QCheckBox("Students may add only these layer types:")
        self.palette_check.toggled.connect(self._locks_edited)
        self.palette_list = QListWidget()
        from engine.layers import REGISTRY
        for specs in REGISTRY.categories().values():
            for spec in specs:
                item = QListWidgetItem(spec.type)
                item.setFlags(Qt.ItemIsEnabled | Qt.ItemIsUserCheckable)
                item.setCheckState(Qt.Unchecked)
                self.palette_list.addItem(item)
        self.palette_list.itemChanged.connect(self._locks_edited)
        palette_col.addWidget(self.palette_check)
        palette_col.addWidget(self.palette_list, 1)
        columns.addLayout(palette_col, 1)
        other = QVBoxLayout()
        self.data_check = QCheckBox("The data, its split and seeds are fixed (goals are measured on the lab's "
                                    "test split)")
        self.data_check.toggled.connect(self._locks_edited)
        other.addWidget(self.data_check)
        other.addWidget(QLabel("<b>Training settings</b>"))
        self.settings_table = QTableWidget(len(LOCKABLE_SETTINGS), 2)
        self.settings_table.setHorizontalHeaderLabels(["Setting", "Students…"])
        self.settings_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        self.settings_table.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
        self.settings_table.verticalHeader().hide()
        self.setting_boxes: dict[str, QComboBox] = {}
        for i, name in enumerate(LOCKABLE_SETTINGS):
            item = QTableWidgetItem(name)
            item.setFlags(Qt.ItemIsEnabled)
            self.settings_table.setItem(i, 0, item)
            box = QComboBox()
            for mode, text in SETTING_MODES:
                box.addItem(text, mode)
            box.currentIndexChanged.connect(self._locks_edited)
            self.settings_table.setCellWidget(i, 1, box)
            self.setting_boxes[name] = box
        other.addWidget(self.settings_table, 1)
        columns.addLayout(other, 1)
        lay.addLayout(columns, 2)
        return page

    # ------------------------------------------------------------------ document <-> widgets
    def load_document(self) -> None:
        """Show ``self.doc`` in every tab."""
        self._loading = True
        try:
            d = self.doc
            self.id_edit.setText(d.get("id", ""))
            self.title_edit.setText(d.get("title", ""))
            self.description_edit.setText(d.get("description", ""))
            self.author_edit.setText(d.get("author", ""))
            self.intro_editor.set_text(d.get("introduction", ""))
            self._fill_step_list()
            self._show_locks()
            self._show_starter()
        finally:
            self._loading = False
        self.step_list.setCurrentRow(0 if self.doc.get("steps") else -1)
        self._show_step(self.step_list.currentRow())
        self.validate()

    def _fill_step_list(self) -> None:
        current = self.step_list.currentRow()
        self.step_list.blockSignals(True)
        self.step_list.clear()
        for i, s in enumerate(self.doc.get("steps") or [], 1):
            self.step_list.addItem(f"{i}. {s.get('title', '')}")
        self.step_list.blockSignals(False)
        if 0 <= current < self.step_list.count():
            self.step_list.setCurrentRow(current)

    def _show_step(self, row: int) -> None:
        self._step_index = row
        steps = self.doc.get("steps") or []
        editing = 0 <= row < len(steps)
        for w in (self.step_id_edit, self.step_title_edit, self.points_box, self.instructions_editor,
                  self.hints_edit, self.goal_form):
            w.setEnabled(editing)
        if not editing:
            return
        s = steps[row]
        self._loading = True
        try:
            self.step_id_edit.setText(s.get("id", ""))
            self.step_title_edit.setText(s.get("title", ""))
            self.points_box.setValue(float(s.get("points", 1)))
            self.instructions_editor.set_text(s.get("instructions", ""))
            self.hints_edit.setPlainText(f"\n{HINT_SEPARATOR}\n".join(s.get("hints") or []))
            self.goal_form.set_goal(s.get("goal") or {})
        finally:
            self._loading = False

    def _step_edited(self, *_args) -> None:
        if self._loading or not 0 <= self._step_index < len(self.doc.get("steps") or []):
            return
        s = self.doc["steps"][self._step_index]
        s["id"] = self.step_id_edit.text().strip()
        s["title"] = self.step_title_edit.text()
        points = self.points_box.value()
        s["points"] = int(points) if float(points).is_integer() else points
        s["instructions"] = self.instructions_editor.text()
        hints = [h.strip() for h in re.split(rf"^\s*{re.escape(HINT_SEPARATOR)}\s*$", self.hints_edit.toPlainText(),
                                             flags=re.MULTILINE)]
        s["hints"] = [h for h in hints if h]
        s["goal"] = self.goal_form.goal()
        item = self.step_list.item(self._step_index)
        if item is not None:
            item.setText(f"{self._step_index + 1}. {s['title']}")
        self.changed()

    def changed(self, *_args) -> None:
        if self._loading:
            return
        d = self.doc
        d["id"] = self.id_edit.text().strip()
        d["title"] = self.title_edit.text()
        d["description"] = self.description_edit.text()
        d["author"] = self.author_edit.text()
        d["introduction"] = self.intro_editor.text()
        self._timer.start()

    # ------------------------------------------------------------------ steps
    def add_step(self) -> None:
        steps = self.doc.setdefault("steps", [])
        taken = {s.get("id") for s in steps}
        n = len(steps) + 1
        while f"step-{n}" in taken:
            n += 1
        at = self.step_list.currentRow() + 1 if self.step_list.currentRow() >= 0 else len(steps)
        steps.insert(at, new_step(n))
        self._fill_step_list()
        self.step_list.setCurrentRow(at)
        self.changed()

    def remove_step(self) -> None:
        row = self.step_list.currentRow()
        steps = self.doc.get("steps") or []
        if 0 <= row < len(steps):
            del steps[row]
            self._fill_step_list()
            self.step_list.setCurrentRow(min(row, len(steps) - 1))
            self._show_step(self.step_list.currentRow())
            self.changed()

    def move_step(self, d: int) -> None:
        row = self.step_list.currentRow()
        steps = self.doc.get("steps") or []
        to = row + d
        if 0 <= row < len(steps) and 0 <= to < len(steps):
            steps[row], steps[to] = steps[to], steps[row]
            self._fill_step_list()
            self.step_list.setCurrentRow(to)
            self.changed()

    # ------------------------------------------------------------------ locks
    def _starter_names(self) -> dict[str, tuple[str, str]]:
        return {n["id"]: (n["name"], n["type"]) for n in self.doc["starter"]["nodes"]}

    def _show_locks(self) -> None:
        locks = self.doc.setdefault("locks", {})
        names = self._starter_names()
        by_name = {v[0]: k for k, v in names.items()}
        self.node_table.blockSignals(True)
        self.node_table.setRowCount(0)
        for entry in locks.get("nodes") or []:
            node_id = entry["node"] if entry["node"] in names else by_name.get(entry["node"], entry["node"])
            self._add_lock_row(node_id, entry.get("delete", True), entry.get("edit", True),
                               entry.get("reason", NodeLock.reason))
        self.node_table.blockSignals(False)
        palette = locks.get("palette")
        self.palette_check.setChecked(palette is not None)
        allowed = set(palette or [])
        for i in range(self.palette_list.count()):
            item = self.palette_list.item(i)
            item.setCheckState(Qt.Checked if item.text() in allowed else Qt.Unchecked)
        self.data_check.setChecked(bool(locks.get("data", True)))
        settings = locks.get("settings") or {}
        for name, box in self.setting_boxes.items():
            box.setCurrentIndex(max(0, box.findData(settings.get(name, "free"))))

    def _add_lock_row(self, node_id: str, delete: bool, edit: bool, reason: str) -> None:
        name, kind = self._starter_names().get(node_id, (node_id, "?"))
        r = self.node_table.rowCount()
        self.node_table.insertRow(r)
        label = QTableWidgetItem(f"{name} ({kind})")
        label.setData(Qt.UserRole, node_id)
        label.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable)
        self.node_table.setItem(r, 0, label)
        for col, on in ((1, delete), (2, edit)):
            item = QTableWidgetItem()
            item.setFlags(Qt.ItemIsEnabled | Qt.ItemIsUserCheckable | Qt.ItemIsSelectable)
            item.setCheckState(Qt.Checked if on else Qt.Unchecked)
            self.node_table.setItem(r, col, item)
        self.node_table.setItem(r, 3, QTableWidgetItem(reason))

    def _locks_edited(self, *_args) -> None:
        if self._loading:
            return
        nodes = []
        for r in range(self.node_table.rowCount()):
            label = self.node_table.item(r, 0)
            if label is None or self.node_table.item(r, 3) is None:
                continue
            entry = {"node": label.data(Qt.UserRole)}
            if self.node_table.item(r, 1).checkState() != Qt.Checked:
                entry["delete"] = False
            if self.node_table.item(r, 2).checkState() != Qt.Checked:
                entry["edit"] = False
            entry["reason"] = self.node_table.item(r, 3).text()
            nodes.append(entry)
        locks = {"nodes": nodes, "data": self.data_check.isChecked()}
        self.palette_list.setEnabled(self.palette_check.isChecked())
        if self.palette_check.isChecked():
            locks["palette"] = [self.palette_list.item(i).text() for i in range(self.palette_list.count())
                                if self.palette_list.item(i).checkState() == Qt.Checked]
        settings = {name: box.currentData() for name, box in self.setting_boxes.items() if box.currentData() != "free"}
        if settings:
            locks["settings"] = settings
        self.doc["locks"] = locks
        self._timer.start()

    def lock_selected_nodes(self) -> list[str]:
        """Lock the layers selected on the window's canvas (they must be in the lab's starter)."""
        selected = self.window.scene.selected_node_ids()
        names = self._starter_names()
        present = {self.node_table.item(r, 0).data(Qt.UserRole) for r in range(self.node_table.rowCount())}
        missing = [self.window.document.graph.node(n).name for n in selected if n not in names]
        added = []
        self.node_table.blockSignals(True)
        for node_id in selected:
            if node_id in names and node_id not in present:
                self._add_lock_row(node_id, True, True, NodeLock.reason)
                added.append(node_id)
        self.node_table.blockSignals(False)
        self._locks_edited()
        if not selected:
            dialogs.show_info(self, "Lock layers", "Select the layers to lock on the canvas first (click them; "
                                                   "Shift+click adds one more), then press the button again.")
        elif missing:
            dialogs.show_error(self, "Lock layers", f"Not in the lab's starter network: {', '.join(missing)}. "
                                                    "Take the starter from the canvas first (on the Lab tab).")
        return added

    def unlock_selected_rows(self) -> None:
        rows = sorted({i.row() for i in self.node_table.selectedIndexes()}, reverse=True)
        for r in rows:
            self.node_table.removeRow(r)
        self._locks_edited()

    # ------------------------------------------------------------------ the starter
    def _show_starter(self) -> None:
        from engine.data.params import SPLIT_DEFAULTS
        d = self.doc
        n = len(d["starter"]["nodes"])
        data = {**SPLIT_DEFAULTS, **(d.get("data") or {})}
        split = f"validation {data.get('val_fraction', '?')}, test {data.get('test_fraction', '?')}, " \
                f"split seed {data.get('split_seed', '?')}"
        training = ", ".join(f"{k} {v}" for k, v in (d.get("training") or {}).items()) or "the defaults"
        self.starter_label.setText(f"Starter: {n} layers · data: {data.get('source', '?')} ({split}) · "
                                   f"training: {training}")

    def take_starter_from_canvas(self) -> None:
        fresh = draft_from_project(self.window.document.project)
        self.doc["starter"], self.doc["data"], self.doc["training"] = fresh["starter"], fresh["data"], \
            fresh["training"]
        ids = {n["id"] for n in self.doc["starter"]["nodes"]}
        locks = self.doc.setdefault("locks", {})
        locks["nodes"] = [e for e in locks.get("nodes") or [] if e["node"] in ids
                          or any(n["name"] == e["node"] for n in self.doc["starter"]["nodes"])]
        self._loading = True
        try:
            self._show_locks()
            self._show_starter()
        finally:
            self._loading = False
        self.validate()

    # ------------------------------------------------------------------ pictures
    def resources(self) -> dict[str, bytes]:
        return dict(self.pictures)

    def start_dir(self) -> str:
        from gui.lab_session import lab_dialog_folder

        return lab_dialog_folder(self.window, self.path)

    def add_picture(self, path: str) -> str | None:
        """Put a picture file into the lab; returns the URL to write in markdown (None: refused, said why)."""
        try:
            size = os.path.getsize(path)
            if size > MAX_PICTURE_BYTES:
                raise LayerLabError(f"{os.path.basename(path)} is {size:,} bytes; a lab's picture is at most "
                                    f"{MAX_PICTURE_BYTES:,}.")
            with open(path, "rb") as f:
                raw = f.read(MAX_PICTURE_BYTES + 1)
        except OSError as exc:
            dialogs.show_error(self, "Cannot insert the picture", f"Cannot read {path}: {exc.strerror or exc}.")
            return None
        except LayerLabError as exc:
            dialogs.show_error(self, "Cannot insert the picture", str(exc))
            return None
        if not raw.startswith(_PICTURE_MAGIC):
            dialogs.show_error(self, "Cannot insert the picture", f"{os.path.basename(path)} is not a PNG, JPEG or "
                                                                  "GIF picture.")
            return None
        stem, ext = os.path.splitext(os.path.basename(path))
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._") or "picture"
        name = f"{PICTURES}{stem[:80]}{ext.lower()}"
        n = 2
        while name in self.pictures and self.pictures[name] != raw:
            name = f"{PICTURES}{stem[:80]}-{n}{ext.lower()}"
            n += 1
        self.pictures[name] = raw
        return name

    # ------------------------------------------------------------------ checking, trying, saving
    def document(self) -> dict:
        return copy.deepcopy(self.doc)

    def _used_pictures(self) -> dict[str, bytes]:
        """The pictures the markdown still shows (a deleted reference leaves its picture out)."""
        texts = [self.doc.get("introduction", "")] + [t for s in self.doc.get("steps") or []
                                                      for t in [s.get("instructions", ""), *(s.get("hints") or [])]]
        joined = "\n".join(texts)
        return {name: raw for name, raw in self.pictures.items() if name in joined}

    def lab(self):
        """The lab as the engine reads it; LayerLabError (one sentence) when something is wrong."""
        base = os.path.dirname(self.path) if self.path else (
            os.path.dirname(self.window.document.path) if self.window.document.path else None)
        return lab_from_dict(self.document(), self._used_pictures(), base_dir=base)

    def validate(self):
        self._timer.stop()
        from gui import theme
        t = theme.current()
        try:
            lab = self.lab()
        except LayerLabError as exc:
            self.problem = str(exc)
            self.status.setText(f"<span style='color:{t.error}'>✖ {_escape(self.problem)}</span>")
            return None
        self.problem = ""
        pictures = f", {len(lab.pictures)} picture{'s' if len(lab.pictures) != 1 else ''}" if lab.pictures else ""
        steps = f"{len(lab.steps)} step{'s' if len(lab.steps) != 1 else ''}"
        warnings = "".join(f"<br><span style='color:{t.warning}'>⚠ {_escape(w)}</span>" for w in lab_warnings(lab))
        self.status.setText(f"<span style='color:{t.ok}'>✓</span> The lab is ready: {steps}, "
                            f"{lab.max_points:g} point{'s' if lab.max_points != 1 else ''}{pictures}. "
                            "Try it as a student, then save it." + warnings)
        return lab

    def _valid_or_say(self):
        lab = self.validate()
        if lab is None:
            dialogs.show_error(self, "The lab is not ready", self.problem)
        return lab

    def try_as_student(self) -> bool:
        lab = self._valid_or_say()
        return lab is not None and self.actions.open_lab(lab)

    def save_dialog(self) -> str | None:
        lab = self._valid_or_say()
        if lab is None:
            return None
        suffix = BUNDLE_SUFFIX if lab.pictures else ".json"
        start = self.path or os.path.join(self.start_dir(), f"{lab.id}{suffix}")
        path = dialogs.get_save_path(self, "Save the lab", LAB_SAVE_FILTERS, start)
        return self.save_to(path) if path else None

    def save_to(self, path: str) -> str | None:
        lab = self._valid_or_say()
        if lab is None:
            return None
        root = path[:-len(BUNDLE_SUFFIX)] if path.endswith(BUNDLE_SUFFIX) else os.path.splitext(path)[0]
        path = root + (BUNDLE_SUFFIX if lab.pictures else ".json")  # pictures travel inside a bundle
        try:
            save_lab(path, lab)
        except (LayerLabError, OSError) as exc:
            dialogs.show_error(self, "Cannot save the lab", str(getattr(exc, "strerror", None) or exc))
            return None
        from gui.lab_session import remember_lab_file
        self.path = os.path.abspath(path)
        remember_lab_file(lab.id, self.path)
        self.status.setText(f"Saved {self.path}")
        return self.path


def _escape(text: str) -> str:
    import html
    return html.escape(text, quote=False)
