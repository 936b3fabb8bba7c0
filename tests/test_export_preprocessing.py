"""Every export says how a raw input becomes the model's input (``layerlab.preprocessing``): the
loader's scaling (digits / 16, images / 255), then the standardisation.  With the normalisation alone
raw digits pixels scored 0.32 on an ONNX model that scores 0.6 in LayerLab."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from engine.model_at import model_at

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


def apply_steps(preprocessing: dict, raw) -> np.ndarray:
    """What a reader of the metadata does with a raw batch: the documented steps, in order."""
    x = np.asarray(raw, dtype=np.float32)
    for step in preprocessing["steps"]:
        if step["op"] == "divide":
            x = x / np.float32(step["by"])
        else:
            assert step["op"] == "standardize" and step["axis"] == 1
            n = len(step["mean"])
            view = (1, n) + (1,) * (x.ndim - 2) if n != 1 else (1,) * x.ndim
            mean = np.asarray(step["mean"], dtype=np.float32).reshape(view)
            std = np.asarray(step["std"], dtype=np.float32).reshape(view)
            x = (x - mean) / np.where(np.abs(std) < step["min_std"], np.float32(1), std)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def raw_digits():
    """sklearn's raw digits (pixels 0..16, (N, 1, 8, 8)) and the rows of LayerLab's validation split."""
    from sklearn.datasets import load_digits

    from engine.data import split_indices

    d = load_digits()
    _, val, _ = split_indices(len(d.target), 0.2, 0.0, 0, d.target)  # the digits spec's defaults
    return d.images[:, None].astype(np.float32), d.target, val


def _layerlab(exports, key="model:cnn"):
    ready = model_at(exports.project(key), device="cpu")
    with torch.no_grad():
        logits = ready.module(ready.dataset.x_val).numpy()
    return ready.dataset, logits


def test_raw_digits_and_the_onnx_metadata_reproduce_layerlabs_predictions(exports, raw_digits):
    images, target, val = raw_digits
    ds, logits = _layerlab(exports)
    path = exports.export("model:cnn", "onnx").path
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}
    pre = meta["layerlab.preprocessing"]
    assert [s["op"] for s in pre["steps"]] == ["divide", "standardize"] and pre["steps"][0]["by"] == 16.0
    assert "0..16" in pre["raw_input"] and "raw / 16" in pre["formula"]
    x = apply_steps(pre, images[val])
    assert np.abs(x - ds.x_val.numpy()).max() <= 1e-6  # the very inputs LayerLab's model saw
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert np.abs(got - logits).max() <= 1e-4
    assert np.array_equal(got.argmax(1), logits.argmax(1))
    ours = float((got.argmax(1) == target[val]).mean())
    assert ours == float((logits.argmax(1) == ds.y_val.numpy()).mean()) and ours > 0.3


def test_the_packages_predict_takes_raw_pixels(exports, raw_digits, tmp_path):
    """predict.py's docstring says it takes raw inputs: it standardised 0..16 pixels without the / 16."""
    images, target, val = raw_digits
    ds, logits = _layerlab(exports)
    folder = exports.export("model:cnn", "python").path
    manifest = json.loads((folder / "layerlab.json").read_text())
    assert manifest["metadata"]["preprocessing"]["steps"][0] == {"op": "divide", "by": 16.0}
    assert "raw / 16" in (folder / "README.md").read_text() and "raw / 16" in (folder / "model.py").read_text()
    own = ("predict", "data", "model")  # the package's modules, imported by these names
    saved = {k: sys.modules.pop(k) for k in own if k in sys.modules}
    sys.path.insert(0, str(folder))
    try:
        import predict  # noqa: PLC0415

        names = predict.predict(predict.load_model(), images[val][:, 0])  # (N, 8, 8): as sklearn gives them
    finally:
        while str(folder) in sys.path:  # predict.py puts its folder first on sys.path itself, too
            sys.path.remove(str(folder))
        for k in own:
            sys.modules.pop(k, None)
        sys.modules.update(saved)
    assert names == [ds.class_names[i] for i in logits.argmax(1)]
    np.savez(tmp_path / "raw.npz", x=images[val], y=target[val])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-I", str(folder / "predict.py"), "--npz", str(tmp_path / "raw.npz")],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    accuracy = float((logits.argmax(1) == ds.y_val.numpy()).mean())
    assert proc.stdout.strip().splitlines()[-1] == f"accuracy {accuracy:.4f} on {len(val)} samples"
    # the package's own data.npz holds x divided already: given to --npz it is not divided again
    np.savez(tmp_path / "all.npz", x=images, y=target)
    said = [subprocess.run([sys.executable, "-I", str(folder / "predict.py"), "--npz", str(npz)], capture_output=True,
                           text=True, cwd=tmp_path, env=env, timeout=300).stdout.strip().splitlines()[-1]
            for npz in (tmp_path / "all.npz", folder / "data.npz")]
    assert said[0] == said[1] and said[0].endswith(f"on {len(images)} samples")


@pytest.mark.parametrize("fmt", ["onnx", "safetensors", "pt2", "python"])
def test_every_format_carries_the_preprocessing(exports, fmt):
    from safetensors import safe_open

    result = exports.export("starter:fashion-cnn", fmt)
    if fmt == "onnx":
        meta = {p.key[9:]: json.loads(p.value) for p in onnx.load(str(result.path)).metadata_props}
    elif fmt == "safetensors":
        with safe_open(str(result.path), framework="pt") as f:
            meta = {k[9:]: json.loads(v) for k, v in f.metadata().items() if k.startswith("layerlab.")}
    elif fmt == "pt2":
        extra = {"layerlab.json": ""}
        torch.export.load(str(result.path), extra_files=extra)
        meta = json.loads(extra["layerlab.json"])
    else:
        meta = json.loads((result.path / "layerlab.json").read_text())["metadata"]
    # fashion-cnn does not standardise: the / 255 is the whole preprocessing
    assert meta["preprocessing"]["steps"] == [{"op": "divide", "by": 255.0}]
    assert meta["normalization"] is None and "0..255" in meta["preprocessing"]["raw_input"]


def _scaled_by_loader(spec, raw, base_dir=None, normalization=None):
    """The loader's x for ``spec`` against the documented steps on ``raw`` (no standardisation)."""
    from engine.data import load_raw
    from engine.export.preprocessing import describe_preprocessing

    loaded = np.asarray(load_raw(spec, base_dir)["x"])
    pre = describe_preprocessing(spec, normalization, loaded.shape[1:], base_dir)
    got = apply_steps(pre, raw)
    assert got.shape == loaded.shape
    assert np.abs(got - loaded).max() <= 1e-6
    return pre


def test_the_steps_are_what_each_loader_does(tmp_path):
    """The loaders (engine/data) are the one place that scales; the documented steps must follow them."""
    import gzip
    import struct

    from PIL import Image
    from sklearn.datasets import load_digits, load_iris

    from engine.data.idx import read_idx

    assert _scaled_by_loader({"source": "digits"}, load_digits().images[:, None])["steps"][0]["by"] == 16.0
    fashion = read_idx(str(ROOT / "resources" / "datasets" / "fashion-mnist" / "t10k-images-idx3-ubyte.gz"))
    assert _scaled_by_loader({"source": "fashion_mnist"}, fashion[:, None])["steps"][0]["by"] == 255.0
    assert _scaled_by_loader({"source": "iris"}, load_iris().data)["steps"] == []
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(6, 5, 4), dtype=np.uint8)
    labels = np.array([0, 1, 0, 1, 0, 1], dtype=np.uint8)
    for name, arr in (("img.gz", pixels), ("lab.gz", labels)):
        with gzip.open(tmp_path / name, "wb") as f:
            f.write(bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes())
    idx = {"source": "idx", "images": "img.gz", "labels": "lab.gz"}
    assert _scaled_by_loader(idx, pixels[:, None], str(tmp_path))["steps"] == [{"op": "divide", "by": 255.0}]
    np.savez(tmp_path / "u8.npz", x=pixels, y=labels)
    np.savez(tmp_path / "f32.npz", x=pixels.astype(np.float32), y=labels)
    assert _scaled_by_loader({"source": "npz", "path": "u8.npz"}, pixels[:, None], str(tmp_path))["steps"] != []
    assert _scaled_by_loader({"source": "npz", "path": "f32.npz"}, pixels[:, None], str(tmp_path))["steps"] == []
    for k in ("a", "b"):
        (tmp_path / "imgs" / k).mkdir(parents=True)
        for i in range(2):
            pixels_rgb = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
            Image.fromarray(pixels_rgb).save(tmp_path / "imgs" / k / f"{i}.png")
    spec = {"source": "image_folder", "path": "imgs", "size": [4, 4]}
    decoded = np.stack([np.asarray(Image.open(tmp_path / "imgs" / k / f"{i}.png").convert("RGB"), dtype=np.float32)
                        .transpose(2, 0, 1) for k in ("a", "b") for i in range(2)])  # 4 x 4 already: no resize
    pre = _scaled_by_loader(spec, decoded, str(tmp_path))
    assert pre["steps"] == [{"op": "divide", "by": 255.0}] and "RGB" in pre["raw_input"]
    from engine.export.preprocessing import describe_preprocessing

    standardised = describe_preprocessing({"source": "digits"}, {"mean": [0.5], "std": [0.25]}, (1, 8, 8))
    assert standardised["steps"][1] == {"op": "standardize", "axis": 1, "mean": [0.5], "std": [0.25],
                                        "min_std": 1e-8}
