"""Modules that load on first use.

The editor (graph, layer specs, shape inference, the canvas) is pure Python and must not wait for
torch, which takes seconds to import; a layer spec's ``build`` runs only when a model is compiled.
So layer specs name ``nn.Linear`` through ``engine.lazy.nn``: the attribute access imports
``torch.nn`` then, not when the spec module is imported.
"""
from __future__ import annotations

import importlib
from types import ModuleType


class LazyModule:
    """Stands for the module ``name`` and imports it at the first attribute access."""

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


nn = LazyModule("torch.nn")
#: LayerLab's own nn.Module classes (they subclass torch.nn.Module, so they load with torch)
layer_modules = LazyModule("engine.layers.modules")


def is_loaded(name: str = "torch") -> bool:
    import sys

    return name in sys.modules
