"""Attribution maps drawn over their image, as RGB arrays (numpy only; the CLI writes them as PNG).

Colours: a signed map paints positive evidence red and negative blue; a map without negative
values (Grad-CAM, Saliency) runs from red (weak) to yellow (strong).  Each pixel's colour is mixed
in by ``opacity`` times its strength, so where the map is zero the image shows unchanged.
"""
from __future__ import annotations

import numpy as np

POSITIVE = np.array([1.0, 0.1, 0.05])
NEGATIVE = np.array([0.1, 0.35, 1.0])


def _plane(a: np.ndarray, what: str) -> np.ndarray:
    """(H, W) from (H, W), (C, H, W) (channels summed) or a leading batch of one."""
    a = np.asarray(a, dtype=np.float64)
    while a.ndim > 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3:
        a = a.sum(0)
    if a.ndim != 2:
        raise ValueError(f"{what} must be an image (H, W) or (C, H, W), got shape {a.shape}.")
    return a


def image_rgb(image: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """An image (H, W), (1, H, W) or (3, H, W) as RGB floats in [0, 1], scaled by ``value_range``
    (default: its own min and max)."""
    img = np.asarray(image, dtype=np.float64)
    while img.ndim > 3 and img.shape[0] == 1:
        img = img[0]
    if img.ndim == 3 and img.shape[0] == 3:
        rgb = img.transpose(1, 2, 0)
    elif img.ndim == 3 and img.shape[0] == 1:
        rgb = np.repeat(img[0][..., None], 3, axis=2)
    elif img.ndim == 2:
        rgb = np.repeat(img[..., None], 3, axis=2)
    else:
        raise ValueError(f"The image must be (H, W), (1, H, W) or (3, H, W), got shape {img.shape}.")
    lo, hi = value_range if value_range is not None else (float(rgb.min()), float(rgb.max()))
    return np.clip((rgb - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(rgb)


def heat_rgba(attribution: np.ndarray, signed: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(colour (H, W, 3), strength (H, W) in [0, 1]) of an attribution map."""
    a = _plane(attribution, "The attribution")
    peak = float(np.abs(a).max())
    strength = np.abs(a) / peak if peak > 0 else np.zeros_like(a)
    if signed is None:
        signed = bool(a.min() < 0)
    if signed:
        colour = np.where((a >= 0)[..., None], POSITIVE, NEGATIVE)
    else:
        colour = np.stack([np.ones_like(strength), strength, np.zeros_like(strength)], axis=-1)
    return colour, strength


def render_overlay(image: np.ndarray, attribution: np.ndarray, opacity: float = 0.6, *,
                   signed: bool | None = None, value_range: tuple[float, float] | None = None,
                   scale: int = 1) -> np.ndarray:
    """The map over the image as an (H * scale, W * scale, 3) uint8 RGB array.

    ``opacity`` in [0, 1]: 0 shows the image alone, 1 paints the strongest pixel in pure colour.
    ``signed``: None picks it from the map (any negative value); ``scale`` enlarges without
    smoothing (a 28x28 image is hard to see)."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must lie in 0..1, got {opacity}.")
    rgb = image_rgb(image, value_range)
    colour, strength = heat_rgba(attribution, signed)
    if colour.shape[:2] != rgb.shape[:2]:
        raise ValueError(f"The attribution is {colour.shape[:2]} but the image is {rgb.shape[:2]}; "
                         "scale the map to the image first.")
    alpha = (opacity * strength)[..., None]
    out = (1.0 - alpha) * rgb + alpha * colour
    if scale > 1:
        out = out.repeat(scale, axis=0).repeat(scale, axis=1)
    return np.round(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)
