"""The undo history: a QUndoView on the document's stack (click an entry to go back to it)."""
from __future__ import annotations

from PySide6.QtWidgets import QUndoView, QVBoxLayout, QWidget


class HistoryPanel(QWidget):
    def __init__(self, doc, parent=None):
        super().__init__(parent)
        self.view = QUndoView(doc.undo_stack)
        self.view.setEmptyLabel("<opened>")
        self.view.setToolTip("Every edit, oldest first. Click an entry to undo back to it; click a later one to redo.")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.view)
