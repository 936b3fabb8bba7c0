"""The models the export and import tests share: five small projects of distinct kinds, trained briefly.

``build(kind)`` returns a Project with weights after one short run; the starters come from
``resources/starters/*.json`` (globbed: the list may grow) and get seeded fresh weights.
"""
from __future__ import annotations

from pathlib import Path

import torch

from engine.graph import Graph
from engine.project import Project, load_starter

LABS = Path(__file__).resolve().parents[1] / "resources" / "starters"
STARTERS = sorted(p.stem for p in LABS.glob("*.json"))


def _chain(g: Graph, *layers):
    """Connect ``(type, params)`` layers one after the other from the last node; returns the last node."""
    prev = None
    for item in layers:
        node = item if not isinstance(item, tuple) else g.add_node(item[0], item[1] if len(item) > 1 else None)
        if prev is not None:
            g.connect(prev.id, node.id)
        prev = node
    return prev


def mlp() -> Project:
    g = Graph()
    _chain(g, ("Input",), ("Linear", {"units": 32}), ("ReLU",), ("Linear", {"units": 16}), ("GELU",),
           ("Linear", {"units": "auto"}), ("Output",))
    return Project(graph=g, data={"source": "moons", "n_samples": 400}, name="Test MLP",
                   training={"epochs": 2, "batch_size": 32, "lr": 0.01, "seed": 0})


def cnn() -> Project:
    g = Graph()
    _chain(g, ("Input",), ("Conv2d", {"out_channels": 8, "kernel_size": 3, "padding": 1}), ("BatchNorm2d",),
           ("SiLU",), ("MaxPool2d", {"kernel_size": 2}), ("Conv2d", {"out_channels": 12, "kernel_size": 3, "padding": 0}),
           ("LeakyReLU", {"negative_slope": 0.1}), ("AvgPool2d", {"kernel_size": 2}), ("Flatten",),
           ("Linear", {"units": "auto"}), ("Output",))
    return Project(graph=g, data={"source": "digits"}, name="Test CNN",
                   training={"epochs": 1, "batch_size": 64, "lr": 0.003, "seed": 0})


def residual() -> Project:
    """A residual block (Add) and a Concat of two branches."""
    g = Graph()
    inp = g.add_node("Input")
    fc1 = _chain(g, inp, ("Linear", {"units": 24}), ("Tanh",))
    fc2 = _chain(g, fc1, ("Linear", {"units": 24}), ("ReLU",), ("Linear", {"units": 24}))
    add = g.add_node("Add")
    g.connect(fc2.id, add.id)
    g.connect(fc1.id, add.id)
    side = _chain(g, inp, ("Linear", {"units": 8}), ("Sigmoid",))
    cat = g.add_node("Concat", {"dim": 0})
    g.connect(add.id, cat.id)
    g.connect(side.id, cat.id)
    _chain(g, cat, ("ReLU",), ("Linear", {"units": "auto"}), ("Output",))
    return Project(graph=g, data={"source": "spirals", "n_samples": 600, "n_classes": 3}, name="Test Residual",
                   training={"epochs": 2, "batch_size": 32, "lr": 0.005, "seed": 0})


def lstm() -> Project:
    """Digits read row by row: a bidirectional GRU over the sequence, then an LSTM's last step."""
    g = Graph()
    _chain(g, ("Input",), ("Reshape", {"shape": (8, 8)}),
           ("GRU", {"hidden_size": 12, "bidirectional": True, "output": "sequence"}),
           ("LSTM", {"hidden_size": 16}), ("Linear", {"units": "auto"}), ("Output",))
    return Project(graph=g, data={"source": "digits"}, name="Test LSTM",
                   training={"epochs": 1, "batch_size": 64, "lr": 0.005, "seed": 0})


def batchnorm_dropout() -> Project:
    g = Graph()
    _chain(g, ("Input",), ("Linear", {"units": 32}), ("BatchNorm1d",), ("ReLU",), ("Dropout", {"p": 0.3}),
           ("Linear", {"units": 16}), ("BatchNorm1d", {"momentum": 0.2}), ("Tanh",), ("Dropout", {"p": 0.1}),
           ("Linear", {"units": "auto"}), ("Output",))
    return Project(graph=g, data={"source": "wine"}, name="Test BatchNorm Dropout",
                   training={"epochs": 3, "batch_size": 16, "lr": 0.01, "seed": 0})


KINDS = {"mlp": mlp, "cnn": cnn, "residual": residual, "lstm": lstm, "bn_dropout": batchnorm_dropout}
ALL = [f"model:{k}" for k in KINDS] + [f"starter:{s}" for s in STARTERS]


def trained(project: Project) -> Project:
    """The project after one short training run (its weights, history and timeline set)."""
    from engine.run import execute, prepare_run

    torch.set_num_threads(1)
    prepared = prepare_run(project)
    trainer, _ = execute(prepared)
    project.weights = {k: v.detach().clone() for k, v in prepared.compiled.module.state_dict().items()}
    project.history = trainer.history
    norm = prepared.dataset.normalization
    project.normalization = norm.to_dict() if norm is not None else None
    project.training = prepared.config.to_dict() | {"epochs": prepared.config.epochs}
    return project


def seeded(project: Project) -> Project:
    """The starter with the fresh weights its seed gives (no training needed to export)."""
    from engine.run import prepare_run

    prepared = prepare_run(project)
    project.weights = {k: v.detach().clone() for k, v in prepared.compiled.module.state_dict().items()}
    return project


def build(key: str) -> Project:
    kind, name = key.split(":", 1)
    if kind == "model":
        return trained(KINDS[name]())
    return seeded(load_starter(name))


class ExportCache:
    """Each project built once and each (project, format) exported once per test session: ONNX
    export takes 1-8 s here, so the tests share the files."""

    SUFFIX = {"onnx": ".onnx", "pt2": ".pt2", "safetensors": ".safetensors", "torchscript": ".pt", "python": ""}

    def __init__(self, root: Path):
        self.root = Path(root)
        self._projects: dict = {}
        self._results: dict = {}

    def project(self, key: str) -> Project:
        """The shared project: read it, never change it (use ``copy`` for that)."""
        if key not in self._projects:
            self._projects[key] = build(key)
        return self._projects[key]

    def copy(self, key: str) -> Project:
        """A project of one's own to edit (weights copied too)."""
        p = self.project(key)
        weights = {k: v.clone() for k, v in p.weights.items()}
        checkpoints = {e: {k: v.clone() for k, v in w.items()} for e, w in p.checkpoints.items()}
        return Project.from_dict(p.to_dict(), weights, checkpoints)

    def path(self, key: str, fmt: str) -> Path:
        return self.root / (key.replace(":", "_") + ("_package" if fmt == "python" else "") + self.SUFFIX[fmt])

    def export(self, key: str, fmt: str):
        from engine.export import export_project

        if (key, fmt) not in self._results:
            torch.set_num_threads(1)
            self._results[key, fmt] = export_project(self.project(key), fmt, self.path(key, fmt))
        return self._results[key, fmt]
