"""Synthetic 2-D / 1-D datasets for teaching: every one is deterministic given ``seed``.

Each generator reads its own parameters from the spec and returns raw arrays;
``build_dataset`` does the splitting and normalisation.  The table at the
bottom is what the GUI palette and ``main.py labs`` list.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from engine.data.params import get_choice, get_float, get_int
from engine.limits import check_dataset_memory

MAX_SAMPLES = 1_000_000

XY = ["x1", "x2"]


def _common(spec: dict, default_noise: float, min_samples: int = 10) -> tuple[int, float, int]:
    n = get_int(spec, "n_samples", 1000, minimum=min_samples, maximum=MAX_SAMPLES)
    noise = get_float(spec, "noise", default_noise, minimum=0.0)
    seed = get_int(spec, "seed", 0, minimum=0, maximum=2**32 - 1)  # numpy's RandomState takes 32 bits
    return n, noise, seed


def _two_curves(a: np.ndarray, b: np.ndarray, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Curve ``a`` (class 0) and curve ``b`` (class 1), shuffled, plus Gaussian noise.

    The same steps, in the same order and from the same ``RandomState``, as scikit-learn's
    ``make_moons`` / ``make_circles``, so a spec gives the very points it always gave
    (``tests/test_data.py`` checks this against scikit-learn), without importing scikit-learn
    (about a second) when a lab opens."""
    rng = np.random.RandomState(seed)
    x = np.concatenate([a, b])
    y = np.concatenate([np.zeros(len(a), np.intp), np.ones(len(b), np.intp)])
    order = np.arange(len(x))
    rng.shuffle(order)
    x, y = x[order], y[order]
    x = x + rng.normal(scale=noise, size=x.shape)
    return x, y


def moons(spec: dict):
    n, noise, seed = _common(spec, 0.2)
    n_out, n_in = n // 2, n - n // 2
    t_out, t_in = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n_in)
    upper = np.stack([np.cos(t_out), np.sin(t_out)], 1)
    lower = np.stack([1 - np.cos(t_in), 1 - np.sin(t_in) - 0.5], 1)
    x, y = _two_curves(upper, lower, noise, seed)
    return x, y, ["upper moon", "lower moon"], XY


def circles(spec: dict):
    n, noise, seed = _common(spec, 0.1)
    factor = get_float(spec, "factor", 0.5, minimum=0.01, maximum=0.99)
    n_out, n_in = n // 2, n - n // 2
    t_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    t_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    outer = np.stack([np.cos(t_out), np.sin(t_out)], 1)
    inner = np.stack([np.cos(t_in) * factor, np.sin(t_in) * factor], 1)
    x, y = _two_curves(outer, inner, noise, seed)
    return x, y, ["outer", "inner"], XY


def spirals(spec: dict):
    n, noise, seed = _common(spec, 0.2)
    k = get_int(spec, "n_classes", 2, minimum=2, maximum=10)
    turns = get_float(spec, "turns", 1.5, minimum=0.25, maximum=5.0)
    rng = np.random.default_rng(seed)
    # class c gets n // k points (the first n % k classes one more)
    y = np.repeat(np.arange(k), [n // k + (c < n % k) for c in range(k)])
    r = rng.uniform(0.05, 1.0, size=n)
    # arms are rotated copies of one Archimedean spiral: angle grows with radius
    theta = r * turns * 2 * np.pi + y * (2 * np.pi / k)
    x = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1) * 2.0
    x += rng.normal(scale=noise * 0.25, size=x.shape)  # noise relative to arm spacing
    return x, y, [f"arm {c}" for c in range(k)], XY


XOR_CORNERS = np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
XOR_FEW = 10  # below this many samples, XOR is its truth table: the four corners


def xor(spec: dict):
    """Uniform points in [-1, 1]^2; with fewer than 10 samples, the four corners in turn (n = 4 is
    the classic truth table), so a class can start from the textbook problem."""
    n, noise, seed = _common(spec, 0.1, min_samples=4)
    rng = np.random.default_rng(seed)
    clean = XOR_CORNERS[np.arange(n) % 4] if n < XOR_FEW else rng.uniform(-1.0, 1.0, size=(n, 2))
    # labels come from the clean points, so noise makes the quadrants overlap
    y = ((clean[:, 0] > 0) != (clean[:, 1] > 0)).astype(np.int64)
    x = clean + rng.normal(scale=noise, size=clean.shape)
    return x, y, ["same sign", "different sign"], XY


def blobs(spec: dict):
    from sklearn import datasets as skd  # lazy: sklearn adds ~2 s to engine import
    n, noise, seed = _common(spec, 1.0)
    k = get_int(spec, "n_classes", 3, minimum=2, maximum=50)
    d = get_int(spec, "n_features", 2, minimum=1, maximum=1000)
    # float64 from scikit-learn, then our float32 copies
    check_dataset_memory(n * d, f"blobs of {n:,} samples x {d:,} features", extra_bytes=8 * n * d)
    # noise is the cluster std; centres are drawn in sklearn's default box (-10, 10)
    x, y = skd.make_blobs(n_samples=n, centers=k, n_features=d, cluster_std=max(noise, 1e-6),
                          random_state=seed)
    return x, y, [f"blob {c}" for c in range(k)], XY if d == 2 else [f"x{i + 1}" for i in range(d)]


def regression_1d(spec: dict):
    n, noise, seed = _common(spec, 0.3)
    kind = get_choice(spec, "function", "cubic", ("cubic", "linear"))
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 2.0, size=(n, 1))
    clean = x ** 3 - 2.0 * x if kind == "cubic" else 1.5 * x + 0.5
    y = clean + rng.normal(scale=noise, size=clean.shape)
    return x, y, None, ["x"]


def sine(spec: dict):
    n, noise, seed = _common(spec, 0.1)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2 * np.pi, 2 * np.pi, size=(n, 1))
    y = np.sin(x) + rng.normal(scale=noise, size=x.shape)
    return x, y, None, ["x"]


@dataclass(frozen=True)
class GeneratorInfo:
    name: str
    task: str
    description: str
    params: dict[str, Any]
    make: Callable


GENERATORS: dict[str, GeneratorInfo] = {g.name: g for g in (
    GeneratorInfo("moons", "classification", "Two interleaving half circles; needs a curved boundary.",
                  {"n_samples": 1000, "noise": 0.2, "seed": 0}, moons),
    GeneratorInfo("circles", "classification", "A small circle inside a large one; not linearly separable.",
                  {"n_samples": 1000, "noise": 0.1, "seed": 0, "factor": 0.5}, circles),
    GeneratorInfo("spirals", "classification", "Interleaved spiral arms, one per class; hard for shallow nets.",
                  {"n_samples": 1000, "noise": 0.2, "seed": 0, "n_classes": 2, "turns": 1.5}, spirals),
    GeneratorInfo("xor", "classification", "Points in four quadrants labelled by whether x1 and x2 share a sign "
                  "(under 10 samples: the four corners, XOR's truth table).",
                  {"n_samples": 1000, "noise": 0.1, "seed": 0}, xor),
    GeneratorInfo("blobs", "classification", "Gaussian clusters, one per class; the easiest case.",
                  {"n_samples": 1000, "noise": 1.0, "seed": 0, "n_classes": 3, "n_features": 2}, blobs),
    GeneratorInfo("regression_1d", "regression", "A noisy cubic (or linear) curve: one input, one target.",
                  {"n_samples": 500, "noise": 0.3, "seed": 0, "function": "cubic"}, regression_1d),
    GeneratorInfo("sine", "regression", "A noisy sine wave over two periods: one input, one target.",
                  {"n_samples": 500, "noise": 0.1, "seed": 0}, sine),
)}


def generate(name: str, spec: dict):
    """``(x, y, class_names, feature_names)`` for the generator ``name``; defaults filled from the table."""
    info = GENERATORS[name]
    x, y, class_names, feature_names = info.make({**info.params, **spec})
    return np.asarray(x, dtype=np.float32), np.asarray(y), class_names, feature_names
