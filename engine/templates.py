"""Ready-made graphs: the starter projects and the editor's templates.

Each template lays its nodes out left to right so it opens readable.
"""
from __future__ import annotations

from typing import Callable

from engine.graph import COLUMN_STEP, Graph


def chain(graph: Graph, layers: list[tuple[str, dict]], start=None, x0: float = 0.0, y: float = 0.0):
    """Add ``layers`` in a row, each fed by the previous; returns the list of new nodes."""
    nodes, prev = [], start
    for k, (type_name, params) in enumerate(layers):
        n = graph.add_node(type_name, params, (x0 + k * COLUMN_STEP, y))
        if prev is not None:
            graph.connect(prev.id, n.id)
        nodes.append(n)
        prev = n
    return nodes


def mlp(hidden=(64, 64), activation: str = "ReLU") -> Graph:
    g = Graph()
    layers = [("Input", {})]
    for units in hidden:
        layers += [("Linear", {"units": units}), (activation, {})]
    layers += [("Linear", {"units": "auto"}), ("Output", {})]
    chain(g, layers)
    return g


def cnn() -> Graph:
    g = Graph()
    chain(g, [("Input", {}), ("Conv2d", {"out_channels": 16}), ("ReLU", {}), ("MaxPool2d", {}),
              ("Conv2d", {"out_channels": 32}), ("ReLU", {}), ("AdaptiveAvgPool2d", {}), ("Flatten", {}),
              ("Linear", {"units": "auto"}), ("Output", {})])
    return g


def residual_mlp(width: int = 64) -> Graph:
    """Input -> fc -> relu -> [fc -> relu -> fc] + skip -> relu -> fc(auto) -> Output."""
    g = Graph()
    inp, fc_in, relu_in = chain(g, [("Input", {}), ("Linear", {"units": width}), ("ReLU", {})])
    body = chain(g, [("Linear", {"units": width}), ("ReLU", {}), ("Linear", {"units": width})],
                 start=relu_in, x0=3 * COLUMN_STEP, y=-90)
    add = g.add_node("Add", {}, (6 * COLUMN_STEP, 0))
    g.connect(body[-1].id, add.id)
    g.connect(relu_in.id, add.id)  # the skip connection
    chain(g, [("ReLU", {}), ("Linear", {"units": "auto"}), ("Output", {})], start=add, x0=7 * COLUMN_STEP)
    return g


def lstm_classifier(steps: int = 8, features: int = 8, hidden: int = 64) -> Graph:
    """Reads each image row by row as a sequence (digits: 8 steps of 8 pixels)."""
    g = Graph()
    chain(g, [("Input", {}), ("Reshape", {"shape": (steps, features)}), ("LSTM", {"hidden_size": hidden}),
              ("Linear", {"units": "auto"}), ("Output", {})])
    return g


def two_branch_concat() -> Graph:
    g = Graph()
    (inp,) = chain(g, [("Input", {})])
    a = chain(g, [("Linear", {"units": 32}), ("ReLU", {})], start=inp, x0=COLUMN_STEP, y=-90)
    b = chain(g, [("Linear", {"units": 32}), ("Tanh", {})], start=inp, x0=COLUMN_STEP, y=90)
    cat = g.add_node("Concat", {}, (3 * COLUMN_STEP, 0))
    g.connect(a[-1].id, cat.id)
    g.connect(b[-1].id, cat.id)
    chain(g, [("Linear", {"units": "auto"}), ("Output", {})], start=cat, x0=4 * COLUMN_STEP)
    return g


TEMPLATES: dict[str, tuple[str, Callable[[], Graph]]] = {
    "mlp": ("MLP: two hidden layers of 64 with ReLU", mlp),
    "cnn": ("CNN: two conv blocks, global pooling and a classifier (for images)", cnn),
    "residual": ("Residual block: a skip connection joined by Add", residual_mlp),
    "concat": ("Two branches joined by Concat", two_branch_concat),
    "lstm": ("LSTM classifier: reads an 8×8 image row by row", lstm_classifier),
}
