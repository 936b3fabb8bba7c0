"""Which model the evaluation and explain panels look at, and when their results go out of date.

The model is the open project's graph with one set of weights: the document's current weights
("now"), or - while the timeline is scrubbed back - the weights it kept for that epoch.
``ModelSource.spec()`` describes it as a ``ModelSpec`` taken on the GUI thread (a copy of the
graph, the weights' mapping, the dataset); a panel's job builds the runnable model from it on
its worker thread (``ModelCache.get``), so nothing slow happens on the GUI thread and an edit made
while a job runs cannot change the model under it.

``changed(reason, auto)`` fires whenever what the panels show would no longer describe the model:
another project, other weights (a run ended, Reset weights, a restored epoch), the timeline
moved, the data or the graph changed, a run started.  ``reason`` is the sentence a panel shows;
``auto`` says whether recomputing at once is what a person expects (a run ended, the timeline was
scrubbed) rather than after they ask (the graph was edited).  A ``ModelSpec`` carries the
``generation`` it was taken at; a result computed from an older generation is dropped.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot


# Graph events that change what the model computes (moving a node does not).
_MODEL_EVENTS = {"node_added", "node_removed", "edge_added", "edge_removed", "param_changed", "node_renamed"}

UNTRAINED = ("This project has no trained weights yet. Train it (Training panel, Train), and its results "
             "appear here.")


@dataclass(frozen=True)
class ModelSpec:
    """The model a panel's job will build: everything it needs, fixed at ``generation``."""

    generation: int
    graph: Any  # engine.graph.Graph, a copy
    context: Any  # engine.spec.InferContext
    weights: Any  # mapping name -> tensor or numpy array
    dataset: Any  # engine.data.Dataset
    epoch: int | None  # the timeline epoch (None: the document's current weights)
    label: str  # "the current weights (epoch 12)", "the weights of epoch 3 (timeline)"
    project_name: str = ""

    def build(self):
        """The runnable model (``engine.model_at.ReadyModel``, CPU, eval mode); call it off the GUI thread."""
        from engine.model_at import ready_model

        return ready_model(self.graph, self.context, self.weights, device="cpu", dataset=self.dataset,
                           epoch=self.epoch)


@dataclass
class ModelCache:
    """One panel's built model, reused by its jobs while the spec is the same.

    Used only from that panel's ``JobRunner`` thread (one job at a time), so the model is never
    run by two threads at once; the lock only guards the hand-over between consecutive jobs."""

    _key: Any = None
    _ready: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, spec: ModelSpec):
        with self._lock:
            if self._key != spec.generation or self._ready is None:
                self._ready = None  # the old model goes first (memory)
                self._ready = spec.build()
                self._key = spec.generation
            return self._ready


class _Same:
    """Compares by identity and keeps its object alive, so a freed object's id is never mistaken
    for the next one's (and weights are never compared value by value)."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __eq__(self, other) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj

    __hash__ = None


class ModelSource(QObject):
    """The model the panels describe; ``changed`` when results about an earlier one must go."""

    changed = Signal(str, bool)  # (reason, recompute at once)

    def __init__(self, document, training=None, parent: QObject | None = None):
        super().__init__(parent)
        self.document = document
        self.training = training  # gui.training.TrainingController, or None without the training UI
        self.generation = 0
        self.scrub_index = -1  # the timeline's checkpoint shown, -1 = live
        self._graph_edits = 0
        self.same_project = True  # the last change kept the project, data and graph (other weights or epoch)
        self._signature = self._current_signature()
        document.projectReplaced.connect(lambda: self._check("Another project was opened.", True))
        # (datasetChanged comes first when a project opens; _check names the bigger change)
        document.weightsChanged.connect(self._on_weights_changed)
        document.datasetChanged.connect(lambda _ds: self._check("The dataset changed.", True))
        document.graphEvent.connect(self._on_graph_event)
        if training is not None:
            training.runStateChanged.connect(self._on_run_state)
            training.timeline.scrubbed.connect(self._on_scrubbed)
            training.worker.runStarted.connect(
                lambda _began: self._check("Training is running; the results follow when it ends.", False))

    # ------------------------------------------------------------------ what the model is
    @property
    def training_busy(self) -> bool:
        return self.training is not None and self.training.worker.busy

    def _checkpoints(self) -> list:
        return list(self.training.history.checkpoints) if self.training is not None else []

    def _current_signature(self) -> tuple:
        doc = self.document
        cps = self._checkpoints()
        if 0 <= self.scrub_index < len(cps):
            cp = cps[self.scrub_index]
            weights = ("epoch", cp.epoch, _Same(cp.weights))
        else:
            # the run record's epoch names the weights ("the current weights (epoch 12)"): it is
            # stored just after the weights arrive, and a message built between them named the old one
            weights = ("live", _Same(doc.project.weights), doc.weights_stale, self.training_busy,
                       (doc.project.run or {}).get("weights_epoch"))
        return _Same(doc.project), _Same(doc.dataset), self._graph_edits, weights

    def spec(self) -> ModelSpec | str:
        """The model to look at now, or the sentence that says why there is none."""
        doc = self.document
        if doc.dataset is None:
            return ("This project has no data loaded, so there is nothing to evaluate. "
                    + (doc.dataset_error or "Choose a dataset in the Dataset panel."))
        cps = self._checkpoints()
        name = doc.project.name or ""
        if 0 <= self.scrub_index < len(cps):
            cp = cps[self.scrub_index]
            if doc.weights_stale:
                return ("The graph was edited after this run, so the timeline's weights no longer fit it. "
                        "Undo the edit, or train again.")
            what = "the initial weights (timeline)" if cp.epoch == 0 else f"the weights of epoch {cp.epoch} (timeline)"
            return ModelSpec(self.generation, doc.graph.copy(), doc.context, cp.weights, doc.dataset, int(cp.epoch),
                             what, name)
        if self.training_busy:
            return "Training is running; the results follow when it ends (or scrub the timeline to an epoch)."
        weights = doc.project.weights
        if weights is None:
            return UNTRAINED
        if doc.weights_stale:
            return ("The graph was edited so that the trained weights no longer fit it. Undo the edit, or train "
                    "again.")
        epoch = (doc.project.run or {}).get("weights_epoch")
        label = "the current weights" + (f" (epoch {epoch})" if isinstance(epoch, int) and epoch > 0 else "")
        return ModelSpec(self.generation, doc.graph.copy(), doc.context, weights, doc.dataset, None, label, name)

    def is_current(self, spec: ModelSpec | None) -> bool:
        return isinstance(spec, ModelSpec) and spec.generation == self.generation

    # ------------------------------------------------------------------ what changes it
    def _check(self, reason: str, auto: bool) -> None:
        """Compare what the model is now with what it was; on a change, say why (the biggest change
        wins: a new project also brings a new dataset and new weights)."""
        if self.training is not None and self.training.timeline.live:
            self.scrub_index = -1  # the timeline was cleared or went live without a scrub
        sig = self._current_signature()
        old, self._signature = self._signature, sig
        if sig == old:
            return
        if sig[0] != old[0]:
            reason, auto = "Another project was opened.", True
        elif sig[1] != old[1]:
            reason, auto = "The dataset changed.", True
        # what kind of change: the same project's model at another moment, or another model altogether
        self.same_project = sig[0] == old[0] and sig[1] == old[1] and sig[2] == old[2]
        self.generation += 1
        self.changed.emit(reason, auto)

    @Slot()
    def _on_weights_changed(self) -> None:
        if self.document.weights_stale:
            self._check("The graph was edited so that the trained weights no longer fit it.", False)
        else:
            self._check("The model's weights changed.", True)

    @Slot(object)
    def _on_graph_event(self, event) -> None:
        if getattr(event, "kind", None) in _MODEL_EVENTS:
            self._graph_edits += 1
            self._check("The graph was edited since these results.", False)

    @Slot()
    def _on_run_state(self) -> None:
        self._check("The run changed (a run ended, weights were reset or restored).", True)

    @Slot(int)
    def _on_scrubbed(self, index: int) -> None:
        self.scrub_index = index
        cps = self._checkpoints()
        if 0 <= index < len(cps):
            epoch = cps[index].epoch
            where = "the initial weights" if epoch == 0 else f"epoch {epoch}"
            self._check(f"The timeline now shows {where}.", True)
        else:
            self._check("The timeline is back to the current weights.", True)

