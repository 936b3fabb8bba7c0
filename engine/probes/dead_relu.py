"""Dead ReLUs: units that output zero for every probe sample."""
from __future__ import annotations

import torch
from torch import fx, nn

RELU_TYPES = (nn.ReLU, nn.ReLU6)


def is_relu(model: nn.Module, modules: dict, name: str) -> bool:
    mod = modules.get(name)
    if mod is not None:
        return isinstance(mod, RELU_TYPES)
    if isinstance(model, fx.GraphModule):
        for n in model.graph.nodes:
            if n.name == name:
                return n.target in (torch.relu, torch.nn.functional.relu)
    return False


def dead_fraction(output: torch.Tensor) -> torch.Tensor:
    """The share of units (features, or channels of feature maps) that are 0 for every sample of
    the batch ``output`` (N, units, ...): a 0-d tensor, left on the device."""
    alive = (output > 0).reshape(output.shape[0], output.shape[1], -1).any(dim=2).any(dim=0)
    return 1.0 - alive.float().mean()
