"""Activations of one node on the fixed probe batch.

Vector outputs are a heatmap (probe samples × units); feature maps of a conv node are an image
grid (one tile per channel, for the first probe image).  The node follows clicks on the canvas.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSpinBox

from gui.views import DIVERGING, SEQUENTIAL, LiveView, make_image_plot, set_scale, tile_images


def activation_image(a: np.ndarray, sample: int = 0) -> tuple[np.ndarray, str]:
    """The image to draw for a node's probe activations, and a caption."""
    if a.ndim == 2:
        return a, f"{a.shape[0]} probe samples × {a.shape[1]} units"
    if a.ndim == 4:  # (N, C, H, W) feature maps
        s = min(sample, a.shape[0] - 1)
        return tile_images(a[s]), f"{a.shape[1]} feature maps {a.shape[2]}×{a.shape[3]} of probe image {s}"
    if a.ndim == 3:  # (N, T, F) sequences
        s = min(sample, a.shape[0] - 1)
        return a[s], f"probe sample {s}: {a.shape[1]} steps × {a.shape[2]} features"
    flat = a.reshape(a.shape[0], -1)
    return flat, f"{flat.shape[0]} probe samples"


class ActivationsView(LiveView):
    title = "Activations"

    def __init__(self, parent=None):
        super().__init__(parent)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Node"))
        self.node_box = QComboBox()
        self.node_box.setMinimumContentsLength(6)
        self.node_box.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        bar.addWidget(self.node_box, 1)
        bar.addWidget(QLabel("Image"))
        self.sample_box = QSpinBox()
        self.sample_box.setRange(0, 3)
        self.sample_box.setToolTip("Which probe image's feature maps to show")
        bar.addWidget(self.sample_box)
        self._layout.addLayout(bar)
        self.caption = QLabel("")
        self.caption.setWordWrap(True)  # a long caption must not widen the window
        self._layout.addWidget(self.caption)
        self.plot, self.img = make_image_plot(axes=False)
        # the colour scale: which value a colour stands for (levels are fixed per node for the run)
        self.colorbar = self.colour_bar((0.0, 1.0), SEQUENTIAL, "activation")
        self.colorbar.setImageItem(self.img, insert_in=self.plot.getPlotItem())
        self._layout.addWidget(self.plot, 1)
        self.info = None
        self._levels: dict[str, tuple[float, float]] = {}
        self._last_frame = None
        self.node_box.currentIndexChanged.connect(lambda _i: self._redraw())
        self.sample_box.valueChanged.connect(lambda _v: self._redraw())

    def reset(self, info) -> None:
        self.info = info
        self._last_frame = None  # a node or image choice redraws the last frame: never another run's
        self.caption.setText("")
        current = self.node_box.currentText()
        self.node_box.blockSignals(True)
        self.node_box.clear()
        nodes = list(info.nodes) if info else []
        self.node_box.addItems(nodes)
        if current in nodes:
            self.node_box.setCurrentText(current)
        elif info is not None and info.relu_nodes:
            self.node_box.setCurrentText(info.relu_nodes[0])
        self.node_box.blockSignals(False)
        self._levels.clear()
        self.img.clear()

    def select_node(self, fx_name: str | None) -> bool:
        """Show ``fx_name`` (from a canvas click); False if that node has no activations to show."""
        if not fx_name or self.node_box.findText(fx_name) < 0:
            return False
        self.node_box.setCurrentText(fx_name)
        return True

    def _redraw(self) -> None:
        if self._last_frame is not None:
            self.plot.getPlotItem().enableAutoRange()
            self.render(self._last_frame)

    def render(self, frame) -> None:
        self._last_frame = frame
        snap = frame.snapshot
        if snap is None:
            return
        name = self.node_box.currentText()
        a = snap.activations.get(name)
        if a is None:
            return
        a = np.asarray(a, dtype=np.float32)
        img, caption = activation_image(a, self.sample_box.value())
        self.caption.setText(caption)
        levels = self._levels.get(name)
        finite = img[np.isfinite(img)]
        if levels is None and finite.size:
            lo, hi = float(finite.min()), float(finite.max())
            if lo >= 0:  # after ReLU / pooling: 0 .. max
                levels = (0.0, max(hi, 1e-6) * 1.25)
            else:
                r = max(abs(lo), abs(hi), 1e-6) * 1.25
                levels = (-r, r)
            self._levels[name] = levels
        if levels is None:
            return
        set_scale(self.colorbar, levels, SEQUENTIAL if levels[0] >= 0 else DIVERGING)  # the image follows its bar
        self.img.setImage(img, autoLevels=False, levels=levels)
        self.frames_drawn += 1
