"""Submissions: what a student hands in (File > Submit lab…, or ``main.py lab submit``).

A ``.layerlab-submission`` file is a zip, never a pickle, holding:

| member | content |
|---|---|
| ``submission.json`` | ``format: "layerlab.submission"``: the student, the lab (id, content hash, title), the project document (graph, data spec, settings and seed, run history, run record, the lab record with answers, hints and inspection events), the step results and metrics the student's app saw, and the sha256 of every other member |
| ``weights.safetensors`` | the trained weights (absent for an untrained project) |

    raw = make_submission(project, student="Ada Lovelace", lab=lab)    # bytes
    sub = load_submission(path)                                        # Submission, or SubmissionError

The stored results and metrics are what the student saw; a grader never trusts them, it
re-evaluates and compares (engine/labs/grade.py).  ``load_submission`` checks the file's size
before reading it and every member's before inflating it; a corrupt, truncated, foreign,
oversized or tampered file raises ``SubmissionError`` whose ``problem`` says which, with one sentence.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import LayerLabError, ProjectFileError
from engine.labs.zipread import CORRUPT, ZipMemberError, looks_truncated, read_member
from engine.versioning import migrate

SUBMISSION_FORMAT = "layerlab.submission"
SUBMISSION_VERSION = 1
SUBMISSION_MIGRATIONS: dict[int, Any] = {}
SUFFIX = ".layerlab-submission"
DOC_MEMBER = "submission.json"
WEIGHTS_MEMBER = "weights.safetensors"
MEMBERS = (DOC_MEMBER, WEIGHTS_MEMBER)
MAX_SUBMISSION_BYTES = 64 << 20
MAX_DOC_BYTES = 16 << 20
MAX_WEIGHTS_BYTES = 256 << 20
MAX_NAME_CHARS = 200
#: what ``SubmissionError.problem`` can be
PROBLEMS = ("unreadable", "oversized", "truncated", "corrupt", "foreign", "tampered", "invalid")


class SubmissionError(ProjectFileError):
    """A submission that cannot be graded; ``problem`` is one of ``PROBLEMS``."""

    def __init__(self, message: str, problem: str, reason: str | None = None, student: "Student | None" = None):
        super().__init__(message)
        self.problem = problem
        self.reason = reason or message  # the sentence without the file's name (a grade row names the file)
        #: who the file says made it, where that much could be read: an instructor must know whose
        #: file was tampered with
        self.student = student


@dataclass(frozen=True)
class Student:
    name: str
    id: str = ""

    @classmethod
    def of(cls, value: Any) -> "Student":
        if isinstance(value, Student):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, dict):
            return cls(str(value.get("name", "")), str(value.get("id", "") or ""))
        raise TypeError(f"a student is a name, a dict with 'name' and 'id', or a Student, not {type(value).__name__}")

    def check(self) -> "Student":
        name, sid = self.name.strip(), self.id.strip()
        if not name and not sid:
            raise LayerLabError("A submission needs the student's name or id.")
        if len(name) > MAX_NAME_CHARS or len(sid) > MAX_NAME_CHARS:
            raise LayerLabError(f"The student's name and id must be at most {MAX_NAME_CHARS} characters.")
        return Student(name, sid)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.id})" if self.name and self.id else (self.name or self.id)


@dataclass
class Submission:
    student: Student
    lab_id: str
    lab_hash: str
    lab_title: str
    project: Any  # engine.project.Project, with its weights
    results: list[dict] = field(default_factory=list)  # the step results the student's app saw
    metrics: dict[str, float] = field(default_factory=dict)  # the test metrics it saw
    created: str = ""
    app_version: str = ""
    weights_sha256: str | None = None
    path: str = ""


def _sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _app_version() -> str:
    try:
        from importlib.metadata import version

        return version("layerlab")
    except Exception:
        return "unknown"


def make_submission(project, student: Any, lab=None, report=None) -> bytes:
    """The submission bundle of ``project`` by ``student`` (a name, {"name", "id"} or a Student).

    ``lab``: the lab the project was made from (default: the bundled lab the project names);
    ``report``: its check of the project (default: checked here), stored as what the student saw."""
    import torch
    from safetensors.torch import save as save_safetensors

    from engine.labs.check import check_project
    from engine.labs.format import load_bundled_lab
    from engine.labs.progress import lab_id_of

    student = Student.of(student).check()
    lab_id = lab_id_of(project)
    if lab is None:
        if lab_id is None:
            raise LayerLabError("This project was not made from a lab, so it cannot be submitted as one.",
                                fix="start the lab from its file and redo the work there")
        lab = load_bundled_lab(lab_id)
    if lab_id is None:  # it had said "made from the lab 'None'"
        raise LayerLabError(f"This project was not made from a lab, so it cannot be submitted for '{lab.id}'.",
                            fix=f"start the lab (python main.py lab start {lab.id} FILE) and do the work there")
    if lab_id != lab.id:
        raise LayerLabError(f"This project was made from the lab '{lab_id}', not '{lab.id}'; submit it for that lab.")
    if report is None:
        report = check_project(lab, project)
    members: dict[str, bytes] = {}
    if project.weights:
        members[WEIGHTS_MEMBER] = save_safetensors({k: torch.as_tensor(v).detach().cpu().contiguous()
                                                    for k, v in project.weights.items()})
    doc = {
        "format": SUBMISSION_FORMAT, "version": SUBMISSION_VERSION,
        "student": {"name": student.name, "id": student.id},
        "lab": {"id": lab.id, "hash": lab.content_hash, "title": lab.title},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "app_version": _app_version(),
        "project": project.to_dict(),
        "results": [{"id": s.id, "met": s.met, "points": s.points, "sentence": s.sentence} for s in report.steps],
        "metrics": dict(report.measured.values or {}),
        "members": {name: {"sha256": _sha256(raw), "bytes": len(raw)} for name, raw in members.items()},
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(DOC_MEMBER, json.dumps(doc, indent=1, ensure_ascii=False))
        for name, raw in members.items():
            z.writestr(name, raw)
    return buf.getvalue()


def save_submission(path: str | os.PathLike, raw: bytes) -> None:
    from engine.atomic import atomic_write_bytes

    atomic_write_bytes(path, raw)


# ----------------------------------------------------------------------------- reading
def _read_file(p: Path, max_bytes: int) -> bytes:
    try:
        if not p.exists():
            raise SubmissionError("no such file.", "unreadable")
        if not p.is_file():
            raise SubmissionError("not a file.", "foreign")
        size = p.stat().st_size
        if size > max_bytes:
            raise SubmissionError(f"the file is {size:,} bytes; a submission is at most {max_bytes:,}.", "oversized")
        if size == 0:
            raise SubmissionError("the file is empty (0 bytes); the copy was cut short.", "truncated")
        with open(p, "rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as exc:
        raise SubmissionError(f"cannot read it ({exc.strerror or exc}).", "unreadable") from None
    if len(raw) > max_bytes:  # it grew since the size check
        raise SubmissionError(f"the file is more than {max_bytes:,} bytes.", "oversized")
    return raw


def _foreign_sentence(raw: bytes, names: list[str] | None = None) -> str:
    if names is not None and "project.json" in names:
        return ("this is a LayerLab project, not a submission: hand it in with File > Submit lab… "
                "(or python main.py lab submit).")
    if names is not None and "lab.json" in names:
        return "this is a lab bundle, not a submission."
    if raw[:1] in (b"{", b"["):
        return "this is a JSON document, not a LayerLab submission (a submission is a .layerlab-submission zip)."
    return "this is not a LayerLab submission (it is not a zip archive)."


def _members(raw: bytes) -> tuple[dict, bytes | None]:
    if raw[:4] != b"PK\x03\x04":
        raise SubmissionError(_foreign_sentence(raw), "foreign")
    if looks_truncated(raw):
        raise SubmissionError("the file is truncated (the end of its zip archive is missing); copy it again.",
                              "truncated")
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            names = z.namelist()
            if DOC_MEMBER not in names:
                raise SubmissionError(_foreign_sentence(raw, names), "foreign")
            extra = [n for n in names if n not in MEMBERS]
            if extra:
                raise SubmissionError(f"the file has a member LayerLab never writes ('{extra[0][:80]}'); it was "
                                      "put together by hand.", "tampered")
            doc_bytes = read_member(z, DOC_MEMBER, MAX_DOC_BYTES)
            weights = read_member(z, WEIGHTS_MEMBER, MAX_WEIGHTS_BYTES) if WEIGHTS_MEMBER in names else None
    except SubmissionError:
        raise
    except ZipMemberError as exc:
        raise SubmissionError(exc.message, "oversized" if exc.problem == "oversized" else "corrupt") from None
    except CORRUPT:
        raise SubmissionError("the file is corrupt (its zip archive cannot be read).", "corrupt") from None
    try:
        doc = json.loads(doc_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SubmissionError(f"its {DOC_MEMBER} is not valid JSON (the file is corrupt).", "corrupt") from None
    return doc, weights


def _text(value: Any, what: str, limit: int = MAX_NAME_CHARS) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise SubmissionError(f"the submission's {what} is not text of at most {limit} characters.", "invalid")
    return value


def submission_from_parts(doc: Any, weights_raw: bytes | None, path: str = "") -> Submission:
    if not isinstance(doc, dict) or doc.get("format") != SUBMISSION_FORMAT:
        raise SubmissionError(f"its {DOC_MEMBER} is not a LayerLab submission document (its 'format' is "
                              "missing or different).", "foreign")
    try:
        doc = migrate(doc, SUBMISSION_FORMAT, SUBMISSION_VERSION, SUBMISSION_MIGRATIONS, "submission")
    except ProjectFileError as exc:  # a bad or newer version
        raise SubmissionError(exc.message[0].lower() + exc.message[1:], "invalid") from None
    student, lab, members = doc.get("student"), doc.get("lab"), doc.get("members") or {}
    if not isinstance(student, dict) or not isinstance(lab, dict) or not isinstance(members, dict):
        raise SubmissionError("the submission lacks its 'student' or 'lab' record.", "invalid")
    try:
        return _checked_parts(doc, weights_raw, path, student, lab, members)
    except SubmissionError as exc:
        try:
            exc.student = Student(_text(student.get("name"), "student name"), _text(student.get("id"), "student id"))
        except SubmissionError:
            pass  # a name that is not text: the row stays anonymous
        raise


def _checked_parts(doc: dict, weights_raw, path, student: dict, lab: dict, members: dict) -> "Submission":
    """The rest of ``submission_from_parts``, once the student's record is known."""
    from safetensors.torch import load as load_safetensors

    from engine.project import Project

    declared = members.get(WEIGHTS_MEMBER)
    if (weights_raw is None) != (declared is None):
        raise SubmissionError("the submission's weights do not match its list of members (one was added or "
                              "removed after it was made).", "tampered")
    weights = None
    digest = None
    if weights_raw is not None:
        digest = _sha256(weights_raw)
        if not isinstance(declared, dict) or declared.get("sha256") != digest:
            raise SubmissionError("the submission's weights are not the ones it was made with (their sha256 "
                                  "differs from the one recorded): the file was edited.", "tampered")
        try:
            weights = load_safetensors(weights_raw)
        except Exception:  # safetensors raises its own error types for malformed data
            raise SubmissionError(f"its {WEIGHTS_MEMBER} cannot be read (the file is corrupt).", "corrupt") from None
    try:
        project = Project.from_dict(doc.get("project"), weights)
    except ProjectFileError as exc:
        raise SubmissionError(f"the project inside is invalid: {exc.message}", "invalid") from None
    results = doc.get("results") or []
    metrics = doc.get("metrics") or {}
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise SubmissionError("the submission's step results are malformed.", "invalid")
    if not isinstance(metrics, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                for v in metrics.values()):
        raise SubmissionError("the submission's stored metrics are malformed.", "invalid")
    return Submission(
        student=Student(_text(student.get("name"), "student name"), _text(student.get("id"), "student id")),
        lab_id=_text(lab.get("id"), "lab id"), lab_hash=_text(lab.get("hash"), "lab hash"),
        lab_title=_text(lab.get("title"), "lab title", 500), project=project, results=results,
        metrics={str(k): float(v) for k, v in metrics.items()}, created=_text(doc.get("created"), "date"),
        app_version=_text(doc.get("app_version"), "version"), weights_sha256=digest, path=path)


def load_submission(path: str | os.PathLike, max_bytes: int = MAX_SUBMISSION_BYTES) -> Submission:
    """Read a submission; SubmissionError (with ``problem``) names the file and says what is wrong."""
    p = Path(path)
    try:
        raw = _read_file(p, max_bytes)
        doc, weights_raw = _members(raw)
        return submission_from_parts(doc, weights_raw, str(p))
    except SubmissionError as exc:
        raise SubmissionError(f"{p.name}: {exc.message}", exc.problem, exc.message, exc.student) from None
