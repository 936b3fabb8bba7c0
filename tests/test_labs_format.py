"""Lab files: the document's checks (one sentence naming the step and field), bundles with pictures,
size limits, the content hash, locks, and no code run while loading."""
from __future__ import annotations

import base64
import copy
import io
import json
import zipfile

import pytest

from engine.labs.format import (LAB_MEMBER, MAX_LAB_FILE_BYTES, LabFileError, lab_bytes, lab_from_dict, lab_warnings,
                                list_labs, load_bundled_lab, load_lab, markdown_resources, resolve_lab, save_lab)
from engine.labs.goals import GOAL_KINDS, LabFormatError, goal_kinds
from engine.labs.locks import (allowed_layer_types, lock_problems, refuse_data_edit, refuse_delete, refuse_edit,
                               refuse_layer, refuse_setting, setting_lock)
from engine.labs.progress import new_project_from_lab
from lab_support import lab

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def xor_doc() -> dict:
    return lab("xor-hidden-layer").to_dict()


def refused(doc, *words):
    with pytest.raises(LabFormatError) as info:
        lab_from_dict(doc)
    msg = str(info.value)
    assert "\n" not in msg
    for w in words:
        assert w.lower() in msg.lower(), msg
    return msg


# ----------------------------------------------------------------------------- the bundled labs
def test_ten_bundled_labs_in_order_with_stable_ids():
    infos = list_labs()
    assert [i["id"] for i in infos] == [
        "xor-hidden-layer", "hidden-layers-activations", "loss-learning-rate-optimizers",
        "overfitting-regularisation", "mlp-vs-cnn", "looking-inside", "explaining-predictions",
        "regression-metrics", "residual-connections", "lstm-sequences"]
    for info in infos:
        loaded = load_bundled_lab(info["id"])
        assert loaded.title == info["title"] and loaded.steps and loaded.introduction.startswith("# ")
        assert loaded.data["test_fraction"] > 0 and "split_seed" in loaded.data  # a fixed test split
        assert loaded.training.get("seed") == 0 and setting_lock(loaded, "seed") == "fixed"
        assert any(s.training for s in loaded.steps), f"{info['id']} has no training goal"
        assert all(s.instructions and s.title for s in loaded.steps)
        assert lab_warnings(loaded) == [], info["id"]  # no bundled lab defeats itself


def test_a_lab_round_trips_and_its_hash_is_stable(tmp_path):
    xor = lab("xor-hidden-layer")
    path = tmp_path / "xor.json"
    save_lab(path, xor)
    again = load_lab(path)
    assert again.to_dict() == xor.to_dict() and again.content_hash == xor.content_hash
    edited = xor_doc()
    edited["steps"][0]["points"] = 5
    assert lab_from_dict(edited).content_hash != xor.content_hash
    assert resolve_lab(str(path)).id == resolve_lab("xor-hidden-layer").id == "xor-hidden-layer"


def test_a_metric_goal_within_fewer_epochs_than_the_lab_trains_is_a_warning_for_its_author():
    """An author set "within 20 epochs" with the lab training 30: the lab said it was ready, and a
    student who pressed Train failed the step."""
    doc = xor_doc()
    solve = next(s for s in doc["steps"] if s["id"] == "solve")
    solve["goal"] = {"kind": "metric", "metric": "accuracy", "at_least": 0.9, "within_epochs": 20}
    doc["training"]["epochs"] = 30
    (warning,) = lab_warnings(lab_from_dict(doc))
    assert f"Step '{solve['title']}' asks for its accuracy within 20 epochs, but the lab trains for 30" in warning
    assert "just presses Train" in warning
    doc["locks"].setdefault("settings", {})["epochs"] = "fixed"
    (warning,) = lab_warnings(lab_from_dict(doc))
    assert "no student can meet it" in warning
    doc["training"]["epochs"] = 20
    assert lab_warnings(lab_from_dict(doc)) == []


def test_the_first_lab_shows_its_picture_from_a_data_uri():
    xor = lab("xor-hidden-layer")
    pictures = markdown_resources(xor)
    (url, raw), = pictures.items()
    assert url.startswith("data:image/png;base64,") and raw.startswith(b"\x89PNG")


# ----------------------------------------------------------------------------- refused documents
@pytest.mark.parametrize("edit, words", [
    (lambda d: d.update(id="Bad Id!"), ["'id'"]),
    (lambda d: d.update(frobnicate=1), ["frobnicate"]),
    (lambda d: d.update(version=99), ["newer"]),
    (lambda d: d.update(format="layerlab.project"), ["not a layerlab lab"]),
    (lambda d: d["data"].update(test_fraction=0.0), ["test split"]),
    (lambda d: d["data"].update(source="nowhere"), ["source"]),
    (lambda d: d["training"].update(lr=-1), ["lr"]),
    (lambda d: d["steps"][1].update(id=d["steps"][0]["id"]), ["used by two steps"]),
    (lambda d: d["steps"][0].update(points="lots"), ["step 'single-neuron'", "points"]),
    (lambda d: d["steps"][3].update(goal={"kind": "telepathy"}), ["step 'solve'", "unknown goal kind"]),
    (lambda d: d["steps"][3].update(goal={"kind": "metric", "metric": "accuracy", "at_most": 0.5}),
     ["an 'accuracy' goal takes 'at_least'", "not 'at_most'"]),
    # both bounds empty (the author's form as a new goal starts): what to fill in, not what to leave out
    (lambda d: d["steps"][3].update(goal={"kind": "metric", "metric": "accuracy"}),
     ["set 'at_least' for an 'accuracy' goal", "the value to reach"]),
    (lambda d: d["steps"][3].update(goal={"kind": "metric", "metric": "r2", "at_least": 0.5}),
     ["r2", "classification"]),
    (lambda d: d["steps"][3].update(goal={"kind": "layer_count", "layers": ["Conv9d"], "at_least": 1}), ["Conv9d"]),
    (lambda d: d["steps"][3].update(goal={"kind": "layer_count", "layers": ["Linear"]}), ["at_least"]),
    (lambda d: d["steps"][3].update(goal={"kind": "view_opened", "view": "weigths"}), ["weigths"]),
    (lambda d: d["steps"][3].update(goal={"kind": "setting", "name": "speed", "at_least": 1}), ["speed"]),
    (lambda d: d["steps"][3].update(goal={"kind": "choice", "question": "?", "options": ["a", "b"], "answer": "c"}),
     ["answer", "options"]),
    (lambda d: d["steps"][3].update(goal={"kind": "all", "goals": []}), ["goals"]),
    (lambda d: d["steps"][3].update(goal={"kind": "hidden_layers", "at_least": 1, "colour": "red"}), ["colour"]),
    (lambda d: d["steps"][3].update(instructions="![x](https://example.com/track.png)"), ["outside the lab"]),
    (lambda d: d["steps"][3].update(instructions="![x](pictures/missing.png)"), ["not in the lab bundle"]),
    (lambda d: d.update(introduction="<img src='data:image/svg+xml;base64,PHN2Zz4='>"), ["data:"]),
    (lambda d: d["locks"]["nodes"].append({"node": "ghost"}), ["ghost"]),
    (lambda d: d["locks"].update(palette=["Linear", "Warp"]), ["Warp"]),
    (lambda d: d["locks"]["settings"].update(lr="frozen"), ["fixed", "hidden"]),
])
def test_a_bad_lab_document_is_refused_with_one_sentence(edit, words):
    doc = xor_doc()
    edit(doc)
    refused(doc, *words)


def test_two_questions_in_one_step_need_their_own_ids():
    doc = xor_doc()
    q = {"kind": "choice", "question": "?", "options": ["a", "b"], "answer": "a"}
    doc["steps"][0]["goal"] = {"kind": "all", "goals": [q, dict(q)]}
    refused(doc, "answer id")
    doc["steps"][0]["goal"]["goals"][1]["id"] = "second"
    assert lab_from_dict(doc).steps[0].goal.goals[1].id == "second"


# ----------------------------------------------------------------------------- files and bundles
def bundle(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, raw in members.items():
            z.writestr(name, raw)
    return buf.getvalue()


def test_a_bundle_carries_its_pictures(tmp_path):
    doc = xor_doc()
    doc["introduction"] += "\n\n![a dot](pictures/dot.png)"
    path = tmp_path / "xor.layerlab-lab"
    path.write_bytes(bundle({LAB_MEMBER: json.dumps(doc).encode(), "pictures/dot.png": PNG}))
    loaded = load_lab(path)
    assert loaded.pictures == {"pictures/dot.png": PNG}
    assert markdown_resources(loaded)["pictures/dot.png"] == PNG
    assert loaded.content_hash != lab_from_dict(doc, {"pictures/dot.png": PNG + b"\0"}).content_hash
    again = tmp_path / "again.layerlab-lab"
    save_lab(again, loaded)
    assert load_lab(again).content_hash == loaded.content_hash
    with pytest.raises(LabFileError, match="bundle"):
        save_lab(tmp_path / "flat.json", loaded)
    assert lab_bytes(lab("xor-hidden-layer")).startswith(b"{")


def _halved_bundle(raw: bytes) -> bytes:
    whole = bundle({LAB_MEMBER: raw})
    return whole[: len(whole) // 2]


@pytest.mark.parametrize("make, words", [
    (_halved_bundle, ["truncated"]),
    (lambda raw: b"", ["neither"]),
    (lambda raw: b"\x89PNG not a lab", ["neither"]),
    (lambda raw: bundle({"project.json": b"{}"}), ["not a lab bundle"]),
    (lambda raw: bundle({LAB_MEMBER: raw, "run.py": b"print(1)"}), ["unexpected member"]),
    (lambda raw: bundle({LAB_MEMBER: raw, "pictures/x.png": b"MZ executable"}), ["not a png"]),
    (lambda raw: bundle({LAB_MEMBER: b"{not json"}), ["not valid json"]),
])
def test_a_bad_lab_file_is_one_sentence_naming_it(tmp_path, make, words):
    path = tmp_path / "bad.layerlab-lab"
    path.write_bytes(make(json.dumps(xor_doc()).encode()))
    with pytest.raises(LabFileError) as info:
        load_lab(path)
    msg = str(info.value)
    assert msg.startswith(str(path)) and "\n" not in msg
    for w in words:
        assert w.lower() in msg.lower(), msg


def test_a_truncated_bundle_says_so(tmp_path):
    raw = bundle({LAB_MEMBER: json.dumps(xor_doc()).encode()})
    path = tmp_path / "cut.layerlab-lab"
    path.write_bytes(raw[: len(raw) - 30])
    with pytest.raises(LabFileError, match="truncated"):
        load_lab(path)


def test_an_oversized_lab_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "huge.json"
    with open(path, "wb") as f:
        f.truncate(MAX_LAB_FILE_BYTES + 1)  # sparse: no memory or disk spent on it
    monkeypatch.setattr("pathlib.Path.read_bytes", lambda self: pytest.fail("read an oversized lab"))
    with pytest.raises(LabFileError, match="at most"):
        load_lab(path)


def test_a_member_that_lies_about_its_size_is_refused(tmp_path, monkeypatch):
    import engine.labs.format as fmt

    monkeypatch.setattr(fmt, "MAX_LAB_JSON_BYTES", 1000)
    path = tmp_path / "big.layerlab-lab"
    path.write_bytes(bundle({LAB_MEMBER: json.dumps(xor_doc()).encode()}))
    with pytest.raises(LabFileError, match="more than"):
        load_lab(path)


def test_missing_and_folder_paths():
    with pytest.raises(LabFileError, match="no such file"):
        load_lab("/no/such/lab.json")
    with pytest.raises(LabFileError, match="not a file"):
        load_lab("/")
    with pytest.raises(LabFileError, match="xor-hidden-layer"):
        load_bundled_lab("no-such-lab")


# ----------------------------------------------------------------------------- locks
def test_locks_answer_the_editor_with_their_reason():
    xor = lab("xor-hidden-layer")
    assert refuse_delete(xor, "input1") == "The Input takes its shape from the lab's data."
    assert refuse_edit(xor, "input1") is not None
    assert refuse_delete(xor, "output1") and refuse_edit(xor, "output1") is None  # its loss may change
    assert refuse_delete(xor, "fc1") is None and refuse_edit(xor, "fc1") is None
    assert refuse_layer(xor, "ReLU") is None
    assert "Conv2d" in refuse_layer(xor, "Conv2d") and "Linear" in refuse_layer(xor, "Conv2d")
    assert allowed_layer_types(xor) == ("Linear", "ReLU", "Tanh", "Sigmoid", "LeakyReLU")
    assert refuse_setting(xor, "seed") and refuse_setting(xor, "lr") is None
    assert refuse_data_edit(xor)


def test_lock_problems_list_what_a_hand_edited_project_broke():
    xor = lab("xor-hidden-layer")
    project = new_project_from_lab(xor)
    assert lock_problems(xor, project) == []
    project.graph.remove_node("input1")
    project.graph.add_node("Conv2d", {}, name="conv1")
    project.data = {**project.data, "split_seed": 8}
    project.training = {**project.training, "seed": 3}
    problems = lock_problems(xor, project)
    assert len(problems) == 4, problems
    assert "'input1' was deleted" in problems[0] and "Conv2d" in problems[1]
    assert "split_seed" in problems[2] and "'seed'" in problems[3]
    edited = new_project_from_lab(xor)
    edited.graph.rename("input1", "start")
    assert "'input1' was changed" in lock_problems(xor, edited)[0]


def test_goal_kinds_describe_their_fields_for_a_form():
    kinds = {k["kind"]: k for k in goal_kinds()}
    assert set(kinds) == set(GOAL_KINDS) and len(kinds) == 17
    metric = {f["name"]: f for f in kinds["metric"]["fields"]}
    assert metric["metric"]["required"] and "accuracy" in metric["metric"]["choices"]
    assert metric["within_epochs"]["required"] is False and metric["within_epochs"]["minimum"] == 1
    assert kinds["view_opened"]["category"] == "inspection" and kinds["all"]["category"] == "composite"
    for k in kinds.values():
        assert k["title"] and all(f["help"] for f in k["fields"]), k


def test_goals_round_trip_through_json():
    for step in lab("residual-connections").steps + lab("mlp-vs-cnn").steps:
        doc = step.goal.to_json()
        again = GOAL_KINDS[doc["kind"]].from_json(copy.deepcopy(doc), "here")
        assert again == step.goal and again.to_json() == doc
