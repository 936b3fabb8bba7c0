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
from engine.data.dataset import check_float32_range, decide_task, encode_integer_labels, encode_labels
from engine.data.params import get_choice, get_optional_int, get_path
from engine.limits import check_dataset_memory, check_inflation, fmt_bytes, open_regular

DEFAULTS: dict[str, Any] = {
    "images": None,
    "labels": None,
    "test_images": None,   # e.g. t10k-images-idx3-ubyte: becomes the test split
    "test_labels": None,
    "max_samples": None,   # use only the first N training samples
    "task": "auto",        # "auto": integer labels -> classification, float labels -> regression
}

TYPE_CODES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


_GZIP_ERRORS = (EOFError, OSError, zlib.error)


def _read_exact(stream, n: int, path: str) -> bytes:
    """Up to ``n`` bytes from a raw or gzip stream (fewer only at its end); gzip damage is a DataError."""
    out = bytearray(n)
    view, got = memoryview(out), 0
    try:
        while got < n:
            k = stream.readinto(view[got:])
            if not k:
                break
            got += k
    except _GZIP_ERRORS as e:
        raise DataError(f"{path}: the gzip data is truncated or corrupt ({str(e)[:60]}); "
                        "download the file again.") from None
    return bytes(out[:got]) if got < n else bytes(out)


def read_idx(path: str) -> np.ndarray:
    """The array stored in an IDX file (native byte order), raw or gzip-compressed.

    The header's dimensions are checked against the file's size (raw files), the memory limit and
    the bomb rule (gzip files) before the values are read; gzip data is inflated into a buffer of
    exactly the declared size, so a stream that inflates further is refused, not followed."""
    with open_regular(path, DataError, "IDX file") as f:
        size = os.fstat(f.fileno()).st_size
        gz = f.read(2) == b"\x1f\x8b"  # gzip magic, whatever the file is called
        f.seek(0)
        stream = gzip.GzipFile(fileobj=f, mode="rb") if gz else f
        head = _read_exact(stream, 4, path)
        if len(head) < 4:
            raise DataError(f"{path}: only {len(head)} bytes, too short to be an IDX file; download it again.")
        if head[0] != 0 or head[1] != 0 or head[2] not in TYPE_CODES or head[3] == 0:
            raise DataError(f"{path}: not an IDX file (magic number 0x{head[:4].hex()} is not valid); "
                            "choose an MNIST-style file such as train-images-idx3-ubyte(.gz).")
        dtype = np.dtype(TYPE_CODES[head[2]])
        ndim = head[3]
        raw_dims = _read_exact(stream, 4 * ndim, path)
        if len(raw_dims) < 4 * ndim:
            raise DataError(f"{path}: truncated inside its header; download the file again.")
        dims = struct.unpack(f">{ndim}I", raw_dims)
        header = 4 + 4 * ndim
        expected = math.prod(dims) * dtype.itemsize
        shape = " x ".join(map(str, dims)) if ndim <= 6 else f"{ndim}-dimensional ({dims[0]} x {dims[1]} x …)"
        if not gz:
            got = size - header
            if got < expected:
                raise DataError(f"{path}: truncated -- the header promises {shape} values ({fmt_bytes(expected)}) "
                                f"but only {fmt_bytes(got)} follow; download the file again.")
            if got > expected:
                raise DataError(f"{path}: {got - expected:,} bytes more than its header ({shape}) describes; "
                                "the file is corrupt or not an IDX file.")
        else:
            check_inflation(header + expected, size, f"{path} (gzip, declaring {shape} values)")
        check_dataset_memory(math.prod(dims), f"{path} ({shape} values of {dtype.name})",
                             extra_bytes=expected)
        data = _read_exact(stream, expected, path)
        if len(data) < expected:
            raise DataError(f"{path}: truncated -- the header promises {shape} values ({fmt_bytes(expected)}) "
                            f"but only {fmt_bytes(len(data))} follow; download the file again.")
        if gz and _read_exact(stream, 1, path):
            raise DataError(f"{path}: more bytes than its header ({shape}) describes; "
                            "the file is corrupt or not an IDX file.")
    return np.frombuffer(data, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _images(arr: np.ndarray, path: str) -> np.ndarray:
    if arr.ndim < 2:
        raise DataError(f"{path}: holds a 1-D array (labels?) but images are expected; "
                        "check that 'images' and 'labels' are not swapped.")
    check_float32_range(arr, "the images", path)
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

    decision = decide_task(y, task, f"the labels in {os.path.basename(labels_path)}", typed=True)
    task = decision.task
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
        "task_rule": decision.rule,
        "notices": [decision.notice] if decision.notice else [],
    }
