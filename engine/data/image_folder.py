"""Image folders: ``root/<class name>/<image file>``, decoded with Pillow.

Pillow (not Qt) decodes, so the engine stays Qt-free and works in the headless
grader.  Images are resized to one ``size``, converted to grey or RGB, scaled
to [0, 1] and stored channels-first ``(C, H, W)``.
"""
from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from engine.errors import DataError, LayerLabError, LimitExceeded, quote
from engine.data.params import get_bool, get_optional_int, get_path
from engine.limits import check_dataset_memory, check_memory, open_regular

DEFAULTS: dict[str, Any] = {
    "path": None,
    "size": [32, 32],      # [height, width]
    "grayscale": False,
    "max_per_class": None,  # cap for quick experiments on big folders
}

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def _size(spec: dict) -> tuple[int, int]:
    size = spec.get("size", DEFAULTS["size"])
    if isinstance(size, int) and not isinstance(size, bool):
        size = [size, size]
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096 for v in size)):
        raise DataError(f"data spec (image_folder): 'size' must be [height, width] in pixels "
                        f"(1..4096), got {quote(size)}; e.g. [28, 28].")
    return int(size[0]), int(size[1])


def _import_pil():
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise DataError("Loading an image folder needs the Pillow package, which is not installed; "
                        "install it with 'pip install pillow'.") from None
    return Image, UnidentifiedImageError


def _decode(file: str, mode: str, height: int, width: int, Image, UnidentifiedImageError) -> np.ndarray:
    """One image as ``(height, width, channels)`` float32, its dimensions checked from its header
    (Pillow opens lazily) before any pixel is decoded."""
    with open_regular(file, DataError, "image") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, in a sentence
        try:
            with Image.open(f) as im:
                w, h = im.size
                bands = max(len(im.getbands()), 1)
                if w * h > Image.MAX_IMAGE_PIXELS:
                    raise LimitExceeded(f"{file}: its header says {w:,} x {h:,} pixels, more than the "
                                        f"{Image.MAX_IMAGE_PIXELS:,} LayerLab decodes per image; shrink it.")
                # decoded, converted and resized copies of this one image
                check_memory(w * h * (bands + 4) * 4, f"{file}: decoding a {w:,} x {h:,} image")
                im = im.convert(mode).resize((width, height), Image.Resampling.BILINEAR)
                arr = np.asarray(im, dtype=np.float32)
        except LayerLabError:
            raise
        except Image.DecompressionBombError:  # Pillow's own check, for more than twice its pixel limit
            raise LimitExceeded(f"{file}: its header declares more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels, "
                                "far more than LayerLab decodes per image; shrink it.") from None
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise DataError(f"{file}: cannot be read as an image ({str(e)[:60]}); replace or remove that "
                            "file.") from None
    return arr.reshape(height, width, -1)


def load_image_folder(spec: dict, base_dir=None) -> dict:
    root = get_path(spec, "path", base_dir)
    height, width = _size(spec)
    grayscale = get_bool(spec, "grayscale", DEFAULTS["grayscale"])
    max_per_class = get_optional_int(spec, "max_per_class")
    Image, UnidentifiedImageError = _import_pil()

    if not os.path.isdir(root):
        raise DataError(f"{root}: folder not found; choose a folder that has one subfolder per class.")
    classes = sorted(d for d in os.listdir(root)
                     if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))
    if len(classes) < 2:
        raise DataError(f"{root}: found {len(classes)} class subfolder(s); an image folder needs one "
                        "subfolder per class (at least two), each holding that class's images.")

    files: list[tuple[str, int]] = []
    for k, cls in enumerate(classes):
        folder = os.path.join(root, cls)
        names = sorted(f for f in os.listdir(folder)
                       if f.lower().endswith(EXTENSIONS) and not f.startswith("."))
        if not names:
            raise DataError(f"{folder}: no PNG or JPEG images in class folder {quote(cls)}; add images or "
                            "remove the folder.")
        if max_per_class is not None:
            names = names[:max_per_class]
        files.extend((os.path.join(folder, f), k) for f in names)

    mode = "L" if grayscale else "RGB"
    channels = 1 if grayscale else 3
    check_dataset_memory(len(files) * channels * height * width,
                         f"{root}: {len(files):,} images of {channels} x {height} x {width}")
    x = np.empty((len(files), channels, height, width), dtype=np.float32)
    for i, (file, _) in enumerate(files):
        x[i] = _decode(file, mode, height, width, Image, UnidentifiedImageError).transpose(2, 0, 1) / 255.0

    return {
        "name": os.path.basename(os.path.normpath(root)),
        "task": "classification",
        "x": x,
        "y": np.array([k for _, k in files], dtype=np.int64),
        "class_names": classes,
        "feature_names": [],
    }
