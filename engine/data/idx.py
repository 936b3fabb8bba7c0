"""IDX files, the format of MNIST / Fashion-MNIST / EMNIST (raw or gzip-compressed).

Layout: two zero bytes, a type code, the number of dimensions, one big-endian
uint32 per dimension, then the values big-endian.  Downloads are often cut
short, so the byte count is checked against the header before anything is read.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from typing import Any

import numpy as np

from engine.errors import DataError
from engine.data.dataset import encode_integer_labels, encode_labels
from engine.data.params import get_choice, get_optional_int, get_path

DEFAULTS: dict[str, Any] = {
    "images": None,
    "labels": None,
    "test_images": None,   # e.g. t10k-images-idx3-ubyte: becomes the test split
    "test_labels": None,
    "max_samples": None,   # use only the first N training samples
    "task": "auto",        # "auto": integer labels -> classification, float labels -> regression
}

TYPE_CODES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; check the path in the data settings.") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e}); check the path and permissions.") from e
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise DataError(f"{path}: the gzip data is truncated or corrupt ({e}); download the file again.") from e
    return raw


def read_idx(path: str) -> np.ndarray:
    """The array stored in an IDX file (native byte order)."""
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"{path}: only {len(raw)} bytes, too short to be an IDX file; download it again.")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in TYPE_CODES or raw[3] == 0:
        raise DataError(f"{path}: not an IDX file (magic number 0x{raw[:4].hex()} is not valid); "
                        "choose an MNIST-style file such as train-images-idx3-ubyte(.gz).")
    dtype = np.dtype(TYPE_CODES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated inside its header; download the file again.")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = math.prod(dims) * dtype.itemsize
    got = len(raw) - header
    shape = " x ".join(map(str, dims))
    if got < expected:
        raise DataError(f"{path}: truncated -- the header promises {shape} values ({expected:,} bytes) "
                        f"but only {got:,} bytes follow; download the file again.")
    if got > expected:
        raise DataError(f"{path}: {got - expected:,} bytes more than its header ({shape}) describes; "
                        "the file is corrupt or not an IDX file.")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _images(arr: np.ndarray, path: str) -> np.ndarray:
    if arr.ndim < 2:
        raise DataError(f"{path}: holds a 1-D array (labels?) but images are expected; "
                        "check that 'images' and 'labels' are not swapped.")
    x = arr.astype(np.float32)
    if arr.dtype == np.uint8:
        x /= 255.0  # pixels -> [0, 1] before standardisation, like every image source
    if x.ndim == 3:
        x = x[:, None]  # (N, H, W) -> (N, 1, H, W)
    elif x.ndim == 4 and x.shape[1] > 4 and x.shape[3] <= 4:
        x = x.transpose(0, 3, 1, 2)  # channels-last -> channels-first
    return x


def _labels(arr: np.ndarray, path: str) -> np.ndarray:
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(f"{path}: labels must be a 1-D array but this file holds shape {arr.shape}; "
                        "check that 'images' and 'labels' are not swapped.")
    return arr


def load_idx(spec: dict, base_dir=None) -> dict:
    images_path = get_path(spec, "images", base_dir)
    labels_path = get_path(spec, "labels", base_dir)
    test_images_path = get_path(spec, "test_images", base_dir, required=False)
    test_labels_path = get_path(spec, "test_labels", base_dir, required=False)
    if (test_images_path is None) != (test_labels_path is None):
        raise DataError("data spec (idx): give both 'test_images' and 'test_labels', or neither.")
    max_samples = get_optional_int(spec, "max_samples")
    task = get_choice(spec, "task", "auto", ("auto", "classification", "regression"))

    x = _images(read_idx(images_path), images_path)
    y = _labels(read_idx(labels_path), labels_path)
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{images_path} holds {x.shape[0]} images but {labels_path} holds {y.shape[0]} "
                        "labels; pick files from the same set (both train or both t10k).")
    if max_samples is not None:
        x, y = x[:max_samples], y[:max_samples]

    fixed_test = None
    n_train = len(y)
    if test_images_path is not None:
        xt = _images(read_idx(test_images_path), test_images_path)
        yt = _labels(read_idx(test_labels_path), test_labels_path)
        if xt.shape[0] != yt.shape[0]:
            raise DataError(f"{test_images_path} holds {xt.shape[0]} images but {test_labels_path} holds "
                            f"{yt.shape[0]} labels; pick matching test files.")
        y = np.concatenate([y, yt])  # encode together so both splits share class indices
        fixed_test = (xt, None)

    if task == "auto":
        task = "classification" if np.issubdtype(y.dtype, np.integer) else "regression"
    class_names = None
    if task == "classification":
        if np.issubdtype(y.dtype, np.integer):
            y, class_names = encode_integer_labels(y)
        else:
            y, class_names = encode_labels(y)
    if fixed_test is not None:
        fixed_test = (fixed_test[0], y[n_train:])
        y = y[:n_train]

    return {
        "name": os.path.basename(images_path),
        "task": task,
        "x": x,
        "y": y,
        "class_names": class_names,
        "feature_names": [] if x.ndim > 2 else [f"x{i}" for i in range(x.shape[1])],
        "fixed_test": fixed_test,
    }
