"""File > Export… and File > Import model…: the GUI over ``engine.export`` and ``engine.importers``.

The Export dialog picks a format, the weights (current, or a timeline epoch) and a path, runs the
export on a worker thread (ONNX takes 1-8 s) with a busy bar, then shows what was written and how
it was verified (for ONNX: the max abs difference against onnxruntime).  A graph with errors is
refused with the list of its errors.

Import model… asks for a file; a .py file (or a package, whose model.py is a .py file) runs when
imported, so it first says so and asks for the class name.  The imported project is saved as a
.layerlab file and opened through the window.

``install_export_ui(window)`` adds both actions to the window's File menu, before Quit.  The
dialog works on a snapshot of ``window.document.project``; it holds no model state of its own.
"""
from __future__ import annotations

import copy
import os
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QPlainTextEdit, QProgressBar, QPushButton, QVBoxLayout, QWidget)

from engine.errors import LayerLabError
from gui import dialogs
from gui.busy import Cancelled, run_busy

IMPORT_FILTERS = ("Models (*.py *.onnx *.safetensors *.zip *.pt *.pth);;Python model (*.py);;ONNX (*.onnx);;"
                  "LayerLab safetensors (*.safetensors);;Exported package (*.zip);;All files (*)")
CURRENT = "Current weights"


class _Job(QObject):
    """One export on a daemon thread; ``done(result, error)`` arrives on the GUI thread (queued)."""

    done = Signal(object, object)

    def __init__(self, fn):
        super().__init__()
        self._fn = fn

    def start(self) -> None:
        threading.Thread(target=self._run, name="layerlab-export", daemon=True).start()

    def _run(self) -> None:
        try:
            result, error = self._fn(), None
        except BaseException as exc:  # noqa: BLE001 - handed to the GUI thread
            result, error = None, exc
        try:
            self.done.emit(result, error)
        except RuntimeError:  # the dialog was closed and deleted meanwhile
            pass


def project_snapshot(project):
    """What the worker exports: a copy of the graph and settings, sharing the (read-only) weight tensors."""
    from engine.project import Project

    return Project(graph=project.graph.copy(), data=copy.deepcopy(project.data),
                   training=copy.deepcopy(project.training), name=project.name, description=project.description,
                   normalization=copy.deepcopy(project.normalization), history=list(project.history),
                   weights=dict(project.weights) if project.weights else None,
                   checkpoints=dict(project.checkpoints or {}), run=dict(project.run))


class ExportDialog(QDialog):
    """Format, weights, path; Export runs off the GUI thread and shows the verification."""

    finished_export = Signal(object)  # the ExportResult, or the exception (tests wait on it)

    def __init__(self, window, parent: QWidget | None = None):
        super().__init__(parent or window)
        from engine.export import FORMATS

        self.window_ = window
        self.document = window.document
        self._job: _Job | None = None
        self._replace_confirmed = ""  # the path Browse's save dialog confirmed replacing
        self._shown_format = ""  # the format whose default name Save to was given
        self.setWindowTitle("Export model")
        self.setModal(True)
        self.setMinimumWidth(620)

        self.format = QComboBox()
        for f in FORMATS.values():
            self.format.addItem(f.title, f.name)
        self.format_help = QLabel()
        self.format_help.setWordWrap(True)
        self.format_help.setObjectName("hint")
        # a wrapped label in a form row gets one line's height unless told: room for two
        self.format_help.setMinimumHeight(2 * self.format_help.fontMetrics().lineSpacing() + 6)
        self.epoch = QComboBox()
        self.path = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(self.browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path, 1)
        path_row.addWidget(browse)

        form = QFormLayout()
        form.addRow("Format", self.format)
        form.addRow("", self.format_help)
        form.addRow("Weights", self.epoch)
        form.addRow("Save to", path_row)

        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy: an export does not report how far it is
        self.progress.setVisible(False)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setVisible(False)
        self.details.setMaximumHeight(140)
        self.details_button = QPushButton("Exporter messages")
        self.details_button.setCheckable(True)
        self.details_button.setVisible(False)
        self.details_button.toggled.connect(self.details.setVisible)

        self.buttons = QDialogButtonBox()
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.AcceptRole)
        self.close_button = self.buttons.addButton("Close", QDialogButtonBox.RejectRole)
        self.export_button.clicked.connect(self.start_export)
        self.close_button.clicked.connect(self.reject)
        self.export_button.setDefault(True)

        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(self.details_button, 0, Qt.AlignLeft)
        lay.addWidget(self.details)
        lay.addStretch(1)
        lay.addWidget(self.buttons)

        self.format.currentIndexChanged.connect(self._format_changed)
        self._fill_epochs()
        self._format_changed()

    # ------------------------------------------------------------------ form
    def _fill_epochs(self) -> None:
        project = self.document.project
        self.epoch.clear()
        if project.weights:
            self.epoch.addItem(CURRENT, None)
        from gui.views.timeline import epoch_metrics_text

        metrics = {r.get("epoch"): r for r in project.history or []}
        for k in sorted(project.checkpoints or {}):  # with its figures: the best epoch is picked by them
            self.epoch.addItem(("Before training (epoch 0)" if k == 0 else f"Timeline epoch {k}")
                               + epoch_metrics_text(metrics.get(k, {})), k)
        if self.epoch.count() == 0:
            self.epoch.addItem("No trained weights yet: train first", None)
            self.epoch.setEnabled(False)
            self.export_button.setEnabled(False)  # nothing to export; the Weights row says why

    def _folder(self) -> str:
        path = self.document.path
        return os.path.dirname(path) if path else os.path.expanduser("~")

    def _format_changed(self) -> None:
        from engine.export import FORMATS, default_path

        fmt = FORMATS[self.format.currentData()]
        self.format_help.setText(fmt.description)
        # the folder the person chose stays (it went back to the project's folder on every switch),
        # and the last export's result goes: it was about another format
        current = self.path.text().strip()
        folder = os.path.dirname(current) if current else self._folder()
        # and the name the person typed stays, with the new format's ending (it went back to the default)
        default = default_path(self.document.project.name or "model", fmt.name, folder or self._folder())
        previous = default_path(self.document.project.name or "model", self._shown_format, folder) \
            if self._shown_format else None
        typed = current and previous is not None and Path(current).name != previous.name
        self._shown_format = fmt.name
        self.path.setText(str(Path(folder or self._folder()) / (_stem(Path(current)) + (fmt.suffix or "")))
                          if typed else str(default))
        if not self.busy:  # the last export's result and messages were about another format
            self.status.setText("")
            self.details.clear()
            self.details_button.setChecked(False)
            self.details_button.setVisible(False)

    def browse(self) -> None:
        from engine.export import FORMATS

        fmt = FORMATS[self.format.currentData()]
        filters = ("A folder name, or a .zip (*.zip);;All files (*)" if fmt.name == "python"
                   else f"{fmt.title} (*{fmt.suffix});;All files (*)")
        chosen = dialogs.get_save_path(self, "Export to", filters, self.path.text())
        if chosen:
            self.path.setText(chosen)
            self._replace_confirmed = chosen  # the save dialog asked before picking an existing file

    # ------------------------------------------------------------------ export
    @property
    def busy(self) -> bool:
        return self._job is not None

    def start_export(self) -> None:
        from engine.export import export_project
        from engine.export.target import check_export_target

        if self.busy:
            return
        if not self.document.project.weights and not self.document.project.checkpoints:
            self._show_failure("This project has no trained weights yet; train it first.")
            return
        out = self.path.text().strip()
        if not out:
            self._show_failure("Choose where to save the export.")
            return
        fmt, epoch = self.format.currentData(), self.epoch.currentData()
        try:  # as the command line refuses it: the open project, another format's suffix, no room to write
            check_export_target(out, fmt, self.document.path, flag="Save to")
        except LayerLabError as exc:
            self._show_failure(str(exc))
            return
        if not self._may_replace(out, fmt):
            return
        project = project_snapshot(self.document.project)
        base_dir = os.path.dirname(os.path.abspath(self.document.path)) if self.document.path else None
        self._set_busy(True, f"Exporting {self.format.currentText()}…"
                       + (" (ONNX export takes a few seconds)" if fmt == "onnx" else ""))
        self._job = _Job(lambda: export_project(project, fmt, Path(out), epoch=epoch, base_dir=base_dir))
        self._job.done.connect(self._export_done, Qt.QueuedConnection)
        self._job.start()

    def _may_replace(self, out: str, fmt: str) -> bool:
        """Ask before an export replaces an existing file (a typed path; Browse asked already).
        The default name sits beside the project, so a model imported from m.onnx would have
        been written over its own source without a word."""
        if out == self._replace_confirmed or not os.path.exists(out):
            return True
        if fmt == "python" and os.path.isdir(out):  # the exporter replaces only an earlier package
            from engine.export.python_package import is_earlier_package

            if not is_earlier_package(out):
                return True  # not one: the exporter refuses it, with no question first
            question = f"{out} holds an earlier export. Replace it?"
        elif os.path.isdir(out):
            return True  # the exporter says a folder is no file name
        else:
            question = f"{os.path.basename(out)} already exists in {os.path.dirname(out) or '.'}. Replace it?"
        if not dialogs.ask_yes_no(self, "Replace the file?", question):
            self.status.setText("Not exported: choose another name, or confirm replacing the file.")
            return False
        return True

    def _set_busy(self, on: bool, text: str = "") -> None:
        self.progress.setVisible(on)
        for w in (self.export_button, self.format, self.epoch, self.path):
            w.setEnabled(not on)
        if text:
            self.status.setText(text)

    def _export_done(self, result, error) -> None:
        self._job = None
        self._set_busy(False)
        if error is not None:
            if not isinstance(error, LayerLabError):
                self._show_failure(f"The export failed unexpectedly: {type(error).__name__}: {error}")
            else:
                self._show_failure(str(error), getattr(error, "errors", ()))
            self.finished_export.emit(error)
            return
        lines = [f"<b>Exported</b> {result.path}" + (f" (replaced the existing {result.replaced})" if result.replaced else "")]
        if result.verification is not None:
            v = result.verification
            lines.append(f"<b>Verified</b> with {v.runtime} on {v.samples} {v.unit}s: "
                         f"max abs difference <b>{v.max_abs_diff:.2g}</b>")
        lines += [f"<i>{n}</i>" for n in result.notes]
        lines.append(f"{len(result.files)} file{'s' if len(result.files) != 1 else ''}, {result.seconds:.1f} s")
        self.status.setText("<br>".join(lines))
        self.details.setPlainText(result.log or "(the exporter said nothing)")
        self.details_button.setVisible(bool(result.log))
        self.window_.statusBar().showMessage(f"Exported {result.format} to {result.path}", 8000)
        self.finished_export.emit(result)

    def _show_failure(self, sentence: str, errors=()) -> None:
        text = f"<b>Not exported.</b> {sentence.split(': ', 1)[0] if errors else sentence}"
        if errors:
            text += "<ul>" + "".join(f"<li>{e}</li>" for e in errors) + "</ul>"
        self.status.setText(text)

    def reject(self) -> None:
        # closing while a job runs leaves it to finish on its daemon thread; its result is dropped
        if self._job is not None:
            self._job.done.disconnect()
            self._job = None
        super().reject()


def _stem(path: Path) -> str:
    """A file name without its format's ending (a package folder has none, or .zip)."""
    return path.name[: -len(path.suffix)] if path.suffix else path.name


# ----------------------------------------------------------------------------- import
def import_model_dialog(window) -> bool:
    """File > Import model…: pick a file, ask what it may need (the trust question for code, a
    class, a sample's shape, weights), import, save, open.  A refusal that more input answers
    asks the form again instead of ending the import; a weights file alone asks for its .py."""
    from engine.importers import (OPTIONS_READ, TRUST_WARNING, NeedsClassName, NeedsInputShape, WeightsWithoutModel,
                                  file_kind, import_model)
    from engine.project import save_project

    path = dialogs.get_open_path(window, "Import a model", IMPORT_FILTERS, window.start_folder())  # not the cwd
    if not path:
        return False
    source, options, problem = Path(path), {"class_name": None, "input_shape": None, "weights": None}, ""
    while True:
        kind = file_kind(source)
        code = kind in ("py", "package")
        if code or problem:  # code is asked about before it runs
            chosen = dialogs.get_import_options(window, source.name, TRUST_WARNING if code else None,
                                                _FORM_FIELDS.get(kind, ()), options, problem)
            if chosen is None:
                return False
            options.update(chosen)
        read = {k: v for k, v in options.items() if k in OPTIONS_READ.get(kind, ())}
        try:
            result = run_busy(window, f"Importing {source.name}…", lambda: import_model(source, **read))
            break
        except Cancelled:
            return False
        except (NeedsInputShape, NeedsClassName) as exc:
            field, ask = ("shape", "Give one sample's shape.") if isinstance(exc, NeedsInputShape) else \
                ("class", "Name the model class.")
            if field not in _FORM_FIELDS.get(kind, ()):  # no form field would answer it
                dialogs.show_error(window, "Cannot import the model", str(exc))
                return False
            problem = f"{exc.message} {ask}"
        except WeightsWithoutModel as exc:
            if not dialogs.ask_yes_no(window, "Weights without their network",
                                      f"{exc.message}\n\nChoose the model's .py file, to import it with them?"):
                return False
            py = dialogs.get_open_path(window, f"The model's .py file for {source.name}",
                                       "Python model (*.py);;All files (*)", str(source.parent))
            if not py:
                return False
            options["weights"], source, problem = str(source), Path(py), ""
        except LayerLabError as exc:
            dialogs.show_error(window, "Cannot import the model", str(exc))
            return False
    target = dialogs.get_save_path(window, "Save the imported project", "LayerLab project (*.layerlab)",
                                   str(source.with_suffix(".layerlab")))
    if not target:
        return False
    if not target.endswith(".layerlab"):
        target += ".layerlab"
    try:
        save_project(target, result.project)
    except OSError as exc:
        dialogs.show_error(window, "Cannot save the imported project", f"{target}: {exc.strerror or exc}.")
        return False
    if not window.open_path(target):
        return False
    summary = result.summary()
    window.statusBar().showMessage(summary.splitlines()[0], 12000)
    # the whole report: which data it opens on, what was checked, what could not come back (the
    # status bar cut it mid-sentence)
    dialogs.show_info(window, f"Imported {source.name}", summary)
    return True


#: the import form's fields for each kind of file (a package carries its class, shape and weights)
_FORM_FIELDS = {"py": ("class", "shape", "weights"), "onnx": ("shape",)}


# ----------------------------------------------------------------------------- the menu
def _file_menu(window):
    for action in window.menuBar().actions():
        menu = action.menu()
        if menu is not None and action.text().replace("&", "") == "File":
            return menu
    return None


def install_export_ui(window) -> None:
    """Add File > Export… and File > Import model… to the window, just before Quit."""
    menu = _file_menu(window)
    if menu is None:
        return
    window.export_dialog = None

    def show_export() -> None:
        dialog = ExportDialog(window)
        window.export_dialog = dialog
        dialog.show()

    export_action = QAction("&Export…", window)
    export_action.setShortcut("Ctrl+E")
    export_action.setStatusTip("Export the model: ONNX, .pt2, safetensors, TorchScript or a PyTorch package.")
    export_action.triggered.connect(show_export)
    import_action = QAction("&Import model…", window)
    import_action.setStatusTip("Open a PyTorch .py model, an ONNX file or an exported package as a project.")
    import_action.triggered.connect(lambda: import_model_dialog(window))
    quit_action = next((a for a in menu.actions() if a.text().replace("&", "") == "Quit"), None)
    if quit_action is None:
        menu.addSeparator()
        menu.addActions([export_action, import_action])
    else:
        menu.insertActions(quit_action, [export_action, import_action])
        menu.insertSeparator(quit_action)
    window.act_export, window.act_import_model = export_action, import_action
