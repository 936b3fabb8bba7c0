"""The mouse wheel scrolls a form; it changes a combo box or spin box only once you clicked it.

A form in a scroll area (the training panel, the dataset panel, the inspector) is full of
input widgets that take wheel events by default, so scrolling down the panel silently
changed whatever setting passed under the cursor.  ``guard_wheel(root)`` gives every
such widget under ``root`` the ``Qt.StrongFocus`` policy (a click or Tab focuses it, the
wheel does not) and a filter that hands the wheel to the enclosing scroll area while the
widget has no focus.  Call it again after adding widgets (it skips those it already has).
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractScrollArea, QAbstractSpinBox, QApplication, QComboBox, QSlider, QWidget

# QSlider, not QAbstractSlider: a scroll bar must keep its wheel (the scroll area forwards the wheel to it)
_INPUTS = (QComboBox, QAbstractSpinBox, QSlider)


def _scroll_area_of(widget: QWidget) -> QAbstractScrollArea | None:
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QAbstractScrollArea):
            return parent
        parent = parent.parentWidget()
    return None


class _WheelGuard(QObject):
    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Wheel and isinstance(obj, QWidget) and not obj.hasFocus():
            area = _scroll_area_of(obj)
            if area is not None:  # scroll the panel instead, as if the widget were not there
                QApplication.sendEvent(area.viewport(), event)
            else:
                event.ignore()
            return True
        return False


_GUARD: _WheelGuard | None = None


def guard_wheel(root: QWidget) -> None:
    """Stop the wheel from changing unfocused input widgets under ``root`` (and ``root`` itself)."""
    global _GUARD
    if _GUARD is None:
        _GUARD = _WheelGuard(QApplication.instance())
    widgets = [root, *root.findChildren(QWidget)]
    for w in widgets:
        if isinstance(w, _INPUTS) and not w.property("_wheel_guarded"):
            w.setFocusPolicy(Qt.StrongFocus)
            w.installEventFilter(_GUARD)
            w.setProperty("_wheel_guarded", True)
