"""NumPy ``.npz`` archives (``np.savez``), read with ``allow_pickle=False``.

Object arrays would need pickle, which can run code from the file, so they are
refused with a sentence saying how to re-save the data.
"""
from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
from numpy.lib import format as npformat

from engine.errors import DataError, name_list, quote
from engine.data.dataset import check_float32_range, decide_task, encode_integer_labels, encode_labels
from engine.data.params import get_choice, get_path
from engine.limits import check_dataset_memory, fmt_bytes, open_regular
from engine.safezip import CORRUPT, open_member, open_zip

DEFAULTS: dict[str, Any] = {
    "path": None,
    "x_key": "x",
    "y_key": "y",
    "x_test_key": None,  # optional arrays in the same file that become the test split
    "y_test_key": None,
    "task": "auto",      # "auto": integer/bool/text labels -> classification, float -> regression
}


class _Archive:
    """The arrays of an .npz file, read one by one after their .npy headers pass the resource policy."""

    def __init__(self, path: str):
        self.path = path
        self.zip = open_zip(path, "npz archive", DataError)
        self.members = {n[:-4]: n for n in self.zip.namelist() if n.endswith(".npy")}
        self.files = list(self.members)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.zip.close()

    def header(self, key: str) -> tuple[tuple[int, ...], np.dtype]:
        """The shape and dtype the array's .npy header declares; refused (before its data is read) when
        it holds Python objects, when its size disagrees with the member's, or when it would not fit."""
        name, what = self.members[key], f"array {quote(key)} of {self.path}"
        with open_member(self.zip, name, what="npz archive", error=DataError) as f:
            try:
                version = npformat.read_magic(f)
                read = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
                shape, _fortran, dtype = read(f)
            except (*CORRUPT, SyntaxError) as e:
                raise DataError(f"{self.path}: array {quote(key)} has a damaged .npy header "
                                f"({str(e)[:60]}); save the file again.") from None
            header_len = f.tell()
        if dtype.hasobject:
            raise DataError(f"{self.path}: array {quote(key)} holds Python objects, which are not loaded for "
                            "safety; save it as a plain numeric or text array (e.g. arr.astype(float)).")
        declared = math.prod(shape) * dtype.itemsize
        actual = self.zip.getinfo(name).file_size - header_len
        if declared != actual:
            raise DataError(f"{self.path}: array {quote(key)} declares {' x '.join(map(str, shape)) or 'one'} "
                            f"values of {dtype} ({fmt_bytes(declared)}) but holds {fmt_bytes(max(actual, 0))}; "
                            "the file is corrupt or lies about its size.")
        check_dataset_memory(math.prod(shape), f"{what} ({' x '.join(map(str, shape))} {dtype})",
                             extra_bytes=declared)
        return shape, dtype

    def __getitem__(self, key: str) -> np.ndarray:
        self.header(key)
        with open_member(self.zip, self.members[key], what="npz archive", error=DataError) as f:
            try:
                return npformat.read_array(f, allow_pickle=False)
            except CORRUPT as e:
                raise DataError(f"{self.path}: array {quote(key)} is corrupt ({str(e)[:60]}); "
                                "save the file again.") from None


def _open(path: str) -> _Archive:
    with open_regular(path, DataError, "NumPy .npz file") as f:
        magic = f.read(6)
    # Check the magic ourselves: numpy's own message for other files suggests
    # enabling pickle, which is exactly the advice we must not give.
    if magic == b"\x93NUMPY":
        raise DataError(f"{path}: holds a single array, not an .npz archive; save x and y with "
                        "numpy.savez(path, x=..., y=...).")
    if not magic.startswith(b"PK"):
        raise DataError(f"{path}: not a .npz archive; save the arrays with numpy.savez(path, x=..., y=...).")
    try:
        return _Archive(path)
    except DataError as e:
        raise DataError(f"{path}: not a valid .npz archive ({e.message}); save it with numpy.savez.") from None


def _get(archive: _Archive, key: Any, path: str, what: str) -> np.ndarray:
    if not isinstance(key, str) or key not in archive.files:
        raise DataError(f"{path}: no array named {quote(key)} for {what}; the file holds: "
                        f"{name_list(archive.files) or 'nothing'}. Set '{what}' in the data settings.")
    return archive[key]


def _features(x: np.ndarray, path: str, key: str) -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise DataError(f"{path}: array {quote(key)} has type {x.dtype}, not numbers; inputs must be numeric.")
    if x.ndim == 1:
        x = x[:, None]  # one feature per sample
    scale = x.dtype == np.uint8 and x.ndim >= 3  # uint8 images: pixels -> [0, 1]
    check_float32_range(x, f"array {quote(key)}", path)
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

    with _open(path) as archive:
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
        raise DataError(f"{path}: {quote(x_key)} has {x.shape[0]} rows but {quote(y_key)} has {y.shape[0]}; "
                        "they must have one row per sample.")
    if y.dtype.kind not in "biufUS":
        raise DataError(f"{path}: array {quote(y_key)} has type {y.dtype}; labels must be numbers or text.")

    decision = decide_task(y, task, f"the array {quote(y_key)}", typed=True)
    task = decision.task
    n_train = y.shape[0]
    both = y if yt is None else np.concatenate([y, yt])  # one encoding for both splits
    class_names = None
    if task == "classification":
        if both.ndim != 1:
            raise DataError(f"{path}: classification labels must be 1-D, but {quote(y_key)} has shape {y.shape}; "
                            "use task 'regression' for several targets.")
        if both.dtype.kind in "iub":
            both, class_names = encode_integer_labels(both.astype(np.int64))
        else:
            both, class_names = encode_labels(both)
    elif both.dtype.kind not in "biuf":
        raise DataError(f"{path}: array {quote(y_key)} holds text, which cannot be a regression target; "
                        "use task 'classification'.")

    return {
        "name": os.path.basename(path),
        "task": task,
        "x": x,
        "y": both[:n_train],
        "class_names": class_names,
        "feature_names": [] if x.ndim > 2 else [f"x{i}" for i in range(x.shape[1])],
        "fixed_test": None if xt is None else (xt, both[n_train:]),
        "task_rule": decision.rule,
        "notices": [decision.notice] if decision.notice else [],
    }
