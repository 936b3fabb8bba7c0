"""The project side of a lab: the versioned ``lab`` record (saved, loaded, migrated from v2) and the
progress functions the lab panel calls (events, hints, answers, ticks)."""
from __future__ import annotations

import json

import pytest

from engine.labs.check import check_project
from engine.labs.progress import (answers, events, lab_id_of, new_project_from_lab, record_event, record_ticks,
                                  reveal_hint, revealed_hints, set_answer, shown_hints, ticked)
from engine.project import PROJECT_VERSION, Project, load_project, migrate_project_doc, save_project
from lab_support import lab, solution


def test_a_project_made_from_a_lab_records_the_lab_and_starts_empty():
    xor = lab("xor-hidden-layer")
    project = new_project_from_lab(xor)
    assert project.lab == {"id": "xor-hidden-layer", "hash": xor.content_hash, "title": xor.title,
                           "progress": {"ticked": [], "hints": {}, "answers": {}}, "events": []}
    assert project.graph.to_dict() == xor.starter
    assert project.data == xor.data and project.training == xor.training
    assert project.data["test_fraction"] == 0.25 and project.data["split_seed"] == 7  # the fixed split
    assert project.weights is None and project.history == []


@pytest.mark.parametrize("suffix", [".layerlab", ".json"])
def test_progress_survives_save_and_open(tmp_path, suffix):
    xor = lab("xor-hidden-layer")
    project = new_project_from_lab(xor)
    set_answer(project, xor, "single-neuron", "About 50%: no better than guessing")
    assert reveal_hint(project, xor, "add-hidden") == xor.step("add-hidden").hints[0]
    record_event(project, "view_opened", view="decision_boundary")
    record_ticks(project, check_project(xor, project))
    path = tmp_path / f"work{suffix}"
    save_project(path, project)
    again = load_project(path)
    assert again.lab == project.lab
    assert ticked(again) == ["single-neuron", "see-the-boundary", "keep-it-small"]
    assert shown_hints(again, xor, "add-hidden") == [xor.step("add-hidden").hints[0]]
    assert check_project(xor, again).step("single-neuron").met


def test_a_version_2_project_migrates_to_one_made_from_no_lab():
    doc = Project(graph=solution("xor-hidden-layer").graph).to_dict()
    doc.pop("lab")
    doc["version"] = 2
    migrated = migrate_project_doc(json.loads(json.dumps(doc)))
    assert migrated["version"] == PROJECT_VERSION == 3 and migrated["lab"] == {}
    project = Project.from_dict(doc)
    assert project.lab == {} and lab_id_of(project) is None
    assert "not made from a lab" in check_project(lab("xor-hidden-layer"), project).note


def test_a_lab_record_that_is_not_an_object_is_refused_with_its_name():
    from engine.errors import ProjectFileError

    doc = new_project_from_lab(lab("xor-hidden-layer")).to_dict()
    doc["lab"] = ["not", "an", "object"]
    with pytest.raises(ProjectFileError, match="'lab'"):
        Project.from_dict(doc)


def test_events_are_kept_once_and_checked():
    project = new_project_from_lab(lab("looking-inside"))
    assert record_event(project, "view_opened", view="weights") is True
    assert record_event(project, "view_opened", view="weights") is False  # seen before: kept once
    assert record_event(project, "timeline_scrubbed") is True
    assert record_event(project, "attribution_run", method="saliency") is True
    assert events(project) == [{"kind": "view_opened", "view": "weights"}, {"kind": "timeline_scrubbed"},
                               {"kind": "attribution_run", "method": "saliency"}]
    with pytest.raises(ValueError):
        record_event(project, "view_opened", colour="red")  # a field the kind does not have
    with pytest.raises(ValueError):
        record_event(project, "telemetry")


def test_hints_are_revealed_one_by_one_and_run_out():
    xor = lab("xor-hidden-layer")
    project = new_project_from_lab(xor)
    hints = xor.step("solve").hints
    assert [reveal_hint(project, xor, "solve") for _ in hints] == list(hints)
    assert reveal_hint(project, xor, "solve") is None
    assert shown_hints(project, xor, "solve") == list(hints)
    with pytest.raises(KeyError):
        reveal_hint(project, xor, "no-such-step")


def test_answers_name_a_question_of_the_lab():
    xor = lab("xor-hidden-layer")
    project = new_project_from_lab(xor)
    with pytest.raises(KeyError):
        set_answer(project, xor, "solve", "yes")  # a metric step, not a question
    with pytest.raises(ValueError):
        set_answer(project, xor, "single-neuron", {"a": 1})
    set_answer(project, xor, "single-neuron", "Close to 100%")
    assert answers(project) == {"single-neuron": "Close to 100%"}


def test_a_hand_edited_record_is_read_leniently():
    project = new_project_from_lab(lab("xor-hidden-layer"))
    project.lab["events"] = [{"kind": "view_opened", "view": "weights"}, "junk", {"kind": "unknown"},
                             {"kind": "view_opened", "view": 3}]
    project.lab["progress"] = {"ticked": "all", "hints": {"solve": -2, "add-hidden": 1}, "answers": {"q": [1]}}
    before = json.loads(json.dumps(project.lab))
    assert events(project) == [{"kind": "view_opened", "view": "weights"}]
    assert ticked(project) == [] and answers(project) == {}
    assert revealed_hints(project, "add-hidden") == 1 and revealed_hints(project, "solve") == 0
    assert project.lab == before  # reading never rewrites the record
    record_event(project, "timeline_scrubbed")  # writing stores the cleaned record
    assert project.lab["progress"]["hints"] == {"add-hidden": 1} and len(project.lab["events"]) == 2


def test_checking_a_project_made_from_no_lab_leaves_it_alone():
    from engine import templates

    project = Project(graph=templates.mlp())
    report = check_project(lab("xor-hidden-layer"), project)
    record_ticks(project, report)
    assert record_event(project, "view_opened", view="weights") is False
    assert project.lab == {}
