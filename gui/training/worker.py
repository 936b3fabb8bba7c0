"""Runs training off the GUI thread: in a warm subprocess (the default) or on a QThread.

Why a subprocess: training and drawing share one GIL inside one process.  Measured here
(bench/live_views.py, 2-core CPU machine, all eight views animating at ~24 fps), a loop on a
QThread ran at 0.35-0.55x of its headless speed; the same loop in a spawned subprocess keeps its
core to itself (see docs/BENCHMARKS.md for the figures).  On a CPU the subprocess does not even
finish the snapshots: it sends ``RawSnapshot``s (a flat copy of the weights and the gradient norms,
tens of microseconds) and the bridge thread here finishes them on a replica of the model.
The subprocess takes one to three seconds to start (it imports torch), so it is started when the
training UI is installed and kept warm between runs.  LAYERLAB_TRAIN_MODE=thread selects the
QThread mode (no second process; slower training).

Both modes run the same Qt-free ``engine.runner.run_job``.  What it reports arrives here as the
typed messages of ``engine.events`` / ``engine.runner``:

* snapshots go straight into the ``SnapshotInbox`` (any thread may post; the GUI timer drains it,
  drawing only the newest) - never through the Qt event queue, so no backlog of events builds up;
* everything else is emitted from a bridge QThread (process mode) or the worker QThread (thread
  mode) through a signal connected to a slot of ``TrainingWorker``, which lives in the GUI thread:
  the connection is queued, so ``_on_message`` always runs in the GUI thread.
"""
from __future__ import annotations

import logging
import os
import queue as queue_mod
import signal
import sys
import threading
import time
import types
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine.events import Checkpoint, EpochEnd, Progress, RunFailed, RunFinished
from engine.runner import (Batch, EpochBatcher, Quit, RunBegan, RunControl, RunJob, StartRun, Steer, WorkerBye,
                           WorkerIdle, WorkerReady, build_model, child_main, run_job, warm_up)
from engine.snapshots import RawSnapshot, Snapshot, SnapshotCollector
from gui.training.snapshots import SnapshotInbox

MODES = ("process", "thread")
log = logging.getLogger(__name__)


def default_mode() -> str:
    """The benchmark's verdict (see docs/BENCHMARKS.md); LAYERLAB_TRAIN_MODE=thread overrides it."""
    mode = os.environ.get("LAYERLAB_TRAIN_MODE", "process")
    return mode if mode in MODES else "process"


def child_threads() -> int:
    """Torch threads for the training subprocess: leave one core to the GUI."""
    return max(1, (os.cpu_count() or 2) - 1)


def _start_without_main(proc) -> None:
    """Start a spawn-method process without re-running the caller's ``__main__`` in the child.

    ``spawn`` normally re-imports the main script in the child (to find functions defined there).
    The child needs nothing from it - its target lives in ``runner_process`` - and re-running a
    script without an ``if __name__ == "__main__"`` guard would start the GUI or the benchmark a
    second time.  So ``__main__`` is hidden from ``multiprocessing`` while it prepares the child.
    """
    real_main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    # A terminal's Ctrl+C reaches the child too (one process group), and the GUI decides what it
    # means.  An interpreter started with SIGINT ignored keeps it ignored, from its first import
    # on: set in child_main, it came too late for a Ctrl+C during the child's start-up.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main_thread else None
    try:
        proc.start()
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
        if real_main is not None:
            sys.modules["__main__"] = real_main


class WorkerDied:
    """The training process ended without saying goodbye (a crash, a kill)."""

    def __init__(self, exitcode):
        self.exitcode = exitcode


class ViewsFailed:
    """The bridge cannot finish this run's snapshots (the views stay still; training goes on)."""

    def __init__(self, reason: str):
        self.reason = reason


def yield_to_training(niceness: int = 10) -> None:
    """Lower the calling thread's scheduling priority (Linux; elsewhere nothing happens).

    The bridge rebuilds snapshots while the GUI thread draws, so the GUI process can want more
    than one core; a trainer on a machine with two is then the one that waits.  At niceness 10
    the trainer wins such a contest and the snapshot is rebuilt a little later."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(niceness, os.getpriority(os.PRIO_PROCESS, tid)))  # never up
    except OSError:  # not permitted (a restricted container): the views just share the core
        pass


class _Bridge(QThread):
    """Receives the training subprocess's messages and hands them to the GUI thread.

    On a CPU the subprocess sends ``RawSnapshot``s rather than snapshots (``raw_snapshots_pay_off``):
    this thread finishes them on a replica of the run's model, so the forward passes the views
    need run on the GUI process's core, not the training one."""

    message = Signal(object)

    def __init__(self, out_queue, inbox: SnapshotInbox, process, parent=None):
        super().__init__(parent)
        self.out_queue = out_queue
        self.inbox = inbox
        self.process = process
        self.job: RunJob | None = None  # set by the worker before it sends a job
        self._builder = None  # SnapshotCollector on a replica of the current run's model
        self.build_error: str | None = None

    @property
    def builds_snapshots(self) -> bool:
        """True while this run's snapshots are built here, from the subprocess's frames."""
        return self._builder is not None

    def _prepare(self, began: RunBegan) -> None:
        """At a run's start: the replica that finishes this run's raw snapshots."""
        self._builder = None
        self.build_error = None
        job = self.job
        if not began.raw_snapshots or job is None or job.run_id != began.run_id:
            return
        try:
            cm = build_model(job.graph, job.infer_context())
            builder = SnapshotCollector(cm.module, job.dataset, job.node_names, probe_size=job.probe_size,
                                        device="cpu")
            builder.adopt(began.info)
            self._builder = builder
        except Exception as e:  # noqa: BLE001 - the views stay still; training goes on
            self._fail(e)

    def _snapshot(self, msg):
        if not isinstance(msg, RawSnapshot):
            return msg
        if self._builder is None:
            return None
        try:
            return self._builder.from_raw(msg)
        except Exception as e:  # noqa: BLE001
            self._builder = None
            self._fail(e)
            return None

    def _fail(self, e: BaseException) -> None:
        self.build_error = f"{type(e).__name__}: {e}"
        log.error("live views: could not build snapshots for this run (%s)", self.build_error)
        self.message.emit(ViewsFailed(self.build_error))

    def run(self) -> None:
        import torch

        torch.set_num_threads(1)  # the replica's forward passes: the training process has the other core(s)
        yield_to_training()
        while not self.isInterruptionRequested():
            try:
                msg = self.out_queue.get(timeout=0.1)
            except queue_mod.Empty:
                if not self.process.is_alive():
                    self.message.emit(WorkerDied(self.process.exitcode))
                    return
                continue
            except (EOFError, OSError, ValueError):
                self.message.emit(WorkerDied(self.process.exitcode))
                return
            if isinstance(msg, (Snapshot, RawSnapshot)):
                snap = self._snapshot(msg)
                if snap is not None:
                    self.inbox.post(snap)
                else:
                    self.inbox.dropped(1)
            else:
                if isinstance(msg, RunBegan):
                    self._prepare(msg)
                self.message.emit(msg)
                if isinstance(msg, WorkerBye):
                    return


class _ThreadRun(QThread):
    """Runs one job on this QThread (thread mode)."""

    message = Signal(object)

    def __init__(self, job: RunJob, inbox: SnapshotInbox, control: RunControl, parent=None):
        super().__init__(parent)
        self.job = job
        self.inbox = inbox
        self.control = control

    def run(self) -> None:
        def send(msg: Any) -> None:
            if isinstance(msg, Snapshot):
                self.inbox.post(msg)
            else:
                self.message.emit(msg)

        sink = EpochBatcher(send)
        run_job(self.job, sink, self.control)
        sink.flush()
        self.message.emit(WorkerIdle(self.job.run_id))


class TrainingWorker(QObject):
    """Starts, steers and stops training runs; reports with signals in the GUI thread.

    ``state``: "starting" (subprocess warming up), "idle", "running", "paused", "stopping".
    """

    ready = Signal(object)  # engine.runner.WorkerReady
    runStarted = Signal(object)  # engine.runner.RunBegan
    progress = Signal(object)  # engine.events.Progress
    epochEnded = Signal(object)  # engine.events.EpochEnd
    checkpoint = Signal(object)  # engine.events.Checkpoint
    runFinished = Signal(object)  # engine.events.RunFinished (with the final weights)
    runFailed = Signal(object)  # engine.events.RunFailed
    stateChanged = Signal(str)
    viewsFailed = Signal(str)  # the live views cannot follow this run (training goes on)

    def __init__(self, mode: str | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.mode = mode or default_mode()
        if self.mode not in MODES:
            raise ValueError(f"unknown training mode {self.mode!r}")
        self.inbox = SnapshotInbox()
        self.state = "idle"
        self.child_info: WorkerReady | None = None
        self._pending_job: RunJob | None = None
        self._closed = False
        self._run_id = 0
        # process mode
        self._ctx = None
        self._proc = None
        self._cmd_q = None
        self._out_q = None
        self._backlog = None
        self._bridge: _Bridge | None = None
        self._child_ready = False
        # thread mode
        self._thread: _ThreadRun | None = None
        self._control: RunControl | None = None
        self._warmed = False

    # ------------------------------------------------------------------ lifecycle
    def warm(self) -> None:
        """Start the training subprocess now (process mode), or import the optimiser stack (thread mode)."""
        if self._closed:
            return
        if self.mode == "process":
            self._ensure_child()
        elif not self._warmed:
            warm_up()  # in the GUI thread, before any run: a first optimiser built mid-run froze the GUI
            self._warmed = True
            self._child_ready = True
            self.ready.emit(WorkerReady(startup_s=0.0, cuda=None, pid=os.getpid(), torch=""))

    def _ensure_child(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        import torch.multiprocessing as tmp

        self._ctx = tmp.get_context("spawn")
        self._cmd_q = self._ctx.Queue()
        self._out_q = self._ctx.Queue()
        self._backlog = self._ctx.Value("i", 0)
        self.inbox.on_drained = self._drained
        self._child_ready = False
        self._proc = self._ctx.Process(target=child_main, name="layerlab-trainer",
                                       args=(self._cmd_q, self._out_q, child_threads(), self._backlog),
                                       daemon=True)
        _start_without_main(self._proc)
        self._bridge = _Bridge(self._out_q, self.inbox, self._proc)
        self._bridge.message.connect(self._on_message)
        self._bridge.start()
        self._set_state("starting")

    def _drained(self, n: int) -> None:
        if self._backlog is not None and n:
            with self._backlog.get_lock():
                self._backlog.value = max(0, self._backlog.value - n)

    @property
    def builds_snapshots(self) -> bool:
        """Whether the current run's snapshots are built in this process from weight frames
        (a CPU run in the subprocess) rather than in the training process."""
        return self._bridge is not None and self._bridge.builds_snapshots

    @property
    def is_ready(self) -> bool:
        return self._child_ready

    @property
    def busy(self) -> bool:
        return self.state in ("running", "paused", "stopping") or self._pending_job is not None

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.stateChanged.emit(state)

    # ------------------------------------------------------------------ control
    def start(self, job: RunJob) -> None:
        if self._closed:
            raise RuntimeError("the training worker is shut down")
        if self.busy:
            raise RuntimeError("a run is already in progress")
        self.inbox.clear()
        self._run_id += 1
        job.run_id = self._run_id
        if self.mode == "process":
            self._ensure_child()
            if self._backlog is not None:
                with self._backlog.get_lock():
                    self._backlog.value = 0
            job.raw_snapshots = True
            if self._bridge is not None:
                self._bridge.job = job
            self._cmd_q.put(StartRun(job))
            self._pending_job = job
            self._set_state("running" if not job.start_paused else "paused")
        else:
            if not self._warmed:
                self.warm()
            self._control = RunControl()
            self._control.begin(job.run_id, job.start_paused, job.initial_steps)  # before any command
            self._thread = _ThreadRun(job, self.inbox, self._control)
            self._thread.message.connect(self._on_message)
            self._pending_job = job
            self._set_state("running" if not job.start_paused else "paused")
            self._thread.start()

    def _command(self, name: str) -> None:
        if self.mode == "process":
            if self._cmd_q is not None:
                self._cmd_q.put(Steer(name, self._run_id))
        elif self._control is not None:
            self._control.command(name)

    def pause(self) -> None:
        if self.state == "running":
            self._command("pause")
            self._set_state("paused")

    def resume(self) -> None:
        if self.state == "paused":
            self._command("resume")
            self._set_state("running")

    def step(self) -> None:
        """One batch; only while paused."""
        if self.state == "paused":
            self._command("step")

    def stop(self) -> None:
        if self.state in ("running", "paused"):
            self._command("stop")
            self._set_state("stopping")

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop any run and end the subprocess / thread; returns within about ``timeout_s``."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout_s
        if self.mode == "process" and self._proc is not None:
            try:
                self._cmd_q.put(Steer("stop"))
                self._cmd_q.put(Quit())
            except (OSError, ValueError):
                pass
            self._proc.join(max(0.1, deadline - time.monotonic()))
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(1.0)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(1.0)
            if self._bridge is not None:
                self._bridge.requestInterruption()
                self._bridge.wait(int(max(0.2, deadline - time.monotonic()) * 1000) + 500)
            for q in (self._cmd_q, self._out_q):
                try:
                    q.cancel_join_thread()
                    q.close()
                except (OSError, ValueError, AttributeError):
                    pass
        if self._thread is not None:
            if self._control is not None:
                self._control.command("stop")
            self._thread.wait(int(max(0.2, deadline - time.monotonic()) * 1000) + 500)
        self._pending_job = None
        self._set_state("idle")

    # ------------------------------------------------------------------ messages (GUI thread)
    @Slot(object)
    def _on_message(self, msg) -> None:
        handler = self._HANDLERS.get(type(msg))
        if handler is not None:
            handler(self, msg)

    def _on_batch(self, msg: Batch) -> None:
        for item in msg.items:
            self._on_message(item)

    def _on_ready(self, msg: WorkerReady) -> None:
        self.child_info = msg
        self._child_ready = True
        if self.state == "starting":
            self._set_state("idle" if self._pending_job is None else self.state)
        self.ready.emit(msg)

    def _on_finished(self, msg: RunFinished) -> None:
        self._pending_job = None
        self._set_state("idle")
        self.runFinished.emit(msg)

    def _on_failed(self, msg: RunFailed) -> None:
        self._pending_job = None
        self._set_state("idle")
        self.runFailed.emit(msg)

    def _on_idle(self, msg: WorkerIdle) -> None:
        if self._pending_job is not None and self._pending_job.run_id != msg.run_id:
            return  # the end of an earlier run, read after the next one was sent: that one goes on
        if self._pending_job is not None:  # ended without a report (should not happen)
            self._pending_job = None
        if self.state != "idle":
            self._set_state("idle")
        if self._thread is not None and self.mode == "thread":
            self._thread.wait(2000)

    def _on_died(self, msg: WorkerDied) -> None:
        was_busy = self._pending_job is not None
        self._pending_job = None
        self._child_ready = False
        self._proc = None
        if not self._closed:
            self._set_state("idle")
            if was_busy:
                self.runFailed.emit(RunFailed(
                    message=f"The training process stopped unexpectedly (exit code {msg.exitcode}).",
                    kind="interrupted"))

    _HANDLERS = {
        Batch: _on_batch,
        WorkerReady: _on_ready,
        RunBegan: lambda self, m: self.runStarted.emit(m),
        Progress: lambda self, m: self.progress.emit(m),
        EpochEnd: lambda self, m: self.epochEnded.emit(m),
        Checkpoint: lambda self, m: self.checkpoint.emit(m),
        RunFinished: _on_finished,
        RunFailed: _on_failed,
        WorkerIdle: _on_idle,
        WorkerDied: _on_died,
        ViewsFailed: lambda self, m: self.viewsFailed.emit(m.reason),
        WorkerBye: lambda self, m: None,
    }
