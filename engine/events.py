"""Small immutable messages the ``Trainer`` sends to its callbacks.

They carry plain Python numbers and strings only (never tensors), so a GUI can forward them
across threads and a CLI can print them.  A callback is any callable ``cb(event)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Union


@dataclass(frozen=True, slots=True)
class RunStarted:
    device: str
    n_params: int
    total_steps: int
    num_threads: int = 0
    amp: str = "off"
    start_epoch: int = 0


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
class RunFinished:
    reason: Literal["completed", "stopped", "early_stopping"]
    history: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class RunFailed:
    message: str


TrainEvent = Union[RunStarted, Progress, EpochEnd, RunFinished, RunFailed]
Callback = Callable[[TrainEvent], None]
