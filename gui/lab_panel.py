"""The lab panel: the open lab's introduction and steps, ticking as the student works.

Each step is a card: a check mark, its title and points; the open card (one at a time, at first
the first step not done) shows the instructions (markdown with pictures), what is still missing
in the goal's own sentences ("add a hidden layer: the network has none yet"), its questions, and
its hints one at a time on request.  Ticks, hints and answers live in the project
(``Project.lab``): they are saved with it and come back when it is opened again.

The panel shows and collects only; ``LabSession`` (gui/lab_session.py) decides which lab is open,
checks the project and records what the student does.

``install_lab_ui(window)`` is the main window's extension (``gui.app.default_extensions``): the
session, this panel in a dock, the recorder of inspection events (gui/lab_events.py) and the File
menu's lab entries (gui/lab_actions.py).
"""
from __future__ import annotations

import html

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QButtonGroup, QFrame, QHBoxLayout, QLabel, QLineEdit, QProgressBar, QPushButton,
                               QRadioButton, QScrollArea, QSizePolicy, QToolButton, QVBoxLayout, QWidget)

from engine.labs import markdown_resources, shown_hints
from engine.labs.goals import ChoiceQuestion, NumberQuestion, questions
from engine.labs.progress import answers
from gui import theme
from gui.markdown_view import MarkdownView

MARK_MET, MARK_OPEN, MARK_CHECKING = "✓", "○", "…"


def sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def points_text(points: float) -> str:
    return f"{points:g} pt" + ("" if points == 1 else "s")


def goal_lines(result) -> list[tuple[bool, str]]:
    """What the open step says about its goal: (met, sentence) per part.  An ``all`` goal lists its
    parts; a question not answered yet says nothing (its box asks it)."""
    parts = list(result.children) if result.kind == "all" else [result]
    return [(part.met, sentence_case(part.sentence)) for part in parts
            if not (part.kind in ("choice", "number") and "answer" not in part.detail)]


def _section_button(text: str) -> QToolButton:
    """A folding section's header: an arrow and a title."""
    b = QToolButton()
    b.setCheckable(True)
    b.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
    b.setArrowType(Qt.RightArrow)
    b.setText(text)
    b.setAutoRaise(True)
    return b


class StepHeader(QToolButton):
    """A step's header: a button whose size is its layout's (mark, title, points), so that a long
    title wraps and the header grows with it (a QToolButton sizes itself by its own text, none
    here, and cut a wrapped title to one line)."""

    def sizeHint(self):
        lay = self.layout()  # none until StepCard gives it one
        return lay.totalSizeHint() if lay is not None else super().sizeHint()

    def minimumSizeHint(self):
        lay = self.layout()
        return lay.totalMinimumSize() if lay is not None else super().minimumSizeHint()

    def hasHeightForWidth(self) -> bool:
        return self.layout() is not None

    def heightForWidth(self, width: int) -> int:
        lay = self.layout()
        height = lay.totalHeightForWidth(width) if lay is not None else -1
        return height if height >= 0 else self.sizeHint().height()


class OptionRow(QWidget):
    """A choice question's option: a radio button and its text, which wraps to the panel's width (a
    QRadioButton's own text does not wrap: a long option widened the whole panel, which then scrolled
    sideways and cut every line's start).  A click on the text picks the option, as on the button."""

    def __init__(self, option: str, parent=None):
        super().__init__(parent)
        self.button = QRadioButton()
        self.button.setProperty("option", option)
        self.button.setAccessibleName(option)
        self.label = QLabel(html.escape(option))
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.RichText)
        self.label.mousePressEvent = lambda event: self.button.click()
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(4)
        row.addWidget(self.button, 0, Qt.AlignTop)
        row.addWidget(self.label, 1)


class QuestionBox(QWidget):
    """One question of a step: options to pick, or a number to type, and "Check answer"."""

    answered = Signal(str, object)  # (question id, the answer)

    def __init__(self, question, pictures: dict, given=None, parent=None):
        super().__init__(parent)
        self.question = question
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 4, 0, 4)
        lay.setSpacing(4)
        text = MarkdownView()
        text.set_markdown(f"**{question.question}**", pictures)
        lay.addWidget(text)
        self.group: QButtonGroup | None = None
        self.edit: QLineEdit | None = None
        self.check_button = QPushButton("Check answer")
        self.check_button.setToolTip("Your answer is kept in the project and counted when you hand the lab in")
        self.check_button.clicked.connect(self.submit)
        if isinstance(question, ChoiceQuestion):
            self.group = QButtonGroup(self)
            for i, option in enumerate(question.options):
                row = OptionRow(option)
                self.group.addButton(row.button, i)
                lay.addWidget(row)
                if given is not None and str(given) == option:
                    row.button.setChecked(True)
            self.group.idToggled.connect(lambda *_a: self.check_button.setEnabled(self.group.checkedId() >= 0))
            self.check_button.setEnabled(self.group.checkedId() >= 0)
            lay.addWidget(self.check_button, 0, Qt.AlignLeft)
        else:
            row = QHBoxLayout()
            self.edit = QLineEdit("" if given is None else (f"{given:g}" if isinstance(given, float) else str(given)))
            self.edit.setPlaceholderText("a number, e.g. 0.25")
            self.edit.returnPressed.connect(self.submit)
            row.addWidget(self.edit, 1)
            if isinstance(question, NumberQuestion) and question.unit:
                row.addWidget(QLabel(html.escape(question.unit)))
            row.addWidget(self.check_button)
            lay.addLayout(row)

    def value(self):
        if self.group is not None:
            button = self.group.checkedButton()
            return button.property("option") if button is not None else None
        return self.edit.text().strip() or None

    def choose(self, value) -> None:
        """Select an option or type a number (as the student would), without checking it."""
        if self.group is not None:
            for button in self.group.buttons():
                button.setChecked(button.property("option") == str(value))
        else:
            self.edit.setText(str(value))

    def submit(self) -> None:
        value = self.value()
        if value is not None:
            self.answered.emit(self.question.id, value)


class StepCard(QFrame):
    """One step: a header that opens it, and its body (instructions, goal, questions, hints)."""

    toggled = Signal(str)  # the step's id: open it (or close it when it is open)
    hintRequested = Signal(str)
    answered = Signal(str, object)

    def __init__(self, index: int, step, pictures: dict, parent=None):
        super().__init__(parent)
        self.step = step
        self.pictures = pictures
        self.setObjectName("LabStep")
        self.setFrameShape(QFrame.StyledPanel)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 4, 6, 6)
        outer.setSpacing(4)
        self.header = StepHeader()
        self.header.setToolButtonStyle(Qt.ToolButtonTextOnly)
        self.header.setAutoRaise(True)
        self.header.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        self.header.clicked.connect(lambda: self.toggled.emit(self.step.id))
        self.mark = QLabel(MARK_OPEN)
        self.mark.setFixedWidth(18)
        self.mark.setAlignment(Qt.AlignHCenter | Qt.AlignTop)
        self.title = QLabel(f"<b>{index}.</b> {html.escape(step.title)}")
        self.title.setWordWrap(True)
        wide = QSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        wide.setHeightForWidth(True)  # a wrapped title's height follows the width (the header's, too)
        self.title.setSizePolicy(wide)
        self.title.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.mark.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.points = QLabel(points_text(step.points))
        self.points.setObjectName("Muted")
        self.points.setAlignment(Qt.AlignRight | Qt.AlignTop)
        self.points.setAttribute(Qt.WA_TransparentForMouseEvents)
        head = QHBoxLayout(self.header)
        head.setContentsMargins(2, 3, 2, 3)
        head.setSpacing(6)
        head.addWidget(self.mark)
        head.addWidget(self.title, 1)
        head.addWidget(self.points)
        outer.addWidget(self.header)

        self.body = QWidget()
        body = QVBoxLayout(self.body)
        body.setContentsMargins(24, 0, 2, 2)
        body.setSpacing(6)
        self.instructions = MarkdownView()
        self.instructions.set_markdown(step.instructions, pictures)
        body.addWidget(self.instructions)
        self.goal_label = QLabel()
        self.goal_label.setWordWrap(True)
        self.goal_label.setTextFormat(Qt.RichText)
        body.addWidget(self.goal_label)
        self.questions: list[QuestionBox] = []
        self._question_host = QVBoxLayout()
        body.addLayout(self._question_host)
        self.hints_host = QVBoxLayout()
        self.hints_host.setSpacing(4)
        body.addLayout(self.hints_host)
        self.hint_views: list[MarkdownView] = []
        self.hint_button = QPushButton()
        self.hint_button.setToolTip("Hints are revealed one at a time; your instructor can see how many you used")
        self.hint_button.clicked.connect(lambda: self.hintRequested.emit(self.step.id))
        body.addWidget(self.hint_button, 0, Qt.AlignLeft)
        outer.addWidget(self.body)
        self.body.hide()
        self.met = False
        self.checking = False

    def build_questions(self, given: dict) -> None:
        for box in self.questions:
            box.setParent(None)
            box.deleteLater()
        self.questions = []
        for q in questions(self.step.goal):
            box = QuestionBox(q, self.pictures, given.get(q.id))
            box.answered.connect(self.answered)
            self._question_host.addWidget(box)
            self.questions.append(box)

    def set_open(self, on: bool) -> None:
        self.body.setVisible(on)
        self.header.setToolTip("Click to close this step" if on else "Click to open this step")

    @property
    def is_open(self) -> bool:
        return not self.body.isHidden()

    def show_state(self, met: bool, checking: bool) -> None:
        self.met, self.checking = met, checking
        t = theme.current()
        if checking:
            self.mark.setText(MARK_CHECKING)
            self.mark.setStyleSheet(f"color: {t.warning}; font-weight: bold;")
            self.mark.setToolTip("Checking: LayerLab is measuring your trained network on the lab's test data")
        elif met:
            self.mark.setText(MARK_MET)
            self.mark.setStyleSheet(f"color: {t.ok}; font-weight: bold; font-size: 12pt;")
            self.mark.setToolTip("Done")
        else:
            self.mark.setText(MARK_OPEN)
            self.mark.setStyleSheet("color: gray; font-size: 12pt;")
            self.mark.setToolTip("Not done yet")

    def show_goal(self, lines: list[tuple[bool, str]], checking: bool) -> None:
        t = theme.current()
        if checking:
            self.goal_label.setText(f"<span style='color:{t.warning}'>Checking your trained network on the "
                                    "lab's test data…</span>")
            self.goal_label.show()
            return
        rows = []
        for met, sentence in lines:
            mark, color = ("✓", t.ok) if met else ("✗", t.error)
            rows.append(f"<span style='color:{color}'><b>{mark}</b></span> {html.escape(sentence)}")
        self.goal_label.setText("<br>".join(rows))
        self.goal_label.setVisible(bool(rows))

    def show_hints(self, shown: list[str]) -> None:
        while len(self.hint_views) > len(shown):
            self.hint_views.pop().deleteLater()
        for i in range(len(self.hint_views), len(shown)):
            view = MarkdownView()
            view.set_markdown(f"**Hint {i + 1}:** {shown[i]}", self.pictures)
            self.hints_host.addWidget(view)
            self.hint_views.append(view)
        total = len(self.step.hints)
        left = total - len(shown)
        self.hint_button.setVisible(total > 0)
        self.hint_button.setEnabled(left > 0)
        self.hint_button.setText("No more hints" if left == 0 else
                                 f"Show a hint ({left} of {total} left)" if shown else
                                 f"Show a hint ({total} available)")


class LabPanel(QWidget):
    submitRequested = Signal()
    locateRequested = Signal()  # the project's lab could not be found: ask for its file

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.cards: dict[str, StepCard] = {}
        self.open_step = ""
        self._last_met: dict[str, bool] = {}
        self.pictures: dict[str, bytes] = {}

        self.title = QLabel()
        self.title.setObjectName("Heading")
        self.title.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(8)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.status = QLabel()
        self.status.setObjectName("Muted")
        self.status.setWordWrap(True)
        self.intro_button = _section_button("Introduction")
        self.intro_button.toggled.connect(self._show_intro)
        # what the lab fixes (locked layers, data, settings, palette): folded, one line until opened
        self.locks_button = _section_button("What the lab fixes")
        self.locks_label = QLabel()
        self.locks_label.setObjectName("Muted")
        self.locks_label.setWordWrap(True)
        self.locks_label.hide()
        self.locks_button.toggled.connect(self._show_locks_text)
        self.intro = MarkdownView()
        self.intro.hide()
        self.steps_host = QVBoxLayout()
        self.steps_host.setSpacing(6)
        self.submit_button = QPushButton("Hand in… (File > Submit lab)")
        self.submit_button.setToolTip("Write the file you hand in: your network, its weights, your answers and "
                                      "which steps are done")
        self.submit_button.clicked.connect(self.submitRequested)

        self.missing_box = QWidget()
        ml = QVBoxLayout(self.missing_box)
        ml.setContentsMargins(0, 0, 0, 0)
        self.missing_label = QLabel()
        self.missing_label.setWordWrap(True)
        self.locate_button = QPushButton("Find the lab file…")
        self.locate_button.clicked.connect(self.locateRequested)
        ml.addWidget(self.missing_label)
        ml.addWidget(self.locate_button, 0, Qt.AlignLeft)
        self.empty = QLabel("<b>No lab is open.</b><br><br>A lab guides you step by step and checks your work "
                            "as you go. Open one with <i>File › Labs</i> (the bundled labs) or <i>File › Open "
                            "lab…</i> (a lab file from your instructor).")
        self.empty.setWordWrap(True)
        self.empty.setObjectName("Muted")

        # the title and the progress stay in sight; the rest scrolls
        head = QWidget()
        hl = QVBoxLayout(head)
        hl.setContentsMargins(8, 8, 8, 4)
        hl.setSpacing(4)
        for w in (self.title, self.progress, self.summary, self.status):
            hl.addWidget(w)
        inner = QWidget()
        lay = QVBoxLayout(inner)
        lay.setContentsMargins(8, 4, 8, 8)
        lay.setSpacing(6)
        for w in (self.empty, self.missing_box, self.intro_button, self.intro, self.locks_button, self.locks_label):
            lay.addWidget(w)
        lay.addLayout(self.steps_host)
        lay.addWidget(self.submit_button, 0, Qt.AlignLeft)
        lay.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.scroll.setWidget(inner)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        outer.addWidget(head)
        outer.addWidget(self.scroll, 1)

        session.labChanged.connect(self.set_lab)
        session.reportReady.connect(self.show_report)
        session.checkingChanged.connect(self._show_checking)
        session.progressChanged.connect(self._refresh_progress)
        session.missingLab.connect(self._show_missing)
        self.set_lab(session.lab)

    # ------------------------------------------------------------------ the lab
    def set_lab(self, lab) -> None:
        for card in self.cards.values():
            card.setParent(None)
            card.deleteLater()
        self.cards.clear()
        self.open_step = ""
        self._last_met = {}
        has = lab is not None
        for w in (self.title, self.progress, self.summary, self.status, self.locks_button, self.intro_button,
                  self.submit_button):
            w.setVisible(has)
        self.locks_label.setVisible(has and self.locks_button.isChecked())
        self.missing_box.setVisible(not has and self.session.missing is not None)
        self.empty.setVisible(not has and self.session.missing is None)
        if self.session.missing is not None and not has:
            self._show_missing(*self.session.missing)
        if not has:
            self.intro.hide()
            return
        self.pictures = markdown_resources(lab)
        self.title.setText(html.escape(lab.title))
        self.title.setToolTip(lab.description)
        self.intro.set_markdown(lab.introduction, self.pictures)
        self.intro_button.setVisible(bool(lab.introduction.strip()))
        given = answers(self.session.document.project)
        saved = set(self._saved_ticks())
        for i, step in enumerate(lab.steps, 1):
            card = StepCard(i, step, self.pictures)
            card.toggled.connect(self.toggle_step)
            card.hintRequested.connect(self._reveal_hint)
            card.answered.connect(self._answer)
            card.build_questions(given)
            card.show_hints(shown_hints(self.session.document.project, lab, step.id))
            card.show_state(step.id in saved, False)  # the saved ticks, until the check confirms them
            self.steps_host.addWidget(card)
            self.cards[step.id] = card
        self._show_locks(lab)
        self._show_summary(sum(1 for s in lab.steps if s.id in saved), sum(s.points for s in lab.steps
                                                                            if s.id in saved))
        self.status.setText("Checking your work…")
        first_open = next((s.id for s in lab.steps if s.id not in saved), lab.steps[0].id)
        self.intro_button.setChecked(not saved)  # a lab just started opens on its introduction
        self._show_intro(self.intro_button.isChecked())
        self.open(first_open)

    def _saved_ticks(self) -> list[str]:
        from engine.labs.progress import ticked
        return ticked(self.session.document.project)

    def _show_missing(self, lab_id: str, title: str) -> None:
        self.missing_label.setText(
            f"<b>{html.escape(title)}</b><br><br>This project was made from the lab “{html.escape(lab_id)}”, which "
            "LayerLab cannot find on this computer. Open its lab file to see the steps and check your work.")

    def _show_intro(self, on: bool) -> None:
        self.intro_button.setArrowType(Qt.DownArrow if on else Qt.RightArrow)
        self.intro.setVisible(on and self.session.lab is not None)

    def _show_locks(self, lab) -> None:
        locks = lab.locks
        starter = {n["id"]: n["name"] for n in lab.starter["nodes"]}
        parts = []
        if locks.data:
            parts.append("the data and its split")
        if locks.nodes:
            parts.append("the layers " + ", ".join(html.escape(starter.get(n, n)) for n in locks.nodes))
        if locks.settings:
            parts.append("the settings " + ", ".join(n.replace("_", " ") for n in locks.settings))
        if locks.palette is not None:
            parts.append("which layers you can add" if locks.palette else "the network (no layers to add)")
        self.locks_label.setText(sentence_case("; ".join(parts)) + ". Locked things are greyed or carry a "
                                 "padlock; hover over them to see why." if parts else "")
        self.locks_button.setVisible(bool(parts))
        self._show_locks_text(self.locks_button.isChecked())

    def _show_locks_text(self, on: bool) -> None:
        self.locks_button.setArrowType(Qt.DownArrow if on else Qt.RightArrow)
        self.locks_label.setVisible(on and self.session.lab is not None and bool(self.locks_label.text()))

    # ------------------------------------------------------------------ opening steps
    def open(self, step_id: str) -> None:
        self.open_step = step_id
        for sid, card in self.cards.items():
            card.set_open(sid == step_id)
        card = self.cards.get(step_id)
        if card is not None:
            QTimer.singleShot(0, self, lambda: self._scroll_to(step_id))

    def _scroll_to(self, step_id: str) -> None:
        card = self.cards.get(step_id)
        if card is None:
            return
        if step_id == next(iter(self.cards)):  # the first step: the introduction above it comes first
            self.scroll.verticalScrollBar().setValue(0)
        else:
            self.scroll.ensureWidgetVisible(card.header, 0, 40)

    def toggle_step(self, step_id: str) -> None:
        self.open("" if step_id == self.open_step else step_id)

    # ------------------------------------------------------------------ the check
    def show_report(self, report) -> None:
        lab = self.session.lab
        if lab is None or report.lab_id != lab.id:
            return
        for result in report.steps:
            card = self.cards.get(result.id)
            if card is not None:
                card.show_state(result.met, False)
                card.show_goal(goal_lines(result.result), False)
        just_done = [s.id for s in report.steps if s.met and self._last_met.get(s.id) is False]
        self._last_met = {s.id: s.met for s in report.steps}
        if self.open_step in just_done:  # the step the student worked on is done: on to the next
            nxt = next((s.id for s in report.steps if not s.met), "")
            if nxt:
                self.open(nxt)
        self._show_summary(report.met, report.points, report)
        notes = [sentence_case(report.note) + "."] if report.note else []
        notes += [f"The lab's locks were broken: {p}." for p in report.lock_problems[:2]]
        self.status.setText(" ".join(notes))
        self.status.setVisible(bool(notes))

    def _show_summary(self, met: int, points: float, report=None) -> None:
        lab = self.session.lab
        n = len(lab.steps)
        self.progress.setRange(0, n)
        self.progress.setValue(met)
        done = "All steps done: hand the lab in when you are ready." if met == n else \
            f"{met} of {n} steps done"
        self.summary.setText(f"{done} · {points:g} of {lab.max_points:g} points")

    def _show_checking(self, on: bool) -> None:
        """A check that takes a moment is measuring the trained network: its steps say so."""
        lab = self.session.lab
        if lab is None:
            return
        if on:
            self.status.setText("Checking your work…")
            self.status.show()
            for step in lab.steps:
                if step.training:
                    card = self.cards[step.id]
                    card.show_state(card.met, True)
                    card.show_goal([], True)
        elif self.session.report is not None:
            self.show_report(self.session.report)

    # ------------------------------------------------------------------ the student's actions
    def _reveal_hint(self, step_id: str) -> None:
        self.session.reveal_hint(step_id)

    def _answer(self, question_id: str, value) -> None:
        self.session.answer(question_id, value)

    def _refresh_progress(self) -> None:
        lab = self.session.lab
        if lab is None:
            return
        for step in lab.steps:
            self.cards[step.id].show_hints(shown_hints(self.session.document.project, lab, step.id))


def install_lab_ui(window):
    """Add the lab panel, the lab session and the File menu's lab entries to ``window``; returns the
    session (also ``window.lab``)."""
    from gui.lab_actions import LabActions
    from gui.lab_events import InspectionRecorder
    from gui.lab_session import LabSession

    session = LabSession(window.document, parent=window)
    window.lab = session
    panel = LabPanel(session)
    window.lab_panel = panel
    left = Qt.LeftDockWidgetArea
    dock = window.add_dock(panel, "Lab", left, tabify=False)
    window.lab_dock = dock
    palette_dock = getattr(window, "palette_dock", None)
    if palette_dock is not None and window.dockWidgetArea(palette_dock) == left:
        # the lab above the palette (a lab's palette is short); the palette keeps its tabs below
        tabs = [d for d in window.tabifiedDockWidgets(palette_dock)]
        window.splitDockWidget(dock, palette_dock, Qt.Vertical)
        for other in tabs:
            window.tabifyDockWidget(palette_dock, other)
        palette_dock.raise_()
    window.lab_recorder = InspectionRecorder(window, session)
    window.lab_actions = LabActions(window, session, panel)
    window.lab_layout = _LabLayout(window, dock)
    session.labChanged.connect(window.lab_layout.apply)
    window.lab_layout.apply(session.lab)
    # installed on a window already shown, Qt's pending dock layout shows the new dock once more as
    # it settles: apply again after that (with no lab open, the panel stays hidden)
    QTimer.singleShot(0, window, lambda: window.lab_layout.apply(session.lab))
    return session


class _LabLayout:
    """While a lab is open (or the project's lab is missing) its panel runs the window's full height
    on the left, above the palette; with no lab it is hidden (View > Panels > Lab shows it)."""

    WIDTH = 300

    def __init__(self, window, dock):
        self.window = window
        self.dock = dock
        self.corner = window.corner(Qt.BottomLeftCorner)
        self.shown_for = None

    def apply(self, lab) -> None:
        w, dock = self.window, self.dock
        locks_palette(w, lab)
        session = getattr(w, "lab", None)
        if lab is None and getattr(session, "missing", None):
            lab = session.missing  # no lab to follow, but the panel offers to find its file
        if lab is None:
            w.setCorner(Qt.BottomLeftCorner, self.corner)
            if self.shown_for is not None or self.dock.isVisible():
                dock.hide()
            self.shown_for = None
            return
        w.setCorner(Qt.BottomLeftCorner, Qt.LeftDockWidgetArea)
        if lab is not self.shown_for:  # another lab: its panel comes to the front (even if closed before)
            dock.show()
            dock.raise_()
        if self.shown_for is None:
            w.resizeDocks([dock], [self.WIDTH], Qt.Horizontal)
            palette_dock = getattr(w, "palette_dock", None)
            if palette_dock is not None and w.dockWidgetArea(palette_dock) == Qt.LeftDockWidgetArea:
                w.resizeDocks([dock, palette_dock], [530, 210], Qt.Vertical)
        self.shown_for = lab


def locks_palette(window, lab) -> None:
    """The palette and the training panel show the lab's locks (the canvas, inspector and dataset
    panel follow ``Document.labChanged`` themselves)."""
    from gui import lab_locks

    doc = window.document
    allowed = lab_locks.allowed_types(doc)
    palette = getattr(window, "palette", None)
    if palette is not None and hasattr(palette, "set_allowed"):
        if allowed is None:
            palette.set_allowed(None)
        elif allowed:
            palette.set_allowed(allowed, "<b>Locked:</b> this lab offers these layers only.")
        else:
            palette.set_allowed((), "<b>Locked:</b> this lab adds no layers; you work with the settings instead.")
    training = getattr(window, "training", None)
    panel = getattr(training, "panel", None)
    if panel is not None and hasattr(panel, "set_locks"):
        panel.set_locks(lab_locks.setting_locks(doc))
