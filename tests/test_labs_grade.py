"""Grading a class: a folder of good, partly failing, corrupt, truncated, foreign, oversized and
tampered submissions (stored metrics edited, weights swapped from another student, a history cut
to claim fewer epochs) and one for another lab yields the right CSV, cell by cell; --reproduce
catches what only retraining shows; the grader never raises; the HTML report shows the class."""
from __future__ import annotations

import copy
import csv
import io
import json
import zipfile
from pathlib import Path

import pytest
from safetensors.torch import save as save_safetensors

from engine.labs.grade import (FLAG_CODES, REPRODUCE_TOLERANCE, csv_columns, grade_class, submission_paths,
                               write_csv)
from engine.labs.report import histogram_svg, report_html
from engine.labs.submission import DOC_MEMBER, MAX_SUBMISSION_BYTES, WEIGHTS_MEMBER, make_submission
from engine.project import project_bytes
from lab_support import lab, solution, train, trained_solution

XOR = "xor-hidden-layer"
STEPS = ["single-neuron", "see-the-boundary", "add-hidden", "solve", "keep-it-small"]


def members_of(raw: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        return {n: z.read(n) for n in z.namelist()}


def forge(raw: bytes, edit_doc=None, weights: dict | None = None, fix_digest: bool = True) -> bytes:
    """Edit a submission the way a careful forger would: change the document or the weights and,
    unless told otherwise, recompute the recorded sha256 so the file looks untouched."""
    import hashlib

    parts = members_of(raw)
    doc = json.loads(parts[DOC_MEMBER])
    if weights is not None:
        parts[WEIGHTS_MEMBER] = save_safetensors({k: v.contiguous() for k, v in weights.items()})
        if fix_digest:
            doc["members"][WEIGHTS_MEMBER]["sha256"] = hashlib.sha256(parts[WEIGHTS_MEMBER]).hexdigest()
    if edit_doc is not None:
        edit_doc(doc)
    parts[DOC_MEMBER] = json.dumps(doc).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)
    return buf.getvalue()


def student_project(**settings):
    """The reference graph with the student's own settings (seed and batch size are the lab's)."""
    return train(solution(XOR), XOR, **settings)


@pytest.fixture(scope="module")
def hand_in(tmp_path_factory) -> Path:
    """The folder an instructor collects: one file per case, named so they sort in this order."""
    folder = tmp_path_factory.mktemp("hand-in")
    xor = lab(XOR)

    def put(name: str, raw: bytes) -> None:
        (folder / name).write_bytes(raw)

    alice = trained_solution(XOR)
    put("01-alice.layerlab-submission", make_submission(alice, {"name": "Alice", "id": "a1"}, xor))

    bob = student_project(lr=0.04)
    bob.lab["progress"]["answers"] = {}  # did not answer, did not open the view
    bob.lab["events"] = []
    put("02-bob.layerlab-submission", make_submission(bob, {"name": "Bob", "id": "b2"}, xor))

    carol = student_project(lr=0.02)
    put("03-carol.layerlab-submission", forge(make_submission(carol, {"name": "Carol", "id": "c3"}, xor),
                                              lambda d: d["metrics"].update(accuracy=0.99)))

    # Dave's own run (SGD, a tiny learning rate) got nowhere; he handed in Alice's weights instead
    dave = student_project(optimizer="sgd", lr=0.001, momentum=0.0)
    put("04-dave.layerlab-submission", forge(make_submission(dave, {"name": "Dave", "id": "d4"}, xor),
                                             weights=alice.weights))

    # Erin trained 200 slow epochs and cut her history to 40 to meet "within 40 epochs" on paper
    erin = student_project(optimizer="sgd", lr=0.02, momentum=0.0, epochs=200)
    erin.history = erin.history[:40]
    erin.run = {**erin.run, "weights_epoch": 40}
    erin.training = {**erin.training, "epochs": 40}
    put("05-erin.layerlab-submission", make_submission(erin, {"name": "Erin", "id": "e5"}, xor))

    frank = trained_solution("hidden-layers-activations")
    put("06-frank.layerlab-submission", make_submission(frank, {"name": "Frank", "id": "f6"},
                                                        lab("hidden-layers-activations")))

    good = make_submission(alice, {"name": "Grace", "id": "g7"}, xor)
    with zipfile.ZipFile(io.BytesIO(good)) as z:
        info = z.getinfo(WEIGHTS_MEMBER)
    damaged = bytearray(good)
    damaged[info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2] ^= 0xFF
    put("07-grace.layerlab-submission", bytes(damaged))
    put("08-heidi.layerlab-submission", good[: len(good) // 2])
    put("09-notes.txt", b"I could not finish the lab, sorry.\n")
    with open(folder / "10-huge.layerlab-submission", "wb") as f:
        f.truncate(MAX_SUBMISSION_BYTES + 1)
    ivan = copy.deepcopy(alice.weights)
    next(iter(ivan.values())).view(-1)[0] += 1.0
    put("11-ivan.layerlab-submission", forge(make_submission(alice, {"name": "Ivan", "id": "i9"}, xor),
                                             weights=ivan, fix_digest=False))
    put("12-judy.layerlab", project_bytes(alice))
    return folder


def rows_by_file(rows) -> dict:
    return {Path(r.file).name: r for r in rows}


EXPECTED = {  # file: (student, id, status, points per step or None, total, flags)
    "01-alice.layerlab-submission": ("Alice", "a1", "graded", [1, 1, 2, 3, 1], 8, "same_weights"),
    "02-bob.layerlab-submission": ("Bob", "b2", "graded", [0, 0, 2, 3, 1], 6, ""),
    "03-carol.layerlab-submission": ("Carol", "c3", "graded", [1, 1, 2, 3, 1], 8, "stored_metrics"),
    "04-dave.layerlab-submission": ("Dave", "d4", "graded", [1, 1, 2, 3, 1], 8, "stored_metrics;history;same_weights"),
    "05-erin.layerlab-submission": ("Erin", "e5", "graded", [1, 1, 2, 3, 1], 8, "history"),
    "06-frank.layerlab-submission": ("Frank", "f6", "wrong_lab", None, 0, ""),
    "07-grace.layerlab-submission": ("", "", "corrupt", None, 0, ""),
    "08-heidi.layerlab-submission": ("", "", "truncated", None, 0, ""),
    "09-notes.txt": ("", "", "foreign", None, 0, ""),
    "10-huge.layerlab-submission": ("", "", "oversized", None, 0, ""),
    "11-ivan.layerlab-submission": ("Ivan", "i9", "tampered", None, 0, ""),  # whose tampered file it is
    "12-judy.layerlab": ("", "", "foreign", None, 0, ""),
}


def expected_cells(expected: dict) -> dict[str, dict[str, str]]:
    out = {}
    for name, (student, sid, status, points, total, flags) in expected.items():
        row = {"file": name, "student": student, "student_id": sid, "status": status, "total": f"{total:g}",
               "max_total": "8", "flags": flags}
        row.update({s: ("" if points is None else f"{p:g}") for s, p in zip(STEPS, points or [None] * 5)})
        out[name] = row
    return out


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def assert_csv_cells(rows: list[dict[str, str]], expected: dict) -> None:
    want = expected_cells(expected)
    assert [r["file"] for r in rows] == list(want)
    for r in rows:
        for column, value in want[r["file"]].items():
            assert r[column] == value, f"{r['file']} / {column}: {r[column]!r}, expected {value!r} ({r['notes']})"


@pytest.fixture(scope="module")
def graded(hand_in):
    return grade_class(lab(XOR), submission_paths([str(hand_in)]))


def test_the_class_csv_cell_by_cell(graded, tmp_path):
    path = tmp_path / "grades.csv"
    write_csv(path, lab(XOR), graded)
    rows = read_csv(path)
    assert list(rows[0]) == csv_columns(lab(XOR)) == ["file", "student", "student_id", "status", *STEPS, "total",
                                                      "max_total", "flags", "notes"]
    assert_csv_cells(rows, EXPECTED)
    notes = {r["file"]: r["notes"] for r in rows}
    assert "identical to those of Dave (04-dave" in notes["01-alice.layerlab-submission"]
    assert notes["02-bob.layerlab-submission"] == ""
    assert "stored test accuracy 99.0% differs from the re-evaluated 9" in notes["03-carol.layerlab-submission"]
    assert "the weights or the history were changed" in notes["04-dave.layerlab-submission"]
    assert "identical to those of Alice (01-alice" in notes["04-dave.layerlab-submission"]
    assert "epoch 40 ended with validation loss" in notes["05-erin.layerlab-submission"]
    assert "for the lab 'hidden-layers-activations'" in notes["06-frank.layerlab-submission"]
    assert "corrupt" in notes["07-grace.layerlab-submission"]
    assert "truncated" in notes["08-heidi.layerlab-submission"]
    assert "not a zip" in notes["09-notes.txt"]
    assert "a submission is at most" in notes["10-huge.layerlab-submission"]
    assert "sha256" in notes["11-ivan.layerlab-submission"]
    assert "a LayerLab project, not a submission" in notes["12-judy.layerlab"]


def test_the_goals_are_re_evaluated_not_read(graded):
    rows = rows_by_file(graded)
    carol = rows["03-carol.layerlab-submission"]
    assert carol.metrics["accuracy"] < 0.99  # the edited figure is reported, never used
    dave = rows["04-dave.layerlab-submission"]
    alice = rows["01-alice.layerlab-submission"]
    assert dave.metrics == alice.metrics  # graded on the weights he handed in: Alice's
    assert dave.weights_sha256 == alice.weights_sha256
    sentences = {s["id"]: s["sentence"] for s in rows["02-bob.layerlab-submission"].steps}
    assert sentences["single-neuron"].startswith("answer the question")
    assert sentences["see-the-boundary"] == "open the Decision boundary view: you have not opened it yet"


def test_reproduce_catches_a_history_cut_to_claim_fewer_epochs(hand_in, tmp_path):
    names = ["01-alice.layerlab-submission", "03-carol.layerlab-submission", "04-dave.layerlab-submission",
             "05-erin.layerlab-submission", "07-grace.layerlab-submission"]
    rows = grade_class(lab(XOR), [hand_in / n for n in names], reproduce=True)
    path = tmp_path / "grades.csv"
    write_csv(path, lab(XOR), rows)
    expected = {n: EXPECTED[n] for n in names}
    expected["01-alice.layerlab-submission"] = ("Alice", "a1", "graded", [1, 1, 2, 3, 1], 8, "same_weights")
    # Dave's weights are Alice's: retrained from his own settings they come out far worse, and the
    # "within 40 epochs" goal is judged on that retrained run
    expected["04-dave.layerlab-submission"] = ("Dave", "d4", "graded", [1, 1, 2, 0, 1], 5,
                                               "stored_metrics;history;same_weights;not_reproduced")
    # Erin's 40 claimed epochs, retrained, do not reach the goal: the "within" goal is judged on the retrained run
    expected["05-erin.layerlab-submission"] = ("Erin", "e5", "graded", [1, 1, 2, 0, 1], 5, "history;not_reproduced")
    assert_csv_cells(read_csv(path), expected)
    erin = rows_by_file(rows)["05-erin.layerlab-submission"]
    (flag,) = [f for f in erin.flags if f.code == "not_reproduced"]
    assert flag.sentence.startswith("retrained from its graph, settings and seed for 40 epochs, it reaches test accuracy")
    assert f"(tolerance {REPRODUCE_TOLERANCE['accuracy']:g})" in flag.sentence
    assert "within 40 epochs" in next(s["sentence"] for s in erin.steps if s["id"] == "solve")


def test_flags_are_in_a_fixed_order_and_known(graded):
    for r in graded:
        codes = [f.code for f in r.flags]
        assert all(c in FLAG_CODES for c in codes) and codes == sorted(codes, key=FLAG_CODES.index)


def test_the_grader_never_raises_and_never_stops_the_others(tmp_path, monkeypatch):
    import engine.labs.grade as grade

    good = tmp_path / "good.layerlab-submission"
    good.write_bytes(make_submission(trained_solution(XOR), "Alice", lab(XOR)))
    boom = tmp_path / "boom.layerlab-submission"
    boom.write_bytes(good.read_bytes())
    real = grade._compare_history

    def explode(sub, report):
        if sub.path.endswith("boom.layerlab-submission"):
            raise RuntimeError("a bug")
        return real(sub, report)

    monkeypatch.setattr(grade, "_compare_history", explode)
    rows = grade_class(lab(XOR), [boom, good, tmp_path / "missing.layerlab-submission"])
    assert [r.status for r in rows] == ["error", "graded", "unreadable"]
    assert "a bug" in rows[0].message and rows[1].total == 8


def test_two_files_from_one_student_are_flagged(tmp_path):
    raw = make_submission(trained_solution(XOR), {"name": "Alice", "id": "a1"}, lab(XOR))
    (tmp_path / "first.layerlab-submission").write_bytes(raw)
    (tmp_path / "second.layerlab-submission").write_bytes(raw)
    rows = grade_class(lab(XOR), submission_paths([str(tmp_path)]))
    for r in rows:
        assert [f.code for f in r.flags] == ["same_weights", "duplicate_student"]


def test_a_submission_for_another_version_of_the_lab_is_graded_and_flagged(tmp_path):
    raw = forge(make_submission(trained_solution(XOR), "Alice", lab(XOR)), lambda d: d["lab"].update(hash="0" * 64))
    path = tmp_path / "old.layerlab-submission"
    path.write_bytes(raw)
    (row,) = grade_class(lab(XOR), [path])
    assert row.graded and row.total == 8 and [f.code for f in row.flags] == ["lab_version"]


def test_the_report_shows_distribution_missed_steps_and_every_student(graded):
    html = report_html(lab(XOR), graded)
    lowered = html.lower()
    assert "<script" not in lowered  # nothing to run ...
    assert not any(w in lowered for w in ("src=", "href=", "@import", "url("))  # ... and nothing to fetch
    assert html.count("<svg") == 1 and "Score distribution" in html
    assert "5 graded" in html and "12 files" in html
    missed = html[html.index("Steps, the most missed first"):html.index("<h2>Flags")]
    assert missed.index("Train one neuron") < missed.index("Solve XOR")  # Bob missed it: most missed first
    assert "answer the question" in missed
    # a step nobody missed says so (it sat under "Steps most students missed" as "0 of 5")
    assert "0 of 5 (0%)</td><td><span class='muted'>every student met it</span>" in missed
    for name in ("Alice", "Bob", "Carol", "Dave", "Erin"):
        assert f"<h3>{name} " in html
    assert "open the Decision boundary view: you have not opened it yet" in html
    assert "Files not graded" in html and "07-grace.layerlab-submission" in html
    evil = copy.deepcopy(graded[1])
    evil.student = "<script>alert(1)</script>"
    assert "<script>alert" not in report_html(lab(XOR), [evil]) and "&lt;script&gt;" in report_html(lab(XOR), [evil])


def test_the_histogram_counts_each_total():
    svg = histogram_svg([8, 8, 6, 0], 8)
    assert svg.startswith("<svg") and svg.count("<rect") == 9  # one bar per whole point, 0 to 8
    assert "<title>8: 2</title>" in svg and "<title>6: 1</title>" in svg and "<title>7: 0</title>" in svg
    assert histogram_svg([2.5, 7.25], 10).count("<rect") == 10


def test_grade_on_the_command_line_with_jobs(hand_in, tmp_path):
    from test_cli import run_main

    out_csv, out_html = tmp_path / "grades.csv", tmp_path / "report.html"
    proc = run_main("grade", XOR, hand_in, "--csv", out_csv, "--report", out_html, "--jobs", "2")
    assert proc.returncode == 0, proc.stderr
    assert_csv_cells(read_csv(out_csv), EXPECTED)  # the same cells as in one process
    assert out_html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("Graded 5 of 12 files (7 not gradable, 4 flagged); wrote "), last
    assert len(proc.stdout.strip().splitlines()) == 13  # a line per file, then the summary


def test_grade_bad_arguments_exit_2_with_one_sentence(tmp_path, capsys):
    from engine.cli import run_cli

    def run(*args):
        code = run_cli([str(a) for a in args])
        return code, capsys.readouterr().err.strip().splitlines()

    code, err = run("grade", "no-such-lab", tmp_path, "--csv", tmp_path / "g.csv")
    assert code == 2 and len(err) == 1 and "no-such-lab" in err[0]
    code, err = run("grade", XOR, tmp_path, "--csv", tmp_path / "g.csv")
    assert code == 2 and len(err) == 1 and "no submissions" in err[0]
    code, err = run("grade", XOR, tmp_path, "--csv", tmp_path)
    assert code == 2 and "is a folder" in err[0]
    code, err = run("grade", XOR, tmp_path, "--csv", tmp_path / "g.csv", "--jobs", "0")
    assert code == 2 and "jobs" in err[0]
    bad_lab = tmp_path / "lab.json"
    bad_lab.write_text("{not json")
    code, err = run("grade", bad_lab, tmp_path, "--csv", tmp_path / "g.csv")
    assert code == 2 and len(err) == 1 and "lab.json" in err[0]
    assert not (tmp_path / "g.csv").exists()


def test_reproduce_gives_an_untrained_submission_no_points_for_the_run_it_never_made(tmp_path):
    """Retrained from its graph and seed, an untrained submission reached the goals, and --reproduce
    graded that run: 7 of 8 points against 4 on paper, without a flag."""
    path = tmp_path / "cy.layerlab-submission"
    path.write_bytes(make_submission(solution(XOR), "Cy", lab(XOR)))
    (paper,) = grade_class(lab(XOR), [path])
    (again,) = grade_class(lab(XOR), [path], reproduce=True)
    assert paper.status == again.status == "graded"
    assert again.points == paper.points and again.total == paper.total < lab(XOR).max_points
    assert not next(s for s in again.steps if s["id"] == "solve")["met"]
    (flag,) = [f for f in again.flags if f.code == "reproduce_failed"]
    assert "no trained weights" in flag.sentence


def test_a_mistyped_hand_in_folder_is_an_error_not_a_graded_class(tmp_path, capsys):
    """`grade LAB handin_typo --csv g.csv` graded one "unreadable" row, wrote the CSV and exited 0."""
    from engine.cli import run_cli

    code = run_cli(["grade", XOR, str(tmp_path / "handin_typo"), "--csv", str(tmp_path / "g.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "handin_typo: no such file or folder" in err, err
    assert not (tmp_path / "g.csv").exists()
    code = run_cli(["grade", XOR, str(tmp_path), "--csv", str(tmp_path / "no" / "g.csv")])
    assert code == 2 and "does not exist" in capsys.readouterr().err  # the output is checked before grading
