"""LayerLab's ONNX converter on files it did not write: torch exports of ops the starters lack, and
hand-made graphs (as other exporters write them).  Every import is checked against onnxruntime."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from engine.importers import import_model
from engine.importers.fx_import import ImportRefused
from engine.layers.modules import TokenEmbedding

torch.set_num_threads(1)


class Mixed(nn.Module):
    """Token ids -> embedding -> a Linear on the sequence (MatMul + Add) -> softmax -> BatchNorm."""

    def __init__(self):
        super().__init__()
        self.embed = TokenEmbedding(20, 6)
        self.proj = nn.Linear(6, 4)
        self.soft = nn.Softmax(dim=-1)
        self.flatten = nn.Flatten()
        self.bn = nn.BatchNorm1d(20)
        self.head = nn.Linear(20, 3)

    def forward(self, x):
        return self.head(self.bn(self.flatten(self.soft(self.proj(self.embed(x))))))


class Convs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, (3, 1), stride=(2, 1), padding=(1, 0))
        self.pool = nn.AvgPool2d(2)
        self.head = nn.Linear(4 * 2 * 3, 2)

    def forward(self, x):
        return self.head(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


def _export(module, example, path, optimize=True):
    module.eval()
    torch.onnx.export(module, (example,), str(path), dynamo=True, external_data=False, optimize=optimize,
                      dynamic_shapes=({0: torch.export.Dim("batch")},), input_names=["x"], output_names=["y"])
    return path


def test_batchnorm_embedding_matmul_and_softmax(tmp_path):
    torch.manual_seed(0)
    model = Mixed()
    model.bn.running_mean.uniform_(-1, 1)
    model.bn.running_var.uniform_(0.5, 2)
    x = torch.randint(0, 20, (4, 5)).float()
    path = _export(model, x, tmp_path / "mixed.onnx", optimize=False)  # keep BatchNormalization as its own node
    assert "BatchNormalization" in {n.op_type for n in onnx.load(str(path)).graph.node}
    result = import_model(path)
    types = [n.type for n in result.project.graph.nodes]
    assert types == ["Input", "Embedding", "Linear", "Softmax", "Flatten", "BatchNorm1d", "Linear", "Output"]
    assert result.max_abs_diff <= 1e-5
    names = {n.name for n in result.project.graph.nodes}
    assert {"embed", "proj", "bn", "head"} <= names  # the layer names torch's exporter recorded
    from engine.model_at import ready_model
    from engine.spec import InferContext

    imported = ready_model(result.project.graph, InferContext((5,), 3, "classification"), result.project.weights)
    with torch.no_grad():
        assert torch.allclose(imported.module(x), model(x), atol=1e-5)


def test_a_convolution_the_catalog_lacks_becomes_a_custom_node(tmp_path):
    torch.manual_seed(0)
    path = _export(Convs(), torch.randn(2, 2, 8, 6), tmp_path / "convs.onnx")
    result = import_model(path)
    conv = result.project.graph.node_by_name("conv")
    assert conv.type == "Custom" and conv.params["op"] == "nn.Conv2d"
    assert conv.params["kwargs"]["stride"] == [2, 1]
    assert [n.type for n in result.project.graph.nodes if n.type != "Custom"] == \
        ["Input", "ReLU", "AvgPool2d", "Flatten", "Linear", "Output"]
    assert result.max_abs_diff <= 1e-5
    assert result.project.data == {"source": "moons"}  # no built-in data has this shape: the notes say so
    assert any("choose its own data" in n for n in result.notes)


def _hand_made(nodes, initializers, in_shape, out_shape, name="hand"):
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("in", TensorProto.FLOAT, ["N", *in_shape])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", *out_shape])],
                              [numpy_helper.from_array(v.astype(np.float32), k) for k, v in initializers.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="someone else")


def test_a_hand_made_graph_from_another_exporter(tmp_path):
    rng = np.random.default_rng(0)
    inits = {"w1": rng.normal(size=(4, 3, 3, 3)), "b1": rng.normal(size=4), "fcw": rng.normal(size=(4, 5)),
             "fcb": rng.normal(size=5), "sw": rng.normal(size=(12, 5))}
    nodes = [
        helper.make_node("Conv", ["in", "w1", "b1"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("LeakyRelu", ["c"], ["r"], alpha=0.2),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fcw", "fcb"], ["l"]),  # transB = 0: weights stored (in, out)
        helper.make_node("Flatten", ["in"], ["flat_in"], axis=1),
        helper.make_node("Relu", ["flat_in"], ["s0"]),
        helper.make_node("Gemm", ["s0", "sw"], ["s1"]),
        helper.make_node("Add", ["l", "s1"], ["sum"]),
        helper.make_node("Concat", ["sum", "l"], ["cat"], axis=1),
        helper.make_node("Tanh", ["cat"], ["out"]),
    ]
    path = tmp_path / "hand.onnx"
    onnx.save(_hand_made(nodes, inits, (3, 2, 2), (10,)), str(path))
    result = import_model(path)
    types = sorted(n.type for n in result.project.graph.nodes)
    assert types == sorted(["Input", "Conv2d", "LeakyReLU", "AdaptiveAvgPool2d", "Flatten", "Linear", "Flatten",
                            "ReLU", "Linear", "Add", "Concat", "Tanh", "Output"])
    assert result.max_abs_diff <= 1e-5


def test_an_op_without_a_layer_is_refused_naming_the_node(tmp_path):
    nodes = [helper.make_node("Sin", ["in"], ["out"], name="wave")]
    path = tmp_path / "sin.onnx"
    onnx.save(_hand_made(nodes, {}, (4,), (4,)), str(path))
    with pytest.raises(ImportRefused, match=r"ONNX node 'wave' \(Sin\): this operation has no LayerLab layer"):
        import_model(path)
    nodes = [helper.make_node("Relu", ["in"], ["a"]), helper.make_node("Relu", ["in"], ["b"]),
             helper.make_node("Concat", ["a", "b"], ["out"], axis=0, name="stack")]
    onnx.save(_hand_made(nodes, {}, (4,), (4,)), str(tmp_path / "batch.onnx"))
    with pytest.raises(ImportRefused, match="'stack' .*batch axis"):
        import_model(tmp_path / "batch.onnx")


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(13, 16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class TwoBranches(nn.Module):
    def __init__(self):
        super().__init__()
        self.left = nn.Linear(13, 8)
        self.right = nn.Linear(13, 8)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(torch.cat([torch.relu(self.left(x)), torch.tanh(self.right(x))], dim=1))


@pytest.mark.parametrize("model_class", [Mlp, TwoBranches])
def test_a_file_with_a_fixed_batch_of_one_imports_and_takes_any_batch(tmp_path, model_class):
    from engine.model_at import ready_model
    from engine.spec import InferContext

    torch.manual_seed(0)
    model = model_class().eval()
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.randn(1, 13),), str(path))  # the plain call: the file's batch is 1
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    result = import_model(path)
    assert result.max_abs_diff <= 1e-5
    imported = ready_model(result.project.graph, InferContext((13,), 3, "classification"), result.project.weights)
    x = torch.randn(5, 13)
    with torch.no_grad():
        assert torch.allclose(imported.module(x), model(x), atol=1e-5)


def test_layerlabs_own_export_of_a_model_ending_in_log_softmax_comes_back(tmp_path):
    """LayerLab has no LogSoftmax layer: F.log_softmax imports from Python as a Custom node, and
    its ONNX export (a LogSoftmax node) was then refused: 'this operation has no LayerLab layer'."""
    from engine.export import export_project

    (tmp_path / "net.py").write_text(
        "import torch.nn as nn\nimport torch.nn.functional as F\n\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc1 = nn.Linear(13, 16)\n"
        "        self.fc2 = nn.Linear(16, 3)\n\n"
        "    def forward(self, x):\n"
        "        return F.log_softmax(self.fc2(F.relu(self.fc1(x))), dim=1)\n")
    torch.manual_seed(0)
    project = import_model(tmp_path / "net.py").project
    export_project(project, "onnx", tmp_path / "net.onnx")
    assert "LogSoftmax" in {n.op_type for n in onnx.load(str(tmp_path / "net.onnx")).graph.node}
    back = import_model(tmp_path / "net.onnx")
    assert [n.type for n in back.project.graph.nodes] == ["Input", "Linear", "ReLU", "Linear", "Custom", "Output"]
    custom = next(n for n in back.project.graph.nodes if n.type == "Custom")
    assert custom.params == {"op": "F.log_softmax", "args": [], "kwargs": {"dim": -1}}
    assert back.max_abs_diff <= 1e-5
    nodes = [helper.make_node("LogSoftmax", ["in"], ["out"], axis=0, name="over_batch")]
    onnx.save(_hand_made(nodes, {}, (4,), (4,)), str(tmp_path / "batch.onnx"))
    with pytest.raises(ImportRefused, match="'over_batch' .*batch axis"):
        import_model(tmp_path / "batch.onnx")


def test_a_missing_weights_file_beside_the_onnx_is_named(tmp_path):
    """torch's exporter writes the weights to m.onnx.data by default; without it the sentence was
    onnx's own: 'Data of TensorProto ( tensor name: fc1.weight) should be stored in ...'."""
    path = tmp_path / "mlp.onnx"
    torch.onnx.export(Mlp().eval(), (torch.randn(1, 13),), str(path), external_data=True)
    weights = tmp_path / "mlp.onnx.data"
    assert weights.is_file()
    assert import_model(path).max_abs_diff <= 1e-5  # with it beside the .onnx, it imports
    weights.rename(tmp_path / "elsewhere.data")
    with pytest.raises(ImportRefused) as caught:
        import_model(path)
    assert str(caught.value) == "mlp.onnx: its weights file mlp.onnx.data is missing (keep it beside the .onnx)."


def test_a_file_that_leaves_the_image_size_open_imports_with_the_shape_given(tmp_path, capsys):
    """The refusal said to give --input-shape, and the command line then refused --input-shape for
    an ONNX file ("it carries its own input shape")."""
    from engine.cli import run_cli
    from engine.importers import NeedsInputShape

    rng = np.random.default_rng(0)
    inits = {"w1": rng.normal(size=(4, 3, 3, 3)), "b1": rng.normal(size=4), "fcw": rng.normal(size=(4, 5))}
    nodes = [helper.make_node("Conv", ["in", "w1", "b1"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "fcw"], ["out"])]
    path = tmp_path / "any_size.onnx"
    onnx.save(_hand_made(nodes, inits, (3, "H", "W"), (5,)), str(path))
    with pytest.raises(NeedsInputShape, match="does not say the shape of one input sample"):
        import_model(path)
    result = import_model(path, input_shape=(3, 6, 6))
    assert result.max_abs_diff <= 1e-5
    # a shape the file contradicts is said as such (it had ended in "the stored weights do not fit")
    with pytest.raises(NeedsInputShape, match=r"takes samples of shape \(3, any, any\), not \(1, 28, 28\)"):
        import_model(path, input_shape=(1, 28, 28))
    assert run_cli(["import", str(path), "--out", str(tmp_path / "a.layerlab"), "--input-shape", "3,6,6"]) == 0
    assert "Imported" in capsys.readouterr().out


def test_the_summary_says_which_built_in_data_the_model_opens_on(tmp_path):
    """The dataset was attached without a word: the user found out from a later train's task line."""
    inits = {"w": np.random.default_rng(0).normal(size=(3, 13))}
    path = tmp_path / "wine.onnx"
    onnx.save(_hand_made([helper.make_node("Gemm", ["in", "w"], ["out"], transB=1)], inits, (13,), (3,)), str(path))
    result = import_model(path)
    assert result.project.data == {"source": "wine"}
    assert result.summary().startswith("Imported 1 layer from an ONNX model.")
    assert "inference form" in result.summary()  # why a BatchNorm or a Dropout may be missing
    assert "Data: the built-in 'wine' dataset, whose inputs (13,) and 3 outputs fit the model" in result.summary()
    onnx.save(_hand_made([helper.make_node("Relu", ["in"], ["out"])], {}, (16,), (16,)), str(tmp_path / "odd.onnx"))
    odd = import_model(tmp_path / "odd.onnx")
    assert odd.project.data == {"source": "moons"}
    assert "it opens on 'moons', which does not fit it; choose its own data" in odd.summary()
