"""Every node's output in one forward pass."""
from __future__ import annotations

from typing import Any

import torch
from torch import fx, nn


def tap_module(model: fx.GraphModule, names: tuple[str, ...]) -> fx.GraphModule:
    """A GraphModule sharing ``model``'s submodules (and so its parameters) whose forward returns
    ``(output, {name: value of node name})``: every activation in one plain forward pass, without
    the per-node cost of an ``fx.Interpreter`` or of module hooks."""
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    output_value = None
    for node in model.graph.nodes:
        if node.op == "output":
            output_value = fx.map_arg(node.args[0], lambda n: env[n])
            continue
        env[node] = graph.node_copy(node, lambda n: env[n])
    wanted = {n.name: env[n] for n in model.graph.nodes if n.name in names}
    graph.output((output_value, {k: wanted[k] for k in names if k in wanted}))
    return fx.GraphModule(model, graph, class_name="LayerLabProbe")


def forward_with_hooks(model: nn.Module, names: tuple[str, ...], batch: torch.Tensor,
                       outs: dict[str, torch.Tensor]) -> Any:
    """The same for a module fx cannot copy: forward hooks on the named submodules fill ``outs``."""
    modules = dict(model.named_modules())
    hooks = []
    for name in names:
        m = modules.get(name)
        if m is not None:
            hooks.append(m.register_forward_hook(
                lambda _m, _i, o, _n=name: outs.__setitem__(_n, o) if isinstance(o, torch.Tensor) else None))
    try:
        return model(batch)
    finally:
        for h in hooks:
            h.remove()


def node_order(model: nn.Module) -> list[str]:
    """Names of the nodes that compute something, in execution order."""
    if isinstance(model, fx.GraphModule):
        return [n.name for n in model.graph.nodes if n.op in ("call_module", "call_function", "call_method")]
    return [name for name, m in model.named_modules() if name and not list(m.children())]


def is_function_node(model: nn.Module, name: str) -> bool:
    if not isinstance(model, fx.GraphModule):
        return False
    return any(n.name == name and n.op in ("call_function", "call_method") for n in model.graph.nodes)
