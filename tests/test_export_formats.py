"""Every export format, for five trained models of distinct kinds and every bundled starter.

* ONNX: onnx.checker (full_check) passes and onnxruntime matches the LayerLab model (<= 1e-5) at
  batch sizes 1 and 7; one self-contained file; the metadata a reader needs is inside.
* .pt2 and TorchScript load in a fresh interpreter that never imports LayerLab, and match.
* the PyTorch package, in a fresh folder with ``python -I``, imports without LayerLab, loads its
  weights and matches (<= 1e-6); its data.py rebuilds the very tensors LayerLab used.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export_models import ALL
from engine.model_at import model_at

torch.set_num_threads(1)


def reference(exports, key):
    """Real inputs (batch 1 and 7) and the LayerLab model's outputs on them."""
    project = exports.project(key)
    ready = model_at(project, device="cpu")
    ds = ready.dataset
    pool = torch.cat([ds.x_val, ds.x_train])[:7]
    with torch.no_grad():
        return {"x1": pool[:1].numpy(), "x7": pool.numpy(), "y1": ready.module(pool[:1]).numpy(),
                "y7": ready.module(pool).numpy(), "x_val": ds.x_val.numpy(), "y_val": ds.y_val.numpy()}


# ----------------------------------------------------------------------------- ONNX
@pytest.mark.parametrize("key", ALL)
def test_onnx_checks_and_matches_onnxruntime(exports, key):
    result = exports.export(key, "onnx")
    path = result.path
    onnx.checker.check_model(str(path), full_check=True)
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(path.name) and p != path] == []  # no .data
    ref = reference(exports, key)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for b in ("1", "7"):
        got = session.run(None, {name: ref["x" + b]})[0]
        assert got.shape == ref["y" + b].shape
        assert np.abs(got - ref["y" + b]).max() <= 1e-5
    assert result.verification.runtime == "onnxruntime" and result.verification.max_abs_diff <= 1e-5


@pytest.mark.parametrize("key", ["model:cnn", "starter:digits-lstm"])
def test_onnx_carries_what_a_reader_needs(exports, key):
    result = exports.export(key, "onnx")
    model = onnx.load(str(result.path))
    meta = {p.key: json.loads(p.value) for p in model.metadata_props}
    ds = model_at(exports.project(key), device="cpu").dataset
    assert meta["layerlab.class_names"] == ds.class_names
    assert meta["layerlab.input_shape"] == list(ds.input_shape)
    assert meta["layerlab.normalization"] == ds.normalization.to_dict()
    from engine.labs.check import trained_epochs

    project = exports.project(key)
    assert meta["layerlab.layerlab_version"]
    assert meta["layerlab.epoch"] == (trained_epochs(project.history, project.run) or "current")
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a dynamic batch axis
    # no stack traces with this machine's paths; the layer a node came from is kept
    keys = {p.key for n in model.graph.node for p in n.metadata_props}
    assert keys == {"pkg.torch.onnx.name_scopes"}
    assert "Obtain model graph" in result.log or "torch.onnx" in result.log  # the chatter was captured


# ----------------------------------------------------------------------------- fresh interpreters
CHECKER = textwrap.dedent('''
    import importlib.util, json, sys
    import numpy as np, torch
    from safetensors.torch import load_file

    def load(path, name):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    out = {}
    for i, job in enumerate(json.loads(sys.argv[1])):
        ref = np.load(job["ref"])
        res = {}
        pt2 = torch.export.load(job["pt2"]).module()
        ts = torch.jit.load(job["ts"])
        model_py = load(job["package"] + "/model.py", f"model_{i}")
        manifest = json.load(open(job["package"] + "/layerlab.json"))
        net = getattr(model_py, manifest["model_class"])()
        net.load_state_dict(load_file(job["package"] + "/weights.safetensors"))
        net.eval()
        data_py = load(job["package"] + "/data.py", f"data_{i}")
        with torch.no_grad():
            for name, m in (("pt2", pt2), ("torchscript", ts), ("python", net)):
                res[name] = max(float(np.abs(m(torch.from_numpy(ref["x" + b])).numpy() - ref["y" + b]).max())
                                for b in ("1", "7"))
        x_val, y_val = data_py.load_splits()["val"]
        res["data_equal"] = bool(np.array_equal(x_val.numpy(), ref["x_val"]) and np.array_equal(y_val.numpy(), ref["y_val"]))
        out[job["key"]] = res
    out["_modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("engine", "gui", "layerlab", "resources"))
    print(json.dumps(out))
''')


@pytest.fixture(scope="module")
def fresh_interpreter_results(exports, tmp_path_factory):
    """pt2, TorchScript and the package of every model, checked in ONE `python -I` process that
    runs in an empty folder (nothing of LayerLab on its path)."""
    work = tmp_path_factory.mktemp("fresh")
    jobs = []
    for key in ALL:
        ref = reference(exports, key)
        ref_path = work / f"{key.replace(':', '_')}.npz"
        np.savez(ref_path, **ref)
        package = work / f"{key.replace(':', '_')}_pkg"
        shutil.copytree(exports.export(key, "python").path, package)  # a fresh folder, away from the export
        jobs.append({"key": key, "ref": str(ref_path), "pt2": str(exports.export(key, "pt2").path),
                     "ts": str(exports.export(key, "torchscript").path), "package": str(package)})
    script = work / "check.py"
    script.write_text(CHECKER)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([sys.executable, "-I", str(script), json.dumps(jobs)], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_fresh_interpreter_never_imported_layerlab(fresh_interpreter_results):
    assert fresh_interpreter_results["_modules"] == []


@pytest.mark.parametrize("key", ALL)
def test_pt2_and_torchscript_match_in_a_fresh_interpreter(fresh_interpreter_results, key):
    res = fresh_interpreter_results[key]
    assert res["pt2"] <= 1e-6
    assert res["torchscript"] <= 1e-6


@pytest.mark.parametrize("key", ALL)
def test_python_package_matches_in_a_fresh_interpreter(fresh_interpreter_results, key):
    res = fresh_interpreter_results[key]
    assert res["python"] <= 1e-6
    assert res["data_equal"]  # data.py rebuilt LayerLab's validation split exactly


@pytest.mark.parametrize("key", ["model:mlp", "model:cnn", "starter:iris-mlp"])
def test_pt2_stores_no_sample_of_the_data(exports, key):
    """ep.example_inputs held two real (standardised) rows: a user's CSV data inside the model file."""
    result = exports.export(key, "pt2")
    (example,), kwargs = torch.export.load(str(result.path)).example_inputs
    ds = model_at(exports.project(key), device="cpu").dataset
    assert kwargs == {} and example.dtype == ds.x_val.dtype and example.shape[1:] == ds.x_val.shape[1:]
    every_sample = torch.cat([ds.x_train, ds.x_val, ds.x_test]).flatten(1).double()
    assert torch.cdist(example.flatten(1).double(), every_sample).min() > 1e-3
    assert result.verification.samples == 8 and result.verification.unit == "real sample"


@pytest.mark.parametrize("fmt", ["torchscript", "pt2"])
def test_pt_and_pt2_carry_the_metadata_under_their_own_name(exports, fmt):
    """The .pt had no class names, preprocessing or input shape; both zips' root folder was the temp
    file's name (.model.pt.of5zwzy5.tmp/)."""
    import zipfile

    result = exports.export("model:cnn", fmt)
    extra = {"layerlab.json": ""}
    if fmt == "torchscript":
        with pytest.warns(DeprecationWarning):  # torch 2.13 deprecates TorchScript: every call warns
            torch.jit.load(str(result.path), _extra_files=extra)
    else:
        torch.export.load(str(result.path), extra_files=extra)
    meta = json.loads(extra["layerlab.json"])
    ds = model_at(exports.project("model:cnn"), device="cpu").dataset
    assert meta["class_names"] == ds.class_names and meta["input_shape"] == list(ds.input_shape)
    assert meta["preprocessing"]["steps"][0] == {"op": "divide", "by": 16.0}
    roots = {name.split("/")[0] for name in zipfile.ZipFile(result.path).namelist()}
    assert roots == {result.path.stem}
    assert sorted(p.name for p in result.path.parent.iterdir() if p.name.startswith("." + result.path.name)) == []


def test_labels_and_notes(exports):
    pt2 = exports.export("starter:moons-mlp", "pt2")
    assert any("inference only" in n and ".train()" in n for n in pt2.notes)
    ts = exports.export("starter:moons-mlp", "torchscript")
    assert any("legacy" in n for n in ts.notes)
    assert "deprecated" in ts.log  # torch's own warning, captured rather than printed


def test_model_py_reads_like_hand_written_code(exports):
    text = (exports.export("model:residual", "python").path / "model.py").read_text()
    assert "def __init__(self):" in text and "self.fc1 = nn.Linear(2, 24)" in text
    assert "add1 = fc3 + tanh1" in text and "getattr(self" not in text and "= None" not in text
    assert "concat1 = torch.cat([add1, sigmoid1], dim=1)" in text
    lstm = (exports.export("model:lstm", "python").path / "model.py").read_text()
    assert "class Recurrent(nn.Module):" in lstm and "class Reshape(nn.Module):" in lstm
    assert "self.gru1 = Recurrent('GRU', 8, 12, bidirectional=True, last_step=False)" in lstm


# ----------------------------------------------------------------------------- safetensors
def test_safetensors_has_weights_and_the_graph(exports):
    from safetensors import safe_open

    from engine.graph import Graph

    result = exports.export("model:bn_dropout", "safetensors")
    project = exports.project("model:bn_dropout")
    with safe_open(str(result.path), framework="pt") as f:
        header = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    assert Graph.from_dict(json.loads(header["layerlab.graph"])) == project.graph
    assert set(tensors) == set(project.weights)
    assert all(torch.equal(tensors[k], project.weights[k]) for k in tensors)


def test_tied_and_non_contiguous_tensors_are_saved(tmp_path):
    from safetensors.torch import load_file, save_file

    from engine.export.common import safe_state_dict

    shared = torch.randn(4, 6)
    state = {"a": shared, "b": shared, "t": shared.t(), "row": shared[1], "empty": torch.zeros(0)}
    with pytest.raises(Exception):
        save_file(state, str(tmp_path / "plain.safetensors"))  # what save_file does with them
    tensors, tied = safe_state_dict(state)
    save_file(tensors, str(tmp_path / "ok.safetensors"))
    back = load_file(str(tmp_path / "ok.safetensors"))
    assert all(torch.equal(back[k], state[k]) for k in state)
    assert tied == {"b": "a"}


# ----------------------------------------------------------------------------- refusals and epochs
def test_a_graph_with_errors_is_refused_with_every_error(tmp_path):
    from engine.export import ExportRefused, export_project
    from engine.project import load_starter

    project = load_starter("moons-mlp")
    project.weights = {}
    fc1 = project.graph.node_by_name("fc1")
    project.graph.add_node("Tanh", name="loose")  # a layer with no input
    for e in project.graph.out_edges(fc1.id):
        project.graph.disconnect(e.id)  # relu1 loses its input
    with pytest.raises(ExportRefused) as info:
        export_project(project, "onnx", tmp_path / "x.onnx")
    assert len(info.value.errors) == 2
    assert "2 errors" in str(info.value) and "'relu1'" in str(info.value) and "'loose'" in str(info.value)
    assert not (tmp_path / "x.onnx").exists()


def test_epoch_k_exports_the_weights_the_timeline_kept(exports, tmp_path):
    from engine.export import export_project
    from engine.project import load_starter

    project = exports.project("starter:iris-mlp")
    old = {k: v + 1.0 for k, v in project.weights.items()}
    timeline = load_starter("iris-mlp")
    timeline.weights, timeline.checkpoints = project.weights, {3: old}
    result = export_project(timeline, "python", tmp_path / "pkg", epoch=3)
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "pkg" / "weights.safetensors"))
    assert all(torch.equal(saved[k], old[k]) for k in old)
    assert "timeline epoch 3" in (tmp_path / "pkg" / "README.md").read_text()
    assert result.verification.max_abs_diff <= 1e-6
    from engine.model_at import NoSuchEpoch

    with pytest.raises(NoSuchEpoch, match="kept: 3"):
        export_project(timeline, "onnx", tmp_path / "x.onnx", epoch=7)
