"""What the lab tests share: the bundled labs, their reference solutions, and training a project
headless on its lab's data the way a student's run does (one thread), each at most once per session."""
from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

from engine.labs.check import LabChecker
from engine.labs.format import Lab, list_labs, load_bundled_lab
from engine.labs.progress import new_project_from_lab
from engine.project import Project

SOLUTIONS = Path(__file__).resolve().parent / "labs"
LAB_IDS = [info["id"] for info in list_labs()]


@lru_cache(maxsize=None)
def lab(lab_id: str) -> Lab:
    return load_bundled_lab(lab_id)


@lru_cache(maxsize=None)
def checker(lab_id: str) -> LabChecker:
    return LabChecker(lab(lab_id))


def solution(lab_id: str) -> Project:
    """The reference solution, untrained (a fresh copy each call)."""
    doc = json.loads((SOLUTIONS / lab_id / "solution.json").read_text(encoding="utf-8"))
    return Project.from_dict(doc)


def train(project: Project, lab_id: str, **overrides) -> Project:
    """Train ``project`` from its seed on the lab's data, as the CLI and the GUI do, and record the
    run in it (weights, history, normalisation, run record).  Returns the project."""
    import torch

    from engine.run import execute, prepare_run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        prepared = prepare_run(project, dataset=checker(lab_id).dataset,
                               overrides={"device": "cpu", **overrides}, use_project_weights=False)
        trainer, finished = execute(prepared)
    finally:
        torch.set_num_threads(threads)
    project.training = {**project.training, **{k: v for k, v in overrides.items() if k != "device"}}
    project.weights = {k: v.detach().cpu().clone() for k, v in prepared.compiled.module.state_dict().items()}
    project.history = [dict(r) for r in trainer.history]
    ds = prepared.dataset
    project.normalization = ds.normalization.to_dict() if ds.normalization else None
    project.run = {"outcome": finished.reason, "steps_per_epoch": trainer.steps_per_epoch,
                   "weights_epoch": len(trainer.history)}
    return project


@lru_cache(maxsize=None)
def _trained_solution(lab_id: str) -> Project:
    return train(solution(lab_id), lab_id)


def trained_solution(lab_id: str) -> Project:
    """The reference solution trained once per session (a deep copy each call, so tests may edit it)."""
    return copy.deepcopy(_trained_solution(lab_id))


@lru_cache(maxsize=None)
def _trained_starter(lab_id: str) -> tuple[Project, str]:
    """The lab's starter trained with the lab's settings; a starter that cannot be trained (a graph
    with problems, as in 'looking-inside') stays untrained, with the reason."""
    from engine.errors import LayerLabError

    project = new_project_from_lab(lab(lab_id))
    try:
        return train(project, lab_id), ""
    except LayerLabError as exc:
        return project, str(exc)


def trained_starter(lab_id: str) -> tuple[Project, str]:
    project, why = _trained_starter(lab_id)
    return copy.deepcopy(project), why
