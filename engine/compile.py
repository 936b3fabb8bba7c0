"""Graph -> torch.fx.Graph (topological order) -> GraphModule.

Each layer node becomes one named submodule (``self.fc1``), merges become
``call_function`` nodes (``add1 = relu1 + fc2``), so ``model.code`` reads like
code a person would write, with the user's layer names.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import fx, nn

from engine.graph import Graph
from engine.limits import check_memory
from engine.layers import REGISTRY
from engine.spec import InferContext
from engine.validate import Analysis, GraphInvalid, ShapeInference


@dataclass(frozen=True)
class CompiledModel:
    module: fx.GraphModule
    analysis: Analysis
    node_names: dict[str, str]  # graph node id -> fx node / submodule name

    @property
    def code(self) -> str:
        return self.module.code


def compile_graph(graph: Graph, context: InferContext, analysis: Analysis | None = None,
                  class_name: str = "LayerLabModel", seed: int | None = None) -> CompiledModel:
    """Build a trainable module from ``graph``; raises GraphInvalid (a LayerLabError) if the graph has errors.

    With a ``seed``, the initial weights depend on the seed alone (the global RNG is left as it was),
    so the same seed always gives the same starting point.
    """
    analysis = analysis or ShapeInference(graph, context).analyze()
    if not analysis.ok:
        raise GraphInvalid(analysis)
    check_model_memory(graph, analysis)
    if seed is None:
        return _build(graph, context, analysis, class_name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _build(graph, context, analysis, class_name)


BYTES_PER_PARAM = 4  # float32 weights
#: training holds each weight four times: the weight, its gradient and two Adam moments
TRAINING_COPIES_PER_PARAM = 4
#: and each activation about three times: the forward value, its gradient and the autograd saves
TRAINING_COPIES_PER_ACTIVATION = 3


def _largest_node(graph: Graph, analysis: Analysis) -> str:
    nid = max(analysis.nodes, key=lambda n: analysis.nodes[n].n_params, default=None)
    if nid is None or not analysis.nodes[nid].n_params:
        return ""
    node = graph.node(nid)
    return f", most of them in {node.type} '{node.name}'"


def check_model_memory(graph: Graph, analysis: Analysis) -> None:
    """Refuse, from the shapes alone and before any tensor exists, a model whose weights and one
    sample's activations exceed the memory limit (a Linear of 10^6 x 10^6 would need 4 TB)."""
    need = analysis.total_params * BYTES_PER_PARAM + analysis.activation_bytes
    check_memory(need, f"The model ({analysis.total_params:,} parameters{_largest_node(graph, analysis)})",
                 fix="make its layers smaller")


def check_training_memory(graph: Graph, analysis: Analysis, batch_size: int) -> None:
    """Refuse a training run whose weights, gradients, optimiser state and batch activations exceed
    the memory limit, before the run allocates them."""
    need = (analysis.total_params * BYTES_PER_PARAM * TRAINING_COPIES_PER_PARAM
            + analysis.activation_bytes * batch_size * TRAINING_COPIES_PER_ACTIVATION)
    check_memory(need, f"Training the model ({analysis.total_params:,} parameters{_largest_node(graph, analysis)}, "
                       f"batches of {batch_size:,})", fix="use a smaller batch size or smaller layers")


def _build(graph: Graph, context: InferContext, analysis: Analysis, class_name: str) -> CompiledModel:
    root = nn.Module()
    fxg = fx.Graph()
    values: dict[str, fx.Node] = {}
    names: dict[str, str] = {}
    in_edges: dict[str, list] = {}
    for e in graph.edges:
        in_edges.setdefault(e.dst, []).append(e)
    for nid in analysis.order:
        node = graph.node(nid)
        spec = REGISTRY.get(node.type)
        info = analysis.nodes[nid]
        args = [values[e.src] for e in in_edges.get(nid, [])]
        if node.type == "Input":
            value = fxg.placeholder(node.name)
        elif node.type == "Output":
            fxg.output(args[0])
            names[nid] = "output"
            continue
        elif spec.function is not None:
            fn = spec.resolved_function()
            kwargs = spec.function_kwargs(node.params) if spec.function_kwargs else {}
            # The node that holds the merge's result is created under the user's name through fx's
            # namespace (assigning Node.name directly bypasses it and can define a name twice).
            if fn is torch.cat:
                value = fxg.create_node("call_function", torch.cat, (args,), kwargs, name=node.name)
            else:
                value = args[0]
                for k, other in enumerate(args[1:], start=2):  # a + b + c, left to right
                    value = fxg.create_node("call_function", fn, (value, other), kwargs,
                                            name=node.name if k == len(args) else None)
        else:
            root.add_module(node.name, spec.build(node.params, info.in_shapes, context))
            value = fxg.call_module(node.name, tuple(args))
        values[nid] = value
        names[nid] = value.name
    fxg.lint()
    module = fx.GraphModule(root, fxg, class_name=class_name)
    return CompiledModel(module, analysis, names)
