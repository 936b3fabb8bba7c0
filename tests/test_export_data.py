"""The package's data.py prepares data exactly as LayerLab did: the split (its seed), the
standardisation fitted on the training split, the category encodings of a CSV file."""
from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from engine.data import load_dataset
from engine.export import export_project
from engine.graph import Graph
from engine.project import Project
from engine.run import prepare_run

torch.set_num_threads(1)


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def csv_package(tmp_path_factory):
    root = tmp_path_factory.mktemp("csvdata")
    rng = np.random.default_rng(0)
    with open(root / "flowers.csv", "w", newline="") as f:
        w = csv.writer(f, delimiter=";")
        w.writerow(["id", "length", "width", "colour", "kind"])
        for i in range(120):
            colour = ["red", "blue", "white"][i % 3]
            kind = ["rose", "tulip"][(i // 3 + (colour == "red")) % 2]
            w.writerow([f"n{i}", f"{rng.normal(5, 1):.3f}".replace(".", ","), f"{rng.normal(2, 0.5):.3f}".replace(".", ","),
                        colour, kind])
    g = Graph()
    nodes = [g.add_node("Input"), g.add_node("Linear", {"units": 8}), g.add_node("ReLU"),
             g.add_node("Linear", {"units": "auto"}), g.add_node("Output")]
    for a, b in zip(nodes, nodes[1:]):
        g.connect(a.id, b.id)
    data = {"source": "csv", "path": "flowers.csv", "target": "kind", "ignore": ["id"], "val_fraction": 0.25,
            "split_seed": 7}
    project = Project(graph=g, data=data, name="Flowers", training={"epochs": 1, "seed": 0})
    prepared = prepare_run(project, base_dir=str(root))
    project.weights = prepared.compiled.module.state_dict()
    result = export_project(project, "python", root / "pkg", base_dir=str(root))
    return root, project, prepared.dataset, result


def test_csv_encoding_is_reproduced(csv_package):
    root, project, dataset, result = csv_package
    data = _load(result.path / "data.py", "csv_data")
    assert data.FEATURE_NAMES == ["length", "width", "colour=blue", "colour=red", "colour=white"]
    assert data.CSV["delimiter"] == ";" and data.CSV["decimal_comma"] and data.CSV["header"]
    x, y = data.read_csv(str(root / "flowers.csv"))
    raw = data.load_raw()
    assert np.array_equal(x, raw["x"]) and np.array_equal(y, raw["y"])
    assert data.CLASS_NAMES == dataset.class_names == ["rose", "tulip"]


def test_splits_and_standardisation_are_layerlabs(csv_package):
    _, project, dataset, result = csv_package
    data = _load(result.path / "data.py", "csv_data2")
    assert data.SPLIT["split_seed"] == 7 and data.NORMALIZATION == dataset.normalization.to_dict()
    splits = data.load_splits()
    for name in ("train", "val", "test"):
        x, y = splits[name]
        assert torch.equal(x, dataset.split(name)[0]) and torch.equal(y, dataset.split(name)[1])
    refit = data.fit_normalization(data.load_raw()["x"][data.split_indices(120, 0.25, 0.0, 7, data.targets(
        data.load_raw()["y"]))[0]])
    assert np.allclose(refit["mean"], dataset.normalization.mean) and np.allclose(refit["std"], dataset.normalization.std)


def test_predict_py_reads_a_new_csv_in_a_fresh_interpreter(csv_package):
    root, _, _, result = csv_package
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-I", str(result.path / "predict.py"), "--csv", str(root / "flowers.csv"),
                           "--show", "3"], capture_output=True, text=True, cwd=root, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert all(line in ("rose", "tulip") for line in lines[:3])
    assert lines[-1].startswith("accuracy ") and lines[-1].endswith("on 120 samples")


def test_generated_data_has_the_same_rows(exports):
    project = exports.project("starter:spirals-residual")
    folder = exports.export("starter:spirals-residual", "python").path
    data = _load(folder / "data.py", "spiral_data")
    dataset = load_dataset(project.data)
    x_train, y_train = data.load_splits()["train"]
    assert torch.equal(x_train, dataset.x_train) and torch.equal(y_train, dataset.y_train)
    assert data.SOURCE == project.data
