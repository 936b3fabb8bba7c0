"""A layer's weights as a person looks at them: the main weight, shrunk to what a view can show."""
from __future__ import annotations

import math

import torch
from torch import nn

MAX_MATRIX = 128  # rows / columns of a weight heatmap (larger matrices are pooled down to it)
MAX_FILTERS = 64  # conv filters (output channels) and input channels shown
HIST_BINS = 64


def layer_kind(module: nn.Module, weight: torch.Tensor) -> str:
    """"linear" | "conv" | "other": how a layer's weights are drawn."""
    if isinstance(module, nn.Linear) or weight.dim() == 2:
        return "linear"
    if isinstance(module, (nn.Conv1d, nn.Conv2d)) or weight.dim() in (3, 4):
        return "conv"
    return "other"


def main_weight(module: nn.Module) -> torch.Tensor | None:
    """The parameter a person calls "the weights" of a layer: ``weight``; for a recurrent layer
    (LSTM, GRU, RNN) the first layer's input weights ``weight_ih_l0``, which face the data (the
    largest, ``weight_hh``, maps the hidden state to itself); else the largest."""
    own = dict(module.named_parameters())
    if "weight" in own:
        return own["weight"]
    recurrent = [p for name, p in own.items() if name.rsplit(".", 1)[-1] == "weight_ih_l0"]  # LayerLab wraps the RNN
    if recurrent:
        return recurrent[0]
    if not own:
        return None
    return max(own.values(), key=lambda p: p.numel())


def max_magnitude_pool(w: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``w`` (2-D) shrunk to ``size``: each cell is the entry of largest magnitude, sign kept, of
    its block (adaptive pooling's blocks).  Unlike a crop it shows the whole matrix, and unlike an
    average it does not wash positive and negative weights out to zero."""
    w = w.float()
    _, idx = torch.nn.functional.adaptive_max_pool2d(w.abs()[None, None], size, return_indices=True)
    return w.reshape(-1)[idx.reshape(-1)].reshape(size)


def display_weight(w: torch.Tensor, kind: str, image_shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """What a weights view draws.  A first Linear layer on image input (``image_shape`` = (C, H, W)
    of its input) keeps its whole matrix, up to MAX_FILTERS units: each unit is drawn as an image
    template.  Other matrices are pooled to at most MAX_MATRIX² cells, conv filters cropped to
    MAX_FILTERS."""
    if kind == "linear" and w.dim() == 2:
        if image_shape is not None:
            return w[:MAX_FILTERS].float()
        if w.shape[0] > MAX_MATRIX or w.shape[1] > MAX_MATRIX:
            return max_magnitude_pool(w, (min(w.shape[0], MAX_MATRIX), min(w.shape[1], MAX_MATRIX)))
        return w.float()
    if kind == "conv":
        return w[:MAX_FILTERS, :MAX_FILTERS].float()
    flat = w.reshape(-1)
    return flat[: MAX_MATRIX * MAX_MATRIX].float()


def histogram(w: torch.Tensor, lo: float, hi: float, bins: int = HIST_BINS) -> torch.Tensor:
    """Counts of ``w``'s entries in ``bins`` equal bins over [lo, hi] (values outside are clamped in)."""
    return torch.histc(w.detach().float().reshape(-1).clamp(lo, hi), bins=bins, min=lo, max=hi)


def mean_magnitude(w: torch.Tensor) -> torch.Tensor:
    wd = w.detach()
    return wd.float().abs().mean() if wd.numel() else wd.new_zeros((), dtype=torch.float32)


def fixed_hist_range(w: torch.Tensor) -> tuple[float, float]:
    """A histogram range for a whole run, fixed at its start: twice the largest initial magnitude."""
    r = float(w.detach().abs().max()) if w.numel() else 1.0
    r = max(2.0 * r, 1e-3) if math.isfinite(r) else 1.0
    return -r, r
