"""The headless CLI, driven as a user would: a subprocess, its exit code, stdout and stderr."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from engine.project import load_project

ROOT = Path(__file__).resolve().parents[1]


def run_main(*args, cwd=None):
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or ROOT, timeout=600)


def assert_bad_input(proc, *words):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got: {proc.stderr!r}"
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w.lower() in lines[0].lower(), lines[0]


def write_breast_cancer_csv(path: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    ds = load_breast_cancer()
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([n.replace(" ", "_") for n in ds.feature_names] + ["label"])
        for row, y in zip(ds.data, ds.target):
            w.writerow([f"{v:.6g}" for v in row] + [ds.target_names[y]])


def test_default_lab_trains_to_95_percent(tmp_path):
    proc = run_main("train", "--epochs", "30", "--json", "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["val_accuracy"] >= 0.95
    assert result["epochs"] == 30 and result["device"] == "cpu"
    assert result["samples_per_s"] > 0 and "val_loss" in result
    assert "epoch 1/30" in proc.stdout and "epoch 30/30" in proc.stdout
    project = load_project(tmp_path / "run" / "model.layerlab")
    assert project.weights and len(project.history) == 30 and project.normalization
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert len(rows) == 30 and "val_accuracy" in rows[0]


def test_user_csv_replaces_the_dataset_and_auto_sizes_adapt(tmp_path):
    data = tmp_path / "cancer.csv"
    write_breast_cancer_csv(data)
    proc = run_main("train", "--data", data, "--target", "label", "--json", "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["val_accuracy"] >= 0.93
    project = load_project(tmp_path / "run" / "model.layerlab")
    assert project.data["source"] == "csv"
    assert project.weights["fc1.weight"].shape[1] == 30  # the Input adapted to 30 features


def test_labs_lists_the_labs_and_the_starters_apart():
    proc = run_main("labs", "--json")
    assert proc.returncode == 0
    listed = json.loads(proc.stdout)
    assert set(listed) == {"labs", "starters"}
    names = [s["name"] for s in listed["starters"]]
    assert "moons-mlp" in names and len(names) >= 3
    ids = [lab["id"] for lab in listed["labs"]]
    assert len(ids) == 10 and ids[0] == "xor-hidden-layer" and "lstm-sequences" in ids
    assert all(lab["steps"] >= 4 and lab["points"] > 0 for lab in listed["labs"])
    text = run_main("labs")
    assert text.returncode == 0
    labs_at, starters_at = text.stdout.index("Labs"), text.stdout.index("Starter projects")
    assert labs_at < text.stdout.index("xor-hidden-layer") < starters_at < text.stdout.index("moons-mlp")


@pytest.mark.parametrize("content", [b"not a zip at all", b"PK\x03\x04 truncated", b""])
def test_corrupt_project_is_bad_input(tmp_path, content):
    bad = tmp_path / "broken.layerlab"
    bad.write_bytes(content)
    assert_bad_input(run_main("train", bad, "--out", tmp_path / "out"), "broken.layerlab")
    assert not (tmp_path / "out").exists()


def test_truncated_bundle_is_bad_input(tmp_path):
    good = tmp_path / "good.layerlab"
    with zipfile.ZipFile(good, "w") as z:
        z.writestr("project.json", json.dumps({"format": "layerlab.project", "version": 1}) * 50)
    raw = good.read_bytes()
    cut = tmp_path / "cut.layerlab"
    cut.write_bytes(raw[: len(raw) // 2])
    assert_bad_input(run_main("train", cut, "--out", tmp_path / "out"), "corrupt")
    assert not (tmp_path / "out").exists()


def test_missing_file_is_bad_input(tmp_path):
    assert_bad_input(run_main("train", tmp_path / "nope.layerlab", "--out", tmp_path / "out"), "no such file")
    assert_bad_input(run_main("train", "--data", tmp_path / "nope.csv", "--target", "y"), "no such file")
    assert not (tmp_path / "out").exists()


def test_absent_target_column_is_bad_input(tmp_path):
    data = tmp_path / "cancer.csv"
    write_breast_cancer_csv(data)
    proc = run_main("train", "--data", data, "--target", "diagnosis", "--out", tmp_path / "out")
    assert_bad_input(proc, "diagnosis", "label")  # names the missing column and what exists
    assert not (tmp_path / "out").exists()


def test_unencodable_data_is_bad_input(tmp_path):
    data = tmp_path / "gaps.csv"
    data.write_text("a,b,label\n1,2,x\n3,,y\n5,6,x\n7,8,y\n")
    assert_bad_input(run_main("train", "--data", data, "--target", "label", "--out", tmp_path / "o"), "missing")


@pytest.mark.parametrize("flags, word", [
    (["--epochs", "0"], "epochs"), (["--lr", "-1"], "lr"), (["--lr", "nan"], "lr"),
    (["--device", "tpu"], "device"), (["--batch-size", "many"], "batch"), (["--frobnicate"], "frobnicate"),
])
def test_bad_flag_values_are_bad_input(tmp_path, flags, word):
    assert_bad_input(run_main("train", *flags, "--out", tmp_path / "o"), word)
    assert not (tmp_path / "o").exists()


def test_graph_with_errors_is_bad_input(tmp_path):
    from engine.project import load_starter, save_project

    project = load_starter()
    relu = project.graph.nodes_of_type("ReLU")[0]
    for e in project.graph.in_edges(relu.id):
        project.graph.disconnect(e.id)  # now 'relu1' has no input
    path = tmp_path / "broken-graph.json"
    save_project(path, project)
    assert_bad_input(run_main("train", path, "--out", tmp_path / "o"), "relu1")
    assert not (tmp_path / "o").exists()


def test_training_into_a_folder_with_an_earlier_run_says_it_is_replaced_before_the_work(tmp_path, capsys):
    """A second `train` replaced the first run's bundle and metrics without a word."""
    from engine.cli import run_cli

    out = tmp_path / "run"
    assert run_cli(["train", "iris-mlp", "--epochs", "1", "--out", str(out)]) == 0
    assert "earlier run" not in capsys.readouterr().err
    assert run_cli(["train", "iris-mlp", "--epochs", "2", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    note = f"note: {out} holds an earlier run; this one replaces it when saved"
    assert note in err and err.index(note) < err.index("Saved ")
    assert len(load_project(out / "model.layerlab").history) == 2


def test_training_a_trained_bundle_again_continues_its_epochs_as_the_app_does(tmp_path, capsys):
    """The command line started the epochs again at 1 and kept only the new run's timeline, while
    the app continued the run (the same numbers, from epoch 4)."""
    from engine.cli import run_cli

    assert run_cli(["train", "iris-mlp", "--epochs", "3", "--out", str(tmp_path / "a")]) == 0
    first = load_project(tmp_path / "a" / "model.layerlab")
    capsys.readouterr()
    assert run_cli(["train", str(tmp_path / "a" / "model.layerlab"), "--epochs", "2", "--out", str(tmp_path / "b")]) == 0
    said = capsys.readouterr()
    assert "continues the project's run from epoch 3 (epochs 4 to 5)" in said.err
    assert [line.split()[1] for line in said.out.splitlines() if line.startswith("epoch ")] == ["4/5", "5/5"]
    again = load_project(tmp_path / "b" / "model.layerlab")
    assert [r["epoch"] for r in again.history] == [1, 2, 3, 4, 5]
    assert again.history[:3] == first.history and again.run["weights_epoch"] == 5
    assert sorted(again.checkpoints) == [0, 1, 2, 3, 4, 5]
    assert all(torch.equal(again.checkpoints[3][k], first.weights[k]) for k in first.weights)
    with open(tmp_path / "b" / "metrics.csv", newline="") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2", "3", "4", "5"]
