"""Small parts the evaluation and explain panels share: the job bar, images as pixmaps, class axes."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from gui import theme
from gui.views import PanelPlot, make_plot

HEAT = pg.colormap.get("inferno")  # |map| thumbnails: dark = nothing, bright = strong


class JobBar(QWidget):
    """A progress bar with Cancel, shown while a panel's job runs; a status sentence otherwise."""

    cancelClicked = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        row.addWidget(self.status, 1)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(True)
        self.bar.setFixedWidth(150)
        self.bar.hide()
        row.addWidget(self.bar)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop this computation (the window stays as it was)")
        self.cancel_button.clicked.connect(self.cancelClicked)
        self.cancel_button.hide()
        row.addWidget(self.cancel_button)

    def running(self, title: str) -> None:
        self.status.setText(f"{title}…")
        self.status.setStyleSheet("")
        self.bar.setValue(0)
        self.bar.setFormat("%p%")
        self.bar.show()
        self.cancel_button.show()

    def set_progress(self, fraction: float) -> None:
        self.bar.setValue(int(round(1000 * min(max(fraction, 0.0), 1.0))))

    def done(self, text: str = "", error: bool = False) -> None:
        self.bar.hide()
        self.cancel_button.hide()
        self.say(text, error)

    def say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(f"color: {theme.current().error};" if error else "")


# ----------------------------------------------------------------------------- images
def picture_plot() -> pg.PlotWidget:
    """A plot that shows one still picture: no axes, square pixels, row 0 at the top, no panning."""
    plot = make_plot(bottom=None, widget=PanelPlot)
    pi = plot.getPlotItem()
    pi.hideAxis("left")
    pi.hideAxis("bottom")
    pi.invertY(True)
    pi.setAspectLocked(True)
    pi.setMouseEnabled(False, False)
    return plot


def display_array(dataset, x, batch: bool = False) -> np.ndarray:
    """A sample (or a ``batch`` of them) as it was before standardisation, in the units a person
    knows (a centimetre, a pixel in 0..1), as numpy."""
    import torch

    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    t = t.detach().float()
    norm = getattr(dataset, "normalization", None)
    if norm is not None:
        try:
            t = norm.invert(t) if batch else norm.invert(t.unsqueeze(0))[0]
        except Exception:  # noqa: BLE001 - a normalisation that does not fit: show the values as they are
            pass
    return t.cpu().numpy()


def image_rgb8(sample: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """An image sample (C, H, W) or (H, W) as (H, W, 3) uint8, grey for one channel, scaled by
    ``value_range`` (default: its own min and max; pass (0, 1) to keep a [0, 1] image's brightness).
    (engine.explain.render does the same for the CLI; importing it here would load the explain
    package when a thumbnail is drawn.)"""
    img = np.asarray(sample, dtype=np.float64)
    while img.ndim > 3 and img.shape[0] == 1:
        img = img[0]
    if img.ndim == 3:
        img = img.transpose(1, 2, 0) if img.shape[0] == 3 else np.repeat(img[0][..., None], 3, axis=2)
    else:
        img = np.repeat(img[..., None], 3, axis=2)
    lo, hi = value_range if value_range is not None else (float(img.min()), float(img.max()))
    scaled = np.clip((img - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(img)
    return np.round(scaled * 255.0).astype(np.uint8)


def natural_range(image: np.ndarray) -> tuple[float, float] | None:
    """(0, 1) for an image already in [0, 1] (its brightness is meaningful), else None (its own range)."""
    return (0.0, 1.0) if float(np.min(image)) >= 0.0 and float(np.max(image)) <= 1.0 else None


def qimage(rgb: np.ndarray) -> QImage:
    """(H, W, 3) uint8 -> a QImage that owns a copy of the pixels."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format_RGB888).copy()


def pixmap(rgb: np.ndarray, size: int | None = None) -> QPixmap:
    """A pixmap of an RGB array, scaled without smoothing to ``size`` px on its longer side."""
    pm = QPixmap.fromImage(qimage(rgb))
    if size:
        pm = pm.scaled(size, size, Qt.KeepAspectRatio, Qt.FastTransformation)
    return pm


def heat_rgb8(values: np.ndarray, peak: float | None = None) -> np.ndarray:
    """|values| (H, W) through the HEAT colour map, 0..``peak`` (default: its own maximum)."""
    a = np.abs(np.asarray(values, dtype=np.float64))
    top = float(peak if peak is not None else (a.max() if a.size else 0.0))
    scaled = a / top if top > 0 else np.zeros_like(a)
    return HEAT.map(np.clip(scaled, 0.0, 1.0).ravel(), mode="byte")[:, :3].reshape(*a.shape, 3)


def map_plane(values: np.ndarray) -> np.ndarray:
    """An attribution map as a 2-D plane: images sum their channels, vectors become one row."""
    a = np.asarray(values, dtype=np.float64)
    if a.ndim == 3:
        return a.sum(0)
    if a.ndim == 1:
        return a[None, :]
    return a.reshape(a.shape[0], -1) if a.ndim > 2 else a


# ----------------------------------------------------------------------------- axes
class NamesAxis(pg.AxisItem):
    """An axis labelled with names at 0.5, 1.5, ... (one per row or column of a matrix).

    It draws the names itself: pyqtgraph leaves out tick labels it thinks crowded, and a class
    missing from an axis is worse than a tight one.  On the bottom they run vertically, so ten
    class names fit under ten narrow columns."""

    MARGIN = 6

    def __init__(self, orientation: str, **kwargs):
        super().__init__(orientation, **kwargs)
        self.names: list[str] = []
        self.enableAutoSIPrefix(False)
        self.setStyle(showValues=False)

    def set_names(self, names: list[str]) -> None:
        self.names = [str(n) for n in names]
        self.setTicks([[(i + 0.5, "") for i in range(len(self.names))], []])
        fm = pg.QtGui.QFontMetrics(self.style["tickFont"] or pg.QtGui.QFont())
        widest = max((fm.horizontalAdvance(n) for n in self.names), default=10)
        label = self.label.boundingRect().height() if self.label.isVisible() else 0
        if self.orientation == "bottom":
            self.setHeight(widest + 2 * self.MARGIN + label)
        else:
            self.setWidth(widest + 2 * self.MARGIN + label)
        self.picture = None
        self.update()

    def drawPicture(self, p, axisSpec, tickSpecs, textSpecs):
        super().drawPicture(p, axisSpec, tickSpecs, textSpecs)
        view = self.linkedView()
        if not self.names or view is None:
            return
        p.setPen(self.textPen())
        if self.style["tickFont"] is not None:
            p.setFont(self.style["tickFont"])
        fm = p.fontMetrics()
        h = fm.height()
        for i, name in enumerate(self.names):
            w = fm.horizontalAdvance(name) + 2
            centre = self.mapFromScene(view.mapViewToScene(QPointF(i + 0.5, i + 0.5)))
            if self.orientation == "bottom":
                p.save()
                p.translate(centre.x(), self.MARGIN)
                p.rotate(-90)  # reads bottom to top, ending at the tick
                p.drawText(QRectF(-w, -h / 2.0, w, h), int(Qt.AlignRight | Qt.AlignVCenter), name)
                p.restore()
            else:
                right = self.width() - self.MARGIN
                p.drawText(QRectF(right - w, centre.y() - h / 2.0, w, h), int(Qt.AlignRight | Qt.AlignVCenter), name)


def follow_theme(panel: QWidget) -> None:
    """Restyle every plot under ``panel`` when the theme switches (pyqtgraph reads its colours only
    when an item is made).  The panel needs an ``_on_theme`` method; it is held weakly."""
    theme.add_listener(panel._on_theme)


def restyle_plots(panel: QWidget, t) -> None:
    from gui.views import restyle_plot

    for plot in panel.findChildren(pg.PlotWidget):
        restyle_plot(plot, t)


def format_fraction(v) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.3f}"


def percent(v) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{100.0 * v:.1f} %"
