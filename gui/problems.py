"""The problems list: every error and warning of the latest analysis.

Clicking a problem selects (and scrolls to) its node or edge; a problem with a
suggested repair can be fixed with the button or by double-clicking it.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from engine.validate import Analysis, Issue
from gui import theme
from gui.commands import ApplyFixCommand

ISSUE_ROLE = Qt.UserRole + 1


class ProblemsPanel(QWidget):
    """``activated(node_id, edge_id)`` when the user clicks a problem; ``countChanged(errors, warnings)``."""

    activated = Signal(str, str)
    countChanged = Signal(int, int)

    def __init__(self, doc, parent=None):
        super().__init__(parent)
        self.doc = doc
        self.list = QListWidget()
        self.list.setWordWrap(True)
        self.list.setAlternatingRowColors(False)
        self.summary = QLabel()
        self.summary.setObjectName("Muted")
        self.summary.setWordWrap(True)  # the bottom dock column must stay narrow at 1280 px
        self.fix_button = QPushButton("Apply fix")
        self.fix_button.setObjectName("FixButton")
        self.fix_button.setEnabled(False)
        self.fix_button.setCursor(Qt.PointingHandCursor)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.summary, 1)
        top.addWidget(self.fix_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addLayout(top)
        lay.addWidget(self.list, 1)
        self.list.itemClicked.connect(self._clicked)
        self.list.itemDoubleClicked.connect(self._double_clicked)
        self.list.currentItemChanged.connect(lambda cur, _prev: self._update_button(cur))
        self.fix_button.clicked.connect(self._fix_current)
        doc.analysisChanged.connect(self.set_analysis)
        self.set_analysis(doc.analysis)

    def set_analysis(self, analysis: Analysis) -> None:
        t = theme.current()
        current = self.list.currentItem()
        keep = current.data(ISSUE_ROLE) if current is not None else None
        self.list.clear()
        issues = sorted(analysis.issues, key=lambda i: i.severity != "error")
        for issue in issues:
            mark = "✖" if issue.severity == "error" else "⚠"
            text = f"{mark}  {issue.message}"
            if issue.fix is not None:
                text += f"\n      Fix: {issue.fix.label}"
            item = QListWidgetItem(text)
            item.setData(ISSUE_ROLE, issue)
            item.setForeground(QColor(t.error if issue.severity == "error" else t.warning))
            item.setToolTip(str(issue))
            self.list.addItem(item)
            if keep is not None and issue == keep:
                self.list.setCurrentItem(item)
        n_err = len(analysis.errors)
        n_warn = len(analysis.warnings)
        if not issues:
            self.summary.setText("✓ No problems: the network is ready to train.")
        else:
            parts = []
            if n_err:
                parts.append(f"{n_err} error{'s' if n_err != 1 else ''}")
            if n_warn:
                parts.append(f"{n_warn} warning{'s' if n_warn != 1 else ''}")
            self.summary.setText(", ".join(parts) + " — click one to find it on the canvas.")
        self._update_button(self.list.currentItem())
        self.countChanged.emit(n_err, n_warn)

    def issues(self) -> list[Issue]:
        return [self.list.item(i).data(ISSUE_ROLE) for i in range(self.list.count())]

    def _update_button(self, item) -> None:
        issue = item.data(ISSUE_ROLE) if item is not None else None
        fix = issue.fix if issue is not None else None
        if fix is None:
            # no selection: offer the first fixable problem
            fix = next((i.fix for i in self.issues() if i.fix is not None), None) if item is None else None
        self.fix_button.setEnabled(fix is not None)
        self.fix_button.setToolTip(f"Apply: {fix.label}" if fix is not None else "This problem has no automatic fix.")
        self._fix = fix

    def _clicked(self, item: QListWidgetItem) -> None:
        issue: Issue = item.data(ISSUE_ROLE)
        self.activated.emit(issue.node_id or "", issue.edge_id or "")

    def _double_clicked(self, item: QListWidgetItem) -> None:
        issue: Issue = item.data(ISSUE_ROLE)
        if issue.fix is not None:
            self.doc.push(ApplyFixCommand(self.doc, issue.fix))

    def _fix_current(self) -> None:
        if getattr(self, "_fix", None) is not None:
            self.doc.push(ApplyFixCommand(self.doc, self._fix))
