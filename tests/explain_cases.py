"""Data with a known answer for the explanation tests, built at test time, and tiny trainers.

A *planted-patch* image is 28x28 low noise with (maybe) a bright square inside one quadrant:
the map of a method that really looks at the model must light up that square.
"""
from __future__ import annotations

import numpy as np
import torch

from engine.compile import compile_graph
from engine.data.dataset import Dataset
from engine.graph import Graph
from engine.spec import InferContext
from engine.templates import chain

SIZE, PATCH = 28, 7
HALF = SIZE // 2


def planted_patches(n: int, seed: int, present_fraction: float = 0.5):
    """Images (n, 1, 28, 28), whether each has a patch, its quadrant (0..3: TL, TR, BL, BR) and its
    mask (n, 28, 28).  Images without a patch get quadrant -1 and an empty mask."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 0.25, size=(n, 1, SIZE, SIZE)).astype(np.float32)
    present = rng.random(n) < present_fraction
    quadrant = np.where(present, rng.integers(0, 4, n), -1)
    mask = np.zeros((n, SIZE, SIZE), dtype=bool)
    for i in np.flatnonzero(present):
        q = quadrant[i]
        top = (q // 2) * HALF + rng.integers(0, HALF - PATCH + 1)
        left = (q % 2) * HALF + rng.integers(0, HALF - PATCH + 1)
        mask[i, top:top + PATCH, left:left + PATCH] = True
    x[:, 0][mask] = rng.uniform(0.85, 1.0, size=int(mask.sum())).astype(np.float32)
    return x, present, quadrant, mask


def quadrant_of(row: int, col: int) -> int:
    return (row >= HALF) * 2 + (col >= HALF)


def make_dataset(x_train, y_train, x_test, y_test, class_names: list[str], feature_names=(), task="classification"):
    """A Dataset with exactly these train and test splits (no validation split, no standardisation),
    so a test knows which planted sample sits at which test index."""
    def t(a, dtype):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)

    ydt = torch.int64 if task == "classification" else torch.float32
    return Dataset(name="planted", task=task, x_train=t(x_train, torch.float32), y_train=t(y_train, ydt),
                   x_val=t(x_train[:0], torch.float32), y_val=t(y_train[:0], ydt),
                   x_test=t(x_test, torch.float32), y_test=t(y_test, ydt),
                   input_shape=tuple(x_train.shape[1:]),
                   n_outputs=len(class_names) if task == "classification" else int(np.asarray(y_train).reshape(
                       len(y_train), -1).shape[1]),
                   class_names=list(class_names) if task == "classification" else [],
                   feature_names=list(feature_names), spec={"source": "npz"})


def cnn_graph(head: str = "gap") -> Graph:
    """conv-relu-pool-conv-relu, then global average pooling ("gap") or flatten ("flatten"), then Linear."""
    g = Graph()
    layers = [("Input", {}), ("Conv2d", {"out_channels": 8, "kernel_size": 3, "padding": 1}), ("ReLU", {}),
              ("MaxPool2d", {"kernel_size": 2}), ("Conv2d", {"out_channels": 16, "kernel_size": 3, "padding": 1}),
              ("ReLU", {})]
    if head == "gap":
        layers += [("AdaptiveAvgPool2d", {"output_size": 1}), ("Flatten", {})]
    else:
        layers += [("MaxPool2d", {"kernel_size": 2}), ("Flatten", {})]
    layers += [("Linear", {"units": "auto"}), ("Output", {})]
    chain(g, layers)
    return g


def train_classifier(graph: Graph, dataset, epochs: int, lr: float = 3e-3, seed: int = 0, batch: int = 32):
    """A compiled fx model trained with a plain loop (fast and deterministic); returns it in eval mode."""
    ctx = InferContext(tuple(dataset.input_shape), dataset.n_outputs, dataset.task)
    compiled = compile_graph(graph, ctx, seed=seed)
    model = compiled.module
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    x, y = dataset.x_train, dataset.y_train
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(batch):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
    model.eval()
    return compiled


def accuracy(module, x, y) -> float:
    with torch.no_grad():
        return float((module(x).argmax(1) == y).float().mean())


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))
