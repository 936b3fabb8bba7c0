"""The main window: composition only.

Canvas in the centre; palette on the left; inspector and dataset on the right;
problems, code and history at the bottom; a status bar with the totals.  Menus
and shortcuts follow platform conventions (QKeySequence.StandardKey).  Other
parts of the app (training panel, live views) plug in through ``extensions``:
callables ``fn(window)`` run at the end of ``__init__`` that typically call
``window.add_dock(...)``.
"""
from __future__ import annotations

import os
import traceback
from typing import Callable, Iterable

from PySide6.QtCore import QByteArray, QRect, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QTabBar, QToolBar, QToolButton, QWidget

from engine.errors import LayerLabError
from engine.project import file_stem, list_starters, load_starter
from engine.templates import TEMPLATES
from gui import dialogs, theme
from gui.autosave import Autosaver
from gui.canvas import GraphScene, GraphView
from gui.canvas.node_item import human_count
from gui.code_view import CodeView
from gui.commands import auto_layout
from gui.dataset_panel import DatasetPanel
from gui.document import Document
from gui.history_panel import HistoryPanel
from gui.inspector import Inspector
from gui.palette import Palette
from gui.problems import ProblemsPanel
from gui.recent import add_recent_file, app_settings, recent_files

FILE_FILTERS = "LayerLab projects (*.layerlab);;JSON graph or project (*.json);;All files (*)"
OPEN_FILTERS = "LayerLab files (*.layerlab *.json);;All files (*)"
STATUS_MS = 6000
#: what the status bar says for each training-worker state while a run is on (others: the graph's state)
_RUN_STATE_TEXT = {"running": "● training", "paused": "‖ paused", "stopping": "■ stopping…"}


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n} B"


class MainWindow(QMainWindow):
    def __init__(self, document: Document | None = None, extensions: Iterable[Callable] = (),
                 autosave: bool = True, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document or Document()
        self.extensions: list[Callable] = list(extensions)
        self.setObjectName("LayerLabMainWindow")
        self.setWindowTitle("LayerLab")
        self.setDockNestingEnabled(True)
        self.setDockOptions(QMainWindow.AnimatedDocks | QMainWindow.AllowTabbedDocks | QMainWindow.AllowNestedDocks)
        self._close_confirmed = False
        self._keep_recovery = False  # a close that could not ask keeps the recovery file
        # Asked before the open project goes away (quit, New, Open): each returns False to keep it.
        self._leave_guards: list[Callable[[], bool]] = []

        # --- canvas
        self.scene = GraphScene(self.document, self)
        self.view = GraphView(self.scene, self)
        self.setCentralWidget(self.view)

        # --- docks
        self.palette = Palette()
        self.inspector = Inspector(self.document)
        self.dataset_panel = DatasetPanel(self.document)
        self.problems = ProblemsPanel(self.document)
        self.code_view = CodeView(self.document)
        self.history = HistoryPanel(self.document)
        self.palette_dock = self.add_dock(self.palette, "Layers", Qt.LeftDockWidgetArea)
        self.inspector_dock = self.add_dock(self.inspector, "Inspector", Qt.RightDockWidgetArea)
        self.dataset_dock = self.add_dock(self.dataset_panel, "Dataset", Qt.RightDockWidgetArea, tabify=False)
        self.problems_dock = self.add_dock(self.problems, "Problems", Qt.BottomDockWidgetArea)
        self.code_dock = self.add_dock(self.code_view, "Code", Qt.BottomDockWidgetArea)
        # History is a narrow list: a tab beside the palette, so the bottom tabs (which the live
        # views join) keep their titles whole at 1280 px
        self.history_dock = self.add_dock(self.history, "History", Qt.LeftDockWidgetArea)
        self.palette_dock.raise_()
        self.splitDockWidget(self.inspector_dock, self.dataset_dock, Qt.Vertical)
        self.problems_dock.raise_()
        self.resizeDocks([self.palette_dock], [max(165, self.palette.preferred_width())], Qt.Horizontal)
        self.resizeDocks([self.inspector_dock], [285], Qt.Horizontal)
        self.resizeDocks([self.problems_dock], [150], Qt.Vertical)
        self.resizeDocks([self.inspector_dock, self.dataset_dock], [300, 400], Qt.Vertical)

        # --- status bar: transient messages left, totals right
        self.totals_label = QLabel()
        self.state_label = QLabel()
        self._graph_state = (0, 0)  # errors, warnings of the graph
        self._run_state = "idle"  # the training worker's, when a training UI is installed
        self.zoom_label = QLabel("100%")
        for w in (self.state_label, self.totals_label, self.zoom_label):
            self.statusBar().addPermanentWidget(w)
        # a message longer than the bar's free width is cut at its edge: hovering shows all of it
        bar = self.statusBar()
        bar.messageChanged.connect(lambda text: bar.setToolTip(text))  # not a slot: PySide warned of a dynamic one

        self.autosaver = Autosaver(self.document, parent=self) if autosave else None
        self._build_actions()
        self._build_menus()
        self._wire()
        self._update_title()
        self._update_totals(self.document.analysis)
        self.resize(1280, 800)
        self._restore_state()
        # a child timer (not QTimer.singleShot) so a pending fit dies with the window
        self._fit_timer = QTimer(self)
        self._fit_timer.setSingleShot(True)
        self._fit_timer.setInterval(0)
        self._fit_timer.timeout.connect(self.view.fit_readable)
        self._fit_timer.start()

        # --- extensions (the training UI installs itself here)
        self.install_extensions(self.extensions)

    def install_extensions(self, extensions: Iterable[Callable]) -> None:
        """Run extension hooks ``fn(window)`` (at construction, or later: the app installs the parts
        that need torch once it has loaded); one failing must not take the editor down."""
        for fn in extensions:
            if fn not in self.extensions:
                self.extensions.append(fn)
            try:
                fn(self)
            except Exception:
                traceback.print_exc()
                self.statusBar().showMessage(f"An add-on failed to load: {getattr(fn, '__name__', fn)}", STATUS_MS)
        self.hide_stale_tab_bars()

    # ------------------------------------------------------------------ composition API
    def add_dock(self, widget: QWidget, title: str, area=Qt.RightDockWidgetArea, tabify: bool = True) -> QDockWidget:
        """Add ``widget`` as a dock; it joins the docks already in ``area`` as a tab."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower().replace(' ', '_')}")
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable
                         | QDockWidget.DockWidgetClosable)
        existing = [d for d in self.findChildren(QDockWidget)
                    if d is not dock and self.dockWidgetArea(d) == area and not d.isFloating()]
        self.addDockWidget(area, dock)
        if tabify and existing:
            self.tabifyDockWidget(existing[-1], dock)
        if hasattr(self, "view_menu_docks"):
            self.view_menu_docks.addAction(dock.toggleViewAction())
        return dock

    def add_leave_guard(self, guard: Callable[[], bool]) -> None:
        """``guard()`` is asked before the open project is closed or replaced (e.g. "a run is in
        progress: stop it?"); it returns False to keep the project open."""
        self._leave_guards.append(guard)

    def may_leave_project(self) -> bool:
        return all(guard() for guard in self._leave_guards)

    def childEvent(self, event) -> None:
        super().childEvent(event)
        # a new dock tab bar is a QTabBar only once built (ChildPolished, not ChildAdded), and Qt
        # sets its elide mode after that: ours goes on in the next turn of the event loop
        if event.polished() and isinstance(event.child(), QTabBar):
            QTimer.singleShot(0, self, self.whole_tab_titles)

    def whole_tab_titles(self) -> None:
        """Dock tabs show their whole titles ("Dead ReLUs", not "Dead R…"); a row too narrow for
        them scrolls, with arrows at its end, as in an IDE."""
        for bar in self.findChildren(QTabBar, options=Qt.FindDirectChildrenOnly):
            if bar.elideMode() != Qt.ElideNone:
                bar.setElideMode(Qt.ElideNone)
                bar.setUsesScrollButtons(True)

    def hide_stale_tab_bars(self) -> None:
        """Hide the dock tab bars Qt left behind, drawn over the real ones with their old tabs.

        Qt (seen with 6.11) keeps the tab bar of every intermediate dock group formed while the
        window was not yet shown (each tabify / split before ``show()``) visible, with its old
        tabs, stacked over the live bars ("Probl…" over "Decision boundary").  Qt positions only
        the bars it uses when it lays the window out, so a bar it leaves where we put it is stale.
        """
        bars = [b for b in self.findChildren(QTabBar, options=Qt.FindDirectChildrenOnly) if not b.isHidden()]
        parked = QRect(-10000, -10000, 10, 10)
        for bar in bars:
            bar.setGeometry(parked)
        size = self.size()
        for nudge in (size + QSize(1, 1), size):  # a new size: Qt re-places every bar it uses
            self.resize(nudge)
            self.layout().invalidate()
            self.layout().activate()
        for bar in bars:
            if bar.geometry() == parked:
                bar.hide()

    # ------------------------------------------------------------------ actions
    def _action(self, text: str, slot, shortcut=None, parent=None, tip: str = "",
                context=Qt.WindowShortcut) -> QAction:
        a = QAction(text, parent or self)
        if shortcut is not None:
            a.setShortcuts(QKeySequence.keyBindings(shortcut) if isinstance(shortcut, QKeySequence.StandardKey)
                           else [QKeySequence(shortcut)])
            a.setShortcutContext(context)
        if tip:
            a.setToolTip(tip)
            a.setStatusTip(tip)
        # triggered(bool) passes "checked": only a checkable action's slot is given it (Fit to View
        # took False for its max_zoom and scaled the canvas by 0)
        a.triggered.connect(lambda checked=False: slot(checked) if a.isCheckable() else slot())
        if parent is None or parent is self:
            self.addAction(a)
        return a

    def _build_actions(self) -> None:
        doc, scene, view = self.document, self.scene, self.view
        SK = QKeySequence.StandardKey
        canvas = Qt.WidgetWithChildrenShortcut  # Delete / Copy / Paste act on the canvas only when it has focus
        self.act_new = self._action("&Blank project", lambda: self.new_project(None), SK.New,
                                    tip="A new project with just an Input and an Output.")
        self.act_open = self._action("&Open…", self.open_dialog, SK.Open, tip="Open a .layerlab project or .json graph.")
        self.act_save = self._action("&Save", self.save, SK.Save)
        self.act_save_as = self._action("Save &As…", self.save_as, SK.SaveAs)
        self.act_quit = self._action("&Quit", self.close, SK.Quit)
        self.act_undo = doc.undo_stack.createUndoAction(self, "&Undo")
        self.act_undo.setShortcuts(QKeySequence.keyBindings(SK.Undo))
        self.act_redo = doc.undo_stack.createRedoAction(self, "&Redo")
        self.act_redo.setShortcuts(QKeySequence.keyBindings(SK.Redo))
        self.addAction(self.act_undo)
        self.addAction(self.act_redo)
        self.act_cut = self._action("Cu&t", scene.cut_selection, SK.Cut, view, context=canvas)
        self.act_copy = self._action("&Copy", scene.copy_selection, SK.Copy, view, context=canvas)
        self.act_paste = self._action("&Paste", scene.paste, SK.Paste, view, context=canvas)
        self.act_duplicate = self._action("&Duplicate", scene.duplicate_selection, "Ctrl+D", view, context=canvas)
        self.act_delete = self._action("&Delete", scene.delete_selection, SK.Delete, view, context=canvas)
        self.act_delete.setShortcuts(QKeySequence.keyBindings(SK.Delete) + [QKeySequence(Qt.Key_Backspace)])
        self.act_select_all = self._action("Select &All", self.select_all, SK.SelectAll, view, context=canvas)
        self.act_add_layer = self._action("&Add Layer…", view.quick_add_after_selection, "Ctrl+K", view,
                                          context=canvas, tip="Search the layers; the one you pick goes after "
                                                              "the selected layer, connected to it.")
        for a in (self.act_cut, self.act_copy, self.act_paste, self.act_duplicate, self.act_delete,
                  self.act_select_all, self.act_add_layer):
            view.addAction(a)
        self.act_layout = self._action("Auto-&layout", self.auto_layout, "Ctrl+L",
                                       tip="Arrange the layers in columns that follow the data flow.")
        self.act_fit = self._action("&Fit to View", view.fit_to_view, "Ctrl+0", tip="Show the whole network.")
        self.act_zoom_in = self._action("Zoom &In", view.zoom_in, SK.ZoomIn)
        self.act_zoom_out = self._action("Zoom &Out", view.zoom_out, SK.ZoomOut)
        self.act_grid = self._action("Show &Grid", self._toggle_grid)
        self.act_grid.setCheckable(True)
        self.act_grid.setChecked(True)
        self.act_snap = self._action("&Snap to Grid", self._toggle_snap)
        self.act_snap.setCheckable(True)
        self.act_snap.setChecked(True)
        self.act_dark = self._action("&Dark Theme", self._toggle_dark, "Ctrl+Shift+T")
        self.act_dark.setCheckable(True)
        self.act_dark.setChecked(theme.current().name == "dark")
        self.act_about = self._action("&Quick Start", self._quick_start)

    def _build_menus(self) -> None:
        mb = self.menuBar()
        file_menu = mb.addMenu("&File")
        new_menu = file_menu.addMenu("&New")
        new_menu.addAction(self.act_new)
        new_menu.addSeparator()
        for key, (description, _make) in TEMPLATES.items():
            a = new_menu.addAction(description.split(":")[0], lambda k=key: self.new_project(k))
            a.setToolTip(description)
            a.setStatusTip(description)
        starters = file_menu.addMenu("Starter &projects")
        for s in list_starters():
            a = starters.addAction(s["title"], lambda n=s["name"]: self.open_starter(n))
            a.setStatusTip(s["description"])
        file_menu.addAction(self.act_open)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addSeparator()
        file_menu.addAction(self.act_save)
        file_menu.addAction(self.act_save_as)
        file_menu.addSeparator()
        file_menu.addAction(self.act_quit)

        edit = mb.addMenu("&Edit")
        for a in (self.act_undo, self.act_redo, None, self.act_add_layer, None, self.act_cut, self.act_copy,
                  self.act_paste, self.act_duplicate, self.act_delete, None, self.act_select_all, self.act_layout):
            edit.addSeparator() if a is None else edit.addAction(a)

        view_menu = mb.addMenu("&View")
        for a in (self.act_fit, self.act_zoom_in, self.act_zoom_out, None, self.act_grid, self.act_snap, None,
                  self.act_dark):
            view_menu.addSeparator() if a is None else view_menu.addAction(a)
        view_menu.addSeparator()
        self.view_menu_docks = view_menu.addMenu("&Panels")
        for dock in self.findChildren(QDockWidget):
            self.view_menu_docks.addAction(dock.toggleViewAction())

        help_menu = mb.addMenu("&Help")
        help_menu.addAction(self.act_about)

        tb = QToolBar("Main")
        tb.setObjectName("toolbar_main")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonTextOnly)
        new_button = QToolButton()
        new_button.setText("New")
        new_button.setMenu(new_menu)
        new_button.setPopupMode(QToolButton.InstantPopup)
        new_button.setToolTip("Start a new network: blank or from a template.")
        tb.addWidget(new_button)
        # toolbar undo/redo keep short labels; the menu entries say what they undo
        stack = self.document.undo_stack
        self.tb_undo = QAction("Undo", self)
        self.tb_undo.triggered.connect(stack.undo)
        self.tb_redo = QAction("Redo", self)
        self.tb_redo.triggered.connect(stack.redo)
        stack.canUndoChanged.connect(self.tb_undo.setEnabled)
        stack.canRedoChanged.connect(self.tb_redo.setEnabled)
        stack.undoTextChanged.connect(self._undo_text)
        stack.redoTextChanged.connect(self._redo_text)
        self.tb_undo.setEnabled(stack.canUndo())
        self.tb_redo.setEnabled(stack.canRedo())
        for a in (self.act_open, self.act_save, None, self.tb_undo, self.tb_redo, None, self.act_layout,
                  self.act_fit):
            tb.addSeparator() if a is None else tb.addAction(a)
        self.addToolBar(Qt.TopToolBarArea, tb)
        self.toolbar = tb

    def _undo_text(self, text: str) -> None:
        self.tb_undo.setToolTip(f"Undo {text}" if text else "Nothing to undo")

    def _redo_text(self, text: str) -> None:
        self.tb_redo.setToolTip(f"Redo {text}" if text else "Nothing to redo")

    def _wire(self) -> None:
        doc = self.document
        doc.modifiedChanged.connect(self._update_title)
        doc.pathChanged.connect(self._update_title)
        doc.projectReplaced.connect(self._on_project_replaced)
        doc.analysisChanged.connect(self._update_totals)
        self.scene.statusMessage.connect(lambda m: self.statusBar().showMessage(m, STATUS_MS))
        self.palette.addRequested.connect(self.add_layer_at_centre)
        self.problems.activated.connect(self.reveal)
        self.view.zoomChanged.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f}%"))
        if self.autosaver is not None:
            self.autosaver.failed.connect(lambda m: self.statusBar().showMessage(m, STATUS_MS))

    # ------------------------------------------------------------------ status / title
    def _update_title(self, *_args) -> None:
        doc = self.document
        self.setWindowModified(doc.is_modified())
        self.setWindowTitle(f"{doc.display_name}[*] — LayerLab")

    def _update_totals(self, analysis) -> None:
        self.totals_label.setText(f"Params: {analysis.total_params:,}   ·   FLOPs/sample: {human_count(analysis.flops)}"
                                  f"   ·   Activations/sample: {human_bytes(analysis.activation_bytes)}")
        self.totals_label.setToolTip("Trainable parameters; multiply-adds ×2 for one forward pass of one sample; "
                                     "memory for the activations of one sample (float32).")
        self._graph_state = (len(analysis.errors), len(analysis.warnings))
        self._show_state()

    def set_run_state(self, state: str) -> None:
        """The training worker's state ("idle", "running", "paused", "stopping"...): while a run is
        on, the status bar says so instead of "ready to train"."""
        self._run_state = state
        self._show_state()

    def _show_state(self) -> None:
        n_err, n_warn = self._graph_state
        t = theme.current()
        graph = ""
        if n_err:
            graph = f"<span style='color:{t.error}'>✖ {n_err} error{'s' if n_err != 1 else ''}</span>"
        elif n_warn:
            graph = f"<span style='color:{t.warning}'>⚠ {n_warn} warning{'s' if n_warn != 1 else ''}</span>"
        run = _RUN_STATE_TEXT.get(self._run_state)
        if run:  # the graph's state still shows: an edit during a run can break it
            self.state_label.setText(f"<span style='color:{t.highlight}'>{run}</span>" + (f"  ·  {graph}" if graph else ""))
        else:
            self.state_label.setText(graph or f"<span style='color:{t.ok}'>✓ ready to train</span>")

    def _on_project_replaced(self) -> None:
        self._update_title()
        self._fit_timer.start()

    # ------------------------------------------------------------------ editing
    def add_layer_at_centre(self, type_name: str) -> str:
        """Double-click in the palette: add the layer at the centre of the visible canvas (nudged off others)."""
        pos = self.view.visible_centre()
        taken = {(round(i.pos().x()), round(i.pos().y())) for i in self.scene.nodes.values()}
        from gui.canvas.node_item import NODE_H, NODE_W
        x, y = round((pos.x() - NODE_W / 2) / 10) * 10, round((pos.y() - NODE_H / 2) / 10) * 10
        while (x, y) in taken:
            x, y = x + 30, y + 30
        from PySide6.QtCore import QPointF
        try:
            nid = self.scene.add_layer(type_name, QPointF(x, y), centred=False)
        except LayerLabError as exc:
            dialogs.show_error(self, "Cannot add the layer", str(exc))
            return ""
        self.view.setFocus()
        return nid

    def select_all(self) -> None:
        self.scene.select_only(list(self.scene.nodes), list(self.scene.edges))

    def auto_layout(self) -> None:
        if auto_layout(self.document):
            self._fit_timer.start()

    def reveal(self, node_id: str, edge_id: str) -> None:
        """Select a problem's node or edge and scroll it into view."""
        if node_id and node_id in self.scene.nodes:
            self.scene.select_only([node_id])
            self.view.ensureVisible(self.scene.nodes[node_id].sceneBoundingRect(), 60, 60)
        elif edge_id and edge_id in self.scene.edges:
            self.scene.select_only(edge_ids=[edge_id])
            self.view.ensureVisible(self.scene.edges[edge_id].sceneBoundingRect(), 60, 60)

    def _toggle_grid(self, on: bool) -> None:
        self.view.show_grid = on
        self.view.viewport().update()

    def _toggle_snap(self, on: bool) -> None:
        self.scene.snap_to_grid = on

    def _toggle_dark(self, on: bool) -> None:
        theme.apply_theme("dark" if on else "light")
        self._update_totals(self.document.analysis)
        self.view.viewport().update()

    def _quick_start(self) -> None:
        dialogs.show_info(self, "Quick start", self.quick_start_text())

    def quick_start_text(self) -> str:
        """Help > Quick Start: build, train, watch, in the names the window uses now."""
        undo = QKeySequence(QKeySequence.Undo).toString(QKeySequence.NativeText)
        steps = [
            "Pick data in the Dataset panel (e.g. moons), or open one of File > Starter projects.",
            "Drag layers from the Layers palette onto the canvas (onto a connection to insert one there), or "
            "double-click the canvas and type a name (Enter adds the top match).",
            "Connect them: drag from a layer's right-hand dot to the next layer's left-hand dot, "
            "from Input through your layers to Output.",
            "Every layer shows its output shape and parameter count; red marks a problem, and the blue "
            "Fix button under a layer repairs the common ones. Select a layer to edit it in the Inspector.",
        ]
        if getattr(self, "training", None) is not None:
            steps += [
                "Train: in the Training panel set the learning rate and epochs, then press Train "
                "(or ▶ Train in the toolbar, F5; Pause, Step and Stop work during the run; Reset weights "
                "starts again from the seed).",
                "Watch the live views at the bottom: Loss, Decision boundary (Fitted curve for "
                "regression), Activations, "
                "Weights, Gradient norms, Dead ReLUs, Learning rate. The canvas tints edges by gradient "
                "size (legend at the top right).",
                "Look back with the Timeline under the Training panel: drag it to an epoch to see the network "
                "then, and \"Restore these weights\" to continue from there. Export run: CSV or TensorBoard.",
            ]
        if getattr(self, "insight", None) is not None:
            steps.append("After training: the Evaluation and Explain panels show the test results, the confusion "
                         "matrix and what the network looks at.")
        if getattr(self, "act_export", None) is not None:
            steps.append("File > Export… writes the model for other tools (ONNX, PyTorch code, …).")
        if getattr(self, "lab_actions", None) is not None:
            steps.append("File > Labs has step-by-step labs whose Lab panel ticks your work as you go.")
        lines = [f"{i}. {text}" for i, text in enumerate(steps, 1)]
        lines.append(f"\nZoom: mouse wheel · Pan: middle-drag or Space+drag · Undo: {undo}")
        add = self.act_add_layer.shortcut().toString(QKeySequence.NativeText)
        lines.append("Keyboard: Tab walks the layers · Shift+F10 (or the Menu key) opens the selected layer's "
                     f"menu, to connect it · {add} adds a layer after it · arrows move it · Delete removes it")
        return "\n".join(lines)

    # ------------------------------------------------------------------ projects
    def maybe_save(self) -> bool:
        """Ask about unsaved changes; True when it is fine to throw the current document away."""
        if not self.document.is_modified():
            return True
        answer = dialogs.ask_save_changes(self, self.document.display_name)
        if answer == "save":
            return self.save()
        return answer == "discard"

    def _replace_document(self, load: Callable[[], None], failure_title: str, ask: bool = True) -> bool:
        """Offer to save, then ``load()`` another project; a LayerLabError shows one sentence and
        leaves the current document as it was."""
        if ask and not (self.may_leave_project() and self.maybe_save()):
            return False
        try:
            load()
        except LayerLabError as exc:
            dialogs.show_error(self, failure_title, str(exc))
            return False
        return True

    def new_project(self, template: str | None = None) -> bool:
        return self._replace_document(lambda: self.document.new(template), "Cannot create the project")

    def open_project(self, project, failure_title: str = "Cannot open the project", ask: bool = True) -> bool:
        """Replace the open project with an already built one (a lab's new project), asking first
        (unsaved changes, a run in progress) unless ``ask`` is False."""
        return self._replace_document(lambda: self.document.open_project(project), failure_title, ask)

    def open_starter(self, name: str) -> bool:
        return self._replace_document(lambda: self.document.open_project(load_starter(name)),
                                      "Cannot open the starter lab")

    def open_dialog(self) -> bool:
        if not (self.may_leave_project() and self.maybe_save()):
            return False
        path = dialogs.get_open_path(self, "Open a LayerLab project", OPEN_FILTERS, self.start_folder())
        return self.open_path(path, ask=False) if path else False

    def start_folder(self) -> str:
        """Where Open and Save As start: the project's folder, else the last file's (a student's lab
        folder, not the home folder each time), else home."""
        if self.document.path:
            return os.path.dirname(self.document.path)
        recent = recent_files()
        return os.path.dirname(recent[0]) if recent else os.path.expanduser("~")

    def open_path(self, path: str, ask: bool = True) -> bool:
        """Open a file; a bad file shows one sentence and leaves the current document untouched."""
        if not self._replace_document(lambda: self.document.open(path), "Cannot open the project", ask):
            return False
        add_recent_file(path)
        if self.document.dataset_error:
            self.statusBar().showMessage(f"The project opened, but its data did not load: "
                                         f"{self.document.dataset_error}", STATUS_MS * 2)
        return True

    def save(self) -> bool:
        if not self.document.path:
            return self.save_as()
        return self._save_to(self.document.path)

    def save_as(self) -> bool:
        start = self.document.path or os.path.join(self.start_folder(),
                                                   f"{file_stem(self.document.display_name)}.layerlab")
        path = dialogs.get_save_path(self, "Save the project", FILE_FILTERS, start)
        if not path:
            return False
        if not os.path.splitext(path)[1]:
            path += ".layerlab"
        return self._save_to(path)

    def _save_to(self, path: str) -> bool:
        try:
            saved = self.document.save(path)
        except LayerLabError as exc:
            dialogs.show_error(self, "Cannot save the project", str(exc))
            return False
        add_recent_file(saved)
        if self.autosaver is not None:
            self.autosaver.remove_file()
        self.statusBar().showMessage(f"Saved {saved}", STATUS_MS)
        return True

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        files = recent_files()
        if not files:
            a = self.recent_menu.addAction("(none yet)")
            a.setEnabled(False)
            return
        for p in files:
            self.recent_menu.addAction(os.path.basename(p), lambda p=p: self.open_path(p)).setToolTip(p)

    # ------------------------------------------------------------------ window state
    def _restore_state(self) -> None:
        s = app_settings()
        geo = s.value("ui/geometry")
        if isinstance(geo, QByteArray) and not geo.isEmpty():
            self.restoreGeometry(geo)

    def _save_state(self) -> None:
        s = app_settings()
        s.setValue("ui/geometry", self.saveGeometry())
        s.sync()

    def closeEvent(self, event) -> None:
        if not self._close_confirmed and not (self.may_leave_project() and self.maybe_save()):
            event.ignore()
            return
        self._save_state()
        if self.autosaver is not None:
            self.autosaver.shutdown(keep_file=self._keep_recovery)
        event.accept()

    def end_without_asking(self) -> str | None:
        """Close with no questions (SIGTERM, a logout): unsaved work goes into the recovery file,
        kept for the next start to offer.  Returns that file's path (None: nothing was unsaved)."""
        unsaved = self.autosaver is not None and self.document.is_modified()
        kept = self.autosaver.path if unsaved and self.autosaver.save_now() else None
        self._keep_recovery = unsaved  # where writing it failed, the last autosave holds the most of it
        self._close_confirmed = True
        self.close()
        return kept
