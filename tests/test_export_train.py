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


#: runs a script as ``python -u script`` does, telling stderr what each write to stdout was
#: ("WRITE '...'"): torchrun's ranks share one stdout, and a line written in two parts interleaves
RECORD_WRITES = """
import os, runpy, sys
class Recorder:
    def __init__(self, out):
        self.out = out
    def write(self, text):
        sys.__stderr__.write("WRITE " + repr(text) + "\\n")
        return self.out.write(text)
    def __getattr__(self, name):
        return getattr(self.out, name)
sys.stdout = Recorder(sys.stdout)
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def plain_runs(exports, tmp_path_factory):
    root = tmp_path_factory.mktemp("plain")
    folders = {key: _fresh_copy(exports, key, root) for key in PLAIN}
    commands = {key: ([sys.executable, "-I", "-u", "-c", RECORD_WRITES, "train.py", "--epochs", "2", "--out", "run"],
                      folder) for key, folder in folders.items()}
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
    # ... written whole, newline and all: two ranks' lines ran together ("...fe66rank 1/2: ...")
    assert re.search(r"^WRITE 'rank 0/1: parameters sha256 \w+\\n'$", err, re.M), err[-800:]
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


def test_torchrun_with_one_process_trains_as_a_plain_run_whatever_the_seed(exports, tmp_path):
    """DistributedSampler's shuffle is not LayerLab's: with --nproc_per_node 1 the run differed from
    `python train.py` (epoch-1 loss 0.9778 against 0.9608 for iris at seed 3)."""
    folder = _fresh_copy(exports, "starter:moons-mlp", tmp_path)
    script = folder / "train.py"
    script.write_text(re.sub(r"^SEED = .*$", "SEED = 3", script.read_text(), count=1, flags=re.M))
    commands = {"plain": ([sys.executable, "-I", "train.py", "--epochs", "1", "--out", "plain"], folder),
                "one": ([str(TORCHRUN), "--standalone", "--nproc_per_node", "1", "train.py", "--epochs", "1",
                         "--out", "one"], folder)}
    for key, (code, out, err) in _run_all(commands).items():
        assert code == 0, (key, err)

    def loss(sub):
        with open(folder / sub / "metrics.csv", newline="") as f:
            return [row["train_loss"] for row in csv.DictReader(f)]

    assert loss("plain") == loss("one")


# ----------------------------------------------------------------------------- train.py's update step
PACKAGE_MODULES = ("data", "model", "pool_order")  # what train.py imports from its own folder


def _train_script(folder: Path, tag: str):
    """train.py of a package, imported in this process; its own path and imports undone afterwards."""
    saved = {k: sys.modules.pop(k) for k in PACKAGE_MODULES if k in sys.modules}
    try:
        return _load(folder / "train.py", f"pkg_train_{tag}")
    finally:
        while str(folder) in sys.path:
            sys.path.remove(str(folder))
        for k in PACKAGE_MODULES:
            sys.modules.pop(k, None)
        sys.modules.update(saved)


class _WithUnusedBranch(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.used, self.unused = torch.nn.Linear(3, 4), torch.nn.Linear(3, 4)

    def forward(self, x):
        return self.used(x)


UPDATE_CASES = {  # name: (optimizer, lean path expected, model with an unused parameter)
    "adam": (lambda p: torch.optim.Adam(p, lr=0.01, fused=True), True, False),
    "adam+l2": (lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=1e-3, fused=True), True, False),
    "adamw": (lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.05, fused=True), True, False),
    "adam, unused branch": (lambda p: torch.optim.Adam(p, lr=0.01, fused=True), True, True),
    "adam amsgrad": (lambda p: torch.optim.Adam(p, lr=0.01, amsgrad=True, fused=True), False, False),
    "adam, not fused": (lambda p: torch.optim.Adam(p, lr=0.01), False, False),
    "sgd": (lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, fused=True), False, False),
}


@pytest.mark.parametrize("case", list(UPDATE_CASES))
def test_train_py_update_is_optimizer_step_bit_for_bit(exports, tmp_path, case):
    """make_update() skips Optimizer.step()'s bookkeeping (the plain loop's main cost on small models)
    but must change nothing: the same weights and optimizer state as step(), under a one-cycle
    schedule that moves lr and betas every step, and step() itself wherever it is not plain Adam."""
    script = _train_script(_fresh_copy(exports, "starter:moons-mlp", tmp_path),
                           "update_" + re.sub(r"\W", "_", case))
    make_opt, lean, unused = UPDATE_CASES[case]
    torch.manual_seed(0)
    net = _WithUnusedBranch() if unused else torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(),
                                                                  torch.nn.Linear(8, 2))
    twin = type(net)() if unused else torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(),
                                                          torch.nn.Linear(8, 2))
    twin.load_state_dict(net.state_dict())
    runs = []
    for model, use_update in ((net, True), (twin, False)):
        opt = make_opt(list(model.parameters()))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=12)
        update = script.make_update(opt)
        if use_update:
            assert (update != opt.step) == lean
        step = update if use_update else opt.step
        gen = torch.Generator().manual_seed(1)
        for _ in range(12):
            x, y = torch.randn(16, 3, generator=gen), torch.randn(16, 2 if not unused else 4, generator=gen)
            for p in model.parameters():
                p.grad = None
            torch.nn.functional.mse_loss(model(x), y).backward()
            step()
            sched.step()
        runs.append((model, opt))
    (a, opt_a), (b, opt_b) = runs
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    state_a, state_b = opt_a.state_dict()["state"], opt_b.state_dict()["state"]
    assert state_a.keys() == state_b.keys() and state_a
    for k in state_a:
        for name, value in state_a[k].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(state_b[k][name])), (k, name)


def test_train_py_trains_a_cnn_through_its_pool_order_twin(exports, tmp_path):
    """For a CNN, train.py's step runs pool_order.py's twin (shipped in the package): the same outputs
    and gradients bit for bit, on the model's own parameters; an MLP trains as written."""
    folder = _fresh_copy(exports, "starter:fashion-cnn", tmp_path)
    assert (folder / "pool_order.py").read_text().count("def relu_after_max_pool") == 1
    script = _train_script(folder, "pool_twin")
    cls, data = _package(folder, "pool_twin")
    torch.manual_seed(0)
    model = cls()
    twin = script.training_module(model)
    assert twin is not model and isinstance(twin, torch.fx.GraphModule)
    assert {id(p) for p in twin.parameters()} == {id(p) for p in model.parameters()}
    ops = [n.target for n in twin.graph.nodes if n.op == "call_module"]
    assert [type(twin.get_submodule(t)).__name__ for t in ops].index("ReLU") > \
        [type(twin.get_submodule(t)).__name__ for t in ops].index("MaxPool2d")
    x = data.load_splits()["train"][0][:16]
    grads = []
    for m in (model, twin):
        for p in model.parameters():
            p.grad = None
        out = m(x)
        (out ** 2).sum().backward()
        grads.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    assert torch.equal(grads[0][0], grads[1][0])
    assert all(torch.equal(a, b) for a, b in zip(grads[0][1], grads[1][1]))
    mlp_folder = _fresh_copy(exports, "starter:moons-mlp", tmp_path)
    mlp_script = _train_script(mlp_folder, "pool_twin_mlp")
    mlp_cls, _ = _package(mlp_folder, "pool_twin_mlp")
    mlp = mlp_cls()
    assert mlp_script.training_module(mlp) is mlp


def test_train_py_without_pool_order_py_trains_the_cnn_as_written(exports, tmp_path, capsys):
    """A package folder copied without pool_order.py still runs: the step uses the model itself."""
    folder = _fresh_copy(exports, "starter:fashion-cnn", tmp_path)
    (folder / "pool_order.py").unlink()
    script = _train_script(folder, "no_pool_order")
    cls, _ = _package(folder, "no_pool_order")
    model = cls()
    assert script.training_module(model) is model
    assert "pool_order.py is not beside train.py" in capsys.readouterr().out


def test_train_py_refuses_bad_options_and_a_resume_goes_on_counting(exports, tmp_path):
    """--epochs 0 wrote untrained weights and then crashed; --resume with nothing to resume from was a
    traceback (and left an empty folder); a resumed run numbered its epochs from 1 again and
    overwrote the CSV; the weights came out readable by their owner only."""
    folder = _fresh_copy(exports, "starter:moons-mlp", tmp_path)

    def train(*args):
        return subprocess.run([sys.executable, "train.py", *args], cwd=folder, env=_env(), capture_output=True,
                              text=True, timeout=600)

    for bad, said in ((["--epochs", "0", "--out", "zero"], "--epochs must be at least 1"),
                      (["--lr", "-1", "--out", "zero"], "--lr must be above 0"),
                      (["--resume", "--out", "nowhere"], "--resume: there is no")):
        proc = train(*bad)
        assert proc.returncode == 2 and said in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (folder / "zero").exists() and not (folder / "nowhere").exists()
    old = os.umask(0o022)
    try:
        assert train("--epochs", "1", "--out", "run").returncode == 0
        proc = train("--epochs", "2", "--out", "run", "--resume")
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "epoch 3/3" in proc.stdout
    assert [r["epoch"] for r in _metrics(folder)] == ["1", "2", "3"]
    assert (os.stat(folder / "run" / "weights.safetensors").st_mode & 0o777) == 0o644


# ----------------------------------------------------------------------------- as a user runs them
def _run_script(folder: Path, script: str, *args):
    return subprocess.run([sys.executable, "-I", script, *args], cwd=folder, env=_env(), capture_output=True,
                          text=True, timeout=600)


def _first_train_loss(stdout: str) -> float:
    return float(re.search(r"^epoch \d+/\d+  train_loss (\S+)", stdout, re.M).group(1))


def test_train_py_keeps_the_exported_weights_unless_told_and_says_where_it_wrote(exports, tmp_path):
    """`python train.py --epochs 1` wrote fresh seeded weights over the exported, trained ones: --out
    defaulted to the package's own folder."""
    folder = _fresh_copy(exports, "model:mlp", tmp_path)
    exported = (folder / "weights.safetensors").read_bytes()
    fresh = _run_script(folder, "train.py", "--epochs", "1")
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert (folder / "weights.safetensors").read_bytes() == exported
    runs = folder / "runs"
    assert f"wrote {runs / 'weights.safetensors'} and {runs / 'metrics.csv'}\n" in fresh.stdout
    assert [r["epoch"] for r in csv.DictReader(open(runs / "metrics.csv"))] == ["1"]
    # --resume with the default --out and nothing in runs/ yet goes on from the exported (trained) weights
    shutil.rmtree(runs)
    resumed = _run_script(folder, "train.py", "--epochs", "1", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _first_train_loss(resumed.stdout) < _first_train_loss(fresh.stdout)
    assert (folder / "weights.safetensors").read_bytes() == exported
    from engine.labs.check import trained_epochs  # it counts on from the exported weights' epoch (it said 1)

    project = exports.project("model:mlp")
    after = trained_epochs(project.history, project.run) + 1
    assert after > 1 and [r["epoch"] for r in csv.DictReader(open(runs / "metrics.csv"))] == [str(after)]
    assert f"epoch {after}/{after} " in resumed.stdout
    # asked for in so many words, it replaces them, and says so
    own = _run_script(folder, "train.py", "--epochs", "1", "--out", ".")
    assert own.returncode == 0, own.stderr[-2000:]
    assert "(replacing the package's exported weights)" in own.stdout
    assert (folder / "weights.safetensors").read_bytes() != exported


def test_predict_py_says_what_is_missing_in_a_sentence(exports, tmp_path):
    """`--npz missing.npz` ended in a traceback; `--split test` on a project without a test split printed
    nothing and exited 0."""
    folder = _fresh_copy(exports, "model:mlp", tmp_path)  # moons with the default split: no test rows
    (folder / "pickled.npz").write_bytes(b"not a zip")
    for args, said in ((["--npz", "missing.npz"], "--npz missing.npz: there is no such file"),
                       (["--split", "test"], "--split test: this project has no test split"),
                       (["--npz", "pickled.npz"], "is not an .npz archive of plain arrays"),
                       (["--weights", "runs/weights.safetensors"], "there is no such file")):
        proc = _run_script(folder, "predict.py", *args)
        assert proc.returncode == 2 and proc.stdout == "", (args, proc.stdout, proc.stderr)
        assert said in proc.stderr and "Traceback" not in proc.stderr and "allow_pickle" not in proc.stderr
    proc = _run_script(folder, "predict.py", "--split", "val", "--show", "1")
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1].startswith("accuracy ")
