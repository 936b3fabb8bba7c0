"""Instructor mode (issue 11, phase 2): a lab authored in the app from the open project - steps,
goals from the schema's forms, hints, locks picked on the canvas - saves, loads back into the
author unchanged (widgets -> file -> widgets -> file gives the same bytes), opens as a student
gets it, and a submission made from it grades with the engine's grader.
"""
from __future__ import annotations

import json
import struct
import zlib

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QListWidget  # noqa: E402

from engine.labs import load_lab  # noqa: E402
from engine.labs.grade import grade_class  # noqa: E402
from engine.labs.submission import load_submission  # noqa: E402
from engine.project import load_starter  # noqa: E402
from gui.document import Document  # noqa: E402
from gui.lab_locks import LabLocked  # noqa: E402
from gui.lab_panel import MARK_MET  # noqa: E402
from lab_window import close, dlg, make_window, settle  # noqa: E402,F401  (dlg: a fixture)


@pytest.fixture
def win(qtbot, dlg):  # noqa: F811
    w = make_window(qtbot, Document(load_starter("moons-mlp")))
    yield w
    if w.lab_actions.author is not None:
        w.lab_actions.author.close()
    close(w)


def tiny_png() -> bytes:
    """A 2x2 PNG, built by hand (zlib + the PNG chunk layout)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def check(list_widget: QListWidget, names: list[str]) -> None:
    for i in range(list_widget.count()):
        item = list_widget.item(i)
        item.setCheckState(Qt.Checked if item.text() in names else Qt.Unchecked)


def author_a_lab(win, qtbot):
    """Write a three-step lab through the author's widgets, as an instructor would."""
    win.lab_actions.act_new_lab.trigger()
    a = win.lab_actions.author
    assert a is not None and a.isVisible()
    a.id_edit.setText("moons-first-steps")
    a.title_edit.setText("Moons: first steps")
    a.description_edit.setText("Train an MLP on the moons and answer one question.")
    a.intro_editor.edit.setPlainText("# Moons\n\nTwo interleaved half circles.")
    assert "Two interleaved" in a.intro_editor.preview.toPlainText()  # the live preview

    # step 1: a parameter budget the starter meets
    a.tabs.setCurrentIndex(1)
    a.step_list.setCurrentRow(0)
    a.step_id_edit.setText("small")
    a.step_title_edit.setText("Stay within the budget")
    a.instructions_editor.edit.setPlainText("Keep the network **small**.")
    assert "small" in a.instructions_editor.preview.toPlainText()
    a.hints_edit.setPlainText("The status bar shows the parameter count.\n---\nRemove a layer.")
    g = a.goal_form
    g.kind_box.setCurrentIndex(g.kind_box.findData("param_budget"))
    g.set_field("at_most", "5000")
    # step 2: all of (two hidden layers, an accuracy within 40 epochs)
    a.add_step()
    a.step_id_edit.setText("train")
    a.step_title_edit.setText("Train it")
    a.points_box.setValue(3)
    g.kind_box.setCurrentIndex(g.kind_box.findData("all"))
    children = g.editors["goals"].widget
    first = children.add_goal({"kind": "hidden_layers"})
    first.set_field("at_least", "2")
    second = children.add_goal({"kind": "metric"})
    second.set_field("metric", "accuracy")
    second.set_field("at_least", "0.8")
    second.set_field("within_epochs", "40")
    # step 3: a multiple-choice question, with a picture in its instructions
    a.add_step()
    a.step_id_edit.setText("shape")
    a.step_title_edit.setText("What shape?")
    url = a.add_picture(str(win._picture_path))
    a.instructions_editor.edit.setPlainText(f"Look at the data.\n\n![moons]({url})")
    g.kind_box.setCurrentIndex(g.kind_box.findData("choice"))
    g.set_field("question", "What do the two classes look like?")
    g.set_field("options", ["Two half circles", "Two squares"])
    # the answer is picked among the options just typed (it had to be retyped, exactly)
    answer = g.editors["answer"].widget
    assert [answer.itemText(i) for i in range(answer.count())] == ["Two half circles", "Two squares"]
    answer.setCurrentIndex(0)
    # locks: the Input picked on the canvas, a short palette, fixed seed, hidden epochs
    a.tabs.setCurrentIndex(2)
    input_id = win.document.graph.nodes_of_type("Input")[0].id
    win.scene.select_only([input_id])
    assert a.lock_selected_nodes() == [input_id]
    a.node_table.item(0, 3).setText("The Input brings the lab's data.")
    a.palette_check.setChecked(True)
    check(a.palette_list, ["Linear", "ReLU", "Tanh"])
    a.setting_boxes["seed"].setCurrentIndex(a.setting_boxes["seed"].findData("fixed"))
    a.setting_boxes["epochs"].setCurrentIndex(a.setting_boxes["epochs"].findData("hidden"))
    a.validate()
    assert a.problem == "", a.problem
    assert "The lab is ready: 3 steps, 5 points, 1 picture" in a.status.text()
    assert "⚠" not in a.status.text()
    # a goal its own lab's settings would miss is ready, with a warning (it said nothing)
    a.tabs.setCurrentIndex(1)
    a.step_list.setCurrentRow(1)
    metric = a.goal_form.editors["goals"].widget.forms[1]
    metric.set_field("within_epochs", "5")
    a.validate()
    assert a.problem == "" and "⚠ Step 'Train it' asks for its accuracy within 5 epochs, but the lab trains " \
        "for" in a.status.text()
    metric.set_field("within_epochs", "40")
    a.validate()
    assert "⚠" not in a.status.text()
    return a, input_id


@pytest.fixture
def picture(tmp_path):
    path = tmp_path / "moons.png"
    path.write_bytes(tiny_png())
    return path


def test_a_lab_authored_in_the_app_round_trips(qtbot, win, tmp_path, picture, dlg, monkeypatch):
    win._picture_path = picture
    a, input_id = author_a_lab(win, qtbot)
    path = a.save_to(str(tmp_path / "moons-first-steps.json"))
    assert path.endswith(".layerlab-lab")  # it holds a picture: saved as a bundle
    lab = load_lab(path)
    assert [s.id for s in lab.steps] == ["small", "train", "shape"]
    assert [s.points for s in lab.steps] == [1, 3, 1]
    assert lab.steps[0].hints == ("The status bar shows the parameter count.", "Remove a layer.")
    assert [s.goal.to_json() for s in lab.steps] == [
        {"kind": "param_budget", "at_most": 5000},
        {"kind": "all", "goals": [{"kind": "hidden_layers", "at_least": 2},
                                  {"kind": "metric", "metric": "accuracy", "at_least": 0.8, "within_epochs": 40}]},
        {"kind": "choice", "id": "shape", "question": "What do the two classes look like?",
         "options": ["Two half circles", "Two squares"], "answer": "Two half circles"},
    ]
    assert lab.locks.nodes[input_id].reason == "The Input brings the lab's data."
    assert lab.locks.palette == ("Linear", "ReLU", "Tanh")
    assert lab.locks.settings == {"seed": "fixed", "epochs": "hidden"} and lab.locks.data
    assert lab.pictures == {"pictures/moons.png": tiny_png()}
    assert lab.data["source"] == "moons" and lab.data["test_fraction"] > 0
    assert lab.starter == win.document.graph.to_dict()

    # back into the author (File > Edit a lab file…): the widgets give the same document again; the
    # dialog starts where the lab was saved (it started in the home folder)
    a.close()
    dlg.open_path = path
    asked = []
    from gui import dialogs

    monkeypatch.setattr(dialogs, "get_open_path",
                        lambda parent, title, filters, directory="": asked.append(directory) or dlg.open_path)
    b = win.lab_actions.edit_lab_dialog()
    assert asked == [str(tmp_path)]
    assert b is not None and b.path == path
    assert b.document() == lab.to_dict()
    b.tabs.setCurrentIndex(1)
    for row in range(3):  # every step's widgets were filled and read back
        b.step_list.setCurrentRow(row)
    b.validate()
    assert b.document() == lab.to_dict()
    again = b.save_to(str(tmp_path / "again.layerlab-lab"))
    assert load_lab(again).content_hash == lab.content_hash


def test_a_lab_authored_in_the_app_opens_as_a_student_gets_it_and_grades(qtbot, win, tmp_path, picture, dlg):
    win._picture_path = picture
    a, input_id = author_a_lab(win, qtbot)
    assert a.try_as_student()
    settle(qtbot, win)
    doc = win.document
    lab = win.lab.lab
    assert lab is not None and lab.id == "moons-first-steps" and doc.lab is lab
    assert sorted(win.palette.visible_types()) == ["Linear", "ReLU", "Tanh"]
    with pytest.raises(LabLocked, match="'input1' is locked by the lab: the Input brings the lab's data"):
        from gui.commands import RemoveNodeCommand
        RemoveNodeCommand(doc, input_id)
    panel = win.lab_panel
    assert panel.cards["small"].mark.text() == MARK_MET  # the starter is within the budget
    box = panel.cards["shape"].questions[0]
    box.choose("Two half circles")
    box.check_button.click()
    settle(qtbot, win)
    assert panel.cards["shape"].mark.text() == MARK_MET
    # train it (headless, as the training process does) and keep the run in the project
    import torch
    from engine.run import execute, prepare_run
    torch.set_num_threads(1)
    project = doc.project
    prepared = prepare_run(project, dataset=win.lab.checker.dataset, overrides={"device": "cpu"},
                           use_project_weights=False)
    trainer, finished = execute(prepared)
    project.history = [dict(r) for r in trainer.history]
    project.run = {"outcome": finished.reason, "steps_per_epoch": trainer.steps_per_epoch,
                   "weights_epoch": len(trainer.history)}
    doc.set_weights({k: v.detach().clone() for k, v in prepared.compiled.module.state_dict().items()})
    settle(qtbot, win)
    assert panel.cards["train"].mark.text() == MARK_MET, panel.cards["train"].goal_label.text()

    # File > Submit lab…: the name, where it goes, and the grader's verdict on it
    dlg.save_path = str(tmp_path / "hand-in" / "ada")
    (tmp_path / "hand-in").mkdir()
    path = win.lab_actions.submit()
    assert path == str(tmp_path / "hand-in" / "ada.layerlab-submission")
    assert dlg.infos and path in dlg.infos[-1][1] and "3 of 3 steps done" in dlg.infos[-1][1]
    sub = load_submission(path)
    assert sub.student.name == "Ada Lovelace" and sub.student.id == "s001" and sub.lab_id == lab.id
    saved_lab = a.save_to(str(tmp_path / "lab.layerlab-lab"))
    rows = grade_class(load_lab(saved_lab), [path])
    row = rows[0]
    assert row.status == "graded", row.message
    assert row.points == {"small": 1, "train": 3, "shape": 1} and row.total == 5 == row.max_total
    assert [f.code for f in row.flags] == [], [f.sentence for f in row.flags]
    assert json.loads(json.dumps(row.metrics))["accuracy"] >= 0.8
