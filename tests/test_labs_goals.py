"""Goals: every kind met and not met, with the sentence a student reads; the graph facts they use
against hand-built graphs; the metrics against scikit-learn and torch; nothing raises."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn import metrics as skm

from engine import templates
from engine.labs import structure
from engine.labs.check import LabChecker, trained_epochs
from engine.labs.goals import GoalContext, goal_from_json
from engine.labs.metrics import Measured, measure, weights_digest
from engine.labs.progress import new_project_from_lab, record_event, set_answer
from lab_support import checker, lab, trained_solution


def check(goal_doc: dict, graph=None, **ctx):
    goal = goal_from_json(goal_doc, "test")
    if goal_doc["kind"] in ("choice", "number"):
        goal.id = "q"
    context = GoalContext(graph=graph if graph is not None else templates.mlp(), **ctx)
    return goal.evaluate(context)


# ----------------------------------------------------------------------------- graph facts
def test_hidden_layers_depth_and_skips_of_the_templates():
    mlp = templates.mlp((64, 64))
    assert structure.hidden_layers(mlp) == ["fc1", "fc2"] and structure.depth(mlp) == 3
    assert structure.skip_connections(mlp) == []
    res = templates.residual_mlp()
    assert structure.hidden_layers(res) == ["fc1", "fc2", "fc3"]
    assert structure.depth(res) == 4  # fc1, fc2, fc3 and the head fc4 on the long path
    assert structure.skip_connections(res) == ["add1"]
    cat = templates.two_branch_concat()
    assert structure.skip_connections(cat) == []  # two parallel branches: neither bypasses the other
    assert structure.depth(cat) == 2 and sorted(structure.hidden_layers(cat)) == ["fc1", "fc2"]
    assert structure.hidden_layers(templates.mlp(())) == [] and structure.depth(templates.mlp(())) == 1
    assert structure.depth(templates.cnn()) == 3  # conv1, conv2, fc1


def test_a_layer_that_reaches_no_output_is_not_hidden():
    g = templates.mlp((8,))
    g.add_node("Linear", {"units": 4}, name="stray")
    assert "stray" not in structure.hidden_layers(g)


# ----------------------------------------------------------------------------- graph goals
def test_hidden_layers_goal_speaks_the_students_terms():
    one_neuron = lab("xor-hidden-layer").starter_graph()
    r = check({"kind": "hidden_layers", "at_least": 1}, one_neuron)
    assert not r.met and r.sentence == "add a hidden layer: the network has none yet"
    r = check({"kind": "hidden_layers", "at_least": 3}, templates.mlp((8,)))
    assert not r.met and r.sentence == "add 2 more hidden layers: the network has 1 (fc1), the goal is at least 3"
    r = check({"kind": "hidden_layers", "at_most": 1}, templates.mlp((8, 8)))
    assert not r.met and r.sentence.startswith("remove 1 hidden layer: the network has 2")
    assert check({"kind": "hidden_layers", "at_least": 1}, templates.mlp((8,))).met


def test_layer_count_with_a_label_and_bounds():
    r = check({"kind": "layer_count", "layers": ["Conv2d"], "at_least": 2}, templates.mlp())
    assert not r.met and r.sentence == "add 2 Conv2d layers: the network has none yet"
    r = check({"kind": "layer_count", "layers": ["ReLU", "Tanh"], "at_least": 1, "label": "activation"},
              templates.mlp(()))
    assert r.sentence == "add an activation: the network has none yet"
    r = check({"kind": "layer_count", "layers": ["ReLU", "Tanh"], "at_least": 2}, templates.mlp((8,)))
    assert r.sentence == "add 1 more ReLU or Tanh layer: the network has 1 (relu1), the goal is at least 2"
    r = check({"kind": "layer_count", "layers": ["Linear"], "at_most": 2}, templates.mlp((8, 8)))
    assert not r.met and "at most 2 are allowed" in r.sentence and r.detail["count"] == 3
    r = check({"kind": "layer_count", "layers": ["Conv2d"], "at_least": 2}, templates.cnn())
    assert r.met and r.sentence == "the network has 2 Conv2d layers (conv1, conv2)"


def test_depth_and_skip_connection_goals():
    r = check({"kind": "depth", "at_least": 5}, templates.mlp((8, 8)))
    assert not r.met and r.sentence.startswith("make the network deeper: its longest path") and "3 layers" in r.sentence
    assert check({"kind": "depth", "at_most": 3}, templates.mlp((8, 8))).met
    r = check({"kind": "skip_connection"}, templates.two_branch_concat())
    assert not r.met and r.sentence.startswith("add a skip connection")
    assert check({"kind": "skip_connection"}, templates.residual_mlp()).met
    assert not check({"kind": "skip_connection", "merges": ["Concat"]}, templates.residual_mlp()).met


def test_param_budget_and_no_problems_read_the_analysis():
    from engine.spec import InferContext
    from engine.validate import analyze

    g = templates.mlp((64, 64))
    a = analyze(g, InferContext((2,), 2, "classification"))
    r = check({"kind": "param_budget", "at_most": 1000}, g, analysis=lambda: a)
    assert not r.met and r.sentence == f"make the network smaller: it has {a.total_params:,} parameters, the budget is 1,000"
    assert check({"kind": "param_budget", "at_most": 10_000}, g, analysis=lambda: a).met
    assert check({"kind": "no_problems"}, g, analysis=lambda: a).met
    broken = templates.mlp((8,))
    relu = broken.nodes_of_type("ReLU")[0]
    for e in broken.in_edges(relu.id):
        broken.disconnect(e.id)
    b = analyze(broken, InferContext((2,), 2, "classification"))
    r = check({"kind": "no_problems"}, broken, analysis=lambda: b)
    assert not r.met and r.sentence.startswith("fix the network's problems: ") and "relu1" in r.sentence
    r = check({"kind": "param_budget", "at_most": 10}, broken, analysis=lambda: b)
    assert not r.met and r.sentence.startswith("fix the network's problems first")
    assert not check({"kind": "no_problems"}, g).met  # no data: it says so instead of guessing


def test_dropout_goal():
    g = templates.mlp((8,))
    assert check({"kind": "dropout"}, g).sentence == "add a Dropout layer: the network has none yet"
    d = g.add_node("Dropout", {"p": 0.05}, name="dropout1")
    r = check({"kind": "dropout", "min_p": 0.2}, g)
    assert not r.met and r.sentence == "raise the dropout probability p to at least 0.2: 'dropout1' has p = 0.05"
    g.set_param(d.id, "p", 0.3)
    assert check({"kind": "dropout", "min_p": 0.2}, g).met


def test_setting_goal_reads_the_settings_a_run_would_use():
    from engine.run import run_config

    graph = templates.mlp()
    cfg = run_config({"lr": 0.0001, "optimizer": "sgd"}, graph, "classification")
    r = check({"kind": "setting", "name": "lr", "at_least": 0.001}, graph, config=lambda: (cfg, None))
    assert not r.met and r.sentence == "set the learning rate (lr) to at least 0.001: it is 0.0001"
    r = check({"kind": "setting", "name": "optimizer", "one_of": ["adam", "adamw"]}, graph, config=lambda: (cfg, None))
    assert r.sentence == "set the optimizer to adam or adamw: it is sgd"
    assert check({"kind": "setting", "name": "weight_decay", "at_most": 0.1}, graph, config=lambda: (cfg, None)).met
    r = check({"kind": "setting", "name": "lr", "at_least": 0.1}, graph, config=lambda: (None, "lr must be a number"))
    assert not r.met and "fix the training settings first" in r.sentence


# ----------------------------------------------------------------------------- training goals
def measured(**values):
    return lambda: Measured(values, "", "test", 100)


def test_metric_goal_and_within_epochs():
    goal = {"kind": "metric", "metric": "accuracy", "at_least": 0.9, "within_epochs": 30}
    r = check(goal, measured=measured(accuracy=0.95), epochs=20)
    assert r.met and r.sentence == "the test accuracy is 95.0% (at least 90.0%), reached in 20 epochs"
    r = check(goal, measured=measured(accuracy=0.95), epochs=45)
    # the student is told what was reached and what to do ("your weights come from epoch 45 (train
    # from scratch, and faster)" said neither)
    assert not r.met and r.sentence == ("reach a test accuracy of 90.0% within 30 epochs: it is 95.0%, but after "
                                        "45 epochs; train again from fresh weights for 30 epochs or fewer")
    r = check(goal, measured=measured(accuracy=0.6), epochs=12)
    assert r.sentence == "raise the test accuracy to at least 90.0% within 30 epochs: it is 60.0% after 12 epochs"
    r = check(goal, measured=measured(accuracy=0.95), epochs=None)
    assert not r.met and "no record of how many epochs" in r.sentence
    r = check({"kind": "metric", "metric": "loss", "at_most": 0.3}, measured=measured(loss=0.5))
    assert not r.met and r.sentence == "lower the test loss to at most 0.3: it is 0.5 (no training run yet)"
    r = check({"kind": "metric", "metric": "loss", "at_most": 0.3}, measured=measured(loss=0.5), epochs=3)
    assert not r.met and r.sentence == "lower the test loss to at most 0.3: it is 0.5"
    r = check(goal, measured=lambda: Measured(None, "train the network first: it has no trained weights yet"))
    assert not r.met and r.sentence == "train the network first: it has no trained weights yet"
    # the grader's retrained run replaces what "within" goals read, nothing else
    r = check(goal, measured=measured(accuracy=0.95), epochs=20, within=lambda: (Measured({"accuracy": 0.5}), 20))
    assert not r.met and "it is 50.0%" in r.sentence
    assert check({"kind": "metric", "metric": "accuracy", "at_least": 0.9}, measured=measured(accuracy=0.95),
                 within=lambda: (Measured({"accuracy": 0.5}), 20)).met


def test_trained_epochs_follows_the_run_record():
    rows = [{"epoch": e} for e in range(1, 11)]
    assert trained_epochs(rows) == 10 and trained_epochs([]) is None
    assert trained_epochs(rows, {"weights_epoch": 4}) == 4  # weights restored from the timeline
    assert trained_epochs(rows, {"weights_epoch": 40}) == 10  # a claim beyond the history is ignored


# ----------------------------------------------------------------------------- inspection and questions
def test_inspection_goals_read_the_recorded_events():
    ev = [{"kind": "view_opened", "view": "weights"}, {"kind": "attribution_run", "method": "occlusion"}]
    assert check({"kind": "view_opened", "view": "weights"}, events=ev).met
    r = check({"kind": "view_opened", "view": "activations"}, events=ev)
    assert r.sentence == "open the Activations view: you have not opened it yet"
    r = check({"kind": "attribution_run", "methods": ["saliency", "gradcam"]}, events=ev)
    assert r.sentence == "explain a prediction with saliency or gradcam: you have not run it yet (you ran: occlusion)"
    assert check({"kind": "attribution_run"}, events=ev).met
    assert not check({"kind": "timeline_scrubbed"}, events=ev).met
    assert check({"kind": "sanity_check_run"}, events=[{"kind": "sanity_check_run"}]).met


def test_questions():
    q = {"kind": "choice", "question": "Which?", "options": ["a", "b"], "answer": "b"}
    assert check(q).sentence == "answer the question: Which?"
    r = check(q, answers={"q": "a"})
    assert not r.met and "“a” is not right" in r.sentence
    assert check(q, answers={"q": "b"}).met
    assert not check(q, answers={"q": "c"}).met
    n = {"kind": "number", "question": "How much?", "answer": 0.25, "tolerance": 0.01}
    assert check(n, answers={"q": "0,255"}).met  # a decimal comma
    assert check(n, answers={"q": 0.25}).met
    r = check(n, answers={"q": "0.3"})
    assert not r.met and r.sentence.startswith("0.3 is not right")
    assert check(n, answers={"q": "lots"}).sentence == "give a number: “lots” is not one"


def test_all_and_any():
    ev = [{"kind": "timeline_scrubbed"}]
    both = {"kind": "all", "goals": [{"kind": "timeline_scrubbed"}, {"kind": "sanity_check_run"}]}
    r = check(both, events=ev)
    assert not r.met and r.sentence == "run the sanity check on your explanations: you have not run it yet"
    assert [c.met for c in r.children] == [True, False]
    either = {"kind": "any", "goals": [{"kind": "sanity_check_run"}, {"kind": "view_opened", "view": "weights"}]}
    r = check(either, events=ev)
    assert not r.met and r.sentence.startswith("do one of these: run the sanity check") and "; or open" in r.sentence
    assert check({"kind": "any", "goals": both["goals"]}, events=ev).met


def test_a_goal_that_breaks_is_not_met_and_says_so():
    def explode():
        raise RuntimeError("boom")

    r = check({"kind": "param_budget", "at_most": 10}, analysis=explode)
    assert not r.met and "could not be checked" in r.sentence and "boom" in r.sentence


# ----------------------------------------------------------------------------- metrics against references
def test_classification_metrics_match_sklearn_and_torch():
    project = trained_solution("xor-hidden-layer")
    ds = checker("xor-hidden-layer").dataset
    m = measure(project.graph, project.weights, ds, project.training)
    from engine.model_at import ready_model
    from engine.run import context_for

    module = ready_model(project.graph, context_for(ds), project.weights).module
    with torch.no_grad():
        out = module(ds.x_test)
    y = ds.y_test.numpy()
    pred = out.argmax(1).numpy()
    assert m.ok and m.n_samples == len(y) == 100
    assert m.values["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert m.values["accuracy"] == pytest.approx(float((pred == y).mean()), abs=1e-12)
    assert m.values["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"), abs=1e-12)
    assert m.values["loss"] == pytest.approx(float(F.cross_entropy(out, ds.y_test)), rel=1e-5)
    # the last history row is the trainer's own validation figures for the same weights
    val = measure(project.graph, project.weights, ds, project.training, split="val")
    assert val.values["loss"] == pytest.approx(project.history[-1]["val_loss"], rel=1e-5)
    assert val.values["accuracy"] == pytest.approx(project.history[-1]["val_accuracy"], abs=1e-9)


def test_regression_metrics_match_sklearn():
    project = trained_solution("regression-metrics")
    ds = checker("regression-metrics").dataset
    m = measure(project.graph, project.weights, ds, project.training)
    from engine.model_at import ready_model
    from engine.run import context_for

    with torch.no_grad():
        out = ready_model(project.graph, context_for(ds), project.weights).module(ds.x_test).numpy()
    y = ds.y_test.numpy()
    assert m.values["mse"] == pytest.approx(skm.mean_squared_error(y, out), rel=1e-6)
    assert m.values["mse"] == pytest.approx(float(np.mean((y - out) ** 2)), rel=1e-5)
    assert m.values["mae"] == pytest.approx(skm.mean_absolute_error(y, out), rel=1e-6)
    assert m.values["r2"] == pytest.approx(skm.r2_score(y, out), rel=1e-6)
    assert m.values["loss"] == pytest.approx(m.values["mse"], rel=1e-5)  # the graph's loss is MSE
    assert set(m.values) == {"loss", "mse", "mae", "r2"}


def test_what_cannot_be_measured_is_a_sentence():
    ds = checker("xor-hidden-layer").dataset
    project = trained_solution("xor-hidden-layer")
    assert measure(project.graph, None, ds).missing == "train the network first: it has no trained weights yet"
    other = templates.mlp((5,))  # weights of another graph
    m = measure(other, project.weights, ds)
    assert not m.ok and m.missing.startswith("train the network again: its weights belong to an earlier version")
    nan = {k: torch.full_like(v, math.nan) for k, v in project.weights.items()}
    assert "not finite" in measure(project.graph, nan, ds).missing


def test_weights_digest_sees_any_change():
    w = trained_solution("xor-hidden-layer").weights
    d = weights_digest(w)
    assert d == weights_digest({k: v.clone() for k, v in w.items()})
    assert d == weights_digest({k: v.numpy() for k, v in w.items()})
    changed = {k: v.clone() for k, v in w.items()}
    first = next(iter(changed))
    changed[first].view(-1)[0] += 1e-6
    assert weights_digest(changed) != d and weights_digest(None) is None


# ----------------------------------------------------------------------------- checking a project
def test_a_project_is_checked_live_and_ticks_as_it_is_edited():
    xor = lab("xor-hidden-layer")
    live = LabChecker(xor, checker("xor-hidden-layer").dataset)
    project = new_project_from_lab(xor)
    report = live.check(project)
    assert [s.met for s in report.steps] == [False, False, False, False, True]
    assert report.step("add-hidden").sentence.startswith("add a hidden layer: the network has none yet")
    g = project.graph
    hidden = g.add_node("Linear", {"units": 8}, name="hidden1")
    act = g.add_node("Tanh", {}, name="tanh1")
    edge = g.in_edges("fc1")[0]
    g.disconnect(edge.id)
    g.connect("input1", hidden.id)
    g.connect(hidden.id, act.id)
    g.connect(act.id, "fc1")
    record_event(project, "view_opened", view="decision_boundary")
    set_answer(project, xor, "single-neuron", "About 50%: no better than guessing")
    report = live.check(project)
    assert [s.id for s in report.steps if s.met] == ["single-neuron", "see-the-boundary", "add-hidden", "keep-it-small"]
    assert report.points == 5 and report.max_points == 8 and report.summary() == "4 of 5 steps done, 5 of 8 points"
    assert report.step("solve").sentence == "train the network first: it has no trained weights yet"
