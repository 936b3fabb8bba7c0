"""Which node's output went non-finite first, and whether a state dict is finite.

Used by the trainer after a loss became NaN/inf: it re-runs the failing batch through the model
and walks the nodes in execution order.  A ``torch.fx.GraphModule`` (what LayerLab compiles
graphs into) is walked with ``torch.fx.Interpreter`` so every node, functional ones included,
is checked under the user's layer names; any other module is walked with forward hooks on its
named leaf modules.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Literal

import numpy as np
import torch
import torch.fx
from torch import Tensor, nn


@dataclass(frozen=True)
class NonFiniteFinding:
    """Where non-finite values first appear for one input batch.

    ``where``: "inputs" (the batch itself), "weights" (a layer's parameters are already
    non-finite), "output" (a node's output overflowed), or "none" (every node output is finite).
    ``kind``: "NaN" or "infinite".
    """

    where: Literal["inputs", "weights", "output", "none"]
    name: str | None = None
    kind: str = "NaN"

    def describe(self) -> str:
        if self.where == "inputs":
            return f"the input batch itself contains {self.kind} values"
        if self.where == "weights":
            return f"the weights of '{self.name}' are already {self.kind}"
        if self.where == "output" and self.name is None:
            return "the model's output went non-finite"
        if self.where == "output":
            return f"the output of '{self.name}' was the first to go non-finite"
        return "every layer's output was finite, so the loss itself overflowed"


class _Found(Exception):
    def __init__(self, finding: NonFiniteFinding):
        self.finding = finding


def _nonfinite_kind(value: Any) -> str | None:
    """'NaN' / 'infinite' if any floating tensor in ``value`` (nested) is non-finite, else None."""
    if isinstance(value, Tensor):
        if value.is_floating_point() or value.is_complex():
            if bool(torch.isnan(value).any()):
                return "NaN"
            if bool(torch.isinf(value).any()):
                return "infinite"
        return None
    if isinstance(value, (list, tuple)):
        for v in value:
            k = _nonfinite_kind(v)
            if k:
                return k
    if isinstance(value, dict):
        for v in value.values():
            k = _nonfinite_kind(v)
            if k:
                return k
    return None


def _own_params_kind(module: nn.Module) -> str | None:
    return _nonfinite_kind([p for p in module.parameters(recurse=True)])


class _FirstNonFinite(torch.fx.Interpreter):
    def run_node(self, n: torch.fx.Node) -> Any:
        result = super().run_node(n)
        if n.op in ("call_module", "call_function", "call_method", "get_attr"):
            kind = _nonfinite_kind(result)
            if kind:
                name = str(n.target) if n.op in ("call_module", "get_attr") else n.name
                if n.op == "get_attr":
                    raise _Found(NonFiniteFinding("weights", name, kind))
                if n.op == "call_module":
                    pk = _own_params_kind(self.module.get_submodule(str(n.target)))
                    if pk:
                        raise _Found(NonFiniteFinding("weights", name, pk))
                raise _Found(NonFiniteFinding("output", name, kind))
        return result


def find_first_nonfinite(model: nn.Module, x: Tensor,
                         autocast: Callable[[], ContextManager[Any]] | None = None) -> NonFiniteFinding:
    """Run ``x`` through ``model`` (no grad, current train/eval mode) and report the first
    node whose output is NaN/inf.  Buffers (e.g. BatchNorm running stats) are restored after."""
    kind = _nonfinite_kind(x)
    if kind:
        return NonFiniteFinding("inputs", None, kind)
    saved = {k: b.detach().clone() for k, b in model.named_buffers()}
    ctx = autocast or nullcontext
    try:
        with torch.no_grad(), ctx():
            if isinstance(model, torch.fx.GraphModule):
                try:
                    _FirstNonFinite(model).run(x)
                except _Found as found:
                    return found.finding
            else:
                return _find_with_hooks(model, x)
    finally:
        with torch.no_grad():
            for k, b in model.named_buffers():
                if k in saved:
                    b.copy_(saved[k])
    return NonFiniteFinding("none")


def _find_with_hooks(model: nn.Module, x: Tensor) -> NonFiniteFinding:
    found: list[NonFiniteFinding] = []

    def hook_for(name: str, module: nn.Module):
        def hook(_m: nn.Module, _inp: Any, out: Any) -> None:
            if found:
                return
            kind = _nonfinite_kind(out)
            if kind:
                pk = _own_params_kind(module)
                found.append(NonFiniteFinding("weights" if pk else "output", name, pk or kind))
        return hook

    leaves = [(n, m) for n, m in model.named_modules() if n and not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook_for(n, m)) for n, m in leaves]
    try:
        out = model(x)
    finally:
        for h in handles:
            h.remove()
    if found:
        return found[0]
    kind = _nonfinite_kind(out)
    if kind:  # produced by a functional op outside any named leaf module
        return NonFiniteFinding("output", None, kind)
    return NonFiniteFinding("none")


def state_is_finite(state: dict) -> bool:
    """Whether every floating-point entry of a state dict (torch tensors or numpy arrays) is finite."""
    for v in state.values():
        if isinstance(v, Tensor):
            if v.is_floating_point() and not bool(torch.isfinite(v).all()):
                return False
        else:
            a = np.asarray(v)
            if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
                return False
    return True
