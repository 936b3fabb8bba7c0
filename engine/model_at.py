"""The model at epoch k: a ready model for work outside training (evaluation, attribution, export).

    ready = model_at(project)               # the project's current weights
    ready = model_at(project, epoch=3)      # the weights its timeline kept for the end of epoch 3
    ready.module(x)                         # an eval-mode fx GraphModule on ``ready.device``

``ready_model(graph, context, weights)`` is the same without a project, for callers that hold
the weights themselves (the GUI's timeline, a grader reading a submission).  Nothing here trains,
and nothing here needs a running trainer: the CLI and a GUI worker thread both use it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from engine.errors import LayerLabError
from engine.spec import InferContext


class NoSuchEpoch(LayerLabError):
    """The project's timeline has no weights for the requested epoch."""

    kind = "data"


class Untrained(LayerLabError):
    """The project has no weights to run."""

    kind = "data"


@dataclass
class ReadyModel:
    module: Any  # torch.fx.GraphModule, eval mode, on ``device``
    compiled: Any  # engine.compile.CompiledModel (its ``node_names`` map graph node ids to fx names)
    context: InferContext
    device: Any  # torch.device
    dataset: Any = None  # engine.data.Dataset on the CPU, when known
    epoch: int | None = None  # the timeline epoch of the weights (None: the project's current weights)


def ready_model(graph, context: InferContext, weights: Mapping | None, *, device: str = "cpu",
                dataset=None, epoch: int | None = None, seed: int | None = 0) -> ReadyModel:
    """Compile ``graph`` for ``context``, load ``weights`` (None: fresh weights from ``seed``) and
    put the module in eval mode on ``device``.  Weights that do not fit raise WeightsMismatch."""
    import torch

    from engine.compile import compile_graph
    from engine.run import load_weights
    from engine.train import resolve_device

    compiled = compile_graph(graph, context, seed=None if weights is not None else seed)
    if weights is not None:
        load_weights(compiled.module, {k: torch.as_tensor(v) for k, v in weights.items()})
    dev = resolve_device(device)
    module = compiled.module.to(dev).eval()
    return ReadyModel(module, compiled, context, dev, dataset, epoch)


def model_at(project, epoch: int | None = None, *, dataset=None, device: str = "auto",
             base_dir: str | None = None) -> ReadyModel:
    """The project's model with its current weights (``epoch`` None) or those its timeline kept
    for the end of ``epoch`` (0 = before training), with its dataset loaded unless given."""
    from engine.run import context_for

    if epoch is None:
        weights = project.weights
        if not weights:
            raise Untrained("This project has no trained weights yet.", fix="train it first")
    else:
        kept = getattr(project, "checkpoints", None) or {}
        if epoch not in kept:
            have = ", ".join(str(e) for e in sorted(kept)) or "none"
            raise NoSuchEpoch(f"The project's timeline has no weights for epoch {epoch} (it kept: {have}).")
        weights = kept[epoch]
    if dataset is None:
        from engine.data import load_dataset

        dataset = load_dataset(project.data, project.normalization, base_dir=base_dir)
    return ready_model(project.graph, context_for(dataset), weights, device=device, dataset=dataset, epoch=epoch)
