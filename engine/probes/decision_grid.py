"""The decision boundary of a 2-feature classifier: class probabilities over a grid of the plane."""
from __future__ import annotations

import torch
from torch import nn

Extent = tuple[float, float, float, float]  # x0, x1, y0, y1


def padded_extent(points: torch.Tensor, pad: float = 0.08) -> Extent:
    """The box around 2-D ``points`` (N, 2), grown by ``pad`` of its size on each side."""
    x = points.float().cpu()
    lo, hi = x.min(0).values, x.max(0).values
    margin = (hi - lo) * pad + 1e-3
    lo, hi = lo - margin, hi + margin
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def grid_points(extent: Extent, n: int) -> torch.Tensor:
    """(n*n, 2) points, row-major from (x0, y0): row = y, column = x."""
    x0, x1, y0, y1 = extent
    gx, gy = torch.linspace(x0, x1, n), torch.linspace(y0, y1, n)
    yy, xx = torch.meshgrid(gy, gx, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities from a classifier's output: softmax, or sigmoid for one binary logit."""
    if logits.dim() == 1:
        logits = logits[:, None]
    if logits.shape[1] == 1:  # one logit: binary BCE
        p1 = torch.sigmoid(logits)
        return torch.cat([1 - p1, p1], 1)
    return torch.softmax(logits, 1)


@torch.no_grad()
def decision_grid(model: nn.Module, extent: Extent, n: int) -> torch.Tensor:
    """(n, n, classes) probabilities of ``model`` (in its current mode) over the grid of ``extent``."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return probabilities(model(grid_points(extent, n).to(device)).float()).reshape(n, n, -1)
