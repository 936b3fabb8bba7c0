"""Layers by graph node name, for the methods that hook a layer (Grad-CAM, activation maximisation).

A node that compiles to a submodule (``self.conv1``) is hooked directly.  A merge node compiles to
a ``call_function`` (``add1 = relu1 + fc2``), which has no module to hook, so it gets a *tap*: a
graph pass inserts an ``nn.Identity`` after it, in a new GraphModule that shares every weight with
the original.  Tapped modules are cached per (module, node), so a tap costs one fx build per node.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import fx, nn

from engine.explain.base import NotApplicable, Subject

TAP_PREFIX = "explain_tap_"

_TAPPED: "weakref.WeakKeyDictionary[nn.Module, dict[str, tuple[fx.GraphModule, nn.Module]]]" = \
    weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Layer:
    """A hookable layer: run ``forward_module`` and hook ``module`` (the node's own submodule, or its tap)."""

    name: str  # the graph node's name
    forward_module: nn.Module
    module: nn.Module
    shape: tuple[int, ...] | None  # per-sample output shape, when the graph analysis knows it


def tap(gm: fx.GraphModule, node_name: str) -> tuple[fx.GraphModule, nn.Module]:
    """A GraphModule computing what ``gm`` computes, with an ``nn.Identity`` after ``node_name``."""
    per_module = _TAPPED.setdefault(gm, {})
    if node_name in per_module:
        return per_module[node_name]
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    out = graph.graph_copy(gm.graph, env)
    graph.output(out)
    target = next(n for n in graph.nodes if n.name == node_name)
    identity = nn.Identity()
    tap_name = TAP_PREFIX + node_name
    with graph.inserting_after(target):
        tap_node = graph.call_module(tap_name, (target,))
    target.replace_all_uses_with(tap_node, delete_user_cb=lambda user: user is not tap_node)
    graph.lint()
    root = dict(gm.named_children())
    root.update({name: buf for name, buf in gm.named_buffers(recurse=False)})
    root.update({name: p for name, p in gm.named_parameters(recurse=False)})
    root[tap_name] = identity
    tapped = fx.GraphModule(root, graph, class_name=type(gm).__name__)
    tapped.train(gm.training)
    per_module[node_name] = (tapped, identity)
    return tapped, identity


def _fx_nodes(gm: fx.GraphModule) -> list[fx.Node]:
    return [n for n in gm.graph.nodes if n.op in ("call_module", "call_function", "call_method")]


def layer_names(subj: Subject) -> list[str]:
    """Every node of the model that can be hooked, in execution order."""
    m = subj.module
    if isinstance(m, fx.GraphModule):
        return [n.name for n in _fx_nodes(m)]
    return [name for name, _ in m.named_modules() if name]


def resolve_layer(subj: Subject, name: str) -> Layer:
    """The layer of graph node ``name``; NotApplicable with the known names otherwise."""
    key = ("layer", name)
    if key not in subj.memo:
        subj.memo[key] = _resolve_layer(subj, name)
    return subj.memo[key]


def _resolve_layer(subj: Subject, name: str) -> Layer:
    m = subj.module
    if isinstance(m, fx.GraphModule):
        node = next((n for n in m.graph.nodes if n.name == name), None)
        if node is None or node.op in ("placeholder", "output", "get_attr"):
            known = ", ".join(layer_names(subj)) or "none"
            what = ("is the model's input or output, not a layer inside it" if node is not None
                    else "is not a node of this graph")
            raise NotApplicable(f"'{name}' {what}; the layers are: {known}.")
        if node.op == "call_module":
            return Layer(name, m, m.get_submodule(node.target), subj.node_shape(name))
        tapped, identity = tap(m, name)
        return Layer(name, tapped, identity, subj.node_shape(name))
    try:
        return Layer(name, m, m.get_submodule(name), None)
    except AttributeError:
        known = ", ".join(layer_names(subj)) or "none"
        raise NotApplicable(f"The model has no layer named '{name}'; its layers are: {known}.") from None


def output_shapes(subj: Subject, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Per-sample output shape of every hookable layer: from the graph analysis when the model was
    compiled from a graph, else measured with one forward pass of ``x[:1]``."""
    names = layer_names(subj)
    known = {n: subj.node_shape(n) for n in names}
    if all(s is not None for s in known.values()):
        return known  # type: ignore[return-value]
    shapes: dict[str, tuple[int, ...]] = {}
    m = subj.module
    if isinstance(m, fx.GraphModule):
        from torch.fx.passes.shape_prop import ShapeProp

        with torch.no_grad():
            ShapeProp(m).propagate(x[:1])
        for n in m.graph.nodes:
            meta = n.meta.get("tensor_meta")
            if n.name in names and meta is not None and hasattr(meta, "shape"):
                shapes[n.name] = tuple(meta.shape[1:])
        return shapes
    handles = []
    for name in names:
        def hook(_mod, _inp, out, name=name):
            if isinstance(out, torch.Tensor):
                shapes[name] = tuple(out.shape[1:])
        handles.append(m.get_submodule(name).register_forward_hook(hook))
    try:
        with torch.no_grad():
            m(x[:1])
    finally:
        for h in handles:
            h.remove()
    return shapes


def spatial_layers(subj: Subject, x: torch.Tensor) -> list[str]:
    """Layers whose output is a stack of feature maps (channels x height x width)."""
    return [n for n, s in output_shapes(subj, x).items() if s is not None and len(s) == 3]


def spatial_layer(subj: Subject, x: torch.Tensor, name: str | None, method_title: str) -> Layer:
    """The layer ``name`` (default: the last spatial one), refused with a sentence if it is not spatial."""
    key = ("spatial", name)
    hit = subj.memo.get(key)
    if hit is not None:
        return hit
    layer = _spatial_layer(subj, x, name, method_title)
    subj.memo[key] = layer
    return layer


def _spatial_layer(subj: Subject, x: torch.Tensor, name: str | None, method_title: str) -> Layer:
    if not subj.is_image:
        raise NotApplicable(f"{method_title} needs image input (channels x height x width); "
                            f"this model takes {_shape(subj.input_shape)}.")
    if name is None:
        spatial = spatial_layers(subj, x)
        if not spatial:
            raise NotApplicable(f"{method_title} needs a layer with a spatial output (a Conv2d or a pooling "
                                "layer), and this model has none.")
        name = spatial[-1]
    layer = resolve_layer(subj, name)
    shape = layer.shape if layer.shape is not None else output_shapes(subj, x).get(name)
    if shape is None or len(shape) != 3:
        choices = ", ".join(spatial_layers(subj, x)) or "none in this model"
        raise NotApplicable(f"{method_title} needs a node whose output is a stack of feature maps "
                            f"(channels x height x width), but '{name}' gives {_shape(shape)}; "
                            f"choose one of: {choices}.")
    return layer


def _shape(shape) -> str:
    if shape is None:
        return "an unknown shape"
    return "(" + ", ".join(str(s) for s in shape) + (",)" if len(shape) == 1 else ")")
