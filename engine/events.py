"""The typed messages of a run: what the ``Trainer`` tells its callbacks, and what a training
process sends to the GUI (``engine.runner``) - the same frozen dataclasses, never dicts.

The trainer's own events carry plain Python numbers and strings only; ``Checkpoint`` and the
final weights of ``RunFinished`` / ``RunFailed`` carry numpy arrays (CPU copies) so a GUI can
forward them across threads and processes.  A failure carries its ``kind``: code decides on the
kind, never on the sentence, which is free to change.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Union

#: how a run can fail.  non_finite: the loss became NaN/inf; diverged: it stayed finite but grew
#: by orders of magnitude; out_of_memory; shape: the model cannot take the data; data: the data
#: cannot be used; setup: the run could not be prepared (bad settings, weights that do not fit);
#: interrupted: the process was stopped from outside; internal: a bug.
FailureKind = Literal["non_finite", "diverged", "out_of_memory", "shape", "data", "setup", "interrupted",
                      "internal"]
StopReason = Literal["completed", "stopped", "early_stopping", "goal_reached", "interrupted"]


@dataclass(frozen=True, slots=True)
class RunStarted:
    device: str
    n_params: int
    total_steps: int
    num_threads: int = 0
    amp: str = "off"
    start_epoch: int = 0
    steps_per_epoch: int = 1
    batch_size: int = 0
    epochs: int = 0


@dataclass(frozen=True, slots=True)
class Progress:
    """Throttled (``TrainConfig.progress_interval_s``) mid-epoch report; ``step`` is global, 1-based."""

    epoch: int
    step: int
    total_steps: int
    train_loss: float
    samples_per_s: float
    eta_s: float


@dataclass(frozen=True, slots=True)
class EpochEnd:
    epoch: int
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The weights at the end of ``epoch`` (0: before training) as numpy arrays: a timeline entry."""

    epoch: int
    step: int
    weights: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunFinished:
    reason: StopReason
    history: tuple[dict[str, Any], ...] = ()
    steps: int = 0
    weights: dict[str, Any] | None = None  # numpy state dict (set by the runner, not the trainer)
    views_cost_s: float = 0.0
    snapshots: int = 0
    run_s: float = 0.0


@dataclass(frozen=True, slots=True)
class RunFailed:
    """``message`` is the sentence to show; ``node`` the graph node (fx name) at fault, if known;
    ``weights`` the last finite weights (numpy, or None); ``batch_size`` the one that was used."""

    message: str
    kind: FailureKind = "internal"
    node: str | None = None
    epoch: int | None = None
    step: int | None = None
    weights: dict[str, Any] | None = None
    batch_size: int = 0
    steps: int = 0
    trace: str = ""


TrainEvent = Union[RunStarted, Progress, EpochEnd, Checkpoint, RunFinished, RunFailed]
EventSink = Callable[[TrainEvent], None]


class Callback:
    """A training policy: sees every event of the run and may stop it.

    The trainer calls ``setup(trainer)`` once before the run and then ``cb(event)`` for each
    event (coarse ones only: run start, throttled progress, epoch ends, the end; never per
    step).  A policy stops the run with ``self.trainer.request_stop(reason)``; the trainer
    finishes the step in progress and ends with that reason.  ``state_dict`` /
    ``load_state_dict`` let a checkpoint resume the policy exactly (early stopping's patience).
    A plain callable ``cb(event)`` is a callback too.
    """

    trainer: Any = None

    def setup(self, trainer) -> None:
        self.trainer = trainer

    def __call__(self, event: TrainEvent) -> None:  # pragma: no cover - interface
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
