"""Ties the training panel, the worker, the live views, the timeline and the document together.

One GUI ``QTimer`` (30 Hz) drives every view: each tick drains the snapshot inbox (all pending
snapshots' scalars go into the run history, only the newest is drawn) and renders the visible
views in place.  While the timeline is scrubbed back, the views show that epoch's checkpoint
instead; what a checkpoint looks like is computed on demand from its weights, in this process.
"""
from __future__ import annotations

import collections
import csv
import math
import os
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFileDialog

from engine.errors import LayerLabError
from engine.tensorboard import EventFileWriter
from gui.training.panel import TrainingPanel, format_duration
from gui.training.runner_process import RunJob, build_model, initial_weights, state_from_numpy
from gui.training.snapshots import Checkpoint, RunHistory
from gui.training.worker import TrainingWorker, child_threads
from gui.views import SEQUENTIAL, Frame
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
TICK_S = 0.008  # the GUI timer's period
TICK_BUDGET_S = 0.006
PROGRESS_S = 0.1  # the progress bar and its text change at most 10 times a second  # drawing per tick, at most (then Qt paints and handles input)
OVERLAY_HZ = 5
_LUT = SEQUENTIAL.getLookupTable(nPts=256, alpha=False).astype(np.uint8)  # (256, 3)
_EDGE_LUT = pg.colormap.get("inferno").getLookupTable(nPts=256, alpha=False).astype(np.uint8)  # edge tints


# ----------------------------------------------------------------------------- plain helpers
def train_config_from(settings: dict, stored: dict, graph, task: str | None) -> dict:
    """The TrainConfig dict for a run: the project's stored settings, overridden by the panel's,
    with ``loss: auto`` resolved from the graph's Output node."""
    from engine.layers.io import resolve_loss
    from engine.train_config import TrainConfig
    import dataclasses

    known = {f.name for f in dataclasses.fields(TrainConfig)}
    merged = {k: v for k, v in (stored or {}).items() if k in known}
    merged.update({k: v for k, v in settings.items() if k in known})
    if merged.get("loss", "auto") == "auto":
        out_loss = "auto"
        for node in graph.nodes:
            if node.type == "Output":
                out_loss = node.params.get("loss", "auto")
                break
        merged["loss"] = resolve_loss(out_loss, task)
    return TrainConfig.from_dict(merged).to_dict()


def write_metrics_csv(path: str | os.PathLike, rows: list[dict]) -> Path:
    """One row per epoch; the columns are every key any row has, ``epoch`` first."""
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    if "epoch" in keys:
        keys.remove("epoch")
        keys.insert(0, "epoch")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in keys})
    return path


def write_run_tensorboard(logdir: str | os.PathLike, rows: list[dict], loss_xy: tuple | None,
                          steps_per_epoch: int) -> Path:
    """Epoch metrics under ``epoch/<name>`` (step = epoch) and the live training loss under
    ``train/loss`` (step = optimiser step)."""
    with EventFileWriter(logdir) as w:
        for r in rows:
            epoch = int(r.get("epoch", 0))
            for k, v in r.items():
                if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    w.add_scalar(f"epoch/{k}", float(v), epoch)
        if loss_xy is not None:
            xs, ys = loss_xy
            for x, y in zip(xs, ys):
                w.add_scalar("train/loss", float(y), int(round(float(x) * steps_per_epoch)))
        return w.path


def _to_u8(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # a diverging run's huge values
        scaled = (np.nan_to_num(a, nan=lo, posinf=hi, neginf=lo) - lo) / max(hi - lo, 1e-12)
        return np.clip(scaled * 255, 0, 255).astype(np.uint8)


def activation_thumbnail(a: np.ndarray, max_w: int = 48, max_h: int = 32) -> QImage | None:
    """A small colour image of a node's probe activations for the canvas."""
    if a is None or a.size == 0:
        return None
    if a.ndim == 4:  # (N, C, H, W): up to 4 channels of the first image, 2 x 2
        maps = a[0, :4]
        if len(maps) < 4:
            maps = np.concatenate([maps, np.full((4 - len(maps),) + maps.shape[1:], np.nan, maps.dtype)])
        h, w = maps.shape[1:]
        img = np.block([[maps[0], maps[1]], [maps[2], maps[3]]]) if h * 2 <= 64 else maps[0]
    elif a.ndim == 3:
        img = a[0]
    else:
        img = a.reshape(a.shape[0], -1)[:max_h, :max_w]
    finite = img[np.isfinite(img)]
    if finite.size == 0:
        return None
    lo, hi = float(finite.min()), float(finite.max())
    rgb = np.ascontiguousarray(_LUT[_to_u8(img, lo, hi)])
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format_RGB888).copy()


def is_shown(widget) -> bool:
    """Visible on screen (not in a background dock tab, not in a closed dock)."""
    return widget.isVisible() and not widget.visibleRegion().isEmpty()


# ----------------------------------------------------------------------------- the controller
class TrainingController(QObject):
    """Owns one run at a time and everything that shows it."""

    framesRendered = Signal(int)  # for tests and the benchmark

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
        self.history = RunHistory()
        self.info = None
        self.job: RunJob | None = None
        self.node_names: dict[str, str] = {}
        self.steps_per_epoch = 1
        self.epochs = 1
        self.render_hidden = False  # render views that are not visible (tests, benchmarks)
        self.overlay_enabled = True
        self.overlay_mode = "grad"
        self.last_failure: dict | None = None
        self.last_finish: dict | None = None
        self._discard_result = False
        self._latest = None
        self._last_overlay = 0.0
        self._overlay_published = False
        self._scrub_index = -1
        self._scrub_model = None
        # The epoch of the history whose weights the document holds (None: they are not from it).
        # A run started from them continues the history: curves, epochs and the timeline go on.
        self._lineage_epoch: int | None = None
        self._frame_times: collections.deque = collections.deque(maxlen=240)
        self.frames = 0
        self._shut = False

        self._queue: list = []
        self._last_progress = 0.0
        self._progress_pending: tuple | None = None
        self._fresh = False
        self._frame_start = 0.0
        self._frame_interval = 1.0 / fps - TICK_S / 2
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
        p.resetClicked.connect(self.reset_weights)
        p.retryClicked.connect(self._retry)
        p.settingsEdited.connect(self._settings_edited)
        p.overlayToggled.connect(self._overlay_toggled)
        p.overlayModeChanged.connect(self._overlay_mode_changed)
        p.exportCsvClicked.connect(self._export_csv_dialog)
        p.exportTensorBoardClicked.connect(self._export_tb_dialog)
        self.timeline.scrubbed.connect(self._on_scrubbed)
        self.timeline.restoreRequested.connect(self.restore_checkpoint)
        if hasattr(document, "selectedNodeChanged"):
            document.selectedNodeChanged.connect(self._on_selected_node)
        if hasattr(document, "trainingConfigChanged"):
            document.trainingConfigChanged.connect(self._load_settings)
        if hasattr(document, "projectReplaced"):
            document.projectReplaced.connect(self._on_project_replaced)
        if hasattr(document, "datasetChanged"):
            document.datasetChanged.connect(self._on_dataset_changed)
        self._load_settings()
        p.set_state(self.worker.state)
        if self.worker.mode == "thread":
            self._on_ready({"cuda": _cuda_name_in_process()})

    @Slot(object)
    def raise_for_data_slot(self, *_args) -> None:
        """Bring the views that fit the data to the front (set up by install_training_ui)."""
        fn = getattr(self, "raise_for_data", None)
        if callable(fn):
            started = bool(_args) and isinstance(_args[0], dict) and "info" in _args[0]
            fn(_args[0] if started else None)

    # ------------------------------------------------------------------ settings
    @Slot()
    def _load_settings(self, *_args) -> None:
        try:
            stored = self.document.training_config()
        except Exception:  # noqa: BLE001 - a stand-in document without settings
            stored = {}
        self.panel.set_settings(stored or {})

    @Slot(dict)
    def _settings_edited(self, settings: dict) -> None:
        try:
            stored = self.document.training_config() or {}
            self.document.set_training_config({**stored, **settings})
        except Exception:  # noqa: BLE001
            pass

    @Slot(object)
    def _on_dataset_changed(self, *_args) -> None:
        self._lineage_epoch = None  # curves over other data would not continue these

    @Slot()
    def _on_project_replaced(self) -> None:
        self._load_settings()
        self._lineage_epoch = None
        if self.worker.busy:  # another project was opened mid-run: its weights must not land there
            self._discard_result = True
            self.worker.stop()
        else:
            self._clear_run()

    # ------------------------------------------------------------------ starting
    def _make_job(self, start_paused: bool = False, initial_steps: int = 0,
                  settings_override: dict | None = None) -> RunJob | None:
        doc = self.document
        dataset = getattr(doc, "dataset", None)
        if dataset is None:
            err = getattr(doc, "dataset_error", "") or ""
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
            config = train_config_from(settings, doc.training_config(), doc.graph, dataset.task)
            # no point in snapshots faster than the views draw them
            config["snapshot_interval_s"] = max(float(config.get("snapshot_interval_s") or 0.0), 1.0 / FPS)
        except LayerLabError as e:
            self.panel.show_status(str(e), error=True)
            return None
        ctx = doc.context
        weights = None
        stored = getattr(doc.project, "weights", None)
        if stored is not None and not getattr(doc, "weights_stale", False):
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
        if self._lineage_epoch is not None and job.weights is not None and self.history.checkpoints:
            if self.info is not None:  # histograms over time keep their bins
                job.hist_ranges = {lay.name: lay.hist_range for lay in self.info.layers}
            self._continue_history(self._lineage_epoch)
        else:
            self._clear_run()
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
    def reset_weights(self) -> bool:
        """Fresh initial weights from the seed (the same seed always gives the same weights)."""
        if self.worker.busy:
            return False
        doc = self.document
        try:
            ctx = doc.context
            seed = int(self.panel.seed_box.value())
            weights = initial_weights(doc.graph.to_dict(), (ctx.input_shape, ctx.n_outputs, ctx.task), seed)
        except LayerLabError as e:
            self.panel.show_status(f"Cannot make weights for this graph: {e}", error=True)
            return False
        doc.set_weights(weights)
        self._clear_run()
        self.panel.show_status(f"Fresh weights from seed {seed}.")
        return True

    def _continue_history(self, epoch: int) -> None:
        """The next run starts from the weights of ``epoch``: keep the history up to there."""
        self.history.truncate(epoch)
        self.history.x_offset = epoch
        self._show_history_afresh()

    def _clear_run(self) -> None:
        self._lineage_epoch = None
        self.history.clear()
        self.info = None
        self._show_history_afresh()
        self.panel.set_has_run(False)

    def _show_history_afresh(self) -> None:
        """Nothing live and nothing scrubbed yet; the timeline lists the history's checkpoints."""
        self._latest = None
        self._scrub_index = -1
        self._scrub_model = None
        self.timeline.clear()
        for cp in self.history.checkpoints:
            self.timeline.add_checkpoint(cp.epoch, cp.metrics)

    # ------------------------------------------------------------------ worker signals
    @Slot(object)
    def _on_ready(self, info: dict) -> None:
        self.panel.set_cuda(info.get("cuda"))

    @Slot(str)
    def _on_state(self, state: str) -> None:
        self.panel.set_state(state)

    @Slot(object)
    def _on_started(self, payload: dict) -> None:
        self.info = payload["info"]
        self.history.info = self.info
        self.steps_per_epoch = max(1, int(payload["steps_per_epoch"]))
        self.epochs = int(payload["epochs"])
        for v in self.views.values():
            v.show_message(None)
            v.reset(self.info)
            v.set_epochs(self.history.x_offset + self.epochs)
        selected = self._selected_fx()
        if selected:  # the node chosen on the canvas before the run
            self.views["activations"].select_node(selected)
        ev = payload["event"]
        threads = f", {ev.num_threads} thread{'s' if ev.num_threads != 1 else ''}" if ev.num_threads else ""
        amp = f", mixed precision {ev.amp}" if ev.amp not in ("off", "", None) else ""
        where = payload.get("device_name") or ev.device
        if "CUDA" not in where and ev.device.startswith("cuda"):
            where = ev.device
        self.panel.show_status(f"Training {ev.n_params:,} parameters on {where.split(' (')[0]}{threads}{amp}.")
        self.panel.set_has_run(True)

    @Slot(object)
    def _on_progress(self, ev) -> None:
        frac = ev.step / max(1, ev.total_steps)
        self._show_progress(frac, f"epoch {ev.epoch}/{self.epochs} · step {ev.step:,}/{ev.total_steps:,} · "
                                      f"{ev.samples_per_s:,.0f} samples/s · ETA {format_duration(ev.eta_s)}")

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
        # Short epochs end before the trainer's first mid-epoch Progress report: show progress here too.
        m = ev.metrics
        elapsed = m.get("elapsed_s")
        eta = elapsed / ev.epoch * (self.epochs - ev.epoch) if isinstance(elapsed, (int, float)) and ev.epoch else math.nan
        rate = m.get("samples_per_s") or 0.0
        steps = ev.epoch * self.steps_per_epoch
        self._show_progress(ev.epoch / max(1, self.epochs),
                            f"epoch {ev.epoch}/{self.epochs} · step {steps:,}/{self.epochs * self.steps_per_epoch:,} · "
                            f"{rate:,.0f} samples/s · ETA {format_duration(eta)}")

    @Slot(object)
    def _on_checkpoint(self, payload: dict) -> None:
        epoch = self.history.x_offset + int(payload["epoch"])
        if self.history.checkpoints and self.history.checkpoints[-1].epoch == epoch:
            return  # a continued run's starting point: the history has that epoch already
        self.history.checkpoints.append(Checkpoint(epoch, payload["weights"], None, dict(payload.get("metrics") or {})))
        self.timeline.add_checkpoint(epoch, payload.get("metrics") or {})

    @Slot(object)
    def _on_finished(self, payload: dict) -> None:
        self.last_finish = payload
        self.flush_frame()  # the final snapshot
        if self._discard_result:
            self._discard_result = False
            self.panel.show_status("The run was stopped because another project was opened.")
            self._end_run()
            return
        stored = self._apply_weights(state_from_numpy(payload["weights"]))
        rows = self.history.epochs
        # the next run continues this history; a run stopped mid-epoch continues from its last whole epoch
        self._lineage_epoch = self.history.checkpoints[-1].epoch if stored and self.history.checkpoints else None
        if stored:
            try:
                self.document.project.history = [dict(r) for r in rows]
            except AttributeError:
                pass
        last = rows[-1] if rows else {}
        summary = ", ".join(f"{k.replace('_', ' ')} {last[k]:.4g}" for k in ("val_loss", "val_accuracy", "val_mse")
                            if isinstance(last.get(k), (int, float)))
        what = {"completed": "Finished", "stopped": "Stopped", "early_stopping": "Stopped early (no improvement)"}
        head = what.get(payload.get("reason"), "Finished")
        epochs = len(payload.get("history") or [])
        in_all = f"; {len(rows)} epochs in all" if len(rows) != epochs else ""
        self.panel.show_status(f"{head} after {epochs} epoch{'s' if epochs != 1 else ''} "
                               f"({payload.get('steps', 0):,} steps{in_all}){': ' + summary if summary else ''}. "
                               + ("The weights are in the project." if stored else
                                  "The graph was edited during the run, so these weights no longer fit it "
                                  "and were not stored; train again."))
        if self._progress_pending is not None:
            self.panel.set_progress(*self._progress_pending)
            self._progress_pending = None
        if payload.get("reason") == "completed":
            self.panel.set_progress(1.0, self.panel.progress_label.text())
        self._end_run()

    @Slot(str)
    def _on_views_failed(self, reason: str) -> None:
        self.panel.show_status(f"Training goes on, but the live views cannot follow this run ({reason}). "
                               "The results will be complete when it ends.", error=True)

    @Slot(object)
    def _on_failed(self, payload: dict) -> None:
        self.last_failure = payload
        self.flush_frame()
        message = payload.get("message") or "Training failed."
        kept = ""
        weights = payload.get("weights")
        if self._discard_result:
            self._discard_result = False
        else:
            # Keep the newest epoch checkpoint that is finite: the weights at the failing step may be
            # finite but already blown up, and training on from them would fail again at once.
            good = self._newest_finite_checkpoint()
            self._lineage_epoch = None
            if good is not None and self._apply_weights(state_from_numpy(good.weights)):
                kept = (" The weights from before training are kept." if good.epoch == 0 else
                        f" The weights from the end of epoch {good.epoch} are kept.")
                self._lineage_epoch = good.epoch
            elif weights is not None and self._apply_weights(state_from_numpy(weights)):
                kept = " The last finite weights are kept."
        if payload.get("kind") == "oom":
            half = max(1, int(payload.get("batch_size") or 2) // 2)
            self.panel.offer_retry(half)
            message += f" You can retry with batch size {half}."
        self.panel.show_status(message + kept, error=True)
        self._end_run()

    def _apply_weights(self, state: dict) -> bool:
        """Store a run's weights in the document if they still fit its graph (it may have been edited)."""
        try:
            module = self.document.compile().module
            module.load_state_dict(state)
        except (LayerLabError, RuntimeError):
            return False
        self.document.set_weights(state)
        return True

    def _newest_finite_checkpoint(self) -> Checkpoint | None:
        for cp in reversed(self.history.checkpoints):
            if all(np.isfinite(v).all() for v in cp.weights.values() if np.issubdtype(v.dtype, np.floating)):
                return cp
        return None

    def _end_run(self) -> None:
        self.timer.stop()
        if self._overlay_published:
            self._clear_overlay()

    # ------------------------------------------------------------------ drawing
    @Slot()
    def _tick(self) -> None:
        """Timer tick: take in new snapshots; draw a frame's views a few at a time.

        A frame (every shown view drawing the newest snapshot, plus the canvas overlay) starts at
        most ``fps`` times a second.  Its views are drawn in slices of about TICK_BUDGET_S per
        tick, and Qt paints between ticks, so the event loop is never blocked for a whole frame.
        """
        snap = self.worker.inbox.drain(self.history)
        if snap is not None:
            self._latest = snap
            self._fresh = True
        now = time.perf_counter()
        if self._progress_pending is not None and now - self._last_progress >= PROGRESS_S:
            self._show_progress(*self._progress_pending)
        if not self._queue and self._fresh and now - self._frame_start >= self._frame_interval:
            self._fresh = False
            self._frame_start = now
            if self.timeline.live and self.info is not None:
                frame = Frame(self._latest, self.history, self.info, None, self._selected_fx())
                self._queue = [(view, frame) for view in self.views.values()
                               if self.render_hidden or is_shown(view)]
                self._frame_times.append(now)
                self.frames += 1
            if self.overlay_enabled and self.info is not None and now - self._last_overlay >= 1.0 / OVERLAY_HZ:
                self._last_overlay = now
                self._queue.append((None, self._latest))
        deadline = now + TICK_BUDGET_S
        while self._queue:
            view, frame = self._queue.pop(0)
            if view is None:
                self._publish_overlay(frame)
            else:
                view.render(frame)
            if time.perf_counter() >= deadline:
                break
        if not self._queue and snap is not None:
            self.framesRendered.emit(self.frames)

    def flush_frame(self) -> None:
        """Draw everything pending now (tests, the end of a run)."""
        self._tick()
        while self._queue:
            self._tick()

    def _render(self, frame: Frame) -> None:
        """Draw ``frame`` in every shown view at once (timeline scrubs, selections)."""
        self._queue = []
        for view in self.views.values():
            if self.render_hidden or is_shown(view):
                view.render(frame)

    def fps(self, window_s: float = 2.0) -> float:
        """Frames drawn per second over the last ``window_s`` seconds."""
        now = time.perf_counter()
        recent = [t for t in self._frame_times if now - t <= window_s]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)

    def _selected_fx(self) -> str | None:
        node_id = getattr(self.document, "selected_node", "") or ""
        return self.node_names.get(node_id)

    @Slot(str)
    def _on_selected_node(self, node_id: str) -> None:
        name = self.node_names.get(node_id)
        if name is None and self.info is not None:
            name = next((k for k, v in self.info.node_ids.items() if v == node_id), None)
        if name and self.views["activations"].select_node(name):
            if not self.worker.busy and self._latest is not None:
                self.views["activations"].render(Frame(self._latest, self.history, self.info, None, name))

    # ------------------------------------------------------------------ timeline
    @Slot(int)
    def _on_scrubbed(self, index: int) -> None:
        self._scrub_index = index
        if index < 0:
            if self._latest is not None and self.info is not None:
                self._render(Frame(self._latest, self.history, self.info, None, self._selected_fx()))
            return
        snap = self.checkpoint_snapshot(index)
        if snap is not None:
            cp = self.history.checkpoints[index]
            self._render(Frame(snap, self.history, self.info, float(cp.epoch), self._selected_fx()))

    def checkpoint_snapshot(self, index: int):
        """What the views show for checkpoint ``index``: computed once from its weights, then cached."""
        if not (0 <= index < len(self.history.checkpoints)) or self.job is None:
            return None
        cp = self.history.checkpoints[index]
        if cp.snapshot is not None:
            return cp.snapshot
        from engine.snapshots import SnapshotCollector

        try:
            if self._scrub_model is None:
                cm = build_model(self.job.graph, self.job.context, self.job.seed)
                collector = SnapshotCollector(cm.module, self.job.dataset, self.job.node_names,
                                              probe_size=self.job.probe_size)
                if self.info is not None:
                    collector.adopt(self.info)  # the run's histogram bins, not this replica's
                self._scrub_model = (cm.module, collector)
            module, collector = self._scrub_model
            module.load_state_dict(state_from_numpy(cp.weights))
            step = self.steps_per_epoch * cp.epoch
            cp.snapshot = collector.collect(step=step, epoch=float(cp.epoch), grads=False,
                                            train_loss=cp.metrics.get("train_loss"), lr=cp.metrics.get("lr"))
        except Exception as e:  # noqa: BLE001 - never let a scrub take the window down
            self.panel.show_status(f"Cannot show epoch {cp.epoch}: {e}", error=True)
            return None
        return cp.snapshot

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
        return True

    # ------------------------------------------------------------------ canvas overlay
    @Slot(bool)
    def _overlay_toggled(self, on: bool) -> None:
        self.overlay_enabled = on
        if not on and self._overlay_published:
            self._clear_overlay()
        elif on and self._latest is not None and self.worker.busy:
            self._publish_overlay(self._latest)

    @Slot(str)
    def _overlay_mode_changed(self, mode: str) -> None:
        self.overlay_mode = mode
        if self._latest is not None and self.overlay_enabled and self.worker.busy:
            self._publish_overlay(self._latest)

    def overlay_for(self, snap) -> dict:
        """``{"edge_colors": {edge id: (r, g, b, a)}, "node_images": {node id: QImage}}`` for a snapshot."""
        info = self.info
        if info is None or snap is None:
            return {}
        by_fx = snap.grad_norms if self.overlay_mode == "grad" else snap.weight_mag
        values = {info.node_ids.get(k, ""): v for k, v in by_fx.items() if v is not None and math.isfinite(v) and v > 0}
        values.pop("", None)
        edge_colors = {}
        if values:
            logs = {k: math.log10(v) for k, v in values.items()}
            lo, hi = min(logs.values()), max(logs.values())
            span = max(hi - lo, 1e-9)
            graph = self.document.graph
            for e in graph.edges:
                v = logs.get(e.dst, logs.get(e.src))
                if v is None:
                    continue
                t = 0.15 + 0.8 * ((v - lo) / span if hi > lo else 0.5)
                r, g, b = (int(c) for c in _EDGE_LUT[int(t * 255)])
                edge_colors[e.id] = (r, g, b, 255)
        node_images = {}
        for fx_name, a in snap.activations.items():
            a = np.asarray(a, dtype=np.float32)
            node_id = info.node_ids.get(fx_name)
            if node_id:
                img = activation_thumbnail(a)
                if img is not None:
                    node_images[node_id] = img
        return {"edge_colors": edge_colors, "node_images": node_images}

    def _publish_overlay(self, snap) -> None:
        overlay = self.overlay_for(snap)
        if overlay and hasattr(self.document, "set_overlay"):
            self.document.set_overlay(overlay)
            self._overlay_published = True

    def _clear_overlay(self) -> None:
        self._overlay_published = False
        if hasattr(self.document, "set_overlay"):
            self.document.set_overlay({})

    # ------------------------------------------------------------------ export
    def export_csv(self, path: str | os.PathLike) -> Path:
        return write_metrics_csv(path, self.history.epochs)

    def export_tensorboard(self, logdir: str | os.PathLike) -> Path:
        loss = self.history.loss.arrays() if len(self.history.loss) else None
        return write_run_tensorboard(logdir, self.history.epochs, loss, self.steps_per_epoch)

    @Slot()
    def _export_csv_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.panel, "Export metrics as CSV", "metrics.csv", "CSV files (*.csv)")
        if path:
            try:
                self.export_csv(path)
                self.panel.show_status(f"Metrics written to {path}.")
            except OSError as e:
                self.panel.show_status(f"Cannot write {path}: {e.strerror}.", error=True)

    @Slot()
    def _export_tb_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.panel, "Export TensorBoard event files to")
        if folder:
            try:
                p = self.export_tensorboard(folder)
                self.panel.show_status(f"TensorBoard events written to {p.parent} "
                                       f"(open with: tensorboard --logdir \"{p.parent}\").")
            except OSError as e:
                self.panel.show_status(f"Cannot write to {folder}: {e.strerror}.", error=True)

    # ------------------------------------------------------------------ shutdown
    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop the run and the training process; safe to call more than once."""
        if self._shut:
            return
        self._shut = True
        self.timer.stop()
        self.worker.shutdown(timeout_s)
        if self._overlay_published:
            try:
                self._clear_overlay()
            except RuntimeError:  # the document is already deleted
                pass


def _cuda_name_in_process() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
