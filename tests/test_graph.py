"""The graph document: every edit has an exact inverse, observers hear every change, bad edits and bad
documents are refused with a sentence, and documents survive a JSON round trip.

"Exact" means ``g.to_dict()`` is equal before and after, which includes the order of nodes and edges
(and so the input order of a Concat).
"""
from __future__ import annotations

import json
import random

import pytest

from engine import templates
from engine.errors import GraphError, LayerLabError, ParamError, ProjectFileError
from engine.graph import GRAPH_VERSION, Graph, GraphEvent, to_identifier
from engine.layers import REGISTRY


# ----------------------------------------------------------------------------- helpers
def concat_graph():
    """Input -> a, b, c (three branches) -> Concat(a, b, c) -> fc(auto) -> Output; returns (graph, nodes by name)."""
    g = Graph()
    inp = g.add_node("Input", pos=(0, 0))
    a = g.add_node("Linear", {"units": 4}, (100, -50), name="a")
    b = g.add_node("Linear", {"units": 5}, (100, 0), name="b")
    c = g.add_node("Linear", {"units": 6}, (100, 50), name="c")
    cat = g.add_node("Concat", pos=(200, 0), name="cat")
    fc = g.add_node("Linear", {"units": "auto"}, (300, 0), name="fc1")
    out = g.add_node("Output", pos=(400, 0))
    for n in (a, b, c):
        g.connect(inp.id, n.id)
    for n in (a, b, c):
        g.connect(n.id, cat.id)
    g.connect(cat.id, fc.id)
    g.connect(fc.id, out.id)
    return g, {n.name: n for n in g.nodes}


def concat_sources(g: Graph, cat_id: str) -> list[str]:
    return [g.node(e.src).name for e in g.in_edges(cat_id)]


class Recorder:
    def __init__(self, g: Graph):
        self.events: list[GraphEvent] = []
        self.unsubscribe = g.subscribe(self.events.append)

    def kinds(self):
        return [e.kind for e in self.events]

    def clear(self):
        self.events.clear()


# ----------------------------------------------------------------------------- exact inverses
def test_add_node_then_remove_node_is_exact():
    g, _ = concat_graph()
    before = g.to_dict()
    n = g.add_node("ReLU", pos=(5, 5))
    assert g.to_dict() != before
    g.remove_node(n.id)
    assert g.to_dict() == before


@pytest.mark.parametrize("name", ["a", "b", "c", "cat", "input1"])
def test_remove_node_then_restore_node_is_exact(name):
    g, nodes = concat_graph()
    before = g.to_dict()
    removal = g.remove_node(nodes[name].id)
    assert not g.has_node(nodes[name].id)
    assert all(nodes[name].id not in (e.src, e.dst) for e in g.edges)
    restored = g.restore_node(removal)
    assert restored.id == nodes[name].id
    assert g.to_dict() == before
    assert concat_sources(g, nodes["cat"].id) == ["a", "b", "c"]


def test_restore_node_twice_is_refused():
    g, nodes = concat_graph()
    removal = g.remove_node(nodes["b"].id)
    g.restore_node(removal)
    with pytest.raises(GraphError):
        g.restore_node(removal)


def test_removal_record_is_not_affected_by_later_edits():
    g, nodes = concat_graph()
    before = g.to_dict()
    removal = g.remove_node(nodes["b"].id)
    restored = g.restore_node(removal)
    g.set_param(restored.id, "units", 99)
    g.rename(restored.id, "bee")
    g.remove_node(restored.id)
    g.restore_node(removal)  # the record still holds the node as it was
    assert g.to_dict() == before


@pytest.mark.parametrize("position", [0, 1, 2])
def test_disconnect_then_restore_edge_keeps_concat_order(position):
    g, nodes = concat_graph()
    before = g.to_dict()
    edge = g.in_edges(nodes["cat"].id)[position]
    removal = g.disconnect(edge.id)
    assert len(concat_sources(g, nodes["cat"].id)) == 2
    g.restore_edge(removal)
    assert g.to_dict() == before
    assert concat_sources(g, nodes["cat"].id) == ["a", "b", "c"]


def test_connect_then_disconnect_is_exact():
    g, nodes = concat_graph()
    d = g.add_node("Linear", {"units": 3}, name="d")
    g.connect(nodes["input1"].id, d.id)
    before = g.to_dict()
    e = g.connect(d.id, nodes["cat"].id)
    assert concat_sources(g, nodes["cat"].id) == ["a", "b", "c", "d"]
    g.disconnect(e.id)
    assert g.to_dict() == before


def test_connect_at_index_puts_the_input_in_that_place():
    g, nodes = concat_graph()
    d = g.add_node("Linear", {"units": 3}, name="d")
    g.connect(nodes["input1"].id, d.id)
    first_cat_edge = list(g._edges).index(g.in_edges(nodes["cat"].id)[0].id)
    g.connect(d.id, nodes["cat"].id, index=first_cat_edge)
    assert concat_sources(g, nodes["cat"].id) == ["d", "a", "b", "c"]


def test_set_param_returns_old_value_and_setting_it_back_is_exact():
    g, nodes = concat_graph()
    before = g.to_dict()
    old = g.set_param(nodes["a"].id, "units", "17")  # strings from a form are coerced
    assert old == 4 and g.node(nodes["a"].id).params["units"] == 17
    g.set_param(nodes["a"].id, "units", old)
    assert g.to_dict() == before

    old = g.set_param(nodes["fc1"].id, "units", 8)
    assert old == "auto"
    g.set_param(nodes["fc1"].id, "units", old)
    assert g.to_dict() == before


def test_set_param_on_ints_param_round_trips():
    g = Graph()
    r = g.add_node("Reshape", {"shape": (1, 8, 8)})
    before = g.to_dict()
    old = g.set_param(r.id, "shape", "8, 8")
    assert g.node(r.id).params["shape"] == (8, 8)
    g.set_param(r.id, "shape", old)
    assert g.to_dict() == before


def test_move_and_rename_have_exact_inverses():
    g, nodes = concat_graph()
    before = g.to_dict()
    old_pos = g.move(nodes["a"].id, (12.5, -3))
    assert g.node(nodes["a"].id).pos == (12.5, -3.0)
    g.move(nodes["a"].id, old_pos)
    assert g.to_dict() == before
    old_name = g.rename(nodes["a"].id, "first branch")
    assert g.node(nodes["a"].id).name == "first_branch"
    g.rename(nodes["a"].id, old_name)
    assert g.to_dict() == before


def test_rename_refuses_a_taken_name_and_keeps_the_document():
    g, nodes = concat_graph()
    before = g.to_dict()
    with pytest.raises(GraphError, match="already exists"):
        g.rename(nodes["a"].id, "b")
    assert g.to_dict() == before
    g.rename(nodes["a"].id, "a")  # its own name is fine
    assert g.to_dict() == before


def test_names_are_identifiers_and_never_clash_with_the_compiled_module():
    assert to_identifier("my layer-1") == "my_layer_1"
    assert to_identifier("1st") == "_1st"
    assert to_identifier("class") == "class_"
    assert to_identifier("   ") == "layer"
    # Node names become submodule names and locals of forward(self, ...).
    for reserved in ("self", "forward", "training", "train", "eval", "type", "float", "parameters", "code", "graph"):
        assert to_identifier(reserved) != reserved
    g = Graph()
    n = g.add_node("Linear", name="forward")
    assert n.name == "forward_"
    for name in ("self", "x y", "lambda", "to"):
        once = to_identifier(name)
        assert to_identifier(once) == once


def test_default_names_follow_the_prefix_and_stay_unique():
    g = Graph()
    names = [g.add_node("Linear").name for _ in range(3)] + [g.add_node("Conv2d").name, g.add_node("ReLU").name]
    assert names == ["fc1", "fc2", "fc3", "conv1", "relu1"]
    with pytest.raises(GraphError, match="already exists"):
        g.add_node("ReLU", name="fc2")


# ----------------------------------------------------------------------------- observers
def test_observers_hear_every_change_in_order():
    g = Graph()
    rec = Recorder(g)
    a = g.add_node("Input")
    b = g.add_node("Linear", {"units": 3})
    e = g.connect(a.id, b.id)
    g.set_param(b.id, "units", 4)
    g.set_param(b.id, "units", 4)  # no change, no event
    g.move(b.id, (1, 2))
    g.rename(b.id, "hidden")
    assert rec.kinds() == ["node_added", "node_added", "edge_added", "param_changed", "node_moved", "node_renamed"]
    pc = rec.events[3]
    assert (pc.node_id, pc.key, pc.old, pc.new) == (b.id, "units", 3, 4)
    assert rec.events[2].edge_id == e.id
    assert (rec.events[5].old, rec.events[5].new) == ("fc1", "hidden")

    rec.clear()
    removal = g.remove_node(b.id)
    assert rec.kinds() == ["edge_removed", "node_removed"]
    assert rec.events[0].edge_id == e.id and rec.events[1].node_id == b.id
    rec.clear()
    g.restore_node(removal)
    assert rec.kinds() == ["node_added", "edge_added"]

    rec.clear()
    g.replace_with(templates.mlp())
    assert rec.kinds() == ["reset"]

    rec.unsubscribe()
    g.add_node("ReLU")
    assert rec.kinds() == ["reset"]


def test_refused_edits_emit_nothing():
    g, nodes = concat_graph()
    rec = Recorder(g)
    with pytest.raises(GraphError):
        g.connect(nodes["fc1"].id, nodes["a"].id)  # cycle
    with pytest.raises(ParamError):
        g.set_param(nodes["a"].id, "units", -1)
    with pytest.raises(GraphError):
        g.rename(nodes["a"].id, "b")
    assert rec.events == []


# ----------------------------------------------------------------------------- refused edits
def test_cycle_is_refused_at_connect_with_a_sentence():
    g = templates.residual_mlp()  # the Add takes many inputs, so only the cycle rule can refuse this
    add, fc4 = g.node_by_name("add1"), g.node_by_name("fc4")
    before = g.to_dict()
    problem = g.connection_problem(fc4.id, add.id)
    assert problem and "cycle" in problem and "'fc4'" in problem and "'add1'" in problem
    with pytest.raises(GraphError) as info:
        g.connect(fc4.id, add.id)
    assert str(info.value) == problem and str(info.value).endswith(".")
    assert g.to_dict() == before  # a refused edit changes nothing
    with pytest.raises(GraphError, match="itself"):
        g.connect(add.id, add.id)
    # A single-input node that already has an input is refused for that reason first; free it and the
    # cycle rule still holds.
    fc1 = g.node_by_name("fc1")
    g.disconnect(g.in_edges(fc1.id)[0].id)
    assert "cycle" in g.connection_problem(fc4.id, fc1.id)
    with pytest.raises(GraphError, match="cycle"):
        g.connect(fc4.id, fc1.id)


def test_single_input_port_refuses_a_second_edge():
    g = templates.mlp()
    inp, fc2 = g.node_by_name("input1"), g.node_by_name("fc2")
    before = g.to_dict()
    with pytest.raises(GraphError, match="already has an input") as info:
        g.connect(inp.id, fc2.id)
    assert "Add or Concat" in str(info.value)
    assert g.to_dict() == before


def test_multi_port_takes_several_edges_but_not_the_same_source_twice():
    g, nodes = concat_graph()
    with pytest.raises(GraphError, match="already feeds"):
        g.connect(nodes["a"].id, nodes["cat"].id)


def test_bad_ports_and_unknown_nodes_are_refused():
    g, nodes = concat_graph()
    assert "no output port" in g.connection_problem(nodes["a"].id, nodes["b"].id, src_port="bogus")
    assert "no input port" in g.connection_problem(nodes["a"].id, nodes["b"].id, dst_port="bogus")
    with pytest.raises(GraphError):
        g.connect(nodes["a"].id, "no-such-node")
    with pytest.raises(GraphError):
        g.remove_node("no-such-node")
    with pytest.raises(GraphError):
        g.disconnect("no-such-edge")


def test_unknown_layer_type_is_refused():
    with pytest.raises(GraphError, match="Unknown layer type 'Wobble'"):
        Graph().add_node("Wobble")


@pytest.mark.parametrize("key, value, words", [
    ("units", 0, "at least 1"),
    ("units", -3, "at least 1"),
    ("units", 2_000_000, "at most"),
    ("units", 2.5, "whole number"),
    ("units", "many", "whole number"),
    ("units", True, "whole number"),
    ("bias", "perhaps", "true or false"),
    ("nonexistent", 1, "no parameter"),
])
def test_param_errors_are_sentences_that_name_the_node(key, value, words):
    g = templates.mlp()
    fc1 = g.node_by_name("fc1")
    before = g.to_dict()
    with pytest.raises(ParamError) as info:
        g.set_param(fc1.id, key, value)
    msg = str(info.value)
    assert words in msg and "\n" not in msg
    if key != "nonexistent":
        assert "'fc1'" in msg
    assert isinstance(info.value, LayerLabError)
    assert g.to_dict() == before


@pytest.mark.parametrize("type_name, key, value", [
    ("Dropout", "p", 1.5), ("Dropout", "p", float("nan")), ("Conv2d", "kernel_size", 0),
    ("Output", "loss", "hinge"), ("Reshape", "shape", (0, 4)), ("Reshape", "shape", (-1, -1)),
    ("Reshape", "shape", ()), ("Concat", "dim", 9),
])
def test_param_errors_for_other_kinds(type_name, key, value):
    g = Graph()
    n = g.add_node(type_name, name="thing")
    with pytest.raises(ParamError, match="'thing'"):
        g.set_param(n.id, key, value)


def test_add_node_with_bad_params_is_refused():
    with pytest.raises(ParamError):
        Graph().add_node("Linear", {"units": -1})
    g = Graph()
    with pytest.raises(ParamError):
        g.add_node("Linear", {"unitz": 3})
    assert g.nodes == []


# ----------------------------------------------------------------------------- documents
@pytest.mark.parametrize("name", sorted(templates.TEMPLATES))
def test_json_round_trip_of_every_template(name):
    g = templates.TEMPLATES[name][1]()
    text = json.dumps(g.to_dict())
    g2 = Graph.from_dict(json.loads(text))
    assert g2.to_dict() == g.to_dict()
    assert g2 == g and g.copy() == g
    assert [n.id for n in g2.nodes] == [n.id for n in g.nodes]
    assert [e.id for e in g2.edges] == [e.id for e in g.edges]


def test_json_round_trip_keeps_concat_order_and_param_types():
    g, nodes = concat_graph()
    g.add_node("Reshape", {"shape": (2, -1)}, name="r")
    g.remove_node(nodes["a"].id)
    g.restore_node(g.remove_node(nodes["b"].id))  # b's edges move back to their places
    d = json.loads(json.dumps(g.to_dict()))
    g2 = Graph.from_dict(d)
    assert concat_sources(g2, nodes["cat"].id) == concat_sources(g, nodes["cat"].id) == ["b", "c"]
    assert g2.node_by_name("r").params["shape"] == (2, -1)
    assert g2.node_by_name("fc1").params["units"] == "auto"
    assert g2.to_dict() == g.to_dict()


def test_newer_version_is_refused_with_a_sentence():
    d = templates.mlp().to_dict()
    d["version"] = GRAPH_VERSION + 1
    with pytest.raises(ProjectFileError, match="newer"):
        Graph.from_dict(d)


@pytest.mark.parametrize("version", [0, -1, "1", None])
def test_invalid_version_is_refused(version):
    d = templates.mlp().to_dict()
    d["version"] = version
    with pytest.raises(ProjectFileError, match="version"):
        Graph.from_dict(d)


def test_unknown_layer_type_in_a_document_names_the_type():
    d = templates.mlp().to_dict()
    d["nodes"][2]["type"] = "QuantumLayer"
    with pytest.raises(ProjectFileError, match="QuantumLayer"):
        Graph.from_dict(d)


@pytest.mark.parametrize("doc", [
    None, [], "layerlab", 42, {}, {"nodes": [], "edges": []},
    {"format": "something.else", "version": 1, "nodes": [], "edges": []},
    {"format": "layerlab.project", "version": 1},
])
def test_foreign_documents_are_refused(doc):
    with pytest.raises(ProjectFileError):
        Graph.from_dict(doc)


def _mutations():
    """Ways a document in a file can be broken; each must be one ProjectFileError, never another exception."""
    def drop(key):
        return lambda d: d.pop(key)

    return [
        drop("nodes"), drop("edges"),
        lambda d: d.update(nodes=None),
        lambda d: d.update(nodes=[1, 2]),
        lambda d: d["nodes"][1].pop("id"),
        lambda d: d["nodes"][1].update(params=[1, 2]),
        lambda d: d["nodes"][1]["params"].update(units=-5),
        lambda d: d["nodes"][1]["params"].update(units="lots"),
        lambda d: d["nodes"][1]["params"].update(bogus=1),
        lambda d: d["nodes"][1].update(pos="here"),
        lambda d: d["nodes"][1].update(pos=[1]),
        lambda d: d["nodes"][1].update(name=5),
        lambda d: d["nodes"][2].update(name=d["nodes"][1]["name"]),  # duplicate name
        lambda d: d["nodes"][2].update(id=d["nodes"][1]["id"]),  # duplicate id
        lambda d: d["edges"][0].update(src="nowhere"),
        lambda d: d["edges"][0].pop("dst"),
        lambda d: d["edges"].append(dict(d["edges"][0])),  # duplicate edge
        lambda d: d["edges"].append({"id": "x", "src": d["nodes"][0]["id"], "dst": d["nodes"][3]["id"]}),  # 2nd input
        lambda d: d["edges"].append({"id": "y", "src": d["nodes"][3]["id"], "dst": d["nodes"][1]["id"]}),  # cycle
    ]


@pytest.mark.parametrize("k", range(len(_mutations())))
def test_broken_documents_are_one_project_file_error(k):
    d = templates.mlp().to_dict()
    _mutations()[k](d)
    with pytest.raises(ProjectFileError) as info:
        Graph.from_dict(d)
    assert "\n" not in str(info.value)


def test_cycle_in_a_document_is_reported():
    g = templates.residual_mlp()
    d = g.to_dict()
    add, fc4 = g.node_by_name("add1").id, g.node_by_name("fc4").id
    d["edges"].append({"id": "back", "src": fc4, "src_port": "out", "dst": add, "dst_port": "in"})
    with pytest.raises(ProjectFileError, match="cycle"):
        Graph.from_dict(d)


def test_documents_from_files_may_omit_optional_fields():
    d = {"format": "layerlab.graph", "version": 1,
         "nodes": [{"id": "i", "type": "Input"}, {"id": "f", "type": "Linear", "params": {"units": "auto"}},
                   {"id": "o", "type": "Output"}],
         "edges": [{"id": "e1", "src": "i", "dst": "f"}, {"id": "e2", "src": "f", "dst": "o"}]}
    g = Graph.from_dict(d)
    assert [n.name for n in g.nodes] == ["input1", "fc1", "output1"]
    assert g.node("f").params == {"units": "auto", "bias": True}
    assert Graph.from_dict(g.to_dict()) == g


# ----------------------------------------------------------------------------- randomised inverse stack
_NAMES = ["alpha", "beta", "gamma", "fc1", "relu1", "x", "a b", "class", "forward"]
_TYPES = sorted(REGISTRY.specs)


def _random_value(rng: random.Random, param):
    """A value for ``param``; about one in six is invalid (out of range or of the wrong type)."""
    if rng.random() < 1 / 6:
        return rng.choice([-7, 10 ** 9, "nonsense", None, 2.5, [], "1,0"])
    k = param.kind
    if k == "bool":
        return rng.choice([True, False, "true", "no"])
    if k == "choice":
        return rng.choice(param.choices)
    if k == "ints":
        return tuple(rng.randint(1, 9) for _ in range(rng.randint(1, 3)))
    if k == "units" and rng.random() < 0.3:
        return "auto"
    if k in ("int", "units"):
        lo = int(param.min if param.min is not None else 0)
        hi = int(min(param.max if param.max is not None else lo + 50, lo + 50))
        return rng.randint(lo, hi)
    lo = param.min if param.min is not None else -1.0
    hi = param.max if param.max is not None else lo + 1.0
    return round(rng.uniform(lo, hi), 3)


def _random_edit(g: Graph, rng: random.Random):
    """Make one random edit; returns its inverse (a callable) or None if the edit was refused.

    A refused edit must leave the document untouched, which the caller checks."""
    nodes, edges = g.nodes, g.edges
    op = rng.choice(["add", "add", "remove", "connect", "connect", "connect", "disconnect", "set_param",
                     "set_param", "move", "rename"])
    if op == "add" or not nodes:
        n = g.add_node(rng.choice(_TYPES), pos=(rng.uniform(-500, 500), rng.uniform(-500, 500)))
        return lambda: g.remove_node(n.id)
    if op == "remove":
        removal = g.remove_node(rng.choice(nodes).id)
        return lambda: g.restore_node(removal)
    if op == "connect":
        a, b = rng.choice(nodes), rng.choice(nodes)
        problem = g.connection_problem(a.id, b.id)
        if problem is not None:
            with pytest.raises(GraphError):
                g.connect(a.id, b.id)
            return None
        # Sometimes insert the edge in the middle of the list, as the fixes do.
        index = rng.randint(0, len(edges)) if rng.random() < 0.3 else None
        e = g.connect(a.id, b.id, index=index)
        return lambda: g.disconnect(e.id)
    if op == "disconnect":
        if not edges:
            return None
        removal = g.disconnect(rng.choice(edges).id)
        return lambda: g.restore_edge(removal)
    n = rng.choice(nodes)
    if op == "set_param":
        if not n.params:
            return None
        key = rng.choice(list(n.params))
        try:
            old = g.set_param(n.id, key, _random_value(rng, n.spec.param(key)))
        except ParamError:
            return None
        return lambda: g.set_param(n.id, key, old)
    if op == "move":
        old = g.move(n.id, (rng.uniform(-500, 500), rng.uniform(-500, 500)))
        return lambda: g.move(n.id, old)
    try:
        old = g.rename(n.id, rng.choice(_NAMES))
    except GraphError:
        return None
    return lambda: g.rename(n.id, old)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_edits_undo_exactly(seed):
    rng = random.Random(seed)
    g, _ = concat_graph()
    initial = g.to_dict()
    events = []
    g.subscribe(events.append)
    stack = []
    for _ in range(200):
        before = g.to_dict()
        inverse = _random_edit(g, rng)
        if inverse is None:
            assert g.to_dict() == before, "a refused edit changed the document"
        else:
            stack.append((inverse, before))
    assert len(stack) > 100
    assert g.to_dict() != initial
    # Every intermediate document also survives a JSON round trip.
    assert Graph.from_dict(json.loads(json.dumps(g.to_dict()))).to_dict() == g.to_dict()
    n_events = len(events)
    while stack:
        inverse, before = stack.pop()
        inverse()
        assert g.to_dict() == before
    assert g.to_dict() == initial
    assert len(events) > n_events



def test_the_reserved_names_cover_what_this_torch_gives_a_graph_module():
    from torch import fx, nn

    from engine.reserved_names import RESERVED_NAMES

    missing = (frozenset(dir(fx.GraphModule(nn.Module(), fx.Graph()))) | {"self"}) - RESERVED_NAMES
    assert not missing, f"add these to engine/reserved_names.py: {sorted(missing)}"


def test_a_document_whose_edges_form_a_cycle_is_refused_by_name():
    g = Graph()
    a = g.add_node("Linear", {"units": 4}, name="fc_a")
    b = g.add_node("ReLU", {}, name="act_b")
    g.connect(a.id, b.id)
    doc = g.to_dict()
    doc["edges"].append({"id": "back", "src": b.id, "dst": a.id, "src_port": "out", "dst_port": "in"})
    with pytest.raises(ProjectFileError, match="form a cycle \\((fc_a -> act_b -> fc_a|act_b -> fc_a -> act_b)\\)"):
        Graph.from_dict(doc)
    assert g.find_cycle() == []


def test_downstream_is_what_networkx_calls_descendants_plus_the_node_itself():
    import networkx as nx

    g = templates.TEMPLATES["residual"][1]()
    ng = g.to_networkx()
    for n in g.nodes:
        assert g.downstream(n.id) == nx.descendants(ng, n.id) | {n.id}
        for m in g.nodes:
            assert g.reaches(n.id, m.id) == (m.id in g.downstream(n.id))
