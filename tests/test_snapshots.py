"""Headless snapshots for the live views (engine/snapshots.py) and the Qt-free training runner.

Every figure a view draws is checked against a reference computed another way: gradient norms
against autograd's gradients, activations against an fx.Interpreter walk, the boundary against
softmax of the model's own output, histograms against their element count.
"""
from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch
from torch import fx, nn

from engine.compile import compile_graph
from engine.data import load_dataset
from engine.project import load_starter
from engine.probes.activations import tap_module
from engine.smoothing import smooth_ema
from engine.snapshots import HIST_BINS, RawSnapshot, SnapshotCollector, state_dict_cpu
from engine.spec import InferContext


def compiled(starter: str, seed: int = 0):
    p = load_starter(starter)
    d = load_dataset(p.data)
    ctx = InferContext(d.input_shape, d.n_outputs, d.task)
    torch.manual_seed(seed)
    return p, d, compile_graph(p.graph, ctx)


@pytest.fixture(scope="module")
def moons():
    return compiled("moons-mlp")


@pytest.fixture(scope="module")
def cnn():
    return compiled("digits-cnn")


def _backward(module, x, y):
    module.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(module(x), y).backward()


# ----------------------------------------------------------------------------- collector
def test_moons_snapshot_has_every_view_and_matches_references(moons):
    p, d, cm = moons
    c = SnapshotCollector(cm.module, d, cm.node_names)
    _backward(cm.module, d.x_train[:32], d.y_train[:32])
    snap = c.collect(step=7, epoch=0.25, train_loss=0.5, lr=0.01)

    info = c.info
    assert [lay.name for lay in info.layers] == ["fc1", "fc2", "fc3"]
    assert info.relu_nodes == ("relu1", "relu2")
    assert set(info.node_ids.values()) <= set(cm.node_names)  # fx name -> graph node id
    # gradient norms: per layer, sqrt of the sum of its parameters' squared gradient norms
    for lay in info.layers:
        mod = cm.module.get_submodule(lay.name)
        ref = math.sqrt(sum(float(q.grad.norm()) ** 2 for q in mod.parameters()))
        assert snap.grad_norms[lay.name] == pytest.approx(ref, rel=1e-5)
    # histograms count every weight, on a range fixed at the start of the run
    for lay in info.layers:
        assert snap.weight_hist[lay.name].shape == (HIST_BINS,)
        assert snap.weight_hist[lay.name].sum() == pytest.approx(np.prod(lay.weight_shape))
        assert snap.weights[lay.name].shape == lay.weight_shape
    # activations: equal to an fx.Interpreter walk over the probe batch, in eval mode
    env = {}

    class Rec(fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            env[n.name] = out
            return out

    with torch.no_grad():
        Rec(cm.module).run(c.probe_x)
    for name in ("fc1", "relu1", "fc2", "relu2", "fc3"):
        np.testing.assert_allclose(snap.activations[name], env[name][:64].numpy(), rtol=2e-3, atol=2e-3)  # float16
    for relu in info.relu_nodes:
        a = env[relu].numpy()
        assert snap.dead_relu[relu] == pytest.approx(float((a <= 0).all(axis=0).mean()))
    # decision boundary: softmax of the model on the grid, row = y, column = x
    g = info.grid_size
    assert snap.boundary.shape == (g, g, 2)
    np.testing.assert_allclose(snap.boundary.sum(-1), 1.0, rtol=1e-5)
    x0, x1, y0, y1 = info.grid_extent
    corner = torch.tensor([[x1, y0]])
    with torch.no_grad():
        ref = torch.softmax(cm.module(corner), 1)[0].numpy()
    np.testing.assert_allclose(snap.boundary[0, -1], ref, rtol=1e-4, atol=1e-6)
    assert snap.train_loss == 0.5 and snap.lr == 0.01 and snap.step == 7
    assert info.train_xy[0].shape[1] == 2 and len(info.val_xy[0]) > 0
    assert cm.module.training  # collecting switched to eval and back


def test_grad_tap_records_the_next_backward_then_removes_itself(moons):
    p, d, cm = moons
    c = SnapshotCollector(cm.module, d, cm.node_names)
    c.arm_grad_tap()
    _backward(cm.module, d.x_train[:32], d.y_train[:32])
    ref = {lay.name: math.sqrt(sum(float(q.grad.norm()) ** 2 for q in cm.module.get_submodule(lay.name).parameters()))
           for lay in c.info.layers}
    for q in cm.module.parameters():  # as at a pause: the gradients are freed before the snapshot
        q.grad = None
    snap = c.collect()
    for name, v in ref.items():
        assert snap.grad_norms[name] == pytest.approx(v, rel=1e-5)
    assert all(not q._post_accumulate_grad_hooks for q in cm.module.parameters())
    assert c.collect().grad_norms == {}  # read once


class NormNet(nn.Module):
    """With BatchNorm: a frame must carry running statistics as well as parameters."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(2, 16)
        self.bn1 = nn.BatchNorm1d(16)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(16, 2)

    def forward(self, x):
        return self.fc2(self.relu1(self.bn1(self.fc1(x))))


@pytest.mark.parametrize("which", ["moons", "cnn", "batchnorm"])
def test_a_frame_rebuilt_on_a_replica_is_the_snapshot_of_the_trained_model(which, request):
    if which == "batchnorm":
        d = request.getfixturevalue("moons")[1]
        torch.manual_seed(1)
        trained, replica, names = fx.symbolic_trace(NormNet()), fx.symbolic_trace(NormNet()), {}
    else:
        p, d, cm = request.getfixturevalue(which)
        ctx = InferContext(d.input_shape, d.n_outputs, d.task)
        trained, names = cm.module, cm.node_names
        replica = compile_graph(p.graph, ctx, seed=123).module  # same graph, other weights
    # move the trained model away from its initial weights and statistics
    opt = torch.optim.SGD(trained.parameters(), lr=0.5)
    for i in range(3):
        _backward(trained, d.x_train[i * 32:(i + 1) * 32], d.y_train[i * 32:(i + 1) * 32])
        opt.step()
    c = SnapshotCollector(trained, d, names)
    c.arm_grad_tap()
    _backward(trained, d.x_train[:32], d.y_train[:32])
    ref_norms = {lay.name: math.sqrt(sum(float(q.grad.norm()) ** 2
                                         for q in trained.get_submodule(lay.name).parameters()))
                 for lay in c.info.layers}
    for q in trained.parameters():  # as at a pause: the gradients are gone when the snapshot comes
        q.grad = None

    frame = c.raw(step=9, epoch=1.5, samples=288, elapsed_s=0.5, train_loss=0.25, lr=0.01)
    assert isinstance(frame, RawSnapshot) and frame.state.dtype == np.float32
    assert frame.state.size == c.state_size == sum(t.numel() for t in trained.state_dict().values()
                                                   if t.is_floating_point())
    ref = c.collect(grads=False)
    builder = SnapshotCollector(replica, d, names)
    builder.adopt(c.info)  # the replica's own initial weights would fix other histogram ranges
    built = builder.from_raw(frame)

    assert (built.step, built.epoch, built.samples, built.train_loss, built.lr) == (9, 1.5, 288, 0.25, 0.01)
    assert built.grad_norms == pytest.approx(ref_norms, rel=1e-5)
    for k, v in trained.state_dict().items():
        assert torch.equal(replica.state_dict()[k], v) or not v.is_floating_point(), k
    for key in ("weights", "weight_hist", "activations"):
        a, b = getattr(ref, key), getattr(built, key)
        assert a.keys() == b.keys() and a, key
        for name in a:
            np.testing.assert_allclose(b[name].astype(np.float32), a[name].astype(np.float32), rtol=1e-5, atol=1e-6)
    assert built.dead_relu == pytest.approx(ref.dead_relu)
    if ref.boundary is not None:
        np.testing.assert_allclose(built.boundary, ref.boundary, rtol=1e-5, atol=1e-6)


def test_a_raw_snapshot_of_another_model_is_refused(moons, cnn):
    frame = SnapshotCollector(moons[2].module, moons[1], moons[2].node_names).raw()
    other = SnapshotCollector(cnn[2].module, cnn[1], cnn[2].node_names)
    with pytest.raises(ValueError, match="does not fit"):
        other.from_raw(frame)
    with pytest.raises(ValueError, match="other layers"):
        other.adopt(SnapshotCollector(moons[2].module, moons[1], moons[2].node_names).info)


def test_large_matrices_are_pooled_to_the_largest_magnitude_of_each_block():
    from engine.probes.weights import MAX_MATRIX, max_magnitude_pool

    g = torch.Generator().manual_seed(0)
    w = torch.randn(300, 200, generator=g)
    w[17, 150] = -50.0  # the most salient weight must survive, sign and all
    small = max_magnitude_pool(w, (MAX_MATRIX, MAX_MATRIX))
    assert small.shape == (MAX_MATRIX, MAX_MATRIX) and (small == -50.0).sum() == 1
    for i, j in [(0, 0), (5, 77), (MAX_MATRIX - 1, MAX_MATRIX - 1), (63, 100)]:
        # adaptive pooling's block: rows floor(i*H/h) .. ceil((i+1)*H/h)
        r0, r1 = (i * 300) // MAX_MATRIX, -((-(i + 1) * 300) // MAX_MATRIX)
        c0, c1 = (j * 200) // MAX_MATRIX, -((-(j + 1) * 200) // MAX_MATRIX)
        block = w[r0:r1, c0:c1]
        assert small[i, j] == block.reshape(-1)[block.abs().argmax()]

    # what a snapshot carries for such layers
    ds = types.SimpleNamespace(task="classification", input_shape=(300,), n_outputs=2,
                               x_train=torch.randn(64, 300, generator=g), y_train=torch.randint(0, 2, (64,), generator=g),
                               x_val=torch.randn(16, 300, generator=g), y_val=torch.randint(0, 2, (16,), generator=g))
    class Wide(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.relu1, self.fc2 = nn.Linear(300, 200), nn.ReLU(), nn.Linear(200, 2)

        def forward(self, x):
            return self.fc2(self.relu1(self.fc1(x)))

    model = fx.symbolic_trace(Wide())
    snap = SnapshotCollector(model, ds).collect()
    expected = max_magnitude_pool(model.fc1.weight.detach(), (MAX_MATRIX, MAX_MATRIX))
    np.testing.assert_array_equal(snap.weights["fc1"], expected.numpy())
    assert snap.weights["fc2"].shape == (2, MAX_MATRIX)  # 2 x 200: only the long side shrinks


def test_the_weights_view_says_what_its_picture_leaves_out():
    from engine.snapshots import LayerInfo
    from gui.views.weights_view import shown_note

    lin = LayerInfo("fc1", "linear", (784, 300), 0, (-1.0, 1.0))
    assert shown_note(lin, np.zeros((128, 128))) == " (pooled to 128×128)"
    assert shown_note(LayerInfo("fc2", "linear", (64, 32), 0, (-1.0, 1.0)), np.zeros((64, 32))) == ""
    conv = LayerInfo("c", "conv", (128, 96, 3, 3), 0, (-1.0, 1.0))
    assert shown_note(conv, np.zeros((64, 64, 3, 3))) == " (first 64 of 128 filters, first 64 of 96 input channels)"


def test_tap_module_shares_parameters_and_returns_every_node(moons):
    p, d, cm = moons
    tap = tap_module(cm.module, ("relu1", "fc3"))
    x = d.x_val[:5]
    with torch.no_grad():
        out, acts = tap(x)
        assert torch.equal(out, cm.module(x))
        with torch.no_grad():
            cm.module.get_submodule("fc3").bias.add_(1.0)  # a shared parameter, seen by both
        out2, _ = tap(x)
        assert torch.allclose(out2, out + 1.0)
        cm.module.get_submodule("fc3").bias.sub_(1.0)
    assert set(acts) == {"relu1", "fc3"}


def test_cnn_feature_maps_filters_and_dead_channels(cnn):
    p, d, cm = cnn
    c = SnapshotCollector(cm.module, d, cm.node_names)
    snap = c.collect()
    assert snap.boundary is None and snap.curve is None
    assert snap.activations["conv1"].shape == (4, 16, 8, 8)  # first probe images, every channel
    assert snap.weights["conv1"].shape == (16, 1, 3, 3)
    assert c.info.layer("conv1").kind == "conv"
    with torch.no_grad():  # kill 4 of conv1's 16 channels: their ReLU outputs are 0 everywhere
        cm.module.get_submodule("conv1").bias[:4] = -1e4
    assert c.collect().dead_relu["relu1"] == pytest.approx(4 / 16)


def test_regression_curve_is_the_model_on_a_line():
    p, d, cm = compiled("sine-regression")
    c = SnapshotCollector(cm.module, d, cm.node_names)
    snap = c.collect()
    assert snap.boundary is None
    assert snap.curve.shape == (200, 1)
    with torch.no_grad():
        ref = cm.module(torch.from_numpy(c.info.curve_x).reshape(-1, 1)).numpy()
    np.testing.assert_allclose(snap.curve, ref, rtol=1e-5, atol=1e-6)


def test_smoothing_matches_the_tensorboard_formula_and_skips_nan():
    rng = np.random.default_rng(0)
    x = rng.random(500)
    for w in (0.0, 0.3, 0.9, 0.99):
        acc = deb = 0.0
        ref = []
        for v in x:
            acc = acc * w + (1 - w) * v
            deb = deb * w + (1 - w)
            ref.append(acc / deb if w else v)
        np.testing.assert_allclose(smooth_ema(x, w), ref, rtol=1e-5, atol=1e-6)  # kernel cut at w**k < 1e-6
    y = x.copy()
    y[10] = np.nan
    out = smooth_ema(y, 0.6)
    assert np.isnan(out[10]) and np.isfinite(out[11:]).all()


def test_state_dict_cpu_copies(moons):
    _, _, cm = moons
    s = state_dict_cpu(cm.module)
    s["fc1.bias"].add_(1.0)
    assert not torch.equal(s["fc1.bias"], cm.module.fc1.bias)


def test_a_first_linear_on_images_keeps_its_units_whole_for_image_templates():
    """An image flattened into a Linear (here 1x30x30 = 900 inputs, more than a pooled heatmap shows):
    the snapshot keeps every input weight of the first units, so each unit can be drawn as an image."""
    g = torch.Generator().manual_seed(0)
    ds = types.SimpleNamespace(task="classification", input_shape=(1, 30, 30), n_outputs=3,
                               x_train=torch.rand(40, 1, 30, 30, generator=g), y_train=torch.randint(0, 3, (40,), generator=g),
                               x_val=torch.rand(8, 1, 30, 30, generator=g), y_val=torch.randint(0, 3, (8,), generator=g))

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.flatten, self.fc1, self.relu1, self.fc2 = nn.Flatten(), nn.Linear(900, 80), nn.ReLU(), nn.Linear(80, 3)

        def forward(self, x):
            return self.fc2(self.relu1(self.fc1(self.flatten(x))))

    model = fx.symbolic_trace(Mlp())
    c = SnapshotCollector(model, ds)
    fc1, fc2 = c.info.layer("fc1"), c.info.layer("fc2")
    assert fc1.image_shape == (1, 30, 30) and fc2.image_shape is None
    snap = c.collect()
    np.testing.assert_array_equal(snap.weights["fc1"], model.fc1.weight.detach()[:64].numpy())  # not pooled


def test_a_recurrent_layer_shows_its_input_weights_never_as_image_templates():
    """The LSTM's largest weight, weight_hh (hidden to hidden, 256x64), was drawn as 64 "8x8 image"
    templates, because 64 hidden units happen to equal the 8x8 pixels."""
    p, d, cm = compiled("digits-lstm")
    info = SnapshotCollector(cm.module, d, cm.node_names).info
    (inner,) = [n for n, m in cm.module.named_modules() if isinstance(m, nn.LSTM)]
    lstm = cm.module.get_submodule(inner)
    lstm_name = inner.split(".")[0]  # the graph's node wraps the torch module
    layer = info.layer(lstm_name)
    assert layer.weight_shape == tuple(lstm.weight_ih_l0.shape) != tuple(lstm.weight_hh_l0.shape)
    assert layer.image_shape is None
    # nor is the Linear after it, whose 64 inputs are the LSTM's units, not the 8x8 pixels
    assert [lay.image_shape for lay in info.layers if lay.name != lstm_name] == [None]
    # a Linear that reads the flattened image does draw its units as templates
    _p, d, mlp = compiled("fashion-mlp")
    first = SnapshotCollector(mlp.module, d, mlp.node_names).info.layers[0]
    assert first.image_shape == tuple(d.input_shape) and first.weight_shape[1] == 784
