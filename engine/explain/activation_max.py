"""Activation maximisation: the input a class score or a unit responds to most (what it "looks for").

Gradient ascent on the input from small noise, with an L2 penalty (no unbounded values), a
total-variation penalty and random jitter (no high-frequency tricks), clamped to the data's range
after every step.

    result = activation_maximization(ready, target=3)                    # class 3's score
    result = activation_maximization(ready, layer="conv1", unit=5)       # channel 5 of conv1
    result.image                                                         # the input's shape
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from engine.explain.base import Job, NotApplicable, eval_mode, subject


@dataclass
class ActivationMax:
    image: np.ndarray  # one input (the model's input shape), within ``data_range``
    objective: str  # what was maximised, in words
    start_value: float
    final_value: float
    trace: list[float] = field(default_factory=list)  # the objective after each step
    data_range: tuple[float, float] = (0.0, 1.0)

    def to_json(self) -> dict:
        return {"image": self.image.astype(np.float64).tolist(), "objective": self.objective,
                "start_value": self.start_value, "final_value": self.final_value, "trace": self.trace,
                "data_range": list(self.data_range)}


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Sum of squared differences between neighbouring pixels (images) or features."""
    if x.dim() == 4:
        return (x[..., 1:, :] - x[..., :-1, :]).pow(2).sum() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).sum()
    return (x[..., 1:] - x[..., :-1]).pow(2).sum()


def activation_maximization(model, *, target: int | None = None, layer: str | None = None,
                            unit: int | None = None, dataset=None, steps: int = 200, lr: float = 0.05,
                            l2: float = 1e-3, tv: float = 1e-2, jitter: int = 1, seed: int = 0,
                            data_range: tuple[float, float] | None = None, cancel=None,
                            progress=None) -> ActivationMax:
    """Maximise output ``target`` (a class score), or channel ``unit`` of node ``layer`` (its mean
    over positions).  ``lr`` is in units of the data's range per step; ``data_range`` defaults to
    the training inputs' (min, max)."""
    subj = subject(model, dataset)
    if subj.input_shape is None:
        raise NotApplicable("Activation maximisation needs the input's shape; load the model's dataset.")
    if (target is None) == (layer is None):
        raise NotApplicable("Say what to maximise: a class (target) or a layer's unit (layer and unit), not both.")
    if not 1 <= steps <= 100_000:
        raise NotApplicable(f"steps must lie in 1..100000, got {steps}.")
    lo, hi = data_range if data_range is not None else subj.data_range()
    if not hi > lo:
        raise NotApplicable(f"The data range must have min < max, got ({lo}, {hi}).")
    span = hi - lo
    device = subj.device
    capture: dict[str, torch.Tensor] = {}
    handle = None
    forward = subj.module
    if layer is not None:
        from engine.explain.taps import resolve_layer

        hooked = resolve_layer(subj, layer)
        forward = hooked.forward_module
        handle = hooked.module.register_forward_hook(lambda _m, _i, out: capture.__setitem__("out", out))
        what = f"unit {unit} of {layer}"
    else:
        what = f"class {target}" + (f" ({subj.class_names[target]})"
                                    if 0 <= target < len(subj.class_names) else "")

    def objective(inp: torch.Tensor) -> torch.Tensor:
        out = forward(inp)
        if layer is None:
            if not 0 <= target < out.shape[1]:
                raise NotApplicable(f"Target {target} is not an output of this model; choose 0..{out.shape[1] - 1}.")
            return out[0, target]
        act = capture.pop("out")
        if unit is None or not 0 <= unit < act.shape[1]:
            raise NotApplicable(f"{layer} has {act.shape[1]} units (channels); choose a unit in 0..{act.shape[1] - 1}.")
        return act[0, unit].mean()

    job = Job(cancel, progress)
    image = len(subj.input_shape) == 3
    gen = torch.Generator().manual_seed(seed)
    centre = lo + 0.5 * span
    x = (centre + 0.1 * span * torch.randn((1, *subj.input_shape), generator=gen)).clamp(lo, hi).to(device)
    x.requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr * span)
    trace: list[float] = []
    try:
        with eval_mode(subj.module):
            with torch.no_grad():
                start = float(objective(x))
            for step in range(steps):
                job.step(step, steps)
                inp = x
                if image and jitter > 0:
                    dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=gen))
                    inp = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
                value = objective(inp)
                loss = -value + l2 * x.pow(2).sum() + tv * total_variation(x)
                (grad,) = torch.autograd.grad(loss, x)  # the input's gradient only: no weight grads
                x.grad = grad
                opt.step()
                with torch.no_grad():
                    x.clamp_(lo, hi)
                trace.append(float(value.detach()))
            with torch.no_grad():
                final = float(objective(x))
    finally:
        if handle is not None:
            handle.remove()
    job.report(1.0)
    return ActivationMax(x.detach().cpu().numpy()[0], what, start, final, trace, (float(lo), float(hi)))
