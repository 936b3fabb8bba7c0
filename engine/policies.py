"""Training policies: callbacks that may stop a run (see ``engine.events.Callback``).

They run on the trainer's coarse events only (epoch ends, throttled progress), so a policy
costs nothing per step.  The trainer adds ``EarlyStopping`` itself when the settings ask for
it; the run layer adds ``EpochCheckpoints`` (into the run's own output folder); the GUI's
Stop / Pause / Step is ``engine.runner.RunControl``; lab goals can stop a run the same way.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from engine.events import Callback, EpochEnd, RunStarted, TrainEvent


class EarlyStopping(Callback):
    """Stop when the monitored loss (validation, else training) has not improved for
    ``patience`` epochs in a row."""

    def __init__(self, patience: int):
        self.patience = int(patience)
        self.best = math.inf
        self.bad_epochs = 0

    def __call__(self, event: TrainEvent) -> None:
        if not isinstance(event, EpochEnd):
            return
        m = event.metrics
        monitor = m.get("val_loss") if m.get("val_loss") is not None else m.get("train_loss")
        if monitor is not None and math.isfinite(monitor) and monitor < self.best:
            self.best = monitor
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        if self.patience and self.bad_epochs >= self.patience:
            self.trainer.request_stop("early_stopping")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best if math.isfinite(self.best) else None, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        best = state.get("best")
        self.best = math.inf if best is None else float(best)
        self.bad_epochs = int(state.get("bad_epochs", 0))


class EpochCheckpoints(Callback):
    """Save a resumable checkpoint (``Trainer.save_checkpoint``) at the end of every epoch into
    ``folder`` as ``epoch_0001.*``.  The folder is the run's own (the run layer passes it); a
    project file cannot choose where checkpoints go."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.saved: list[Path] = []

    def __call__(self, event: TrainEvent) -> None:
        if isinstance(event, EpochEnd):
            self.saved.append(self.trainer.save_checkpoint(self.folder / f"epoch_{event.epoch:04d}.safetensors"))


class StopAfterEpochs(Callback):
    """Stop once ``epochs`` epochs of this run are done (tests, "train N more epochs")."""

    def __init__(self, epochs: int, reason: str = "stopped"):
        self.epochs, self.reason, self._seen = int(epochs), reason, 0

    def __call__(self, event: TrainEvent) -> None:
        if isinstance(event, EpochEnd):
            self._seen += 1
            if self._seen >= self.epochs:
                self.trainer.request_stop(self.reason)


class KeepTimeline(Callback):
    """Keep a CPU copy of the weights before training and at every epoch end: the timeline a
    headless run saves with its project (``Project.checkpoints``), as the GUI's run does.

    ``epoch_offset`` numbers the epochs after an earlier run's (a run that continues a history).
    Past ``2 * max_kept`` entries the timeline is thinned the way a save thins it, so a long run
    costs bounded memory."""

    def __init__(self, epoch_offset: int = 0, max_kept: int = 64):
        self.offset = int(epoch_offset)
        self.max_kept = int(max_kept)
        self.checkpoints: dict[int, dict[str, Any]] = {}

    def _keep(self, epoch: int) -> None:
        from engine.project import saved_checkpoint_epochs

        self.checkpoints[epoch] = {k: v.detach().to("cpu", copy=True)
                                   for k, v in self.trainer.model.state_dict().items()}
        if len(self.checkpoints) > 2 * self.max_kept:
            keep = set(saved_checkpoint_epochs(self.checkpoints, max_count=self.max_kept))
            self.checkpoints = {e: w for e, w in self.checkpoints.items() if e in keep}

    def __call__(self, event: TrainEvent) -> None:
        if isinstance(event, RunStarted) and self.offset + event.start_epoch not in self.checkpoints:
            self._keep(self.offset + event.start_epoch)
        elif isinstance(event, EpochEnd):
            self._keep(self.offset + event.epoch)


class StopOnSignals(Callback):
    """Ctrl-C (SIGINT) or SIGTERM stops the run at the next step with reason "interrupted", so a
    headless run keeps the epochs it has done; a second signal interrupts at once.  Installed for
    the run only, in the main thread (signal handlers can live nowhere else)."""

    def __init__(self, signals=None):
        import signal

        self.signals = tuple(signals) if signals is not None else (signal.SIGINT, signal.SIGTERM)
        self._previous: dict = {}
        self.received: int | None = None

    def _handler(self, signum, _frame) -> None:
        import signal

        self.received = signum
        for sig in self.signals:  # the next one is not polite any more
            signal.signal(sig, self._previous.get(sig, signal.SIG_DFL))
        self.trainer.request_stop("interrupted")

    def __call__(self, event: TrainEvent) -> None:
        import signal
        import threading

        from engine.events import RunFailed, RunFinished

        if isinstance(event, RunStarted) and threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handler)
        elif isinstance(event, (RunFinished, RunFailed)):
            self.restore()

    def restore(self) -> None:
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
