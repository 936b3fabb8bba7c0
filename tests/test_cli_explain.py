"""``main.py evaluate`` and ``main.py explain`` driven as a user would: subprocesses, exit codes, files.

Three runs are real subprocesses (evaluate --json, a PNG overlay, permutation --json); the rest,
the many bad-input cases above all, go in-process through the same entry point (``run_cli``):
a subprocess costs seconds of imports on a shared machine.
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import confusion_matrix

from engine.cli import run_cli
from engine.explain import attribute
from engine.model_at import model_at
from engine.project import load_project, load_starter, save_project

ROOT = Path(__file__).resolve().parents[1]


def run_main(*args):
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)


def one_line_error(code: int, err: str, *words):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for w in words:
        assert w.lower() in lines[0].lower(), lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two trained bundles: digits-cnn (images, no test split) and an iris MLP with a 30 % test split."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("cli_explain")
    iris = load_starter("iris-mlp")
    iris.data = {"source": "iris", "val_fraction": 0.1, "test_fraction": 0.3, "split_seed": 0}
    save_project(tmp / "iris.layerlab", iris)
    assert run_cli(["train", str(tmp / "iris.layerlab"), "--epochs", "40", "--out", str(tmp / "iris")]) == 0
    assert run_cli(["train", "digits-cnn", "--epochs", "2", "--out", str(tmp / "digits")]) == 0
    torch.set_num_threads(before)
    return {"iris": tmp / "iris" / "model.layerlab", "digits": tmp / "digits" / "model.layerlab", "tmp": tmp}


def test_evaluate_json_gives_the_confusion_matrix_of_the_models_predictions(trained):
    proc = run_main("evaluate", trained["digits"], "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    # digits-cnn keeps no test split: the validation split, said on stderr and in the result
    assert doc["split_used"] == "val" and "no test split" in proc.stderr
    assert doc["class_names"] == [str(i) for i in range(10)] and len(doc["per_class"]) == 10
    ready = model_at(load_project(trained["digits"]), device="cpu")
    with torch.no_grad():
        pred = ready.module(ready.dataset.x_val).argmax(1).numpy()
    y = ready.dataset.y_val.numpy()
    assert doc["confusion_matrix"] == confusion_matrix(y, pred, labels=list(range(10))).tolist()
    assert doc["accuracy"] == pytest.approx(float((pred == y).mean()))
    assert "cells" not in doc  # per-sample arrays only with --samples


def test_evaluate_prints_a_readable_table(trained, capsys):
    assert run_cli(["evaluate", str(trained["iris"])]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "test split, 45 samples" in out and "accuracy" in out
    for word in ("setosa", "versicolor", "virginica", "macro avg", "weighted avg", "confusion matrix"):
        assert word in out
    assert captured.err == ""  # a test split exists: no note


def test_explain_writes_the_raw_map_equal_to_the_engines(trained, capsys):
    out = trained["tmp"] / "saliency.npy"
    assert run_cli(["explain", str(trained["digits"]), "--sample", "2", "--method", "saliency", "--out", str(out),
                    "--json"]) == 0
    captured = capsys.readouterr()
    assert "no test split" in captured.err  # said once it worked
    summary = json.loads(captured.out)
    values = np.load(out, allow_pickle=False)
    assert values.shape == (1, 8, 8) and summary["shape"] == [1, 8, 8] and summary["split_used"] == "val"
    ready = model_at(load_project(trained["digits"]), device="cpu")
    ref = attribute(ready, ready.dataset.x_val[2], summary["predicted"], "saliency")
    np.testing.assert_allclose(values, ref.values, rtol=1e-5, atol=1e-7)
    assert summary["target"] == summary["predicted"]  # no --target: the predicted class


def test_explain_png_is_an_enlarged_overlay_and_gradcam_takes_a_layer(trained):
    out = trained["tmp"] / "cam.png"
    proc = run_main("explain", trained["digits"], "--sample", 0, "--method", "gradcam", "--layer", "relu1",
                    "--target", "3", "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["layer"] == "relu1" and summary["target"] == 3 and summary["target_name"] == "3"
    img = Image.open(out)
    assert img.format == "PNG" and img.mode == "RGB" and img.size == (224, 224)
    pixels = np.asarray(img)
    assert pixels.std() > 5  # an image, not a flat colour


def test_permutation_prints_sorted_named_features_and_writes_them(trained):
    out = trained["tmp"] / "importance.csv"
    proc = run_main("explain", trained["iris"], "--method", "permutation", "--option", "n_repeats=4", "--out", out,
                    "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    names = [f["name"] for f in doc["features"]]
    assert sorted(names) == sorted(["sepal length (cm)", "sepal width (cm)", "petal length (cm)",
                                    "petal width (cm)"])
    imps = [f["importance"] for f in doc["features"]]
    assert imps == sorted(imps, reverse=True) and imps[0] > 0.1 and all("std" in f for f in doc["features"])
    assert names[0].startswith("petal")  # iris is decided by its petals
    rows = list(csv.DictReader(open(out)))
    assert [r["feature"] for r in rows] == names


@pytest.mark.parametrize("case,args,words", [
    ("sample out of range", ["explain", "{iris}", "--sample", "45", "--method", "ig", "--out", "{tmp}/x.npy"],
     ["--sample 45 is out of range", "45 samples (0..44)"]),
    ("method does not fit", ["explain", "{iris}", "--sample", "0", "--method", "gradcam", "--out", "{tmp}/a.npy"],
     ["Grad-CAM needs image input"]),
    ("non-conv node", ["explain", "{digits}", "--sample", "0", "--method", "gradcam", "--layer", "fc1",
                       "--out", "{tmp}/a.png"], ["'fc1' gives (10,)", "conv1, relu1, maxpool1, conv2, relu2"]),
    ("unknown node", ["explain", "{digits}", "--sample", "0", "--method", "gradcam", "--layer", "conv9",
                      "--out", "{tmp}/a.png"], ["'conv9' is not a node of this graph"]),
    ("untrained", ["explain", "digits-cnn", "--sample", "0", "--method", "saliency", "--out", "{tmp}/a.npy"],
     ["no trained weights"]),
    ("untrained evaluate", ["evaluate", "iris-mlp"], ["no trained weights"]),
    ("no such epoch", ["evaluate", "{iris}", "--epoch", "99"], ["no weights for epoch 99"]),
    ("png for a table", ["explain", "{iris}", "--sample", "0", "--method", "ig", "--out", "{tmp}/a.png"],
     ["a .png overlay is for images"]),
    ("bad suffix", ["explain", "{iris}", "--sample", "0", "--method", "ig", "--out", "{tmp}/a.txt"],
     [".npy, .png, .json"]),
    ("no folder", ["explain", "{iris}", "--sample", "0", "--method", "ig", "--out", "{tmp}/nope/a.npy"],
     ["does not exist"]),
    ("unknown class", ["explain", "{iris}", "--sample", "0", "--method", "ig", "--target", "rose",
                       "--out", "{tmp}/a.npy"], ["'rose' is neither", "setosa"]),
    ("class out of range", ["explain", "{iris}", "--sample", "0", "--method", "ig", "--target", "7",
                            "--out", "{tmp}/a.npy"], ["Target 7 is not an output", "0..2"]),
    ("bad option", ["explain", "{iris}", "--sample", "0", "--method", "ig", "--option", "steps=5",
                    "--out", "{tmp}/a.npy"], ["no option 'steps'", "n_steps"]),
    ("option syntax", ["explain", "{iris}", "--sample", "0", "--method", "ig", "--option", "n_steps",
                       "--out", "{tmp}/a.npy"], ["NAME=VALUE"]),
    ("permutation on images", ["explain", "{digits}", "--method", "permutation", "--out", "{tmp}/a.csv"],
     ["for tabular data"]),
    ("permutation with a sample", ["explain", "{iris}", "--sample", "1", "--method", "permutation",
                                   "--out", "{tmp}/a.csv"], ["--sample is not used"]),
    ("no sample", ["explain", "{iris}", "--method", "ig", "--out", "{tmp}/a.npy"], ["--sample I"]),
    ("unknown method", ["explain", "{iris}", "--sample", "0", "--method", "deeplift", "--out", "{tmp}/a.npy"],
     ["invalid choice: 'deeplift'"]),
    ("layer without gradcam", ["explain", "{iris}", "--sample", "0", "--method", "ig", "--layer", "fc1",
                               "--out", "{tmp}/a.npy"], ["--layer is for Grad-CAM"]),
])
def test_bad_input_gets_one_sentence_and_exit_2(trained, capsys, case, args, words):
    argv = [a.format(iris=trained["iris"], digits=trained["digits"], tmp=trained["tmp"]) for a in args]
    code = run_cli(argv)
    one_line_error(code, capsys.readouterr().err, *words)
    assert not any(trained["tmp"].glob("a.*")) and not (trained["tmp"] / "x.npy").exists()  # nothing written
