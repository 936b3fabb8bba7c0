"""Submissions: what a student hands in round-trips; a corrupt, truncated, foreign, oversized or
tampered file is refused with its problem and one sentence; loading one (or a lab bundle) never runs
code, even when every member is a pickle that would create a file."""
from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from engine.labs.format import LAB_MEMBER, LabFileError, load_lab
from engine.labs.submission import (DOC_MEMBER, MAX_SUBMISSION_BYTES, WEIGHTS_MEMBER, Student, SubmissionError,
                                    load_submission, make_submission, save_submission)
from engine.project import project_bytes
from lab_support import lab, trained_solution


@pytest.fixture(scope="module")
def good() -> bytes:
    return make_submission(trained_solution("xor-hidden-layer"), {"name": "Ada Lovelace", "id": "s001"},
                           lab("xor-hidden-layer"))


def rezip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, raw in members.items():
            z.writestr(name, raw)
    return buf.getvalue()


def members_of(raw: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        return {n: z.read(n) for n in z.namelist()}


def test_a_submission_round_trips(tmp_path, good):
    project = trained_solution("xor-hidden-layer")
    path = tmp_path / "ada.layerlab-submission"
    save_submission(path, good)
    sub = load_submission(path)
    assert sub.student == Student("Ada Lovelace", "s001") and sub.student.label == "Ada Lovelace (s001)"
    xor = lab("xor-hidden-layer")
    assert (sub.lab_id, sub.lab_hash, sub.lab_title) == (xor.id, xor.content_hash, xor.title)
    assert sub.project.graph == project.graph and sub.project.history == project.history
    assert sub.project.training == project.training and sub.project.data == xor.data
    assert sub.project.lab == project.lab  # answers, hints, events
    assert set(sub.project.weights) == set(project.weights)
    assert all(torch.equal(sub.project.weights[k], v) for k, v in project.weights.items())
    assert [r["id"] for r in sub.results] == [s.id for s in xor.steps] and all(r["met"] for r in sub.results)
    assert sub.metrics["accuracy"] == pytest.approx(0.95) and set(sub.metrics) == {"loss", "accuracy", "f1_macro"}
    assert sorted(members_of(good)) == [DOC_MEMBER, WEIGHTS_MEMBER]


def test_a_submission_holds_no_pickle(good):
    for name, raw in members_of(good).items():
        assert not raw.startswith(b"\x80"), f"{name} looks like a pickle"
        assert b"_rebuild_tensor" not in raw and b"torch._utils" not in raw
    json.loads(members_of(good)[DOC_MEMBER])  # plain JSON


def test_an_untrained_project_submits_without_weights(tmp_path):
    from engine.labs.progress import new_project_from_lab

    raw = make_submission(new_project_from_lab(lab("xor-hidden-layer")), "Bo")
    assert sorted(members_of(raw)) == [DOC_MEMBER]
    path = tmp_path / "bo.layerlab-submission"
    path.write_bytes(raw)
    sub = load_submission(path)
    assert sub.project.weights is None and sub.weights_sha256 is None and sub.student.name == "Bo"


def test_make_submission_refuses_what_is_not_a_lab_project():
    from engine import templates
    from engine.errors import LayerLabError
    from engine.project import Project

    with pytest.raises(LayerLabError, match="not made from a lab"):
        make_submission(Project(graph=templates.mlp()), "Ada")
    with pytest.raises(LayerLabError, match="name or id"):
        make_submission(trained_solution("xor-hidden-layer"), "  ")
    with pytest.raises(LayerLabError, match="'xor-hidden-layer', not 'mlp-vs-cnn'"):
        make_submission(trained_solution("xor-hidden-layer"), "Ada", lab("mlp-vs-cnn"))


def _flip_in_member(raw: bytes, name: str) -> bytes:
    """Damage one byte inside a member's compressed data, leaving the archive's structure intact."""
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        info = z.getinfo(name)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    out = bytearray(raw)
    out[start + info.compress_size // 2] ^= 0xFF
    return bytes(out)


def _edited(raw: bytes, **changes) -> bytes:
    parts = members_of(raw)
    doc = json.loads(parts[DOC_MEMBER])
    for key, value in changes.items():
        doc[key] = value
    parts[DOC_MEMBER] = json.dumps(doc).encode()
    return rezip(parts)


BAD_FILES = {
    "empty": (lambda g: b"", "truncated", "empty"),
    "halved": (lambda g: g[: len(g) // 2], "truncated", "truncated"),
    "end-cut": (lambda g: g[:-10], "truncated", "truncated"),
    "random": (lambda g: bytes(range(256)) * 4, "foreign", "not a zip"),
    "json": (lambda g: b'{"format": "layerlab.project"}', "foreign", "json document"),
    "project": (lambda g: project_bytes(trained_solution("xor-hidden-layer")), "foreign", "a layerlab project"),
    "other-zip": (lambda g: rezip({"readme.txt": b"hello"}), "foreign", "not a layerlab submission"),
    "crc": (lambda g: _flip_in_member(g, WEIGHTS_MEMBER), "corrupt", "corrupt"),
    "bad-json": (lambda g: rezip({**members_of(g), DOC_MEMBER: b"{half a doc"}), "corrupt", "not valid json"),
    "foreign-doc": (lambda g: _edited(g, format="someone.else"), "foreign", "not a layerlab submission"),
    "newer": (lambda g: _edited(g, version=99), "invalid", "newer"),
    "no-student": (lambda g: _edited(g, student="me"), "invalid", "student"),
    "bad-project": (lambda g: _edited(g, project={"format": "layerlab.project", "version": 3}), "invalid", "project"),
    "extra-member": (lambda g: rezip({**members_of(g), "payload.pkl": b"\x80\x04."}), "tampered", "never writes"),
    "swapped-weights": (lambda g: rezip({**members_of(g), WEIGHTS_MEMBER: members_of(g)[WEIGHTS_MEMBER][:-4] + b"\0\0\0\0"}),
                        "tampered", "sha256"),
    "dropped-weights": (lambda g: rezip({DOC_MEMBER: members_of(g)[DOC_MEMBER]}), "tampered", "members"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_submission_says_what_is_wrong_in_one_sentence(tmp_path, good, case):
    make, problem, words = BAD_FILES[case]
    path = tmp_path / f"{case}.layerlab-submission"
    path.write_bytes(make(good))
    with pytest.raises(SubmissionError) as info:
        load_submission(path)
    assert info.value.problem == problem
    msg = str(info.value)
    assert msg.startswith(path.name) and "\n" not in msg and words in msg.lower(), msg


def test_missing_folder_and_oversized_files(tmp_path, monkeypatch):
    with pytest.raises(SubmissionError) as info:
        load_submission(tmp_path / "nope.layerlab-submission")
    assert info.value.problem == "unreadable"
    with pytest.raises(SubmissionError) as info:
        load_submission(tmp_path)
    assert info.value.problem == "foreign"
    huge = tmp_path / "huge.layerlab-submission"
    with open(huge, "wb") as f:
        f.truncate(MAX_SUBMISSION_BYTES + 1)  # sparse: nothing is spent on it
    monkeypatch.setattr("builtins.open", lambda *a, **k: pytest.fail("opened an oversized submission"))
    with pytest.raises(SubmissionError) as info:
        load_submission(huge)
    assert info.value.problem == "oversized" and "at most" in str(info.value)


def test_a_member_bigger_than_its_limit_is_refused_before_it_is_inflated(tmp_path, good, monkeypatch):
    import engine.labs.submission as submission

    monkeypatch.setattr(submission, "MAX_WEIGHTS_BYTES", 100)
    path = tmp_path / "bomb.layerlab-submission"
    path.write_bytes(good)
    with pytest.raises(SubmissionError) as info:
        load_submission(path)
    assert info.value.problem == "oversized" and "weights.safetensors" in str(info.value)


# ----------------------------------------------------------------------------- no code runs
class _Creates:
    """Unpickling this creates the file at ``path``: the payload a hostile file would carry."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def _payload(target: Path) -> bytes:
    return pickle.dumps(_Creates(target), protocol=4)


def test_the_pickle_payload_is_live():
    """The hostile members below would create their file if anything unpickled them."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        target = Path(d) / "pwned"
        pickle.loads(_payload(target)).close()
        assert target.exists()


def test_loading_a_submission_of_pickles_creates_nothing(tmp_path):
    target = tmp_path / "pwned-submission"
    path = tmp_path / "evil.layerlab-submission"
    path.write_bytes(rezip({DOC_MEMBER: _payload(target), WEIGHTS_MEMBER: _payload(target)}))
    with pytest.raises(SubmissionError):
        load_submission(path)
    assert not target.exists()
    # the grader reads it the same way: a row, and still nothing created
    from engine.labs.grade import grade_class

    (row,) = grade_class(lab("xor-hidden-layer"), [path])
    assert row.status == "corrupt" and not target.exists()


def test_loading_a_lab_bundle_of_pickles_creates_nothing(tmp_path):
    target = tmp_path / "pwned-lab"
    path = tmp_path / "evil.layerlab-lab"
    path.write_bytes(rezip({LAB_MEMBER: _payload(target), "pictures/figure.png": _payload(target)}))
    with pytest.raises(LabFileError):
        load_lab(path)
    assert not target.exists()
    # nor when lab.json itself is fine and only the picture is a pickle
    doc = lab("xor-hidden-layer").to_dict()
    path.write_bytes(rezip({LAB_MEMBER: json.dumps(doc).encode(), "pictures/figure.png": _payload(target)}))
    with pytest.raises(LabFileError, match="not a PNG"):
        load_lab(path)
    assert not target.exists()
