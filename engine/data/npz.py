"""NumPy ``.npz`` archives (``np.savez``), read with ``allow_pickle=False``.

Object arrays would need pickle, which can run code from the file, so they are
refused with a sentence saying how to re-save the data.
"""
from __future__ import annotations

import os
import zipfile
from typing import Any

import numpy as np

from engine.errors import DataError
from engine.data.dataset import encode_integer_labels, encode_labels
from engine.data.params import get_choice, get_path

DEFAULTS: dict[str, Any] = {
    "path": None,
    "x_key": "x",
    "y_key": "y",
    "x_test_key": None,  # optional arrays in the same file that become the test split
    "y_test_key": None,
    "task": "auto",      # "auto": integer/bool/text labels -> classification, float -> regression
}


def _open(path: str):
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; check the path in the data settings.") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e}); check the path and permissions.") from e
    # Check the magic ourselves: numpy's own message for other files suggests
    # enabling pickle, which is exactly the advice we must not give.
    if not (magic.startswith(b"PK") or magic == b"\x93NUMPY"):
        raise DataError(f"{path}: not a .npz archive; save the arrays with numpy.savez(path, x=..., y=...).")
    try:
        return np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: not a valid .npz archive ({e}); save it with numpy.savez.") from e
    except (OSError, ValueError) as e:  # ValueError: object arrays, which need pickle
        raise DataError(f"{path}: cannot be read as .npz (it is damaged or holds Python objects, which "
                        "are never loaded for safety); save plain arrays with numpy.savez.") from e


def _get(archive, key: Any, path: str, what: str) -> np.ndarray:
    if not isinstance(key, str) or key not in archive.files:
        raise DataError(f"{path}: no array named {key!r} for {what}; the file holds: "
                        f"{', '.join(archive.files) or 'nothing'}. Set '{what}' in the data settings.")
    try:
        return archive[key]
    except ValueError as e:  # object arrays need pickle
        raise DataError(f"{path}: array {key!r} holds Python objects, which are not loaded for safety; "
                        "save it as a plain numeric or text array (e.g. arr.astype(float)).") from e
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: array {key!r} is corrupt ({e}); save the file again.") from e


def _features(x: np.ndarray, path: str, key: str) -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise DataError(f"{path}: array {key!r} has type {x.dtype}, not numbers; inputs must be numeric.")
    if x.ndim == 1:
        x = x[:, None]  # one feature per sample
    scale = x.dtype == np.uint8 and x.ndim >= 3  # uint8 images: pixels -> [0, 1]
    x = x.astype(np.float32)
    if scale:
        x /= 255.0
    if x.ndim == 3:
        x = x[:, None]  # (N, H, W) -> (N, 1, H, W)
    elif x.ndim == 4 and x.shape[1] > 4 and x.shape[3] <= 4:
        x = x.transpose(0, 3, 1, 2)  # channels-last -> channels-first
    return x


def load_npz(spec: dict, base_dir=None) -> dict:
    path = get_path(spec, "path", base_dir)
    task = get_choice(spec, "task", "auto", ("auto", "classification", "regression"))
    x_key, y_key = spec.get("x_key", "x"), spec.get("y_key", "y")
    xt_key, yt_key = spec.get("x_test_key"), spec.get("y_test_key")
    if (xt_key is None) != (yt_key is None):
        raise DataError("data spec (npz): give both 'x_test_key' and 'y_test_key', or neither.")

    archive = _open(path)
    if not hasattr(archive, "files"):  # a .npy file gives a bare array
        raise DataError(f"{path}: holds a single array, not an .npz archive; save x and y with "
                        "numpy.savez(path, x=..., y=...).")
    with archive:
        x = _features(_get(archive, x_key, path, "x_key"), path, x_key)
        y = _get(archive, y_key, path, "y_key")
        xt = yt = None
        if xt_key is not None:
            xt = _features(_get(archive, xt_key, path, "x_test_key"), path, xt_key)
            yt = _get(archive, yt_key, path, "y_test_key")

    if y.ndim == 2 and y.shape[1] == 1 and y.dtype.kind != "f":
        y = y[:, 0]
    if yt is not None and yt.ndim == 2 and yt.shape[1] == 1 and yt.dtype.kind != "f":
        yt = yt[:, 0]
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{path}: {x_key!r} has {x.shape[0]} rows but {y_key!r} has {y.shape[0]}; "
                        "they must have one row per sample.")
    if y.dtype.kind not in "biufUS":
        raise DataError(f"{path}: array {y_key!r} has type {y.dtype}; labels must be numbers or text.")

    if task == "auto":
        task = "regression" if y.dtype.kind == "f" else "classification"
    n_train = y.shape[0]
    both = y if yt is None else np.concatenate([y, yt])  # one encoding for both splits
    class_names = None
    if task == "classification":
        if both.ndim != 1:
            raise DataError(f"{path}: classification labels must be 1-D, but {y_key!r} has shape {y.shape}; "
                            "use task 'regression' for several targets.")
        if both.dtype.kind in "iub":
            both, class_names = encode_integer_labels(both.astype(np.int64))
        else:
            both, class_names = encode_labels(both)
    elif both.dtype.kind not in "biuf":
        raise DataError(f"{path}: array {y_key!r} holds text, which cannot be a regression target; "
                        "use task 'classification'.")

    return {
        "name": os.path.basename(path),
        "task": task,
        "x": x,
        "y": both[:n_train],
        "class_names": class_names,
        "feature_names": [] if x.ndim > 2 else [f"x{i}" for i in range(x.shape[1])],
        "fixed_test": None if xt is None else (xt, both[n_train:]),
    }
