"""The training run itself, free of Qt: the same code runs in a training subprocess or on a QThread.

``run_job`` compiles the graph, builds the engine ``Trainer`` and a ``SnapshotCollector``, runs
the training, and reports everything through ``sink(kind, payload)``:

=============  =====================================================================
kind           payload
=============  =====================================================================
``started``    dict: ``event`` (RunStarted), ``info`` (ProbeInfo), ``steps_per_epoch``,
               ``batch_size``, ``epochs``, ``device_name``
``checkpoint`` dict: ``epoch`` (0 = before training), ``weights`` (numpy state dict), ``metrics``, ``step``
``snapshot``   Snapshot (time-throttled by the trainer's ``on_snapshot_due`` hook)
``progress``   Progress event
``epoch``      EpochEnd event
``finished``   dict: ``reason``, ``weights`` (numpy state dict), ``history``
``failed``     dict: ``message``, ``kind`` ("nonfinite" | "oom" | "shape" | "setup" | "error"),
               ``weights`` (the last finite weights, or None), ``batch_size``
=============  =====================================================================

``child_main`` is the body of the warm training subprocess (``worker.ProcessRunner`` starts it with
the ``spawn`` method): it imports torch, builds one optimiser so that ``torch._dynamo`` is loaded
before the first run, says ``ready``, then runs jobs from its command queue until told to quit.
This module must not import Qt: the subprocess imports it, and nothing else from the GUI.
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

Sink = Callable[[str, Any], None]

#: the largest share of training time that snapshots may take (the trainer's own
#: snapshot_interval_s sets the highest rate; this lowers it for models whose snapshot is costly)
SNAPSHOT_BUDGET = 0.04
MAX_SNAPSHOT_BUDGET = 0.08
MIN_SNAPSHOT_HZ = 22.0

# ----------------------------------------------------------------------------- the job


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
    # send WeightFrames instead of Snapshots where that is cheaper (see ``frames_pay_off``):
    # the receiver, with its own replica of the model, builds the snapshots off the training core
    frames: bool = False
    hist_ranges: dict | None = None  # layer -> (lo, hi): a run continuing a history keeps its histogram bins


#: a WeightFrame ships the whole floating-point state: worth it while that is small
FRAME_MAX_VALUES = 2_000_000


def frames_pay_off(device: torch.device, n_values: int) -> bool:
    """Whether the training process should send WeightFrames rather than build the snapshots.

    On a CPU the snapshot's forward passes (probe batch, decision-boundary grid) take the
    training core's time; a flat copy of the weights takes microseconds, and the GUI process
    has its own core to spend.  On a GPU those passes are nearly free and the weights would
    have to cross to the host, so the training process builds the snapshots itself there."""
    return device.type == "cpu" and n_values <= FRAME_MAX_VALUES


def warm_up() -> None:
    """Import what the first run would otherwise import mid-run: torch.optim builds pull in
    torch._dynamo (~1 s) the first time, and the fused Adam kernel has a first-call cost."""
    import engine.train  # noqa: F401  (imports optim, losses, probes)
    p = torch.zeros(4, requires_grad=True)
    opt = torch.optim.Adam([p], lr=1e-3, fused=True)
    p.grad = torch.ones_like(p)
    opt.step()
    torch.nn.functional.cross_entropy(torch.zeros(2, 2, requires_grad=True), torch.zeros(2, dtype=torch.long)).backward()


def build_model(graph_doc: dict, context: tuple, seed: int | None = None):
    """Compile the graph; with ``seed``, its initial weights are a function of the seed alone."""
    from engine.compile import compile_graph
    from engine.graph import Graph
    from engine.spec import InferContext

    graph = Graph.from_dict(graph_doc)
    ctx = InferContext(tuple(context[0]) if context[0] is not None else None, context[1], context[2])
    if seed is None:
        return compile_graph(graph, ctx)
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        return compile_graph(graph, ctx)


def initial_weights(graph_doc: dict, context: tuple, seed: int) -> dict[str, torch.Tensor]:
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
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}


def _finite_state(state: dict[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())


def _classify_failure(exc: BaseException) -> str:
    chain, e = [], exc
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    text = " ".join(str(x) for x in chain).lower()
    if any(isinstance(x, torch.OutOfMemoryError) for x in chain) or "out of memory" in text:
        return "oom"
    if str(exc).startswith("Loss became"):
        return "nonfinite"
    shape_words = ("shape", "size mismatch", "mat1 and mat2", "dimension", "expected input", "must match")
    if "cannot process a training batch" in text or any(w in text for w in shape_words):
        return "shape"
    return "error"


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    return f"CPU ({torch.get_num_threads()} thread{'s' if torch.get_num_threads() != 1 else ''})"


# ----------------------------------------------------------------------------- running one job
class RunControl:
    """Steers the run in progress from another thread (thread-safe).

    Commands may arrive before the trainer exists (the subprocess is still compiling the model):
    they are remembered and applied when it attaches.  Commands carry the run id they were meant
    for, so a Stop that arrives just after a run ended cannot stop the next one.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.trainer = None
        self.run_id = 0
        self.stop_requested = False
        self.paused = False
        self.pending_steps = 0

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

    def begin(self, run_id: int) -> None:
        with self._lock:
            self._retarget(run_id)

    def attach(self, trainer) -> None:
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


def run_job(job: RunJob, sink: Sink, control: RunControl | None = None) -> None:
    """Run ``job`` to the end, reporting through ``sink``; never raises (failures are reported)."""
    from engine.errors import LayerLabError
    from engine.events import EpochEnd, Progress, RunFailed, RunFinished, RunStarted
    from engine.snapshots import SnapshotCollector, state_dict_cpu
    from engine.train import Trainer
    from engine.train_config import TrainConfig

    control = control or RunControl()
    control.begin(job.run_id)
    batch_size = int(job.config.get("batch_size", 32))
    try:
        config = TrainConfig.from_dict(job.config)
        batch_size = config.batch_size
        cm = build_model(job.graph, job.context, None if job.weights else job.seed)
        model = cm.module
        if job.weights:
            try:
                model.load_state_dict(job.weights)
            except RuntimeError as e:
                raise LayerLabError("The stored weights do not fit the graph any more "
                                    f"({str(e).splitlines()[0]}); use Reset weights to start fresh.") from None
        trainer = Trainer(model, job.dataset, config, callbacks=[lambda ev: _timed(_on_event, ev)],
                          on_snapshot_due=lambda m: _timed(_on_snapshot, m))
        collector = SnapshotCollector(model, job.dataset, job.node_names, probe_size=job.probe_size,
                                      device=trainer.device, hist_ranges=job.hist_ranges)
        collector.grad_scaler = trainer.scaler
        frames = job.frames and frames_pay_off(trainer.device, collector.state_size)
    except LayerLabError as e:
        kind = "shape" if _classify_failure(e) == "shape" else "setup"
        sink("failed", {"message": str(e), "kind": kind, "weights": None, "batch_size": batch_size})
        return
    except Exception as e:  # noqa: BLE001 - a bug or a torch error while building: one sentence
        sink("failed", {"message": f"Could not set up training: {type(e).__name__}: {e}", "kind": "setup",
                        "weights": None, "batch_size": batch_size})
        return

    steps_per_epoch = trainer.steps_per_epoch
    t0 = time.perf_counter()
    spent = {"s": 0.0, "snapshots": 0}  # time the live views cost the training thread

    def _timed(fn, arg) -> None:
        t = time.perf_counter()
        try:
            fn(arg)
        finally:
            spent["s"] += time.perf_counter() - t

    def snapshot_now():
        """A Snapshot, or the WeightFrame the receiver builds it from (``frames``)."""
        step = trainer.global_step
        moment = dict(step=step, epoch=step / steps_per_epoch, samples=step * batch_size,
                      elapsed_s=time.perf_counter() - t0, train_loss=trainer.recent_loss(),
                      lr=float(trainer.optimizer.param_groups[0]["lr"]))
        return collector.frame(**moment) if frames else collector.collect(**moment)

    # The trainer calls the hook every ``snapshot_interval_s``; on top of that the snapshots'
    # measured cost decides how often one is actually taken (see the budget constants above).
    throttle: dict[str, Any] = {"next": 0.0, "costs": []}
    interval = max(0.0, float(config.snapshot_interval_s) - 0.002)

    def _on_snapshot(model, force: bool = False) -> None:
        now = time.perf_counter()
        if now < throttle["next"] and not force:
            return
        snap = snapshot_now()
        costs = throttle["costs"]
        throttle["n"] = throttle.get("n", 0) + 1
        if throttle["n"] > 1:  # the first snapshot pays one-off costs
            costs.append(time.perf_counter() - now)
            if len(costs) > 9:
                del costs[0]
        # the median of recent costs: a snapshot that was descheduled mid-way (a busy machine)
        # must not throttle the views for seconds
        c = sorted(costs)[(len(costs) - 1) // 2] if costs else 0.0
        # SNAPSHOT_BUDGET of the training time, but spend up to MAX_SNAPSHOT_BUDGET to keep the views
        # at MIN_SNAPSHOT_HZ (a model whose snapshot costs more than that gets fewer, never slower training)
        gap = min(c / SNAPSHOT_BUDGET, max(1.0 / MIN_SNAPSHOT_HZ, c / MAX_SNAPSHOT_BUDGET))
        throttle["next"] = now + max(interval, gap)
        collector.arm_grad_tap()  # the next backward pass records gradient norms for the next snapshot
        spent["snapshots"] += 1
        sink("snapshot_now" if force else "snapshot", snap)

    # The state_dict's tensors, looked up once (after the trainer placed the model): the optimiser
    # and the norm layers update them in place, and a checkpoint every epoch of a model that runs
    # 150 epochs a second should not walk the module tree each time.
    state_now = model.state_dict()

    def _checkpoint(epoch: int, metrics: dict) -> None:
        # Weights only (a CPU copy): the timeline computes what the views show for an epoch when
        # someone scrubs to it, so epoch ends cost no extra forward passes here.
        sink("checkpoint", {"epoch": epoch, "weights": state_to_numpy(state_now), "metrics": metrics,
                            "step": trainer.global_step})

    def _on_event(ev) -> None:
        if isinstance(ev, RunStarted):
            if job.max_threads and trainer.device.type == "cpu" and torch.get_num_threads() > job.max_threads:
                torch.set_num_threads(job.max_threads)
            sink("started", {"event": ev, "info": collector.info, "steps_per_epoch": steps_per_epoch,
                             "run_id": job.run_id, "frames": frames,
                             "batch_size": batch_size, "epochs": config.epochs,
                             "device_name": device_name(trainer.device)})
            _checkpoint(0, {})
            sink("snapshot_now", snapshot_now())  # the views show the starting point at once
            collector.arm_grad_tap()
        elif isinstance(ev, Progress):
            sink("progress", ev)
            if trainer.is_paused:  # paused (or one Step done): the views show exactly this moment
                _on_snapshot(model, force=True)
        elif isinstance(ev, EpochEnd):
            sink("epoch", ev)
            _checkpoint(ev.epoch, dict(ev.metrics))
        elif isinstance(ev, (RunFinished, RunFailed)):
            pass  # reported below, with the weights

    if job.start_paused:
        trainer.pause()
        for _ in range(job.initial_steps):
            trainer.step()
    control.attach(trainer)
    try:
        finished = trainer.run()
        sink("snapshot_now", snapshot_now())  # the views end on the final weights
        state = state_dict_cpu(model)
        sink("finished", {"reason": finished.reason, "weights": state_to_numpy(state),
                          "history": [dict(h) for h in finished.history], "steps": trainer.global_step,
                          "views_cost_s": spent["s"], "snapshots": spent["snapshots"],
                          "run_s": time.perf_counter() - t0})
    except Exception as e:  # noqa: BLE001 - TrainingError from the trainer, or anything torch raised
        kind = _classify_failure(e)
        state = state_dict_cpu(model)
        good = state if _finite_state(state) else None  # None: the GUI falls back to the newest finite checkpoint
        message = str(e) if str(e) else type(e).__name__
        if kind == "shape" and "validation" not in message:
            message += " (a shape problem that the graph check did not catch: check the layer sizes)"
        if kind == "oom" and trainer.device.type == "cuda":
            torch.cuda.empty_cache()
        sink("failed", {"message": message, "kind": kind, "batch_size": batch_size,
                        "weights": state_to_numpy(good) if good is not None else None,
                        "steps": trainer.global_step})
    finally:
        control.detach()


class EpochBatcher:
    """Wraps a sink: ``epoch`` and ``checkpoint`` reports are sent in batches (kind ``batch``, a list
    of ``(kind, payload)``) at most every ``interval_s``, and before anything else is sent.

    Small models finish a hundred epochs a second; one message per report would cost the trainer
    (a queue wake-up and pickling each) and the GUI (a slot call and a redraw each) for nothing."""

    BATCHED = ("epoch", "checkpoint")

    def __init__(self, send: Sink, interval_s: float = 0.1):
        self.send = send
        self.interval_s = interval_s
        self._pending: list[tuple[str, Any]] = []
        self._last = 0.0

    def __call__(self, kind: str, payload: Any) -> None:
        if kind in self.BATCHED:
            self._pending.append((kind, payload))
            now = time.perf_counter()
            if now - self._last >= self.interval_s:
                self.flush(now)
            return
        if kind not in ("snapshot", "snapshot_now"):
            self.flush()
        self.send(kind, payload)

    def flush(self, now: float | None = None) -> None:
        self._last = time.perf_counter() if now is None else now
        if self._pending:
            batch, self._pending = self._pending, []
            self.send("batch", batch)


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
    """Body of the training subprocess: warm up, then run jobs until ("quit",).

    ``backlog``: a shared counter of snapshots the GUI has not taken yet (multiprocessing.Value);
    snapshots are dropped while it is high, so a frozen GUI never builds up a queue.
    """
    t0 = time.perf_counter()
    _exit_with_parent()
    if max_threads:
        torch.set_num_threads(max_threads)
    try:
        warm_up()
    except Exception:  # noqa: BLE001 - warming up is an optimisation only
        pass
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    out_queue.put(("ready", {"startup_s": time.perf_counter() - t0, "cuda": cuda, "pid": os.getpid(),
                             "torch": torch.__version__}))
    jobs: queue.Queue = queue.Queue()
    control = RunControl()

    def listen() -> None:
        while True:
            try:
                msg = cmd_queue.get()
            except (EOFError, OSError):
                msg = ("quit",)
            name = msg[0]
            if name == "job":
                jobs.put(msg[1])
            elif name == "quit":
                control.command("stop")
                jobs.put(None)
                return
            else:
                control.command(name, msg[1] if len(msg) > 1 else None)

    threading.Thread(target=listen, name="layerlab-commands", daemon=True).start()

    def send(kind: str, payload: Any) -> None:
        if kind == "snapshot_now":  # a pause or a Step: never dropped
            kind = "snapshot"
        elif kind == "snapshot" and backlog is not None:
            if backlog.value >= 3:
                return  # the GUI is behind: drop this one (the newest will follow soon)
            with backlog.get_lock():
                backlog.value += 1
        out_queue.put((kind, payload))

    sink = EpochBatcher(send)

    while True:
        job = jobs.get()
        if job is None:
            break
        try:
            run_job(job, sink, control)
        except Exception as e:  # noqa: BLE001 - keep the warm process alive for the next run
            sink("failed", {"message": f"Training crashed: {type(e).__name__}: {e}", "kind": "error",
                            "weights": None, "batch_size": 0, "trace": traceback.format_exc()})
        sink("idle", None)
    sink.flush()
    out_queue.put(("bye", None))
