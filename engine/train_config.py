"""The settings of one training run, as a frozen, validated, JSON-friendly value.

A ``TrainConfig`` is stored in project files (``to_dict`` / ``from_dict``) and edited by the
GUI's training panel.  Every value is checked when the object is built, so a bad project file
or a bad form entry gives one clear sentence instead of a failure deep inside the run.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

from engine.errors import TrainingError, quote
from engine.limits import MAX_BATCH_SIZE, MAX_EPOCHS, MAX_SEED, MAX_THREADS

LOSSES = ("cross_entropy", "bce_with_logits", "mse", "l1", "huber")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULES = ("none", "step", "cosine", "onecycle", "plateau")
DEVICES = ("auto", "cpu", "cuda")
AMP_MODES = ("auto", "off", "bf16", "fp16")

#: version 2 drops ``checkpoint_dir``: a run's checkpoints go under its own output folder, never
#: where a project file says
CONFIG_VERSION = 2


@dataclass(frozen=True)
class TrainConfig:
    """How to train: loss, optimiser, schedule, run length, device and bookkeeping.

    ``momentum`` / ``nesterov`` apply to SGD only (the other optimisers use PyTorch's defaults).
    ``gamma`` is the decay factor of the "step" and "plateau" schedules.
    ``num_threads`` is the number of CPU threads; 0 lets the trainer pick from the model's size.
    ``amp``: "auto" = mixed precision on CUDA (bf16 where supported, else fp16 + GradScaler), off on CPU.
    """

    loss: str = "cross_entropy"
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    batch_size: int = 32
    epochs: int = 10
    schedule: str = "none"
    step_size: int = 10
    gamma: float = 0.1
    plateau_patience: int = 3
    early_stopping_patience: int = 0
    seed: int | None = 0
    device: str = "auto"
    amp: str = "auto"
    num_threads: int = 0
    checkpoint_every_epoch: bool = False  # resumable checkpoints in the run's output folder (CLI)
    progress_interval_s: float = 0.25
    snapshot_interval_s: float = 1.0 / 30.0

    def __post_init__(self) -> None:
        _choice(self, "loss", LOSSES)
        _choice(self, "optimizer", OPTIMIZERS)
        _choice(self, "schedule", SCHEDULES)
        _choice(self, "device", DEVICES)
        _choice(self, "amp", AMP_MODES)
        _number(self, "lr", low=0.0, low_open=True)
        _number(self, "momentum", low=0.0, high=1.0, high_open=True)
        _number(self, "weight_decay", low=0.0)
        _number(self, "grad_clip", low=0.0)
        _number(self, "gamma", low=0.0, high=1.0, low_open=True)
        _number(self, "progress_interval_s", low=0.0)
        _number(self, "snapshot_interval_s", low=0.0)
        _integer(self, "batch_size", low=1, high=MAX_BATCH_SIZE)
        _integer(self, "epochs", low=1, high=MAX_EPOCHS)
        _integer(self, "step_size", low=1, high=MAX_EPOCHS)
        _integer(self, "plateau_patience", low=0, high=MAX_EPOCHS)
        _integer(self, "early_stopping_patience", low=0, high=MAX_EPOCHS)
        _integer(self, "num_threads", low=0, high=MAX_THREADS)
        _boolean(self, "nesterov")
        _boolean(self, "checkpoint_every_epoch")
        if self.seed is not None:
            _integer(self, "seed", low=0, high=MAX_SEED)
        if self.nesterov and (self.optimizer != "sgd" or self.momentum <= 0):
            raise TrainingError(
                "Nesterov momentum needs the 'sgd' optimizer with a momentum above 0.",
                fix="set momentum to e.g. 0.9 or turn nesterov off",
            )

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON project files (carries a ``version`` for migrations)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["version"] = CONFIG_VERSION
        return d

    @classmethod
    def from_dict(cls, d: Any) -> "TrainConfig":
        """Build from a project-file dict; missing keys take their defaults, bad ones are refused."""
        if not isinstance(d, dict):
            raise TrainingError(f"Training settings must be a JSON object, got {type(d).__name__}.")
        d = dict(d)
        version = d.pop("version", CONFIG_VERSION)
        if version == 1:  # v1 -> v2: the folder a project named for checkpoints is not honoured
            d.pop("checkpoint_dir", None)
            version = 2
        if version != CONFIG_VERSION:
            raise TrainingError(
                f"Training settings have version {version!r}, but this LayerLab reads version "
                f"{CONFIG_VERSION} only.",
                fix="open the file with a newer LayerLab",
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(k for k in d if k not in known)
        if unknown:
            raise TrainingError(
                f"Unknown training setting(s): {', '.join(map(repr, unknown))}.",
                fix=f"known settings are {', '.join(sorted(known))}",
            )
        return cls(**d)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some settings changed (validated again)."""
        return dataclasses.replace(self, **changes)


# ---------------------------------------------------------------- validators
def _choice(cfg: TrainConfig, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(cfg, name)
    if value not in choices:
        raise TrainingError(
            f"Training setting '{name}' must be one of {', '.join(map(repr, choices))}, got {quote(value)}."
        )


def _number(cfg: TrainConfig, name: str, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TrainingError(f"Training setting '{name}' must be a finite number, got {quote(value)}.")
    bad_low = low is not None and (value <= low if low_open else value < low)
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high:
        lo = "" if low is None else (f"above {low:g}" if low_open else f"at least {low:g}")
        hi = "" if high is None else (f"below {high:g}" if high_open else f"at most {high:g}")
        rng = " and ".join(p for p in (lo, hi) if p)
        raise TrainingError(f"Training setting '{name}' must be {rng}, got {quote(value)}.")
    if isinstance(value, int):
        object.__setattr__(cfg, name, float(value))


def _integer(cfg: TrainConfig, name: str, low: int, high: int) -> None:
    value = getattr(cfg, name)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
        object.__setattr__(cfg, name, value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TrainingError(f"Training setting '{name}' must be a whole number, got {quote(value)}.")
    if not low <= value <= high:
        raise TrainingError(f"Training setting '{name}' must be between {low} and {high:,}, got {quote(value)}.")


def _boolean(cfg: TrainConfig, name: str) -> None:
    value = getattr(cfg, name)
    if not isinstance(value, bool):
        raise TrainingError(f"Training setting '{name}' must be true or false, got {quote(value)}.")
