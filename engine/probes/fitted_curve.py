"""The fitted curve of a 1-feature regression: the prediction along a line through the data."""
from __future__ import annotations

import torch
from torch import nn


def curve_points(x: torch.Tensor, n: int, pad: float = 0.05) -> torch.Tensor:
    """(n, 1) evenly spaced x positions spanning the 1-D data ``x``, grown by ``pad`` on each side."""
    lo, hi = float(x.min()), float(x.max())
    margin = (hi - lo) * pad + 1e-3
    return torch.linspace(lo - margin, hi + margin, n).reshape(-1, 1)


@torch.no_grad()
def fitted_curve(model: nn.Module, xs: torch.Tensor) -> torch.Tensor:
    """(n, targets) predictions of ``model`` at the positions ``xs`` (n, 1)."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return model(xs.to(device)).float()
