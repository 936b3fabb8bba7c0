"""The layer catalog: every layer type LayerLab knows, in palette order.

Adding a layer type = adding one LayerSpec to one of these modules.
"""
from __future__ import annotations

from engine.layers import activations, conv, core, custom, io, merge, norm, sequence
from engine.spec import LayerSpec, Registry

REGISTRY = Registry()
for _module in (io, core, conv, norm, activations, sequence, merge, custom):
    for _spec in _module.SPECS:
        REGISTRY.register(_spec)


def get_spec(type_name: str) -> LayerSpec:
    return REGISTRY.get(type_name)


__all__ = ["REGISTRY", "get_spec"]
