"""What the student looks at, recorded for a lab's inspection goals (``view_opened``,
``timeline_scrubbed``, ``attribution_run``, ``sanity_check_run``).

A view counts as *opened* when it is on screen while it shows a run: its dock comes to the front
(its tab is clicked, or the app raises it) after training, or a run ends while it is in front.
A view that only ever showed "this view comes alive when training starts" was not looked at.

Sources, found on the window when the lab UI is installed (and once more on the next event-loop
turn, so the order of the extensions does not matter):

* ``window.training`` (gui/training): ``docks`` (view key -> QDockWidget), ``timeline.scrubbed(int)``
  (an epoch's index; -1 is "live" and does not count), ``runStateChanged``, ``history``;
* ``window.insight`` (gui/insight, when installed): ``evaluation_dock`` and ``explain_dock``
  (the Evaluation and Explain views), ``explain.attributionRun(str)`` (a method's name) and
  ``explain.sanityCheckRun(list)`` (the names of the methods it checked).
"""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QScrollArea

#: gui/training's dock keys -> the view names lab files use (engine/labs/vocabulary.py)
TRAINING_VIEWS = {"loss": "loss", "boundary": "decision_boundary", "activations": "activations",
                  "regression": "regression", "weights": "weights", "gradients": "gradients",
                  "dead_relu": "dead_relu", "lr": "lr"}


def _on_screen(widget) -> bool:
    if isinstance(widget, QScrollArea) and widget.widget() is not None:
        widget = widget.widget()  # the scroll area's own region is only its frame: its viewport covers the rest
    return widget is not None and widget.isVisible() and not widget.visibleRegion().isEmpty()


class InspectionRecorder(QObject):
    def __init__(self, window, session, parent: QObject | None = None):
        super().__init__(parent or window)
        self.window = window
        self.session = session
        self._docks: dict[str, object] = {}  # view name -> dock
        self._insight = None
        self._training = None
        self.connect_sources()
        QTimer.singleShot(0, self, self.connect_sources)  # extensions installed after the lab UI

    def connect_sources(self) -> None:
        training = getattr(self.window, "training", None)
        if training is not None and self._training is None:
            self._training = training
            for key, view in TRAINING_VIEWS.items():
                dock = training.docks.get(key)
                if dock is not None:
                    self._watch(view, dock)
            training.timeline.scrubbed.connect(self._scrubbed)
            training.runStateChanged.connect(self._run_changed)
        insight = getattr(self.window, "insight", None)
        if insight is not None and self._insight is None:
            self._insight = insight
            for view, name in (("evaluation", "evaluation_dock"), ("attribution", "explain_dock")):
                dock = getattr(insight, name, None)
                if dock is not None:
                    self._watch(view, dock)
            explain = getattr(insight, "explain", None)
            if explain is not None:
                if hasattr(explain, "attributionRun"):
                    explain.attributionRun.connect(self.attribution_run)
                if hasattr(explain, "sanityCheckRun"):
                    explain.sanityCheckRun.connect(self.sanity_check_run)

    def _watch(self, view: str, dock) -> None:
        self._docks[view] = dock
        dock.visibilityChanged.connect(lambda visible, v=view: self._dock_visible(v, visible))

    # ------------------------------------------------------------------ views
    def _has_run(self) -> bool:
        return self._training is not None and not self._training.history.is_empty()

    def _dock_visible(self, view: str, visible: bool) -> None:
        # the insight views show something of their own (an evaluation, a map) without a run here
        if visible and (self._has_run() or view in ("evaluation", "attribution")) and self.window.isVisible():
            QTimer.singleShot(0, self, lambda: self._record_if_shown(view))  # once the tab is in front

    def _record_if_shown(self, view: str) -> None:
        dock = self._docks.get(view)
        if dock is not None and _on_screen(dock.widget()):
            self.session.record("view_opened", view=view)

    def _run_changed(self) -> None:
        """A run ended (or one was restored): the views in front show it."""
        if self._has_run():
            for view in list(self._docks):
                self._record_if_shown(view)

    def _scrubbed(self, index: int) -> None:
        if index >= 0:
            self.session.record("timeline_scrubbed")
            self.session.record("view_opened", view="timeline")

    # ------------------------------------------------------------------ explanations
    def attribution_run(self, method: str) -> None:
        self.session.record("attribution_run", method=str(method))
        self.session.record("view_opened", view="attribution")

    def sanity_check_run(self, methods=()) -> None:
        names = [str(m) for m in (methods or [])]
        self.session.record("sanity_check_run")
        for name in names:
            self.session.record("sanity_check_run", method=name)
