"""Labs for hands-on sessions: lab files with steps and self-checking goals, the student's progress
in a project, submissions, and headless grading.  Shared by the GUI and the CLI; no Qt here.

Modules, one responsibility each:

- ``format``     the lab document and lab files (``.json``, ``.layerlab-lab`` bundles with pictures)
- ``goals``      declarative goal kinds (graph, settings, training, inspection, questions, all / any)
- ``structure``  graph facts the goals read (hidden layers, depth, skip connections)
- ``metrics``    a model's metrics on the lab's fixed test split (scikit-learn + the graph's loss)
- ``check``      a project against a lab: per step met / points / sentence (``LabChecker``)
- ``locks``      what a lab forbids, asked the way an editor asks
- ``progress``   the project's lab record: events, hints, answers, ticks
- ``submission`` the bundle a student hands in
- ``grade``      grading a class (``grade_class``, the CSV); ``report`` the HTML report
- ``vocabulary`` the view, event and method names the app and lab files share

How the GUI drives it (phase 2: the lab panel, locks in the editor, instructor mode, File > Submit).
Every call below is a plain function or a small object, returns plain values with sentences, and
raises nothing for what a student does; only a bad *file* raises (``LabFileError``, one sentence).

Opening a lab::

    lab = resolve_lab(path_or_bundled_id)          # format.load_lab / load_bundled_lab; list_labs() for a menu
    project = new_project_from_lab(lab)            # progress: starter graph, data, settings, empty record
    pictures = markdown_resources(lab)             # {url in the markdown: image bytes}: hand each to the
                                                   # QTextDocument (addResource) before setting the markdown

Opening a project later: ``progress.lab_id_of(project)`` names its lab; find the lab by id (bundled) or
ask for its file; compare ``project.lab["hash"]`` with ``lab.content_hash`` to warn about another version.

The lab panel, live::

    checker = LabChecker(lab)                      # keep one per open lab: it holds the lab's data and
                                                   # the metrics of recent (graph, weights) pairs
    report = checker.check(project)                # after an edit (debounced), a run's end, an answer
    for step in report.steps: step.met, step.sentence, step.points, step.max_points, step.training
    record_ticks(project, report)                  # saved with the project: ticks show before a recheck
    report.lock_problems                           # sentences, e.g. for a hand-edited file

``check`` is cheap for graph, settings, inspection and question goals; a metric goal costs one forward
pass over the test split the first time a (graph, weights) pair is seen.  Run it off the GUI thread
(``gui/busy.py``) when the project has weights that the checker has not seen yet.

The student's actions::

    reveal_hint(project, lab, step_id) -> str | None            # the next hint; shown_hints(...) to redraw
    set_answer(project, lab, question_id, value)                # goals.questions(step.goal) lists them:
                                                                # ChoiceQuestion.options, NumberQuestion.unit
    record_event(project, "view_opened", view="weights")        # vocabulary.VIEWS names the views
    record_event(project, "timeline_scrubbed")
    record_event(project, "attribution_run", method="saliency") # vocabulary.ATTRIBUTION_METHODS
    record_event(project, "sanity_check_run")

Each mutates ``project.lab``; mark the document modified so it is saved (progress restores on open).

Locks, in the editor (each returns None = allowed, or the sentence to show where the user tried)::

    refuse_delete(lab, node_id), refuse_edit(lab, node_id)      # draw locked nodes with a lock badge
    refuse_layer(lab, layer_type)                               # allowed_layer_types(lab) filters the palette
    refuse_setting(lab, name), setting_lock(lab, name)          # "fixed": show read-only; "hidden": hide
    refuse_data_edit(lab)                                       # the dataset panel is read-only

Submitting (File > Submit lab…)::

    raw = make_submission(project, {"name": ..., "id": ...}, lab, report)   # bytes; save_submission(path, raw)

Instructor mode: ``goal_kinds()`` lists every goal kind with its fields (name, type, default, help,
choices) for a form; build the document as a dict and ``lab_from_dict(doc)`` refuses a bad one with a
sentence naming the step and field; ``save_lab(path, lab)``.  "Try it as a student" is
``new_project_from_lab`` on the lab being edited.  Grading is ``grade_class`` + ``write_csv`` /
``report.write_report`` (what ``python main.py grade`` runs).
"""
from __future__ import annotations

from engine.labs.check import LabChecker, LabReport, StepResult, check_project
from engine.labs.format import (Lab, LabFileError, list_labs, load_bundled_lab, load_lab, markdown_resources,
                                resolve_lab, save_lab)
from engine.labs.goals import GoalResult, LabFormatError, goal_kinds
from engine.labs.locks import (allowed_layer_types, lock_problems, refuse_data_edit, refuse_delete, refuse_edit,
                               refuse_layer, refuse_setting, setting_lock)
from engine.labs.progress import (new_project_from_lab, record_event, record_ticks, reveal_hint, set_answer,
                                  shown_hints)
from engine.labs.submission import Student, SubmissionError, load_submission, make_submission, save_submission

__all__ = [
    "Lab", "LabChecker", "LabFileError", "LabFormatError", "LabReport", "GoalResult", "StepResult", "Student",
    "SubmissionError", "allowed_layer_types", "check_project", "goal_kinds", "list_labs", "load_bundled_lab",
    "load_lab", "load_submission", "lock_problems", "make_submission", "markdown_resources",
    "new_project_from_lab", "record_event", "record_ticks", "refuse_data_edit", "refuse_delete", "refuse_edit",
    "refuse_layer", "refuse_setting", "resolve_lab", "reveal_hint", "save_lab", "save_submission", "set_answer",
    "setting_lock", "shown_hints",
]
