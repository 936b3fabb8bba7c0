"""The open project, its undo stack, and the bridge from engine callbacks to Qt signals.

One ``Document`` lives as long as the main window.  Its ``graph`` is one engine
``Graph`` object for the whole session: opening or creating a project calls
``graph.replace_with(...)``, so everything that observes the graph stays attached.

Edits never touch the graph directly: they are ``QUndoCommand`` s (gui/commands.py)
pushed on ``undo_stack``.  The graph notifies the document after every change;
the document re-emits each event as ``graphEvent`` (the canvas mirrors those), and
coalesces re-analysis so a macro of many edits costs one shape-inference pass,
emitted as ``analysisChanged`` + ``graphChanged`` on the next event-loop turn.
Reading ``document.analysis`` always gives the analysis of the current graph.
"""
from __future__ import annotations

import copy
import os
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QUndoStack

from engine.errors import LayerLabError, ProjectFileError
from engine.graph import Graph, GraphEvent
from engine.project import Project, load_project, save_project
from engine.spec import InferContext
from engine.templates import TEMPLATES
from engine.validate import Analysis, ShapeInference

from gui.torch_loader import torch_ready, when_torch_ready

if TYPE_CHECKING:  # torch loads in the background (gui/torch_loader.py); compiling waits for it
    from engine.compile import CompiledModel

# Templates that only make sense on image data open with the digits dataset.
TEMPLATE_DATA = {"cnn": {"source": "digits"}, "lstm": {"source": "digits"}}
IMAGE_SOURCES = {"digits", "image_folder", "idx"}

# Event kinds that can change which weights a graph needs.
_WEIGHT_EVENTS = {"node_added", "node_removed", "edge_added", "edge_removed", "param_changed", "node_renamed",
                  "reset"}


class PendingData:
    """Data loaded and checked as numpy arrays, waiting for torch to become the Dataset."""

    def __init__(self, arrays, normalization=None):
        self.arrays = arrays  # engine.data.SplitArrays
        self.normalization = normalization

    def to_dataset(self):
        return self.arrays.to_dataset(self.normalization)


def blank_graph() -> Graph:
    """What File > New > Blank opens: an Input and an Output, ready to be joined by layers."""
    g = Graph()
    g.add_node("Input", {}, (0.0, 0.0))
    g.add_node("Output", {}, (570.0, 0.0))
    return g


class Document(QObject):
    graphEvent = Signal(object)  # every engine GraphEvent, in order
    graphChanged = Signal()  # coalesced: the graph changed since the last emission
    analysisChanged = Signal(object)  # engine.validate.Analysis
    datasetChanged = Signal(object)  # engine.data.Dataset or None (a project opened, or the data edited)
    datasetEdited = Signal(object)  # the user chose other data for this project (not emitted on open)
    projectReplaced = Signal()
    weightsChanged = Signal()
    modifiedChanged = Signal(bool)
    selectedNodeChanged = Signal(str)  # "" when the selection is not exactly one node
    overlayChanged = Signal(object)  # {"edge_colors": {...}, "node_images": {...}} or {}
    pathChanged = Signal(str)
    trainingConfigChanged = Signal(object)
    labChanged = Signal(object)  # the engine Lab whose locks apply to this project, or None

    def __init__(self, project: Project | None = None, parent: QObject | None = None, load_data: bool = True):
        super().__init__(parent)
        self.project: Project = project or Project(graph=blank_graph())
        self.graph: Graph = self.project.graph
        self.undo_stack = QUndoStack(self)
        self.path: str | None = None
        self.dataset = None
        self._pending: PendingData | None = None
        self.dataset_error = ""
        self.context = InferContext()
        self.selected_node = ""
        self.overlay: dict = {}
        #: the lab the open project was made from (engine.labs.Lab), set by the lab UI; its locks
        #: are enforced by the commands (gui/lab_locks.py).  None: no lab, nothing is locked.
        self.lab = None
        self._inference = ShapeInference(self.graph, self.context)
        self._analysis: Analysis | None = None
        self._analysis_dirty = True
        self._emit_pending = True
        self._extra_modified = False
        self._last_modified = False
        self._weights_signature = None
        self._weights_stale = False
        self._weights_check_pending = self.project.weights is not None
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(0)
        self._flush_timer.timeout.connect(self.flush)
        self.graph.subscribe(self._on_graph_event)
        self.undo_stack.cleanChanged.connect(self._update_modified)
        if load_data:
            self._load_project_data(self.project, None)
        self._flush_timer.start()

    # ------------------------------------------------------------------ analysis
    def _on_graph_event(self, event: GraphEvent) -> None:
        self._analysis_dirty = True
        self._emit_pending = True
        if event.kind in _WEIGHT_EVENTS:
            self._weights_check_pending = True
        self.graphEvent.emit(event)
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    @property
    def analysis(self) -> Analysis:
        """The analysis of the graph as it is now (recomputed on demand, incrementally)."""
        if self._analysis_dirty or self._analysis is None:
            self._analysis = self._inference.analyze()
            self._analysis_dirty = False
        return self._analysis

    def flush(self) -> None:
        """Emit the coalesced analysisChanged / graphChanged now (normally done by a 0 ms timer)."""
        self._flush_timer.stop()
        if not self._emit_pending and not self._analysis_dirty:
            return
        analysis = self.analysis
        self._emit_pending = False
        self._update_weights_stale()
        self.analysisChanged.emit(analysis)
        self.graphChanged.emit()

    def _invalidate(self) -> None:
        self._analysis_dirty = True
        self._emit_pending = True
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    # ------------------------------------------------------------------ commands
    def push(self, command) -> None:
        self.undo_stack.push(command)

    def compile(self) -> CompiledModel:
        """The graph as a trainable module; raises a LayerLabError (GraphInvalid) if it has errors."""
        from engine.compile import compile_graph

        return compile_graph(self.graph, self.context, analysis=self.analysis)

    # ------------------------------------------------------------------ selection / overlays
    def set_selected_node(self, node_id: str) -> None:
        if node_id != self.selected_node:
            self.selected_node = node_id
            self.selectedNodeChanged.emit(node_id)

    def set_overlay(self, overlay: dict | None) -> None:
        self.overlay = dict(overlay or {})
        self.overlayChanged.emit(self.overlay)

    # ------------------------------------------------------------------ weights
    def _param_signature(self):
        """What decides whether saved weights still fit: every parametrised node's name, type, params, inputs."""
        a = self.analysis
        sig = []
        for node in self.graph.nodes:
            info = a.nodes.get(node.id)
            if info is not None and info.n_params:
                sig.append((node.name, node.type, tuple(sorted((k, str(v)) for k, v in node.params.items())),
                            info.in_shapes))
        return tuple(sorted(sig))

    def set_weights(self, state_dict: dict | None) -> None:
        """Store trained weights in the project (None clears them)."""
        self.project.weights = dict(state_dict) if state_dict is not None else None
        self._weights_signature = self._param_signature() if state_dict is not None else None
        self._weights_stale = False
        self._extra_modified = True
        self._update_modified()
        self.weightsChanged.emit()

    @property
    def weights_stale(self) -> bool:
        """True when the graph changed since the weights were stored, so they no longer fit it."""
        return self.project.weights is not None and self._weights_stale

    def _update_weights_stale(self) -> None:
        if self.project.weights is None or not getattr(self, "_weights_check_pending", False):
            return
        self._weights_check_pending = False
        if self._weights_signature is None:
            self._weights_signature = self._param_signature()
        stale = self._param_signature() != self._weights_signature
        if stale != self._weights_stale:
            self._weights_stale = stale
            self.weightsChanged.emit()

    # ------------------------------------------------------------------ training config
    def training_config(self) -> dict:
        return copy.deepcopy(self.project.training)

    def set_training_config(self, config: dict) -> None:
        from gui.lab_locks import with_locked_settings
        config = with_locked_settings(self, copy.deepcopy(dict(config)))  # a lab's fixed settings stay its own
        if config == self.project.training:
            return
        self.project.training = config
        self._extra_modified = True
        self._update_modified()
        self.trainingConfigChanged.emit(self.training_config())

    # ------------------------------------------------------------------ data
    def _base_dir(self, path: str | None = None) -> str | None:
        path = path if path is not None else self.path
        return os.path.dirname(os.path.abspath(path)) if path else None

    def load_data(self, spec: dict, normalization=None, path: str | None = None):
        """Load the data a spec describes (raises engine.errors.DataError): the ``Dataset``, or - while
        torch is still loading (gui/torch_loader.py) - its ``SplitArrays``, which the document turns
        into the Dataset when torch is in."""
        from engine.data import Normalization, load_arrays, load_dataset  # lazy: the numpy loaders

        if torch_ready():
            return load_dataset(spec, normalization=normalization, base_dir=self._base_dir(path))
        arrays = load_arrays(spec, base_dir=self._base_dir(path))
        norm = Normalization.from_dict(normalization) if isinstance(normalization, dict) else normalization
        return PendingData(arrays, norm)

    @property
    def data_view(self):
        """What the editor shows of the data: the Dataset, or its arrays while torch loads (both have
        name, task, input_shape, n_outputs, counts and summary())."""
        return self.dataset if self.dataset is not None else (self._pending.arrays if self._pending else None)

    @property
    def data_pending(self) -> bool:
        """The data is loaded and checked, and waits for torch to become tensors."""
        return self._pending is not None

    @staticmethod
    def context_for(dataset) -> InferContext:
        from engine.run import context_for
        return context_for(dataset)

    def _load_project_data(self, project: Project, path: str | None) -> None:
        try:
            dataset = self.load_data(project.data, project.normalization, path)
            error = ""
        except LayerLabError as exc:
            dataset, error = None, str(exc)
        self._set_dataset(dataset, error)

    def _set_dataset(self, dataset, error: str = "") -> None:
        """Install a Dataset, or PendingData (its arrays now, the tensors when torch is in), or None."""
        self._pending = dataset if isinstance(dataset, PendingData) else None
        self.dataset = None if self._pending is not None else dataset
        self.dataset_error = error
        self.context = self.context_for(self.data_view)
        self._inference.set_context(self.context)
        self._weights_check_pending = True  # other data can change the shapes the weights must fit
        self._invalidate()
        if self._pending is not None:
            when_torch_ready(lambda pending=self._pending: self._complete(pending))

    def _complete(self, pending: "PendingData") -> None:
        """torch is in: the pending arrays become the Dataset (unless other data came meanwhile)."""
        if self._pending is not pending:
            return
        try:
            dataset = pending.to_dataset()
        except LayerLabError as exc:
            self._set_dataset(None, str(exc))
        else:
            self._set_dataset(dataset)
        self.datasetChanged.emit(self.dataset)

    def apply_data(self, spec: dict, dataset, normalization) -> None:
        """Install a data spec and its loaded dataset (SetDataSpecCommand calls this both ways)."""
        self.project.data = copy.deepcopy(spec)
        self.project.normalization = normalization
        self._set_dataset(dataset)
        self.datasetChanged.emit(dataset)
        self.datasetEdited.emit(dataset)

    def set_data_spec(self, spec: dict, parent=None) -> bool:
        """Switch to another dataset as one undoable step; bad data shows a sentence and changes nothing.

        The data loads on a worker thread (a big image folder takes a while): the window keeps
        painting, and after a moment a dialog offers to cancel."""
        from gui import busy, dialogs
        from gui.commands import SetDataSpecCommand
        try:
            dataset = busy.run_busy(parent, "Loading the data…", lambda: self.load_data(spec))
        except busy.Cancelled:
            return False
        except LayerLabError as exc:
            dialogs.show_error(parent, "Cannot load the data", str(exc))
            return False
        self.push(SetDataSpecCommand(self, dict(spec), dataset))
        return True

    # ------------------------------------------------------------------ lab
    def set_lab(self, lab) -> None:
        """Make ``lab``'s locks apply to the open project (None: no lab).

        The undo history is cleared when locks come into force on a project already being edited,
        so undo can never reach back to an edit the locks forbid."""
        if lab is self.lab:
            return
        if lab is not None and self.undo_stack.count():
            unsaved = not self.undo_stack.isClean()
            self.undo_stack.clear()  # (which also marks the stack clean: the edits are still unsaved)
            if unsaved:
                self.mark_modified()
        self.lab = lab
        self.labChanged.emit(lab)

    def lab_progress_changed(self) -> None:
        """The project's lab record (hints, answers, events, ticks) changed: it is saved with the project."""
        self.mark_modified()

    # ------------------------------------------------------------------ modified state
    def is_modified(self) -> bool:
        return not self.undo_stack.isClean() or self._extra_modified

    def _update_modified(self, *_args) -> None:
        m = self.is_modified()
        if m != self._last_modified:
            self._last_modified = m
            self.modifiedChanged.emit(m)

    def mark_modified(self) -> None:
        """For changes outside the undo stack (e.g. a recovered document that was never saved)."""
        self._extra_modified = True
        self._update_modified()

    @property
    def display_name(self) -> str:
        if self.path:
            return os.path.basename(self.path)
        return self.project.name or "Untitled"

    # ------------------------------------------------------------------ projects
    def _install(self, project: Project, path: str | None, dataset, dataset_error: str,
                 fresh_graph: bool = False) -> None:
        """``fresh_graph``: ``project`` was just read from a file, and nobody else holds its graph."""
        self.undo_stack.clear()
        self.set_selected_node("")
        self._set_dataset(dataset, dataset_error)
        self.graph.replace_with(project.graph, take=fresh_graph)
        project.graph = self.graph
        self.project = project
        self.path = path
        self._weights_signature = None
        self._weights_stale = False
        self._weights_check_pending = project.weights is not None
        self._extra_modified = False
        self.undo_stack.setClean()
        self.overlay = {}
        self.overlayChanged.emit({})
        self.pathChanged.emit(path or "")
        self.datasetChanged.emit(self.dataset)
        self.projectReplaced.emit()
        self._update_modified()
        self.flush()

    def _prepare(self, project: Project, path: str | None):
        """The project's dataset (loaded off the GUI thread, see gui/busy.py) and the sentence if it failed.
        A cancelled load opens the project without data, saying so, like data that failed to load."""
        from gui import busy
        try:
            dataset = busy.run_busy(None, "Loading the project's data…",
                                    lambda: self.load_data(project.data, project.normalization, path))
            return dataset, ""
        except busy.Cancelled:
            return None, "Loading the data was cancelled; choose it again in the Data panel."
        except LayerLabError as exc:
            return None, str(exc)

    def open(self, path: str) -> None:
        """Open a project or graph file; a bad file raises ProjectFileError and leaves this document as it was."""
        project = load_project(path)
        from gui.locate_data import offer_to_locate
        relocated = offer_to_locate(project)  # a data file that moved: say so, offer to find it
        dataset, error = self._prepare(project, path)
        self._install(project, os.path.abspath(path), dataset, error, fresh_graph=True)
        if project.weights is not None:
            self._weights_signature = self._param_signature()
        if relocated:
            self.mark_modified()  # the new data path is saved with the project

    def open_project(self, project: Project, path: str | None = None, modified: bool = False) -> None:
        """Install an already loaded project (starters, recovered autosaves)."""
        dataset, error = self._prepare(project, path)
        self._install(project, path, dataset, error)
        if project.weights is not None:
            self._weights_signature = self._param_signature()
        if modified:
            self.mark_modified()

    def new(self, template: str | None = None) -> None:
        """A new project: blank (Input + Output) or one of engine.templates.TEMPLATES."""
        if template is None:
            graph, name = blank_graph(), "Untitled"
        else:
            if template not in TEMPLATES:
                raise ProjectFileError(f"No template named '{template}'; available: {', '.join(TEMPLATES)}.")
            description, make = TEMPLATES[template]
            graph, name = make(), description.split(":")[0]
        data = TEMPLATE_DATA.get(template)
        if data is None:
            data = copy.deepcopy(self.project.data)
            if data.get("source") in IMAGE_SOURCES:
                data = {"source": "moons"}
        same_data = data == self.project.data and self.data_view is not None
        project = Project(graph=graph, data=data, name=name)
        if same_data:
            dataset, error = (self.dataset if self.dataset is not None else self._pending), ""
            if self.project.normalization is not None:  # a trained project's fixed scaling does not carry over
                dataset, error = self._prepare(project, None)
        else:
            dataset, error = self._prepare(project, None)
        self._install(project, None, dataset, error)

    def save(self, path: str | None = None) -> str:
        """Save (atomically) to ``path`` or the current path; returns the path.  Raises ProjectFileError."""
        path = path or self.path
        if not path:
            raise ProjectFileError("This project has no file yet; use Save As to choose one.")
        project = self.project
        if self.weights_stale:
            # Weights that no longer fit the graph would fail to load; keep them in memory only.
            # The same goes for the timeline's weights; the run's figures (history) stay.
            project = copy.copy(project)
            project.weights = None
            project.checkpoints = {}
        if not self.project.name or self.project.name == "Untitled":
            self.project.name = os.path.splitext(os.path.basename(path))[0]
        try:
            save_project(path, project)
        except OSError as exc:
            raise ProjectFileError(f"Cannot save to {path}: {exc.strerror or exc}.") from None
        self.path = os.path.abspath(path)
        self._extra_modified = False
        self.undo_stack.setClean()
        self._update_modified()
        self.pathChanged.emit(self.path)
        return self.path

    def snapshot(self) -> Project:
        """A copy of the project as it is now (for autosave), sharing the weights tensors."""
        return Project(graph=self.graph.copy(), data=copy.deepcopy(self.project.data),
                       training=copy.deepcopy(self.project.training), name=self.project.name,
                       description=self.project.description, normalization=copy.deepcopy(self.project.normalization),
                       history=copy.deepcopy(self.project.history),
                       weights=None if self.weights_stale else self.project.weights,
                       checkpoints={} if self.weights_stale else dict(self.project.checkpoints),
                       run=copy.deepcopy(self.project.run), series=dict(self.project.series),
                       lab=copy.deepcopy(self.project.lab))

    def param_value(self, node_id: str, key: str) -> Any:
        return self.graph.node(node_id).params[key]
