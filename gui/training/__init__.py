"""Training in the GUI: the panel, the live views and the worker that runs the engine's Trainer.

``install_training_ui(window)`` is the main window's extension hook (``gui.app`` finds it): it
builds the ``TrainingController``, lays its panel and views out in docks, brings the views that
fit the data to the front, and asks the window to check with it before the project goes away
(a run in progress is stopped only when the user agrees).
"""
from __future__ import annotations

__all__ = ["install_training_ui"]


def install_training_ui(window, mode: str | None = None):
    """Add the training panel, the timeline and the live views to ``window``; returns the controller.

    ``window`` needs ``document`` and ``add_dock(widget, title, area, tabify=True)`` (a QMainWindow).
    The training subprocess starts now, so it is warm by the time someone presses Train.
    """
    from PySide6.QtCore import QEvent, QObject, Qt, QTimer
    from PySide6.QtWidgets import QApplication, QGroupBox, QScrollArea, QVBoxLayout, QWidget

    from gui.training.controller import TrainingController
    from gui.training.worker import TrainingWorker

    worker = TrainingWorker(mode=mode)
    controller = TrainingController(window.document, worker=worker, parent=window)
    worker.setParent(controller)
    window.training = controller
    if hasattr(window, "set_run_state"):  # the status bar says "training", not "ready to train", during a run
        worker.stateChanged.connect(window.set_run_state)

    def dock(widget, title, area, tabify=True):
        return window.add_dock(widget, title, area, tabify=tabify)

    right, bottom = Qt.RightDockWidgetArea, Qt.BottomDockWidgetArea
    # The panel and the timeline share one scrollable dock, so the window still fits 1280x800.
    box = QWidget()
    col = QVBoxLayout(box)
    col.setContentsMargins(0, 0, 0, 0)
    col.addWidget(controller.panel)
    group = QGroupBox("Timeline")
    gl = QVBoxLayout(group)
    gl.setContentsMargins(2, 2, 2, 2)
    gl.addWidget(controller.timeline)
    col.addWidget(group)
    col.addStretch(1)
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    scroll.setFrameShape(QScrollArea.NoFrame)
    scroll.setWidget(box)
    scroll.setMinimumWidth(min(290, controller.panel.minimumSizeHint().width() + 20))
    panel_dock = dock(scroll, "Training", right)
    panel_dock.raise_()
    _add_train_action(window, controller, panel_dock)
    # and once more when Qt has laid out the new tab: on a window already shown (the app installs
    # this when torch has loaded) the first raise_() does not take, and the Dataset tab stayed in
    # front, hiding the Train button
    QTimer.singleShot(0, window, panel_dock.raise_)
    # the right column runs the full height, so the panel is not squeezed above the views
    window.setCorner(Qt.BottomRightCorner, Qt.RightDockWidgetArea)

    # Live views: three columns at the bottom (split first: a tabbed dock cannot be split).
    v = controller.views
    loss_dock = dock(v["loss"], v["loss"].title, bottom, tabify=False)
    boundary_dock = dock(v["boundary"], v["boundary"].title, bottom, tabify=False)
    window.splitDockWidget(loss_dock, boundary_dock, Qt.Horizontal)
    act_dock = dock(v["activations"], v["activations"].title, bottom, tabify=False)
    window.splitDockWidget(boundary_dock, act_dock, Qt.Horizontal)
    docks = {"panel": panel_dock, "loss": loss_dock, "boundary": boundary_dock, "activations": act_dock}
    for key, anchor in (("regression", boundary_dock), ("weights", boundary_dock), ("gradients", act_dock),
                        ("dead_relu", act_dock), ("lr", loss_dock)):
        d = dock(v[key], v[key].title, bottom, tabify=False)
        window.tabifyDockWidget(anchor, d)
        docks[key] = d
    # the editor's bottom docks join the loss column as tabs
    for d in (window.problems_dock, window.code_dock, window.history_dock):
        if window.dockWidgetArea(d) == bottom:
            window.tabifyDockWidget(loss_dock, d)
    problems = window.problems_dock
    problems.raise_()
    controller.docks.update(docks)
    for key, d in docks.items():
        if key in v:
            controller.scheduler.watch_dock(d, v[key])
    window.resizeDocks([loss_dock], [310], Qt.Vertical)
    def size_columns() -> None:
        window.resizeDocks([loss_dock, boundary_dock, act_dock], [420, 280, 285], Qt.Horizontal)

    size_columns()
    # again once the parts installed after this one have joined the columns as tabs (their minimum
    # sizes, while they joined, pushed the loss column wide on a window already shown)
    QTimer.singleShot(0, window, size_columns)
    inspector = window.inspector_dock
    if window.dockWidgetArea(inspector) == right:
        window.resizeDocks([inspector, panel_dock], [170, 560], Qt.Vertical)

    def raise_for_data(run_started: bool = False) -> None:
        """Bring the views that fit the data to the front."""
        ds = window.document.dataset
        shape = tuple(ds.input_shape) if ds is not None else ()
        task = ds.task if ds is not None else None
        grid = shape == (2,) and task == "classification"
        curve = shape == (1,) and task == "regression"
        (boundary_dock if grid else docks["regression"] if curve else docks["weights"]).raise_()
        act_dock.raise_()
        if run_started:  # a run started: its loss curve matters more than the problem list
            loss_dock.raise_()

    raise_for_data()
    problems.raise_()
    controller.worker.runStarted.connect(lambda _began: raise_for_data(run_started=True))
    window.document.datasetChanged.connect(lambda _ds: raise_for_data())
    # an opened project that carries a run: its curves matter more than the problem list
    window.document.projectReplaced.connect(lambda: raise_for_data(run_started=not controller.history.is_empty()))
    window.add_leave_guard(lambda: controller.confirm_stop(window))

    class _CloseWatcher(QObject):
        """Stops the run when the window really closes (after its own closeEvent accepted)."""

        def eventFilter(self, obj, event):
            if obj is window and event.type() == QEvent.Close:
                type(window).event(window, event)  # let the window decide (it may ask to save)
                if event.isAccepted():
                    controller.shutdown()
                return True
            return False

    watcher = _CloseWatcher(controller)
    window.installEventFilter(watcher)
    controller._close_watcher = watcher
    app = QApplication.instance()
    if app is not None:
        app.aboutToQuit.connect(controller.shutdown)
    worker.warm()
    return controller


def _add_train_action(window, controller, panel_dock) -> None:
    """Train in the toolbar and on F5, as the Training panel's button (a first-time student looked
    for it in the menus and the toolbar): it brings the panel to the front and is enabled when the
    button is."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QAction, QKeySequence

    button = controller.panel.train_button
    act = QAction("▶ Train", window)
    act.setShortcut(QKeySequence(Qt.Key_F5))
    act.setToolTip("Train the network with the Training panel's settings (F5)")
    act.setEnabled(button.isEnabled())

    def train() -> None:
        panel_dock.show()
        panel_dock.raise_()
        if button.isEnabled():
            button.click()

    act.triggered.connect(train)
    controller.worker.stateChanged.connect(lambda _s: act.setEnabled(button.isEnabled()))
    window.act_train = act
    toolbar = getattr(window, "toolbar", None)
    if toolbar is not None:
        toolbar.addSeparator()
        toolbar.addAction(act)
    else:
        window.addAction(act)
