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
from collections.abc import Mapping
from typing import Any, Callable

from engine.errors import DataError
from engine.data.bundled import BUNDLED, load_bundled
from engine.data.csv_import import DEFAULTS as _CSV_DEFAULTS, load_csv
from engine.data.dataset import Dataset, Normalization, build_dataset, split_indices
from engine.data.generators import GENERATORS, generate
from engine.data.idx import DEFAULTS as _IDX_DEFAULTS, load_idx, read_idx
from engine.data.image_folder import DEFAULTS as _IMAGE_DEFAULTS, load_image_folder
from engine.data.npz import DEFAULTS as _NPZ_DEFAULTS, load_npz
from engine.data.params import SPLIT_DEFAULTS

__all__ = [
    "Dataset", "Normalization", "load_dataset", "list_builtin_datasets", "DATASET_SOURCES",
    "default_spec", "split_indices", "read_idx", "load_raw",
]

# source -> (default keys, loader(spec, base_dir) -> dict of arrays for build_dataset)
_IMPORTERS: dict[str, tuple[dict[str, Any], Callable[..., dict]]] = {
    "csv": (_CSV_DEFAULTS, load_csv),
    "image_folder": (_IMAGE_DEFAULTS, load_image_folder),
    "idx": (_IDX_DEFAULTS, load_idx),
    "npz": (_NPZ_DEFAULTS, load_npz),
}

DATASET_SOURCES: tuple[str, ...] = tuple(GENERATORS) + tuple(BUNDLED) + tuple(_IMPORTERS)


def _unknown_source(source: Any) -> DataError:
    return DataError(f"Unknown data source {source!r}; the known sources are: {', '.join(DATASET_SOURCES)}.")


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
    if not isinstance(spec, Mapping) or spec.get("source") not in DATASET_SOURCES:
        raise _unknown_source(spec.get("source") if isinstance(spec, Mapping) else spec)
    source = spec["source"]
    full = {**default_spec(source), **spec}
    try:
        return _load_raw(source, full, base_dir)
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"Could not load the {source!r} dataset: {type(e).__name__}: {e}. "
                        "Check the data settings.") from e


def load_dataset(spec: Mapping, normalization: Normalization | Mapping | None = None,
                 base_dir: str | None = None) -> Dataset:
    """Load, split and normalise the data a spec describes.

    ``normalization``: a saved ``Normalization`` (or its ``to_dict()``) from a
    trained project; it is applied as-is instead of being refitted, so a model
    sees its inputs scaled exactly as in training.  ``base_dir``: the folder that
    relative paths in the spec are taken from (the project file's folder).
    Bad input raises ``DataError`` with one sentence saying what to fix.
    """
    if not isinstance(spec, Mapping):
        raise DataError(f"A data spec must be a dict with a 'source' key, got {type(spec).__name__}.")
    source = spec.get("source")
    if source not in DATASET_SOURCES:
        raise _unknown_source(source)
    if normalization is not None and not isinstance(normalization, Normalization):
        normalization = Normalization.from_dict(normalization)
    full = {**default_spec(source), **spec}
    try:
        raw = _load_raw(source, full, base_dir)
        return build_dataset(spec=full, normalization=normalization, **raw)
    except DataError:
        raise
    except MemoryError as e:
        raise DataError(f"The {source!r} dataset does not fit in memory; use fewer samples "
                        "(n_samples / max_samples / max_per_class) or smaller images.") from e
    except Exception as e:  # last line of defence: the user gets a sentence, the log keeps the cause
        raise DataError(f"Could not load the {source!r} dataset: {type(e).__name__}: {e}. "
                        "Check the data settings.") from e
