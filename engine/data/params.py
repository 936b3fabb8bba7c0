"""Reading typed values out of a data spec.

A data spec comes from a project file or a GUI form, so every value is checked
here and a wrong one becomes a ``DataError`` that names the key, the value and
what is allowed -- never a ``TypeError`` deep inside numpy.
"""
from __future__ import annotations

import math
import os
from typing import Any

from engine.errors import DataError, quote

# Keys every loader understands; they control the split and the normalisation.
SPLIT_DEFAULTS: dict[str, Any] = {
    "val_fraction": 0.2,
    "test_fraction": 0.0,
    "split_seed": 0,
    "stratify": True,
    "standardize": True,
}


def _where(spec: dict) -> str:
    return f"data spec (source '{spec.get('source', '?')}')"


def get_int(spec: dict, key: str, default: int, minimum: int | None = None,
            maximum: int | None = None) -> int:
    value = spec.get(key, default)
    # bool is an int subclass, but `n_samples: true` is surely a mistake.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{_where(spec)}: '{key}' must be a whole number, got {quote(value)}; "
                        f"use e.g. {default}.")
    if minimum is not None and value < minimum:
        raise DataError(f"{_where(spec)}: '{key}' must be at least {minimum}, got {quote(value)}.")
    if maximum is not None and value > maximum:
        raise DataError(f"{_where(spec)}: '{key}' must be at most {maximum:,}, got {quote(value)}.")
    return value


def get_optional_int(spec: dict, key: str, minimum: int = 1) -> int | None:
    if spec.get(key) is None:
        return None
    return get_int(spec, key, 0, minimum=minimum)


def get_float(spec: dict, key: str, default: float, minimum: float | None = None,
              maximum: float | None = None) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{_where(spec)}: '{key}' must be a number, got {quote(value)}; use e.g. {default}.")
    value = float(value)
    if minimum is not None and value < minimum:
        raise DataError(f"{_where(spec)}: '{key}' must be at least {minimum}, got {value}.")
    if maximum is not None and value > maximum:
        raise DataError(f"{_where(spec)}: '{key}' must be at most {maximum}, got {value}.")
    return value


def get_bool(spec: dict, key: str, default: bool) -> bool:
    value = spec.get(key, default)
    if not isinstance(value, bool):
        raise DataError(f"{_where(spec)}: '{key}' must be true or false, got {quote(value)}.")
    return value


def get_choice(spec: dict, key: str, default: str, choices: tuple[str, ...]) -> str:
    value = spec.get(key, default)
    if value not in choices:
        raise DataError(f"{_where(spec)}: '{key}' must be one of {', '.join(map(repr, choices))}, "
                        f"got {quote(value)}.")
    return value


def get_path(spec: dict, key: str, base_dir: str | os.PathLike | None,
             required: bool = True) -> str | None:
    """A file path from the spec; relative paths are taken from ``base_dir``
    (the project file's folder) so a project folder can be moved as a whole."""
    value = spec.get(key)
    if value is None or value == "":
        if not required:
            return None
        raise DataError(f"{_where(spec)}: '{key}' is missing; give the path of the file or folder to load.")
    if not isinstance(value, (str, os.PathLike)):
        raise DataError(f"{_where(spec)}: '{key}' must be a path (text), got {quote(value)}.")
    path = os.path.expanduser(os.fspath(value))
    if base_dir is not None and not os.path.isabs(path):
        path = os.path.join(os.fspath(base_dir), path)
    return path


def split_params(spec: dict) -> dict[str, Any]:
    """The validated split/normalisation keys, defaults filled in."""
    val = get_float(spec, "val_fraction", SPLIT_DEFAULTS["val_fraction"], 0.0, 0.95)
    test = get_float(spec, "test_fraction", SPLIT_DEFAULTS["test_fraction"], 0.0, 0.95)
    if val + test >= 1.0:
        raise DataError(f"{_where(spec)}: val_fraction + test_fraction is {val + test:g}, which leaves no "
                        "training data; keep their sum below 1 (e.g. 0.2 and 0.1).")
    return {
        "val_fraction": val,
        "test_fraction": test,
        "split_seed": get_int(spec, "split_seed", SPLIT_DEFAULTS["split_seed"], 0, 2**63 - 1),
        "stratify": get_bool(spec, "stratify", SPLIT_DEFAULTS["stratify"]),
        "standardize": get_bool(spec, "standardize", SPLIT_DEFAULTS["standardize"]),
    }
