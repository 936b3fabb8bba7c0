"""The run seam (engine/run.py, engine/model_at.py): one preparation, one writer each, and the
model at epoch k exactly as it was then."""
from __future__ import annotations

import ast
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.events import Callback, EpochEnd, RunStarted
from engine.model_at import NoSuchEpoch, Untrained, model_at, ready_model
from engine.policies import KeepTimeline
from engine.project import load_project, load_starter
from engine.run import WeightsMismatch, execute, metrics_csv_bytes, prepare_run, save_run_outputs

REPO = Path(__file__).resolve().parents[1]


class OutputsAtEpochs(Callback):
    """What the model outputs on a fixed batch, in eval mode, before training and at every epoch end."""

    def __init__(self, x):
        self.x, self.outputs = x, {}

    def _record(self, epoch):
        m = self.trainer.model
        was = m.training
        m.eval()
        with torch.no_grad():
            self.outputs[epoch] = m(self.x.to(self.trainer.device)).cpu()
        m.train(was)

    def __call__(self, event):
        if isinstance(event, RunStarted):
            self._record(0)
        elif isinstance(event, EpochEnd):
            self._record(event.epoch)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    project = load_starter("moons-mlp")
    prepared = prepare_run(project, overrides={"epochs": 6, "num_threads": 1})
    probe = prepared.dataset.x_val[:50]
    outputs, timeline = OutputsAtEpochs(probe), KeepTimeline()
    trainer, finished = execute(prepared, callbacks=[outputs, timeline])
    project.weights = {k: v.detach().cpu() for k, v in prepared.compiled.module.state_dict().items()}
    project.checkpoints = timeline.checkpoints
    project.history = trainer.history
    out = tmp_path_factory.mktemp("run")
    bundle, _ = save_run_outputs(out, project, trainer.history)
    return bundle, probe, outputs.outputs


def test_the_model_at_epoch_k_gives_the_outputs_it_had_then(trained):
    bundle, probe, outputs = trained
    project = load_project(bundle)
    assert sorted(project.checkpoints) == list(range(7))
    for epoch in (0, 3, 6):
        ready = model_at(project, epoch, device="cpu")
        assert not ready.module.training and ready.epoch == epoch
        with torch.no_grad():
            got = ready.module(probe)
        assert torch.equal(got, outputs[epoch]), epoch  # exactly, not approximately
    assert not torch.equal(outputs[0], outputs[6])
    with torch.no_grad():
        assert torch.equal(model_at(project, device="cpu").module(probe), outputs[6])  # current weights


def test_the_model_at_an_epoch_the_timeline_did_not_keep_is_a_sentence(trained):
    project = load_project(trained[0])
    with pytest.raises(NoSuchEpoch, match="epoch 99.*kept: 0, 1, 2, 3, 4, 5, 6"):
        model_at(project, 99)
    project.weights = None
    with pytest.raises(Untrained, match="no trained weights"):
        model_at(project)


def test_weights_that_do_not_fit_are_named(trained):
    project = load_project(trained[0])
    bad = dict(project.weights)
    bad["fc1.weight"] = torch.zeros(3, 3)
    with pytest.raises(WeightsMismatch, match="'fc1.weight' is \\(3, 3\\)"):
        ready_model(project.graph, model_at(project).context, bad)


def test_a_headless_run_writes_its_outputs_through_the_one_writer(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), "train", "--epochs", "3", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    project = load_project(tmp_path / "model.layerlab")
    assert (tmp_path / "metrics.csv").read_bytes() == metrics_csv_bytes(project.history)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert sorted(project.checkpoints) == [0, 1, 2, 3]  # the headless run keeps a timeline too
    doc = json.loads(__import__("zipfile").ZipFile(tmp_path / "model.layerlab").read("project.json"))
    assert doc["run"]["outcome"] == "completed" and doc["run"]["checkpoint_epochs"] == [0, 1, 2, 3]


# ----------------------------------------------------------------------------- no twins
def _definitions() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for pkg in ("engine", "gui", "main.py"):
        paths = [REPO / pkg] if pkg.endswith(".py") else sorted((REPO / pkg).rglob("*.py"))
        for path in paths:
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    found.setdefault(node.name, []).append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


@pytest.mark.parametrize("name", [
    "write_metrics_csv", "metrics_csv_bytes", "write_run_tensorboard", "atomic_write", "atomic_write_bytes",
    "run_config", "prepare_run", "build_run_model", "load_weights", "state_is_finite", "context_for",
])
def test_one_definition_of_each_shared_piece(name):
    defs = _definitions().get(name, [])
    if name == "context_for":  # the document's method only delegates to engine.run.context_for
        defs = [d for d in defs if not d.startswith("gui/document.py")]
    assert len(defs) == 1, f"{name} is defined {len(defs)} times: {defs}"


@pytest.mark.parametrize("twin", ["_finite_state", "all_finite", "_classify_failure", "train_config_from",
                                  "_atomic_write", "_newest_finite_checkpoint"])
def test_the_old_twins_are_gone(twin):
    assert twin not in _definitions()


def test_no_decision_is_taken_on_an_error_sentence():
    """No code compares an exception's text with a known wording (the old 'Loss became' test)."""
    offenders = []
    for path in sorted((REPO / "engine").rglob("*.py")) + sorted((REPO / "gui").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for needle in ('startswith("Loss became', "startswith('Loss became", '"out of memory" in', "shape_words"):
            if needle in text:
                offenders.append(f"{path.relative_to(REPO)}: {needle}")
    assert not offenders, offenders


def test_a_batchnorm_step_counter_stored_as_one_element_loads_as_the_number_it_is():
    """Projects trained in the app before the fix stored num_batches_tracked with shape (1,)."""
    from torch import nn

    from engine.run import load_weights
    from engine.runner import state_from_numpy, state_to_numpy

    bn = nn.BatchNorm1d(3)
    bn(torch.randn(4, 3))
    assert {k: v.shape for k, v in state_from_numpy(state_to_numpy(bn.state_dict())).items()} == \
        {k: v.shape for k, v in bn.state_dict().items()}  # the round trip through the process seam
    old = {**bn.state_dict(), "num_batches_tracked": torch.tensor([7])}
    fresh = nn.BatchNorm1d(3)
    load_weights(fresh, old)
    assert fresh.num_batches_tracked.shape == () and int(fresh.num_batches_tracked) == 7
    with pytest.raises(WeightsMismatch):  # any other shape is still refused
        load_weights(fresh, {**bn.state_dict(), "num_batches_tracked": torch.tensor([7, 8])})
