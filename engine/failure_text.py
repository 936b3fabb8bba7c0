"""The sentences a failed run shows, in one place.

Code never reads these back: what a failure *is* travels as its kind and fields
(``engine.errors``, ``engine.events.RunFailed``).  Keeping the wording here lets it change (or be
translated) without touching any decision, and lets a test reword all of it.
"""
from __future__ import annotations

_ADVICE = {
    "inputs": "Check the data for missing or infinite values, or normalise it.",
    "weights": "Re-initialise the weights and lower the learning rate.",
    "output": "Lower the learning rate or add normalisation.",
    "none": "Check the targets, and lower the learning rate.",
}


def non_finite(kind: str, epoch: int, step: int, finding: str, where: str) -> str:
    return f"Loss became {kind} at epoch {epoch}, step {step}: {finding}. {_ADVICE.get(where, _ADVICE['none'])}"


def diverged(epoch: int, step: int, start: float, now: float, lr: float) -> str:
    return (f"Training diverged at epoch {epoch}, step {step}: the loss grew from {start:.3g} to {now:.3g}. "
            f"Lower the learning rate (it is {lr:g}), e.g. to {lr / 10:g}.")


def out_of_memory(epoch: int, batch_size: int) -> str:
    return (f"Training ran out of memory at epoch {epoch} with batch size {batch_size}. Lower the batch "
            f"size or use a smaller model.")


def bad_batch(shape: tuple, reason: str) -> str:
    return f"The model cannot process a training batch of shape {shape}: {reason}"


def crashed(epoch: int, step: int, reason: str) -> str:
    return f"Training failed at epoch {epoch}, step {step}: {reason}"


def interrupted(epochs_done: int) -> str:
    return f"Training was interrupted after {epochs_done} epoch{'s' if epochs_done != 1 else ''}."
