"""The project side of a lab: which lab a project was made from, and the student's progress in it.

``Project.lab`` (engine/project.py, project format version 3) holds::

    {"id": "xor-hidden-layer", "hash": "<the lab's content hash>", "title": "…",
     "progress": {"ticked": ["add-hidden"], "hints": {"add-hidden": 1}, "answers": {"q1": "about 50%"}},
     "events": [{"kind": "view_opened", "view": "weights"}, {"kind": "timeline_scrubbed"}, …]}

Everything here is a plain function on a project: the GUI calls them as the student works
(``record_event`` when a view opens, ``reveal_hint`` on request, ``set_answer`` from the answer
box, ``record_ticks`` after each live check) and saving the project saves the progress.  A record
that was edited by hand is read leniently: what does not fit is dropped, never fatal.
"""
from __future__ import annotations

import copy
from typing import Any

from engine.labs.format import Lab
from engine.labs.goals import questions
from engine.labs.vocabulary import EVENT_FIELDS

MAX_EVENTS = 1000
MAX_FIELD_CHARS = 200
MAX_ANSWER_CHARS = 2000


def new_project_from_lab(lab: Lab):
    """A fresh project for ``lab``: its starter graph, data and settings, and an empty progress record."""
    from engine.project import Project

    return Project(graph=lab.starter_graph(), data=copy.deepcopy(lab.data), training=copy.deepcopy(lab.training),
                   name=lab.title, description=lab.description,
                   lab={"id": lab.id, "hash": lab.content_hash, "title": lab.title,
                        "progress": {"ticked": [], "hints": {}, "answers": {}}, "events": []})


def _clean(rec: Any) -> dict:
    """A lab record with every part of its type; what does not fit is dropped (a hand-edited file)."""
    rec = dict(rec) if isinstance(rec, dict) else {}
    progress = rec.get("progress") if isinstance(rec.get("progress"), dict) else {}
    ticked = progress.get("ticked")
    hints = progress.get("hints")
    given = progress.get("answers")
    rec["progress"] = {
        "ticked": [s for s in ticked if isinstance(s, str)] if isinstance(ticked, list) else [],
        "hints": {k: v for k, v in hints.items() if isinstance(k, str) and isinstance(v, int)
                  and not isinstance(v, bool) and v > 0} if isinstance(hints, dict) else {},
        "answers": {k: v for k, v in given.items() if isinstance(k, str) and _valid_answer(v)}
        if isinstance(given, dict) else {},
    }
    found = rec.get("events")
    rec["events"] = [e for e in found if valid_event(e)][:MAX_EVENTS] if isinstance(found, list) else []
    return rec


def _read(project) -> dict:
    """The project's lab record, cleaned, without touching the project (checking never changes it)."""
    return _clean(project.lab)


def _record(project, lab: Lab | None = None) -> dict:
    """The record to write to: cleaned and stored back; a project made from no lab gets one for ``lab``."""
    rec = _clean(project.lab)
    if lab is not None and "id" not in rec:
        rec.update(id=lab.id, hash=lab.content_hash, title=lab.title)
    project.lab = rec
    return rec


def _valid_answer(v: Any) -> bool:
    if isinstance(v, str):
        return len(v) <= MAX_ANSWER_CHARS
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def valid_event(e: Any) -> bool:
    if not isinstance(e, dict) or e.get("kind") not in EVENT_FIELDS:
        return False
    fields = set(e) - {"kind"}
    return fields <= set(EVENT_FIELDS[e["kind"]]) and all(
        isinstance(e[f], str) and len(e[f]) <= MAX_FIELD_CHARS for f in fields)


def lab_id_of(project) -> str | None:
    rec = project.lab if isinstance(project.lab, dict) else {}
    return rec.get("id") if isinstance(rec.get("id"), str) else None


def events(project) -> list[dict]:
    return _read(project)["events"]


def answers(project) -> dict[str, Any]:
    return _read(project)["progress"]["answers"]


def record_event(project, kind: str, **fields: str) -> bool:
    """Record an inspection event (``view_opened`` with ``view``, ``timeline_scrubbed``,
    ``attribution_run`` with ``method``, ``sanity_check_run``).  An event seen before is kept once;
    returns whether it was new.  An unknown kind or field raises ValueError (a programming error)."""
    event = {"kind": kind, **{k: str(v) for k, v in fields.items()}}
    if not valid_event(event):
        raise ValueError(f"not an inspection event: {event!r} (kinds and fields: {EVENT_FIELDS})")
    if lab_id_of(project) is None:
        return False  # a project made from no lab records nothing
    rec = _record(project)
    if event in rec["events"] or len(rec["events"]) >= MAX_EVENTS:
        return False
    rec["events"].append(event)
    return True


def set_answer(project, lab: Lab, question_id: str, value: Any) -> None:
    """Keep the student's answer to a question (text for a choice, a number or text for a number)."""
    ids = {q.id for s in lab.steps for q in questions(s.goal)}
    if question_id not in ids:
        raise KeyError(f"lab '{lab.id}' has no question {question_id!r}")
    if not _valid_answer(value):
        raise ValueError(f"an answer is text (at most {MAX_ANSWER_CHARS} characters) or a number")
    _record(project, lab)["progress"]["answers"][question_id] = value


def revealed_hints(project, step_id: str) -> int:
    return _read(project)["progress"]["hints"].get(step_id, 0)


def reveal_hint(project, lab: Lab, step_id: str) -> str | None:
    """Reveal the step's next hint and return it (None when every hint is shown already)."""
    step = lab.step(step_id)
    hints = _record(project, lab)["progress"]["hints"]
    shown = hints.get(step_id, 0)
    if shown >= len(step.hints):
        return None
    hints[step_id] = shown + 1
    return step.hints[shown]


def shown_hints(project, lab: Lab, step_id: str) -> list[str]:
    step = lab.step(step_id)
    return list(step.hints[:revealed_hints(project, step_id)])


def record_ticks(project, report) -> None:
    """Save which steps a check found met, so a reopened project shows its ticks before it is rechecked."""
    if lab_id_of(project) == report.lab_id:
        _record(project)["progress"]["ticked"] = [s.id for s in report.steps if s.met]


def ticked(project) -> list[str]:
    return _read(project)["progress"]["ticked"]
