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
import math
import os
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

from engine.atomic import atomic_write_bytes
from engine.errors import LimitExceeded, ProjectFileError, quote
from engine.graph import GRAPH_FORMAT, Graph
from engine.limits import check_memory, memory_limit, open_regular, read_regular
from engine.safezip import check_member, open_zip, read_member
from engine.versioning import migrate, parse_json_document

if TYPE_CHECKING:  # torch loads when weights are read or written, not to open the editor
    import torch

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
        """A project from its document; every field is checked, and an unknown or malformed one is
        refused with its name (ProjectFileError), so garbage never reaches the run."""
        doc = migrate_project_doc(doc)
        try:
            unknown = sorted(str(k) for k in doc if k not in PROJECT_FIELDS)
            if unknown:
                raise ValueError(f"unknown field {quote(unknown[0])} (a project has {', '.join(PROJECT_FIELDS)})")
            if "graph" not in doc:
                raise ValueError("the field 'graph' is missing")
            return cls(graph=Graph.from_dict(doc["graph"]), data=_data_field(doc.get("data")),
                       training=_training_field(doc.get("training")),
                       name=_text_field(doc, "name", "Untitled"), description=_text_field(doc, "description", ""),
                       normalization=_normalization_field(doc.get("normalization")),
                       history=_history_field(doc.get("history")), weights=weights,
                       checkpoints=dict(checkpoints or {}), run=_run_field(doc.get("run")),
                       series=dict(series or {}), lab=_lab_field(doc.get("lab")))
        except ValueError as exc:
            raise ProjectFileError(f"The project document is invalid: {exc}.") from None


#: the fields of a project document; any other is refused (a newer format raises the version)
PROJECT_FIELDS = ("format", "version", "name", "description", "graph", "data", "training", "normalization",
                  "history", "run", "lab")
MAX_TEXT_CHARS = 100_000


def file_stem(text: str, fallback: str = "untitled", sep: str = "-") -> str:
    """``text`` (a project's or a student's name) as a file name's stem every system takes: letters,
    digits, ``-``, ``_`` and ``.`` kept, each run of anything else (spaces, ``: ? / \\ *``) one ``sep``.
    "Moons: why a hidden layer?" had been offered as a file name as it was."""
    kept = "".join(c if c.isalnum() or c in "-_." else sep for c in text.strip())
    stem = sep.join(part for part in kept.split(sep) if part)[:60].strip(sep + ".")
    return stem or fallback


def _what(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _text_field(doc: dict, key: str, default: str) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str) or len(value) > MAX_TEXT_CHARS:
        raise ValueError(f"the field {key!r} must be text of at most {MAX_TEXT_CHARS:,} characters, "
                         f"got {_what(value)}")
    return value


def _data_field(value: Any) -> dict:
    from engine.data import check_spec
    from engine.errors import DataError

    if value is None or value == {}:
        return {"source": "moons"}
    try:
        return dict(check_spec(value))
    except DataError as exc:
        raise ValueError(f"in the field 'data', {exc.message.rstrip('.')}") from None


def _training_field(value: Any) -> dict:
    """Types and ranges the run cannot live without; the rest is checked when a run starts (TrainConfig)."""
    from engine.errors import TrainingError
    from engine.limits import MAX_BATCH_SIZE, MAX_EPOCHS, MAX_SEED, MAX_THREADS, check_int

    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"the field 'training' must be an object of settings, got {_what(value)}")
    ranges = {"seed": (0, MAX_SEED), "batch_size": (1, MAX_BATCH_SIZE), "epochs": (1, MAX_EPOCHS),
              "num_threads": (0, MAX_THREADS), "step_size": (1, MAX_EPOCHS),
              "plateau_patience": (0, MAX_EPOCHS), "early_stopping_patience": (0, MAX_EPOCHS)}
    for key, (low, high) in ranges.items():
        if value.get(key) is not None:
            try:
                check_int(value[key], key, low, high, TrainingError)
            except TrainingError as exc:
                raise ValueError(f"in the field 'training', {exc.message.rstrip('.')}") from None
    for key, v in value.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"in the field 'training', {quote(key)} must be a finite number, got {v}")
        if isinstance(v, (list, dict)):
            raise ValueError(f"in the field 'training', {quote(key)} must be a single value, got {_what(v)}")
    return dict(value)


def _normalization_field(value: Any) -> dict | None:
    from engine.data import Normalization
    from engine.errors import DataError

    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"mean", "std"}:
        raise ValueError("the field 'normalization' must be null or an object with exactly 'mean' and 'std'")
    try:
        norm = Normalization.from_dict(value)
    except DataError:
        raise ValueError("the field 'normalization' needs lists of finite numbers under 'mean' and 'std'") from None
    if not isinstance(value["mean"], list) or any(v < 0 for v in norm.std):
        raise ValueError("the field 'normalization' needs a list under 'mean' and standard deviations of "
                         "at least 0 under 'std'")
    return norm.to_dict()


def _history_field(value: Any) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"the field 'history' must be a list of per-epoch rows, got {_what(value)}")
    for i, row in enumerate(value, start=1):
        if not isinstance(row, dict):
            raise ValueError(f"row {i} of the field 'history' must be an object of metrics, got {_what(row)}")
        for key, v in row.items():
            if len(key) > 100 or not (v is None or isinstance(v, (int, float)) or
                                      (isinstance(v, str) and len(v) <= 1000)):
                raise ValueError(f"row {i} of the field 'history' has a bad value for {quote(key)}: "
                                 f"{_what(v)}, where a metric is a number")
    return [dict(row) for row in value]


def _run_field(value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"the field 'run' must be an object (the last run's record), got {_what(value)}")
    run = dict(value)
    run.pop("checkpoint_epochs", None)  # derived from the checkpoints themselves
    return run


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
        raise ValueError(f"the field 'lab' must be an object (the lab this project follows), got {_what(value)}")
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
    import torch

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
def project_document(project: Project, base_dir: str | None = None) -> dict:
    """The project's JSON document; with ``base_dir`` (the folder it is saved in), its data paths are
    written relative to that folder, so the project finds its data wherever the folder moves."""
    doc = project.to_dict()
    if base_dir is not None:
        from engine.data import relative_data_paths

        doc["data"] = relative_data_paths(doc["data"], base_dir)
    return doc


def project_bytes(project: Project, base_dir: str | None = None) -> bytes:
    import torch
    from safetensors.torch import save as save_safetensors

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("project.json", json.dumps(project_document(project, base_dir), indent=1))
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
    """Save as a ``.layerlab`` bundle, or as a JSON project document (no weights) for a ``.json`` path.
    Data paths are stored relative to the file's folder (absolute only where no relative form exists)."""
    folder = os.path.dirname(os.path.abspath(path))
    if str(path).lower().endswith(".json"):
        atomic_write_bytes(path, json.dumps(project_document(project, folder), indent=1).encode())
    else:
        atomic_write_bytes(path, project_bytes(project, folder))


# ----------------------------------------------------------------------------- reading
#: a JSON document becomes about this many times its size in Python objects
JSON_EXPANSION = 16
#: project.json (in a bundle or alone) is refused above this size, whatever the memory limit
MAX_JSON_BYTES = 128 << 20
_WEIGHT_MEMBERS = ("weights.safetensors", TIMELINE_MEMBER, SERIES_MEMBER)


def _json_limit() -> int:
    return min(MAX_JSON_BYTES, memory_limit() // JSON_EXPANSION)


def load_project(path: str | os.PathLike) -> Project:
    """Open a ``.layerlab`` bundle, a JSON project or a JSON graph; any problem is one sentence that
    starts with the path (ProjectFileError, or LimitExceeded for a file over the memory limit).

    Only a regular file is opened (never a device or a FIFO), sizes are checked before anything is
    read (``engine/limits.py``), and relative data paths are resolved against the file's folder."""
    p = Path(path)
    try:
        with open_regular(p, ProjectFileError, "project") as f:
            head = f.read(4)
            f.seek(0)
            if head == b"PK\x03\x04":
                project = _load_bundle(f)
            else:
                project = _load_json(read_regular(p, _json_limit(), ProjectFileError, "project"))
    except (ProjectFileError, LimitExceeded) as exc:
        if exc.message.startswith(str(p)):
            raise
        raise type(exc)(f"{p}: {exc.message}") from None
    except OSError as exc:
        raise ProjectFileError(f"{p}: cannot read it ({exc.strerror or exc}).") from None
    from engine.data import resolve_data_paths

    project.data = resolve_data_paths(project.data, str(p.resolve().parent))
    return project


def _load_bundle(f) -> Project:
    with open_zip(f, "project", ProjectFileError) as z:
        names = set(z.namelist())
        if "project.json" not in names:
            raise ProjectFileError("this zip is not a LayerLab project (no project.json inside).")
        json_info = check_member(z, "project.json", _json_limit(), "project")
        sizes = sum(check_member(z, n, what="project").file_size for n in _WEIGHT_MEMBERS if n in names)
        # each member's bytes and the tensors made from them, next to the document's objects
        check_memory(2 * sizes + JSON_EXPANSION * json_info.file_size, "this project's weights and document")
        doc = parse_json_document(read_member(z, "project.json", _json_limit(), "project"), "project.json")
        weights = checkpoints = series = None
        if "weights.safetensors" in names:
            weights = _tensors(read_member(z, "weights.safetensors", what="project"), "weights")
        if TIMELINE_MEMBER in names:
            checkpoints = _timeline_from_tensors(_tensors(read_member(z, TIMELINE_MEMBER, what="project"),
                                                          "timeline"))
        if SERIES_MEMBER in names:
            series = {k: v.numpy() for k, v in _tensors(read_member(z, SERIES_MEMBER, what="project"),
                                                        "run series").items()}
    return Project.from_dict(doc, weights, checkpoints, series)


def _tensors(raw: bytes, what: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load as load_safetensors

    try:
        return load_safetensors(raw)
    except Exception as exc:  # safetensors raises its own SafetensorError types
        raise ProjectFileError(f"the project's {what} cannot be read ({type(exc).__name__}); "
                               "the file is corrupt.") from None


def _load_json(raw: bytes) -> Project:
    if not raw.strip():
        raise ProjectFileError("the file is empty; it holds no project (the copy may have been cut short).")
    try:
        doc = parse_json_document(raw, "project")
    except ProjectFileError as exc:
        if "not valid JSON" not in exc.message:
            raise
        raise ProjectFileError("this is neither a LayerLab bundle nor a JSON document (corrupt or foreign "
                               "file).") from None
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
