"""The model-randomisation sanity check (Adebayo et al. 2018, "Sanity Checks for Saliency Maps").

The layers that hold weights are re-initialised one by one from the output side down (cascading:
each stage keeps the layers randomised before it), and each method's map is recomputed.  A method
that explains the model must change as its weights go; a map that stays the same (high Spearman
rank correlation of |map| with the original) shows the input, not the model.

    result = sanity_check(ready, x, target=3, methods=("saliency", "gradcam"))
    result.stages[k].layer, result.stages[k].maps["saliency"], result.stages[k].spearman["saliency"]

The model passed in is never changed: the stages run on a copy.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import fx, nn

from engine.explain.attribution import attribute, get_method, resolve_targets
from engine.explain.base import Job, NotApplicable, eval_mode, subject


@dataclass
class SanityStage:
    layer: str | None  # the layer randomised at this stage (None: the trained model)
    randomized: list[str]  # every layer randomised so far, output side first
    maps: dict[str, np.ndarray]  # method -> map (the input's shape)
    spearman: dict[str, float]  # method -> rank correlation of |map| with the trained model's |map|


@dataclass
class SanityResult:
    methods: list[str]
    target: int
    layers: list[str]  # the layers with weights, output side first (the order they are randomised in)
    stages: list[SanityStage] = field(default_factory=list)

    def to_json(self, include_maps: bool = True) -> dict:
        return {"methods": self.methods, "target": self.target, "layers": self.layers,
                "stages": [{"layer": s.layer, "randomized": s.randomized,
                            "spearman": {k: (None if np.isnan(v) else float(v)) for k, v in s.spearman.items()},
                            **({"maps": {k: v.astype(np.float64).tolist() for k, v in s.maps.items()}}
                               if include_maps else {})}
                           for s in self.stages]}


def weighted_layers(module: nn.Module) -> list[str]:
    """Names of the layers (graph nodes) that hold weights, in execution order."""
    if isinstance(module, fx.GraphModule):
        names = [n.target for n in module.graph.nodes if n.op == "call_module"]
    else:
        names = [name for name, _ in module.named_children()]
    return [n for n in names if any(True for _ in module.get_submodule(n).parameters())]


def randomize_layer(layer: nn.Module) -> None:
    """Fresh initial weights, as when the layer was built (``reset_parameters`` of each part)."""
    touched = False
    for m in layer.modules():
        reset = getattr(m, "reset_parameters", None) or getattr(m, "_reset_parameters", None)
        if callable(reset):
            reset()
            touched = True
    if not touched:  # a layer torch has no initialiser for: small random weights
        with torch.no_grad():
            for p in layer.parameters():
                p.normal_(0.0, 0.05)


def spearman_abs(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of |a| and |b| (NaN when either is constant)."""
    from scipy.stats import spearmanr

    a, b = np.abs(a).ravel(), np.abs(b).ravel()
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def sanity_check(model, x, target=None, methods=("saliency", "integrated_gradients", "gradcam"), *,
                 dataset=None, layers: list[str] | None = None, seed: int = 0, options: dict | None = None,
                 layer: str | None = None, cancel=None, progress=None) -> SanityResult:
    """Cascading randomisation of ``model``'s weighted layers from the top; each method's map of the
    single sample ``x`` for ``target`` at every stage.  ``layers``: the order to randomise in
    (default: every weighted layer, output side first); ``options``: per method, its options;
    ``layer``: the Grad-CAM node.  The re-initialisation is seeded by ``seed``."""
    subj = subject(model, dataset)
    names = [get_method(m).name for m in methods]
    if not names:
        raise NotApplicable("Choose at least one method for the sanity check.")
    batch, _ = subj.batch(x)
    if batch.shape[0] != 1:
        raise NotApplicable("The sanity check explains one sample at a time.")
    order = layers if layers is not None else list(reversed(weighted_layers(subj.module)))
    known = set(weighted_layers(subj.module))
    bad = [n for n in order if n not in known]
    if bad:
        raise NotApplicable(f"'{bad[0]}' is not a layer with weights; the layers with weights are: "
                            f"{', '.join(sorted(known)) or 'none'}.")
    options = options or {}
    job = Job(cancel, progress)
    total = (len(order) + 1) * len(names)
    # a copy to randomise; it keeps the original's graph analysis, so node names and shapes resolve
    work = subj.with_module(copy.deepcopy(subj.module))
    with eval_mode(subj.module):
        target_used = resolve_targets(subj, batch, target)
    if isinstance(target_used, list):
        target_used = target_used[0]

    def maps(stage: int) -> dict[str, np.ndarray]:
        out = {}
        for k, name in enumerate(names):
            done = stage * len(names) + k
            part = job.part(done / total, (done + 1) / total)
            a = attribute(work, batch, target_used, name, layer=layer if get_method(name).needs_layer else None,
                          cancel=cancel, progress=part.report, **options.get(name, {}))
            out[name] = a.values[0]
        return out

    original = maps(0)
    result = SanityResult(names, int(target_used), list(order))
    result.stages.append(SanityStage(None, [], original, {n: 1.0 for n in names}))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i, layer_name in enumerate(order, start=1):
            job.check()
            randomize_layer(work.module.get_submodule(layer_name))
            stage_maps = maps(i)
            result.stages.append(SanityStage(layer_name, list(order[:i]), stage_maps,
                                             {n: spearman_abs(original[n], stage_maps[n]) for n in names}))
    job.report(1.0)
    return result
