"""The compiled graph against hand-written nn.Modules with the same weights: same outputs, same gradients
(w.r.t. the input and every parameter), in train and in eval mode.

The references below are written the way a person would write them, without the engine; weights are
copied from the compiled model by name.
"""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.testing import assert_close

import engine.compile as compile_module
from engine import templates
from engine.compile import compile_graph
from engine.errors import LayerLabError
from engine.graph import Graph
from engine.spec import InferContext
from engine.validate import GraphInvalid



@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small models: threads only add time.  Restored afterwards, so other test files are unaffected."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- hand-written references
class RefMLP(nn.Module):
    def __init__(self, n_in, hidden, n_out, p_drop):
        super().__init__()
        self.fc1 = nn.Linear(n_in, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.dropout1 = nn.Dropout(p_drop)
        self.fc3 = nn.Linear(hidden[1], n_out)

    def forward(self, x):
        x = torch.relu(self.fc1(x))
        x = torch.tanh(self.fc2(x))
        return self.fc3(self.dropout1(x))


class RefCNN(nn.Module):
    def __init__(self, n_out):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.fc1 = nn.Linear(8 * 2 * 2, n_out)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)  # 8x8 -> 4x4
        x = F.avg_pool2d(F.relu(self.conv2(x)), 1)  # 4x4 -> 2x2
        return self.fc1(torch.flatten(x, 1))


class RefResidual(nn.Module):
    def __init__(self, n_in, width, n_out):
        super().__init__()
        self.fc1 = nn.Linear(n_in, width)
        self.fc2 = nn.Linear(width, width)
        self.fc3 = nn.Linear(width, width)
        self.fc4 = nn.Linear(width, n_out)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        body = self.fc3(F.relu(self.fc2(h)))
        return self.fc4(F.relu(body + h))


class RefConcat(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.fc1 = nn.Linear(n_in, 32)
        self.fc2 = nn.Linear(n_in, 32)
        self.fc3 = nn.Linear(64, n_out)

    def forward(self, x):
        return self.fc3(torch.cat([F.relu(self.fc1(x)), torch.tanh(self.fc2(x))], dim=1))


class RefLSTM(nn.Module):
    def __init__(self, steps, features, hidden, n_out):
        super().__init__()
        self.steps, self.features = steps, features
        self.lstm = nn.LSTM(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x):
        seq = x.reshape(x.shape[0], self.steps, self.features)
        out, _ = self.lstm(seq)
        return self.head(out[:, -1])


# ----------------------------------------------------------------------------- graphs
def mlp_graph():
    g = Graph()
    templates.chain(g, [("Input", {}), ("Linear", {"units": 16}), ("ReLU", {}), ("Linear", {"units": 12}),
                        ("Tanh", {}), ("Dropout", {"p": 0.25}), ("Linear", {"units": "auto"}), ("Output", {})])
    return g


def cnn_graph():
    g = Graph()
    templates.chain(g, [("Input", {}), ("Conv2d", {"out_channels": 6}), ("BatchNorm2d", {}), ("ReLU", {}),
                        ("MaxPool2d", {"kernel_size": 2}),
                        ("Conv2d", {"out_channels": 8, "stride": 2}), ("ReLU", {}),
                        ("AvgPool2d", {"kernel_size": 1}), ("Flatten", {}),
                        ("Linear", {"units": "auto"}), ("Output", {})])
    return g


CASES = {
    # name: (graph factory, context, reference factory, {reference key: compiled key} or None for "same")
    "mlp": (mlp_graph, InferContext((5,), 3, "classification"), lambda: RefMLP(5, (16, 12), 3, 0.25), None),
    "cnn": (cnn_graph, InferContext((1, 8, 8), 10, "classification"), lambda: RefCNN(10), None),
    "residual": (lambda: templates.residual_mlp(width=16), InferContext((3,), 4, "classification"),
                 lambda: RefResidual(3, 16, 4), None),
    "concat": (templates.two_branch_concat, InferContext((6,), 2, "classification"), lambda: RefConcat(6, 2), None),
    "lstm": (lambda: templates.lstm_classifier(steps=4, features=6, hidden=10),
             InferContext((24,), 5, "classification"), lambda: RefLSTM(4, 6, 10, 5),
             {"lstm.": "lstm1.rnn.", "head.": "fc1."}),
}


def copy_weights(compiled: nn.Module, ref: nn.Module, prefixes: dict | None) -> dict[str, str]:
    """Load the compiled model's weights into ``ref``, matching names (after prefix renaming).

    Returns {reference parameter name: compiled parameter name}; every tensor on both sides must be matched.
    """
    src = compiled.state_dict()
    mapping = {}
    for key in ref.state_dict():
        other = key
        for a, b in (prefixes or {}).items():
            if key.startswith(a):
                other = b + key[len(a):]
        assert other in src, f"no compiled tensor for reference tensor {key} (looked for {other})"
        mapping[key] = other
    assert sorted(mapping.values()) == sorted(src), "compiled tensors the reference does not have"
    ref.load_state_dict({k: src[v].clone() for k, v in mapping.items()})
    return mapping


def build(name):
    factory, ctx, ref_factory, prefixes = CASES[name]
    g = factory()
    compiled = compile_graph(g, ctx)
    torch.manual_seed(1)
    ref = ref_factory()
    mapping = copy_weights(compiled.module, ref, prefixes)
    return g, ctx, compiled, ref, mapping


def run_and_grad(model, x, target, seed=0):
    """Output, d loss / d input and d loss / d every parameter."""
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    torch.manual_seed(seed)  # dropout masks come from the same generator state
    out = model(x)
    loss = F.cross_entropy(out, target) + 0.1 * (out ** 2).mean()
    loss.backward()
    return out.detach(), x.grad.detach(), {k: p.grad.detach().clone() for k, p in model.named_parameters()}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_outputs_and_gradients_match_the_hand_written_module(name, mode):
    g, ctx, compiled, ref, mapping = build(name)
    model = compiled.module
    torch.manual_seed(2)
    x = torch.randn(7, *ctx.input_shape)
    target = torch.randint(0, ctx.n_outputs, (7,))
    for m in (model, ref):
        m.train(mode == "train")
    out_c, dx_c, grads_c = run_and_grad(model, x, target)
    out_r, dx_r, grads_r = run_and_grad(ref, x, target)
    assert out_c.shape == (7, ctx.n_outputs)
    assert_close(out_c, out_r)
    assert_close(dx_c, dx_r)
    assert dx_c.abs().sum() > 0
    assert set(grads_c) == {mapping[k] for k in grads_r}
    for k, gr in grads_r.items():
        assert_close(grads_c[mapping[k]], gr, msg=lambda m, k=k: f"gradient of {k}: {m}")
    # Buffers (BatchNorm running statistics) move the same way in train mode.
    bufs_c, bufs_r = dict(model.named_buffers()), dict(ref.named_buffers())
    for k, b in bufs_r.items():
        assert_close(bufs_c[mapping[k]], b)


def test_train_and_eval_mode_really_differ_where_they_should():
    """BatchNorm uses batch statistics in train mode and running statistics in eval mode; dropout only trains."""
    g, ctx, compiled, ref, mapping = build("cnn")
    model = compiled.module
    x = torch.randn(16, *ctx.input_shape) * 3 + 1
    model.train()
    ref.train()
    for _ in range(3):  # move the running statistics
        assert_close(model(x), ref(x))
    model.eval()
    ref.eval()
    assert all(not m.training for m in model.modules())
    with torch.no_grad():
        out_eval = model(x)
        assert_close(out_eval, ref(x))
        model.train()
        assert all(m.training for m in model.modules())
        assert not torch.allclose(model(x), out_eval)

    g, ctx, compiled, ref, mapping = build("mlp")
    model = compiled.module
    x = torch.randn(32, 5)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))  # dropout off: deterministic
        model.train()
        torch.manual_seed(0)
        a = model(x)
        torch.manual_seed(1)
        b = model(x)
    assert not torch.equal(a, b)


def test_a_few_optimiser_steps_stay_in_lockstep():
    g, ctx, compiled, ref, mapping = build("residual")
    model = compiled.module
    opt_c = torch.optim.SGD(model.parameters(), lr=0.1)
    opt_r = torch.optim.SGD(ref.parameters(), lr=0.1)
    torch.manual_seed(3)
    x, y = torch.randn(32, 3), torch.randint(0, 4, (32,))
    for _ in range(5):
        for m, opt in ((model, opt_c), (ref, opt_r)):
            opt.zero_grad()
            F.cross_entropy(m(x), y).backward()
            opt.step()
    sd_c = model.state_dict()
    for k, v in ref.state_dict().items():
        assert_close(sd_c[mapping[k]], v)


# ----------------------------------------------------------------------------- generated code
def test_code_uses_the_users_names():
    g, ctx, compiled, *_ = build("mlp")
    code = compiled.code
    for name in ("fc1", "relu1", "fc2", "tanh1", "dropout1", "fc3"):
        assert f"self.{name}(" in code
    assert "def forward(self, input1)" in code
    g.rename(g.node_by_name("fc1").id, "hidden layer")
    code = compile_graph(g, ctx).code
    assert "self.hidden_layer(" in code and "self.fc1(" not in code
    assert isinstance(compile_graph(g, ctx).module, fx.GraphModule)


def test_merges_read_as_plus_and_torch_cat():
    _, _, compiled, *_ = build("residual")
    assert "add1 = " in compiled.code and " + " in compiled.code
    assert "torch.cat" not in compiled.code
    _, _, compiled, *_ = build("concat")
    assert "concat1 = torch.cat([relu1, tanh1], dim = 1)" in compiled.code.replace("dim=1", "dim = 1")


def test_concat_order_follows_the_edge_order():
    g = templates.two_branch_concat()
    ctx = InferContext((6,), 2, "classification")
    cat = g.nodes_of_type("Concat")[0]
    first = g.in_edges(cat.id)[0]
    g.disconnect(first.id)
    g.connect(first.src, cat.id)  # now tanh1 comes first
    code = compile_graph(g, ctx).code
    assert "torch.cat([tanh1, relu1]" in code


def test_merge_names_never_collide_with_generated_names():
    """A user may name a merge like fx names intermediate results ('add_1'); the code must stay correct."""
    g = Graph()
    inp = g.add_node("Input")
    a, b, c = g.add_node("ReLU"), g.add_node("Tanh"), g.add_node("Sigmoid")
    for n in (a, b, c):
        g.connect(inp.id, n.id)
    first = g.add_node("Add", name="add_1")
    second = g.add_node("Add", name="three")
    third = g.add_node("Multiply", name="mul")
    for src, dst in ((a, first), (b, first), (a, second), (b, second), (c, second), (first, third), (second, third)):
        g.connect(src.id, dst.id)
    head, out = g.add_node("Linear", {"units": "auto"}), g.add_node("Output")
    g.connect(third.id, head.id)
    g.connect(head.id, out.id)
    compiled = compile_graph(g, InferContext((4,), 3, "classification"))
    x = torch.randn(5, 4)
    r, t, s = torch.relu(x), torch.tanh(x), torch.sigmoid(x)
    expect = compiled.module.fc1((r + t) * (r + t + s))
    assert_close(compiled.module(x), expect)
    assert "three = " in compiled.code


@pytest.mark.parametrize("name", ["self", "forward", "training", "train", "eval", "type", "float", "input", "torch"])
def test_any_node_name_compiles(name):
    g = templates.mlp(hidden=(8,))
    for node in (g.node_by_name("fc1"), g.node_by_name("input1")):
        g2 = g.copy()
        g2.rename(node.id, name)
        compiled = compile_graph(g2, InferContext((2,), 3, "classification"))
        assert compiled.module(torch.randn(4, 2)).shape == (4, 3)


# ----------------------------------------------------------------------------- errors
def test_compiling_a_graph_with_errors_raises_graph_invalid_naming_the_node():
    g = templates.mlp(hidden=(8,))
    g.set_param(g.node_by_name("fc2").id, "units", 5)
    with pytest.raises(GraphInvalid) as info:
        compile_graph(g, InferContext((2,), 3, "classification"))
    err = info.value
    assert isinstance(err, LayerLabError)
    assert "Output 'output1'" in str(err) and "fc2" in str(err) and "\n" not in str(err)

    g = cnn_graph()
    g.remove_node(g.nodes_of_type("Flatten")[0].id)
    with pytest.raises(GraphInvalid, match="Linear 'fc1'"):
        compile_graph(g, InferContext((1, 8, 8), 10, "classification"))


def test_graph_invalid_counts_further_problems():
    g = templates.mlp()
    g.add_node("Linear", name="stray1")
    g.add_node("Linear", name="stray2")
    with pytest.raises(GraphInvalid, match=r"and 1 more problem\)"):
        compile_graph(g, InferContext((2,), 3, "classification"))


def test_compile_is_torch_jit_free():
    src = Path(inspect.getsourcefile(compile_module)).read_text()
    tree = ast.parse(src)
    names = {ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not any("jit" in n for n in names)
    assert not any(isinstance(n, (ast.Import, ast.ImportFrom)) and "jit" in ast.unparse(n) for n in ast.walk(tree))
    _, _, compiled, *_ = build("lstm")
    assert isinstance(compiled.module, fx.GraphModule)
    assert not isinstance(compiled.module, torch.jit.ScriptModule)
    assert not any(isinstance(m, torch.jit.ScriptModule) for m in compiled.module.modules())


def test_seed_fixes_initial_weights_without_touching_the_global_rng():
    from engine.spec import InferContext
    from engine.templates import cnn

    graph, ctx = cnn(), InferContext((1, 8, 8), 10, "classification")
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = compile_graph(graph, ctx, seed=7).module.state_dict()
    after = torch.rand(3)
    b = compile_graph(graph, ctx, seed=7).module.state_dict()
    c = compile_graph(graph, ctx, seed=8).module.state_dict()
    assert torch.equal(before, after)  # the global RNG stream is as if nothing was built
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
