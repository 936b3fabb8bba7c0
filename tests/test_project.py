"""Project files: round trips, atomic saves, clear errors for every kind of bad file, no pickle anywhere,
and bundled starters that open and analyse cleanly."""
from __future__ import annotations

import ast
import io
import json
import os
import zipfile
from pathlib import Path

import pytest
import torch

import engine.project as project_mod
from engine import templates
from engine.compile import compile_graph
from engine.errors import ProjectFileError
from engine.graph import GRAPH_VERSION
from engine.project import (PROJECT_VERSION, Project, list_starters, load_project, load_starter, project_bytes,
                            save_project)
from engine.spec import InferContext
from engine.validate import analyze

ENGINE = Path(__file__).resolve().parents[1] / "engine"


def trained_project() -> Project:
    g = templates.cnn()
    compiled = compile_graph(g, InferContext((1, 8, 8), 10, "classification"))
    model = compiled.module
    model.train()
    model(torch.randn(4, 1, 8, 8))  # a forward pass, so nothing is still at its initial value by accident
    return Project(graph=g, data={"source": "digits"}, training={"epochs": 3, "lr": 0.01}, name="Digits CNN",
                   description="a test", normalization={"mean": [0.5], "std": [0.25]},
                   history=[{"epoch": 1, "loss": 1.5}, {"epoch": 2, "loss": 0.9}],
                   weights={k: v.detach().clone() for k, v in model.state_dict().items()})


def assert_one_line_error_for(path, exc: ProjectFileError):
    msg = str(exc)
    assert "\n" not in msg, msg
    assert msg.startswith(str(path)), msg
    assert len(msg) > len(str(path)) + 10, msg


# ----------------------------------------------------------------------------- round trips
def test_bundle_round_trip_with_weights(tmp_path):
    p = trained_project()
    path = tmp_path / "model.layerlab"
    save_project(path, p)
    assert zipfile.is_zipfile(path)
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == ["project.json", "weights.safetensors"]
    q = load_project(path)
    assert q.to_dict() == p.to_dict()
    assert q.graph == p.graph
    assert set(q.weights) == set(p.weights)
    for k, v in p.weights.items():
        assert q.weights[k].dtype == v.dtype and torch.equal(q.weights[k], v), k
    # The weights load straight back into a freshly compiled model.
    model = compile_graph(q.graph, InferContext((1, 8, 8), 10, "classification")).module
    model.load_state_dict(q.weights)


def test_bundle_without_weights(tmp_path):
    p = Project(graph=templates.mlp(), name="untrained")
    path = tmp_path / "m.layerlab"
    save_project(path, p)
    q = load_project(path)
    assert q.weights is None and q.to_dict() == p.to_dict()


def test_json_round_trip(tmp_path):
    p = trained_project()
    path = tmp_path / "model.json"
    save_project(path, p)
    doc = json.loads(path.read_text())
    assert doc["format"] == "layerlab.project" and doc["version"] == PROJECT_VERSION
    q = load_project(path)
    assert q.to_dict() == p.to_dict()
    assert q.weights is None  # a JSON document holds no weights


def test_a_bare_graph_document_opens_as_a_project(tmp_path):
    g = templates.residual_mlp()
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(g.to_dict()))
    assert load_project(path).graph == g


def test_saving_twice_replaces_the_file(tmp_path):
    path = tmp_path / "m.layerlab"
    save_project(path, Project(graph=templates.mlp(), name="one"))
    save_project(path, Project(graph=templates.cnn(), name="two"))
    assert load_project(path).name == "two"
    assert os.listdir(tmp_path) == ["m.layerlab"]


def test_save_creates_missing_folders(tmp_path):
    path = tmp_path / "a" / "b" / "m.layerlab"
    g = templates.mlp()
    save_project(path, Project(graph=g))
    assert load_project(path).graph == g


# ----------------------------------------------------------------------------- atomic saves
@pytest.mark.parametrize("suffix", [".layerlab", ".json"])
def test_a_failing_save_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch, suffix):
    path = tmp_path / f"work{suffix}"
    save_project(path, Project(graph=templates.mlp(), name="precious"))
    old_bytes = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        save_project(path, trained_project())
    monkeypatch.undo()
    assert path.read_bytes() == old_bytes
    assert os.listdir(tmp_path) == [path.name]
    assert load_project(path).name == "precious"


def test_a_save_failing_mid_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "work.layerlab"
    save_project(path, Project(graph=templates.mlp(), name="precious"))
    old_bytes = path.read_bytes()

    def fail(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError):
        save_project(path, trained_project())
    monkeypatch.undo()
    assert path.read_bytes() == old_bytes and os.listdir(tmp_path) == [path.name]


# ----------------------------------------------------------------------------- bad files
def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _bad_files():
    good = project_bytes(trained_project())
    good_doc = Project(graph=templates.mlp()).to_dict()
    newer = dict(good_doc, version=PROJECT_VERSION + 1)
    newer_graph = dict(good_doc, graph=dict(good_doc["graph"], version=GRAPH_VERSION + 1))
    unknown_layer = json.loads(json.dumps(good_doc))
    unknown_layer["graph"]["nodes"][1]["type"] = "Hyperdrive"
    bad_param = json.loads(json.dumps(good_doc))
    bad_param["graph"]["nodes"][1]["params"]["units"] = -4
    return {
        "corrupt": (b"\x00\x13\x37garbage" * 50, "neither"),
        "corrupt-zip-body": (good[:4] + os.urandom(len(good) - 4), "corrupt"),
        "truncated": (good[: len(good) // 2], "corrupt or truncated"),
        "foreign-zip": (_zip({"readme.txt": b"hello"}), "not a LayerLab project"),
        "bad-json-in-zip": (_zip({"project.json": b"{not json"}), "not valid JSON"),
        "bad-weights-in-zip": (_zip({"project.json": json.dumps(good_doc).encode(),
                                     "weights.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage"}), "weights"),
        "foreign-json": (json.dumps({"hello": "world"}).encode(), "not a LayerLab project"),
        "json-list": (b"[1, 2, 3]", "not a LayerLab project"),
        "empty": (b"", "the file is empty"),  # it had said "neither a bundle nor JSON"
        "utf16": ("{}".encode("utf-16"), "neither"),
        "newer": (json.dumps(newer).encode(), "newer"),
        "newer-graph": (json.dumps(newer_graph).encode(), "newer"),
        "newer-in-zip": (_zip({"project.json": json.dumps(newer).encode()}), "newer"),
        "unknown-layer": (json.dumps(unknown_layer).encode(), "Hyperdrive"),
        "bad-param": (json.dumps(bad_param).encode(), "units"),
        "bad-field": (json.dumps(dict(good_doc, history=5)).encode(), "invalid"),
    }


BAD = _bad_files()


@pytest.mark.parametrize("kind", sorted(BAD))
@pytest.mark.parametrize("suffix", [".layerlab", ".json"])
def test_bad_files_are_one_line_project_file_errors(tmp_path, kind, suffix):
    data, words = BAD[kind]
    path = tmp_path / f"{kind}{suffix}"
    path.write_bytes(data)
    with pytest.raises(ProjectFileError) as info:
        load_project(path)
    assert_one_line_error_for(path, info.value)
    assert words in str(info.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.layerlab"
    with pytest.raises(ProjectFileError, match="no such file") as info:
        load_project(path)
    assert_one_line_error_for(path, info.value)


def test_a_folder_is_not_a_project(tmp_path):
    with pytest.raises(ProjectFileError, match="folder") as info:
        load_project(tmp_path)
    assert_one_line_error_for(tmp_path, info.value)


def test_every_prefix_of_a_bundle_fails_cleanly(tmp_path):
    """Cut anywhere, a bundle gives a ProjectFileError (never another exception, never a wrong project)."""
    good = project_bytes(trained_project())
    path = tmp_path / "cut.layerlab"
    for n in sorted({0, 1, 3, 4, 30, 100, len(good) // 3, len(good) // 2, len(good) - 22, len(good) - 1}):
        path.write_bytes(good[:n])
        with pytest.raises(ProjectFileError) as info:
            load_project(path)
        assert_one_line_error_for(path, info.value)


# ----------------------------------------------------------------------------- no pickle
_PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve"}


def _pickle_uses(path: Path) -> list[str]:
    """Code (not comments or docstrings) in ``path`` that could unpickle."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.parent.name}/{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [f"{where} import {a.name}" for a in node.names if a.name.split(".")[0] in _PICKLE_MODULES]
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in _PICKLE_MODULES:
                found.append(f"{where} from {node.module} import ...")
            if node.module == "torch" and any(a.name == "load" for a in node.names):
                found.append(f"{where} from torch import load")
        elif isinstance(node, ast.Name) and node.id in _PICKLE_MODULES:
            found.append(f"{where} uses {node.id}")
        elif isinstance(node, ast.Call):
            func = ast.unparse(node.func)
            kwargs = {k.arg: k.value for k in node.keywords}
            if func in ("torch.load", "torch.serialization.load"):
                wo = kwargs.get("weights_only")
                if not (isinstance(wo, ast.Constant) and wo.value is True):
                    found.append(f"{where} {func}(...) without weights_only=True")
            allow = kwargs.get("allow_pickle")
            if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
                found.append(f"{where} {func}(..., allow_pickle=...)")
            if func.endswith("read_pickle") or func.endswith(".loads") and func.split(".")[0] in _PICKLE_MODULES:
                found.append(f"{where} {func}(...)")
    return found


def test_no_pickle_in_the_engine():
    files = sorted(ENGINE.rglob("*.py"))
    assert ENGINE / "project.py" in files
    problems = [p for f in files for p in _pickle_uses(f)]
    assert problems == [], "\n".join(problems)


def test_the_pickle_scanner_finds_what_it_should(tmp_path):
    src = ("import pickle\nimport torch\nimport numpy as np\n"
           "a = torch.load('x')\nb = torch.load('x', weights_only=False)\nc = torch.load('x', weights_only=True)\n"
           "d = np.load('x', allow_pickle=True)\ne = pickle.loads(b'')\n# pickle in a comment is fine\n")
    probe = tmp_path / "probe.py"
    probe.write_text(src)
    text = "\n".join(_pickle_uses(probe))
    assert "import pickle" in text
    assert text.count("without weights_only=True") == 2
    assert "allow_pickle" in text
    assert "uses pickle" in text
    assert ":9" not in text  # the comment line


def test_bundles_hold_no_pickle(tmp_path):
    path = tmp_path / "m.layerlab"
    save_project(path, trained_project())
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            data = z.read(name)
            assert not data.startswith(b"\x80"), f"{name} looks like a pickle"
            assert b"torch._utils" not in data and b"_rebuild_tensor" not in data


# ----------------------------------------------------------------------------- starters
CONTEXTS = {
    "moons": InferContext((2,), 2, "classification"),
    "digits": InferContext((1, 8, 8), 10, "classification"),
    "fashion_mnist": InferContext((1, 28, 28), 10, "classification"),
    "iris": InferContext((4,), 3, "classification"),
    "sine": InferContext((1,), 1, "regression"),
    "spirals": InferContext((2,), 3, "classification"),
}


def test_list_starters():
    starters = list_starters()
    names = [s["name"] for s in starters]
    assert names == sorted(names) and len(names) >= 5
    assert project_mod.DEFAULT_STARTER in names
    for s in starters:
        assert s["title"] and s["description"] and s["data"] in CONTEXTS, s


@pytest.mark.parametrize("name", [s["name"] for s in list_starters()])
def test_every_starter_loads_analyses_and_runs(name):
    p = load_starter(name)
    ctx = CONTEXTS[p.data["source"]]
    a = analyze(p.graph, ctx)
    assert a.ok, [str(i) for i in a.errors]
    assert a.warnings == [], [str(i) for i in a.warnings]
    model = compile_graph(p.graph, ctx, a).module
    out = model(torch.randn(4, *ctx.input_shape))
    assert out.shape == (4, ctx.n_outputs)
    # A starter survives a save and a load unchanged.
    assert Project.from_dict(json.loads(json.dumps(p.to_dict()))).to_dict() == p.to_dict()


def test_default_starter_and_unknown_starter():
    assert load_starter().graph.nodes
    with pytest.raises(ProjectFileError, match="moons-mlp"):
        load_starter("no-such-starter")


def test_a_name_becomes_a_file_stem_every_system_takes():
    from engine.project import file_stem

    assert file_stem("Moons: why a hidden layer?") == "Moons-why-a-hidden-layer"
    assert file_stem("a/b\\c*d") == "a-b-c-d" and file_stem("  spaced  out  ") == "spaced-out"
    assert file_stem("moons MLP", sep="_") == "moons_MLP" and file_stem("v1.2 final") == "v1.2-final"
    assert file_stem("???") == "untitled" and file_stem("", "model") == "model" and file_stem("..") == "untitled"
    assert len(file_stem("x" * 200)) == 60
