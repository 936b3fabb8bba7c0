"""Loss functions and the per-epoch metrics that go with them.

A ``LossSpec`` knows how to turn the dataset's targets into what the loss wants (once per run,
on the device, so the training step does no conversion) and how to score predictions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.errors import TrainingError

CLASSIFICATION_LOSSES = ("cross_entropy", "bce_with_logits")
REGRESSION_LOSSES = ("mse", "l1", "huber")

_FUNCTIONS: dict[str, Callable[..., Tensor]] = {
    "cross_entropy": F.cross_entropy,
    "bce_with_logits": F.binary_cross_entropy_with_logits,
    "mse": F.mse_loss,
    "l1": F.l1_loss,
    "huber": F.huber_loss,
}


@dataclass(frozen=True)
class LossSpec:
    """A loss bound to one task and one model output width."""

    name: str
    task: str  # "classification" | "regression"
    n_out: int  # the model's output width
    fn: Callable[[Tensor, Tensor], Tensor]  # mean reduction: what the optimiser sees

    def prepare_targets(self, y: Tensor) -> Tensor:
        """The dataset's targets in the form ``fn`` wants (done once per run, not per step)."""
        if self.task == "classification":
            if self.name == "cross_entropy":
                return y.long()
            if self.n_out == 1:
                return y.to(torch.float32).reshape(-1, 1)
            return F.one_hot(y.long(), self.n_out).to(torch.float32)
        y = y.to(torch.float32)
        return y.reshape(-1, 1) if y.dim() == 1 else y.reshape(len(y), -1)

    def sum_and_count(self, out: Tensor, target: Tensor) -> tuple[Tensor, int]:
        """Summed loss and the number of terms it averages over, so chunks can be combined."""
        total = _FUNCTIONS[self.name](out.float(), target, reduction="sum")
        count = target.shape[0] if self.name == "cross_entropy" else target.numel()
        return total, count

    def correct(self, out: Tensor, y: Tensor) -> Tensor:
        """Number of correctly classified samples (device tensor; classification only)."""
        if out.shape[1] == 1:
            pred = (out[:, 0] > 0).long()
        else:
            pred = out.argmax(dim=1)
        return (pred == y).sum()

    def squared_error(self, out: Tensor, target: Tensor) -> Tensor:
        """Summed squared error (device tensor; regression metric)."""
        return (out.float() - target).pow(2).sum()


def make_loss(name: str, task: str, n_out: int, y_train: Tensor | None = None) -> LossSpec:
    """Bind a loss to a task and an output width, refusing combinations that cannot work."""
    if name not in _FUNCTIONS:
        raise TrainingError(f"Unknown loss {name!r}; choose one of {', '.join(_FUNCTIONS)}.")
    if task not in ("classification", "regression"):
        raise TrainingError(f"Unknown task {task!r}; expected 'classification' or 'regression'.")
    if task == "regression" and name in CLASSIFICATION_LOSSES:
        raise TrainingError(
            f"The loss '{name}' is for classification, but this dataset is a regression task.",
            fix="choose mse, l1 or huber",
        )
    if task == "classification":
        if name == "cross_entropy" and n_out < 2:
            raise TrainingError(
                "Cross-entropy needs one output per class (at least 2), but the model has 1 output.",
                fix="use bce_with_logits for a single output, or give the last layer 2 outputs",
            )
        if y_train is not None and len(y_train):
            lo, hi = int(y_train.min()), int(y_train.max())
            n_classes = max(n_out, 2)
            if lo < 0 or hi >= n_classes:
                raise TrainingError(
                    f"The data has class labels from {lo} to {hi}, but the model has {n_out} "
                    f"output{'s' if n_out != 1 else ''}.",
                    fix=f"give the last layer {hi + 1} outputs",
                )
    fn = _FUNCTIONS[name]
    return LossSpec(name=name, task=task, n_out=n_out, fn=fn)
