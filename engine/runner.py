"""One live run of a project, free of Qt: the body of the GUI's warm training process.

``run_job(job, sink, control)`` builds the model (``engine.run``), the engine ``Trainer`` and a
``SnapshotCollector``, trains, and reports everything as typed messages through ``sink(msg)``:

=================  =====================================================================
message            when
=================  =====================================================================
``RunBegan``       the trainer started: its ``RunStarted`` event, the views' ``ProbeInfo``
``Checkpoint``     epoch 0 (before training) and the end of every epoch: the weights
``Snapshot`` /     time-throttled, for the live views (``RawSnapshot`` on a CPU: the GUI
``RawSnapshot``    process finishes it, see ``raw_snapshots_pay_off``)
``Progress``       the trainer's throttled mid-epoch report
``EpochEnd``       the trainer's epoch metrics
``RunFinished``    with the final weights
``RunFailed``      with its kind, the node at fault and the last finite weights
``Batch``          many EpochEnd / Checkpoint at once (see ``EpochBatcher``)
``WorkerReady``, ``WorkerIdle``, ``WorkerBye``: the process's own life
=================  =====================================================================

The GUI steers a run with ``Steer`` commands (stop / pause / resume / step) applied by
``RunControl``, a training policy that may arrive before the trainer exists.  ``child_main`` is
the training subprocess (started with the ``spawn`` method by ``gui.training.worker``): it
imports torch, builds one optimiser so that ``torch._dynamo`` is loaded before the first run,
says ``WorkerReady``, then runs jobs until told to quit.  This module never imports Qt.
"""
from __future__ import annotations

import os
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from engine.events import Callback, Checkpoint, EpochEnd, Progress, RunFailed, RunFinished, RunStarted

Sink = Callable[[Any], None]

# ----------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class RunBegan:
    run_id: int
    started: RunStarted
    info: Any  # engine.snapshots.ProbeInfo
    raw_snapshots: bool  # snapshots come raw: the receiver finishes them on a replica
    device_name: str


@dataclass(frozen=True)
class Batch:
    items: tuple


@dataclass(frozen=True)
class WorkerReady:
    startup_s: float
    cuda: str | None
    pid: int
    torch: str


@dataclass(frozen=True)
class WorkerIdle:
    """The process finished run ``run_id`` and waits for the next (it may already have been sent)."""

    run_id: int = 0


@dataclass(frozen=True)
class WorkerBye:
    pass


@dataclass(frozen=True)
class StartRun:
    job: "RunJob"


@dataclass(frozen=True)
class Steer:
    action: str  # "stop" | "pause" | "resume" | "step"
    run_id: int | None = None


@dataclass(frozen=True)
class Quit:
    pass


# ----------------------------------------------------------------------------- the job
#: the largest share of training time that snapshots may take (the trainer's own
#: snapshot_interval_s sets the highest rate; this lowers it for models whose snapshot is costly)
SNAPSHOT_BUDGET = 0.04
MAX_SNAPSHOT_BUDGET = 0.08
MIN_SNAPSHOT_HZ = 22.0


@dataclass
class RunJob:
    """Everything a run needs, picklable (the dataset's tensors travel through shared memory)."""

    graph: dict  # Graph.to_dict()
    context: tuple  # (input_shape, n_outputs, task)
    dataset: Any  # engine.data.Dataset with CPU tensors
    config: dict  # TrainConfig.to_dict()
    node_names: dict = field(default_factory=dict)  # graph node id -> fx name
    weights: dict | None = None  # start from these (CPU tensors); None: fresh weights from ``seed``
    seed: int = 0
    start_paused: bool = False  # for "Step" before any run: start paused ...
    initial_steps: int = 0  # ... and let this many batches through
    run_id: int = 0  # commands name the run they are for
    probe_size: int = 64
    max_threads: int = 0  # cap on torch CPU threads (0: the trainer decides)
    # send RawSnapshots where that is cheaper (see ``raw_snapshots_pay_off``): the receiver, with
    # its own replica of the model, finishes the snapshots off the training core
    raw_snapshots: bool = False
    hist_ranges: dict | None = None  # layer -> (lo, hi): a run continuing a history keeps its histogram bins

    def infer_context(self):
        from engine.spec import InferContext

        shape, n_outputs, task = self.context
        return InferContext(tuple(shape) if shape is not None else None, n_outputs, task)


#: a RawSnapshot ships the whole floating-point state: worth it while that is small
RAW_MAX_VALUES = 2_000_000


def raw_snapshots_pay_off(device: torch.device, n_values: int) -> bool:
    """Whether the training process should send RawSnapshots rather than build the snapshots.

    On a CPU the snapshot's forward passes (probe batch, decision-boundary grid) take the
    training core's time; a flat copy of the weights takes microseconds, and the GUI process
    has its own core to spend.  On a GPU those passes are nearly free and the weights would
    have to cross to the host, so the training process builds the snapshots itself there."""
    return device.type == "cpu" and n_values <= RAW_MAX_VALUES


def warm_up() -> None:
    """Import what the first run would otherwise import mid-run: torch.optim builds pull in
    torch._dynamo (~1 s) the first time, and the fused Adam kernel has a first-call cost."""
    import engine.train  # noqa: F401 - imports optim, losses, probes
    p = torch.zeros(4, requires_grad=True)
    opt = torch.optim.Adam([p], lr=1e-3, fused=True)
    p.grad = torch.ones_like(p)
    opt.step()
    torch.nn.functional.cross_entropy(torch.zeros(2, 2, requires_grad=True), torch.zeros(2, dtype=torch.long)).backward()


def build_model(graph_doc: dict, context, seed: int | None = None):
    """Compile a graph document; with ``seed``, its initial weights depend on the seed alone."""
    from engine.graph import Graph
    from engine.run import build_run_model

    return build_run_model(Graph.from_dict(graph_doc), context, seed=seed)


def initial_weights(graph_doc: dict, context, seed: int) -> dict[str, torch.Tensor]:
    """The fresh weights a run with this seed starts from ("Reset weights")."""
    cm = build_model(graph_doc, context, seed)
    return {k: v.detach().clone() for k, v in cm.module.state_dict().items()}


def state_to_numpy(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    out = {}
    for k, v in state.items():
        v = v.detach().to("cpu")
        if v.dtype == torch.bfloat16:
            v = v.float()
        out[k] = v.numpy().copy()
    return out


def state_from_numpy(state: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    # not np.ascontiguousarray: it makes a 0-d array 1-d, and BatchNorm's num_batches_tracked
    # came back (1,), which no graph would load again
    return {k: torch.from_numpy(v if v.flags.c_contiguous else v.copy()) for k, v in state.items()}


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    return f"CPU ({torch.get_num_threads()} thread{'s' if torch.get_num_threads() != 1 else ''})"


# ----------------------------------------------------------------------------- steering
class RunControl(Callback):
    """The GUI's Stop / Pause / Resume / Step as a training policy (thread-safe).

    Commands may arrive before the trainer exists (the subprocess is still compiling the model):
    they are remembered and applied when it attaches.  Commands carry the run id they were meant
    for, so a Stop that arrives just after a run ended cannot stop the next one.

    How a run starts (paused, with Steps to take) is part of its ``begin``, which whoever sees the
    job first calls, in order with the commands: a Resume sent right after a Step-started run
    must not be undone by the training loop pausing the run once its trainer exists.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.trainer = None
        self.run_id = 0
        self.stop_requested = False
        self.paused = False
        self.pending_steps = 0
        self._begun: int | None = None  # the run whose start state is set

    def _retarget(self, run_id: int) -> bool:
        """False for a command meant for an older run."""
        if run_id < self.run_id:
            return False
        if run_id > self.run_id:
            self.run_id = run_id
            self.trainer = None
            self.stop_requested = self.paused = False
            self.pending_steps = 0
        return True

    def begin(self, run_id: int, paused: bool = False, steps: int = 0) -> None:
        """Run ``run_id`` starts, ``paused`` with ``steps`` batches to take.  Only the first call for
        a run counts (the command listener's, then the training loop's): commands in between stay."""
        with self._lock:
            if run_id == self._begun or not self._retarget(run_id):
                return
            self._begun = run_id
            self.paused = paused
            self.pending_steps = steps

    def setup(self, trainer) -> None:
        """Attach to the run's trainer and apply what was asked before it existed."""
        with self._lock:
            self.trainer = trainer
            if self.stop_requested:
                trainer.request_stop()
                return
            if self.paused:
                trainer.pause()
            for _ in range(self.pending_steps):
                trainer.step()
            self.pending_steps = 0

    def detach(self) -> None:
        with self._lock:
            self.trainer = None

    def __call__(self, event) -> None:
        pass  # steering comes from the GUI's commands, not from the run's events

    def command(self, name: str, run_id: int | None = None) -> None:
        with self._lock:
            if run_id is not None and not self._retarget(run_id):
                return
            t = self.trainer
            if name == "stop":
                self.stop_requested = True
                if t is not None:
                    t.request_stop()
            elif name == "pause":
                self.paused = True
                if t is not None:
                    t.pause()
            elif name == "resume":
                self.paused = False
                self.pending_steps = 0
                if t is not None:
                    t.resume()
            elif name == "step":
                if t is not None:
                    t.step()
                else:
                    self.pending_steps += 1


class SnapshotPacer:
    """When to take the next live snapshot: whenever the trainer asks (every ``interval_s``), but
    less often when snapshots are costly - SNAPSHOT_BUDGET of the training time, or up to
    MAX_SNAPSHOT_BUDGET to keep the views at MIN_SNAPSHOT_HZ (a model whose snapshot costs more
    than that gets fewer, never slower training).  The median of recent costs decides: one
    snapshot descheduled mid-way (a busy machine) must not throttle the views for seconds."""

    def __init__(self, interval_s: float):
        # The trainer already asks on its own grid of interval_s; this floor only stops bursts.
        # A strict one (interval_s less 2 ms) beat against that grid: for models whose steps
        # last a few milliseconds it refused one snapshot in eight, and the views drew 22 fps.
        self.min_gap_s = max(0.0, float(interval_s) / 2)
        self._next = 0.0
        self._costs: list[float] = []
        self.taken = 0

    def due(self, now: float) -> bool:
        return now >= self._next

    def record(self, started: float, finished: float) -> None:
        self.taken += 1
        if self.taken > 1:  # the first snapshot pays one-off costs
            self._costs.append(finished - started)
            if len(self._costs) > 9:
                del self._costs[0]
        costs = sorted(self._costs)
        c = costs[(len(costs) - 1) // 2] if costs else 0.0
        gap = min(c / SNAPSHOT_BUDGET, max(1.0 / MIN_SNAPSHOT_HZ, c / MAX_SNAPSHOT_BUDGET))
        self._next = started + max(self.min_gap_s, gap)


# ----------------------------------------------------------------------------- running one job
def _setup_failure(e: BaseException, batch_size: int) -> RunFailed:
    from engine.errors import LayerLabError
    from engine.train import failure_event

    if isinstance(e, LayerLabError):
        failure = failure_event(e, batch_size=batch_size)
        if failure.kind == "internal":
            failure = RunFailed(message=failure.message, kind="setup", batch_size=batch_size)
        return failure
    return RunFailed(message=f"Could not set up training: {type(e).__name__}: {e}", kind="setup",
                     batch_size=batch_size, trace=traceback.format_exc())


def run_job(job: RunJob, sink: Sink, control: RunControl | None = None) -> None:
    """Run ``job`` to the end, reporting through ``sink``; never raises (failures are reported)."""
    from engine.errors import LayerLabError
    from engine.probes import state_is_finite
    from engine.graph import Graph
    from engine.run import build_run_model
    from engine.snapshots import SnapshotCollector, state_dict_cpu
    from engine.train import Trainer, failure_event
    from engine.train_config import TrainConfig

    control = control or RunControl()
    control.begin(job.run_id, job.start_paused, job.initial_steps)  # applied when the trainer attaches
    batch_size = int(job.config.get("batch_size", 32))
    t0 = time.perf_counter()
    spent = {"s": 0.0}  # time the live views cost the training thread
    pacer: SnapshotPacer | None = None
    state: dict = {}

    def timed(fn, arg) -> None:
        t = time.perf_counter()
        try:
            fn(arg)
        finally:
            spent["s"] += time.perf_counter() - t

    try:
        config = TrainConfig.from_dict(job.config)
        batch_size = config.batch_size
        cm = build_run_model(Graph.from_dict(job.graph), job.infer_context(), job.weights, seed=job.seed)
        model = cm.module
        trainer = Trainer(model, job.dataset, config, callbacks=[control, lambda ev: timed(on_event, ev)],
                          on_snapshot_due=lambda m: timed(on_snapshot, m))
        collector = SnapshotCollector(model, job.dataset, job.node_names, probe_size=job.probe_size,
                                      device=trainer.device, hist_ranges=job.hist_ranges)
        collector.grad_scaler = trainer.scaler
        raw = job.raw_snapshots and raw_snapshots_pay_off(trainer.device, collector.state_size)
        pacer = SnapshotPacer(config.snapshot_interval_s)
    except (LayerLabError, Exception) as e:  # noqa: BLE001 - a bad job or a torch error while building: one sentence
        control.detach()
        sink(_setup_failure(e, batch_size))
        return

    steps_per_epoch = trainer.steps_per_epoch

    def snapshot_now(pinned: bool = False):
        """A Snapshot, or the RawSnapshot the receiver finishes (``raw``)."""
        step = trainer.global_step
        moment = dict(step=step, epoch=step / steps_per_epoch, samples=step * batch_size,
                      elapsed_s=time.perf_counter() - t0, train_loss=trainer.recent_loss(),
                      lr=float(trainer.optimizer.param_groups[0]["lr"]))
        snap = collector.raw(**moment) if raw else collector.collect(**moment)
        snap.pinned = pinned
        return snap

    def on_snapshot(_model, pinned: bool = False) -> None:
        now = time.perf_counter()
        if not pinned and not pacer.due(now):
            return
        snap = snapshot_now(pinned)
        pacer.record(now, time.perf_counter())
        if not collector.saw_live_grads:  # a pause or a Step: the gradients were freed already, so
            collector.arm_grad_tap()  # the next backward pass records their norms for the next snapshot
        sink(snap)

    # The state_dict's tensors, looked up once (after the trainer placed the model): the optimiser
    # and the norm layers update them in place, and a checkpoint every epoch of a model that runs
    # 150 epochs a second should not walk the module tree each time.
    state["now"] = model.state_dict()

    def checkpoint(epoch: int, metrics: dict) -> None:
        # Weights only (a CPU copy): the timeline computes what the views show for an epoch when
        # someone scrubs to it, so epoch ends cost no extra forward passes here.
        sink(Checkpoint(epoch=epoch, step=trainer.global_step, weights=state_to_numpy(state["now"]),
                        metrics=metrics))

    def on_event(ev) -> None:
        if isinstance(ev, RunStarted):
            if job.max_threads and trainer.device.type == "cpu" and torch.get_num_threads() > job.max_threads:
                torch.set_num_threads(job.max_threads)
            sink(RunBegan(run_id=job.run_id, started=ev, info=collector.info, raw_snapshots=raw,
                          device_name=device_name(trainer.device)))
            checkpoint(0, {})
            sink(snapshot_now(pinned=True))  # the views show the starting point at once
            collector.arm_grad_tap()
        elif isinstance(ev, Progress):
            sink(ev)
            if trainer.is_paused:  # paused (or one Step done): the views show exactly this moment
                on_snapshot(model, pinned=True)
        elif isinstance(ev, EpochEnd):
            sink(ev)
            checkpoint(ev.epoch, dict(ev.metrics))

    try:
        finished = trainer.run()
        sink(snapshot_now(pinned=True))  # the views end on the final weights
        sink(RunFinished(reason=finished.reason, history=finished.history, steps=trainer.global_step,
                         weights=state_to_numpy(state_dict_cpu(model)), views_cost_s=spent["s"],
                         snapshots=pacer.taken, run_s=time.perf_counter() - t0))
    except Exception as e:  # noqa: BLE001 - a TrainingError from the trainer, or anything torch raised
        if isinstance(e, LayerLabError):
            failure = failure_event(e, batch_size=batch_size, steps=trainer.global_step)
        else:
            failure = RunFailed(message=f"{type(e).__name__}: {e}", kind="internal", batch_size=batch_size,
                                steps=trainer.global_step, trace=traceback.format_exc())
        final = state_dict_cpu(model)
        if failure.kind == "out_of_memory" and trainer.device.type == "cuda":
            torch.cuda.empty_cache()
        # None: the GUI falls back to the newest finite checkpoint
        weights = state_to_numpy(final) if state_is_finite(final) else None
        sink(RunFailed(message=failure.message, kind=failure.kind, node=failure.node, epoch=failure.epoch,
                       step=failure.step, weights=weights, batch_size=failure.batch_size or batch_size,
                       steps=trainer.global_step, trace=failure.trace))
    finally:
        control.detach()


class EpochBatcher:
    """Wraps a sink: ``EpochEnd`` and ``Checkpoint`` messages are sent in batches (a ``Batch``) at
    most every ``interval_s``, and before anything else is sent.

    Small models finish a hundred epochs a second; one message per report would cost the trainer
    (a queue wake-up and pickling each) and the GUI (a slot call and a redraw each) for nothing."""

    BATCHED = (EpochEnd, Checkpoint)

    def __init__(self, send: Sink, interval_s: float = 0.1):
        from engine.snapshots import RawSnapshot, Snapshot

        self.send = send
        self.interval_s = interval_s
        self._pending: list[Any] = []
        self._last = 0.0
        self._unbatched_live = (Snapshot, RawSnapshot)

    def __call__(self, msg: Any) -> None:
        if isinstance(msg, self.BATCHED):
            self._pending.append(msg)
            now = time.perf_counter()
            if now - self._last >= self.interval_s:
                self.flush(now)
            return
        if not isinstance(msg, self._unbatched_live):
            self.flush()
        self.send(msg)

    def flush(self, now: float | None = None) -> None:
        self._last = time.perf_counter() if now is None else now
        if self._pending:
            batch, self._pending = self._pending, []
            self.send(Batch(tuple(batch)))


# ----------------------------------------------------------------------------- the warm subprocess
def _exit_with_parent() -> None:
    """End this process as soon as the GUI process is gone, whatever the training thread is doing.

    The command queue cannot tell us (this process holds a handle to its write end too), so a
    watchdog thread waits on the parent's sentinel, which becomes ready when the parent dies -
    a crash or a kill included."""
    import multiprocessing
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="layerlab-parent-watch", daemon=True).start()


def child_main(cmd_queue, out_queue, max_threads: int = 1, backlog=None) -> None:
    """Body of the training subprocess: warm up, then run jobs until ``Quit``.

    ``backlog``: a shared counter of snapshots the GUI has not taken yet (multiprocessing.Value);
    snapshots are dropped while it is high, so a frozen GUI never builds up a queue.
    """
    from engine.snapshots import RawSnapshot, Snapshot

    t0 = time.perf_counter()
    _exit_with_parent()
    if max_threads:
        torch.set_num_threads(max_threads)
    try:
        warm_up()
    except Exception:  # noqa: BLE001 - warming up is an optimisation only
        pass
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    out_queue.put(WorkerReady(startup_s=time.perf_counter() - t0, cuda=cuda, pid=os.getpid(),
                              torch=torch.__version__))
    jobs: queue.Queue = queue.Queue()
    control = RunControl()

    def listen() -> None:
        while True:
            try:
                msg = cmd_queue.get()
            except (EOFError, OSError):
                msg = Quit()
            if isinstance(msg, StartRun):
                control.begin(msg.job.run_id, msg.job.start_paused, msg.job.initial_steps)
                jobs.put(msg.job)
            elif isinstance(msg, Steer):
                control.command(msg.action, msg.run_id)
            else:  # Quit
                control.command("stop")
                jobs.put(None)
                return

    threading.Thread(target=listen, name="layerlab-commands", daemon=True).start()

    def send(msg: Any) -> None:
        if isinstance(msg, (Snapshot, RawSnapshot)) and not msg.pinned and backlog is not None:
            if backlog.value >= 3:
                return  # the GUI is behind: drop this one (the newest will follow soon)
            with backlog.get_lock():
                backlog.value += 1
        out_queue.put(msg)

    sink = EpochBatcher(send)

    while True:
        job = jobs.get()
        if job is None:
            break
        try:
            run_job(job, sink, control)
        except Exception as e:  # noqa: BLE001 - keep the warm process alive for the next run
            sink(RunFailed(message=f"Training crashed: {type(e).__name__}: {e}", kind="internal",
                           trace=traceback.format_exc()))
        sink(WorkerIdle(job.run_id))
    sink.flush()
    out_queue.put(WorkerBye())
