"""Importing a .py file that defines an nn.Module: layers, merges, Custom ops, and clear refusals."""
from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

from engine.importers import import_model
from engine.importers.fx_import import ImportRefused

torch.set_num_threads(1)

MODELS = textwrap.dedent('''
    import torch
    import torch.nn as nn
    import torch.nn.functional as F


    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv = nn.Conv2d(c, c, 3, padding=1)
            self.bn = nn.BatchNorm2d(c)

        def forward(self, x):
            return F.relu(self.bn(self.conv(x)) + x)


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 8, 3, padding=1)
            self.block = Block(8)
            self.pool = nn.MaxPool2d(2)
            self.norm = nn.GroupNorm(2, 8)
            self.side = nn.Linear(64, 8)
            self.head = nn.Linear(8 * 4 * 4 + 8, 10)

        def forward(self, x):
            h = self.pool(self.block(F.relu(self.stem(x))))
            h = self.norm(h)
            flat = h.view(h.size(0), -1)
            side = torch.tanh(self.side(torch.flatten(x, 1)))
            joined = torch.cat([flat, side], dim=1)
            logits = self.head(joined) * 0.5
            return logits


    class Seq(nn.Module):
        """Token ids through an embedding, tensor methods, and a three-way sum."""

        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(30, 6)
            self.proj = nn.Linear(6, 6)
            self.out = nn.Linear(6, 3)

        def forward(self, tokens):
            e = self.embed(tokens)
            mixed = self.proj(e).permute(0, 2, 1)
            pooled = mixed.mean(dim=2)
            return self.out(F.gelu(pooled) + pooled + pooled + mixed.amax(dim=2) + e[:, 0])


    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            y = self.fc(x)
            if y.mean() > 0:
                y = y * 2
            return y


    class UsesParameter(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 3))

        def forward(self, x):
            return x @ self.w


    class Unlisted(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return torch.fft.fft(self.fc(x)).real
''')


@pytest.fixture
def models_py(tmp_path):
    path = tmp_path / "models.py"
    path.write_text(MODELS)
    return path


def _load(path, name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"ref_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def test_a_nested_cnn_becomes_layers_merges_and_custom_ops(models_py, tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(3)
    ref = _load(models_py, "Net")().eval()
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(tmp_path / "w.safetensors"))
    result = import_model(models_py, class_name="Net", input_shape=(1, 8, 8), weights=tmp_path / "w.safetensors")
    g = result.project.graph
    types = {n.name: n.type for n in g.nodes}
    assert types["stem"] == "Conv2d" and types["block_bn"] == "BatchNorm2d" and types["pool"] == "MaxPool2d"
    assert types["flat"] == "Flatten" and types["joined"] == "Concat" and types["side"] == "Linear"
    assert g.node_by_name("norm").params == {"op": "nn.GroupNorm", "args": [2, 8], "kwargs": {}}
    assert g.node_by_name("logits").params == {"op": "operator.mul", "args": [0.5], "kwargs": {}}
    add = next(n for n in g.nodes if n.type == "Add")  # the skip connection inside Block
    assert [g.node(e.src).name for e in g.in_edges(add.id)] == ["block_bn", "relu1"]
    # the imported project's model computes what the file's model computes, with its weights
    from engine.model_at import ready_model
    from engine.spec import InferContext

    model = ready_model(g, InferContext((1, 8, 8), 10, "classification"), result.project.weights).module
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x), atol=1e-6)
    assert result.max_abs_diff <= 1e-6
    assert result.project.data == {"source": "digits"}  # a dataset of this shape, so shapes show
    assert "Custom" in result.summary()


def test_embedding_methods_and_three_way_add(models_py):
    result = import_model(models_py, class_name="Seq", input_shape=(7,))
    g = result.project.graph
    types = [n.type for n in g.nodes]
    assert types.count("Embedding") == 1 and "GELU" in types
    # a + b + c + d is one Add; but pooled cannot feed one Add twice, so the sum takes two
    adds = [n for n in g.nodes if n.type == "Add"]
    assert [len(g.in_edges(a.id)) for a in adds] == [2, 4]
    ops = sorted(n.params["op"] for n in g.nodes if n.type == "Custom")
    assert ops == ["Tensor.amax", "Tensor.mean", "Tensor.permute", "operator.getitem"]
    assert result.max_abs_diff <= 1e-6


def test_data_dependent_control_flow_names_the_line(models_py):
    with pytest.raises(ImportRefused) as info:
        import_model(models_py, class_name="Branchy")
    text = str(info.value)
    assert "models.py line" in text and "`if y.mean() > 0:`" in text and "control flow" in text


def test_refusals_say_what_and_where(models_py):
    with pytest.raises(ImportRefused, match=r"self\.w directly"):
        import_model(models_py, class_name="UsesParameter", input_shape=(4,))
    with pytest.raises(ImportRefused, match=r"line \d+ \(`return torch.fft.fft.*`\): calls fft"):
        import_model(models_py, class_name="Unlisted")
    with pytest.raises(ImportRefused, match="several nn.Module classes .*--class NAME"):
        import_model(models_py)
    with pytest.raises(ImportRefused, match="no nn.Module class named 'Nope'"):
        import_model(models_py, class_name="Nope")
    with pytest.raises(ImportRefused, match="input shape .*--input-shape"):
        import_model(models_py, class_name="Net")


def test_a_broken_file_gets_a_sentence(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\nraise RuntimeError('no GPU here')\n")
    with pytest.raises(ImportRefused, match=r"bad.py line 2 .*RuntimeError: no GPU here"):
        import_model(bad)
    syntax = tmp_path / "syntax.py"
    syntax.write_text("def broken(:\n")
    with pytest.raises(ImportRefused, match="syntax.py line 1: invalid Python"):
        import_model(syntax)


def test_state_dict_weights_load_without_unpickling_code(models_py, tmp_path):
    ref = _load(models_py, "Net")().eval()
    torch.save(ref.state_dict(), tmp_path / "w.pt")
    result = import_model(models_py, class_name="Net", input_shape=(1, 8, 8), weights=tmp_path / "w.pt")
    assert torch.equal(result.project.weights["stem.weight"], ref.state_dict()["stem.weight"])
    torch.save({"model_state_dict": ref.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    again = import_model(models_py, class_name="Net", input_shape=(1, 8, 8), weights=tmp_path / "ckpt.pt")
    assert torch.equal(again.project.weights["head.bias"], ref.state_dict()["head.bias"])


def test_weights_that_do_not_fit_are_refused(models_py, tmp_path):
    torch.save(nn.Linear(3, 3).state_dict(), tmp_path / "other.pt")
    with pytest.raises(ImportRefused, match="other.pt does not fit Net") as caught:
        import_model(models_py, class_name="Net", input_shape=(1, 8, 8), weights=tmp_path / "other.pt")
    # the sentence says what does not fit (torch's message had stopped at "Error(s) in loading state_dict")
    text = str(caught.value)
    assert "missing stem.weight" in text and "not in the model: weight, bias" in text and "\n" not in text


def test_a_wrong_input_shape_names_the_layer_in_one_sentence(models_py, capfd):
    """torch.fx's ShapeProp printed its traceback to the terminal, and its message ran on for lines."""
    with pytest.raises(ImportRefused) as caught:
        import_model(models_py, class_name="Net", input_shape=(3,))
    text = str(caught.value)
    assert text.startswith("The model does not run on inputs of shape (3,) (layer 'stem':")
    assert "ShapeProp" not in text and "\n" not in text and len(text) < 400
    assert "Traceback" not in capfd.readouterr().err


def test_a_model_on_28x28_images_opens_on_fashion_data_not_moons(tmp_path):
    """A CNN for 1x28x28 images opened on the moons data (two features): "Conv2d expects an image
    but receives (2)" until the person found the right dataset."""
    (tmp_path / "net.py").write_text(textwrap.dedent('''
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self, outputs=10):
                super().__init__()
                self.conv = nn.Conv2d(1, 4, 3)
                self.flat = nn.Flatten()
                self.fc = nn.Linear(4 * 26 * 26, outputs)

            def forward(self, x):
                return self.fc(self.flat(self.conv(x)))

        class Five(Net):
            def __init__(self):
                super().__init__(outputs=5)
        '''))
    result = import_model(tmp_path / "net.py", class_name="Net", input_shape=(1, 28, 28))
    assert result.project.data["source"] == "fashion_mnist"
    # five outputs fit no bundled data: it still opens on data of its input shape, and says so
    five = import_model(tmp_path / "net.py", class_name="Five", input_shape=(1, 28, 28))
    assert five.project.data["source"] == "fashion_mnist"
    assert any("'fashion_mnist', whose inputs fit" in n for n in five.notes)


FUNCTIONAL = textwrap.dedent('''
    import torch
    import torch.nn as nn
    import torch.nn.functional as F


    class Functional(nn.Module):
        """Functional calls and modules that are catalog layers, spelled as people write them."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)
            self.bn_eps = nn.BatchNorm2d(4, eps=1e-3)
            self.act = nn.ReLU(inplace=True)
            self.gap = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(4 * 4 * 4 + 4 + 4 + 4 * 2 * 2, 6)

        def forward(self, x):
            h = F.leaky_relu(self.bn(self.act(self.conv(x))))
            h = self.bn_eps(F.leaky_relu(h, 0.1))
            pooled = F.max_pool2d(h, 2)
            avg = F.avg_pool2d(h, 4)
            side = torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)
            joined = torch.cat([torch.flatten(pooled, 1), side, torch.flatten(self.gap(avg), start_dim=1), avg.flatten(1)], 1)
            out = F.dropout(F.silu(F.gelu(self.fc(joined))), 0.2, training=self.training)
            return F.leaky_relu(out, negative_slope=0.2)


    class InPlaceShared(nn.Module):
        """An in-place ReLU on a value that is read again: the graph must keep its effect."""

        def __init__(self):
            super().__init__()
            self.act = nn.ReLU(inplace=True)

        def forward(self, x):
            h = x * 2.0
            return torch.cat([self.act(h), h], 1)  # torch: both halves are relu(h)


    class DropoutInEval(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return F.dropout(self.fc(x), p=0.2)
''')


def test_functional_calls_and_modules_become_their_layers(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "functional.py"
    path.write_text(FUNCTIONAL)
    torch.manual_seed(0)
    ref = _load(path, "Functional")().eval()
    for bn in (ref.bn, ref.bn_eps):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(tmp_path / "w.safetensors"))
    result = import_model(path, class_name="Functional", input_shape=(1, 8, 8), weights=tmp_path / "w.safetensors")
    g = result.project.graph
    layers = [(n.type, n.params) for n in g.nodes if n.type not in ("Input", "Output")]
    for wanted in [("LeakyReLU", {"negative_slope": 0.01}), ("LeakyReLU", {"negative_slope": 0.1}),
                   ("LeakyReLU", {"negative_slope": 0.2}), ("ReLU", {}), ("GELU", {}), ("SiLU", {}),
                   ("MaxPool2d", {"kernel_size": 2, "stride": 0, "padding": 0}),
                   ("AvgPool2d", {"kernel_size": 4, "stride": 0, "padding": 0}),
                   ("AdaptiveAvgPool2d", {"output_size": 1}), ("Dropout", {"p": 0.2}),
                   ("BatchNorm2d", {"momentum": 0.1})]:
        assert wanted in layers, wanted
    assert [t for t, _ in layers].count("AdaptiveAvgPool2d") == 2 and [t for t, _ in layers].count("Flatten") == 4
    # BatchNorm2d has no eps param: a non-default eps stays a Custom nn.BatchNorm2d, with its weights
    customs = [p for t, p in layers if t == "Custom"]
    assert {"op": "nn.BatchNorm2d", "args": [4], "kwargs": {"eps": 0.001}} in customs
    assert len(customs) == 1
    assert torch.equal(result.project.weights["bn_eps.running_var"], ref.bn_eps.running_var)
    assert torch.equal(result.project.weights["bn.running_mean"], ref.bn.running_mean)
    assert result.max_abs_diff <= 1e-5
    from engine.model_at import ready_model
    from engine.spec import InferContext

    model = ready_model(g, InferContext((1, 8, 8), 6, "regression"), result.project.weights).module
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x), atol=1e-5)


def test_an_in_place_layer_whose_input_is_read_again_keeps_its_effect(tmp_path):
    path = tmp_path / "functional.py"
    path.write_text(FUNCTIONAL)
    result = import_model(path, class_name="InPlaceShared", input_shape=(3,))
    act = result.project.graph.node_by_name("act")
    assert act.type == "Custom" and act.params["kwargs"] == {"inplace": True}
    assert result.max_abs_diff == 0.0


def test_dropout_that_also_drops_in_eval_mode_is_refused_with_a_fix(tmp_path):
    path = tmp_path / "functional.py"
    path.write_text(FUNCTIONAL)
    with pytest.raises(ImportRefused, match=r"functional.py line \d+ .*training argument defaults to True") as caught:
        import_model(path, class_name="DropoutInEval")
    assert "training=self.training" in str(caught.value)


def test_a_file_that_builds_its_model_at_top_level_imports_that_module(tmp_path):
    """`model = nn.Sequential(...)` and no class: the import said only 'defines no nn.Module class.'"""
    (tmp_path / "seq.py").write_text(textwrap.dedent('''
        import torch
        import torch.nn as nn

        torch.manual_seed(0)
        body = nn.Linear(13, 16)
        model = nn.Sequential(body, nn.ReLU(), nn.Linear(16, 3))
        '''))
    result = import_model(tmp_path / "seq.py")
    assert [n.type for n in result.project.graph.nodes] == ["Input", "Linear", "ReLU", "Linear", "Output"]
    assert result.project.name == "model" and result.max_abs_diff == 0.0
    assert any("defines no nn.Module class: imported the module it builds as `model`" in n for n in result.notes)
    ref = _load(tmp_path / "seq.py", "model")
    assert torch.equal(result.project.weights["_0.weight"], ref[0].weight)  # the weights the file made
    other = nn.Sequential(nn.Linear(13, 16), nn.ReLU(), nn.Linear(16, 3))
    torch.save(other.state_dict(), tmp_path / "w.pt")
    given = import_model(tmp_path / "seq.py", weights=tmp_path / "w.pt")
    assert torch.equal(given.project.weights["_0.weight"], other[0].weight)


def test_several_top_level_modules_need_a_name_and_none_gets_a_sentence(tmp_path):
    (tmp_path / "two.py").write_text("import torch.nn as nn\n\nencoder = nn.Sequential(nn.Linear(13, 16), nn.ReLU())\n"
                                     "head = nn.Linear(16, 3)\n")
    with pytest.raises(ImportRefused, match=r"builds several modules at top level \(encoder, head\).*--class"):
        import_model(tmp_path / "two.py")
    head = import_model(tmp_path / "two.py", class_name="head")  # one layer: that layer, not its insides
    assert [(n.type, n.name) for n in head.project.graph.nodes][1:-1] == [("Linear", "head")]
    (tmp_path / "none.py").write_text("import torch\n\nx = 3\n")
    with pytest.raises(ImportRefused, match=r"defines no nn.Module class, and builds no module at top level.*"
                                            r"model = nn.Sequential"):
        import_model(tmp_path / "none.py")


def test_an_avgpool_with_its_own_divisor_stays_a_custom_node(tmp_path):
    """nn.AvgPool2d(2, divisor_override=3) became an AvgPool2d layer, and the import's own check
    then failed with 'please report this'."""
    (tmp_path / "pool.py").write_text(textwrap.dedent('''
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.pool = nn.AvgPool2d(2, divisor_override=3)
                self.flat = nn.Flatten()
                self.fc = nn.Linear(16, 2)
            def forward(self, x):
                return self.fc(self.flat(self.pool(x)))
    '''))
    result = import_model(tmp_path / "pool.py", input_shape=(1, 8, 8))
    pool = result.project.graph.node_by_name("pool")
    assert pool.type == "Custom" and result.max_abs_diff <= 1e-6
