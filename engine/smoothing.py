"""Smoothing of noisy curves for display."""
from __future__ import annotations

import math

import numpy as np


def smooth_ema(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard-style debiased exponential moving average (``weight`` in [0, 1), 0 = raw).

    Vectorised as a convolution with the kernel ``(1 - w) * w**k``, truncated where ``w**k``
    drops below 1e-6, divided by the same convolution of ones (the debiasing); non-finite
    values are skipped (they neither count nor poison the average) and stay non-finite.
    """
    v = np.asarray(values, dtype=np.float64)
    if weight <= 0 or v.size == 0:
        return v
    weight = min(float(weight), 0.999)
    k = min(v.size, int(math.ceil(math.log(1e-6) / math.log(weight))) + 1)
    kernel = (1 - weight) * weight ** np.arange(k)
    finite = np.isfinite(v)
    num = np.convolve(np.where(finite, v, 0.0), kernel)[: v.size]
    den = np.convolve(finite.astype(np.float64), kernel)[: v.size]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[~finite] = v[~finite]
    return out
