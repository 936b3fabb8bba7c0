"""Exporting a run's history: metrics CSV and TensorBoard event files, through the engine's writers."""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from engine.run import write_metrics_csv, write_run_tensorboard


class RunExporter:
    """The panel's Export buttons.  ``history`` is the run history to write (gui.training.snapshots.RunHistory),
    ``steps_per_epoch`` a callable giving the run's steps per epoch (for TensorBoard's step axis)."""

    def __init__(self, panel, history, steps_per_epoch):
        self.panel = panel
        self.history = history
        self.steps_per_epoch = steps_per_epoch
        panel.exportCsvClicked.connect(self.export_csv_dialog)
        panel.exportTensorBoardClicked.connect(self.export_tensorboard_dialog)

    def export_csv(self, path: str | os.PathLike) -> Path:
        return write_metrics_csv(path, self.history.epochs)

    def export_tensorboard(self, logdir: str | os.PathLike) -> Path:
        loss = self.history.loss.arrays() if len(self.history.loss) else None
        return write_run_tensorboard(logdir, self.history.epochs, loss, self.steps_per_epoch())

    def export_csv_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.panel, "Export metrics as CSV", "metrics.csv", "CSV files (*.csv)")
        if path:
            try:
                self.export_csv(path)
                self.panel.show_status(f"Metrics written to {path}.")
            except OSError as e:
                self.panel.show_status(f"Cannot write {path}: {e.strerror}.", error=True)

    def export_tensorboard_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.panel, "Export TensorBoard event files to")
        if folder:
            try:
                p = self.export_tensorboard(folder)
                self.panel.show_status(f"TensorBoard events written to {p.parent} "
                                       f"(open with: tensorboard --logdir \"{p.parent}\").")
            except OSError as e:
                self.panel.show_status(f"Cannot write to {folder}: {e.strerror}.", error=True)
