"""engine.explain.attribution against references: closed forms on linear models, Captum called directly
on hand-written modules with the same weights, and planted-patch images whose answer is known."""
from __future__ import annotations

import math
import threading
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from engine.compile import compile_graph
from engine.data import load_dataset
from engine.explain import Cancelled, NotApplicable, attribute, get_method, gradient_field, methods_for
from engine.explain.attribution import METHODS, gaussian_blur, layer_choices
from engine.graph import Graph
from engine.project import load_starter
from engine.spec import InferContext
from engine.templates import chain
from explain_cases import (PATCH, accuracy, cnn_graph, iou, make_dataset, planted_patches, quadrant_of,
                           train_classifier)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- linear models: closed forms
def linear_model(n_in: int, n_out: int, task="classification", seed=0):
    g = Graph()
    chain(g, [("Input", {}), ("Linear", {"units": "auto"}), ("Output", {})])
    return compile_graph(g, InferContext((n_in,), n_out, task), seed=seed)


def test_linear_model_integrated_gradients_with_zero_baseline_is_w_times_x_and_saliency_is_abs_w():
    compiled = linear_model(6, 3)
    w = compiled.module.fc1.weight.detach()
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    for c in range(3):
        ig = attribute(compiled, x, [c] * 4, "integrated_gradients", baseline="zeros")
        np.testing.assert_allclose(ig.values, (w[c] * x).numpy(), rtol=1e-5, atol=1e-7)
        assert np.all(np.abs(ig.delta) < 1e-5)
        sal = attribute(compiled, x[0], c, "saliency")
        np.testing.assert_allclose(sal.values, w[c].abs().numpy(), rtol=1e-5)
        signed = attribute(compiled, x[0], c, "saliency", abs=False)
        np.testing.assert_allclose(signed.values, w[c].numpy(), rtol=1e-5)
        ixg = attribute(compiled, x[0], c, "input_x_gradient")
        np.testing.assert_allclose(ixg.values, (w[c] * x[0]).numpy(), rtol=1e-5)


def test_kernel_shap_of_a_linear_model_is_w_times_x_minus_baseline_with_the_feature_names():
    # exact for any sample of coalitions: the model is linear in the coalition vector
    compiled = linear_model(5, 2)
    w = compiled.module.fc1.weight.detach()
    x = torch.tensor([0.5, -1.0, 2.0, 0.3, -0.7])
    a = attribute(compiled, x, 1, "kernel_shap", output="logit", n_samples=100)
    np.testing.assert_allclose(a.values, (w[1] * x).numpy(), rtol=1e-4, atol=1e-5)
    ds = make_dataset(np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32), np.arange(40) % 2,
                      np.zeros((4, 5), np.float32), np.arange(4) % 2, ["no", "yes"],
                      feature_names=["age", "bmi", "bp", "s1", "s2"])
    named = attribute(compiled, x, 1, "lime", dataset=ds)
    assert [f["name"] for f in named.by_feature()] == ["age", "bmi", "bp", "s1", "s2"]


def test_the_gradient_field_of_a_logistic_model_is_p_times_1_minus_p_times_the_weight_difference():
    compiled = linear_model(2, 2)
    w = compiled.module.fc1.weight.detach().double()
    b = compiled.module.fc1.bias.detach().double()
    field = gradient_field(compiled, (-2, 2, -1, 1), n=7, target=1)
    assert field.value.shape == (7, 7) and field.gradient.shape == (7, 7, 2)
    yy, xx = np.meshgrid(field.ys, field.xs, indexing="ij")
    pts = torch.tensor(np.stack([xx, yy], -1).reshape(-1, 2), dtype=torch.float64)
    p = torch.softmax(pts @ w.T + b, 1)[:, 1]
    expect = (p * (1 - p))[:, None] * (w[1] - w[0])[None, :]
    np.testing.assert_allclose(field.value.reshape(-1), p.numpy(), rtol=1e-5)
    np.testing.assert_allclose(field.gradient.reshape(-1, 2), expect.numpy(), rtol=1e-4, atol=1e-7)
    assert field.xs[0] == -2 and field.xs[-1] == 2 and field.ys[0] == -1  # rows follow y, as the live view


def test_a_gradient_field_in_the_datas_units_is_autograd_through_the_standardisation():
    """Explain draws the plane in the data's units, as the boundary view does: its positions and
    gradients must be those of the model composed with the standardisation, checked by autograd."""
    from engine.data.dataset import Normalization

    compiled = linear_model(2, 2)
    norm = Normalization(mean=[3.0, -1.0], std=[2.0, 0.25])
    field = gradient_field(compiled, (-2, 2, -1, 1), n=5, target=1).in_units(norm.units(2))
    yy, xx = np.meshgrid(field.ys, field.xs, indexing="ij")
    raw = torch.tensor(np.stack([xx, yy], -1).reshape(-1, 2), dtype=torch.float32, requires_grad=True)
    p = torch.softmax(compiled.module(norm.apply(raw)), 1)[:, 1]
    (grad,) = torch.autograd.grad(p.sum(), raw)
    np.testing.assert_allclose(field.value.reshape(-1), p.detach().numpy(), rtol=1e-5)
    np.testing.assert_allclose(field.gradient.reshape(-1, 2), grad.numpy(), rtol=1e-4, atol=1e-7)
    assert (field.xs[0], field.xs[-1], field.ys[0]) == (-1.0, 7.0, -1.25)  # -2 * 2 + 3, 2 * 2 + 3, -1 / 4 - 1


# ----------------------------------------------------------------------------- Captum directly, same weights
class RefFashionCNN(nn.Module):
    """The fashion-cnn starter written by hand: conv 32 3x3 -> ReLU -> max-pool 2 -> flatten -> linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.maxpool1 = nn.MaxPool2d(2)
        self.flatten1 = nn.Flatten()
        self.fc1 = nn.Linear(32 * 14 * 14, 10)

    def forward(self, x):
        return self.fc1(self.flatten1(self.maxpool1(self.relu1(self.conv1(x)))))


@pytest.fixture(scope="module")
def fashion():
    """The fashion-cnn starter's graph with seeded weights, its data and the same net by hand."""
    project = load_starter("fashion-cnn")
    ds = load_dataset(project.data)
    ctx = InferContext(ds.input_shape, ds.n_outputs, ds.task)
    compiled = compile_graph(project.graph, ctx, seed=0)
    compiled.module.eval()
    ref = RefFashionCNN().eval()
    ref.load_state_dict(compiled.module.state_dict())
    return compiled, ds, ref


def _ref(name, ref, x, t, ds):
    """The map of method ``name`` from Captum called directly on the hand-written module."""
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import (GradientShap, GuidedGradCam, InputXGradient, IntegratedGradients, KernelShap,
                             LayerAttribution, LayerGradCam, Lime, NoiseTunnel, Occlusion, Saliency)

    data_range = float(ds.x_train.max() - ds.x_train.min())
    if name == "saliency":
        return Saliency(ref).attribute(x, target=t)
    if name == "input_x_gradient":
        return InputXGradient(ref).attribute(x, target=t)
    if name == "integrated_gradients":
        return IntegratedGradients(ref).attribute(x, baselines=ds.x_train.mean(0, keepdim=True), target=t,
                                                  n_steps=50, method="gausslegendre")
    if name == "smoothgrad":
        torch.manual_seed(0)
        return NoiseTunnel(Saliency(ref)).attribute(x, nt_type="smoothgrad", nt_samples=25,
                                                    stdevs=0.15 * data_range, target=t)
    if name == "gradcam":
        cam = LayerGradCam(ref, ref.maxpool1).attribute(x, target=t, relu_attributions=True)
        return LayerAttribution.interpolate(cam, (28, 28), "bilinear")
    if name == "guided_gradcam":
        return GuidedGradCam(ref, ref.maxpool1).attribute(x, target=t)
    if name == "occlusion":
        return Occlusion(ref).attribute(x, sliding_window_shapes=(1, 4, 4), strides=(1, 2, 2), baselines=0.0,
                                        target=t)
    if name == "gradient_shap":
        torch.manual_seed(0)
        np.random.seed(0)  # Captum draws the points on the path with numpy
        baselines = ds.x_train[torch.randperm(ds.n_train)[:20]]
        return GradientShap(ref).attribute(x, baselines=baselines, n_samples=20, stdevs=0.0, target=t)
    # KernelSHAP and LIME: probabilities, 4x4 patches as features, zeros baseline
    patches = (torch.arange(28)[:, None] // 4) * 7 + torch.arange(28)[None, :] // 4
    mask = patches.reshape(1, 1, 28, 28)
    torch.manual_seed(0)
    probs = lambda inp: torch.softmax(ref(inp), 1)  # noqa: E731
    kind = KernelShap(probs) if name == "kernel_shap" else Lime(probs, interpretable_model=SkLearnRidge(alpha=1.0))
    return kind.attribute(x, baselines=torch.zeros_like(x), target=t, feature_mask=mask, n_samples=200,
                          perturbations_per_eval=50)


@pytest.mark.parametrize("name", list(METHODS))
def test_each_method_equals_captum_called_directly_on_a_hand_written_module(fashion, name):
    compiled, ds, ref = fashion
    x = ds.x_test[3:4]
    t = 7
    options = {"baseline": "mean"} if name == "integrated_gradients" else {}
    ours = attribute(compiled, x[0], t, name, dataset=ds, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # guided backprop announces its ReLU hooks
        theirs = _ref(name, ref, x.clone().requires_grad_(), t, ds).detach()[0]
    assert ours.values.shape == (1, 28, 28)
    assert np.abs(ours.values).max() > 0, "an all-zero map would match anything"
    assert_close(torch.as_tensor(ours.values), theirs, rtol=1e-4, atol=1e-6)
    if name == "gradcam":
        assert ours.layer == "maxpool1" and ours.layer_map.shape == (14, 14)


def test_stochastic_methods_are_reproducible_and_leave_the_global_rng_alone(fashion):
    compiled, ds, _ = fashion
    torch.manual_seed(123)
    np.random.seed(123)
    before = torch.rand(1), np.random.random()
    torch.manual_seed(123)
    np.random.seed(123)
    attribute(compiled, ds.x_test[0], 2, "gradient_shap", dataset=ds, seed=5)
    a = attribute(compiled, ds.x_test[0], 2, "smoothgrad", dataset=ds, seed=5)
    after = torch.rand(1), np.random.random()
    assert torch.equal(before[0], after[0]) and before[1] == after[1]
    b = attribute(compiled, ds.x_test[0], 2, "smoothgrad", dataset=ds, seed=5)
    c = attribute(compiled, ds.x_test[0], 2, "smoothgrad", dataset=ds, seed=6)
    assert np.array_equal(a.values, b.values) and not np.array_equal(a.values, c.values)


def test_gradcam_on_a_merge_node_hooks_a_tap_equal_to_an_identity_after_the_add():
    from captum.attr import LayerAttribution, LayerGradCam

    g = Graph()
    inp, conv1, relu1 = chain(g, [("Input", {}), ("Conv2d", {"out_channels": 4, "padding": 1}), ("ReLU", {})])
    (conv2,) = chain(g, [("Conv2d", {"out_channels": 4, "padding": 1})], start=relu1)
    add = g.add_node("Add", {})
    g.connect(relu1.id, add.id)
    g.connect(conv2.id, add.id)
    chain(g, [("Flatten", {}), ("Linear", {"units": "auto"}), ("Output", {})], start=add)
    compiled = compile_graph(g, InferContext((1, 8, 8), 3, "classification"), seed=0)
    assert any(n.op == "call_function" and n.name == add.name for n in compiled.module.graph.nodes)

    class Ref(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.relu1 = nn.Conv2d(1, 4, 3, padding=1), nn.ReLU()
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
            self.tap = nn.Identity()
            self.flatten1, self.fc1 = nn.Flatten(), nn.Linear(4 * 8 * 8, 3)

        def forward(self, x):
            r = self.relu1(self.conv1(x))
            return self.fc1(self.flatten1(self.tap(r + self.conv2(r))))

    ref = Ref()
    ref.load_state_dict(compiled.module.state_dict())
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    ours = attribute(compiled, x, [0, 2], "gradcam", layer=add.name)
    cam = LayerGradCam(ref, ref.tap).attribute(x, target=[0, 2], relu_attributions=True)
    theirs = LayerAttribution.interpolate(cam, (8, 8), "bilinear")
    assert ours.layer == add.name and np.abs(ours.values).max() > 0
    assert_close(torch.as_tensor(ours.values), theirs.detach(), rtol=1e-4, atol=1e-6)
    assert add.name in layer_choices(compiled, x[0])
    # the original module is untouched: still one call_function, no tap submodule
    assert not any("tap" in name for name, _ in compiled.module.named_children())


def test_gaussian_blur_equals_scipy():
    from scipy.ndimage import gaussian_filter

    x = torch.rand(2, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    for sigma in (1.0, 2.0):
        ours = gaussian_blur(x, sigma).numpy()
        theirs = gaussian_filter(x.numpy(), sigma=(0, 0, sigma, sigma), mode="mirror", truncate=3.0)
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- planted patches: known answers
@pytest.fixture(scope="module")
def presence():
    """Class = a bright patch is present (1) or not (0), in a random quadrant; a small CNN trained on it."""
    x_tr, p_tr, _, _ = planted_patches(600, seed=0)
    x_te, p_te, q_te, m_te = planted_patches(200, seed=1)
    ds = make_dataset(x_tr, p_tr.astype(int), x_te, p_te.astype(int), ["absent", "present"])
    compiled = train_classifier(cnn_graph("gap"), ds, epochs=3, lr=1e-2)
    assert accuracy(compiled.module, ds.x_test, ds.y_test) >= 0.98
    return compiled, ds, q_te, m_te


def top_pixels(values: np.ndarray, k: int) -> np.ndarray:
    """The k most attributed pixels as a mask (a map's own localisation, whatever its scale)."""
    mask = np.zeros(values.shape, dtype=bool)
    mask.flat[np.argsort(-values.ravel(), kind="stable")[:k]] = True
    return mask


def test_gradcam_peaks_in_the_patch_quadrant_and_overlaps_the_patch(presence):
    compiled, ds, quadrant, masks = presence
    idx = np.flatnonzero(quadrant >= 0)
    cam = attribute(compiled, ds.x_test[idx], 1, "gradcam", dataset=ds, layer="relu2").values[:, 0]
    peaks = [np.unravel_index(cam[k].argmax(), cam[k].shape) for k in range(len(idx))]
    in_quadrant = np.mean([quadrant_of(*p) == quadrant[i] for p, i in zip(peaks, idx)])
    ious = [iou(top_pixels(cam[k], PATCH * PATCH), masks[i]) for k, i in enumerate(idx)]
    assert in_quadrant >= 0.95, in_quadrant
    assert np.mean(ious) >= 0.45, np.mean(ious)


def test_integrated_gradients_is_complete_on_a_cnn(presence):
    compiled, ds, quadrant, _ = presence
    idx = np.flatnonzero(quadrant >= 0)[:10]
    for baseline in ("zeros", "mean", "blurred"):
        a = attribute(compiled, ds.x_test[idx], 1, "integrated_gradients", dataset=ds, baseline=baseline, n_steps=50)
        assert np.all(a.relative_delta <= 0.05), (baseline, a.relative_delta)
        # the delta is what it says: sum of the map minus the change of the score
        with torch.no_grad():
            base = {"zeros": torch.zeros_like(ds.x_test[idx]), "mean": ds.x_train.mean(0, keepdim=True),
                    "blurred": gaussian_blur(ds.x_test[idx], 4.0)}[baseline]
            change = compiled.module(ds.x_test[idx])[:, 1] - compiled.module(base.expand_as(ds.x_test[idx]))[:, 1]
        np.testing.assert_allclose(a.values.reshape(len(idx), -1).sum(1) - change.numpy(), a.delta, atol=1e-4)


@pytest.fixture(scope="module")
def where():
    """Class = the quadrant the patch lies in; a CNN with a flatten head (it must know positions)."""
    x_tr, _, q_tr, _ = planted_patches(800, seed=0, present_fraction=1.0)
    x_te, _, q_te, m_te = planted_patches(20, seed=1, present_fraction=1.0)
    ds = make_dataset(x_tr, q_tr, x_te, q_te, ["top left", "top right", "bottom left", "bottom right"])
    compiled = train_classifier(cnn_graph("flatten"), ds, epochs=4, lr=1e-2)
    assert accuracy(compiled.module, ds.x_test, ds.y_test) >= 0.95
    return compiled, ds, q_te, m_te


def test_occlusion_finds_the_patch_that_decides_the_quadrant(where):
    compiled, ds, quadrant, masks = where
    a = attribute(compiled, ds.x_test, quadrant.tolist(), "occlusion", dataset=ds, window=4, stride=1,
                  baseline="mean")
    ious = [iou(top_pixels(a.values[k, 0], PATCH * PATCH), masks[k]) for k in range(len(quadrant))]
    assert np.mean(ious) >= 0.75, np.mean(ious)


# ----------------------------------------------------------------------------- jobs: progress and cancel
@pytest.mark.parametrize("name,options", [("kernel_shap", {"n_samples": 400, "perturbations_per_eval": 20}),
                                          ("lime", {"n_samples": 400, "perturbations_per_eval": 20}),
                                          ("occlusion", {"stride": 1, "perturbations_per_eval": 16}),
                                          ("integrated_gradients", {"n_steps": 200, "chunk": 10}),
                                          ("smoothgrad", {"nt_samples": 40, "chunk": 4})])
def test_long_methods_report_progress_and_stop_when_cancelled(fashion, name, options):
    compiled, ds, _ = fashion
    seen: list[float] = []
    a = attribute(compiled, ds.x_test[0], 1, name, dataset=ds, progress=seen.append, **options)
    assert a.values.shape == (1, 28, 28)
    assert len(seen) >= 5 and seen == sorted(seen) and seen[-1] == 1.0 and 0 < seen[1] < 1

    stop = threading.Event()
    fractions: list[float] = []

    def progress(f):
        fractions.append(f)
        if f >= 0.3:
            stop.set()

    with pytest.raises(Cancelled):
        attribute(compiled, ds.x_test[0], 1, name, dataset=ds, cancel=stop, progress=progress, **options)
    assert 0.3 <= max(fractions) < 0.6  # it stopped soon after the request, long before the end


def test_a_cancelled_flag_stops_before_any_work(fashion):
    compiled, ds, _ = fashion
    with pytest.raises(Cancelled, match="cancelled"):
        attribute(compiled, ds.x_test[0], 1, "occlusion", dataset=ds, cancel=lambda: True)


# ----------------------------------------------------------------------------- bad input: one sentence
def test_gradcam_on_a_non_spatial_node_names_the_spatial_ones(fashion):
    compiled, ds, _ = fashion
    with pytest.raises(NotApplicable) as e:
        attribute(compiled, ds.x_test[0], 1, "gradcam", dataset=ds, layer="fc1")
    msg = str(e.value)
    assert "'fc1' gives (10,)" in msg and "conv1, relu1, maxpool1" in msg and "\n" not in msg
    with pytest.raises(NotApplicable, match="'nope' is not a node of this graph; the layers are: conv1"):
        attribute(compiled, ds.x_test[0], 1, "gradcam", dataset=ds, layer="nope")


def test_methods_that_do_not_fit_say_why():
    tab = linear_model(4, 3)
    reasons = {m["name"]: m for m in methods_for(tab)}
    assert not reasons["gradcam"]["supported"] and "image input" in reasons["gradcam"]["reason"]
    assert not reasons["gradient_shap"]["supported"] and "training split" in reasons["gradient_shap"]["reason"]
    assert reasons["saliency"]["supported"] and reasons["saliency"]["reason"] == ""
    assert not get_method("gradcam").supports(tab) and get_method("ig").supports(tab)
    with pytest.raises(NotApplicable, match="needs image input"):
        attribute(tab, torch.zeros(4), 0, "gradcam")
    with pytest.raises(NotApplicable, match="'blurred' baseline is for images"):
        attribute(tab, torch.zeros(4), 0, "ig", baseline="blurred")
    with pytest.raises(NotApplicable, match="Unknown attribution method 'deeplift'"):
        attribute(tab, torch.zeros(4), 0, "deeplift")


def test_bad_options_targets_and_shapes_are_refused_with_a_sentence(fashion):
    compiled, ds, _ = fashion
    x = ds.x_test[0]
    cases = [
        (dict(method="ig", n_stepz=5), "Integrated Gradients has no option 'n_stepz'; its options are: n_steps"),
        (dict(method="ig", n_steps=1), "The option 'n_steps' of Integrated Gradients must lie in 2..2000, got 1"),
        (dict(method="ig", n_steps="many"), "option 'n_steps' of Integrated Gradients must be a whole number"),
        (dict(method="ig", baseline="grey"), "option 'baseline' of Integrated Gradients must be one of zeros, mean, blurred"),
        (dict(method="saliency", target=10), "Target 10 is not an output of this model; choose class 0..9 "
                                             "(T-shirt/top .. Ankle boot)"),
    ]
    for kwargs, words in cases:
        target = kwargs.pop("target", 1)
        with pytest.raises(NotApplicable) as e:
            attribute(compiled, x, target, dataset=ds, **kwargs)
        assert words in str(e.value), str(e.value)
    with pytest.raises(NotApplicable, match=r"shape \(28, 28\) but the model takes \(1, 28, 28\)"):
        attribute(compiled, x[0], 1, "saliency", dataset=ds)


def test_every_method_has_a_schema_a_form_can_be_built_from():
    for m in METHODS.values():
        assert m.title and m.description.endswith(".")
        for opt in m.schema():
            assert set(opt) == {"name", "kind", "default", "help", "min", "max", "choices"}
            assert opt["kind"] in ("int", "float", "bool", "choice") and opt["help"]
            if opt["kind"] == "choice":
                assert opt["default"] in opt["choices"]
            elif opt["kind"] in ("int", "float"):
                assert opt["min"] <= opt["default"] <= opt["max"]
        assert m.resolve({}) == m.defaults()
    assert "deep_lift" not in METHODS and math.isclose(METHODS["smoothgrad"].defaults()["noise"], 0.15)
