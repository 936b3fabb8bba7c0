"""From a raw input to what the exported model takes: the loader's scaling, then the standardisation.

LayerLab's image loaders scale pixels to [0, 1] *before* the standardisation is fitted
(engine/data/bundled.py: digits / 16, Fashion-MNIST / 255; idx.py and npz.py: uint8 images / 255;
image_folder.py: decoded pixels / 255), so ``layerlab.normalization`` alone, applied to raw pixels,
feeds the model inputs 16 or 255 times too large.  ``describe_preprocessing`` states every step in
order, with its numbers, for the metadata every format carries (``layerlab.preprocessing``):

    {"raw_input": "pixels 0..16 as sklearn.datasets.load_digits() gives them: ...",
     "steps": [{"op": "divide", "by": 16.0},
               {"op": "standardize", "axis": 1, "mean": [...], "std": [...], "min_std": 1e-08}],
     "formula": "x = (raw / 16 - mean) / std, one mean and std for every value; a std below 1e-08 counts as 1"}

The loaders stay the one place that scales; tests/test_export_preprocessing.py checks these
steps against what each of them returns.
"""
from __future__ import annotations

import gzip
import zipfile
from typing import Mapping

#: a std below this counts as 1 (engine/data/dataset.py's rule, which data.py copies)
from engine.data.dataset import _MIN_STD as MIN_STD

#: the raw IDX / npz dtype whose images the loaders divide by 255
_PIXEL_DIVISOR = 255.0


def _shape(input_shape) -> str:
    return "(batch, " + ", ".join(map(str, input_shape)) + ")"


def _idx_is_uint8(path: str) -> bool:
    """Whether an IDX file holds unsigned bytes (type code 0x08): the one kind idx.py divides by 255."""
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"  # as read_idx: gzip whatever the file is called
        f.seek(0)
        head = (gzip.GzipFile(fileobj=f) if gz else f).read(3)
    return len(head) == 3 and head[2] == 0x08


def _npz_is_uint8_images(path: str, key: str) -> bool:
    """Whether an .npz array is uint8 with 3+ axes (read from its .npy header alone): what npz.py divides by 255."""
    import numpy as np
    from numpy.lib import format as npformat

    with zipfile.ZipFile(path) as z, z.open(f"{key}.npy") as f:
        version = npformat.read_magic(f)
        read = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
        shape, _fortran, dtype = read(f)
    return dtype == np.uint8 and len(shape) >= 3


def input_scale(spec: Mapping, input_shape, base_dir: str | None = None) -> tuple[float | None, str]:
    """``(divisor, raw input)``: what the loader of ``spec`` divides the raw values by (None: nothing),
    and a sentence saying what those raw values are."""
    from engine.data import default_spec, resolve_data_paths

    source = spec.get("source")
    full = resolve_data_paths({**default_spec(source), **spec}, base_dir)
    shape = _shape(input_shape)
    if source == "digits":
        return 16.0, ("pixels 0..16 as sklearn.datasets.load_digits() gives them: its images (N, 8, 8) with a "
                      f"channel axis, {shape}")
    if source == "fashion_mnist":
        return _PIXEL_DIVISOR, f"uint8 pixels 0..255 of the Fashion-MNIST images, shaped {shape}"
    if source == "image_folder":
        mode = "grey (Pillow mode L)" if full.get("grayscale") else "RGB"
        h, w = full.get("size") or (32, 32)
        return _PIXEL_DIVISOR, (f"pixels 0..255 of each image decoded with Pillow, converted to {mode}, "
                                f"resized to {w} x {h} (bilinear), channels first: {shape}")
    if source == "idx":
        try:
            uint8 = _idx_is_uint8(full["images"])
        except OSError:  # moved since it was loaded: its loader's default kind
            uint8 = True
        if uint8:
            return _PIXEL_DIVISOR, f"the IDX file's uint8 pixels 0..255, shaped {shape}"
        return None, f"the IDX file's values as they are, shaped {shape}"
    if source == "npz":
        key = full.get("x_key") or "x"
        try:
            uint8 = _npz_is_uint8_images(full["path"], key)
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            uint8 = False
        if uint8:
            return _PIXEL_DIVISOR, f"the .npz array {key!r}'s uint8 pixels 0..255, shaped {shape}"
        return None, f"the .npz array {key!r} as it is, shaped {shape}"
    if source == "csv":
        return None, "the CSV file's feature columns, text columns one-hot encoded over their categories " \
                     "(the package's data.read_csv does it)"
    return None, f"the {source} data's values in their own units, shaped {shape}"


def divisor_of(preprocessing: Mapping) -> float | None:
    """What the steps of a ``describe_preprocessing`` divide raw inputs by first (None: nothing)."""
    return next((step["by"] for step in preprocessing["steps"] if step["op"] == "divide"), None)


def describe_preprocessing(spec: Mapping, normalization: Mapping | None, input_shape,
                           base_dir: str | None = None) -> dict:
    """Every step from a raw input to the model's input, in order: the metadata's ``preprocessing``."""
    divisor, raw = input_scale(spec, input_shape, base_dir)
    image = len(input_shape) >= 2
    steps: list[dict] = []
    term = "raw"
    if divisor is not None:
        steps.append({"op": "divide", "by": divisor})
        term = f"raw / {divisor:g}"
    if normalization is not None:
        steps.append({"op": "standardize", "axis": 1, "mean": list(normalization["mean"]),
                      "std": list(normalization["std"]), "min_std": MIN_STD})
        per = ("per channel (axis 1 of the batch)" if image else "per feature (axis 1 of the batch)") \
            if len(normalization["mean"]) > 1 else "one mean and std for every value"
        formula = f"x = ({term} - mean) / std, {per}; a std below {MIN_STD:g} counts as 1"
    else:
        formula = f"x = {term}" + ("" if divisor is not None else " (the model takes the raw values as they are)")
    return {"raw_input": raw, "steps": steps, "formula": formula}

