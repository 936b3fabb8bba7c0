"""Datasets for the engine: generators, bundled real datasets and file importers.

A *data spec* is a plain JSON-able dict stored in project files, e.g.
``{"source": "moons", "n_samples": 1000, "noise": 0.2, "seed": 0}`` or
``{"source": "csv", "path": "data.csv", "target": "label"}``.  Missing keys get
defaults (see ``default_spec``); every source also understands the split keys
``val_fraction``, ``test_fraction``, ``split_seed``, ``stratify`` and
``standardize``.  ``load_dataset`` turns a spec into an in-memory ``Dataset``.
"""
from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Mapping
from typing import Any, Callable

from engine.errors import DataError, LayerLabError, quote
from engine.data.bundled import BUNDLED, load_bundled
from engine.data.csv_import import DEFAULTS as _CSV_DEFAULTS, load_csv
from engine.data.dataset import Dataset, Normalization, SplitArrays, split_arrays, split_indices
from engine.data.generators import GENERATORS, generate
from engine.data.idx import DEFAULTS as _IDX_DEFAULTS, load_idx, read_idx
from engine.data.image_folder import DEFAULTS as _IMAGE_DEFAULTS, load_image_folder
from engine.data.npz import DEFAULTS as _NPZ_DEFAULTS, load_npz
from engine.data.params import SPLIT_DEFAULTS

__all__ = [
    "Dataset", "Normalization", "load_dataset", "list_builtin_datasets", "DATASET_SOURCES",
    "default_spec", "split_indices", "read_idx", "check_spec", "PATH_KEYS", "resolve_data_paths",
    "relative_data_paths", "missing_data_files", "load_raw", "load_arrays", "SplitArrays",
]

# source -> (default keys, loader(spec, base_dir) -> dict of arrays for build_dataset)
_IMPORTERS: dict[str, tuple[dict[str, Any], Callable[..., dict]]] = {
    "csv": (_CSV_DEFAULTS, load_csv),
    "image_folder": (_IMAGE_DEFAULTS, load_image_folder),
    "idx": (_IDX_DEFAULTS, load_idx),
    "npz": (_NPZ_DEFAULTS, load_npz),
}

DATASET_SOURCES: tuple[str, ...] = tuple(GENERATORS) + tuple(BUNDLED) + tuple(_IMPORTERS)


#: the keys of each file source that name files or folders (resolved against the project's folder)
PATH_KEYS: dict[str, tuple[str, ...]] = {"csv": ("path",), "npz": ("path",), "image_folder": ("path",),
                                         "idx": ("images", "labels", "test_images", "test_labels")}
#: keys every source accepts: a display name, and the task rule's override
COMMON_KEYS = ("name", "task")
TASK_CHOICES = ("auto", "classification", "regression")


def _unknown_source(source: Any) -> DataError:
    return DataError(f"Unknown data source {quote(source)}; the known sources are: {', '.join(DATASET_SOURCES)}.")


def _fixed_task(source: str) -> str | None:
    if source in GENERATORS:
        return GENERATORS[source].task
    if source in BUNDLED:
        return BUNDLED[source].task
    return "classification" if source == "image_folder" else None


def check_spec(spec: Any) -> Mapping:
    """Refuse a data spec with an unknown source, an unknown key, a path that is not text, or a task its
    source cannot have, with one sentence naming the key; values are checked by the loaders."""
    if not isinstance(spec, Mapping):
        raise DataError(f"A data spec must be an object with a 'source' key, got {type(spec).__name__}.")
    source = spec.get("source")
    if not isinstance(source, str) or source not in DATASET_SOURCES:
        raise _unknown_source(source)
    known = set(default_spec(source)) | set(COMMON_KEYS)
    for key in spec:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}" if close else ""
            raise DataError(f"data spec (source '{source}'): unknown setting {quote(key)}{hint}; the settings "
                            f"of '{source}' are: {', '.join(sorted(known - {'source'}))}.")
    for key in PATH_KEYS.get(source, ()):
        value = spec.get(key)
        if value is not None and (not isinstance(value, str) or "\x00" in value or len(value) > 4096):
            raise DataError(f"data spec (source '{source}'): '{key}' must be a file path (text), "
                            f"got {quote(value)}.")
    task = spec.get("task", "auto")
    fixed = _fixed_task(source)
    if task not in TASK_CHOICES or (fixed is not None and task not in ("auto", fixed)):
        allowed = ("auto", fixed) if fixed else TASK_CHOICES
        raise DataError(f"data spec (source '{source}'): 'task' must be one of "
                        f"{', '.join(map(repr, allowed))}, got {quote(task)}.")
    if spec.get("name") is not None and not isinstance(spec.get("name"), str):
        raise DataError(f"data spec (source '{source}'): 'name' must be text, got {quote(spec.get('name'))}.")
    return spec


def _path_items(spec: Any):
    if isinstance(spec, Mapping):
        for key in PATH_KEYS.get(spec.get("source"), ()):  # type: ignore[arg-type]
            if isinstance(spec.get(key), str) and spec[key]:
                yield key, spec[key]


def resolve_data_paths(spec: Any, base_dir: str | None) -> Any:
    """A copy of ``spec`` whose relative file paths are taken from ``base_dir`` (the folder of the
    project file they were saved in) and made absolute; other specs come back as they were."""
    if base_dir is None or not isinstance(spec, Mapping):
        return spec
    out = dict(spec)
    for key, value in _path_items(spec):
        path = os.path.expanduser(value)
        if not os.path.isabs(path):
            out[key] = os.path.normpath(os.path.join(base_dir, path))
    return out


def relative_data_paths(spec: Any, base_dir: str) -> Any:
    """A copy of ``spec`` with absolute file paths written relative to ``base_dir`` (where the project
    file is being saved), so a project folder keeps working when it is moved or zipped as a whole;
    a path that has no relative form (another drive on Windows) stays absolute."""
    if not isinstance(spec, Mapping):
        return spec
    out = dict(spec)
    for key, value in _path_items(spec):
        if os.path.isabs(value):
            try:
                out[key] = os.path.relpath(value, base_dir).replace(os.sep, "/")
            except ValueError:
                pass
    return out


def missing_data_files(spec: Any, base_dir: str | None = None) -> list[tuple[str, str]]:
    """``(key, path)`` of each file or folder the spec names that does not exist."""
    out = []
    for key, value in _path_items(resolve_data_paths(spec, base_dir) if base_dir else spec):
        if not os.path.exists(os.path.expanduser(value)):
            out.append((key, value))
    return out


def default_spec(source: str) -> dict:
    """A complete spec for ``source`` with every key at its default (a fresh copy)."""
    if source in GENERATORS:
        params = GENERATORS[source].params
    elif source in BUNDLED:
        params = {}
    elif source in _IMPORTERS:
        params = _IMPORTERS[source][0]
    else:
        raise _unknown_source(source)
    return copy.deepcopy({"source": source, **params, **SPLIT_DEFAULTS})


def list_builtin_datasets() -> list[dict]:
    """Generators and bundled datasets, for the GUI's dataset menu and ``main.py labs``.

    Each entry: ``name`` (= its source), ``kind`` ("generator" | "bundled"), ``task``,
    ``description`` (one sentence), ``params`` (the source's own defaults) and
    ``spec`` (a complete default spec ready for ``load_dataset``)."""
    out = []
    for g in GENERATORS.values():
        out.append({"name": g.name, "kind": "generator", "task": g.task, "description": g.description,
                    "params": dict(g.params), "spec": default_spec(g.name)})
    for b in BUNDLED.values():
        out.append({"name": b.name, "kind": "bundled", "task": b.task, "description": b.description,
                    "params": {}, "spec": default_spec(b.name)})
    return out


def _load_raw(source: str, full: dict, base_dir: str | None) -> dict:
    if source in GENERATORS:
        x, y, class_names, feature_names = generate(source, full)
        raw = {"name": source, "task": GENERATORS[source].task, "x": x, "y": y,
               "class_names": class_names, "feature_names": feature_names}
    elif source in BUNDLED:
        x, y, class_names, feature_names = load_bundled(source)
        raw = {"name": source, "task": BUNDLED[source].task, "x": x, "y": y,
               "class_names": class_names, "feature_names": feature_names}
    else:
        raw = _IMPORTERS[source][1](full, base_dir)
    if isinstance(full.get("name"), str) and full["name"]:
        raw["name"] = full["name"]
    return raw


def load_raw(spec: Mapping, base_dir: str | None = None) -> dict:
    """The arrays a spec's source yields before any split or normalisation (``x``, ``y``, ``task``,
    ``class_names``, ``feature_names`` and, for sources that ship one, ``fixed_test``): what an
    exported package needs to reproduce the data elsewhere.  Errors as for ``load_dataset``."""
    check_spec(spec)
    source = spec["source"]
    full = {**default_spec(source), **spec}
    with _one_sentence(source):
        return _load_raw(source, full, base_dir)


def load_dataset(spec: Mapping, normalization: Normalization | Mapping | None = None,
                 base_dir: str | None = None) -> Dataset:
    """Load, split and normalise the data a spec describes.

    ``normalization``: a saved ``Normalization`` (or its ``to_dict()``) from a
    trained project; it is applied as-is instead of being refitted, so a model
    sees its inputs scaled exactly as in training.  ``base_dir``: the folder that
    relative paths in the spec are taken from (the project file's folder).
    Bad input raises ``DataError`` with one sentence saying what to fix.
    """
    if normalization is not None and not isinstance(normalization, Normalization):
        normalization = Normalization.from_dict(normalization)
    arrays = load_arrays(spec, base_dir)
    with _one_sentence(spec["source"]):
        return arrays.to_dataset(normalization)


def load_arrays(spec: Mapping, base_dir: str | None = None) -> SplitArrays:
    """Load, check and split the data a spec describes, as numpy arrays (torch is not needed):
    ``.input_shape``, ``.n_outputs``, ``.task``, ``.summary()`` describe it, ``.to_dataset()``
    makes the tensors.  Errors as for ``load_dataset``."""
    check_spec(spec)
    source = spec["source"]
    full = {**default_spec(source), **spec}
    with _one_sentence(source):
        return split_arrays(spec=full, **_load_raw(source, full, base_dir))


class _one_sentence:
    """Whatever goes wrong loading ``source`` reaches the user as one DataError sentence."""

    def __init__(self, source: str):
        self.source = source

    def __enter__(self):
        return self

    def __exit__(self, kind, e, tb):
        if e is None or isinstance(e, LayerLabError) or not isinstance(e, Exception):
            return False  # DataError, LimitExceeded: already one sentence
        if isinstance(e, MemoryError):
            raise DataError(f"The {self.source!r} dataset does not fit in memory; use fewer samples "
                            "(n_samples / max_samples / max_per_class) or smaller images.") from e
        # last line of defence: the user gets a sentence, the log keeps the cause
        raise DataError(f"Could not load the {self.source!r} dataset: {type(e).__name__}: {str(e)[:80]}. "
                        "Check the data settings.") from e
