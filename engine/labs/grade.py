"""Grading a class: every submission re-evaluated against the lab, one row per student.

    rows = grade_class(lab, paths, jobs=2, reproduce=False)
    write_csv(path, lab, rows)                 # one row per file: points per step, total, flags
    engine.labs.report.write_report(path, lab, rows)

What is trusted: nothing the submission says about itself.  Every goal is re-evaluated from the
submission's graph and weights on the lab's own data and fixed test split; the metrics and step
results stored in the submission are only *compared* with the re-evaluation, and so is the run
history (its last epoch's validation figures against the weights' own).  ``reproduce`` retrains
each submission from its graph, settings and seed for the epochs its history claims, flags a
result that does not come out within ``REPRODUCE_TOLERANCE`` of the submitted weights', and checks
the "reached within y epochs" goals on the retrained run.  Across the class, identical weights in
two submissions and two files from one student are flagged.

A flag is a reason for the instructor to look, not a verdict: points are never taken off for one.
Nothing here raises for a bad file: a corrupt, truncated, foreign, oversized or tampered file, a
submission for another lab, even an internal failure, becomes a row that says so, and the others
are graded all the same.
"""
from __future__ import annotations

import csv
import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from engine.labs.check import LabChecker, LabReport, trained_epochs
from engine.labs.format import Lab, lab_from_dict
from engine.labs.goals import MetricGoal
from engine.labs.metrics import METRIC_TITLES, format_metric, higher_is_better
from engine.labs.submission import MAX_SUBMISSION_BYTES, Submission, SubmissionError, load_submission

#: a row's status: "graded", or why the file was not graded (SubmissionError problems, wrong lab, error)
STATUSES = ("graded", "wrong_lab", "unreadable", "oversized", "truncated", "corrupt", "foreign", "tampered",
            "invalid", "error")
#: how far a retrained run may land from the submitted weights' figures: absolute for scores in
#: [0, 1] (accuracy, macro F1, R²), relative for losses and errors.  Retraining on the same machine
#: and thread count gives the same weights; other machines differ in rounding, which a few percent
#: absorb, while forged weights or a history that hides epochs miss by much more.
REPRODUCE_TOLERANCE = {"accuracy": 0.03, "f1_macro": 0.03, "r2": 0.03, "loss": 0.15, "mse": 0.15, "mae": 0.15}
#: stored figures and history rows are the same computation as the re-evaluation: they agree to
#: rounding, or within one test sample's worth of accuracy when another machine rounds a near tie apart
STORED_RELATIVE = 1e-3
FLAG_CODES = ("lab_version", "stored_metrics", "stored_results", "history", "same_weights", "duplicate_student",
              "locks", "not_reproduced", "reproduce_failed")


@dataclass(frozen=True)
class Flag:
    code: str  # one of FLAG_CODES
    sentence: str


@dataclass
class GradeRow:
    file: str
    status: str
    message: str = ""  # why a file was not graded (one sentence)
    student: str = ""
    student_id: str = ""
    points: dict[str, float] = field(default_factory=dict)  # step id -> points earned
    total: float = 0.0
    max_total: float = 0.0
    flags: list[Flag] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)  # id, title, met, points, max_points, sentence
    metrics: dict[str, float] = field(default_factory=dict)  # re-evaluated on the lab's test split
    weights_sha256: str | None = None
    seconds: float = 0.0

    @property
    def graded(self) -> bool:
        return self.status == "graded"

    @property
    def name(self) -> str:
        return self.student or self.student_id or Path(self.file).name


# ----------------------------------------------------------------------------- comparing figures
def _stored_close(metric: str, a: float, b: float, n_samples: int) -> bool:
    if metric in ("accuracy", "f1_macro"):
        return abs(a - b) <= max(1e-3, 1.5 / max(n_samples, 1))
    return abs(a - b) <= 1e-5 + STORED_RELATIVE * max(abs(a), abs(b))


def _reproduced_close(metric: str, retrained: float, submitted: float) -> bool:
    tol = REPRODUCE_TOLERANCE[metric]
    if higher_is_better(metric):
        return abs(retrained - submitted) <= tol
    return abs(retrained - submitted) <= 1e-3 + tol * max(abs(retrained), abs(submitted))


def _shown(metric: str, v: float) -> str:
    return format_metric(metric, v)


def _compare_stored(sub: Submission, report: LabReport) -> list[Flag]:
    flags = []
    values = report.measured.values or {}
    differ = [(k, v, values[k]) for k, v in sub.metrics.items()
              if k in values and not _stored_close(k, v, values[k], report.measured.n_samples)]
    if sub.metrics and not values:
        flags.append(Flag("stored_metrics", "the submission stores test metrics, but its weights cannot be "
                                            f"evaluated ({report.measured.missing})"))
    elif differ:
        k, stored, real = differ[0]
        flags.append(Flag("stored_metrics", f"the stored test {METRIC_TITLES[k]} {_shown(k, stored)} differs from "
                                            f"the re-evaluated {_shown(k, real)}"))
    by_id = {s.id: s for s in report.steps}
    claimed = [r.get("id") for r in sub.results if r.get("met") is True and r.get("id") in by_id
               and not by_id[r.get("id")].met]
    if claimed:
        flags.append(Flag("stored_results", f"the submission says step '{claimed[0]}' was met; re-evaluated, "
                                            "it is not"))
    return flags


def _compare_history(sub: Submission, report: LabReport) -> list[Flag]:
    """The history's row for the weights' epoch against the weights' own validation figures."""
    val = report.measured_val
    project = sub.project
    if val is None or not val.ok or not project.history or report.epochs is None:
        return []
    row = next((r for r in reversed(project.history) if isinstance(r, dict) and r.get("epoch") == report.epochs), None)
    if row is None:
        return [Flag("history", f"the run history has no row for epoch {report.epochs}, the epoch its weights "
                                "are said to come from")]
    checks = [("loss", "val_loss"), ("accuracy", "val_accuracy"), ("mse", "val_mse")]
    for metric, key in checks:
        stored = row.get(key)
        if metric in val.values and isinstance(stored, (int, float)) and not isinstance(stored, bool):
            if not _stored_close(metric, float(stored), val.values[metric], val.n_samples):
                stopped = (" (the run was stopped by hand mid-epoch, which can explain a small difference)"
                           if (project.run or {}).get("outcome") == "stopped" else "")
                return [Flag("history", f"the run history says epoch {report.epochs} ended with validation "
                                        f"{METRIC_TITLES[metric]} {_shown(metric, float(stored))}, but the submitted "
                                        f"weights give {_shown(metric, val.values[metric])}: the weights or the "
                                        f"history were changed{stopped}")]
    return []


# ----------------------------------------------------------------------------- one submission
def _goal_metrics(lab: Lab, task: str) -> list[str]:
    names = []
    for step in lab.steps:
        names += [g.metric for g in step.goal.walk() if isinstance(g, MetricGoal) and g.metric not in names]
    return names or (["accuracy"] if task == "classification" else ["mse"])


def _retrain(checker: LabChecker, project, epochs: int | None):
    """Train the submission's graph from its seed on the lab's data; (Measured, epochs run) or a Flag."""
    import copy

    from engine.errors import LayerLabError
    from engine.run import execute, prepare_run

    fresh = copy.copy(project)
    fresh.weights, fresh.checkpoints = None, {}
    overrides = {"device": "cpu", "num_threads": 1}
    if epochs:
        overrides["epochs"] = epochs
    try:
        prepared = prepare_run(fresh, dataset=checker.dataset, overrides=overrides, use_project_weights=False)
        if prepared.config.seed is None:
            return Flag("reproduce_failed", "the settings have no seed, so the run cannot be reproduced")
        trainer, _ = execute(prepared)
    except LayerLabError as exc:
        return Flag("reproduce_failed", f"retraining it failed: {exc}")
    weights = {k: v.detach().cpu().clone() for k, v in prepared.compiled.module.state_dict().items()}
    return checker.measure(project.graph, weights, project.training), len(trainer.history)


def _reproduce(lab: Lab, checker: LabChecker, sub: Submission, claimed: int | None):
    """(within override for the checker, flags).

    The retrained run's figures stand in for the submission's only when its own weights exist and
    are evaluated: an untrained submission retrained here had been given the points of a run its
    student never made."""
    submitted = checker.measure(sub.project.graph, sub.project.weights, sub.project.training)
    if not submitted.ok:
        why = ("it has no trained weights to compare a retrained run with" if not sub.project.weights
               else f"its weights cannot be evaluated ({submitted.missing})")
        return None, [Flag("reproduce_failed", why)]
    out = _retrain(checker, sub.project, claimed)
    if isinstance(out, Flag):
        return None, [out]
    retrained, ran = out
    if not retrained.ok:
        return None, [Flag("reproduce_failed", f"the retrained model cannot be evaluated ({retrained.missing})")]
    for metric in _goal_metrics(lab, checker.dataset.task):
        a, b = retrained.values.get(metric), submitted.values.get(metric)
        if a is not None and b is not None and not _reproduced_close(metric, a, b):
            tol = REPRODUCE_TOLERANCE[metric]
            shown_tol = f"{tol:g}" if higher_is_better(metric) else f"{100 * tol:g}%"
            return (retrained, ran), [Flag("not_reproduced", (
                f"retrained from its graph, settings and seed for {ran} epochs, it reaches test "
                f"{METRIC_TITLES[metric]} {_shown(metric, a)}, but the submitted weights give {_shown(metric, b)} "
                f"(tolerance {shown_tol})"))]
    if claimed is not None and ran != claimed:
        return (retrained, ran), [Flag("not_reproduced", f"retrained, the run stops after {ran} epochs, but its "
                                                         f"history claims {claimed}")]
    return (retrained, ran), []


def grade_submission(lab: Lab, path: str | os.PathLike, *, checker: LabChecker | None = None,
                     reproduce: bool = False, max_bytes: int = MAX_SUBMISSION_BYTES) -> GradeRow:
    """Grade one file; never raises."""
    t0 = time.perf_counter()
    checker = checker or LabChecker(lab)
    row = GradeRow(file=str(path), status="error", max_total=lab.max_points,
                   points={s.id: 0.0 for s in lab.steps})
    try:
        _grade_into(row, lab, checker, path, reproduce, max_bytes)
    except Exception as exc:  # a bug must cost one row, never the class
        row.status, row.message = "error", f"grading this file failed ({type(exc).__name__}: {exc})"
        row.points, row.total, row.steps = {s.id: 0.0 for s in lab.steps}, 0.0, []
    row.seconds = time.perf_counter() - t0
    return row


def _grade_into(row: GradeRow, lab: Lab, checker: LabChecker, path, reproduce: bool, max_bytes: int) -> None:
    try:
        sub = load_submission(path, max_bytes=max_bytes)
    except SubmissionError as exc:
        row.status, row.message = exc.problem, exc.reason
        if exc.student is not None:  # a tampered file's row says whose it is
            row.student, row.student_id = exc.student.name, exc.student.id
        return
    row.student, row.student_id = sub.student.name, sub.student.id
    row.weights_sha256 = sub.weights_sha256
    if sub.lab_id != lab.id:
        row.status = "wrong_lab"
        row.message = f"this submission is for the lab '{sub.lab_id}' ({sub.lab_title}), not '{lab.id}'"
        return
    if checker.dataset is None:
        row.status, row.message = "error", checker.data_problem
        return
    flags: list[Flag] = []
    if sub.lab_hash != lab.content_hash:
        flags.append(Flag("lab_version", "it was made with another version of this lab (the lab's content hash "
                                         "differs); it is graded against this one"))
    project = sub.project
    within = None
    if reproduce:
        within, more = _reproduce(lab, checker, sub, trained_epochs(project.history, project.run))
        flags += more
    # what the submission says about itself is compared with its own weights' re-evaluation ("on
    # paper"); the points come from the retrained run's where --reproduce asks for one
    paper = checker.check(project, with_validation=True)
    report = paper if within is None else checker.check(project, within=within)
    flags += _compare_stored(sub, paper) + _compare_history(sub, paper)
    if report.lock_problems:
        flags.append(Flag("locks", "; ".join(report.lock_problems)))
    row.status = "graded"
    row.points = {s.id: s.points for s in report.steps}
    row.total = report.points
    row.steps = [{"id": s.id, "title": s.title, "met": s.met, "points": s.points, "max_points": s.max_points,
                  "sentence": s.sentence} for s in report.steps]
    row.metrics = dict(report.measured.values or {})
    row.flags = sorted(flags, key=lambda f: FLAG_CODES.index(f.code))


# ----------------------------------------------------------------------------- the class
_WORKER: dict = {}


def _worker_init(lab_doc: dict, pictures: dict, base_dir: str | None, reproduce: bool, max_bytes: int) -> None:
    import torch

    torch.set_num_threads(1)  # one thread per process: jobs share the cores, small models run best so
    lab = lab_from_dict(lab_doc, pictures, base_dir)
    _WORKER.update(lab=lab, checker=LabChecker(lab), reproduce=reproduce, max_bytes=max_bytes)


def _worker_grade(path: str) -> GradeRow:
    return grade_submission(_WORKER["lab"], path, checker=_WORKER["checker"], reproduce=_WORKER["reproduce"],
                            max_bytes=_WORKER["max_bytes"])


def grade_class(lab: Lab, paths: Iterable[str | os.PathLike], *, jobs: int = 1, reproduce: bool = False,
                max_bytes: int = MAX_SUBMISSION_BYTES,
                on_row: Callable[[GradeRow], None] | None = None) -> list[GradeRow]:
    """One row per path, in the order given; ``jobs`` > 1 spreads the files over processes."""
    paths = [str(p) for p in paths]
    rows: list[GradeRow | None] = [None] * len(paths)
    if jobs > 1 and len(paths) > 1:
        _grade_in_pool(lab, paths, rows, jobs, reproduce, max_bytes, on_row)
    missing = [i for i, r in enumerate(rows) if r is None]
    if missing:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            checker = LabChecker(lab)
            for i in missing:
                rows[i] = grade_submission(lab, paths[i], checker=checker, reproduce=reproduce, max_bytes=max_bytes)
                if on_row:
                    on_row(rows[i])
        finally:
            torch.set_num_threads(threads)
    done = [r for r in rows if r is not None]
    _flag_across(done)
    return done


def _grade_in_pool(lab, paths, rows, jobs, reproduce, max_bytes, on_row) -> None:
    """Fill ``rows`` from worker processes; files a broken pool could not grade stay None (graded here)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")
    init = (lab.doc, lab.pictures, lab.base_dir, reproduce, max_bytes)
    try:
        with ProcessPoolExecutor(max_workers=min(jobs, len(paths)), mp_context=ctx, initializer=_worker_init,
                                 initargs=init) as pool:
            futures = {pool.submit(_worker_grade, p): i for i, p in enumerate(paths)}
            for fut in as_completed(futures):
                try:
                    rows[futures[fut]] = fut.result()
                except BrokenProcessPool:
                    continue  # a worker died (out of memory, killed): graded in this process afterwards
                if on_row:
                    on_row(rows[futures[fut]])
    except (BrokenProcessPool, OSError):
        pass


def _flag_across(rows: list[GradeRow]) -> None:
    """Flags only a class shows: the same weights in two submissions, two files from one student."""
    by_weights: dict[str, list[GradeRow]] = {}
    by_student: dict[str, list[GradeRow]] = {}
    for r in rows:
        if r.status not in ("graded", "wrong_lab"):
            continue
        if r.weights_sha256:
            by_weights.setdefault(r.weights_sha256, []).append(r)
        key = (r.student_id or r.student).strip().lower()
        if key:
            by_student.setdefault(key, []).append(r)
    for group in by_weights.values():
        for r in group:
            others = [o for o in group if o is not r]
            if others and r.graded:
                names = ", ".join(f"{o.name} ({Path(o.file).name})" for o in others[:3])
                r.flags.append(Flag("same_weights", f"its weights are identical to those of {names}"))
    for group in by_student.values():
        for r in group:
            others = [o for o in group if o is not r]
            if others and r.graded:
                r.flags.append(Flag("duplicate_student", f"{r.name} also handed in "
                                                         f"{', '.join(Path(o.file).name for o in others[:3])}"))
    for r in rows:
        r.flags.sort(key=lambda f: FLAG_CODES.index(f.code))


# ----------------------------------------------------------------------------- files to grade, CSV
def submission_paths(args: Iterable[str], skip: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """Files named on the command line; a folder stands for every regular file in it (not hidden,
    sorted), so a foreign file dropped in the hand-in folder gets its row too.  ``skip``: outputs."""
    skipped = {Path(s).resolve() for s in skip}
    out: list[Path] = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            out += sorted(c for c in p.iterdir() if c.is_file() and not c.name.startswith(".")
                          and c.resolve() not in skipped)
        else:
            out.append(p)
    return out


def csv_columns(lab: Lab) -> list[str]:
    return ["file", "student", "student_id", "status", *[s.id for s in lab.steps], "total", "max_total", "flags",
            "notes"]


def _number(v: float) -> str:
    return f"{v:g}"


def csv_rows(lab: Lab, rows: list[GradeRow]) -> list[dict[str, str]]:
    out = []
    for r in rows:
        cells = {"file": Path(r.file).name, "student": r.student, "student_id": r.student_id, "status": r.status,
                 "total": _number(r.total), "max_total": _number(lab.max_points),
                 "flags": ";".join(f.code for f in r.flags),
                 "notes": " | ".join([r.message] if r.message else [f.sentence for f in r.flags])}
        for s in lab.steps:
            cells[s.id] = _number(r.points.get(s.id, 0.0)) if r.graded else ""
        out.append(cells)
    return out


def csv_bytes(lab: Lab, rows: list[GradeRow]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=csv_columns(lab), lineterminator="\n")
    w.writeheader()
    w.writerows(csv_rows(lab, rows))
    return buf.getvalue().encode("utf-8")


def write_csv(path: str | os.PathLike, lab: Lab, rows: list[GradeRow]) -> None:
    from engine.atomic import atomic_write_bytes

    atomic_write_bytes(path, csv_bytes(lab, rows))


__all__ = ["Flag", "GradeRow", "grade_class", "grade_submission", "write_csv", "csv_bytes",
           "submission_paths", "REPRODUCE_TOLERANCE", "STATUSES"]
