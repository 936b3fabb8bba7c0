"""``layerlab lab``: a lab for a student who works headless.

    lab start LAB OUT                 a project made from the lab (its starter, data and settings)
    lab check LAB PROJECT [--json]    which goals the project meets (exit 0 whatever it meets)
    lab hint LAB PROJECT STEP         reveal the step's next hint (saved in the project)
    lab answer LAB PROJECT QUESTION VALUE    answer a question (saved in the project)
    lab submit LAB PROJECT --student NAME [--id ID] [--out FILE]    the submission to hand in

LAB is a lab file (.json or .layerlab-lab) or a bundled lab's id (``python main.py labs``).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.cli_support import EXIT_OK, BadInput

HELP = "start, check, answer and submit a lab headless"


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", parser_class=type(parser))
    start = sub.add_parser("start", help="make a project from a lab")
    start.add_argument("lab", help="a lab file or the id of a bundled lab")
    start.add_argument("out", help="the project to write (.json or .layerlab)")
    check = sub.add_parser("check", help="print which goals a project meets")
    check.add_argument("lab")
    check.add_argument("project", help="a .layerlab bundle or .json project")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    hint = sub.add_parser("hint", help="reveal a step's next hint")
    hint.add_argument("lab")
    hint.add_argument("project")
    hint.add_argument("step", help="the step's id")
    answer = sub.add_parser("answer", help="answer one of the lab's questions")
    answer.add_argument("lab")
    answer.add_argument("project")
    answer.add_argument("question", help="the question's id (its step's id, unless the lab names it)")
    answer.add_argument("value", help="the answer: an option's text, or a number")
    submit = sub.add_parser("submit", help="write the submission bundle to hand in")
    submit.add_argument("lab")
    submit.add_argument("project")
    submit.add_argument("--student", required=True, help="your name")
    submit.add_argument("--id", default="", help="your student id")
    submit.add_argument("--out", help="the file to write (default: <name>-<lab>.layerlab-submission)")


def run(args) -> int:
    from engine.labs.format import resolve_lab

    if args.action is None:
        raise BadInput("layerlab lab: name an action: start, check, hint, answer or submit.")
    lab = resolve_lab(args.lab)
    actions = {"start": _start, "check": _check, "hint": _hint, "answer": _answer, "submit": _submit}
    return actions[args.action](lab, args)


def _save(path: str, project) -> None:
    from engine.project import save_project

    save_project(path, project)


def _start(lab, args) -> int:
    from engine.labs.progress import new_project_from_lab

    out = Path(args.out)
    if out.exists():
        raise BadInput(f"{out} exists already; choose another file name (nothing was overwritten).")
    if out.suffix.lower() not in (".json", ".layerlab"):
        raise BadInput(f"{out}: a project is written as .json or .layerlab.")
    _save(str(out), new_project_from_lab(lab))
    print(f"Wrote {out}: the lab '{lab.title}' with {len(lab.steps)} steps. Check it with: "
          f"python main.py lab check {args.lab} {out}")
    return EXIT_OK


def _check(lab, args) -> int:
    from engine.labs.check import check_project, question_lines, report_lines
    from engine.project import load_project

    project = load_project(args.project)
    _warn_if_another_lab(project, lab)
    report = check_project(lab, project)
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print("\n".join(report_lines(report) + question_lines(lab, report, args.lab, args.project)))
    return EXIT_OK


def _warn_if_another_lab(project, lab) -> None:
    """A project made from another lab (or none) is checked all the same, but not silently."""
    from engine.labs.progress import lab_id_of

    made_from = lab_id_of(project)
    if made_from != lab.id:
        where = f"the lab '{made_from}'" if made_from else "no lab"
        sys.stderr.write(f"note: this project was made from {where}, not from '{lab.id}'.\n")


def _hint(lab, args) -> int:
    from engine.labs.progress import reveal_hint, shown_hints
    from engine.project import load_project

    project = load_project(args.project)
    try:
        text = reveal_hint(project, lab, args.step)
    except KeyError:
        raise BadInput(f"the lab has no step {args.step!r}; its steps are {', '.join(s.id for s in lab.steps)}.") from None
    if text is None:
        shown = shown_hints(project, lab, args.step)
        print("No more hints for this step." + (f" The last one: {shown[-1]}" if shown else ""))
        return EXIT_OK
    _save(args.project, project)
    print(text)
    return EXIT_OK


def _answer(lab, args) -> int:
    from engine.labs.goals import questions
    from engine.labs.progress import set_answer
    from engine.project import load_project

    project = load_project(args.project)
    value = _checked_answer(lab, args.question, args.value)
    try:
        set_answer(project, lab, args.question, value)
    except KeyError:
        ids = [q.id for s in lab.steps for q in questions(s.goal)]
        raise BadInput(f"the lab has no question {args.question!r}; its questions are "
                       f"{', '.join(ids) or 'none'}.") from None
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    _save(args.project, project)
    print(f"Saved your answer to '{args.question}' ({value}) in {args.project}.")
    return EXIT_OK


def _checked_answer(lab, question_id: str, value: str) -> str:
    """A choice question's answer as one of its options: given whole (in any case), by its first
    words, or by its number in `lab check`'s list.  Anything else is refused with the options (an
    answer that is no option had been saved, and only a later check said so)."""
    from engine.labs.goals import ChoiceQuestion, NumberQuestion, parse_number, questions

    q = next((q for s in lab.steps for q in questions(s.goal) if q.id == question_id), None)
    if isinstance(q, NumberQuestion) and parse_number(value) is None:
        raise BadInput(f"'{question_id}' asks for a number; {value!r} is not one.")
    if not isinstance(q, ChoiceQuestion) or value in q.options:
        return value
    text = value.strip().casefold()
    matches = [o for o in q.options if o.casefold() == text] or \
        ([o for o in q.options if o.casefold().startswith(text)] if text else [])
    if text.isdigit() and 1 <= int(text) <= len(q.options):
        matches = [q.options[int(text) - 1]]
    if len(matches) == 1:
        return matches[0]
    listed = "; ".join(f"{i}. {o}" for i, o in enumerate(q.options, 1))
    raise BadInput(f"{value!r} is not one of the options of '{question_id}': {listed} (give its number).")


def _submit(lab, args) -> int:
    from engine.labs.submission import SUFFIX, make_submission, save_submission
    from engine.project import load_project

    project = load_project(args.project)
    raw = make_submission(project, {"name": args.student, "id": args.id}, lab)
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in args.student.strip()).strip("-") or "student"
    out = Path(args.out or f"{stem}-{lab.id}{SUFFIX}")
    save_submission(out, raw)
    sys.stderr.write(f"Wrote {out} ({len(raw):,} bytes): hand in this file.\n")
    return EXIT_OK
