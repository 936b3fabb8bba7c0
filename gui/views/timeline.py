"""The run's timeline: one weights checkpoint per epoch; scrub back, look, and restore.

The slider's last position is "live" (the views follow the training).  Any other position is an
epoch checkpoint: every view shows the model as it was at the end of that epoch, and
"Restore these weights" makes those weights the document's current ones.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

from gui.responsive_row import ResponsiveRow


def epoch_metrics_text(metrics: dict) -> str:
    """An epoch's validation figures, " · val loss 0.31 · val accuracy 0.9", to tell epochs apart."""
    text = ""
    for key in ("val_loss", "val_accuracy", "val_mse"):
        v = metrics.get(key)
        if isinstance(v, (int, float)):
            text += f" · {key.replace('_', ' ')} {v:.3g}"
    return text


class TimelineWidget(QWidget):
    title = "Timeline"
    scrubbed = Signal(int)  # checkpoint index, or -1 for live
    restoreRequested = Signal(int)  # checkpoint index

    def __init__(self, parent=None):
        super().__init__(parent)
        col = QVBoxLayout(self)
        col.setContentsMargins(6, 4, 6, 4)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setEnabled(False)
        self.slider.setToolTip("Scrub through the weights saved at the end of each epoch")
        self.slider.valueChanged.connect(self._moved)
        col.addWidget(self.slider)
        self.label = QLabel("no checkpoints yet")
        self.label.setWordWrap(True)
        col.addWidget(self.label)
        self.live_button = QPushButton("Live")
        self.live_button.setToolTip("Follow the training again")
        self.live_button.clicked.connect(self.go_live)
        self.restore_button = QPushButton("Restore these weights")
        self.restore_button.setEnabled(False)
        self.restore_button.clicked.connect(lambda: self.restoreRequested.emit(self.slider.value()))
        col.addWidget(ResponsiveRow([self.live_button, self.restore_button], stretch=[0, 1]))
        self._checkpoints: list[tuple[int, dict]] = []  # (epoch, metrics)
        self._live = True

    @property
    def live(self) -> bool:
        return self._live

    def clear(self) -> None:
        self._checkpoints.clear()
        self._live = True
        self.slider.blockSignals(True)
        self.slider.setRange(0, 0)
        self.slider.blockSignals(False)
        self.slider.setEnabled(False)
        self.restore_button.setEnabled(False)
        self.label.setText("no checkpoints yet")

    def add_checkpoint(self, epoch: int, metrics: dict) -> None:
        self._checkpoints.append((epoch, dict(metrics)))
        n = len(self._checkpoints)
        self.slider.blockSignals(True)
        self.slider.setRange(0, n - 1)
        if self._live:
            self.slider.setValue(n - 1)
        self.slider.blockSignals(False)
        self.slider.setEnabled(n > 1)
        if self._live:
            self._show_label(n - 1, live=True)

    def _describe(self, i: int) -> str:
        epoch, m = self._checkpoints[i]
        return ("initial weights" if epoch == 0 else f"epoch {epoch}") + epoch_metrics_text(m)

    def _show_label(self, i: int, live: bool) -> None:
        if not self._checkpoints:
            return
        self.label.setText(("live · latest: " if live else "") + self._describe(i))

    def _moved(self, i: int) -> None:
        if not self._checkpoints:
            return
        self._live = False
        self.restore_button.setEnabled(True)
        self._show_label(i, live=False)
        self.scrubbed.emit(i)

    def show_checkpoint(self, i: int) -> None:
        """Scrub to checkpoint ``i`` programmatically (emits ``scrubbed``)."""
        if not self._checkpoints:
            return
        i = max(0, min(i, len(self._checkpoints) - 1))
        if self.slider.value() == i:
            self._moved(i)
        else:
            self.slider.setValue(i)

    def go_live(self) -> None:
        self._live = True
        self.restore_button.setEnabled(False)
        if self._checkpoints:
            self.slider.blockSignals(True)
            self.slider.setValue(len(self._checkpoints) - 1)
            self.slider.blockSignals(False)
            self._show_label(len(self._checkpoints) - 1, live=True)
        self.scrubbed.emit(-1)
