"""The run on the canvas: edges tinted by gradient norm (or weight magnitude), live activation
thumbnails on the nodes.  Shown while a run goes on, taken away when it ends."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QImage

from gui.views import SEQUENTIAL

OVERLAY_HZ = 5
_LUT = SEQUENTIAL.getLookupTable(nPts=256, alpha=False).astype(np.uint8)  # (256, 3)
_EDGE_LUT = pg.colormap.get("inferno").getLookupTable(nPts=256, alpha=False).astype(np.uint8)  # edge tints
MODES = {"grad": "gradient norm", "weight": "mean |weight|"}


def _to_u8(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # a diverging run's huge values
        scaled = (np.nan_to_num(a, nan=lo, posinf=hi, neginf=lo) - lo) / max(hi - lo, 1e-12)
        return np.clip(scaled * 255, 0, 255).astype(np.uint8)


def activation_thumbnail(a: np.ndarray, max_w: int = 48, max_h: int = 32) -> QImage | None:
    """A small colour image of a node's probe activations for the canvas."""
    if a is None or a.size == 0:
        return None
    if a.ndim == 4:  # (N, C, H, W): up to 4 channels of the first image, 2 x 2
        maps = a[0, :4]
        if len(maps) < 4:
            maps = np.concatenate([maps, np.full((4 - len(maps),) + maps.shape[1:], np.nan, maps.dtype)])
        h, w = maps.shape[1:]
        img = np.block([[maps[0], maps[1]], [maps[2], maps[3]]]) if h * 2 <= 64 else maps[0]
    elif a.ndim == 3:
        img = a[0]
    else:
        img = a.reshape(a.shape[0], -1)[:max_h, :max_w]
    finite = img[np.isfinite(img)]
    if finite.size == 0:
        return None
    lo, hi = float(finite.min()), float(finite.max())
    rgb = np.ascontiguousarray(_LUT[_to_u8(img, lo, hi)])
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format_RGB888).copy()


class CanvasOverlay:
    """Publishes a snapshot's overlay to the document (``Document.set_overlay``) at most
    OVERLAY_HZ times a second, and clears it."""

    def __init__(self, document):
        self.document = document
        self.enabled = True
        self.mode = "grad"  # "grad" | "weight"
        self.published = False
        self._last = 0.0

    def due(self, now: float) -> bool:
        if not self.enabled or now - self._last < 1.0 / OVERLAY_HZ:
            return False
        self._last = now
        return True

    def overlay_for(self, snap, info) -> dict:
        """``{"edge_colors": {edge id: (r, g, b, a)}, "node_images": {node id: QImage},
        "edge_legend": (lo, hi, label)}`` for a snapshot (lo / hi: log10 of the tinted values' range,
        drawn by the canvas's EdgeLegend)."""
        if info is None or snap is None:
            return {}
        by_fx = snap.grad_norms if self.mode == "grad" else snap.weight_mag
        values = {info.node_ids.get(k, ""): v for k, v in by_fx.items() if v is not None and math.isfinite(v) and v > 0}
        values.pop("", None)
        edge_colors = {}
        legend = None
        if values:
            logs = {k: math.log10(v) for k, v in values.items()}
            lo, hi = min(logs.values()), max(logs.values())
            span = max(hi - lo, 1e-9)
            for e in self.document.graph.edges:
                v = logs.get(e.dst, logs.get(e.src))
                if v is None:
                    continue
                t = 0.15 + 0.8 * ((v - lo) / span if hi > lo else 0.5)
                r, g, b = (int(c) for c in _EDGE_LUT[int(t * 255)])
                edge_colors[e.id] = (r, g, b, 255)
            legend = (lo, hi, MODES[self.mode])
        node_images = {}
        for fx_name, a in snap.activations.items():
            node_id = info.node_ids.get(fx_name)
            if node_id:
                img = activation_thumbnail(np.asarray(a, dtype=np.float32))
                if img is not None:
                    node_images[node_id] = img
        out = {"edge_colors": edge_colors, "node_images": node_images}
        if legend is not None:
            out["edge_legend"] = legend
        return out

    def publish(self, snap, info) -> None:
        overlay = self.overlay_for(snap, info)
        if overlay:
            self.document.set_overlay(overlay)
            self.published = True

    def clear(self) -> None:
        if self.published:
            self.published = False
            self.document.set_overlay({})
