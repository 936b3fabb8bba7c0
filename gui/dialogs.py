"""Every modal dialog the editor opens goes through these functions.

Tests replace them with ``monkeypatch.setattr(gui.dialogs, "show_error", ...)``, so
callers must look them up on the module (``dialogs.show_error(...)``), never import
the functions by name.
"""
from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox, QWidget


def show_error(parent: QWidget | None, title: str, text: str) -> None:
    """One clear sentence in a modal box (bad file, bad data...)."""
    QMessageBox.warning(parent, title, text)


def show_info(parent: QWidget | None, title: str, text: str) -> None:
    QMessageBox.information(parent, title, text)


def ask_yes_no(parent: QWidget | None, title: str, text: str) -> bool:
    answer = QMessageBox.question(parent, title, text, QMessageBox.Yes | QMessageBox.No, QMessageBox.Yes)
    return answer == QMessageBox.Yes


def ask_stop_run(parent: QWidget | None) -> bool:
    """A run is in progress and the project is about to go away: stop it (keeping its weights) or not."""
    box = QMessageBox(QMessageBox.Question, "Training is running",
                      "A training run is in progress. Stop it and keep the weights it has reached?",
                      QMessageBox.NoButton, parent)
    stop = box.addButton("Stop and keep the weights", QMessageBox.AcceptRole)
    box.addButton(QMessageBox.Cancel)
    box.setDefaultButton(stop)
    box.exec()
    return box.clickedButton() is stop


def ask_recover(parent: QWidget | None, description: str) -> str:
    """'recover', 'discard', or 'later' when the question went unanswered (closed, or the app was
    ended while it was open): the autosave is then kept for the next start."""
    box = QMessageBox(QMessageBox.Question, "Recover unsaved work?",
                      f"LayerLab did not close properly last time. Recover {description}?\n\n"
                      "Recover opens it (save it to keep it); Discard deletes it.", QMessageBox.NoButton, parent)
    recover = box.addButton("Recover", QMessageBox.AcceptRole)
    discard = box.addButton("Discard", QMessageBox.DestructiveRole)
    box.setDefaultButton(recover)
    box.exec()
    return {recover: "recover", discard: "discard"}.get(box.clickedButton(), "later")


def ask_save_changes(parent: QWidget | None, name: str) -> str:
    """'save', 'discard' or 'cancel' for a document with unsaved changes."""
    box = QMessageBox(QMessageBox.Warning, "Unsaved changes",
                      f"“{name}” has unsaved changes. Save them first?",  # closing, or opening another
                      QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, parent)
    box.setDefaultButton(QMessageBox.Save)
    answer = box.exec()
    return {QMessageBox.Save: "save", QMessageBox.Discard: "discard"}.get(answer, "cancel")


def get_open_path(parent: QWidget | None, title: str, filters: str, directory: str = "") -> str:
    """A chosen existing file, or '' when cancelled."""
    path, _ = QFileDialog.getOpenFileName(parent, title, directory, filters)
    return path


def get_save_path(parent: QWidget | None, title: str, filters: str, directory: str = "") -> str:
    path, _ = QFileDialog.getSaveFileName(parent, title, directory, filters)
    return path


def get_directory(parent: QWidget | None, title: str, directory: str = "") -> str:
    return QFileDialog.getExistingDirectory(parent, title, directory)


def exec_menu(menu, screen_pos) -> None:
    """Show a context menu modally (tests replace this to inspect and trigger its actions)."""
    menu.exec(screen_pos)


def get_item(parent: QWidget | None, title: str, label: str, items: list[str], current: int = 0) -> str | None:
    """One of ``items``, or None when cancelled."""
    item, ok = QInputDialog.getItem(parent, title, label, items, current, False)
    return item if ok else None


def get_import_options(parent: QWidget | None, filename: str, warning: str | None, fields=("class", "shape"),
                       values: dict | None = None, problem: str = "") -> dict | None:
    """Before a model file is imported: the trust warning for code (None: not code), and the
    ``fields`` the file may need (``class``, ``shape``, ``weights``), each optional and filled from
    ``values``; ``problem`` says why the form is asked again.  None when cancelled."""
    from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                                   QPushButton, QVBoxLayout)

    values = values or {}
    box = QDialog(parent)
    box.setWindowTitle(f"Import {filename}")
    box.setMinimumWidth(560)  # room for the fields' hints, which were cut at the form's natural width
    lay = QVBoxLayout(box)
    if warning:
        note = QLabel(f"<b>{warning}</b><br>Importing {filename} runs its code with your rights.")
        note.setWordWrap(True)
        lay.addWidget(note)
    if problem:
        said = QLabel(problem)
        said.setObjectName("InlineError")  # the theme colours it as the inspector's errors
        said.setWordWrap(True)
        lay.addWidget(said)
    class_name, shape, weights = QLineEdit(values.get("class_name") or ""), QLineEdit(), QLineEdit()
    if values.get("input_shape"):
        shape.setText(", ".join(map(str, values["input_shape"])))
    weights.setText(str(values.get("weights") or ""))
    class_name.setPlaceholderText("empty: the file's only model")
    shape.setPlaceholderText("e.g. 1, 28, 28 (empty: from the file)")
    weights.setPlaceholderText("a state dict, .safetensors or .pt (empty: fresh weights)")
    form = QFormLayout()
    if "class" in fields:
        form.addRow("Model class", class_name)
    if "shape" in fields:
        form.addRow("One sample's shape", shape)
    if "weights" in fields:
        browse = QPushButton("Browse…")
        browse.clicked.connect(lambda: weights.setText(
            get_open_path(box, "Weights for the model", WEIGHT_FILTERS) or weights.text()))
        row = QHBoxLayout()
        row.addWidget(weights, 1)
        row.addWidget(browse)
        form.addRow("Weights", row)
    lay.addLayout(form)
    buttons = QDialogButtonBox(QDialogButtonBox.Cancel)
    buttons.addButton("Run and import" if warning else "Import", QDialogButtonBox.AcceptRole)
    buttons.accepted.connect(box.accept)
    buttons.rejected.connect(box.reject)
    lay.addWidget(buttons)
    if box.exec() != QDialog.Accepted:
        return None
    sizes = [s for s in shape.text().replace("(", "").replace(")", "").replace(" ", "").split(",") if s]
    try:
        input_shape = tuple(int(s) for s in sizes) or None
    except ValueError:
        show_error(parent, f"Import {filename}", f"The shape '{shape.text()}' is not a list of sizes like 1, 28, 28.")
        return None
    return {"class_name": class_name.text().strip() or None, "input_shape": input_shape,
            "weights": weights.text().strip() or None}


#: the files a .py model's weights may come in
WEIGHT_FILTERS = "Weights (*.safetensors *.pt *.pth *.bin);;All files (*)"


def get_student(parent: QWidget | None, lab_title: str, name: str = "", student_id: str = "") -> dict | None:
    """The student's name and id for a submission ({"name", "id"}, either may be empty but not
    both), or None when cancelled."""
    from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QVBoxLayout

    box = QDialog(parent)
    box.setWindowTitle("Submit the lab")
    lay = QVBoxLayout(box)
    note = QLabel(f"Hand in <b>{lab_title}</b>: your network, its weights and settings, your answers and the "
                  "steps you have done go into one file for your instructor.")
    note.setWordWrap(True)
    lay.addWidget(note)
    name_edit, id_edit = QLineEdit(name), QLineEdit(student_id)
    name_edit.setPlaceholderText("e.g. Ada Lovelace")
    id_edit.setPlaceholderText("your student number, if your instructor asks for one")
    form = QFormLayout()
    form.addRow("Your name", name_edit)
    form.addRow("Student id", id_edit)
    lay.addLayout(form)
    buttons = QDialogButtonBox(QDialogButtonBox.Cancel)
    ok = buttons.addButton("Continue", QDialogButtonBox.AcceptRole)
    buttons.accepted.connect(box.accept)
    buttons.rejected.connect(box.reject)
    lay.addWidget(buttons)

    def allow() -> None:
        ok.setEnabled(bool(name_edit.text().strip() or id_edit.text().strip()))
    name_edit.textChanged.connect(allow)
    id_edit.textChanged.connect(allow)
    allow()
    if box.exec() != QDialog.Accepted:
        return None
    return {"name": name_edit.text().strip(), "id": id_edit.text().strip()}
