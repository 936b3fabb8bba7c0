"""The way back from LayerLab's own exports: the PyTorch package (folder or zip) and the
safetensors file with the graph in its header.

A package's model.py is traced like any other Python model (the graph comes from the code, so a
model.py someone edited comes back as edited), with its weights.safetensors (the exported weights,
or those train.py wrote) and metrics.csv (train.py's history); layerlab.json supplies the rest of
the project: the data spec, the training settings, the normalisation, the layers' positions.
"""
from __future__ import annotations

import csv
import json
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from engine.importers.fx_import import ImportRefused, WeightsWithoutModel

MAX_MEMBER_BYTES = 2 << 30
MANIFEST = "layerlab.json"


def import_package(path: Path, *, weights: str | Path | None = None):
    if path.is_dir():
        return _import_folder(path, weights)
    with tempfile.TemporaryDirectory(prefix="layerlab-import-") as tmp:
        return _import_folder(_extract(path, Path(tmp)), weights)


def _extract(path: Path, into: Path) -> Path:
    """Unzip a package, checking sizes and names first (no absolute paths, no '..')."""
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            for info in infos:
                p = PurePosixPath(info.filename)
                if p.is_absolute() or ".." in p.parts:
                    raise ImportRefused(f"{path.name} holds a file outside its folder ({info.filename}); refused.")
                if info.file_size > MAX_MEMBER_BYTES:
                    raise ImportRefused(f"{path.name}: {info.filename} is implausibly large ({info.file_size} bytes).")
            manifests = [i.filename for i in infos if PurePosixPath(i.filename).name == MANIFEST]
            models = [i.filename for i in infos if PurePosixPath(i.filename).name == "model.py"]
            if not manifests and not models:
                raise ImportRefused(f"{path.name} is not a LayerLab package (it has no model.py).")
            z.extractall(into)
    except zipfile.BadZipFile:
        raise ImportRefused(f"{path.name} is not a valid zip archive.") from None
    top = (manifests or models)[0]
    return into / PurePosixPath(top).parent


def read_manifest(folder: Path) -> dict | None:
    f = folder / MANIFEST
    if not f.exists():
        return None
    try:
        doc = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise ImportRefused(f"{f} is not valid JSON; the package is damaged.") from None
    from engine.export.python_package import PACKAGE_FORMAT, PACKAGE_VERSION

    if not isinstance(doc, dict) or doc.get("format") != PACKAGE_FORMAT:
        raise ImportRefused(f"{f} is not a LayerLab package manifest.")
    if doc.get("version") != PACKAGE_VERSION:
        raise ImportRefused(f"{f} has package version {doc.get('version')!r}; this LayerLab reads version "
                            f"{PACKAGE_VERSION}.", "open it with a newer LayerLab")
    return doc


def read_history(path: Path) -> list[dict]:
    """metrics.csv rows as LayerLab keeps its history: numbers, None for empty cells."""
    if not path.exists():
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out = {}
            for k, v in row.items():
                try:
                    out[k] = None if v in ("", None) else (int(v) if k == "epoch" else float(v))
                except ValueError:
                    out[k] = None
            rows.append(out)
    return rows


def _import_folder(folder: Path, weights):
    from engine.importers import ImportResult, import_python, project_from
    from engine.importers.fx_import import convert
    from engine.importers.python_source import choose_class, instantiate, load_file
    from engine.importers.weights import load_state_dict
    from engine.spec import InferContext

    manifest = read_manifest(folder)
    model_py = folder / "model.py"
    if not model_py.exists():
        raise ImportRefused(f"{folder} has no model.py; it is not a LayerLab package.")
    weights_file = Path(weights) if weights else folder / "weights.safetensors"
    if manifest is None:  # a bare model.py (+ weights): a plain Python import
        return import_python(model_py, weights=weights_file if weights_file.exists() else None)
    meta, doc = manifest.get("metadata") or {}, manifest.get("project") or {}
    module = load_file(model_py)
    cls = choose_class(model_py, module, manifest.get("model_class"))
    model = instantiate(model_py, cls)
    notes = []
    if weights_file.exists():
        try:
            model.load_state_dict(load_state_dict(weights_file))
        except ImportRefused:
            raise
        except Exception as exc:
            raise ImportRefused(f"{weights_file.name} does not fit model.py: "
                                f"{str(exc).strip().splitlines()[0][:200]}") from None
    else:
        notes.append("The package has no weights.safetensors: the graph has freshly initialised weights.")
    input_shape = tuple(meta.get("input_shape") or ())
    ctx = InferContext(input_shape, meta.get("n_outputs"), meta.get("task"))
    imported = convert(model, input_shape, ctx=ctx, source_file=str(model_py))
    positions = {n["name"]: tuple(n["pos"]) for n in (doc.get("graph") or {}).get("nodes", [])
                 if isinstance(n, dict) and "name" in n and "pos" in n}
    history = read_history(folder / "metrics.csv")
    if history:
        notes.append(f"Training history: {len(history)} epochs from metrics.csv.")
    project = project_from(imported, str(doc.get("name") or meta.get("project") or cls.__name__),
                           data=dict(doc.get("data") or {"source": "moons"}), n_outputs=meta.get("n_outputs"),
                           normalization=meta.get("normalization"), training=doc.get("training"),
                           positions=positions, history=history, notes=notes)
    if doc.get("description"):
        project.description = str(doc["description"])
    return ImportResult(project, "package", imported.max_abs_diff, notes)


def import_safetensors(path: Path):
    """A LayerLab safetensors export: the graph from its header (plain JSON), the weights from its tensors."""
    from safetensors import safe_open
    from safetensors.torch import load

    from engine.compile import compile_graph
    from engine.errors import LayerLabError
    from engine.graph import Graph
    from engine.importers import CHOOSE_DATA, ImportResult, data_note, imported_training
    from engine.project import Project
    from engine.run import load_weights
    from engine.importers.weights import read_bounded
    from engine.spec import InferContext

    raw = read_bounded(path)
    try:
        tensors = load(raw)
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except Exception:
        raise ImportRefused(f"{path.name} is not a valid safetensors file.") from None
    if "layerlab.graph" not in header:
        raise WeightsWithoutModel(f"{path.name} holds weights but no LayerLab graph.",
                                  f"import the model's .py file with --weights {path.name}")

    def entry(key, default=None):
        try:
            return json.loads(header[key]) if key in header else default
        except json.JSONDecodeError:
            raise ImportRefused(f"{path.name}: the header entry {key} is not valid JSON.") from None

    try:
        graph = Graph.from_dict(entry("layerlab.graph"))
    except LayerLabError as exc:
        raise ImportRefused(f"{path.name}: {exc}") from None
    ctx = InferContext(tuple(entry("layerlab.input_shape", ())), entry("layerlab.n_outputs"), entry("layerlab.task"))
    load_weights(compile_graph(graph, ctx).module, tensors)  # refuses weights that do not fit the graph
    notes = ["The weights load into the graph exactly (same names and shapes)."]
    data = entry("layerlab.data")
    notes.append(data_note(data) if data else "The file records no data: it opens on 'moons'; "
                 f"choose its own data {CHOOSE_DATA}.")
    project = Project(graph=graph, data=data or {"source": "moons"},
                      name=str(entry("layerlab.project") or path.stem),
                      training=imported_training(entry("layerlab.training"), notes),  # older files have none
                      normalization=entry("layerlab.normalization"), weights=dict(tensors))
    return ImportResult(project, "safetensors", None, notes)


__all__ = ["import_package", "import_safetensors", "read_history", "read_manifest"]
