"""Checking a project against a lab: every step's goal, its points and its sentence.

    report = check_project(lab, project)           # one-off (the CLI's ``lab check``)
    checker = LabChecker(lab)                      # live: keeps the lab's data and recent metrics
    report = checker.check(project)                # after every edit or run in the GUI
    report.steps[0].met, report.steps[0].sentence, report.points, report.max_points

Goals whose inputs are missing (an untrained project for a metric goal, an unanswered
question) are "not met" with a sentence; nothing here raises for anything a student can do.
Metrics are always measured from the project's graph and weights on the lab's own data (its
fixed split), never read from the project.
"""
from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass

from engine.labs.format import Lab
from engine.labs.goals import GoalContext, GoalResult
from engine.labs.metrics import Measured, measure, weights_digest

_MEMO_SIZE = 8


@dataclass(frozen=True)
class StepResult:
    id: str
    title: str
    met: bool
    points: float  # earned: the step's points when met, else 0
    max_points: float
    sentence: str
    training: bool  # the step's goal needs trained weights
    result: GoalResult

    def to_json(self) -> dict:
        return {"id": self.id, "title": self.title, "met": self.met, "points": self.points,
                "max_points": self.max_points, "sentence": self.sentence, "training": self.training,
                "result": self.result.to_json()}


@dataclass(frozen=True)
class LabReport:
    lab_id: str
    lab_title: str
    lab_hash: str
    steps: tuple[StepResult, ...]
    measured: Measured  # the project's weights on the lab's test split
    epochs: int | None  # the epoch the weights come from (None: no run recorded)
    lock_problems: tuple[str, ...] = ()
    note: str = ""  # e.g. the project was made from another lab, or an older version of this one
    measured_val: Measured | None = None  # the same on the validation split, when asked for

    @property
    def points(self) -> float:
        return sum(s.points for s in self.steps)

    @property
    def max_points(self) -> float:
        return sum(s.max_points for s in self.steps)

    @property
    def met(self) -> int:
        return sum(1 for s in self.steps if s.met)

    def step(self, step_id: str) -> StepResult:
        return next(s for s in self.steps if s.id == step_id)

    def summary(self) -> str:
        return (f"{self.met} of {len(self.steps)} steps done, {self.points:g} of {self.max_points:g} points")

    def to_json(self) -> dict:
        return {"lab": {"id": self.lab_id, "title": self.lab_title, "hash": self.lab_hash},
                "steps": [s.to_json() for s in self.steps], "points": self.points, "max_points": self.max_points,
                "metrics": self.measured.values, "metrics_missing": self.measured.missing or None,
                "epochs": self.epochs, "lock_problems": list(self.lock_problems), "note": self.note or None}


def _structure_key(graph) -> str:
    """The graph as the model sees it: node positions left out, so moving a node costs no re-evaluation."""
    doc = graph.to_dict()
    nodes = [{k: v for k, v in n.items() if k != "pos"} for n in doc["nodes"]]
    return json.dumps({"nodes": nodes, "edges": doc["edges"]}, sort_keys=True)


def trained_epochs(history: list | None, run: dict | None = None) -> int | None:
    """The epoch the project's weights come from: the run record's ``weights_epoch`` when it lies
    within the history, else the history's last epoch (None when no run is recorded)."""
    if not history:
        return None
    numbers = [r.get("epoch") for r in history if isinstance(r, dict)]
    numbers = [n for n in numbers if isinstance(n, int) and not isinstance(n, bool)]
    last = max(numbers) if numbers else len(history)
    kept = (run or {}).get("weights_epoch")
    if isinstance(kept, int) and not isinstance(kept, bool) and 0 <= kept <= last:
        return kept
    return last


class LabChecker:
    """Checks projects against one lab.  Keeps the lab's dataset (loaded on first need) and the
    metrics of the last few (graph, weights) pairs, so a live check after an edit that does not
    touch the model costs no forward pass."""

    def __init__(self, lab: Lab, dataset=None):
        self.lab = lab
        self._dataset = dataset
        self.data_problem = ""
        self._memo: OrderedDict[tuple, Measured] = OrderedDict()

    @property
    def dataset(self):
        """The lab's data with its fixed split (None, with ``data_problem`` set, if it cannot load)."""
        if self._dataset is None and not self.data_problem:
            from engine.data import load_dataset
            from engine.errors import LayerLabError

            try:
                self._dataset = load_dataset(self.lab.data, None, base_dir=self.lab.base_dir)
            except LayerLabError as exc:
                self.data_problem = f"the lab's data cannot be loaded: {exc}"
        return self._dataset

    def context(self):
        from engine.run import context_for

        return context_for(self.dataset) if self.dataset is not None else None

    def measure(self, graph, weights, settings=None, split: str = "test") -> Measured:
        """The metrics of ``graph`` with ``weights`` on ``split`` of the lab's data (memoised)."""
        if self.dataset is None:
            return Measured(None, self.data_problem, split)
        from engine.labs.metrics import loss_name

        key = (_structure_key(graph), weights_digest(weights), loss_name(graph, settings, self.dataset.task), split)
        if key not in self._memo:
            self._memo[key] = measure(graph, weights, self.dataset, settings, split)
            while len(self._memo) > _MEMO_SIZE:
                self._memo.popitem(last=False)
        self._memo.move_to_end(key)
        return self._memo[key]

    def _config(self, project):
        from engine.errors import LayerLabError
        from engine.run import run_config

        try:
            return run_config(project.training, project.graph, self.dataset.task if self.dataset else None), None
        except LayerLabError as exc:
            return None, exc.message

    def _analysis(self, graph):
        from engine.validate import ShapeInference

        ctx = self.context()
        return ShapeInference(graph, ctx).analyze() if ctx is not None else None

    def check(self, project, *, within: tuple[Measured, int | None] | None = None,
              with_validation: bool = False) -> LabReport:
        """Every step of the lab on ``project``.  ``within`` replaces the metrics and epochs that
        "reached within y epochs" goals read (the grader's retrained run); ``with_validation``
        also measures the weights on the validation split (the grader compares the history)."""
        from engine.labs.locks import lock_problems
        from engine.labs.progress import answers, events, lab_id_of

        graph = project.graph
        epochs = trained_epochs(project.history, project.run)
        ctx = GoalContext(graph=graph, events=events(project), answers=answers(project), epochs=epochs,
                          analysis=lambda: self._analysis(graph),
                          measured=lambda: self.measure(graph, project.weights, project.training),
                          config=lambda: self._config(project),
                          within=(lambda: within) if within is not None else None)
        steps = []
        for step in self.lab.steps:
            result = step.goal.evaluate(ctx)
            steps.append(StepResult(step.id, step.title, result.met, step.points if result.met else 0.0,
                                    step.points, result.sentence, step.training, result))
        made_from = lab_id_of(project)
        note = ""
        if made_from is None:
            note = "this project was not made from a lab"
        elif made_from != self.lab.id:
            note = f"this project was made from the lab '{made_from}', not '{self.lab.id}'"
        elif project.lab.get("hash") != self.lab.content_hash:
            note = "this project was made from another version of this lab"
        measured_val = (self.measure(graph, project.weights, project.training, "val") if with_validation else None)
        return LabReport(self.lab.id, self.lab.title, self.lab.content_hash, tuple(steps), ctx.measured, epochs,
                         tuple(lock_problems(self.lab, project)), note, measured_val)


def check_project(lab: Lab, project, dataset=None) -> LabReport:
    return LabChecker(lab, dataset).check(project)


def report_lines(report: LabReport) -> list[str]:
    """The report as text lines for a terminal: one per step, then the totals."""
    lines = [f"{report.lab_title} ({report.lab_id})"]
    if report.note:
        lines.append(f"  note: {report.note}")
    for s in report.steps:
        mark = "[x]" if s.met else "[ ]"
        lines.append(f"  {mark} {s.title} ({s.points:g}/{s.max_points:g}): {s.sentence}")
    for problem in report.lock_problems:
        lines.append(f"  lock: {problem}")
    lines.append(f"  {report.summary()}")
    return lines


def question_lines(lab, report: LabReport, lab_name: str, project_name: str) -> list[str]:
    """For a terminal: the options of each choice question of a step not met yet, and how to
    answer it (headless, the options were nowhere but in the lab's file)."""
    from engine.labs.goals import ChoiceQuestion, questions

    met = {s.id: s.met for s in report.steps}
    lines = []
    for step in lab.steps:
        if met.get(step.id, True):
            continue
        for q in questions(step.goal):
            if isinstance(q, ChoiceQuestion):
                lines.append(f"  question '{q.id}': {q.question}")
                lines += [f"      {i}. {option}" for i, option in enumerate(q.options, 1)]
                lines.append(f"    answer with: python main.py lab answer {lab_name} {project_name} {q.id} NUMBER")
    return lines
