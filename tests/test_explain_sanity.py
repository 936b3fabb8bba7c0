"""The model-randomisation sanity check, activation maximisation and the overlay renderer."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from engine.compile import compile_graph
from engine.explain import Cancelled, NotApplicable, activation_maximization, render_overlay, sanity_check
from engine.explain.sanity import weighted_layers
from engine.graph import Graph
from engine.spec import InferContext
from engine.templates import chain
from explain_cases import accuracy, cnn_graph, make_dataset, planted_patches, train_classifier


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def presence():
    """Patch present or not; a CNN whose head sees positions (flatten), as the seed tutorial's does.
    (With global average pooling and two classes, a random top layer only flips the gradient's sign,
    and |saliency| keeps its ranks: a true finding, but not this test's.)"""
    x_tr, p_tr, _, _ = planted_patches(600, seed=0)
    x_te, p_te, _, _ = planted_patches(40, seed=1)
    ds = make_dataset(x_tr, p_tr.astype(int), x_te, p_te.astype(int), ["absent", "present"])
    compiled = train_classifier(cnn_graph("flatten"), ds, epochs=3, lr=1e-2)
    assert accuracy(compiled.module, ds.x_test, ds.y_test) >= 0.95
    return compiled, ds, np.flatnonzero(p_te)


# ----------------------------------------------------------------------------- sanity check
def test_randomising_the_top_layer_decorrelates_saliency_and_the_model_is_left_alone(presence):
    compiled, ds, with_patch = presence
    before = {k: v.clone() for k, v in compiled.module.state_dict().items()}
    x = ds.x_test[with_patch[0]]
    result = sanity_check(compiled, x, 1, methods=("saliency", "gradcam", "ig"), dataset=ds, layer="relu2")
    assert result.layers == ["fc1", "conv2", "conv1"] == list(reversed(weighted_layers(compiled.module)))
    assert [s.layer for s in result.stages] == [None, "fc1", "conv2", "conv1"]
    assert result.stages[2].randomized == ["fc1", "conv2"]
    assert result.stages[0].spearman == {"saliency": 1.0, "gradcam": 1.0, "integrated_gradients": 1.0}
    top = result.stages[1]
    assert top.spearman["saliency"] < 0.8, top.spearman
    assert all(s.spearman["saliency"] < 0.4 for s in result.stages[2:]), [s.spearman for s in result.stages]
    # the reported figure is scipy's Spearman rho on |map|
    rho = spearmanr(np.abs(result.stages[0].maps["saliency"]).ravel(), np.abs(top.maps["saliency"]).ravel())
    assert top.spearman["saliency"] == pytest.approx(rho.statistic)
    assert top.maps["saliency"].shape == (1, 28, 28)
    for k, v in compiled.module.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed: the check must work on a copy"
    # and explanations of the trained model afterwards are those of the trained model, not the copy's
    from engine.explain import attribute
    again = attribute(compiled, x, 1, "gradcam", dataset=ds, layer="relu2").values
    np.testing.assert_allclose(again, result.stages[0].maps["gradcam"], rtol=1e-5, atol=1e-7)
    doc = result.to_json(include_maps=False)
    assert doc["stages"][1]["layer"] == "fc1" and "maps" not in doc["stages"][1]


def test_sanity_check_is_seeded_and_refuses_unknown_layers(presence):
    compiled, ds, with_patch = presence
    x = ds.x_test[with_patch[1]]
    a = sanity_check(compiled, x, 1, methods=("saliency",), dataset=ds, layers=["fc1"], seed=3)
    b = sanity_check(compiled, x, 1, methods=("saliency",), dataset=ds, layers=["fc1"], seed=3)
    assert np.array_equal(a.stages[1].maps["saliency"], b.stages[1].maps["saliency"])
    with pytest.raises(NotApplicable, match="'relu1' is not a layer with weights; .*conv1, conv2, fc1"):
        sanity_check(compiled, x, 1, methods=("saliency",), dataset=ds, layers=["relu1"])
    with pytest.raises(Cancelled):
        sanity_check(compiled, x, 1, methods=("saliency",), dataset=ds, cancel=lambda: True)


# ----------------------------------------------------------------------------- activation maximisation
def test_activation_maximisation_of_a_linear_score_with_l2_finds_the_weight_vector():
    # maximise w.x + b - l2 |x|^2: the optimum is x = w / (2 l2); l2 = 0.5 gives x = w
    g = Graph()
    chain(g, [("Input", {}), ("Linear", {"units": "auto"}), ("Output", {})])
    compiled = compile_graph(g, InferContext((12,), 3, "classification"), seed=0)
    w = compiled.module.fc1.weight.detach()[2].numpy()
    result = activation_maximization(compiled, target=2, l2=0.5, tv=0.0, jitter=0, steps=600, lr=0.005,
                                     data_range=(-2.0, 2.0))
    np.testing.assert_allclose(result.image, w, atol=0.02)
    assert result.final_value > result.start_value and result.objective == "class 2"


def test_activation_maximisation_finds_what_the_patch_detector_looks_for(presence):
    compiled, ds, _ = presence
    seen = []
    result = activation_maximization(compiled, target=1, dataset=ds, steps=80, progress=seen.append)
    img = result.image
    assert img.shape == (1, 28, 28) and img.min() >= 0.0 and img.max() <= 1.0  # clamped to the data's range
    with torch.no_grad():
        score = compiled.module(torch.as_tensor(img)[None])[0, 1]
        typical = compiled.module(ds.x_train[ds.y_train == 1])[:, 1].mean()
    assert result.final_value == pytest.approx(float(score), rel=1e-4)
    assert result.final_value > result.start_value and result.final_value > typical  # beyond a real patch image
    assert result.objective == "class 1 (present)" and seen[-1] == 1.0
    unit = activation_maximization(compiled, layer="conv1", unit=3, dataset=ds, steps=40)
    assert unit.final_value > unit.start_value and unit.objective == "unit 3 of conv1"
    with pytest.raises(NotApplicable, match="conv1 has 8 units"):
        activation_maximization(compiled, layer="conv1", unit=8, dataset=ds, steps=2)
    with pytest.raises(NotApplicable, match="not both"):
        activation_maximization(compiled, target=1, layer="conv1", unit=0, dataset=ds)
    with pytest.raises(Cancelled):
        activation_maximization(compiled, target=1, dataset=ds, cancel=lambda: True)


# ----------------------------------------------------------------------------- the overlay
def test_render_overlay_shows_the_image_where_the_map_is_zero_and_colour_where_it_peaks():
    image = np.linspace(0, 1, 16, dtype=np.float32).reshape(1, 4, 4)
    attr = np.zeros((1, 4, 4))
    attr[0, 1, 2] = 2.0  # the strongest pixel
    attr[0, 3, 3] = 1.0
    rgb = render_overlay(image, attr, opacity=1.0)
    assert rgb.shape == (4, 4, 3) and rgb.dtype == np.uint8
    grey = np.round(np.linspace(0, 1, 16).reshape(4, 4) * 255).astype(np.uint8)
    untouched = attr[0] == 0
    assert np.array_equal(rgb[untouched], np.repeat(grey[untouched][:, None], 3, axis=1))
    assert tuple(rgb[1, 2]) == (255, 255, 0)  # unsigned map: its peak is pure yellow at opacity 1
    assert rgb[3, 3, 0] > rgb[3, 3, 2]  # half strength: mixed towards red
    assert np.array_equal(render_overlay(image, attr, opacity=0.0)[..., 0], grey)
    signed = attr.copy()
    signed[0, 0, 0] = -2.0
    s = render_overlay(image, signed, opacity=1.0)
    assert s[1, 2, 0] > 200 and s[1, 2, 2] < 50  # positive: red
    assert s[0, 0, 2] > 200 and s[0, 0, 0] < 50  # negative: blue
    assert render_overlay(image, attr, scale=3).shape == (12, 12, 3)
    with pytest.raises(ValueError, match="opacity"):
        render_overlay(image, attr, opacity=1.5)
