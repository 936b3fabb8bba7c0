"""No silent wrong results from data, and data files that stay where the project says:
the task rule the user sees and overrides, contiguous classes, one-class data refused, project
fields refused by name, data paths stored relative to the project and resolved against it."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from engine.data import load_dataset, missing_data_files, relative_data_paths, resolve_data_paths
from engine.errors import DataError, ProjectFileError
from engine.project import Project, load_project, load_starter, save_project
from tests import hostile


def write_csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return str(path)


# ----------------------------------------------------------------------------- the task rule
def test_many_integer_classes_become_regression_with_a_notice_and_the_override_works(tmp_path):
    rows = [(i * 0.1, i % 500) for i in range(2000)]
    path = write_csv(tmp_path / "t.csv", ["x", "label"], rows)
    ds = load_dataset({"source": "csv", "path": path, "target": "label"})
    assert ds.task == "regression"
    assert "500 distinct whole numbers" in ds.task_rule and "more than 50" in ds.task_rule
    assert len(ds.notices) == 1 and '"task": "classification"' in ds.notices[0]
    assert ds.summary()["task_rule"] == ds.task_rule and ds.summary()["notices"] == list(ds.notices)
    pinned = load_dataset({"source": "csv", "path": path, "target": "label", "task": "classification"})
    assert pinned.task == "classification" and pinned.n_outputs == 500
    assert "task" in pinned.task_rule and "setting" in pinned.task_rule and not pinned.notices


def test_a_borderline_class_count_says_so(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["x", "y"], [(i, i % 20) for i in range(200)])
    ds = load_dataset({"source": "csv", "path": path, "target": "y"})
    assert ds.task == "classification" and ds.n_outputs == 20
    assert "20 distinct whole numbers" in ds.task_rule and "regression" in ds.notices[0]
    clear = load_dataset({"source": "csv", "path": write_csv(tmp_path / "c.csv", ["x", "y"],
                                                              [(i, i % 3) for i in range(30)]), "target": "y"})
    assert clear.task == "classification" and not clear.notices  # 3 classes: no doubt, no notice


def test_text_and_fractional_targets_state_their_rule(tmp_path):
    text = load_dataset({"source": "csv", "path": write_csv(tmp_path / "a.csv", ["x", "y"],
                                                             [(i, "ab"[i % 2]) for i in range(10)]), "target": "y"})
    assert text.task == "classification" and "holds text" in text.task_rule
    frac = load_dataset({"source": "csv", "path": write_csv(tmp_path / "b.csv", ["x", "y"],
                                                             [(i, i / 7) for i in range(10)]), "target": "y"})
    assert frac.task == "regression" and "fractional" in frac.task_rule


def test_generators_state_their_fixed_task_and_refuse_another():
    ds = load_dataset({"source": "moons", "n_samples": 100})
    assert ds.task_rule == "classification, as the moons dataset is"
    with pytest.raises(DataError, match="'task' must be one of 'auto', 'classification'"):
        load_dataset({"source": "moons", "task": "regression"})


def test_npz_float_labels_that_are_whole_numbers_get_a_notice(tmp_path):
    x = np.random.default_rng(0).normal(size=(60, 2))
    np.savez(tmp_path / "f.npz", x=x, y=np.arange(60, dtype=np.float64) % 3)
    ds = load_dataset({"source": "npz", "path": str(tmp_path / "f.npz")})
    assert ds.task == "regression" and "floating-point" in ds.task_rule
    assert "3 distinct whole numbers" in ds.notices[0] and '"classification"' in ds.notices[0]


# ----------------------------------------------------------------------------- labels
def test_sparse_integer_labels_are_renumbered_with_their_names_kept(tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 2))
    np.savez(tmp_path / "s.npz", x=x, y=np.where(np.arange(40) % 2, 99999, 0))
    ds = load_dataset({"source": "npz", "path": str(tmp_path / "s.npz")})
    assert ds.n_outputs == 2 and ds.class_names == ["0", "99999"]
    assert set(ds.y_train.tolist()) == {0, 1}


def test_dense_zero_based_labels_keep_their_indices_when_a_subset_misses_a_class(tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 2))
    y = np.array([0, 1, 2, 4] * 10)  # class 3 absent from this subset, as in the first 100 MNIST images
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = load_dataset({"source": "npz", "path": str(tmp_path / "d.npz")})
    assert ds.class_names == ["0", "1", "2", "3", "4"] and ds.n_outputs == 5


def test_one_class_data_is_refused_with_a_sentence(tmp_path):
    np.savez(tmp_path / "one.npz", x=np.zeros((20, 2)), y=np.full(20, 3))
    with pytest.raises(DataError, match=r"every sample has the same class \('3'\); a classifier needs at least two"):
        load_dataset({"source": "npz", "path": str(tmp_path / "one.npz")})


def test_numbers_beyond_float32_are_refused_not_turned_into_infinity(tmp_path):
    path = write_csv(tmp_path / "h.csv", ["x", "y"], [(1e300 if i == 3 else i, i % 2) for i in range(10)])
    with pytest.raises(DataError, match="column 'x' holds numbers too large for 32-bit floats"):
        load_dataset({"source": "csv", "path": path, "target": "y"})


# ----------------------------------------------------------------------------- project fields
@pytest.mark.parametrize("field, value, words", [
    ("history", "lots", "'history' must be a list"),
    ("history", [{"epoch": [1]}], "row 1 of the field 'history'"),
    ("normalization", {"mean": [0.0]}, "'normalization' must be null or an object with exactly 'mean' and 'std'"),
    ("normalization", {"mean": [0.0], "std": [float("nan")]}, "'normalization' needs lists of finite numbers"),
    ("run", "done", "'run' must be an object"),
    ("data", {"source": "moons", "n_sampels": 5}, "unknown setting 'n_sampels'; did you mean 'n_samples'"),
    ("data", {"source": "csv", "path": 5}, "'path' must be a file path"),
    ("data", [], "in the field 'data', A data spec must be an object"),
    ("training", [1], "'training' must be an object"),
    ("training", {"seed": 10**23}, "'seed' must be between 0 and 9,223,372,036,854,775,807"),
    ("training", {"num_threads": 3000}, "'num_threads' must be between 0 and 256, got 3000"),
    ("training", {"epochs": 0.5}, "'epochs' must be a whole number"),
    ("description", 7, "'description' must be text"),
    ("weights_path", "/tmp/x", "unknown field 'weights_path'"),
])
def test_malformed_project_fields_are_refused_with_their_name(tmp_path, field, value, words):
    doc = hostile.starter_doc()
    doc["version"] = 2
    doc[field] = value
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ProjectFileError) as info:
        load_project(path)
    assert str(info.value).startswith(str(path)) and words in str(info.value), str(info.value)


def test_every_bundled_starter_passes_the_field_checks():
    from engine.project import list_starters

    for s in list_starters():
        project = load_starter(s["name"])
        assert Project.from_dict(json.loads(json.dumps(project.to_dict()))).to_dict() == project.to_dict()


# ----------------------------------------------------------------------------- data paths
def test_data_paths_are_saved_relative_to_the_project_and_found_after_a_move(tmp_path):
    lab = tmp_path / "lab"
    (lab / "data").mkdir(parents=True)
    data = write_csv(lab / "data" / "t.csv", ["a", "b", "y"], [(i, i * 2 % 7, "pq"[i % 2]) for i in range(30)])
    project = Project(graph=load_starter().graph, data={"source": "csv", "path": data, "target": "y"})
    save_project(lab / "p.json", project)
    save_project(lab / "p.layerlab", project)
    assert json.loads((lab / "p.json").read_text())["data"]["path"] == "data/t.csv"
    assert project.data["path"] == data  # the project in memory is untouched
    moved = tmp_path / "handed-out" / "lab"
    shutil.copytree(lab, moved)
    shutil.rmtree(lab)
    for name in ("p.json", "p.layerlab"):
        opened = load_project(moved / name)
        assert opened.data["path"] == str(moved / "data" / "t.csv")
        assert load_dataset(opened.data).n_train > 0  # no base_dir needed: resolved on load
        assert missing_data_files(opened.data) == []


def test_path_helpers_only_touch_file_keys_and_keep_what_has_no_relative_form(tmp_path):
    spec = {"source": "idx", "images": "/data/i", "labels": "l", "max_samples": 5}
    assert resolve_data_paths(spec, "/proj") == {**spec, "labels": "/proj/l"}
    assert relative_data_paths(spec, "/data") == {**spec, "images": "i"}
    assert relative_data_paths({"source": "moons", "path": "/x"}, "/") == {"source": "moons", "path": "/x"}
    assert missing_data_files({"source": "csv", "path": str(tmp_path / "gone.csv")}) == [
        ("path", str(tmp_path / "gone.csv"))]


def test_a_bundle_trained_from_a_relative_data_path_retrains_from_another_folder(tmp_path, monkeypatch, capsys):
    from engine.cli import run_cli

    write_csv(tmp_path / "d.csv", ["a", "b", "y"], [(i % 5, i % 7, "pq"[(i % 5 > 2)]) for i in range(60)])
    monkeypatch.chdir(tmp_path)
    assert run_cli(["train", "--data", "d.csv", "--target", "y", "--epochs", "1", "--out", "runs/a"]) == 0
    assert "task: classification, because the target column 'y' holds text" in capsys.readouterr().err
    bundle = tmp_path / "runs" / "a" / "model.layerlab"
    assert load_project(bundle).data["path"] == str(tmp_path / "d.csv")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert run_cli(["train", str(bundle), "--epochs", "1", "--out", "again"]) == 0, capsys.readouterr().err
    assert (elsewhere / "again" / "model.layerlab").is_file()
