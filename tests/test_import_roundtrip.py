"""Export -> import gives back an equivalent graph: the same layer types, params and connections,
and the same outputs, for every bundled starter and the five test models.

Through the PyTorch package (model.py traced with torch.fx), through ONNX (LayerLab's own converter)
and through the safetensors file (graph in the header).
"""
from __future__ import annotations

import pytest
import torch

from export_models import ALL, STARTERS
from engine.importers import import_model
from engine.model_at import model_at
from engine.run import context_for

torch.set_num_threads(1)


def resolved(project, dataset) -> dict:
    """Each node by name: (type, params with 'auto' resolved to the number it means, input names)."""
    from engine.validate import analyze

    analysis = analyze(project.graph, context_for(dataset))
    out = {}
    for node in project.graph.nodes:
        params = dict(node.params)
        if params.get("units") == "auto":
            params["units"] = analysis.nodes[node.id].shape[-1]
        inputs = [project.graph.node(e.src).name for e in project.graph.in_edges(node.id)]
        out[node.name] = (node.type, params, inputs)
    return out


def structure(project, dataset) -> list:
    """The graph without names: (type, params, the *positions* of its inputs in topological order)."""
    from engine.validate import analyze

    analysis = analyze(project.graph, context_for(dataset))
    order = list(analysis.order)
    rows = []
    for nid in order:
        node = project.graph.node(nid)
        params = dict(node.params)
        if params.get("units") == "auto":
            params["units"] = analysis.nodes[nid].shape[-1]
        rows.append((node.type, params, [order.index(e.src) for e in project.graph.in_edges(nid)]))
    return rows


def same_outputs(original, imported) -> float:
    a, b = model_at(original, device="cpu"), model_at(imported, device="cpu")
    x = torch.cat([a.dataset.x_val, a.dataset.x_train])[:16]
    with torch.no_grad():
        return float((a.module(x) - b.module(x)).abs().max())


@pytest.mark.parametrize("key", ALL)
def test_python_package_round_trip(exports, key):
    original = exports.project(key)
    result = import_model(exports.export(key, "python").path)
    imported = result.project
    dataset = model_at(original, device="cpu").dataset
    assert resolved(imported, dataset) == resolved(original, dataset)  # names, types, params, connections
    assert {n.name: n.params for n in imported.graph.nodes} == {n.name: n.params for n in original.graph.nodes}
    assert {n.name: n.pos for n in imported.graph.nodes} == {n.name: n.pos for n in original.graph.nodes}
    assert imported.data == original.data
    assert f"Data: '{original.data['source']}', as the file records it" in result.summary()  # it had said nothing
    # what the model was trained to see (some starters, e.g. the Fashion-MNIST ones, are not standardised)
    assert imported.normalization == (dataset.normalization.to_dict() if dataset.normalization else None)
    assert same_outputs(original, imported) == 0.0
    assert result.max_abs_diff == 0.0


@pytest.mark.parametrize("key", [f"starter:{s}" for s in STARTERS])
def test_onnx_round_trip_of_every_starter(exports, key):
    original = exports.project(key)
    result = import_model(exports.export(key, "onnx").path)
    dataset = model_at(original, device="cpu").dataset
    assert structure(result.project, dataset) == structure(original, dataset)
    names = {n.name for n in original.graph.nodes if n.type not in ("Input", "Output")}
    assert names == {n.name for n in result.project.graph.nodes if n.type not in ("Input", "Output")}
    assert result.project.data == original.data
    assert f"Data: '{original.data['source']}', as the file records it" in result.summary()
    # and its training settings: a re-imported model had trained on with the defaults (lr 0.001)
    assert result.project.training == original.training
    assert same_outputs(original, result.project) <= 1e-5


@pytest.mark.parametrize("key", ["model:residual", "model:lstm", "model:cnn", "model:mlp"])
def test_onnx_round_trip_of_the_models(exports, key):
    """BatchNorm is folded into the convolution by the ONNX optimiser and dropout vanishes at
    inference, so these compare outputs (and layer types where nothing was folded)."""
    original = exports.project(key)
    result = import_model(exports.export(key, "onnx").path)
    assert same_outputs(original, result.project) <= 1e-5
    kept = [n.type for n in original.graph.nodes if n.type not in ("BatchNorm2d", "BatchNorm1d", "Dropout")]
    assert sorted(n.type for n in result.project.graph.nodes) == sorted(kept)


@pytest.mark.parametrize("key", ["starter:digits-lstm", "model:bn_dropout"])
def test_safetensors_round_trip(exports, key):
    original = exports.project(key)
    result = import_model(exports.export(key, "safetensors").path)
    assert result.project.graph == original.graph
    assert result.project.training == original.training
    assert f"Data: '{original.data['source']}', as the file records it" in result.summary()
    assert all(torch.equal(result.project.weights[k], original.weights[k]) for k in original.weights)
    assert same_outputs(original, result.project) == 0.0


def test_imported_project_saves_and_reopens(exports, tmp_path):
    from engine.project import load_project, save_project

    result = import_model(exports.export("starter:digits-cnn", "onnx").path)
    save_project(tmp_path / "imported.layerlab", result.project)
    again = load_project(tmp_path / "imported.layerlab")
    assert again.graph == result.project.graph
    xs = [n.pos[0] for n in again.graph.nodes]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)  # a chain, laid out left to right
    assert same_outputs(result.project, again) == 0.0


def test_training_settings_a_file_carries_are_checked_as_a_projects_are():
    from engine.importers import imported_training

    notes: list = []
    assert imported_training({"lr": 0.01, "epochs": 5}, notes) == {"lr": 0.01, "epochs": 5} and notes == []
    assert imported_training({"epochs": -3, "lr": 0.01}, notes) == {}
    assert len(notes) == 1 and "left out" in notes[0] and "epochs" in notes[0]
    assert imported_training({"seed": [1, 2]}, notes) == {} and imported_training(None, notes) == {}
