"""engine.explain.evaluation against scikit-learn, on models whose predictions are computed here too."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.calibration import calibration_curve
from sklearn.metrics import (classification_report, confusion_matrix, mean_absolute_error, mean_squared_error,
                             r2_score, roc_auc_score, roc_curve)

from engine.compile import compile_graph
from engine.data import load_dataset
from engine.explain import NotApplicable, evaluate
from engine.graph import Graph
from engine.model_at import ready_model
from engine.run import context_for
from engine.spec import InferContext
from engine.templates import chain, mlp
from explain_cases import make_dataset


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def trained_iris():
    """A quickly trained MLP on iris (a test split of 30 %), as a ReadyModel."""
    ds = load_dataset({"source": "iris", "val_fraction": 0.1, "test_fraction": 0.3, "split_seed": 0})
    compiled = compile_graph(mlp((8,)), context_for(ds), seed=0)
    opt = torch.optim.Adam(compiled.module.parameters(), lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(compiled.module(ds.x_train), ds.y_train).backward()
        opt.step()
    return ready_model(mlp((8,)), context_for(ds), compiled.module.state_dict(), dataset=ds), ds


def test_classification_figures_equal_scikit_learn_on_the_same_predictions():
    ready, ds = trained_iris()
    r = evaluate(ready)
    with torch.no_grad():
        logits = ready.module(ds.x_test)
    probs = torch.softmax(logits, 1).numpy()
    pred, y = probs.argmax(1), ds.y_test.numpy()
    assert r.split_used == "test" and r.note is None and r.n_samples == len(y) == 45
    assert 0.5 < r.accuracy < 1.0, "a perfect or useless model would not test the matrix"
    assert np.array_equal(r.confusion_matrix, confusion_matrix(y, pred, labels=[0, 1, 2]))
    report = classification_report(y, pred, target_names=ds.class_names, output_dict=True, zero_division=0)
    for row in r.per_class:
        ref = report[row["name"]]
        assert row["precision"] == pytest.approx(ref["precision"]) and row["recall"] == pytest.approx(ref["recall"])
        assert row["f1"] == pytest.approx(ref["f1-score"]) and row["support"] == ref["support"]
    for ours, key in ((r.macro_avg, "macro avg"), (r.weighted_avg, "weighted avg")):
        assert ours["f1"] == pytest.approx(report[key]["f1-score"])
        assert ours["precision"] == pytest.approx(report[key]["precision"])
    assert r.accuracy == pytest.approx(report["accuracy"])
    np.testing.assert_allclose(r.probabilities, probs, rtol=1e-6)
    assert r.roc is None and r.roc_auc_ovr == pytest.approx(roc_auc_score(y, probs, multi_class="ovr"))
    # row-normalised: each row is that class's share, rows sum to 1
    np.testing.assert_allclose(r.confusion_normalized.sum(1), 1.0)
    np.testing.assert_allclose(r.confusion_normalized, r.confusion_matrix / r.confusion_matrix.sum(1, keepdims=True))


def test_each_confusion_cell_lists_exactly_its_samples_and_the_worst_mistakes_come_first():
    ready, ds = trained_iris()
    r = evaluate(ready)
    y, pred = ds.y_test.numpy(), r.y_pred
    for t in range(3):
        for p in range(3):
            assert r.samples_in_cell(t, p) == np.flatnonzero((y == t) & (pred == p)).tolist()
    wrong = r.confidently_wrong
    assert wrong and len(wrong) == int((y != pred).sum())
    assert [w["confidence"] for w in wrong] == sorted((w["confidence"] for w in wrong), reverse=True)
    for w in wrong:
        assert w["true"] == y[w["index"]] != w["predicted"] == pred[w["index"]]
        assert w["p_true"] == pytest.approx(r.probabilities[w["index"], w["true"]])


def test_reliability_diagram_equals_calibration_curve_and_counts_every_sample():
    ready, ds = trained_iris()
    r = evaluate(ready, reliability_bins=5)
    conf = r.probabilities.max(1)
    correct = (r.y_pred == ds.y_test.numpy()).astype(int)
    frac, mean = calibration_curve(correct, conf, n_bins=5)
    np.testing.assert_allclose(r.reliability["accuracy"], frac)
    np.testing.assert_allclose(r.reliability["mean_confidence"], mean)
    assert sum(r.reliability["count"]) == len(conf)
    ece = sum(c / len(conf) * abs(a - m) for c, a, m in zip(r.reliability["count"], frac, mean))
    assert r.reliability["ece"] == pytest.approx(ece)


def binary_case(out_units):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    y = (x[:, 0] + 0.8 * rng.normal(size=200) > 0).astype(int)
    ds = make_dataset(x[:100], y[:100], x[100:], y[100:], ["no", "yes"])
    g = Graph()
    loss = "bce_with_logits" if out_units == 1 else "auto"
    chain(g, [("Input", {}), ("Linear", {"units": out_units}), ("Output", {"loss": loss})])
    compiled = compile_graph(g, InferContext((3,), 2, "classification"), seed=0)
    with torch.no_grad():
        compiled.module.fc1.weight.zero_()
        compiled.module.fc1.weight[-1, 0] = 2.0  # the last output is the "yes" score
    return compiled, ds


@pytest.mark.parametrize("units", [2, 1])
def test_binary_tasks_get_the_roc_curve_and_auc_of_scikit_learn(units):
    compiled, ds = binary_case(units)
    r = evaluate(compiled.module, ds)
    with torch.no_grad():
        out = compiled.module(ds.x_test)
    p1 = (torch.sigmoid(out[:, 0]) if units == 1 else torch.softmax(out, 1)[:, 1]).numpy()
    fpr, tpr, _ = roc_curve(ds.y_test.numpy(), p1)
    np.testing.assert_allclose(r.roc["fpr"], fpr)
    np.testing.assert_allclose(r.roc["tpr"], tpr)
    assert r.roc["auc"] == pytest.approx(roc_auc_score(ds.y_test.numpy(), p1)) and r.roc["auc"] > 0.7
    assert r.probabilities.shape == (100, 2)
    json.dumps(r.to_json())  # the thresholds' +inf is gone: plain JSON


def test_regression_figures_equal_scikit_learn():
    ds = load_dataset({"source": "diabetes", "test_fraction": 0.25, "split_seed": 1})
    compiled = compile_graph(mlp((16,)), context_for(ds), seed=0)
    with torch.no_grad():
        compiled.module.fc2.bias.fill_(150.0)  # near the targets' mean, so R² is a real number
    r = evaluate(compiled.module, ds)
    with torch.no_grad():
        pred = compiled.module(ds.x_test).numpy().astype(np.float64)
    y = ds.y_test.numpy().astype(np.float64)
    assert r.task == "regression" and r.split_used == "test"
    assert r.mse == pytest.approx(mean_squared_error(y, pred), rel=1e-6)
    assert r.mae == pytest.approx(mean_absolute_error(y, pred), rel=1e-6)
    assert r.r2 == pytest.approx(r2_score(y, pred), rel=1e-6)
    np.testing.assert_allclose(r.residuals, y - pred, rtol=1e-5)
    assert r.predicted.shape == r.actual.shape == (len(y), 1)
    doc = r.to_json()
    assert set(doc) >= {"mse", "mae", "r2", "predicted", "actual", "residuals"} and "accuracy" not in doc


def test_without_a_test_split_the_validation_split_is_evaluated_and_labelled():
    ds = load_dataset({"source": "iris", "test_fraction": 0.0, "val_fraction": 0.2})
    compiled = compile_graph(mlp((8,)), context_for(ds), seed=0)
    r = evaluate(compiled.module, ds)
    assert r.split == "test" and r.split_used == "val" and r.n_samples == ds.n_val
    assert "no test split" in r.note and "validation" in r.note
    assert evaluate(compiled.module, ds, split="train").n_samples == ds.n_train
    empty = load_dataset({"source": "iris", "test_fraction": 0.0, "val_fraction": 0.0})
    with pytest.raises(NotApplicable, match="validation split of this dataset is empty"):
        evaluate(compiled.module, empty, split="val")
    with pytest.raises(NotApplicable, match="Unknown split 'dev'"):
        evaluate(compiled.module, ds, split="dev")


def test_evaluation_restores_the_models_mode_and_reports_progress():
    ready, ds = trained_iris()
    ready.module.train()
    seen = []
    evaluate(ready, batch_size=10, progress=seen.append)
    assert ready.module.training  # back as it was
    assert seen[-1] == 1.0 and len(seen) >= 4 and seen == sorted(seen)


def test_to_json_has_the_keys_the_cli_promises():
    ready, _ = trained_iris()
    doc = json.loads(json.dumps(evaluate(ready).to_json()))
    assert {"accuracy", "per_class", "confusion_matrix", "class_names", "cells", "reliability",
            "confidently_wrong", "split_used"} <= set(doc)
    assert doc["class_names"] == ["setosa", "versicolor", "virginica"]
    assert all(isinstance(row, list) and len(row) == 3 for row in doc["confusion_matrix"])
    slim = evaluate(ready).to_json(include_samples=False)
    assert "cells" not in slim and "probabilities" not in slim and "confusion_matrix" in slim


def test_the_timeline_epochs_evaluate_with_their_own_weights(tmp_path, capsys):
    """Scrubbing the timeline: the weights kept for epoch 0 and for the end give their own matrices."""
    from engine.cli import run_cli
    from engine.model_at import model_at
    from engine.project import Project, save_project

    ready, ds = trained_iris()
    fresh = compile_graph(mlp((8,)), context_for(ds), seed=0).module.state_dict()
    trained = {k: v.clone() for k, v in ready.module.state_dict().items()}
    project = Project(graph=mlp((8,)), data=dict(ds.spec), weights=trained, checkpoints={0: fresh, 1: trained},
                      name="Iris timeline")
    at0, at1 = evaluate(model_at(project, 0, dataset=ds)), evaluate(model_at(project, 1, dataset=ds))
    now = evaluate(model_at(project, dataset=ds))
    assert at0.epoch == 0 and at1.epoch == 1 and now.epoch is None
    assert np.array_equal(at1.confusion_matrix, now.confusion_matrix)
    assert not np.array_equal(at0.confusion_matrix, at1.confusion_matrix) and at0.accuracy < at1.accuracy
    save_project(tmp_path / "timeline.layerlab", project)
    assert run_cli(["evaluate", str(tmp_path / "timeline.layerlab"), "--epoch", "0", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["epoch"] == 0 and doc["confusion_matrix"] == at0.confusion_matrix.tolist()
