"""The run of the open project: starting and steering it, what it leaves in the project, and
what the views show of it.

``TrainingController`` composes the parts that each have one job:

* the ``TrainingWorker`` runs the engine (``engine.runner``) in a warm subprocess;
* the ``ViewScheduler`` draws the views (``gui/training/view_scheduler.py``);
* ``CheckpointViews`` computes what a timeline checkpoint looks like;
* ``CanvasOverlay`` tints the canvas while a run goes on;
* ``RunExporter`` writes the history as CSV / TensorBoard.

The controller itself holds the run state of the project that is open - its ``RunHistory``
and the ProbeInfo of its model - and keeps one rule: the views show that state and nothing
else.  Opening, creating or reverting a project, resetting the weights, changing the dataset
or an edit that makes the weights not fit the graph clears every view (visible or not); a
project saved after a run brings its run back when opened (history, timeline, series, the
run's status sentence), and training again continues its epochs.
"""
from __future__ import annotations

import math
import time

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from engine.errors import LayerLabError
from engine.events import RunFailed, RunFinished
from engine.run import run_config
from engine.runner import RunBegan, RunJob, initial_weights, state_from_numpy, state_to_numpy
from gui.training.canvas_overlay import CanvasOverlay
from gui.training.checkpoint_views import CheckpointViews
from gui.training.panel import TrainingPanel, format_duration
from gui.training.run_export import RunExporter
from gui.training.snapshots import RunHistory, TimelineCheckpoint
from gui.training.view_scheduler import TICK_S, ViewScheduler
from gui.training.worker import TrainingWorker, child_threads
from gui.views import Frame
from gui.views.activations_view import ActivationsView
from gui.views.boundary_view import BoundaryView
from gui.views.dead_relu_view import DeadReluView
from gui.views.gradients_view import GradientsView
from gui.views.loss_view import LossView
from gui.views.lr_view import LRView
from gui.views.regression_view import RegressionView
from gui.views.timeline import TimelineWidget
from gui.views.weights_view import WeightsView

FPS = 25  # frames (all shown views) per second, at most
PROGRESS_S = 0.1  # the progress bar and its text change at most 10 times a second

OUTCOME_WORDS = {"completed": "Finished", "stopped": "Stopped", "early_stopping": "Stopped early (no improvement)",
                 "goal_reached": "Stopped: the goal was reached"}


class TrainingController(QObject):
    """Owns one run at a time and everything that shows it."""

    framesRendered = Signal(int)  # for tests and the benchmark
    runStateChanged = Signal()  # the run state of the project changed (a run ended, a project opened...)

    VIEW_CLASSES = {
        "loss": LossView, "lr": LRView, "weights": WeightsView, "gradients": GradientsView,
        "dead_relu": DeadReluView, "activations": ActivationsView, "boundary": BoundaryView,
        "regression": RegressionView,
    }

    def __init__(self, document, worker: TrainingWorker | None = None, parent: QObject | None = None,
                 fps: int = FPS):
        super().__init__(parent)
        self.document = document
        self.worker = worker or TrainingWorker(parent=self)
        self.panel = TrainingPanel()
        self.timeline = TimelineWidget()
        self.views = {key: cls() for key, cls in self.VIEW_CLASSES.items()}
        #: the dock of each view and of the panel ("panel"), once install_training_ui has laid them out
        self.docks: dict = {}
        self.scheduler = ViewScheduler(self.views, fps, parent=self)
        self.history = RunHistory()
        self.checkpoint_views = CheckpointViews()
        self.overlay = CanvasOverlay(document)
        self.exporter = RunExporter(self.panel, self.history, lambda: self.steps_per_epoch)
        self.info = None
        self.job: RunJob | None = None
        self.node_names: dict[str, str] = {}
        self.epochs = 1
        self.last_failure: RunFailed | None = None
        self.last_finish: RunFinished | None = None
        self._latest = None
        self._scrub_index = -1
        # The epoch of the history whose weights the document holds (None: they are not from it).
        # A run started from them continues the history: curves, epochs and the timeline go on.
        self._lineage_epoch: int | None = None
        self._run_stale = False  # the graph was edited so that the run's weights no longer fit it
        #: a run that ended while an edit made its weights not fit the graph: (weights, record), stored
        #: if an undo makes them fit again (a stray Delete mid-run had thrown the whole run away)
        self._unstored: tuple[dict, dict] | None = None
        self._shut = False
        self._last_progress = 0.0
        self._progress_pending: tuple | None = None
        self._progress_where = ""  # the run's newest "epoch 3/30 · step 120/940", for its last line
        self._history_grew = False  # epochs arrived since the last frame was offered

        self.timer = QTimer(self)
        self.timer.setInterval(int(TICK_S * 1000))
        self.timer.timeout.connect(self._tick)

        w, p = self.worker, self.panel
        w.ready.connect(self._on_ready)
        w.runStarted.connect(self._on_started)
        w.progress.connect(self._on_progress)
        w.epochEnded.connect(self._on_epoch)
        w.checkpoint.connect(self._on_checkpoint)
        w.runFinished.connect(self._on_finished)
        w.runFailed.connect(self._on_failed)
        w.viewsFailed.connect(self._on_views_failed)
        w.stateChanged.connect(self._on_state)
        p.trainClicked.connect(self.train)
        p.pauseClicked.connect(self.worker.pause)
        p.resumeClicked.connect(self.worker.resume)
        p.stopClicked.connect(self.worker.stop)
        p.stepClicked.connect(self.step)
        p.resetClicked.connect(self.reset_clicked)
        p.retryClicked.connect(self._retry)
        p.settingsEdited.connect(self._settings_edited)
        p.overlayToggled.connect(self._overlay_toggled)
        p.overlayModeChanged.connect(self._overlay_mode_changed)
        self.timeline.scrubbed.connect(self._on_scrubbed)
        self.timeline.restoreRequested.connect(self.restore_checkpoint)
        document.selectedNodeChanged.connect(self._on_selected_node)
        document.trainingConfigChanged.connect(self._load_settings)
        document.projectReplaced.connect(self._on_project_replaced)
        document.datasetEdited.connect(self._on_dataset_edited)
        document.weightsChanged.connect(self._on_weights_changed)
        document.graphChanged.connect(self._store_unstored_run_if_it_fits)
        self._load_settings()
        p.set_state(self.worker.state)
        if self.worker.mode == "thread":
            self._on_ready(None)
        self.restore_run()

    @property
    def steps_per_epoch(self) -> int:
        """Of the current (or restored) run: the history keeps it with the curves it measures."""
        return self.history.steps_per_epoch

    # ------------------------------------------------------------------ compatibility for tests / benches
    @property
    def render_hidden(self) -> bool:
        return self.scheduler.render_hidden

    @render_hidden.setter
    def render_hidden(self, on: bool) -> None:
        self.scheduler.render_hidden = on

    @property
    def frames(self) -> int:
        return self.scheduler.frames

    def fps(self, window_s: float = 2.0) -> float:
        return self.scheduler.fps(window_s)

    def export_csv(self, path):
        return self.exporter.export_csv(path)

    def export_tensorboard(self, logdir):
        return self.exporter.export_tensorboard(logdir)

    def overlay_for(self, snap) -> dict:
        return self.overlay.overlay_for(snap, self.info)

    # ------------------------------------------------------------------ settings
    @Slot()
    def _load_settings(self, *_args) -> None:
        self.panel.set_settings(self.document.training_config() or {})

    @Slot(dict)
    def _settings_edited(self, settings: dict) -> None:
        self.document.set_training_config({**(self.document.training_config() or {}), **settings})

    # ------------------------------------------------------------------ the open project changed
    @Slot()
    def _on_project_replaced(self) -> None:
        """Another project is open (New, Open, a starter, a recovered autosave): show its run."""
        self._load_settings()
        if self.worker.busy:  # callers ask first (confirm_stop); this is the last line of defence
            self.worker.stop()
        self.restore_run()

    @Slot(object)
    def _on_dataset_edited(self, *_args) -> None:
        """The user chose other data: the run described the model on the old data; it goes."""
        if not self.worker.busy:
            self._clear_run("The dataset changed; train to see the model on it.")
            self._store_run()

    @Slot()
    def _on_weights_changed(self) -> None:
        """An edit made the stored weights not fit the graph (or an undo made them fit again)."""
        stale = self.document.weights_stale or self._unstored is not None
        if stale == self._run_stale or self.worker.busy:
            return
        self._run_stale = stale
        if stale:
            self.scheduler.clear()
            text = ("The graph changed since this run, so its views no longer describe it. Train again (or "
                    "undo the edit) to see the network." if not self.history.is_empty() else
                    "The graph changed, so the project's weights no longer fit it. Train (or undo the edit) "
                    "to see the network.")  # an imported project's weights, before any run
            for view in self.views.values():
                view.show_message(text)
            self._clear_overlay()
        elif not self.history.is_empty():
            self.scheduler.reset(self.info, max(self.epochs, self.history.last_epoch))
            self._show_current()
        else:  # no run to show (an imported project's weights): the idle message, not the stale one
            self.scheduler.clear()

    @Slot()
    def _store_unstored_run_if_it_fits(self) -> None:
        """The graph changed after a run whose weights did not fit it: if they fit now (the edit
        was undone), they and the run are stored, as if the edit had never been made."""
        if self._unstored is None or self.worker.busy:
            return
        state, record = self._unstored
        if not self._fits(state):
            return
        self._unstored = None
        self.document.set_weights(state)
        self._lineage_epoch = self.history.checkpoints[-1].epoch if self.history.checkpoints else None
        self.panel.show_status(record["status"])
        self._store_run(status=record["status"], outcome=record["outcome"], failure=None)
        self._on_weights_changed()  # the views describe the graph again

    # ------------------------------------------------------------------ starting
    def _make_job(self, start_paused: bool = False, initial_steps: int = 0,
                  settings_override: dict | None = None) -> RunJob | None:
        doc = self.document
        dataset = doc.dataset
        if dataset is None:
            err = doc.dataset_error or ""
            self.panel.show_status("There is no dataset to train on. " + (err or "Choose one in the Data panel."),
                                   error=True)
            return None
        try:
            cm = doc.compile()
        except LayerLabError as e:
            self.panel.show_status(f"The graph cannot be trained yet: {e}", error=True)
            return None
        settings = {**self.panel.settings(), **(settings_override or {})}
        try:
            config = run_config(doc.training_config(), doc.graph, dataset.task, settings).to_dict()
            # no point in snapshots faster than the views draw them
            config["snapshot_interval_s"] = max(float(config.get("snapshot_interval_s") or 0.0), 1.0 / FPS)
        except LayerLabError as e:
            self.panel.show_status(str(e), error=True)
            return None
        ctx = doc.context
        weights = None
        stored = doc.project.weights
        if stored is not None and not doc.weights_stale:
            weights = {k: v.detach().to("cpu") for k, v in stored.items()}
        if dataset.x_train.device.type != "cpu":
            dataset = dataset.to("cpu")
        self.node_names = dict(cm.node_names)
        return RunJob(graph=doc.graph.to_dict(), context=(ctx.input_shape, ctx.n_outputs, ctx.task),
                      dataset=dataset, config=config, node_names=dict(cm.node_names), weights=weights,
                      seed=int(settings.get("seed") or 0), start_paused=start_paused, initial_steps=initial_steps,
                      max_threads=child_threads())

    @Slot()
    def train(self, start_paused: bool = False, initial_steps: int = 0, settings_override: dict | None = None) -> bool:
        """Start a run from the document's current weights (fresh ones from the seed if it has none)."""
        if self._shut or self.worker.busy:
            return False
        job = self._make_job(start_paused, initial_steps, settings_override)
        if job is None:
            return False
        self.job = job
        self.last_failure = self.last_finish = None
        self.panel.offer_retry(None)
        continuing = self._lineage_epoch is not None and job.weights is not None and bool(self.history.checkpoints)
        if continuing:
            if self.info is not None:  # histograms over time keep their bins
                job.hist_ranges = {lay.name: lay.hist_range for lay in self.info.layers}
            self.history.truncate(self._lineage_epoch)
            self.history.x_offset = self._lineage_epoch
            self._show_timeline()
        else:
            self._clear_run()
        self._run_stale = False
        self._unstored = None
        self.history.running = True
        self.checkpoint_views.configure(job.graph, job.infer_context(), job.dataset, job.node_names, job.probe_size)
        self.panel.show_status("Starting…" if self.worker.is_ready else
                               "Starting the training process (it loads PyTorch once)…")
        self.panel.set_progress(0.0, "")
        self.worker.start(job)
        self.timer.start()
        return True

    @Slot()
    def step(self) -> None:
        """One batch: while paused, the next one; when idle, a new run that stops after one batch."""
        if self.worker.state == "paused":
            self.worker.step()
        elif not self.worker.busy:
            self.train(start_paused=True, initial_steps=1)

    @Slot(int)
    def _retry(self, batch_size: int) -> None:
        self.panel.batch_box.setValue(batch_size)
        self.panel.offer_retry(None)
        self.train()

    @Slot()
    def reset_clicked(self) -> bool:
        """Reset weights, asked first when it throws a trained run away (one click had discarded the
        run, its curves and the lab steps it ticked, with nothing to bring them back)."""
        if not self.worker.busy and self.history.last_epoch > 0:
            from gui import dialogs

            saved = "" if not self.document.is_modified() else " Save the project first to keep them."
            if not dialogs.ask_yes_no(self.panel.window(), "Reset weights",
                                      f"Replace the trained weights (epoch {self.history.last_epoch}) and this "
                                      f"run's curves with fresh weights from seed {int(self.panel.seed_box.value())}?"
                                      f" Undo cannot bring them back.{saved}"):
                return False
        return self.reset_weights()

    def reset_weights(self) -> bool:
        """Fresh initial weights from the seed (the same seed always gives the same weights)."""
        if self.worker.busy:
            return False
        doc = self.document
        try:
            seed = int(self.panel.seed_box.value())
            weights = initial_weights(doc.graph.to_dict(), doc.context, seed)
        except LayerLabError as e:
            self.panel.show_status(f"Cannot make weights for this graph: {e}", error=True)
            return False
        doc.set_weights(weights)
        self._clear_run()
        self._store_run()
        self.panel.show_status(f"Fresh weights from seed {seed}.")
        return True

    def confirm_stop(self, parent=None) -> bool:
        """Before the project goes away (quit, New, Open): a run in progress is stopped only when
        the user agrees, and its weights so far are kept in the project.  False: leave it alone."""
        if not self.worker.busy:
            return True
        from gui import dialogs

        if not dialogs.ask_stop_run(parent):
            return False
        self.stop_and_wait()
        return True

    def stop_and_wait(self, timeout_s: float = 15.0) -> None:
        """Stop the run and wait (the window keeps painting) until its result is in the project."""
        from PySide6.QtWidgets import QApplication

        self.worker.stop()
        deadline = time.monotonic() + timeout_s
        while self.worker.busy and time.monotonic() < deadline:
            QApplication.processEvents()
            time.sleep(0.005)

    # ------------------------------------------------------------------ the run state of the project
    def _clear_run(self, status: str = "") -> None:
        """No run: an empty history, every view back to its idle message, no status."""
        self._lineage_epoch = None
        self._run_stale = False
        self._unstored = None
        self.history.clear()
        self.info = None
        self._latest = None
        self._scrub_index = -1
        self.checkpoint_views.forget()
        self.scheduler.clear()
        self._clear_overlay()
        self.timeline.clear()
        self.panel.set_has_run(False)
        self.panel.offer_retry(None)
        self.panel.set_progress(0.0, "")
        self.panel.show_status(status)
        self.runStateChanged.emit()

    def _show_timeline(self) -> None:
        self._scrub_index = -1
        self.timeline.clear()
        for cp in self.history.checkpoints:
            self.timeline.add_checkpoint(cp.epoch, cp.metrics)

    def restore_run(self) -> None:
        """Show the run the open project carries (none: empty views)."""
        project = self.document.project
        self._clear_run()
        if not project.history and not project.checkpoints:
            return
        self.history.load_epochs(project.history)
        self.history.load_series_arrays(project.series)
        for epoch in sorted(project.checkpoints):
            metrics = next((dict(r) for r in project.history if r.get("epoch") == epoch), {})
            self.history.checkpoints.append(TimelineCheckpoint(epoch, state_to_numpy(project.checkpoints[epoch]),
                                                               None, metrics))
        run = project.run or {}
        self.history.steps_per_epoch = max(1, int(run.get("steps_per_epoch") or 1))
        self.epochs = self.history.last_epoch
        self._show_timeline()
        self.panel.set_has_run(bool(self.history.epochs))
        status = run.get("status") or ""
        self.panel.show_status(status, error=run.get("outcome") in ("failed", "interrupted"))
        if self.history.epochs:
            last = self.history.last_epoch
            self.panel.set_progress(1.0 if run.get("outcome") == "completed" else 0.0,
                                    f"{last} epoch{'s' if last != 1 else ''} trained (saved with the project)")
        doc = self.document
        if doc.dataset is not None and self.history.checkpoints and not doc.weights_stale:
            try:
                cm = doc.compile()
                ctx = doc.context
                self.node_names = dict(cm.node_names)
                self.checkpoint_views.configure(doc.graph.to_dict(), ctx, doc.dataset, cm.node_names)
                self.info = self.checkpoint_views.probe_info()
            except Exception as e:  # noqa: BLE001 - the curves still show; say why the rest cannot
                self.info = None
                self.panel.show_status(f"{status} The saved run's views cannot be rebuilt: {e}".strip(), error=True)
        self.history.info = self.info
        if project.weights is not None and self.history.checkpoints and not doc.weights_stale:
            kept = {cp.epoch for cp in self.history.checkpoints}
            epoch = run.get("weights_epoch", self.history.checkpoints[-1].epoch)
            self._lineage_epoch = epoch if epoch in kept else None
        self.scheduler.reset(self.info, self.epochs)
        self._show_current()
        self.runStateChanged.emit()

    def _show_current(self) -> None:
        """Draw the state the history ends in: the last snapshot, or the last checkpoint's."""
        snap = self._latest
        if snap is None and self.history.checkpoints and self.info is not None:
            try:
                snap = self.checkpoint_views.snapshot(self.history.checkpoints[-1], self.steps_per_epoch)
            except Exception as e:  # noqa: BLE001 - never let drawing take the window down
                self.panel.show_status(f"Cannot show the saved run's last epoch: {e}", error=True)
        self.scheduler.show(Frame(snap, self.history, self.info, None, self._selected_fx()))

    def _store_run(self, **record) -> None:
        """Keep the run in the project (saved with it): epochs, timeline, series, and ``record``
        (status sentence, outcome, failure) over what the project's run record already says."""
        project = self.document.project
        project.history = [dict(r) for r in self.history.epochs]
        project.checkpoints = {cp.epoch: state_from_numpy(cp.weights) for cp in self.history.checkpoints}
        project.series = self.history.series_arrays()
        if self.history.is_empty():
            project.run = {}
        else:
            project.run = {**project.run, "steps_per_epoch": self.steps_per_epoch,
                           "weights_epoch": self._lineage_epoch, **record}
        self.document.mark_modified()
        self.runStateChanged.emit()

    # ------------------------------------------------------------------ worker signals
    @Slot(object)
    def _on_ready(self, ready) -> None:
        self.panel.set_cuda(ready.cuda if ready is not None else _cuda_name_in_process())

    @Slot(str)
    def _on_state(self, state: str) -> None:
        self.panel.set_state(state)

    @Slot(object)
    def _on_started(self, began: RunBegan) -> None:
        self.info = began.info
        self.history.info = self.info
        ev = began.started
        self.history.steps_per_epoch = max(1, int(ev.steps_per_epoch))
        self.epochs = int(ev.epochs)
        self._progress_where = ""
        self.checkpoint_views.info = self.info
        self.scheduler.reset(self.info, self.history.x_offset + self.epochs)
        selected = self._selected_fx()
        if selected:  # the node chosen on the canvas before the run
            self.views["activations"].select_node(selected)
        threads = f", {ev.num_threads} thread{'s' if ev.num_threads != 1 else ''}" if ev.num_threads else ""
        amp = f", mixed precision {ev.amp}" if ev.amp not in ("off", "", None) else ""
        where = began.device_name or ev.device
        if "CUDA" not in where and ev.device.startswith("cuda"):
            where = ev.device
        self.panel.show_status(f"Training {ev.n_params:,} parameters on {where.split(' (')[0]}{threads}{amp}.")
        self.panel.set_has_run(True)

    @Slot(object)
    def _on_progress(self, ev) -> None:
        self._progress_line(ev.step / max(1, ev.total_steps), ev.epoch, ev.step, ev.total_steps, ev.samples_per_s,
                            ev.eta_s)

    def _progress_line(self, fraction: float, epoch: int, step: int, total_steps: int, rate: float,
                       eta_s: float) -> None:
        """The progress line, "epoch 3/30 · step 120/940 · 41,000 samples/s · ETA 0:05".  A run that
        continues the last one also says where the curves are ("(232 in all)": their epoch axis
        counts the runs before)."""
        offset = self.history.x_offset
        in_all = f" ({offset + epoch} in all)" if offset else ""
        self._progress_where = f"epoch {epoch}/{self.epochs}{in_all} · step {step:,}/{total_steps:,}"
        self._show_progress(fraction, f"{self._progress_where} · {rate:,.0f} samples/s · ETA {format_duration(eta_s)}")

    def _show_progress(self, fraction: float, text: str) -> None:
        """At most every PROGRESS_S; the newest text is kept and shown by the GUI timer."""
        now = time.perf_counter()
        if now - self._last_progress >= PROGRESS_S:
            self._last_progress = now
            self.panel.set_progress(fraction, text)
            self._progress_pending = None
        else:
            self._progress_pending = (fraction, text)

    @Slot(object)
    def _on_epoch(self, ev) -> None:
        self.history.add_epoch(self.history.x_offset + ev.epoch, ev.metrics)
        self._history_grew = True
        # Short epochs end before the trainer's first mid-epoch Progress report: show progress here too.
        m = ev.metrics
        elapsed = m.get("elapsed_s")
        eta = elapsed / ev.epoch * (self.epochs - ev.epoch) if isinstance(elapsed, (int, float)) and ev.epoch else math.nan
        rate = m.get("samples_per_s") or 0.0
        self._progress_line(ev.epoch / max(1, self.epochs), ev.epoch, ev.epoch * self.steps_per_epoch,
                            self.epochs * self.steps_per_epoch, rate, eta)

    @Slot(object)
    def _on_checkpoint(self, cp) -> None:
        epoch = self.history.x_offset + int(cp.epoch)
        if self.history.checkpoints and self.history.checkpoints[-1].epoch == epoch:
            return  # a continued run's starting point: the history has that epoch already
        self.history.checkpoints.append(TimelineCheckpoint(epoch, cp.weights, None, dict(cp.metrics)))
        self.timeline.add_checkpoint(epoch, cp.metrics)

    @Slot(object)
    def _on_finished(self, finished: RunFinished) -> None:
        self.last_finish = finished
        self.flush_frame()  # the final snapshot
        self.history.running = False
        if self.timeline.live:
            self._show_current()  # with every epoch record (they may arrive after the last snapshot)
        stored = self._apply_weights(state_from_numpy(finished.weights))
        rows = self.history.epochs
        # the next run continues this history; a run stopped mid-epoch continues from its last whole epoch
        self._lineage_epoch = self.history.checkpoints[-1].epoch if stored and self.history.checkpoints else None
        last = rows[-1] if rows else {}
        summary = ", ".join(f"{k.replace('_', ' ')} {last[k]:.4g}" for k in ("val_loss", "val_accuracy", "val_mse")
                            if isinstance(last.get(k), (int, float)))
        head = OUTCOME_WORDS.get(finished.reason, "Finished")
        epochs = len(finished.history)
        in_all = f"; {len(rows)} epochs in all" if len(rows) != epochs else ""
        said = (f"{head} after {epochs} epoch{'s' if epochs != 1 else ''} "
                f"({finished.steps:,} steps{in_all}){': ' + summary if summary else ''}. ")
        status = said + ("The weights are in the project." if stored else
                         "The graph was edited during the run, so these weights no longer fit it and are "
                         "not stored: undo the edit to keep them, or train again.")
        self.panel.show_status(status)
        if stored:
            self._store_run(status=status, outcome=finished.reason, failure=None)
        else:
            self._unstored = (state_from_numpy(finished.weights), {
                "status": said + "The weights are in the project (the edit made during the run was undone).",
                "outcome": finished.reason})
        self._settle_progress(head, completed=finished.reason == "completed")
        self._end_run()
        self._on_weights_changed()  # an edit made during the run: the views say so now

    def _settle_progress(self, outcome: str, completed: bool = False) -> None:
        """The progress bar and line of a run that has ended: where it ended, with no rate and no
        ETA (a stopped run's line had kept "ETA 0:11" as if it were still going)."""
        if completed:
            fraction = 1.0
        elif self._progress_pending is not None:
            fraction = self._progress_pending[0]  # newer than what the bar shows
        else:
            fraction = self.panel.progress_bar.value() / 1000
        self._progress_pending = None
        self.panel.set_progress(fraction, " · ".join(p for p in (outcome, self._progress_where) if p))

    @Slot(str)
    def _on_views_failed(self, reason: str) -> None:
        self.panel.show_status(f"Training goes on, but the live views cannot follow this run ({reason}). "
                               "The results will be complete when it ends.", error=True)

    @Slot(object)
    def _on_failed(self, failure: RunFailed) -> None:
        self.last_failure = failure
        self.flush_frame()
        self.history.running = False
        message = failure.message or "Training failed."
        kept = ""
        # Keep the newest finite checkpoint from before the failing epoch: the weights at the failing
        # step may be finite but already blown up, and training on from them would fail again at once.
        good = self._newest_good_checkpoint(failure.epoch)
        self._lineage_epoch = None
        if good is not None and self._apply_weights(state_from_numpy(good.weights)):
            kept = (" The weights from before training are kept." if good.epoch == 0 else
                    f" The weights from the end of epoch {good.epoch} are kept.")
            self._lineage_epoch = good.epoch
            # the views show the model the project now holds, not the one that failed
            snap = self.checkpoint_snapshot(self.history.checkpoints.index(good))
            if snap is not None:
                self._latest = snap
        elif failure.weights is not None and self._apply_weights(state_from_numpy(failure.weights)):
            kept = " The last finite weights are kept."
        if self.timeline.live and self.info is not None:
            self._show_current()
        if failure.kind == "out_of_memory":
            half = max(1, int(failure.batch_size or 2) // 2)
            self.panel.offer_retry(half)
            message += f" You can retry with batch size {half}."
        if failure.node:
            message += self._point_at_node(failure.node)
        status = message + kept
        self.panel.show_status(status, error=True)
        self._settle_progress("Interrupted" if failure.kind == "interrupted" else "Failed")
        self._store_run(status=status, outcome="interrupted" if failure.kind == "interrupted" else "failed",
                        failure={"kind": failure.kind, "node": failure.node, "epoch": failure.epoch,
                                 "step": failure.step})
        self._show_timeline()
        self._end_run()

    def _point_at_node(self, fx_name: str) -> str:
        """Select the failing node on the canvas; the sentence that says so."""
        node_id = (self.info.node_ids.get(fx_name) if self.info is not None else None) or next(
            (nid for nid, name in self.node_names.items() if name == fx_name), None)
        if node_id and self.document.graph.has_node(node_id):
            self.document.set_selected_node(node_id)
            return f" Layer '{fx_name}' is selected on the canvas."
        return f" Layer: '{fx_name}'."

    def _fits(self, state: dict) -> bool:
        """Whether a run's weights load into the document's graph as it is now."""
        try:
            self.document.compile().module.load_state_dict(state)
        except (LayerLabError, RuntimeError):
            return False
        return True

    def _apply_weights(self, state: dict) -> bool:
        """Store a run's weights in the document if they still fit its graph (it may have been edited)."""
        if not self._fits(state):
            return False
        self.document.set_weights(state)
        return True

    def _newest_good_checkpoint(self, failed_epoch: int | None) -> TimelineCheckpoint | None:
        from engine.probes import state_is_finite

        for cp in reversed(self.history.checkpoints):
            if failed_epoch is not None and cp.epoch - self.history.x_offset >= failed_epoch:
                continue
            if state_is_finite(cp.weights):
                return cp
        return None

    def _end_run(self) -> None:
        self.timer.stop()
        self._clear_overlay()
        self._on_weights_changed()  # the graph may have been edited during the run
        self.runStateChanged.emit()

    # ------------------------------------------------------------------ drawing
    @Slot()
    def _tick(self) -> None:
        """Timer tick: take in new snapshots (all into the history, the newest to the views) and
        let the scheduler draw; the canvas overlay rides along with the frames."""
        snap = self.worker.inbox.drain(self.history)
        if snap is not None:
            self._latest = snap
        if (snap is not None or self._history_grew) and self._latest is not None and self.timeline.live \
                and self.info is not None:
            self._history_grew = False  # epochs that came without a snapshot redraw the curves too
            self.scheduler.offer(Frame(self._latest, self.history, self.info, None, self._selected_fx()))
        now = time.perf_counter()
        if self._progress_pending is not None and now - self._last_progress >= PROGRESS_S:
            self._show_progress(*self._progress_pending)
        if self.scheduler.tick() and self._latest is not None and self.overlay.due(now):
            latest = self._latest
            self.scheduler.add_task(lambda: self.overlay.publish(latest, self.info))
        if snap is not None and not self.scheduler.busy:
            self.framesRendered.emit(self.frames)

    def flush_frame(self) -> None:
        """Draw everything pending now (tests, the end of a run)."""
        self._tick()
        self.scheduler.flush()

    def _selected_fx(self) -> str | None:
        return self.node_names.get(self.document.selected_node or "")

    @Slot(str)
    def _on_selected_node(self, node_id: str) -> None:
        name = self.node_names.get(node_id)
        if name is None and self.info is not None:
            name = next((k for k, v in self.info.node_ids.items() if v == node_id), None)
        if name and self.views["activations"].select_node(name):
            frame = self.scheduler.frame
            if not self.worker.busy and frame is not None:
                self.views["activations"].render(Frame(frame.snapshot, self.history, self.info, frame.cursor, name))

    # ------------------------------------------------------------------ timeline
    @Slot(int)
    def _on_scrubbed(self, index: int) -> None:
        self._scrub_index = index
        if index < 0:
            if self.info is not None:
                self._show_current()
            return
        snap = self.checkpoint_snapshot(index)
        if snap is not None:
            cp = self.history.checkpoints[index]
            self.scheduler.show(Frame(snap, self.history, self.info, float(cp.epoch), self._selected_fx()))

    def checkpoint_snapshot(self, index: int):
        """What the views show for checkpoint ``index``: computed once from its weights, then cached."""
        if not (0 <= index < len(self.history.checkpoints)) or not self.checkpoint_views.configured:
            return None
        cp = self.history.checkpoints[index]
        try:
            return self.checkpoint_views.snapshot(cp, self.steps_per_epoch)
        except Exception as e:  # noqa: BLE001 - never let a scrub take the window down
            self.panel.show_status(f"Cannot show epoch {cp.epoch}: {e}", error=True)
            return None

    @Slot(int)
    def restore_checkpoint(self, index: int) -> bool:
        """Make checkpoint ``index``'s weights the document's current weights."""
        if not (0 <= index < len(self.history.checkpoints)):
            return False
        cp = self.history.checkpoints[index]
        if not self._apply_weights(state_from_numpy(cp.weights)):
            self.panel.show_status("These weights do not fit the graph as it is now (it was edited after the run).",
                                   error=True)
            return False
        self._lineage_epoch = cp.epoch  # the next run goes on from this epoch
        what = "the initial weights" if cp.epoch == 0 else f"the weights of epoch {cp.epoch}"
        self.panel.show_status(f"Restored {what}. Train continues from them.")
        self._store_run()
        return True

    # ------------------------------------------------------------------ canvas overlay
    @Slot(bool)
    def _overlay_toggled(self, on: bool) -> None:
        self.overlay.enabled = on
        if not on:
            self._clear_overlay()
        elif self._latest is not None and self.worker.busy:
            self.overlay.publish(self._latest, self.info)

    @Slot(str)
    def _overlay_mode_changed(self, mode: str) -> None:
        self.overlay.mode = mode
        if self._latest is not None and self.overlay.enabled and self.worker.busy:
            self.overlay.publish(self._latest, self.info)

    @property
    def overlay_mode(self) -> str:
        return self.overlay.mode

    def _clear_overlay(self) -> None:
        try:
            self.overlay.clear()
        except RuntimeError:  # the document is already deleted (shutting down)
            pass

    # ------------------------------------------------------------------ shutdown
    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop the run and the training process; safe to call more than once."""
        if self._shut:
            return
        self._shut = True
        self.timer.stop()
        self.worker.shutdown(timeout_s)
        self._clear_overlay()


def _cuda_name_in_process() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
