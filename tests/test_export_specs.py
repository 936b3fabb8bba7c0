"""Every layer type knows the inverse of its ``build`` and how to print its constructor.

For each registered type with a module: build -> params_from_module -> the same params -> a
module with the same outputs; and its printed constructor, evaluated, is that module again.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.layers import REGISTRY, modules
from engine.layers.custom import call_source
from engine.spec import InferContext

torch.set_num_threads(1)

CTX = InferContext(input_shape=(5,), n_outputs=3, task="classification")

#: (layer type, params, per-sample input shape); every registered type with a module appears at least once
CASES = [
    ("Linear", {"units": 7}, (5,)),
    ("Linear", {"units": 4, "bias": False}, (6, 5)),
    ("Linear", {"units": "auto"}, (5,)),
    ("Dropout", {"p": 0.25}, (5,)),
    ("Flatten", {}, (2, 3, 4)),
    ("Reshape", {"shape": (3, 4)}, (12,)),
    ("Reshape", {"shape": (2, -1)}, (12,)),
    ("Embedding", {"num_embeddings": 20, "embedding_dim": 6}, (9,)),
    ("Conv1d", {"out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 0, "bias": False}, (3, 11)),
    ("Conv2d", {"out_channels": 6, "kernel_size": 3, "stride": 1, "padding": 1}, (3, 8, 8)),
    ("Conv2d", {"out_channels": 2, "kernel_size": 5, "stride": 2, "padding": 2}, (1, 9, 9)),
    ("MaxPool2d", {"kernel_size": 2, "stride": 0, "padding": 0}, (3, 8, 8)),
    ("MaxPool2d", {"kernel_size": 3, "stride": 2, "padding": 1}, (3, 9, 9)),
    ("AvgPool2d", {"kernel_size": 2, "stride": 0, "padding": 0}, (3, 8, 8)),
    ("AvgPool2d", {"kernel_size": 3, "stride": 1, "padding": 1}, (2, 6, 6)),
    ("AdaptiveAvgPool2d", {"output_size": 2}, (3, 8, 8)),
    ("BatchNorm1d", {"momentum": 0.3}, (5,)),
    ("BatchNorm1d", {}, (3, 10)),
    ("BatchNorm2d", {"momentum": 0.05}, (3, 4, 4)),
    ("LayerNorm", {"affine": False}, (4, 6)),
    ("LayerNorm", {}, (6,)),
    ("ReLU", {}, (5,)),
    ("LeakyReLU", {"negative_slope": 0.2}, (5,)),
    ("GELU", {}, (5,)),
    ("SiLU", {}, (5,)),
    ("Sigmoid", {}, (5,)),
    ("Tanh", {}, (5,)),
    ("Softmax", {}, (5,)),
    ("RNN", {"hidden_size": 6}, (7, 5)),
    ("LSTM", {"hidden_size": 6, "num_layers": 2, "output": "sequence"}, (7, 5)),
    ("LSTM", {"hidden_size": 4, "bidirectional": True}, (7, 5)),
    ("GRU", {"hidden_size": 5, "bidirectional": True, "output": "sequence"}, (7, 3)),
    ("SelfAttention", {"num_heads": 2, "dropout": 0.1}, (7, 8)),
    ("Custom", {"op": "nn.GroupNorm", "args": [2, 4]}, (4, 6)),
    ("Custom", {"op": "nn.LayerNorm", "args": [[6]], "kwargs": {"eps": 1e-3}}, (4, 6)),
    ("Custom", {"op": "nn.Conv2d", "args": [3, 4, [3, 1]], "kwargs": {"stride": [2, 1]}}, (3, 8, 8)),
    ("Custom", {"op": "nn.Identity"}, (5,)),
]

#: the names an exported model.py has in scope
SOURCE_SCOPE = {"nn": nn, "torch": torch, "Reshape": modules.Reshape, "TokenEmbedding": modules.TokenEmbedding,
                "Recurrent": modules.Recurrent, "SelfAttention": modules.SelfAttention}


def _sample(type_name, shape, n=4):
    g = torch.Generator().manual_seed(1)
    if type_name == "Embedding":
        return torch.randint(0, 20, (n, *shape), generator=g).float()
    return torch.randn((n, *shape), generator=g)


def _built(type_name, params, shape):
    spec = REGISTRY.get(type_name)
    p = spec.coerce_params(params)
    torch.manual_seed(0)
    return spec, p, spec.build(p, (shape,), CTX).eval()


def _resolved(spec, params):
    """Params as the module sees them: 'auto' units resolved against the context."""
    out = dict(params)
    if out.get("units") == "auto":
        out["units"] = CTX.n_outputs
    return out


@pytest.mark.parametrize("type_name,params,shape", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_build_inverse_round_trip(type_name, params, shape):
    spec, p, module = _built(type_name, params, shape)
    back = spec.params_from_module(module)
    assert back == _resolved(spec, p)
    rebuilt = spec.build(spec.coerce_params(back), (shape,), CTX).eval()
    rebuilt.load_state_dict(module.state_dict())
    x = _sample(type_name, shape)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), module(x))
    assert repr(rebuilt) == repr(module)


@pytest.mark.parametrize("type_name,params,shape", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_printed_constructor_is_the_module(type_name, params, shape):
    spec, p, module = _built(type_name, params, shape)
    source = spec.module_source(module)
    assert "\n" not in source and len(source) < 120  # one readable line
    rebuilt = eval(source, dict(SOURCE_SCOPE)).eval()  # noqa: S307 - our own generated source
    assert repr(rebuilt) == repr(module)
    rebuilt.load_state_dict(module.state_dict())
    x = _sample(type_name, shape)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), module(x))


def test_every_layer_type_with_a_module_is_covered():
    with_module = {s.type for s in REGISTRY if s.build is not None}
    assert with_module == {c[0] for c in CASES}
    for spec in REGISTRY:
        if spec.build is not None:
            assert spec.params_from_module and spec.module_source and spec.module_types, spec.type


def test_readable_constructors():
    _, _, conv = _built("Conv2d", {"out_channels": 32, "kernel_size": 3, "padding": 1}, (1, 8, 8))
    assert REGISTRY.get("Conv2d").module_source(conv) == "nn.Conv2d(1, 32, kernel_size=3, padding=1)"
    _, _, fc = _built("Linear", {"units": 10}, (64,))
    assert REGISTRY.get("Linear").module_source(fc) == "nn.Linear(64, 10)"
    _, _, lstm = _built("LSTM", {"hidden_size": 64}, (8, 8))
    assert REGISTRY.get("LSTM").module_source(lstm) == "Recurrent('LSTM', 8, 64)"


def test_inverse_refuses_what_the_layer_cannot_describe():
    assert REGISTRY.get("Conv2d").params_from_module(nn.Conv2d(1, 2, (3, 1))) is None
    assert REGISTRY.get("Conv2d").params_from_module(nn.Conv2d(4, 4, 3, groups=2)) is None
    assert REGISTRY.get("Flatten").params_from_module(nn.Flatten(2)) is None
    assert REGISTRY.get("Softmax").params_from_module(nn.Softmax(dim=0)) is None
    assert REGISTRY.get("RNN").params_from_module(modules.Recurrent("LSTM", 3, 4)) is None
    assert REGISTRY.get("BatchNorm1d").params_from_module(nn.BatchNorm1d(3, momentum=None)) is None


def test_expression_layers_print_as_python():
    assert REGISTRY.get("Add").call_source({}, ["fc3", "relu2"]) == "fc3 + relu2"
    assert REGISTRY.get("Multiply").call_source({}, ["a", "b", "c"]) == "a * b * c"
    assert REGISTRY.get("Concat").call_source({"dim": 0}, ["a", "b"]) == "torch.cat([a, b], dim=1)"
    assert REGISTRY.get("Concat").call_source({"dim": -1}, ["a", "b"]) == "torch.cat([a, b], dim=-1)"
    getitem = {"op": "operator.getitem", "args": [[{"slice": [None, None, None]}, -1]], "kwargs": {}}
    assert call_source(getitem, ["out"]) == "out[:, -1]"
    assert call_source({"op": "Tensor.permute", "args": [0, 2, 1], "kwargs": {}}, ["x"]) == "x.permute(0, 2, 1)"
    assert call_source({"op": "operator.add", "args": [1.5], "kwargs": {}}, ["x"]) == "x + 1.5"
    assert call_source({"op": "F.softmax", "args": [], "kwargs": {"dim": -1}}, ["x"]) == "F.softmax(x, dim=-1)"
    assert call_source({"op": "nn.GroupNorm", "args": [1, 4], "kwargs": {}}, ["x"]) is None


def test_custom_printed_expressions_compute_what_the_node_computes():
    from engine.layers.custom import _build

    import torch.nn.functional as F
    x = torch.randn(3, 4, 5)
    for params in ({"op": "operator.getitem", "args": [[{"slice": [None, None, None]}, -1]], "kwargs": {}},
                   {"op": "Tensor.permute", "args": [0, 2, 1], "kwargs": {}},
                   {"op": "torch.flatten", "args": [1], "kwargs": {}},
                   {"op": "operator.mul", "args": [2.0], "kwargs": {}},
                   {"op": "F.softmax", "args": [], "kwargs": {"dim": -1}}):
        expected = _build(params)(x)
        got = eval(call_source(params, ["x"]), {"x": x, "torch": torch, "F": F})  # noqa: S307
        assert torch.equal(got, expected), params


def test_custom_names_only_allow_listed_operations():
    from engine.errors import ParamError
    from engine.graph import Graph

    g = Graph()
    with pytest.raises(ParamError, match="not a valid op"):
        g.add_node("Custom", {"op": "torch.load"})
    with pytest.raises(ParamError, match="JSON"):
        g.add_node("Custom", {"op": "torch.flatten", "args": "not json"})
    node = g.add_node("Custom", {"op": "torch.flatten", "args": "[1]"})
    assert node.params["args"] == [1]
    other = g.add_node("Custom")
    assert other.params["args"] == [] and other.params["args"] is not node.spec.param("args").default
