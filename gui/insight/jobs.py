"""One long computation at a time, off the GUI thread, with progress and Cancel.

``JobRunner.submit(title, fn, tag)`` runs ``fn(cancel, progress)`` on a daemon thread: ``cancel``
is a ``threading.Event`` (the engine's explain functions take it as their ``cancel``), and
``progress(fraction)`` may be called from the thread as often as it likes (the GUI sees at most
one update per event-loop turn).  The outcome comes back on the GUI thread as a signal:
``finished(tag, result)``, ``failed(tag, sentence)`` or ``cancelled(tag)``.

While any job runs, numpy's and SciPy's BLAS use one thread (``single_threaded_blas``): some of
their calls hold the GIL - SciPy's least squares, which fits KernelSHAP's and LIME's surrogate -
and with two BLAS threads contending for cores with the GUI and other processes, one such call
froze the window for up to a second (bench/explain.py); with one thread, for none we could measure.

A runner never has two threads at work: a job submitted while another runs cancels it and
waits its turn (the newest one replaces any job already waiting).  So a panel's jobs may share
one model without locks - hooks that Grad-CAM puts on a layer never see another job's forward
pass.  Daemon threads, as in gui/busy.py: a job still running when the window closes must not
keep the process alive.
"""
from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, Signal, Slot

from engine.errors import LayerLabError


class _BlasLimit:
    """One BLAS thread while any job of any runner runs; the library's own setting otherwise."""

    def __init__(self):
        self._lock = threading.Lock()
        self._active = 0
        self._limiter = None

    def __enter__(self):
        with self._lock:
            self._active += 1
            if self._active == 1:
                try:
                    from threadpoolctl import threadpool_limits

                    self._limiter = threadpool_limits(limits=1, user_api="blas")
                except Exception:  # noqa: BLE001 - no threadpoolctl, or no BLAS it knows: run as is
                    self._limiter = None
        return self

    def __exit__(self, *_exc):
        with self._lock:
            self._active -= 1
            if self._active == 0 and self._limiter is not None:
                self._limiter.restore_original_limits()
                self._limiter = None
        return False


single_threaded_blas = _BlasLimit()


@dataclass
class _Job:
    token: int
    title: str
    fn: Callable[[threading.Event, Callable[[float], None]], Any]
    tag: Any
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


class JobRunner(QObject):
    started = Signal(str)  # the job's title
    progress = Signal(float)  # fraction done, 0..1
    finished = Signal(object, object)  # (tag, result)
    failed = Signal(object, str)  # (tag, one sentence)
    cancelled = Signal(object)  # tag
    busyChanged = Signal(bool)

    _done = Signal(int, str, object)  # (token, outcome, payload), from the worker thread
    _progressed = Signal(int, float)

    def __init__(self, name: str = "layerlab-job", parent: QObject | None = None):
        super().__init__(parent)
        self.name = name
        self._token = 0
        self._running: _Job | None = None
        self._waiting: _Job | None = None
        self._done.connect(self._on_done, Qt.QueuedConnection)
        self._progressed.connect(self._on_progress, Qt.QueuedConnection)

    # ------------------------------------------------------------------ API
    @property
    def busy(self) -> bool:
        return self._running is not None or self._waiting is not None

    @property
    def title(self) -> str:
        job = self._waiting or self._running
        return job.title if job is not None else ""

    def submit(self, title: str, fn: Callable, tag: Any = None) -> int:
        """Run ``fn(cancel_event, progress)``; a job already running is cancelled first."""
        self._token += 1
        job = _Job(self._token, title, fn, tag)
        was_busy = self.busy
        if self._running is None:
            self._start(job)
        else:
            self._running.cancel.set()
            if self._waiting is not None:  # replaced before it began: it never ran
                self.cancelled.emit(self._waiting.tag)
            self._waiting = job
            self.started.emit(title)
        if not was_busy:
            self.busyChanged.emit(True)
        return job.token

    def cancel(self) -> None:
        """Stop the running job (at its next check) and drop the waiting one."""
        if self._waiting is not None:
            waiting, self._waiting = self._waiting, None
            self.cancelled.emit(waiting.tag)
        if self._running is not None:
            self._running.cancel.set()

    def wait(self, timeout_s: float = 10.0) -> bool:
        """Block until the running thread ends (tests, shutdown); True if it did."""
        job = self._running
        if job is None or job.thread is None:
            return True
        job.thread.join(timeout_s)
        return not job.thread.is_alive()

    # ------------------------------------------------------------------ the thread
    def _start(self, job: _Job) -> None:
        self._running = job
        job.thread = threading.Thread(target=self._work, args=(job,), name=self.name, daemon=True)
        self.started.emit(job.title)
        job.thread.start()

    def _work(self, job: _Job) -> None:
        from engine.explain.base import Cancelled

        def report(fraction: float) -> None:
            if job.cancel.is_set():  # a cancelled job reports nothing more
                return
            try:
                self._progressed.emit(job.token, float(fraction))
            except RuntimeError:  # the runner was deleted (the window closed)
                pass

        try:
            with single_threaded_blas:
                result = job.fn(job.cancel, report)
            outcome, payload = ("cancelled", None) if job.cancel.is_set() else ("finished", result)
        except Cancelled:
            outcome, payload = "cancelled", None
        except LayerLabError as e:
            outcome, payload = "failed", str(e)
        except MemoryError:
            outcome, payload = "failed", "There is not enough memory for this; try a smaller setting."
        except Exception as e:  # noqa: BLE001 - a sentence for the user, the details on the console
            traceback.print_exc()
            outcome, payload = "failed", f"{job.title} failed ({type(e).__name__}: {str(e)[:160]})."
        try:
            self._done.emit(job.token, outcome, payload)
        except RuntimeError:
            pass

    # ------------------------------------------------------------------ back on the GUI thread
    @Slot(int, float)
    def _on_progress(self, token: int, fraction: float) -> None:
        if self._running is not None and token == self._running.token and self._waiting is None:
            self.progress.emit(fraction)

    @Slot(int, str, object)
    def _on_done(self, token: int, outcome: str, payload: object) -> None:
        job = self._running
        if job is None or job.token != token:
            return
        self._running = None
        if outcome == "finished":
            self.finished.emit(job.tag, payload)
        elif outcome == "failed":
            self.failed.emit(job.tag, str(payload))
        else:
            self.cancelled.emit(job.tag)
        if self._waiting is not None:
            waiting, self._waiting = self._waiting, None
            self._start(waiting)
        else:
            self.busyChanged.emit(False)
