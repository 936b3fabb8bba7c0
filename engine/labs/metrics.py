"""The figures lab goals compare against: a model's metrics on one split of the lab's own data.

    measured = measure(graph, weights, dataset, settings)      # the fixed test split
    measured.values["accuracy"] or measured.missing            # a sentence when nothing can be measured

Accuracy, macro F1, MSE, MAE and R² come from scikit-learn; the loss is the graph's own loss
(``engine.losses``, as the trainer computes it), so a history row and a re-evaluation agree.
Kept minimal on purpose: ``engine/explain/evaluation.py`` (branch ``explain``) is the full
evaluation, and this module should call it once both are merged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

#: metric -> (the task it applies to, None = both; whether higher is better)
METRICS: dict[str, tuple[str | None, bool]] = {
    "accuracy": ("classification", True),
    "f1_macro": ("classification", True),
    "loss": (None, False),
    "mse": ("regression", False),
    "mae": ("regression", False),
    "r2": ("regression", True),
}
METRIC_TITLES = {"accuracy": "accuracy", "f1_macro": "macro F1", "loss": "loss", "mse": "MSE", "mae": "MAE",
                 "r2": "R²"}
_CHUNK = 4096


def higher_is_better(metric: str) -> bool:
    return METRICS[metric][1]


def format_metric(metric: str, value: float) -> str:
    """A value as a student reads it: accuracy in percent, the rest with four significant digits."""
    if metric == "accuracy":
        return f"{100 * value:.1f}%"
    return f"{value:.4g}"


@dataclass(frozen=True)
class Measured:
    """Metrics of one model on one split, or why there are none (``missing``, a sentence)."""

    values: dict[str, float] | None
    missing: str = ""
    split: str = "test"
    n_samples: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.values is not None


def loss_name(graph, settings: Mapping | None, task: str) -> str:
    """The loss a run of this graph with these settings trains with (the Output's, or the settings')."""
    from engine.errors import LayerLabError
    from engine.layers.io import resolve_loss
    from engine.run import output_loss, run_config

    try:
        return run_config(settings, graph, task).loss
    except LayerLabError:  # bad settings: the Output node still says which loss it means
        return resolve_loss(output_loss(graph), task)


def outputs_of(module, x) -> Any:
    """The model's outputs for ``x``, in chunks, without gradients (a float32 CPU tensor)."""
    import torch

    with torch.no_grad():
        parts = [module(x[s:s + _CHUNK]).float() for s in range(0, len(x), _CHUNK)]
    return torch.cat(parts) if parts else torch.zeros((0, 1))


def split_metrics(module, dataset, loss: str, split: str = "test") -> dict[str, float]:
    """Every metric of ``METRICS`` that applies to the dataset's task, on ``split``."""
    import numpy as np
    from sklearn import metrics as skm

    from engine.losses import make_loss

    x, y = dataset.split(split)
    out = outputs_of(module, x)
    task = dataset.task
    spec = make_loss(loss, task, int(out.shape[1]))
    target = spec.prepare_targets(y)
    total, count = spec.sum_and_count(out, target)
    values = {"loss": float(total) / max(count, 1)}
    if task == "classification":
        pred = (out[:, 0] > 0).long() if out.shape[1] == 1 else out.argmax(dim=1)
        y_true, y_pred = y.numpy(), pred.numpy()
        values["accuracy"] = float(skm.accuracy_score(y_true, y_pred))
        values["f1_macro"] = float(skm.f1_score(y_true, y_pred, average="macro",
                                                labels=np.arange(max(dataset.n_outputs, 2)), zero_division=0))
    else:
        y_true, y_pred = target.numpy(), out.numpy()
        values["mse"] = float(skm.mean_squared_error(y_true, y_pred))
        values["mae"] = float(skm.mean_absolute_error(y_true, y_pred))
        values["r2"] = float(skm.r2_score(y_true, y_pred)) if len(y_true) > 1 else math.nan
    return values


def measure(graph, weights: Mapping | None, dataset, settings: Mapping | None = None,
            split: str = "test") -> Measured:
    """The metrics of ``graph`` with ``weights`` on ``split`` of ``dataset``; never raises for what
    a student can get wrong (no weights, a graph with problems, weights of another graph)."""
    from engine.errors import LayerLabError
    from engine.model_at import ready_model
    from engine.run import context_for
    from engine.validate import ShapeInference, first_error_sentence

    if not weights:
        return Measured(None, "train the network first: it has no trained weights yet", split)
    n = int(dataset.split(split)[0].shape[0])
    if n == 0:
        return Measured(None, f"the lab's data has no {split} split to measure on (a lab file error)", split)
    context = context_for(dataset)
    analysis = ShapeInference(graph, context).analyze()
    if not analysis.ok:
        return Measured(None, f"fix the network's problems first: {first_error_sentence(analysis)}", split)
    try:
        ready = ready_model(graph, context, weights, device="cpu", dataset=dataset)
        values = split_metrics(ready.module, dataset, loss_name(graph, settings, dataset.task), split)
    except LayerLabError as exc:
        if exc.kind == "setup":  # WeightsMismatch
            return Measured(None, "train the network again: its weights belong to an earlier version of the "
                                  f"graph ({exc.message})", split)
        return Measured(None, f"the network cannot be evaluated: {exc.message}", split)
    except Exception as exc:  # a forward pass that fails on the lab's data
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Measured(None, f"the network cannot be evaluated on the lab's data: {text}", split)
    if not all(math.isfinite(v) for k, v in values.items() if k != "r2"):
        return Measured(None, "the network's outputs are not finite numbers (NaN or infinity): train it "
                              "again, e.g. with a smaller learning rate", split)
    return Measured(values, "", split, n)


def weights_digest(weights: Mapping | None) -> str | None:
    """sha256 of a state dict (names, dtypes, shapes and values): equal digests mean equal weights."""
    import hashlib

    import numpy as np
    import torch

    if not weights:
        return None
    h = hashlib.sha256()
    for name in sorted(weights):
        a = np.ascontiguousarray(torch.as_tensor(weights[name]).detach().cpu().numpy())
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()
