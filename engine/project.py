"""Project documents and ``*.layerlab`` bundles.

A bundle is a zip holding ``project.json`` (versioned: graph, data spec,
training config, normalisation, the run record) and, once trained,
``weights.safetensors`` (the current weights) and ``timeline.safetensors`` (the weights the
timeline kept, per epoch).  Nothing is pickled.  Saves are atomic (temp file,
fsync, rename) so a crash mid-save never leaves a half-written project.
A plain ``.json`` file may hold a project document or a bare graph document.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from engine.atomic import atomic_write_bytes
from engine.errors import ProjectFileError
from engine.graph import GRAPH_FORMAT, Graph
from engine.versioning import migrate

PROJECT_FORMAT = "layerlab.project"
PROJECT_VERSION = 3
TIMELINE_MEMBER = "timeline.safetensors"
SERIES_MEMBER = "run_series.safetensors"
#: a saved timeline keeps at most this many epochs (the first, the last and evenly spaced ones)...
MAX_SAVED_CHECKPOINTS = 64
#: ... and at most this many bytes of weights
MAX_SAVED_TIMELINE_BYTES = 256 << 20
BUNDLE_SUFFIX = ".layerlab"
DEFAULT_STARTER = "moons-mlp"
MAX_MEMBER_BYTES = 2 << 30  # refuse absurd zip members (zip bombs) before reading them


@dataclass
class Project:
    graph: Graph
    data: dict = field(default_factory=lambda: {"source": "moons"})
    training: dict = field(default_factory=dict)
    name: str = "Untitled"
    description: str = ""
    normalization: dict | None = None
    history: list[dict] = field(default_factory=list)
    weights: dict[str, torch.Tensor] | None = None
    #: the timeline: epoch (0 = before training) -> the weights at the end of that epoch
    checkpoints: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    #: what the last run said and how it ended: {"status": sentence, "outcome": "completed" |
    #: "stopped" | "early_stopping" | "failed" | "interrupted", "failure": {"kind", "node"}, ...}
    run: dict = field(default_factory=dict)
    #: the live views' time series of the last run (loss per snapshot, gradient norms, dead ReLUs,
    #: weight histograms over time), as named float arrays: the GUI's RunHistory saves and restores them
    series: dict[str, Any] = field(default_factory=dict)
    #: the lab this project was made from and the student's progress in it (engine/labs/progress.py):
    #: {"id", "hash", "title", "progress": {"ticked", "hints", "answers"}, "events": [...]}; {} = no lab
    lab: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "format": PROJECT_FORMAT,
            "version": PROJECT_VERSION,
            "name": self.name,
            "description": self.description,
            "graph": self.graph.to_dict(),
            "data": self.data,
            "training": self.training,
            "normalization": self.normalization,
            "history": self.history,
            "run": {**self.run, "checkpoint_epochs": saved_checkpoint_epochs(self.checkpoints)},
            "lab": self.lab,
        }

    @classmethod
    def from_dict(cls, doc: Any, weights: dict | None = None,
                  checkpoints: dict[int, dict] | None = None, series: dict | None = None) -> "Project":
        doc = migrate_project_doc(doc)
        try:
            run = dict(doc.get("run") or {})
            run.pop("checkpoint_epochs", None)  # derived from the checkpoints themselves
            return cls(graph=Graph.from_dict(doc["graph"]), data=dict(doc.get("data") or {"source": "moons"}),
                       training=dict(doc.get("training") or {}), name=str(doc.get("name", "Untitled")),
                       description=str(doc.get("description", "")), normalization=doc.get("normalization"),
                       history=list(doc.get("history") or []), weights=weights,
                       checkpoints=dict(checkpoints or {}), run=run, series=dict(series or {}),
                       lab=_lab_field(doc.get("lab")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProjectFileError(f"The project document is invalid: missing or bad field {exc}.") from None


def _v1_to_v2(doc: dict) -> dict:
    """Version 2 adds the run record (``run``) and the saved timeline; a v1 file has neither."""
    return {**doc, "run": {}}


def _v2_to_v3(doc: dict) -> dict:
    """Version 3 adds the lab record (``lab``); a v2 project was made from no lab."""
    return {**doc, "lab": {}}


def _lab_field(value: Any) -> dict:
    """The lab record must be an object; what is inside it is checked where it is read (engine/labs)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError("'lab' (an object)")
    return dict(value)


PROJECT_MIGRATIONS: dict[int, Any] = {1: _v1_to_v2, 2: _v2_to_v3}


def saved_checkpoint_epochs(checkpoints: dict[int, dict], max_count: int = MAX_SAVED_CHECKPOINTS,
                            max_bytes: int = MAX_SAVED_TIMELINE_BYTES) -> list[int]:
    """Which timeline epochs a save keeps: all when they fit, else the first, the last and evenly
    spaced ones in between, as many as ``max_count`` and ``max_bytes`` allow."""
    epochs = sorted(checkpoints)
    if not epochs:
        return []
    per = max(1, sum(int(v.numel()) * v.element_size() for v in checkpoints[epochs[-1]].values()))
    keep = max(1, min(max_count, max_bytes // per, len(epochs)))
    if keep >= len(epochs):
        return epochs
    if keep == 1:
        return [epochs[-1]]
    picks = {epochs[round(i * (len(epochs) - 1) / (keep - 1))] for i in range(keep)}
    return sorted(picks)


def _timeline_tensors(checkpoints: dict[int, dict]) -> dict[str, torch.Tensor]:
    out = {}
    for epoch in saved_checkpoint_epochs(checkpoints):
        for k, v in checkpoints[epoch].items():
            out[f"{epoch}/{k}"] = torch.as_tensor(v).detach().to("cpu").contiguous()
    return out


def _timeline_from_tensors(tensors: dict[str, torch.Tensor]) -> dict[int, dict[str, torch.Tensor]]:
    out: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        epoch, sep, name = key.partition("/")
        if not sep or not epoch.isdigit() or not name:
            raise ProjectFileError(f"the project's timeline has a malformed entry {key[:40]!r}.")
        out.setdefault(int(epoch), {})[name] = v
    return out


def migrate_project_doc(doc: Any) -> dict:
    return migrate(doc, PROJECT_FORMAT, PROJECT_VERSION, PROJECT_MIGRATIONS, "project")


# ----------------------------------------------------------------------------- writing
def project_bytes(project: Project) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("project.json", json.dumps(project.to_dict(), indent=1))
        if project.weights:
            tensors = {k: v.detach().to("cpu").contiguous() for k, v in project.weights.items()}
            z.writestr("weights.safetensors", save_safetensors(tensors))
        if project.checkpoints:
            z.writestr(TIMELINE_MEMBER, save_safetensors(_timeline_tensors(project.checkpoints)))
        if project.series:
            z.writestr(SERIES_MEMBER, save_safetensors({k: torch.as_tensor(v).contiguous()
                                                        for k, v in project.series.items()}))
    return buf.getvalue()


def save_project(path: str | os.PathLike, project: Project) -> None:
    """Save as a ``.layerlab`` bundle, or as a JSON project document (no weights) for a ``.json`` path."""
    if str(path).lower().endswith(".json"):
        atomic_write_bytes(path, json.dumps(project.to_dict(), indent=1).encode())
    else:
        atomic_write_bytes(path, project_bytes(project))


# ----------------------------------------------------------------------------- reading
def _read_member(z: zipfile.ZipFile, name: str) -> bytes:
    info = z.getinfo(name)
    if info.file_size > MAX_MEMBER_BYTES:
        raise ProjectFileError(f"'{name}' inside the project is implausibly large ({info.file_size} bytes).")
    return z.read(name)


def load_project(path: str | os.PathLike) -> Project:
    """Open a ``.layerlab`` bundle, a JSON project or a JSON graph; any problem is one ProjectFileError sentence."""
    p = Path(path)
    if not p.exists():
        raise ProjectFileError(f"{p}: no such file.")
    if p.is_dir():
        raise ProjectFileError(f"{p} is a folder, not a LayerLab project.")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ProjectFileError(f"{p}: cannot read it ({exc.strerror}).") from None
    try:
        if raw[:4] == b"PK\x03\x04":
            return _load_bundle(raw)
        return _load_json(raw)
    except ProjectFileError as exc:
        raise ProjectFileError(f"{p}: {exc.message}") from None


def _load_bundle(raw: bytes) -> Project:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            names = set(z.namelist())
            if "project.json" not in names:
                raise ProjectFileError("this zip is not a LayerLab project (no project.json inside).")
            doc = json.loads(_read_member(z, "project.json").decode("utf-8"))
            weights = None
            if "weights.safetensors" in names:
                weights = load_safetensors(_read_member(z, "weights.safetensors"))
            checkpoints = None
            if TIMELINE_MEMBER in names:
                checkpoints = _timeline_from_tensors(load_safetensors(_read_member(z, TIMELINE_MEMBER)))
            series = None
            if SERIES_MEMBER in names:
                series = {k: v.numpy() for k, v in load_safetensors(_read_member(z, SERIES_MEMBER)).items()}
    except ProjectFileError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError):
        raise ProjectFileError("the project file is corrupt or truncated (its zip archive cannot be read).") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ProjectFileError("the project's project.json is not valid JSON (the file is corrupt).") from None
    except Exception as exc:  # safetensors raises its own SafetensorError types
        raise ProjectFileError(f"the project's weights cannot be read ({type(exc).__name__}); the file is corrupt.") from None
    return Project.from_dict(doc, weights, checkpoints, series)


def _load_json(raw: bytes) -> Project:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ProjectFileError("this is neither a LayerLab bundle nor a JSON document (corrupt or foreign file).") from None
    if isinstance(doc, dict) and doc.get("format") == GRAPH_FORMAT:
        return Project(graph=Graph.from_dict(doc))
    return Project.from_dict(doc)


# ----------------------------------------------------------------------------- starters
def _starters_dir():
    return resources.files("resources").joinpath("starters")


def list_starters() -> list[dict]:
    """The bundled starter projects: name, title and description, in file-name order."""
    out = []
    for entry in sorted(_starters_dir().iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            doc = json.loads(entry.read_text(encoding="utf-8"))
            out.append({"name": entry.name[:-5], "title": doc.get("name", entry.name),
                        "description": doc.get("description", ""), "data": doc.get("data", {}).get("source", "?")})
    return out


def load_starter(name: str = DEFAULT_STARTER) -> Project:
    entry = _starters_dir().joinpath(f"{name}.json")
    if not entry.is_file():
        known = ", ".join(s["name"] for s in list_starters())
        raise ProjectFileError(f"No bundled starter named '{name}'; available: {known}.")
    return _load_json(entry.read_bytes())
