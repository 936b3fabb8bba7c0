"""The lab document (``format: "layerlab.lab"``) and lab files: a plain ``.json`` lab, or a
``.layerlab-lab`` zip bundle holding ``lab.json`` and the pictures its markdown shows
(``pictures/<name>.png|jpg|gif``).  docs/LABS.md describes every field.

    lab = load_lab("xor.json")            # or load_bundled_lab("xor-hidden-layer"), resolve_lab(name)
    lab.steps[0].goal.check(context)      # engine/labs/check.py does this for every step
    lab.content_hash                      # sha256 of the document and its pictures

A lab never contains code and loading one runs none: it is JSON read with ``json.loads`` and
pictures kept as bytes (their first bytes must say PNG, JPEG or GIF).  A file's size is checked
before it is read, a bundle member's before it is inflated.  Every field is checked on load and a
bad one is refused with one sentence that names the step and field (``LabFormatError``).
"""
from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import io
import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from engine.errors import LayerLabError, ProjectFileError
from engine.labs.goals import Goal, LabFormatError, goal_from_json, questions
from engine.labs.zipread import CORRUPT, ZipMemberError, looks_truncated, read_member
from engine.versioning import migrate

LAB_FORMAT = "layerlab.lab"
LAB_VERSION = 1
#: version n -> n + 1 (none yet: version 1 is the first)
LAB_MIGRATIONS: dict[int, Any] = {}
BUNDLE_SUFFIX = ".layerlab-lab"
LAB_MEMBER = "lab.json"
PICTURES = "pictures/"
MAX_LAB_FILE_BYTES = 64 << 20
MAX_LAB_JSON_BYTES = 16 << 20
MAX_PICTURE_BYTES = 8 << 20
MAX_PICTURES = 200
MAX_STEPS = 100
MAX_HINTS = 20
MAX_MARKDOWN = 500_000
LAB_FIELDS = ("format", "version", "id", "title", "description", "author", "introduction", "data", "starter",
              "training", "locks", "steps")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_PICTURE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_MAGIC = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpeg", b"GIF87a": "gif", b"GIF89a": "gif"}
_MD_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)")
_HTML_IMAGE = re.compile(r"<img\b[^>]*?\bsrc\s*=\s*[\"']([^\"']+)", re.IGNORECASE)
_DATA_URI = re.compile(r"^data:image/(png|jpeg|gif);base64,([A-Za-z0-9+/=\s]+)$")
LOCK_MODES = ("fixed", "hidden")


class LabFileError(ProjectFileError):
    """A lab file cannot be read (missing, oversized, corrupt, truncated, foreign)."""


# ----------------------------------------------------------------------------- the lab value
@dataclass(frozen=True)
class Step:
    id: str
    title: str
    instructions: str  # markdown
    hints: tuple[str, ...]  # markdown, revealed one by one on request
    goal: Goal
    points: float = 1.0

    @property
    def training(self) -> bool:
        return self.goal.training


@dataclass(frozen=True)
class NodeLock:
    node: str  # the starter graph's node id
    delete: bool = True  # the node cannot be deleted
    edit: bool = True  # its parameters and name cannot be changed
    reason: str = "This layer is part of the lab's setup."


@dataclass(frozen=True)
class Locks:
    nodes: dict[str, NodeLock] = field(default_factory=dict)  # node id -> lock
    palette: tuple[str, ...] | None = None  # the layer types a student may add (None: all)
    data: bool = True  # the data spec (source, split, seeds) is the lab's and cannot change
    settings: dict[str, str] = field(default_factory=dict)  # training setting -> "fixed" | "hidden"


@dataclass(frozen=True)
class Lab:
    id: str
    title: str
    description: str
    introduction: str  # markdown
    data: dict  # complete data spec: every key explicit, the split and seeds fixed
    starter: dict  # graph document
    training: dict  # training settings (a TrainConfig dict)
    locks: Locks
    steps: tuple[Step, ...]
    doc: dict  # the document as loaded (migrated); what to_dict returns and the hash covers
    pictures: dict[str, bytes] = field(default_factory=dict)  # "pictures/<name>" -> bytes
    content_hash: str = ""
    base_dir: str | None = None  # the folder relative data paths are taken from
    author: str = ""

    @property
    def max_points(self) -> float:
        return sum(s.points for s in self.steps)

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def to_dict(self) -> dict:
        return copy.deepcopy(self.doc)

    def starter_graph(self):
        from engine.graph import Graph

        return Graph.from_dict(self.starter)


# ----------------------------------------------------------------------------- building from a document
def content_hash(doc: dict, pictures: dict[str, bytes]) -> str:
    h = hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    for name in sorted(pictures):
        h.update(b"\0" + name.encode("utf-8") + b"\0" + hashlib.sha256(pictures[name]).digest())
    return h.hexdigest()


def _text(doc: dict, key: str, where: str, default: str | None = None, limit: int = MAX_MARKDOWN) -> str:
    value = doc.get(key, default)
    if value is None:
        raise LabFormatError(f"{where}: the field '{key}' is missing.")
    if not isinstance(value, str) or len(value) > limit:
        raise LabFormatError(f"{where}: '{key}' must be text of at most {limit:,} characters.")
    return value


def _check_markdown(text: str, where: str, pictures: dict[str, bytes]) -> None:
    """Pictures come from the lab itself (data: URIs or the bundle), never from the internet."""
    for url in _MD_IMAGE.findall(text) + _HTML_IMAGE.findall(text):
        if url.startswith("data:"):
            m = _DATA_URI.match(url)
            if m is None:
                raise LabFormatError(f"{where}: a picture given as a data: URI must be "
                                     "'data:image/png|jpeg|gif;base64,...'.")
            try:
                raw = base64.b64decode(m.group(2), validate=False)
            except (binascii.Error, ValueError):
                raise LabFormatError(f"{where}: a data: picture is not valid base64.") from None
            if _picture_kind(raw) is None:
                raise LabFormatError(f"{where}: a data: picture is not a PNG, JPEG or GIF image.")
        elif url.startswith(PICTURES):
            if url not in pictures:
                raise LabFormatError(f"{where}: the picture '{url}' is not in the lab bundle.")
        else:
            raise LabFormatError(f"{where}: the picture '{url[:80]}' is outside the lab; put it in the lab "
                                 f"bundle under {PICTURES} or inline it as a data: URI.")


def _picture_kind(raw: bytes) -> str | None:
    return next((kind for magic, kind in _MAGIC.items() if raw.startswith(magic)), None)


def _data_spec(value: Any, where: str) -> tuple[dict, str | None]:
    """The complete data spec (every key explicit) and its task when the source says (generators, bundled)."""
    from engine.data import DATASET_SOURCES, default_spec
    from engine.data.bundled import BUNDLED
    from engine.data.generators import GENERATORS

    if not isinstance(value, dict) or value.get("source") not in DATASET_SOURCES:
        raise LabFormatError(f"{where}: 'data' must be a data spec with a known 'source' "
                             f"({', '.join(DATASET_SOURCES)}).")
    spec = {**default_spec(value["source"]), **value}
    fixed_test = spec["source"] == "idx" and spec.get("test_images")
    if not fixed_test and not (isinstance(spec.get("test_fraction"), (int, float)) and spec["test_fraction"] > 0):
        raise LabFormatError(f"{where}: the lab's data needs a fixed test split: set 'test_fraction' "
                             "(e.g. 0.2) so goals are measured on data the student never trains on.")
    known = GENERATORS.get(spec["source"]) or BUNDLED.get(spec["source"])
    return spec, getattr(known, "task", None)


def _locks(value: Any, where: str, graph) -> Locks:
    from engine.layers import REGISTRY
    from engine.train_config import TrainConfig

    value = {} if value is None else value
    if not isinstance(value, dict):
        raise LabFormatError(f"{where}: 'locks' must be an object.")
    unknown = sorted(set(value) - {"nodes", "palette", "data", "settings"})
    if unknown:
        raise LabFormatError(f"{where}: 'locks' has no field {unknown[0]!r} (it has nodes, palette, data, settings).")
    nodes: dict[str, NodeLock] = {}
    for i, entry in enumerate(value.get("nodes") or []):
        at = f"{where}, node lock {i + 1}"
        if not isinstance(entry, dict) or not isinstance(entry.get("node"), str):
            raise LabFormatError(f"{at}: give the starter node's id or name as 'node'.")
        extra = sorted(set(entry) - {"node", "delete", "edit", "reason"})
        if extra:
            raise LabFormatError(f"{at}: no field {extra[0]!r} (a node lock has node, delete, edit, reason).")
        ref = entry["node"]
        node = graph.node_by_name(ref) or (graph.node(ref) if graph.has_node(ref) else None)
        if node is None:
            raise LabFormatError(f"{at}: the starter graph has no node {entry['node']!r}.")
        flags = {k: entry.get(k, True) for k in ("delete", "edit")}
        if not all(isinstance(v, bool) for v in flags.values()):
            raise LabFormatError(f"{at}: 'delete' and 'edit' must be true or false.")
        reason = entry.get("reason", NodeLock.reason)
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 1000:
            raise LabFormatError(f"{at}: 'reason' must be a sentence (at most 1,000 characters).")
        nodes[node.id] = NodeLock(node.id, flags["delete"], flags["edit"], reason)
    palette = value.get("palette")
    if palette is not None:
        if not isinstance(palette, list) or not all(isinstance(t, str) for t in palette):
            raise LabFormatError(f"{where}: 'locks.palette' must be a list of layer types.")
        bad = [t for t in palette if t not in REGISTRY]
        if bad:
            raise LabFormatError(f"{where}: 'locks.palette' names an unknown layer type {bad[0]!r}.")
        palette = tuple(palette)
    data = value.get("data", True)
    if not isinstance(data, bool):
        raise LabFormatError(f"{where}: 'locks.data' must be true or false.")
    settings = value.get("settings") or {}
    known = {f.name for f in TrainConfig.__dataclass_fields__.values()}
    if not isinstance(settings, dict):
        raise LabFormatError(f"{where}: 'locks.settings' must map setting names to \"fixed\" or \"hidden\".")
    for name, mode in settings.items():
        if name not in known:
            raise LabFormatError(f"{where}: 'locks.settings' names an unknown training setting {name!r}.")
        if mode not in LOCK_MODES:
            raise LabFormatError(f"{where}: the lock of setting {name!r} must be \"fixed\" or \"hidden\", "
                                 f"got {mode!r}.")
    return Locks(nodes, palette, data, dict(settings))


def _steps(value: Any, where: str, pictures: dict[str, bytes], task: str | None) -> tuple[Step, ...]:
    from engine.labs.goals import MetricGoal
    from engine.labs.metrics import METRICS

    if not isinstance(value, list) or not value or len(value) > MAX_STEPS:
        raise LabFormatError(f"{where}: 'steps' must be a list of 1 to {MAX_STEPS} steps.")
    steps, ids, answer_ids = [], set(), set()
    for i, doc in enumerate(value):
        at = f"{where}, step {i + 1}"
        if not isinstance(doc, dict):
            raise LabFormatError(f"{at}: a step must be an object.")
        extra = sorted(set(doc) - {"id", "title", "instructions", "hints", "goal", "points"})
        if extra:
            raise LabFormatError(f"{at}: no field {extra[0]!r} (a step has id, title, instructions, hints, goal, "
                                 "points).")
        sid = doc.get("id")
        if not isinstance(sid, str) or not _ID.match(sid):
            raise LabFormatError(f"{at}: 'id' must be short lower-case text like \"add-hidden-layer\".")
        if sid in ids:
            raise LabFormatError(f"{at}: the id {sid!r} is used by two steps.")
        ids.add(sid)
        at = f"{where}, step '{sid}'"
        title = _text(doc, "title", at, limit=500)
        instructions = _text(doc, "instructions", at, default="")
        hints = doc.get("hints") or []
        if not isinstance(hints, list) or len(hints) > MAX_HINTS or not all(isinstance(h, str) for h in hints):
            raise LabFormatError(f"{at}: 'hints' must be a list of at most {MAX_HINTS} texts.")
        for text in [instructions, *hints]:
            _check_markdown(text, at, pictures)
        points = doc.get("points", 1)
        if isinstance(points, bool) or not isinstance(points, (int, float)) or not 0 <= points <= 1000:
            raise LabFormatError(f"{at}: 'points' must be a number from 0 to 1000.")
        if "goal" not in doc:
            raise LabFormatError(f"{at}: the step needs a 'goal'.")
        goal = goal_from_json(doc["goal"], at)
        for q in questions(goal):
            if q.id is None:
                q.id = sid
            if q.id in answer_ids:
                raise LabFormatError(f"{at}: two questions share the answer id {q.id!r}; give each an 'id'.")
            answer_ids.add(q.id)
        for g in goal.walk():
            if isinstance(g, MetricGoal) and task is not None and METRICS[g.metric][0] not in (None, task):
                raise LabFormatError(f"{at}: the metric '{g.metric}' does not apply to the lab's {task} data.")
        steps.append(Step(sid, title, instructions, tuple(hints), goal, float(points)))
    return tuple(steps)


def lab_warnings(lab: Lab) -> list[str]:
    """What a valid lab may still get wrong, for its author: a step whose metric must be reached
    within N epochs while the lab's own settings train for more (a student who presses Train as
    the lab opens misses it, and cannot meet it at all where the lab fixes the epochs)."""
    from engine.labs.goals import MetricGoal
    from engine.train_config import TrainConfig

    epochs = TrainConfig.from_dict(lab.training).epochs
    fixed = lab.locks.settings.get("epochs") == "fixed"
    found = []
    for step in lab.steps:
        for goal in step.goal.walk():
            if isinstance(goal, MetricGoal) and goal.within_epochs is not None and goal.within_epochs < epochs:
                found.append(f"Step '{step.title}' asks for its {goal.metric} within {goal.within_epochs} epochs, "
                             f"but the lab trains for {epochs}: "
                             + ("the lab fixes the epochs, so no student can meet it; lower the lab's Epochs."
                                if fixed else "a student who just presses Train misses it; lower the lab's "
                                "Epochs, or tell the student to."))
    return found


def lab_from_dict(doc: Any, pictures: dict[str, bytes] | None = None, base_dir: str | None = None) -> Lab:
    """A Lab from its document (migrated to the current version); LabFormatError for a bad field."""
    from engine.graph import Graph
    from engine.train_config import TrainConfig

    pictures = dict(pictures or {})
    try:
        doc = migrate(copy.deepcopy(doc), LAB_FORMAT, LAB_VERSION, LAB_MIGRATIONS, "lab")
    except ProjectFileError as exc:  # foreign, a bad version, or newer than this LayerLab
        raise LabFormatError(exc.message) from None
    unknown = sorted(str(k) for k in doc if k not in LAB_FIELDS)
    if unknown:
        raise LabFormatError(f"The lab has an unknown field {unknown[0]!r} (a lab has {', '.join(LAB_FIELDS)}).")
    lab_id = doc.get("id")
    if not isinstance(lab_id, str) or not _ID.match(lab_id):
        raise LabFormatError("The lab's 'id' must be short lower-case text like \"xor-hidden-layer\"; it names "
                             "the lab in projects and submissions and must never change.")
    where = f"Lab '{lab_id}'"
    title = _text(doc, "title", where, limit=500)
    introduction = _text(doc, "introduction", where, default="")
    _check_markdown(introduction, where, pictures)
    data, task = _data_spec(doc.get("data"), where)
    try:
        graph = Graph.from_dict(doc.get("starter"))
    except ProjectFileError as exc:
        raise LabFormatError(f"{where}: the starter graph is invalid: {exc.message}") from None
    training = doc.get("training") or {}
    try:
        TrainConfig.from_dict(training)
    except LayerLabError as exc:
        raise LabFormatError(f"{where}: bad training settings: {exc}") from None
    locks = _locks(doc.get("locks"), where, graph)
    steps = _steps(doc.get("steps"), where, pictures, task)
    return Lab(id=lab_id, title=title, description=_text(doc, "description", where, default="", limit=2000),
               introduction=introduction, data=data, starter=graph.to_dict(), training=dict(training), locks=locks,
               steps=steps, doc=doc, pictures=pictures, content_hash=content_hash(doc, pictures),
               base_dir=base_dir, author=_text(doc, "author", where, default="", limit=500))


# ----------------------------------------------------------------------------- files
def _check_picture_member(name: str, raw: bytes) -> None:
    if not _PICTURE_NAME.match(name[len(PICTURES):]):
        raise LabFileError(f"the bundle member '{name[:80]}' has a name LayerLab does not accept for a picture.")
    if _picture_kind(raw) is None:
        raise LabFileError(f"the bundle member '{name[:80]}' is not a PNG, JPEG or GIF picture.")


def lab_from_bytes(raw: bytes, base_dir: str | None = None) -> Lab:
    """A lab from a file's bytes: a JSON document or a ``.layerlab-lab`` bundle."""
    if raw[:4] == b"PK\x03\x04":
        return _lab_from_bundle(raw, base_dir)
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise LabFileError("this is neither a LayerLab lab (JSON) nor a lab bundle (a corrupt or foreign "
                           "file).") from None
    return lab_from_dict(doc, base_dir=base_dir)


def _lab_from_bundle(raw: bytes, base_dir: str | None) -> Lab:
    if looks_truncated(raw):
        raise LabFileError("the lab bundle is truncated (its end is missing); copy it again.")
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            names = z.namelist()
            if LAB_MEMBER not in names:
                raise LabFileError(f"this zip is not a lab bundle (no {LAB_MEMBER} inside).")
            extra = [n for n in names if n != LAB_MEMBER and not n.startswith(PICTURES)]
            if extra:
                raise LabFileError(f"the lab bundle has an unexpected member '{extra[0][:80]}'; a bundle holds "
                                   f"{LAB_MEMBER} and pictures under {PICTURES} only.")
            if len(names) > MAX_PICTURES + 1:
                raise LabFileError(f"the lab bundle has {len(names)} members; at most {MAX_PICTURES} pictures.")
            doc_bytes = read_member(z, LAB_MEMBER, MAX_LAB_JSON_BYTES)
            pictures = {}
            for name in names:
                if name.startswith(PICTURES) and not name.endswith("/"):
                    pictures[name] = read_member(z, name, MAX_PICTURE_BYTES)
                    _check_picture_member(name, pictures[name])
    except ZipMemberError as exc:
        raise LabFileError(f"the lab bundle cannot be read: {exc.message}") from None
    except LabFileError:
        raise
    except CORRUPT:
        raise LabFileError("the lab bundle is corrupt (its zip archive cannot be read).") from None
    try:
        doc = json.loads(doc_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise LabFileError(f"the lab bundle's {LAB_MEMBER} is not valid JSON (the file is corrupt).") from None
    return lab_from_dict(doc, pictures, base_dir)


def load_lab(path: str | os.PathLike) -> Lab:
    """Open a ``.json`` lab or a ``.layerlab-lab`` bundle; any problem is one sentence naming the file."""
    p = Path(path)
    try:
        if not p.exists():
            raise LabFileError("no such file.")
        if not p.is_file():
            raise LabFileError("not a file (a lab is a .json file or a .layerlab-lab bundle).")
        size = p.stat().st_size
        if size > MAX_LAB_FILE_BYTES:
            raise LabFileError(f"the file is {size:,} bytes; LayerLab reads labs of at most {MAX_LAB_FILE_BYTES:,}.")
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise LabFileError(f"cannot read it ({exc.strerror}).") from None
        if len(raw) > MAX_LAB_FILE_BYTES:  # it grew since the size check
            raise LabFileError("the file is larger than LayerLab reads for a lab.")
        return lab_from_bytes(raw, base_dir=str(p.resolve().parent))
    except ProjectFileError as exc:
        raise LabFileError(f"{p}: {exc.message}") from None


def lab_bytes(lab: Lab) -> bytes:
    """The lab as a file: JSON without pictures, else a bundle."""
    text = json.dumps(lab.doc, indent=1, ensure_ascii=False)
    if not lab.pictures:
        return text.encode("utf-8")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(LAB_MEMBER, text)
        for name, raw in sorted(lab.pictures.items()):
            z.writestr(name, raw)
    return buf.getvalue()


def save_lab(path: str | os.PathLike, lab: Lab) -> None:
    from engine.atomic import atomic_write_bytes

    if lab.pictures and not str(path).endswith(BUNDLE_SUFFIX):
        raise LabFileError(f"{path}: a lab with pictures is saved as a {BUNDLE_SUFFIX} bundle.")
    atomic_write_bytes(path, lab_bytes(lab))


def markdown_resources(lab: Lab) -> dict[str, bytes]:
    """Every picture the lab's markdown shows, by the URL written in it (a ``pictures/`` name or a
    data: URI), as image bytes: what the GUI hands to its text document before rendering."""
    out: dict[str, bytes] = {}
    texts = [lab.introduction] + [t for s in lab.steps for t in (s.instructions, *s.hints)]
    for text in texts:
        for url in _MD_IMAGE.findall(text) + _HTML_IMAGE.findall(text):
            if url.startswith(PICTURES):
                out[url] = lab.pictures[url]
            elif url.startswith("data:") and (m := _DATA_URI.match(url)):
                out[url] = base64.b64decode(m.group(2))
    return out


# ----------------------------------------------------------------------------- bundled labs
def _labs_dir():
    return resources.files("resources").joinpath("labs")


def _bundled_entries():
    for entry in sorted(_labs_dir().iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".json", BUNDLE_SUFFIX)):
            yield entry, lab_from_bytes(entry.read_bytes())


def list_labs() -> list[dict]:
    """The bundled labs, in file-name order (the files are numbered): id, title, description, data, steps, points."""
    return [{"id": lab.id, "title": lab.title, "description": lab.description, "data": lab.data["source"],
             "steps": len(lab.steps), "points": lab.max_points, "file": entry.name}
            for entry, lab in _bundled_entries()]


def load_bundled_lab(lab_id: str) -> Lab:
    found = list(_bundled_entries())
    for entry, lab in found:
        if lab.id == lab_id:
            return lab
    known = ", ".join(lab.id for _, lab in found)
    raise LabFileError(f"No bundled lab named '{lab_id}'; the bundled labs are: {known}.")


def resolve_lab(name: str) -> Lab:
    """A lab file's path, or the id of a bundled lab."""
    p = Path(name)
    if p.exists() or p.suffix in (".json", BUNDLE_SUFFIX):
        return load_lab(p)
    return load_bundled_lab(name)
