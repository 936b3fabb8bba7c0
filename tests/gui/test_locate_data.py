"""Opening a project whose data file moved: a clear sentence, and an offer to locate it
(gui/locate_data.py through gui/dialogs.py); a project folder copied whole opens without a question."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from engine.project import Project, load_starter, save_project  # noqa: E402
from gui import dialogs  # noqa: E402
from gui.document import Document  # noqa: E402
from tests import hostile  # noqa: E402


class Answers:
    def __init__(self, yes=True, path=""):
        self.yes, self.path, self.questions, self.dialogs = yes, path, [], []


@pytest.fixture
def answers(monkeypatch, qtbot):
    a = Answers()

    def ask(parent, title, text):
        a.questions.append((title, text))
        return a.yes

    def pick(parent, title, *rest):
        a.dialogs.append(title)
        return a.path

    monkeypatch.setattr(dialogs, "ask_yes_no", ask)
    monkeypatch.setattr(dialogs, "get_open_path", pick)
    monkeypatch.setattr(dialogs, "get_directory", pick)
    return a


def _lab_with_csv(folder):
    (folder / "data").mkdir(parents=True)
    rows = "".join(f"{i % 5},{i % 7},{'pq'[i % 2]}\n" for i in range(40))
    (folder / "data" / "t.csv").write_text("a,b,y\n" + rows)
    project = Project(graph=load_starter().graph,
                      data={"source": "csv", "path": str(folder / "data" / "t.csv"), "target": "y"})
    save_project(folder / "lab.layerlab", project)
    return folder / "lab.layerlab"


def test_a_moved_data_file_is_named_and_can_be_located(tmp_path, answers):
    path = _lab_with_csv(tmp_path / "lab")
    moved = tmp_path / "elsewhere" / "t.csv"
    moved.parent.mkdir()
    shutil.move(str(tmp_path / "lab" / "data" / "t.csv"), moved)
    answers.path = str(moved)
    doc = Document(load_starter())
    doc.open(str(path))
    (title, text), = answers.questions
    assert title == "The data file is missing" and "‘t.csv’" in text and "Locate it now?" in text
    assert answers.dialogs == ["Locate the data file ‘t.csv’"]
    assert doc.dataset is not None and doc.dataset_error == "" and doc.project.data["path"] == str(moved)
    assert doc.is_modified()  # the new path is saved with the project when the user saves
    doc.save()
    import json
    import zipfile

    with zipfile.ZipFile(path) as z:  # saved relative to the project, found again from there
        assert json.loads(z.read("project.json"))["data"]["path"] == "../elsewhere/t.csv"


def test_declining_opens_the_project_with_a_sentence_instead_of_data(tmp_path, answers):
    path = _lab_with_csv(tmp_path / "lab")
    (tmp_path / "lab" / "data" / "t.csv").unlink()
    answers.yes = False
    doc = Document(load_starter())
    doc.open(str(path))
    assert len(answers.questions) == 1 and answers.dialogs == []
    assert doc.dataset is None and "no such file" in doc.dataset_error and "t.csv" in doc.dataset_error
    assert not doc.is_modified()


def test_a_project_folder_copied_whole_opens_without_a_question(tmp_path, answers):
    _lab_with_csv(tmp_path / "lab")
    shutil.copytree(tmp_path / "lab", tmp_path / "student" / "lab")
    shutil.rmtree(tmp_path / "lab")
    doc = Document(load_starter())
    doc.open(str(tmp_path / "student" / "lab" / "lab.layerlab"))
    assert answers.questions == [] and doc.dataset is not None
    assert doc.project.data["path"] == str(tmp_path / "student" / "lab" / "data" / "t.csv")


def test_the_second_idx_file_is_found_next_to_the_first(tmp_path, answers):
    images = np.random.default_rng(0).integers(0, 256, size=(20, 4, 4), dtype=np.uint8)
    new = tmp_path / "new"
    new.mkdir()
    (new / "imgs").write_bytes(hostile.idx_header(images.shape) + images.tobytes())
    (new / "labs").write_bytes(hostile.idx_header((20,)) + bytes(i % 2 for i in range(20)))
    project = Project(graph=load_starter("digits-cnn").graph,
                      data={"source": "idx", "images": str(tmp_path / "old" / "imgs"),
                            "labels": str(tmp_path / "old" / "labs")})
    save_project(tmp_path / "p.json", project)
    answers.path = str(new / "imgs")
    doc = Document(load_starter())
    doc.open(str(tmp_path / "p.json"))
    assert len(answers.questions) == 1 and len(answers.dialogs) == 1
    assert doc.project.data["labels"] == str(new / "labs") and doc.dataset is not None
