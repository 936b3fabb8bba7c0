"""engine/pool_order.py: the training step's twin with each ReLU -> MaxPool2d swapped gives the
model's outputs and gradients bit for bit, shares its parameters, and leaves the model as written;
a Trainer run with the twin ends with exactly the weights of a run without it."""
from __future__ import annotations

import types

import pytest
import torch
from torch import nn

from engine.compile import compile_graph
from engine.graph import Graph
from engine.pool_order import relu_after_max_pool
from engine.spec import InferContext
from engine.templates import chain
from engine.train import Trainer
from engine.train_config import TrainConfig
from tests.explain_cases import cnn_graph


def sequential_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, padding=1)),
                         nn.Flatten(), nn.Linear(8 * 4 * 4, 3))


def layerlab_cnn():
    return compile_graph(cnn_graph("flatten"), InferContext((1, 12, 12), 3, "classification"), seed=0).module


def outputs_and_grads(model, x, memory_format=torch.contiguous_format):
    model.zero_grad()
    x = x.contiguous(memory_format=memory_format)
    out = model(x)
    out.square().sum().backward()
    return out.detach().clone(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("make", [sequential_cnn, layerlab_cnn], ids=["sequential", "layerlab_fx"])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=["nchw", "nhwc"])
def test_the_swapped_twin_gives_the_same_outputs_and_gradients_bit_for_bit(make, memory_format):
    torch.set_num_threads(1)
    model = make().to(memory_format=memory_format)
    twin = relu_after_max_pool(model)
    assert twin is not model
    assert [id(p) for p in twin.parameters()] == [id(p) for p in model.parameters()]  # trains the model
    # inputs with many negative windows and exact ties (zeros), where the orders could differ
    x = torch.randn(16, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    x[:4] = -x[:4].abs()
    x[4:6] = 0.0
    out_a, grads_a = outputs_and_grads(model, x, memory_format)
    out_b, grads_b = outputs_and_grads(twin, x, memory_format)
    assert torch.equal(out_a, out_b)
    for a, b in zip(grads_a, grads_b):
        assert torch.equal(a, b)


def test_the_fx_twin_runs_the_relu_after_the_pool_and_the_model_keeps_its_code():
    model = layerlab_cnn()
    code_before = model.code
    twin = relu_after_max_pool(model)
    order = [n.target for n in twin.graph.nodes if n.op == "call_module"]
    pools = [i for i, t in enumerate(order) if "pool" in str(t).lower()]
    assert pools and all("relu" in str(order[i + 1]).lower() for i in pools)
    assert model.code == code_before  # the code view shows the graph as the user built it


def test_a_relu_read_by_anything_else_stays_where_it_is():
    g = Graph()
    # Input -> Conv -> ReLU -> MaxPool ... and the same ReLU also feeds a second pooling branch via Add
    chain(g, [("Input", {}), ("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}), ("ReLU", {}),
              ("MaxPool2d", {"kernel_size": 2}), ("Flatten", {}), ("Linear", {"units": "auto"}), ("Output", {})])
    relu = next(n for n in g.nodes if n.type == "ReLU")
    extra = g.add_node("AvgPool2d", {"kernel_size": 2}, (0, 0))
    flat = g.add_node("Flatten", {}, (0, 0))
    add = g.add_node("Add", {}, (0, 0))
    g.connect(relu.id, extra.id)
    g.connect(extra.id, flat.id)
    first_flat = next(n for n in g.nodes if n.type == "Flatten" and n.id != flat.id)
    linear = next(n for n in g.nodes if n.type == "Linear")
    g.disconnect(next(e.id for e in g.edges if e.src == first_flat.id and e.dst == linear.id))
    g.connect(first_flat.id, add.id)
    g.connect(flat.id, add.id)
    g.connect(add.id, linear.id)
    model = compile_graph(g, InferContext((1, 8, 8), 2, "classification"), seed=0).module
    assert relu_after_max_pool(model) is model


def test_models_without_the_pattern_are_returned_as_they_are():
    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    assert relu_after_max_pool(mlp) is mlp
    avg = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.AvgPool2d(2))  # averaging does not commute with ReLU
    assert relu_after_max_pool(avg) is avg
    inplace = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2))
    assert relu_after_max_pool(inplace) is inplace


def test_a_trainer_run_with_the_twin_ends_with_the_weights_of_one_without():
    g = torch.Generator().manual_seed(0)
    data = types.SimpleNamespace(task="classification", x_train=torch.randn(192, 1, 12, 12, generator=g),
                                 y_train=torch.randint(0, 3, (192,), generator=g),
                                 x_val=torch.randn(48, 1, 12, 12, generator=g),
                                 y_val=torch.randint(0, 3, (48,), generator=g))
    config = TrainConfig(epochs=2, batch_size=32, lr=0.01, device="cpu", num_threads=1, seed=0)
    fast = Trainer(sequential_cnn(), data, config)
    assert fast._step_model is not fast.model
    fast.run()
    plain = Trainer(sequential_cnn(), data, config)
    plain._step_model = plain.model  # the model as written
    plain.run()
    for (name, a), b in zip(fast.model.state_dict().items(), plain.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert [h["train_loss"] for h in fast.history] == [h["train_loss"] for h in plain.history]
    assert [h["val_loss"] for h in fast.history] == [h["val_loss"] for h in plain.history]


def test_the_live_views_hook_gets_the_model_as_written():
    g = torch.Generator().manual_seed(0)
    data = types.SimpleNamespace(task="classification", x_train=torch.randn(64, 1, 12, 12, generator=g),
                                 y_train=torch.randint(0, 3, (64,), generator=g), x_val=None, y_val=None)
    config = TrainConfig(epochs=1, batch_size=16, device="cpu", num_threads=1, seed=0,
                         progress_interval_s=1e9, snapshot_interval_s=1e-9)
    seen = []
    t = Trainer(sequential_cnn(), data, config, on_snapshot_due=seen.append)
    assert t._step_model is not t.model
    t.run()
    assert seen and all(m is t.model for m in seen)
