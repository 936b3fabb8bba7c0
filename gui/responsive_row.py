"""A row of widgets that stacks them when the panel is too narrow for them side by side.

Docked panels sit in scroll areas that never scroll sideways: a row of buttons wider than its dock
(larger system fonts, a narrower dock) widened the whole panel, which then slid sideways whenever a
widget took focus, cutting the start of every line.  ``ResponsiveRow`` asks only for its widest
widget's width, and puts its widgets one under another below the width they need side by side.
"""
from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QBoxLayout, QWidget


class ResponsiveRow(QWidget):
    def __init__(self, widgets: list[QWidget], stretch: list[int] | None = None, parent=None):
        super().__init__(parent)
        self.widgets = list(widgets)
        self.box = QBoxLayout(QBoxLayout.LeftToRight, self)
        self.box.setContentsMargins(0, 0, 0, 0)
        self.box.setSpacing(6)
        for w, s in zip(self.widgets, stretch or [0] * len(self.widgets)):
            self.box.addWidget(w, s)

    def _side_by_side_width(self) -> int:
        shown = [w for w in self.widgets if not w.isHidden()]
        return sum(w.sizeHint().width() for w in shown) + self.box.spacing() * max(len(shown) - 1, 0)

    def minimumSizeHint(self) -> QSize:
        shown = [w for w in self.widgets if not w.isHidden()] or self.widgets
        width = max(w.minimumSizeHint().width() for w in shown)
        return QSize(width, super().minimumSizeHint().height())

    def resizeEvent(self, event) -> None:
        direction = (QBoxLayout.LeftToRight if event.size().width() >= self._side_by_side_width()
                     else QBoxLayout.TopToBottom)
        if direction != self.box.direction():
            self.box.setDirection(direction)
            self.updateGeometry()  # the height changes with the direction
        super().resizeEvent(event)
