"""Evaluation and explanation in the GUI: the "Evaluation" and "Explain" docks.

``install_insight_ui(window)`` is a main-window extension (``gui.app.default_extensions`` lists
it after the training UI, whose controller it needs as ``window.training``).  It adds:

* ``ModelSource`` (gui/insight/model_source.py): the model both panels describe - the project's
  current weights, or the timeline's epoch while it is scrubbed - and when their results expire;
* ``EvaluationPanel`` (evaluation_panel.py): test-split figures, the confusion matrix and its
  samples, ROC and calibration; regression scatter and residuals;
* ``ExplainPanel`` (explain_panel.py): attribution maps, feature importance, the sanity check and
  activation maximisation for a chosen sample.

Both docks join the bottom row as tabs of its first column, and widen it when raised.  Nothing
here imports ``engine.explain`` or Captum until a panel computes something.

Signals for other parts of the app (e.g. the lab panel's inspection events), on ``window.insight``:

* ``explain.attributionRun(str)``: an attribution map was shown; the method's name
  (``"saliency"``, ``"integrated_gradients"``, ``"gradcam"``, ... as in ``engine.explain.METHODS``).
* ``explain.sanityCheckRun(list)``: a sanity-check grid was shown; the names of its methods.
* ``evaluation.evaluated(object)``: an evaluation was shown (``engine.explain.Evaluation``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Insight", "install_insight_ui"]

ROOM_WIDTH = 820  # px the raised panel's column gets (at most 62 % of the window)
ROOM_HEIGHT = 470  # px of height for the bottom row while a panel is raised (the canvas keeps the rest)


@dataclass
class Insight:
    source: Any  # ModelSource
    evaluation: Any  # EvaluationPanel
    explain: Any  # ExplainPanel
    evaluation_dock: Any
    explain_dock: Any

    def shutdown(self) -> None:
        """Stop any job (the window is closing)."""
        for panel in (self.evaluation, self.explain):
            try:
                panel.runner.cancel()
            except RuntimeError:  # already deleted
                pass

    def show_explain(self, split: str, index: int) -> None:
        if self.explain.set_sample(split, index):
            self.explain_dock.raise_()


def _scrolling(panel):
    """``panel`` in a scroll area: the Explain panel's controls need 500 px, and as the dock's own
    minimum they squeezed the bottom row's other columns; a raised panel gets its room anyway."""
    from PySide6.QtWidgets import QFrame, QScrollArea

    area = QScrollArea()
    area.setWidget(panel)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.NoFrame)
    area.setMinimumWidth(200)
    return area


def install_insight_ui(window) -> Insight:
    """Add the Evaluation and Explain docks to ``window`` (which needs ``document``, ``add_dock``
    and, for the timeline, ``training``); returns what it built (also ``window.insight``)."""
    from PySide6.QtCore import QEvent, QObject, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from gui.insight.evaluation_panel import EvaluationPanel
    from gui.insight.explain_panel import ExplainPanel
    from gui.insight.model_source import ModelSource

    training = getattr(window, "training", None)
    source = ModelSource(window.document, training, parent=window)
    evaluation = EvaluationPanel(source)
    explain = ExplainPanel(source)
    bottom = Qt.BottomDockWidgetArea
    anchor = (getattr(training, "docks", {}) or {}).get("loss")
    evaluation_dock = window.add_dock(_scrolling(evaluation), "Evaluation", bottom, tabify=anchor is None)
    explain_dock = window.add_dock(_scrolling(explain), "Explain", bottom, tabify=anchor is None)
    if anchor is not None:
        window.tabifyDockWidget(anchor, evaluation_dock)
        window.tabifyDockWidget(anchor, explain_dock)
        anchor.raise_()  # the loss curves stay in front until someone asks for more
    insight = Insight(source, evaluation, explain, evaluation_dock, explain_dock)
    window.insight = insight

    def make_room(dock) -> None:
        """A raised panel gets the width a confusion matrix and its samples need."""
        width = int(min(ROOM_WIDTH, 0.62 * window.width()))
        if dock.width() < width and not dock.isFloating():
            window.resizeDocks([dock], [width], Qt.Horizontal)
        if dock.height() < ROOM_HEIGHT and not dock.isFloating():
            window.resizeDocks([dock], [ROOM_HEIGHT], Qt.Vertical)

    def on_visible(dock, panel, visible: bool) -> None:
        if visible:
            make_room(dock)
            QTimer.singleShot(0, panel.came_into_sight)  # once the tab is really in front

    evaluation_dock.visibilityChanged.connect(lambda v: on_visible(evaluation_dock, evaluation, v))
    explain_dock.visibilityChanged.connect(lambda v: on_visible(explain_dock, explain, v))
    evaluation.explainRequested.connect(insight.show_explain)

    class _CloseWatcher(QObject):
        """Jobs stop when the window really closes (it may refuse: a question about saving)."""

        def eventFilter(self, obj, event):
            if obj is window and event.type() == QEvent.Close:
                QTimer.singleShot(0, self, self._after_close)
            return False

        def _after_close(self):
            try:
                if not window.isVisible():
                    insight.shutdown()
            except RuntimeError:  # the window is already deleted
                insight.shutdown()

    watcher = _CloseWatcher(window)
    window.installEventFilter(watcher)
    app = QApplication.instance()
    if app is not None:
        app.aboutToQuit.connect(insight.shutdown)
    return insight
