"""The ten bundled labs: each reference solution, trained headless within its goals' epochs on one
thread, passes every goal; each starter, trained with the lab's own settings, passes none of its
training goals.  Every reference and starter is trained once per session (tests/lab_support.py)."""
from __future__ import annotations

import json

import pytest

from engine.labs.check import report_lines
from lab_support import LAB_IDS, checker, lab, trained_solution, trained_starter


def test_every_lab_has_a_reference_solution():
    assert len(LAB_IDS) == 10
    for lab_id in LAB_IDS:
        project = trained_solution(lab_id)
        assert project.lab["id"] == lab_id and project.lab["hash"] == lab(lab_id).content_hash


@pytest.mark.parametrize("lab_id", LAB_IDS)
def test_the_reference_solution_passes_every_goal(lab_id):
    project = trained_solution(lab_id)
    report = checker(lab_id).check(project)
    assert all(s.met for s in report.steps), "\n".join(report_lines(report))
    assert report.points == report.max_points == lab(lab_id).max_points
    assert report.lock_problems == () and report.note == ""
    # every "within y epochs" goal was met by a run of at most y epochs
    within = [g.within_epochs for s in lab(lab_id).steps for g in s.goal.walk()
              if getattr(g, "within_epochs", None) is not None]
    assert within and report.epochs <= min(within)


@pytest.mark.parametrize("lab_id", LAB_IDS)
def test_the_trained_starter_passes_none_of_its_training_goals(lab_id):
    project, why = trained_starter(lab_id)
    if lab_id == "looking-inside":  # its starter has a problem to fix first: it cannot even train
        assert "Flatten" in why and project.weights is None
    else:
        assert why == "" and project.weights and len(project.history) >= 1
    report = checker(lab_id).check(project)
    training = [s for s in report.steps if s.training]
    assert training and not any(s.met for s in training), "\n".join(report_lines(report))


def test_the_training_goals_are_not_met_only_for_want_of_weights():
    """A starter that trained fails on its figures: the sentence quotes them."""
    project, _ = trained_starter("xor-hidden-layer")
    sentence = checker("xor-hidden-layer").check(project).step("solve").sentence
    assert sentence.startswith("raise the test accuracy to at least 90.0% within 40 epochs: it is ")
    assert float(sentence.split("it is ")[1].split("%")[0]) < 60


def test_lab_check_on_the_command_line(tmp_path, capsys):
    from engine.project import save_project
    from test_cli import run_main

    project = trained_solution("regression-metrics")
    path = tmp_path / "mine.layerlab"
    save_project(path, project)
    proc = run_main("lab", "check", "regression-metrics", path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("8 · Regression and its metrics") and lines[-1].strip() == \
        "6 of 6 steps done, 8 of 8 points"
    assert sum(1 for line in lines if line.lstrip().startswith("[x]")) == 6
    from engine.cli import run_cli

    assert run_cli(["lab", "check", "regression-metrics", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["points"] == 8 and doc["metrics"]["r2"] > 0.9 and all(s["met"] for s in doc["steps"])
    bad = run_main("lab", "check", "no-such-lab", path)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "no-such-lab" in bad.stderr


def in_process(capsys):
    """``main.py ARGS`` in this process (run_cli is what main.py calls): (exit code, stdout, stderr)."""
    from engine.cli import run_cli

    def run(*args):
        code = run_cli([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_a_headless_student_starts_answers_and_checks(tmp_path, capsys):
    """The same commands in this process, to spare five interpreters."""
    run = in_process(capsys)
    path = tmp_path / "work.json"
    assert run("lab", "start", "xor-hidden-layer", path)[0] == 0
    code, _, err = run("lab", "start", "xor-hidden-layer", path)
    assert code == 2 and "exists" in err  # never overwrites work
    code, out, _ = run("lab", "hint", "xor-hidden-layer", path, "add-hidden")
    assert code == 0 and out.strip() == lab("xor-hidden-layer").step("add-hidden").hints[0]
    assert run("lab", "answer", "xor-hidden-layer", path, "single-neuron", "About 50%: no better than guessing")[0] == 0
    code, _, err = run("lab", "answer", "xor-hidden-layer", path, "nothing", "x")
    assert code == 2 and "single-neuron" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run("lab", "check", "xor-hidden-layer", path)
    assert code == 0 and "[x] Train one neuron (1/1): right" in out
    assert "[ ] Add a hidden layer with an activation (0/2): add a hidden layer: the network has none yet" in out
    # train it headless, then hand it in: the lab record travels through the trained bundle
    assert run("train", path, "--out", tmp_path / "run")[0] == 0
    trained = tmp_path / "run" / "model.layerlab"
    code, out, _ = run("lab", "check", "xor-hidden-layer", trained)
    assert "[x] Train one neuron" in out and "[ ] Solve XOR (0/3): raise the test accuracy" in out
    hand_in = tmp_path / "ada.layerlab-submission"
    code, _, err = run("lab", "submit", "xor-hidden-layer", trained, "--student", "Ada", "--id", "s1", "--out", hand_in)
    assert code == 0 and "hand in this file" in err
    from engine.labs.submission import load_submission

    sub = load_submission(hand_in)
    assert sub.student.label == "Ada (s1)" and sub.project.weights and len(sub.project.history) == 40
    assert [r["met"] for r in sub.results] == [True, False, False, False, True]


def test_headless_questions_show_their_options_and_take_only_an_option(tmp_path, capsys):
    """Headless, a choice question's options were only in the lab's file, any answer was saved
    ("50" and "" alike) and only a later check said it was no option; a project of another lab was
    checked without a word."""
    from engine.project import load_project

    run = in_process(capsys)
    path = tmp_path / "work.json"
    assert run("lab", "start", "xor-hidden-layer", path)[0] == 0
    options = next(q for s in lab("xor-hidden-layer").steps for q in _questions(s) if q.id == "single-neuron").options
    code, out, _ = run("lab", "check", "xor-hidden-layer", path)
    assert code == 0 and all(f"{i}. {o}" in out for i, o in enumerate(options, 1))
    assert "lab answer xor-hidden-layer" in out
    for wrong in ("50", "", "9"):
        code, _, err = run("lab", "answer", "xor-hidden-layer", path, "single-neuron", wrong)
        assert code == 2 and "is not one of the options" in err and options[0] in err, err
    assert load_project(path).lab["progress"]["answers"] == {}  # nothing saved
    assert run("lab", "answer", "xor-hidden-layer", path, "single-neuron", "2")[0] == 0
    assert load_project(path).lab["progress"]["answers"]["single-neuron"] == options[1]
    assert run("lab", "answer", "xor-hidden-layer", path, "single-neuron", options[0].upper())[0] == 0
    assert load_project(path).lab["progress"]["answers"]["single-neuron"] == options[0]
    code, _, err = run("lab", "check", "hidden-layers-activations", path)
    assert code == 0 and "made from the lab 'xor-hidden-layer', not from 'hidden-layers-activations'" in err


def _questions(step):
    from engine.labs.goals import questions

    return questions(step.goal)


def test_train_on_the_command_line_keeps_a_labs_locks(tmp_path, capsys):
    """`train work.json --seed 5` trained a lab project against its fixed seed without a word."""
    from engine.cli import run_cli

    path = tmp_path / "work.json"
    assert run_cli(["lab", "start", "xor-hidden-layer", str(path)]) == 0
    locked = lab("xor-hidden-layer").locks.settings
    assert "seed" in locked and "batch_size" in locked
    for flag, value in (("--seed", "5"), ("--batch-size", "8")):
        capsys.readouterr()
        code = run_cli(["train", str(path), flag, value, "--out", str(tmp_path / "run")])
        err = capsys.readouterr().err
        assert code == 2 and "the lab fixes it" in err and "xor-hidden-layer" in err, err
    assert not (tmp_path / "run").exists()
    assert run_cli(["train", str(path), "--epochs", "2", "--out", str(tmp_path / "run")]) == 0  # not locked
