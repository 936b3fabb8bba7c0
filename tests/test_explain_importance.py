"""Feature importance on tabular data with a planted answer: one informative column among noise."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.compile import compile_graph
from engine.explain import Cancelled, NotApplicable, mean_abs_shap, permutation_importance
from engine.graph import Graph
from engine.spec import InferContext
from engine.templates import chain, mlp
from explain_cases import make_dataset

NAMES = ["noise_a", "signal", "noise_b", "noise_c", "noise_d"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def planted(task: str, seed: int = 0):
    """Five standard-normal columns; only ``signal`` decides the class (or the target)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, 5)).astype(np.float32)
    if task == "classification":
        y = (x[:, 1] + 0.2 * rng.normal(size=600) > 0).astype(int)
        ds = make_dataset(x[:400], y[:400], x[400:], y[400:], ["low", "high"], feature_names=NAMES)
    else:
        y = (3 * x[:, 1] + 0.3 * rng.normal(size=600)).astype(np.float32).reshape(-1, 1)
        ds = make_dataset(x[:400], y[:400], x[400:], y[400:], [], feature_names=NAMES, task="regression")
    compiled = compile_graph(mlp((16,)), InferContext((5,), ds.n_outputs, task), seed=seed)
    opt = torch.optim.Adam(compiled.module.parameters(), lr=0.03)
    for _ in range(150):
        opt.zero_grad()
        out = compiled.module(ds.x_train)
        loss = (torch.nn.functional.cross_entropy(out, ds.y_train) if task == "classification"
                else torch.nn.functional.mse_loss(out, ds.y_train))
        loss.backward()
        opt.step()
    compiled.module.eval()
    return compiled, ds


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_permutation_importance_ranks_the_planted_feature_first(task):
    compiled, ds = planted(task)
    result = permutation_importance(compiled, ds, n_repeats=5, seed=0)
    features = result.features()
    assert features[0]["name"] == "signal"
    assert features[0]["importance"] > 0.3  # shuffling it costs a third of accuracy / R² at least
    assert all(abs(f["importance"]) < 0.05 for f in features[1:]), features
    assert result.raw.shape == (5, 5) and np.all(result.std >= 0)
    assert result.scoring == ("accuracy" if task == "classification" else "r2")
    assert result.baseline_score > (0.9 if task == "classification" else 0.95)
    assert [f["importance"] for f in features] == sorted((f["importance"] for f in features), reverse=True)
    # each repeat is the score lost when that one column is shuffled: recompute one by hand
    x, y = ds.x_test.numpy(), ds.y_test.numpy()
    col = NAMES.index("signal")
    rng = np.random.default_rng(3)
    shuffled = x.copy()
    shuffled[:, col] = shuffled[rng.permutation(len(x)), col]
    with torch.no_grad():
        out = compiled.module(torch.from_numpy(shuffled)).numpy()
    if task == "classification":
        drop = result.baseline_score - float((out.argmax(1) == y).mean())
    else:
        from sklearn.metrics import r2_score
        drop = result.baseline_score - r2_score(y, out)
    assert drop == pytest.approx(result.importance[col], abs=4 * result.std[col] + 0.05)


def test_a_model_that_ignores_a_feature_gives_it_exactly_zero():
    _, ds = planted("classification")
    g = Graph()
    chain(g, [("Input", {}), ("Linear", {"units": "auto"}), ("Output", {})])
    compiled = compile_graph(g, InferContext((5,), 2, "classification"), seed=0)
    with torch.no_grad():
        compiled.module.fc1.weight.zero_()
        compiled.module.fc1.weight[1, 1] = 1.0  # class "high" when signal > 0, nothing else looked at
        compiled.module.fc1.bias.zero_()
    result = permutation_importance(compiled, ds, n_repeats=3)
    imp = dict(zip(result.names, result.importance))
    assert all(imp[n] == 0.0 for n in NAMES if n != "signal") and imp["signal"] > 0.3


def test_mean_abs_shap_ranks_the_planted_feature_first_with_the_header_names():
    compiled, ds = planted("classification")
    result = mean_abs_shap(compiled, ds, n_rows=12, n_samples=64)
    features = result.features()
    assert [f["name"] for f in features][0] == "signal" and {f["name"] for f in features} == set(NAMES)
    assert features[0]["importance"] > 3 * features[1]["importance"]
    assert result.raw.shape == (12, 5) and result.to_json()["features"] == features


def test_importance_refuses_images_and_can_be_cancelled():
    x = np.zeros((20, 1, 4, 4), np.float32)
    images = make_dataset(x, np.arange(20) % 2, x[:4], np.arange(4) % 2, ["a", "b"])
    g = Graph()
    chain(g, [("Input", {}), ("Flatten", {}), ("Linear", {"units": "auto"}), ("Output", {})])
    compiled = compile_graph(g, InferContext((1, 4, 4), 2, "classification"), seed=0)
    with pytest.raises(NotApplicable, match="for tabular data .* shape \\(1, 4, 4\\)"):
        permutation_importance(compiled, images)
    tab_model, ds = planted("classification")
    with pytest.raises(Cancelled):
        permutation_importance(tab_model, ds, n_repeats=50, cancel=lambda: True)
