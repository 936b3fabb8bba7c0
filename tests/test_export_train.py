"""The exported train.py: under ``torchrun --standalone --nproc_per_node 2`` on CPU (DDP over gloo)
and as plain ``python train.py``, in a fresh folder with ``python -I`` (nothing of LayerLab).

Both ranks end with the same parameters, the loss goes down, metrics.csv has LayerLab's columns,
the trained package opens back in LayerLab, and plain train.py reproduces a LayerLab run.
"""
from __future__ import annotations

import csv
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from export_models import ALL

torch.set_num_threads(1)
TORCHRUN = Path(sys.executable).with_name("torchrun")
#: Each run starts 2-3 processes that import torch (~3 s of CPU each on this machine), so torchrun
#: runs on one project of each kind: the five models (MLP, CNN, residual with Add and Concat, LSTM,
#: BatchNorm + Dropout) and a regression starter; LAYERLAB_TEST_EVERY_TORCHRUN=1 runs it on every
#: model and starter (the other starters repeat these architectures).
TORCHRUN_KEYS = ALL if os.environ.get("LAYERLAB_TEST_EVERY_TORCHRUN") else \
    [k for k in ALL if k.startswith("model:")] + ["starter:sine-regression"]
#: plain `python train.py`: a classification and a regression starter (and the LayerLab reproduction);
#: every model and starter with LAYERLAB_TEST_EVERY_TORCHRUN=1
PLAIN = ALL if os.environ.get("LAYERLAB_TEST_EVERY_TORCHRUN") else ["starter:moons-mlp", "starter:sine-regression"]


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _fresh_copy(exports, key, root: Path) -> Path:
    folder = root / key.replace(":", "_")
    shutil.copytree(exports.export(key, "python").path, folder)
    return folder


def _run_all(commands: dict, parallel: int = 3, timeout: float = 600) -> dict:
    """Run the commands (key -> (argv, cwd)) a few at a time; key -> CompletedProcess-like tuple."""
    pending, running, done = list(commands.items()), {}, {}
    t0 = time.monotonic()
    while pending or running:
        while pending and len(running) < parallel:
            key, (argv, cwd) = pending.pop(0)
            running[key] = subprocess.Popen(argv, cwd=cwd, env=_env(), stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True)
        for key, proc in list(running.items()):
            if proc.poll() is not None:
                out, err = proc.communicate()
                done[key] = (proc.returncode, out, err)
                del running[key]
        if time.monotonic() - t0 > timeout:
            for proc in running.values():
                proc.kill()
            raise AssertionError(f"training runs took more than {timeout} s: {sorted(running)}")
        time.sleep(0.05)
    return done


@pytest.fixture(scope="module")
def torchrun_runs(exports, tmp_path_factory):
    root = tmp_path_factory.mktemp("torchrun")
    folders = {key: _fresh_copy(exports, key, root) for key in TORCHRUN_KEYS}
    commands = {key: ([str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "train.py", "--epochs", "1",
                       "--out", "run"], folder) for key, folder in folders.items()}
    return {key: (folders[key], *result) for key, result in _run_all(commands).items()}


@pytest.fixture(scope="module")
def plain_runs(exports, tmp_path_factory):
    root = tmp_path_factory.mktemp("plain")
    folders = {key: _fresh_copy(exports, key, root) for key in PLAIN}
    commands = {key: ([sys.executable, "-I", "train.py", "--epochs", "2", "--out", "run"], folder)
                for key, folder in folders.items()}
    return {key: (folders[key], *result) for key, result in _run_all(commands).items()}


# ----------------------------------------------------------------------------- helpers
def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _package(folder: Path, tag: str):
    """(model class, data module) of a package, loaded in this process."""
    import json

    manifest = json.loads((folder / "layerlab.json").read_text())
    model = _load(folder / "model.py", f"pkg_model_{tag}")
    data = _load(folder / "data.py", f"pkg_data_{tag}")
    return getattr(model, manifest["model_class"]), data


def _train_loss(cls, data, state=None, seed=0) -> float:
    """Mean training loss of the package's model (fresh seeded weights, or ``state``) in eval mode."""
    from safetensors.torch import load_file

    torch.manual_seed(seed)
    model = cls()
    if state is not None:
        model.load_state_dict(load_file(str(state)))
    model.eval()
    x, y = data.load_splits()["train"]
    with torch.no_grad():
        out = model(x)
    if data.TASK == "classification":
        return float(torch.nn.functional.cross_entropy(out, y))
    return float(torch.nn.functional.mse_loss(out, y.reshape(len(y), -1)))


def _digest(cls, weights: Path) -> str:
    from safetensors.torch import load_file

    model = cls()
    model.load_state_dict(load_file(str(weights)))
    h = hashlib.sha256()
    for t in model.state_dict().values():
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _metrics(folder: Path) -> list[dict]:
    with open(folder / "run" / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- torchrun
@pytest.mark.parametrize("key", TORCHRUN_KEYS)
def test_torchrun_two_processes_agree_and_learn(torchrun_runs, key):
    folder, rc, out, err = torchrun_runs[key]
    assert rc == 0, err[-2000:]
    digests = dict(re.findall(r"rank (\d)/2: parameters sha256 (\w+)", out))
    assert set(digests) == {"0", "1"}, out
    assert digests["0"] == digests["1"]  # DDP kept both ranks' parameters identical
    cls, data = _package(folder, "tr_" + key.replace(":", "_").replace("-", "_"))
    assert _digest(cls, folder / "run" / "weights.safetensors") == digests["0"]  # rank 0 saved them
    assert _train_loss(cls, data, folder / "run" / "weights.safetensors") < _train_loss(cls, data)
    rows = _metrics(folder)
    assert [r["epoch"] for r in rows] == ["1"]
    metric = "accuracy" if data.TASK == "classification" else "mse"
    assert list(rows[0]) == ["epoch", "train_loss", f"train_{metric}", "val_loss", f"val_{metric}", "lr",
                             "samples_per_s", "elapsed_s"]


def test_metrics_columns_are_layerlabs(exports, torchrun_runs):
    folder = torchrun_runs["model:mlp"][0]
    assert list(_metrics(folder)[0]) == list(exports.project("model:mlp").history[0])


def test_trained_package_opens_back_in_layerlab(torchrun_runs, tmp_path):
    from safetensors.torch import load_file

    from engine.importers import import_model
    from engine.model_at import model_at
    from engine.project import load_project, save_project

    folder = torchrun_runs["model:cnn"][0]
    shutil.copy(folder / "run" / "weights.safetensors", folder / "weights.safetensors")
    shutil.copy(folder / "run" / "metrics.csv", folder / "metrics.csv")
    result = import_model(folder)
    save_project(tmp_path / "trained.layerlab", result.project)
    project = load_project(tmp_path / "trained.layerlab")
    trained = load_file(str(folder / "weights.safetensors"))
    assert set(project.weights) == set(trained)
    assert all(torch.equal(project.weights[k], trained[k]) for k in trained)
    assert len(project.history) == 1 and project.history[0]["epoch"] == 1
    cls, data = _package(folder, "back")
    model = cls()
    model.load_state_dict(trained)
    x = data.load_splits()["val"][0][:7]
    with torch.no_grad():
        assert torch.allclose(model_at(project, device="cpu").module(x), model.eval()(x), atol=1e-6)


# ----------------------------------------------------------------------------- plain python
@pytest.mark.parametrize("key", PLAIN)
def test_plain_train_py_learns(plain_runs, key):
    folder, rc, out, err = plain_runs[key]
    assert rc == 0, err[-2000:]
    assert re.search(r"rank 0/1: parameters sha256 \w+", out)
    cls, data = _package(folder, "plain_" + key.replace(":", "_").replace("-", "_"))
    assert _train_loss(cls, data, folder / "run" / "weights.safetensors") < _train_loss(cls, data)
    rows = _metrics(folder)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])


def test_plain_train_py_reproduces_the_layerlab_run(plain_runs):
    """Same seed, same first weights, same shuffles, same optimiser: the same losses as LayerLab's trainer."""
    from engine.project import load_starter
    from engine.run import execute, prepare_run

    prepared = prepare_run(load_starter("moons-mlp"), overrides={"epochs": 2}, use_project_weights=False)
    trainer, _ = execute(prepared)
    rows = _metrics(plain_runs["starter:moons-mlp"][0])
    for ours, theirs in zip(trainer.history, rows):
        assert float(theirs["train_loss"]) == pytest.approx(ours["train_loss"], rel=1e-5)
        assert float(theirs["val_loss"]) == pytest.approx(ours["val_loss"], rel=1e-5)
        assert float(theirs["val_accuracy"]) == pytest.approx(ours["val_accuracy"], abs=1e-9)
