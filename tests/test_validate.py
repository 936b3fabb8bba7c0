"""Shape inference against the real modules, issues with sentences and one-click fixes, and the
incremental analysis giving the same answer as a fresh one.

For every layer type there is at least one case: a tiny graph Input -> layer -> (Flatten) -> Linear(auto)
-> Output is analysed, compiled and run on a batch; every node's inferred shape must equal the tensor the
compiled module produced at that node, and every node's parameter count must equal the parameters of the
submodule built for it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch
from torch import fx

from engine import templates
from engine.compile import compile_graph
from engine.errors import LayerLabError, ProjectFileError
from engine.fixes import apply_fix, insert_on_edge
from engine.graph import Edge, Graph
from engine.layers import REGISTRY
from engine.spec import InferContext, numel
from engine.validate import BYTES_PER_VALUE, GraphInvalid, ShapeInference, analyze

BATCH = 3
N_OUT = 3


@dataclass
class Case:
    type: str
    input_shape: tuple
    params: dict = field(default_factory=dict)
    expect: tuple = ()  # the layer's output shape, worked out by hand
    branches: int = 1  # merges: this many parallel activations from the Input feed the layer
    tokens: int = 0  # Embedding: ids drawn from range(tokens)
    id: str = ""

    def __str__(self):
        return self.id or f"{self.type}{self.input_shape}{self.params or ''}"


CASES = [
    Case("Linear", (5,), {"units": 7}, (7,)),
    Case("Linear", (5,), {"units": 7, "bias": False}, (7,), id="Linear-nobias"),
    Case("Linear", (4, 6), {"units": 3}, (4, 3), id="Linear-sequence"),
    Case("Dropout", (5,), {"p": 0.3}, (5,)),
    Case("Flatten", (2, 3, 4), {}, (24,)),
    Case("Reshape", (12,), {"shape": (3, -1)}, (3, 4)),
    Case("Reshape", (2, 3, 4), {"shape": (1, 4, 6)}, (1, 4, 6), id="Reshape-3d"),
    Case("Embedding", (6,), {"num_embeddings": 10, "embedding_dim": 5}, (6, 5), tokens=10),
    Case("Conv1d", (3, 10), {"out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1}, (4, 5)),
    Case("Conv2d", (3, 9, 9), {"out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 0}, (4, 4, 4)),
    Case("Conv2d", (1, 8, 8), {"out_channels": 2, "kernel_size": 5, "padding": 2, "bias": False}, (2, 8, 8),
         id="Conv2d-same-nobias"),
    Case("MaxPool2d", (2, 7, 7), {"kernel_size": 3, "stride": 0, "padding": 1}, (2, 3, 3)),
    Case("MaxPool2d", (2, 7, 5), {"kernel_size": 2, "stride": 1}, (2, 6, 4), id="MaxPool2d-stride1"),
    Case("AvgPool2d", (3, 8, 6), {"kernel_size": 2}, (3, 4, 3)),
    Case("AdaptiveAvgPool2d", (3, 7, 5), {"output_size": 2}, (3, 2, 2)),
    Case("BatchNorm1d", (6,), {}, (6,)),
    Case("BatchNorm1d", (3, 8), {"momentum": 0.5}, (3, 8), id="BatchNorm1d-sequence"),
    Case("BatchNorm2d", (3, 5, 5), {}, (3, 5, 5)),
    Case("LayerNorm", (4, 6), {}, (4, 6)),
    Case("LayerNorm", (6,), {"affine": False}, (6,), id="LayerNorm-noaffine"),
    Case("ReLU", (5,), {}, (5,)),
    Case("LeakyReLU", (2, 3), {"negative_slope": 0.2}, (2, 3)),
    Case("GELU", (5,), {}, (5,)),
    Case("SiLU", (5,), {}, (5,)),
    Case("Sigmoid", (5,), {}, (5,)),
    Case("Tanh", (1, 4, 4), {}, (1, 4, 4)),
    Case("Softmax", (5,), {}, (5,)),
    Case("RNN", (7, 4), {"hidden_size": 6}, (6,)),
    Case("LSTM", (7, 4), {"hidden_size": 6, "output": "sequence"}, (7, 6)),
    Case("LSTM", (7, 4), {"hidden_size": 5, "num_layers": 2, "bidirectional": True}, (10,), id="LSTM-2layer-bi"),
    Case("GRU", (7, 4), {"hidden_size": 6, "bidirectional": True, "output": "sequence"}, (7, 12)),
    Case("GRU", (7, 4), {"hidden_size": 3, "num_layers": 3}, (3,), id="GRU-3layer"),
    Case("SelfAttention", (5, 8), {"num_heads": 2}, (5, 8)),
    Case("Add", (5,), {}, (5,), branches=2),
    Case("Add", (2, 3, 3), {}, (2, 3, 3), branches=3, id="Add-3-inputs"),
    Case("Multiply", (5,), {}, (5,), branches=2),
    Case("Concat", (5,), {}, (10,), branches=2),
    Case("Concat", (3, 4, 4), {"dim": 0}, (9, 4, 4), branches=3, id="Concat-channels"),
    Case("Concat", (3, 4, 4), {"dim": -1}, (3, 4, 8), branches=2, id="Concat-last"),
    Case("Concat", (3, 4, 4), {"dim": 1}, (3, 8, 4), branches=2, id="Concat-dim1"),
    Case("Custom", (3, 4, 5), {"op": "Tensor.permute", "args": [0, 2, 1, 3]}, (4, 3, 5), id="Custom-permute"),
    Case("Custom", (3, 4, 5), {"op": "torch.flatten", "args": [2]}, (3, 20), id="Custom-flatten"),
    Case("Custom", (6, 4), {"op": "nn.GroupNorm", "args": [2, 6]}, (6, 4), id="Custom-module"),
    Case("Custom", (5,), {"op": "operator.sub"}, (5,), branches=2, id="Custom-two-inputs"),
]

BRANCH_TYPES = ("ReLU", "Tanh", "Sigmoid")


def build_case(case: Case):
    """Input -> layer (or parallel activations -> merge) -> [Flatten] -> Linear(auto) -> Output."""
    g = Graph()
    inp = g.add_node("Input")
    layer = g.add_node(case.type, case.params, name="layer")
    if case.branches > 1:
        for t in BRANCH_TYPES[:case.branches]:
            b = g.add_node(t)
            g.connect(inp.id, b.id)
            g.connect(b.id, layer.id)
    else:
        g.connect(inp.id, layer.id)
    prev = layer
    if len(case.expect) != 1:
        flat = g.add_node("Flatten")
        g.connect(prev.id, flat.id)
        prev = flat
    head = g.add_node("Linear", {"units": "auto"}, name="head")
    out = g.add_node("Output")
    g.connect(prev.id, head.id)
    g.connect(head.id, out.id)
    return g, layer


def sample_batch(case: Case) -> torch.Tensor:
    torch.manual_seed(0)
    if case.tokens:
        return torch.randint(0, case.tokens, (BATCH, *case.input_shape)).float()
    return torch.randn(BATCH, *case.input_shape)


class ShapeRecorder(fx.Interpreter):
    """Runs the GraphModule node by node and keeps each fx node's per-sample output shape."""

    def __init__(self, module):
        super().__init__(module)
        self.shapes: dict[str, tuple] = {}

    def run_node(self, n):
        value = super().run_node(n)
        self.shapes[n.name] = tuple(value.shape[1:])
        return value


def test_every_layer_type_has_a_case():
    covered = {c.type for c in CASES} | {"Input", "Output"}  # every case has an Input and an Output
    assert covered == set(REGISTRY.specs), f"layer types without a shape case: {set(REGISTRY.specs) - covered}"


@pytest.mark.parametrize("case", CASES, ids=str)
def test_inferred_shapes_and_params_match_the_real_module(case):
    g, layer = build_case(case)
    ctx = InferContext(case.input_shape, N_OUT, "classification")
    analysis = analyze(g, ctx)
    assert analysis.ok, [str(i) for i in analysis.errors]
    assert analysis.nodes[layer.id].shape == case.expect

    compiled = compile_graph(g, ctx, analysis)
    model = compiled.module
    recorder = ShapeRecorder(model)
    with torch.no_grad():
        out = recorder.run(sample_batch(case))
    assert tuple(out.shape) == (BATCH, N_OUT)

    children = dict(model.named_children())
    for node in g.nodes:
        info = analysis.nodes[node.id]
        fx_name = compiled.node_names[node.id]
        assert recorder.shapes[fx_name] == info.shape, f"{node.type} '{node.name}'"
        sub = children.get(node.name)
        actual = sum(p.numel() for p in sub.parameters()) if sub is not None else 0
        assert info.n_params == actual, f"{node.type} '{node.name}': counted {info.n_params}, module has {actual}"
        assert info.flops >= 0
    assert analysis.total_params == sum(p.numel() for p in model.parameters())
    # Merges compile to functions, every other layer to a submodule named like the node.
    assert set(children) == {n.name for n in g.nodes if n.type not in ("Input", "Output", "Add", "Multiply", "Concat")}


# ----------------------------------------------------------------------------- issues and fixes
CLS = InferContext((1, 8, 8), 10, "classification")


def conv_into_linear():
    g = Graph()
    inp = g.add_node("Input")
    conv = g.add_node("Conv2d", {"out_channels": 4})
    fc = g.add_node("Linear", {"units": "auto"}, name="fc1")
    out = g.add_node("Output")
    g.connect(inp.id, conv.id)
    g.connect(conv.id, fc.id)
    g.connect(fc.id, out.id)
    return g, conv, fc, out


def test_conv_into_linear_gets_an_insert_flatten_fix_that_works_and_undoes_exactly():
    g, conv, fc, out = conv_into_linear()
    a = analyze(g, CLS)
    assert not a.ok
    (err,) = a.errors
    assert err.node_id == fc.id
    assert "Linear 'fc1'" in err.message and "(4, 8, 8)" in err.message
    assert err.fix is not None and err.fix.label == "insert Flatten before Linear 'fc1'"
    assert err.fix.kind == "insert" and err.fix.layer_type == "Flatten"
    assert err.fix.edge_id == g.in_edges(fc.id)[0].id
    assert "Fix: insert Flatten before Linear 'fc1'." in str(err)
    # Nothing downstream of an error repeats it.
    assert a.nodes[fc.id].shape is None and a.nodes[out.id].shape is None and a.issues_for(out.id) == []

    before = g.to_dict()
    undo = apply_fix(g, err.fix)
    fixed = analyze(g, CLS)
    assert fixed.ok, [str(i) for i in fixed.errors]
    flat = g.nodes_of_type("Flatten")[0]
    assert [g.node(e.src).name for e in g.in_edges(fc.id)] == [flat.name]
    assert fixed.nodes[flat.id].shape == (256,) and fixed.nodes[fc.id].shape == (10,)
    undo()
    assert g.to_dict() == before


def test_insert_fix_on_a_concat_input_keeps_its_place():
    g = Graph()
    inp = g.add_node("Input")
    conv = g.add_node("Conv2d", {"out_channels": 2})
    flat = g.add_node("Flatten")
    cat = g.add_node("Concat")
    fc = g.add_node("Linear", {"units": "auto"})
    out = g.add_node("Output")
    g.connect(inp.id, conv.id)
    g.connect(inp.id, flat.id)
    g.connect(flat.id, cat.id)
    g.connect(conv.id, cat.id)
    g.connect(cat.id, fc.id)
    g.connect(fc.id, out.id)
    a = analyze(g, CLS)
    (err,) = a.errors
    assert err.node_id == cat.id and "same rank" in err.message
    assert err.fix is None and "Try: insert Flatten on each branch" in err.message  # two edges: no one-click fix
    # Flattening the conv branch by hand (what a user does) keeps the Concat order.
    before = g.to_dict()
    undo = insert_on_edge(g, g.in_edges(cat.id)[1].id, "Flatten")
    assert [g.node(e.src).type for e in g.in_edges(cat.id)] == ["Flatten", "Flatten"]
    assert g.node(g.in_edges(cat.id)[0].src).id == flat.id
    b = analyze(g, CLS)
    assert b.ok and b.nodes[cat.id].shape == (64 + 2 * 64,)
    undo()
    assert g.to_dict() == before


def test_output_with_wrong_units_gets_a_set_param_fix_to_auto():
    g = templates.mlp(hidden=(8,))
    last = g.node_by_name("fc2")
    g.set_param(last.id, "units", 5)
    ctx = InferContext((2,), 3, "classification")
    a = analyze(g, ctx)
    (err,) = a.errors
    out = g.nodes_of_type("Output")[0]
    assert err.node_id == out.id
    assert "expects 3 values per sample" in err.message and "receives 5" in err.message
    assert err.fix.kind == "set_param" and err.fix.node_id == last.id
    assert (err.fix.key, err.fix.value) == ("units", "auto")
    assert err.fix.label == "set units of Linear 'fc2' to auto"
    before = g.to_dict()
    undo = apply_fix(g, err.fix)
    assert analyze(g, ctx).ok
    undo()
    assert g.to_dict() == before


def test_a_layer_connected_to_nothing_gets_a_delete_fix_and_one_that_feeds_others_does_not():
    """A dangling node stopped the graph from compiling with a sentence but no one-click fix."""
    g = templates.mlp(hidden=(8,))
    ctx = InferContext((2,), 3, "classification")
    loose = g.add_node("ReLU", name="loose")
    before = g.to_dict()
    (err,) = analyze(g, ctx).errors
    assert err.node_id == loose.id and err.fix.kind == "remove" and err.fix.node_id == loose.id
    assert err.fix.label == "delete the unconnected ReLU 'loose'"
    undo = apply_fix(g, err.fix)
    assert analyze(g, ctx).ok and not g.has_node(loose.id)
    undo()
    assert g.to_dict() == before
    # a layer with no input that feeds others: deleting it would cut the graph, so no such fix
    feeding = g.add_node("Linear", {"units": 4}, name="feeding")
    g.remove_node(loose.id)
    g.connect(feeding.id, g.add_node("ReLU", name="after").id)
    fixes = [e.fix for e in analyze(g, ctx).errors if e.node_id == feeding.id]
    assert fixes and all(f is None or f.kind != "remove" for f in fixes)
    # a blank project's Output, connected to nothing yet, is never offered for deletion
    blank = Graph()
    blank.add_node("Input")
    out = blank.add_node("Output")
    errors = [e for e in analyze(blank, ctx).errors if e.node_id == out.id]
    assert errors and all(e.fix is None for e in errors), [str(e) for e in errors]


def test_regression_output_and_classification_loss_mismatch():
    g = templates.mlp(hidden=(8,))
    out = g.nodes_of_type("Output")[0]
    g.set_param(out.id, "loss", "cross_entropy")
    a = analyze(g, InferContext((1,), 1, "regression"))
    (err,) = a.errors
    assert err.node_id == out.id and "regression" in err.message
    g.set_param(out.id, "loss", "auto")
    assert analyze(g, InferContext((1,), 1, "regression")).ok


def test_binary_bce_output_accepts_one_logit():
    g = templates.mlp(hidden=(8,))
    g.set_param(g.node_by_name("fc2").id, "units", 1)
    g.set_param(g.nodes_of_type("Output")[0].id, "loss", "bce_with_logits")
    assert analyze(g, InferContext((2,), 2, "classification")).ok


def two_branches(units_a, units_b, merge="Add", **params):
    g = Graph()
    inp = g.add_node("Input")
    a = g.add_node("Linear", {"units": units_a}, name="left")
    b = g.add_node("Linear", {"units": units_b}, name="right")
    m = g.add_node(merge, params, name="join")
    fc = g.add_node("Linear", {"units": "auto"})
    out = g.add_node("Output")
    for n in (a, b):
        g.connect(inp.id, n.id)
        g.connect(n.id, m.id)
    g.connect(m.id, fc.id)
    g.connect(fc.id, out.id)
    return g, m


def test_add_with_mismatched_shapes():
    g, add = two_branches(3, 5)
    a = analyze(g, InferContext((4,), 2, "classification"))
    (err,) = a.errors
    assert err.node_id == add.id
    assert "Add 'join'" in err.message and "same shape" in err.message and "(3) and (5)" in err.message
    assert a.nodes[add.id].in_shapes == ((3,), (5,))
    g2, _ = two_branches(4, 4)
    assert analyze(g2, InferContext((4,), 2, "classification")).ok


def _residual_block(kind: str, skip_width: int, main_width: int):
    """x -> a -> b -> Add(a, b): the skip from ``a`` jumps ``b``; they differ in width."""
    g = Graph()
    inp = g.add_node("Input")
    if kind == "mlp":
        a = g.add_node("Linear", {"units": skip_width}, name="a")
        b = g.add_node("Linear", {"units": main_width}, name="b")
        head = [g.add_node("Linear", {"units": "auto"})]
    else:
        a = g.add_node("Conv2d", {"out_channels": skip_width}, name="a")
        b = g.add_node("Conv2d", {"out_channels": main_width}, name="b")
        head = [g.add_node("Flatten"), g.add_node("Linear", {"units": "auto"})]
    add = g.add_node("Add", name="join")
    out = g.add_node("Output")
    g.connect(inp.id, a.id)
    g.connect(a.id, b.id)
    g.connect(b.id, add.id)  # the main branch first ...
    g.connect(a.id, add.id)  # ... or second: the fix finds it either way
    chain = [add, *head, out]
    for x, y in zip(chain, chain[1:]):
        g.connect(x.id, y.id)
    return g, a, b, add


@pytest.mark.parametrize("kind, ctx, layer, shape", [
    ("mlp", InferContext((4,), 2, "classification"), "Linear", (32,)),
    ("conv", CLS, "Conv2d", (32, 8, 8)),
])
def test_an_add_of_branches_of_different_widths_gets_a_projection_fix(kind, ctx, layer, shape):
    """A skip connection whose branches differ in width had a sentence and no one-click fix."""
    g, a, b, add = _residual_block(kind, 16, 32)
    (err,) = analyze(g, ctx).errors
    assert err.node_id == add.id and err.fix is not None and err.fix.kind == "insert"
    assert err.fix.layer_type == layer and err.fix.edge_id == next(e.id for e in g.in_edges(add.id) if e.src == a.id)
    assert err.fix.label.startswith(f"insert a {'Linear (32 units)' if kind == 'mlp' else '1×1 Conv2d (32 channels)'}"
                                    " after 'a'")
    before = g.to_dict()
    undo = apply_fix(g, err.fix)
    fixed = analyze(g, ctx)
    assert fixed.ok, [str(i) for i in fixed.errors]
    proj = g.nodes_of_type(layer)[-1]
    assert fixed.nodes[proj.id].in_shapes == (fixed.nodes[a.id].shape,) and fixed.nodes[proj.id].shape == shape
    model = compile_graph(g, ctx).module
    assert model(torch.randn(2, *ctx.input_shape)).shape == (2, 2 if kind == "mlp" else 10)
    undo()
    assert g.to_dict() == before


def test_an_add_of_different_image_sizes_has_no_projection_fix():
    g = Graph()
    inp, a = g.add_node("Input"), g.add_node("Conv2d", {"out_channels": 4}, name="a")
    pool, add = g.add_node("MaxPool2d"), g.add_node("Add")
    g.connect(inp.id, a.id)
    g.connect(a.id, pool.id)
    g.connect(pool.id, add.id)
    g.connect(a.id, add.id)
    err = next(i for i in analyze(g, CLS).errors if i.node_id == add.id)
    assert err.fix is None and "same shape" in err.message  # the sentence stays; no one fix would do


def test_concat_of_different_widths_is_fine_but_other_dims_must_match():
    ctx = InferContext((4,), 2, "classification")
    g, cat = two_branches(3, 5, "Concat")
    a = analyze(g, ctx)
    assert a.ok and a.nodes[cat.id].shape == (8,)
    g, cat = two_branches(3, 5, "Concat", dim=-1)
    assert analyze(g, ctx).nodes[cat.id].shape == (8,)
    g, cat = two_branches(3, 5, "Concat", dim=1)
    (err,) = analyze(g, ctx).errors
    assert err.node_id == cat.id and "dim 1" in err.message

    # Sequences: joined along the feature dim they may differ; along the step dim the features must match.
    g = Graph()
    inp = g.add_node("Input")
    a_, b_ = g.add_node("Linear", {"units": 3}), g.add_node("Linear", {"units": 5})
    cat = g.add_node("Concat", {"dim": 0}, name="join")
    for n in (a_, b_):
        g.connect(inp.id, n.id)
        g.connect(n.id, cat.id)
    (err,) = [i for i in analyze(g, InferContext((6, 4), 2, "classification")).errors if i.node_id == cat.id]
    assert "Concat 'join'" in err.message and "(6, 3) and (6, 5)" in err.message


def test_merge_with_one_input_says_it_needs_two():
    g, add = two_branches(4, 4)
    g.disconnect(g.in_edges(add.id)[1].id)
    errs = [i for i in analyze(g, InferContext((4,), 2, "classification")).errors if i.node_id == add.id]
    assert len(errs) == 1 and "at least 2 inputs" in errs[0].message and "it has 1" in errs[0].message


@pytest.mark.parametrize("missing", ["Input", "Output"])
def test_missing_input_or_output(missing):
    g = templates.mlp()
    g.remove_node(g.nodes_of_type(missing)[0].id)
    a = analyze(g, InferContext((2,), 2, "classification"))
    assert any(f"no {missing} node" in i.message for i in a.errors)
    with pytest.raises(GraphInvalid):
        compile_graph(g, InferContext((2,), 2, "classification"))


def test_two_inputs_are_an_error():
    g = templates.mlp()
    extra = g.add_node("Input", name="second")
    a = analyze(g, InferContext((2,), 2, "classification"))
    assert any(i.node_id == extra.id and "more than one Input" in i.message for i in a.errors)


def test_empty_graph_says_what_to_add():
    a = analyze(Graph(), InferContext((2,), 2, "classification"))
    msgs = [i.message for i in a.errors]
    assert len(msgs) == 2 and "no Input" in msgs[0] and "no Output" in msgs[1]
    assert a.total_params == 0 and a.flops == 0 and a.activation_bytes == 0


def test_unconnected_node_is_reported():
    g = templates.mlp()
    stray = g.add_node("Linear", {"units": 4}, name="stray")
    a = analyze(g, InferContext((2,), 2, "classification"))
    issues = a.issues_for(stray.id)
    assert sorted(i.severity for i in issues) == ["error", "warning"]
    err = next(i for i in issues if i.severity == "error")
    assert "Linear 'stray' has no input" in err.message
    warn = next(i for i in issues if i.severity == "warning")
    assert "not used" in warn.message
    assert a.nodes[stray.id].shape is None


def test_dangling_branch_is_a_warning_only():
    g = templates.mlp()
    extra = g.add_node("ReLU", name="spare")
    g.connect(g.node_by_name("fc1").id, extra.id)
    a = analyze(g, InferContext((2,), 2, "classification"))
    assert a.ok and [i.node_id for i in a.warnings] == [extra.id]


def _bypass_connect(g: Graph, src: str, dst: str) -> None:
    """Add an edge the way a hand-edited file would arrive, without the checks in connect()."""
    g._insert_edge(Edge(id="back-edge", src=src, dst=dst), None)


def test_cycle_that_bypassed_connect_is_reported_and_not_compiled():
    g = templates.residual_mlp()
    ctx = InferContext((2,), 3, "classification")
    inference = ShapeInference(g, ctx)
    assert inference.analyze().ok
    add, relu = g.node_by_name("add1"), g.node_by_name("relu3")
    _bypass_connect(g, relu.id, add.id)
    for a in (inference.analyze(), analyze(g, ctx)):
        assert not a.ok and a.order == ()
        cyc = [i for i in a.errors if "cycle" in i.message]
        assert len(cyc) == 1 and "add1" in cyc[0].message and "relu3" in cyc[0].message
    with pytest.raises(GraphInvalid, match="cycle"):
        compile_graph(g, ctx)
    # Removing the edge heals the warm analysis too.
    g.disconnect("back-edge")
    assert inference.analyze().ok


def test_cycle_in_a_file_like_dict_is_reported():
    g = templates.residual_mlp()
    d = g.to_dict()
    d["edges"].append({"id": "back", "src": g.node_by_name("relu3").id, "src_port": "out",
                       "dst": g.node_by_name("add1").id, "dst_port": "in"})
    with pytest.raises(ProjectFileError, match="cycle"):
        Graph.from_dict(d)


def test_auto_linear_that_does_not_feed_the_output():
    g = templates.mlp(hidden=(8,))
    fc1 = g.node_by_name("fc1")
    g.set_param(fc1.id, "units", "auto")
    ctx = InferContext((2,), 3, "classification")
    a = analyze(g, ctx)
    errs = a.issues_for(fc1.id)
    assert len(errs) == 1 and errs[0].severity == "error"
    assert "Linear 'fc1'" in errs[0].message and "'auto'" in errs[0].message
    assert errs[0].fix.kind == "set_param" and errs[0].fix.node_id == fc1.id
    before = g.to_dict()
    undo = apply_fix(g, errs[0].fix)
    assert analyze(g, ctx).ok
    undo()
    assert g.to_dict() == before


def test_auto_units_without_a_dataset():
    g = templates.mlp()
    a = analyze(g, InferContext((2,), None, None))
    assert any("no dataset" in i.message for i in a.errors)
    a = analyze(g, InferContext())
    assert any("Input" in i.message and "no dataset" in i.message for i in a.errors)


def test_softmax_before_cross_entropy_warns():
    g = templates.mlp(hidden=(8,))
    sm = g.add_node("Softmax")
    fc2, out = g.node_by_name("fc2"), g.nodes_of_type("Output")[0]
    g.disconnect(g.in_edges(out.id)[0].id)
    g.connect(fc2.id, sm.id)
    g.connect(sm.id, out.id)
    a = analyze(g, InferContext((2,), 2, "classification"))
    assert [i.node_id for i in a.warnings] == [sm.id]
    # fc2 feeds the Output through the Softmax, which the auto rule does not see through: that is an error.
    assert any(i.node_id == fc2.id for i in a.errors)


@pytest.mark.parametrize("type_, params, shape, words", [
    ("Conv2d", {}, (8,), "Conv2d expects an image"),
    ("Conv1d", {}, (1, 8, 8), "Conv1d expects (channels, length)"),
    ("LSTM", {}, (8,), "expects a sequence"),
    ("MaxPool2d", {}, (2, 1, 1), "shrinks"),
    ("MaxPool2d", {"kernel_size": 2, "padding": 2}, (2, 8, 8), "more than half"),
    ("Conv2d", {"kernel_size": 9, "padding": 0}, (1, 8, 8), "shrinks"),
    ("BatchNorm2d", {}, (8,), "BatchNorm2d expects"),
    ("BatchNorm1d", {}, (1, 8, 8), "BatchNorm1d expects"),
    ("Embedding", {}, (2, 3), "token ids"),
    ("Reshape", {"shape": (2, -1)}, (7,), "cannot fit 7 values"),
    ("Reshape", {"shape": (2, 3)}, (7,), "cannot turn (7)"),
    ("Linear", {}, (1, 8, 8), "Linear expects a vector"),
])
def test_shape_errors_are_sentences_on_the_node(type_, params, shape, words):
    g = Graph()
    inp = g.add_node("Input")
    n = g.add_node(type_, params, name="culprit")
    g.connect(inp.id, n.id)
    a = analyze(g, InferContext(shape, 2, "classification"))
    errs = a.issues_for(n.id)
    errs = [i for i in errs if i.severity == "error"]
    assert len(errs) == 1 and words in errs[0].message and "'culprit'" in errs[0].message
    assert errs[0].message.endswith(".") and "\n" not in errs[0].message


def test_self_attention_heads_must_divide_features():
    g, layer = build_case(Case("SelfAttention", (5, 6), {"num_heads": 4}, (5, 6)))
    (err,) = analyze(g, InferContext((5, 6), 2, "classification")).errors
    assert err.node_id == layer.id and "divisible" in err.message


# ----------------------------------------------------------------------------- totals
def test_totals_are_consistent_and_match_a_hand_count():
    g = templates.mlp(hidden=(16, 8))
    ctx = InferContext((4,), 3, "classification")
    a = analyze(g, ctx)
    assert a.ok
    assert a.total_params == (4 * 16 + 16) + (16 * 8 + 8) + (8 * 3 + 3)
    assert a.total_params == sum(i.n_params for i in a.nodes.values())
    assert a.flops == sum(i.flops for i in a.nodes.values()) > 0
    assert a.nodes[g.node_by_name("fc1").id].flops == 2 * 4 * 16
    # input (4) + fc1, relu1 (16) + fc2, relu2 (8) + fc3 (3); the Output holds no activation of its own
    assert a.activation_bytes == (4 + 16 + 16 + 8 + 8 + 3) * BYTES_PER_VALUE
    assert a.activation_bytes == BYTES_PER_VALUE * sum(
        numel(i.shape) for nid, i in a.nodes.items() if g.node(nid).type != "Output")
    assert set(a.order) == {n.id for n in g.nodes} and set(a.nodes) == set(a.order)
    assert set(a.edge_shapes) == {e.id for e in g.edges}
    for e in g.edges:
        assert a.edge_shapes[e.id] == a.nodes[e.src].shape
    # Topological order: every edge points forward.
    pos = {nid: k for k, nid in enumerate(a.order)}
    assert all(pos[e.src] < pos[e.dst] for e in g.edges)


@pytest.mark.parametrize("name", sorted(templates.TEMPLATES))
def test_template_totals_match_compiled_parameters(name):
    g = templates.TEMPLATES[name][1]()
    ctx = InferContext((1, 8, 8) if name in ("cnn", "lstm") else (2,), 10, "classification")
    if name == "lstm":
        ctx = InferContext((64,), 10, "classification")
    a = analyze(g, ctx)
    assert a.ok, [str(i) for i in a.errors]
    model = compile_graph(g, ctx, a).module
    assert a.total_params == sum(p.numel() for p in model.parameters())
    assert a.flops > 0 and a.activation_bytes > 0


# ----------------------------------------------------------------------------- incremental analysis
def _big_residual(blocks=12):
    g = Graph()
    prev = g.add_node("Input")
    first = g.add_node("Linear", {"units": 16})
    g.connect(prev.id, first.id)
    prev, inner = first, []
    for _ in range(blocks):
        a, ln, act, b, add = (g.add_node("Linear", {"units": 16}), g.add_node("LayerNorm"), g.add_node("ReLU"),
                              g.add_node("Linear", {"units": 16}), g.add_node("Add"))
        for x, y in ((prev, a), (a, ln), (ln, act), (act, b), (b, add), (prev, add)):
            g.connect(x.id, y.id)
        inner.append((a, b))
        prev = add
    head, out = g.add_node("Linear", {"units": "auto"}), g.add_node("Output")
    g.connect(prev.id, head.id)
    g.connect(head.id, out.id)
    return g, inner


def test_incremental_analysis_equals_a_fresh_one_after_each_kind_of_edit():
    g, inner = _big_residual()
    ctx = InferContext((5,), 3, "classification")
    inference = ShapeInference(g, ctx)
    first = inference.analyze()
    assert first.ok and first == analyze(g, ctx)
    first_names = {n.id: n.name for n in g.nodes}
    a_mid, b_mid = inner[len(inner) // 2]

    def check():
        warm, fresh = inference.analyze(), analyze(g, ctx)
        assert warm == fresh
        return warm

    g.set_param(a_mid.id, "units", 24)  # changes the shapes of the block's inner nodes only
    assert check().ok
    g.set_param(b_mid.id, "units", 8)  # breaks the Add of that block
    bad = check()
    assert len(bad.errors) == 1 and "same shape" in bad.errors[0].message
    g.set_param(b_mid.id, "units", 16)
    assert check().ok
    g.rename(a_mid.id, "renamed")
    check()
    g.move(a_mid.id, (1, 1))
    check()
    removal = g.remove_node(b_mid.id)
    assert not check().ok
    g.restore_node(removal)
    g.set_param(a_mid.id, "units", 16)
    g.rename(a_mid.id, "fc_mid")
    g.rename(a_mid.id, first_names[a_mid.id])
    assert check() == first  # back to the starting document, back to the starting analysis
    inference.set_context(InferContext((7,), 4, "classification"))
    assert inference.analyze() == analyze(g, InferContext((7,), 4, "classification"))


def test_incremental_analysis_recomputes_only_what_changed(monkeypatch):
    import engine.validate as validate

    g, inner = _big_residual()
    ctx = InferContext((5,), 3, "classification")
    inference = ShapeInference(g, ctx)
    inference.analyze()
    calls = []
    real = validate._infer_node
    monkeypatch.setattr(validate, "_infer_node", lambda graph, node, *a: calls.append(node.name) or real(graph, node, *a))
    a_mid, _ = inner[len(inner) // 2]
    g.set_param(a_mid.id, "units", 24)
    inference.analyze()
    # The Linear itself, its LayerNorm and ReLU (new shapes) and the next Linear (new input shape);
    # that Linear's output is unchanged, so nothing after it is recomputed.
    assert len(calls) == 4 and calls[0] == a_mid.name
    calls.clear()
    inference.analyze()
    assert calls == []


def test_cached_fix_follows_a_replaced_edge():
    """A fix names an edge; after the edge is replaced by an equal-shaped one the fix must name the new edge."""
    g, conv, fc, out = conv_into_linear()
    inference = ShapeInference(g, CLS)
    (err,) = inference.analyze().errors
    old_edge = err.fix.edge_id
    conv2 = g.add_node("Conv2d", {"out_channels": 4})
    g.connect(g.nodes_of_type("Input")[0].id, conv2.id)
    g.disconnect(old_edge)
    g.connect(conv2.id, fc.id)
    a = inference.analyze()
    assert a == analyze(g, CLS)
    fix = next(i.fix for i in a.errors if i.node_id == fc.id)
    assert g.has_edge(fix.edge_id) and g.edge(fix.edge_id).src == conv2.id
    apply_fix(g, fix)
    assert all(i.node_id != fc.id for i in inference.analyze().errors)


def test_graph_invalid_is_a_layerlab_error_naming_the_node():
    g, conv, fc, out = conv_into_linear()
    with pytest.raises(GraphInvalid) as info:
        compile_graph(g, CLS)
    assert isinstance(info.value, LayerLabError)
    assert "Linear 'fc1'" in str(info.value) and "insert Flatten" in str(info.value)
    assert info.value.analysis.errors


@pytest.mark.parametrize("type_, shape, reshape", [
    ("Conv2d", (2,), None),  # 2 values cannot be an image: no Reshape is offered
    ("Conv2d", (10,), None),
    ("MaxPool2d", (2,), None),
    ("Conv2d", (784,), (1, 28, 28)),
    ("Conv2d", (192,), (3, 8, 8)),
    ("Conv2d", (4, 6), (1, 4, 6)),  # a 2-D sample gets one channel in front
    ("Conv1d", (5,), (1, 5)),
])
def test_a_conv_after_flat_features_is_told_what_its_values_can_become(type_, shape, reshape):
    g = Graph()
    inp = g.add_node("Input")
    n = g.add_node(type_, {}, name="culprit")
    g.connect(inp.id, n.id)
    a = analyze(g, InferContext(shape, 2, "classification"))
    (err,) = [i for i in a.issues_for(n.id) if i.severity == "error"]
    assert "e.g. to 1, 8, 8" not in err.message
    if reshape is None:
        assert err.fix is None and "Reshape" not in err.message
        assert f"{numel(shape)} values per sample do not form a square image" in err.message
        assert "use Linear layers (an MLP)" in err.message
        return
    assert err.fix is not None and err.fix.layer_type == "Reshape"
    assert err.fix.label.startswith(f"insert Reshape to {', '.join(map(str, reshape))}")
    undo = apply_fix(g, err.fix)
    fixed = analyze(g, InferContext(shape, 2, "classification"))
    assert not [i for i in fixed.issues_for(n.id) if i.severity == "error"]
    reshape_node = next(x for x in g.nodes if x.type == "Reshape")
    assert fixed.nodes[reshape_node.id].shape == reshape
    undo()
    assert not any(x.type == "Reshape" for x in g.nodes)
